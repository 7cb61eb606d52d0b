"""The DSen2-CR network has the paper's size, receptive field and skip connection."""

import torch

from training.model import DSen2CR


def _conv_parameters(in_channels: int, out_channels: int) -> int:
    return in_channels * out_channels * 3 * 3 + out_channels  # 3x3 kernel + bias


def test_default_network_has_the_papers_parameter_count_and_radius():
    blocks, features = 16, 256
    expected = (_conv_parameters(13 + 2, features)
                + blocks * 2 * _conv_parameters(features, features)
                + _conv_parameters(features, 13))
    model = DSen2CR()
    assert expected == 18_947_341
    assert sum(p.numel() for p in model.parameters()) == expected
    assert model.receptive_field_radius == 34
    assert model.in_channels == 15 and DSen2CR(use_sar=False).in_channels == 13


def test_no_sar_network_reads_13_channels_and_returns_13():
    model = DSen2CR(num_blocks=1, num_features=4, use_sar=False).eval()
    with torch.no_grad():
        assert model(torch.rand(2, 13, 9, 7)).shape == (2, 13, 9, 7)


def test_long_skip_returns_the_optical_input_when_the_last_conv_is_zero():
    model = DSen2CR(num_blocks=2, num_features=4, use_sar=True).eval()
    torch.nn.init.zeros_(model.tail.weight)
    torch.nn.init.zeros_(model.tail.bias)
    sample = torch.rand(1, 15, 8, 8)
    with torch.no_grad():
        assert torch.equal(model(sample), sample[:, :13])


def test_an_impulse_changes_the_output_exactly_within_the_receptive_field_radius():
    model = DSen2CR(num_blocks=2, num_features=4, use_sar=True).double().eval()
    radius = model.receptive_field_radius
    assert radius == 6
    # Positive weights and inputs keep every ReLU open, so no path through the
    # network is cut and every pixel within reach really changes.
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.copy_(torch.rand_like(parameter) * 0.2 + 0.01)
        size, centre = 2 * radius + 9, radius + 4
        background = torch.rand(1, 15, size, size, dtype=torch.float64) + 0.5
        impulse = background.clone()
        impulse[0, :, centre, centre] += 1.0
        changed = (model(impulse) - model(background)).abs().amax(dim=1)[0] > 0
    rows, cols = torch.meshgrid(torch.arange(size), torch.arange(size), indexing="ij")
    within = torch.maximum((rows - centre).abs(), (cols - centre).abs()) <= radius
    assert torch.equal(changed, within)
