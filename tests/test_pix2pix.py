"""pix2pix through the whole pipeline: official split, torchrun training, kill and resume, evaluate, export,
the engine's feathered tiles, and the bad inputs named in the issue.

One tiny release-layout dataset (official test ROI ROIs1158_spring 106, validation ROI ROIs1868_summer 19,
training ROIs 101 and 102) and a tiny U-Net (4 levels of 8 features: sides multiples of 16 px, 32 px crops)
keep each torchrun launch to a few seconds.
"""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from osgeo import gdal, osr

from qgis_cloudremoval.core import blending, engine
from qgis_cloudremoval.core.model_info import read_model_info
from qgis_cloudremoval.core.request import RemovalRequest
from torchrun_runs import free_port, torchrun
from sen12mscr_release import _smooth_field, make_release
from training import evaluate as ev
from training import pix2pix, train
from training.checkpoint import load_checkpoint
from training.reformat import main as reformat_main

REPO = Path(__file__).resolve().parents[1]
TINY = ["unet_depth=4", "num_features=8", "crop=32", "batch_size=2", "num_workers=0", "val_patches=1",
        "log_every_steps=1", "max_steps=5", "checkpoint_every_steps=2", "debug_save_rank_params=true"]


def _settings(data: Path, out_dir: Path, *extra: str):
    args = ["--model", "pix2pix"]
    for item in TINY + [f"data={data}", f"out_dir={out_dir}", *extra]:
        args += ["--set", item]
    return args


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("pix2pix_data")
    make_release(root / "release", {"ROIs1158_spring": {101: [1, 2, 3], 102: [1, 2, 3], 106: [1]},
                                    "ROIs1868_summer": {19: [4]}}, seed=5)
    assert reformat_main([str(root / "release"), str(root / "dst"), "--split", "official", "--workers", "1"]) == 0
    return root / "dst"


@pytest.fixture(scope="module")
def uninterrupted(dataset, tmp_path_factory) -> Path:
    """5 steps on 2 processes: 3 steps per epoch (6 training patches, 2 ranks x 1), so it crosses an epoch."""
    out_dir = tmp_path_factory.mktemp("pix2pix_full")
    result = torchrun(_settings(dataset, out_dir))
    assert result.returncode == 0, result.stderr[-3000:]
    return out_dir


@pytest.fixture(scope="module")
def dsen2cr_checkpoint(dataset, tmp_path_factory) -> Path:
    """A tiny DSen2-CR trained one step on the same data, to compare with and to resume the wrong way."""
    out_dir = tmp_path_factory.mktemp("dsen2cr_run")
    assert train.main(["--set", f"data={dataset}", "--set", f"out_dir={out_dir}", "--set", "num_blocks=1",
                       "--set", "num_features=8", "--set", "crop=32", "--set", "batch_size=2", "--set",
                       "num_workers=0", "--set", "max_steps=1", "--device", "cpu"]) == 0
    return out_dir / "checkpoints" / "last.pt"


def _params(path: Path):
    return torch.load(path, weights_only=True)


def test_two_ranks_train_both_networks_identically_and_log_every_loss(uninterrupted):
    rank0, rank1 = _params(uninterrupted / "rank0_params.pt"), _params(uninterrupted / "rank1_params.pt")
    assert any(key.startswith("discriminator.") for key in rank0) and any(key.startswith("encoder.") for key in rank0)
    for key in rank0:
        assert torch.equal(rank0[key], rank1[key]), key
    model, provenance, extra = load_checkpoint(str(uninterrupted / "checkpoints" / "last.pt"))
    assert isinstance(model, pix2pix.UNetGenerator)
    assert model.config() == {"architecture": "pix2pix", "unet_depth": 4, "num_features": 8, "use_sar": True}
    assert provenance["loss"] == "cgan"
    assert (extra["step"], extra["epoch"], extra["world_size"]) == (5, 1, 2)
    assert set(extra["discriminator"]) == set(pix2pix.PatchDiscriminator(15 + 13).state_dict())
    for key, value in model.named_parameters():
        assert torch.equal(value, rank0[key]), key
    torch.manual_seed(0)
    initial = pix2pix.UNetGenerator(4, 8)
    pix2pix.init_weights(initial)
    assert not torch.equal(initial.encoder[0][0].weight, rank0["encoder.0.0.weight"])  # it did train
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    events = EventAccumulator(str(uninterrupted / "tensorboard")).Reload()
    for name in ("train/loss_cgan", "train/loss_gan", "train/loss_l1", "train/loss_discriminator"):
        assert [e.step for e in events.Scalars(name)] == [1, 2, 3, 4, 5], name
    # The generator's total is its cGAN term plus 100 x L1, as Isola et al. weight them.
    for total, gan, l1 in zip(*(events.Scalars(f"train/loss_{n}") for n in ("cgan", "gan", "l1"))):
        assert total.value == pytest.approx(gan.value + pix2pix.L1_WEIGHT * l1.value, rel=1e-5)
    assert [e.step for e in events.Scalars("val/MAE Target")] == [3]


def test_killed_and_resumed_run_ends_with_the_same_generator_and_discriminator(dataset, uninterrupted, tmp_path):
    settings = _settings(dataset, tmp_path)
    killed = torchrun(settings + ["--set", "debug_kill_after_step=2"])
    assert killed.returncode != 0
    assert not (tmp_path / "rank0_params.pt").exists()
    resumed = torchrun(settings + ["--resume", str(tmp_path / "checkpoints" / "last.pt")])
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    expected = _params(uninterrupted / "rank0_params.pt")
    for rank in (0, 1):
        got = _params(tmp_path / f"rank{rank}_params.pt")
        assert got.keys() == expected.keys()
        for key in expected:  # dropout included: the resumed run draws the same masks
            assert torch.equal(got[key], expected[key]), (rank, key)


def test_evaluate_prints_pix2pix_beside_dsen2cr_on_the_official_split(
        dataset, uninterrupted, dsen2cr_checkpoint, capsys):
    checkpoint = uninterrupted / "checkpoints" / "last.pt"
    assert ev.main([str(checkpoint), str(dsen2cr_checkpoint), "--data", str(dataset),
                    "--label", "pix2pix tiny", "--label", "DSen2-CR tiny"]) == 0
    out = capsys.readouterr().out
    rows = [line for line in out.splitlines() if line.startswith("| ")]
    assert [row.split(" | ")[0] for row in rows[1:3]] == ["| pix2pix tiny (test, 1 patches)",
                                                          "| DSen2-CR tiny (test, 1 patches)"]
    assert "published rows on the official split below" in out
    assert rows[3].startswith("| DSen2-CR (published, official split)")
    # The pix2pix row is the checkpoint's own metrics on the official test ROI.
    expected = ev.evaluate(str(checkpoint), str(dataset))
    assert rows[1].split(" | ")[1] == f"{expected['MAE Target']:.4f}"


def test_paper_pix2pix_row_is_printed_for_the_authors_split():
    rows = ev.table_rows({}, "split-file")
    pix2pix_row = next(row for row in rows if row[0] == "pix2pix (paper)")
    headers = rows[0]
    assert pix2pix_row[headers.index("MAE Target")] == "0.0292"
    assert pix2pix_row[headers.index("RMSE Target")] == "0.0424"
    assert pix2pix_row[headers.index("PSNR per patch (dB)")] == "28.2"
    assert pix2pix_row[headers.index("SAM Target (deg)")] == "13.68"
    assert pix2pix_row[headers.index("SSIM Target")] == "0.844"
    assert pix2pix_row[headers.index("SAM Recon (deg)")] == "n/a"


@pytest.fixture(scope="module")
def exported(uninterrupted, tmp_path_factory) -> Path:
    output = tmp_path_factory.mktemp("pix2pix_onnx") / "pix2pix_tiny.onnx"
    checkpoint = uninterrupted / "checkpoints" / "last.pt"
    result = subprocess.run([sys.executable, "-m", "training.export_onnx", str(checkpoint), "-o", str(output),
                             "--blend-overlap", "24"], cwd=REPO, capture_output=True, text=True,
                            env=dict(os.environ, PYTHONPATH=str(REPO)))
    assert result.returncode == 0, result.stderr[-2000:]
    assert "on a random 2x16x32 (N x H x W) input" in result.stdout
    return output


def test_export_names_the_architecture_and_what_tiling_needs(exported):
    info = read_model_info(str(exported))
    assert (info.name, info.architecture, info.tile_multiple, info.blend_overlap) == ("pix2pix", "pix2pix", 16, 24)
    assert (info.num_blocks, info.num_features, info.loss, info.receptive_field_radius) == (4, 8, "cgan", 31)
    assert info.summary().startswith("pix2pix 1.0: optical + SAR (VV, VH), pix2pix U-Net of 4 levels from 8 "
                                     "features, tiles of multiples of 16 px, overlapping by 24 px and feathered "
                                     "together; loss cgan")


def _write(path: Path, data: np.ndarray, kind: int) -> Path:
    """``data`` (bands, h, w) as a 10 m UTM 33N GeoTIFF."""
    dataset = gdal.GetDriverByName("GTiff").Create(str(path), data.shape[2], data.shape[1], len(data), kind)
    dataset.SetGeoTransform((500000.0, 10.0, 0.0, 5000000.0, 0.0, -10.0))
    srs = osr.SpatialReference()
    srs.ImportFromEPSG(32633)
    dataset.SetProjection(srs.ExportToWkt())
    dataset.WriteArray(data)
    dataset = None
    return path


def _scene(folder: Path, width: int, height: int, seed: int = 0):
    """A Sentinel-2/1 pair of smooth random land (the engine's arithmetic, not realism): S2 DN and both paths."""
    rng = np.random.default_rng(seed)
    s2 = np.stack([500 + 3000 * _smooth_field(rng, (height, width), 16) for _ in range(13)]).astype(np.uint16)
    # VV about 7 dB above VH, as radar has it (swapped-looking bands are refused).
    s1 = np.stack([offset + 10 * _smooth_field(rng, (height, width), 16) for offset in (-13, -20)]).astype(np.float32)
    s2_path, s1_path = _write(folder / "s2.tif", s2, gdal.GDT_UInt16), _write(folder / "s1.tif", s1, gdal.GDT_Float32)
    return s2, [str(s2_path), str(s1_path)]


def _network(model: Path, network_input: np.ndarray) -> np.ndarray:
    """The model on one ``(C, h, w)`` input in a bare onnxruntime run (mirrored up to its multiple), DN."""
    import onnxruntime
    from qgis_cloudremoval.core import scaling
    info = read_model_info(str(model))
    height, width = network_input.shape[1:]
    multiple = info.tile_multiple
    padded = np.pad(network_input, ((0, 0), (0, -height % multiple), (0, -width % multiple)), mode="symmetric")
    session = onnxruntime.InferenceSession(str(model), providers=["CPUExecutionProvider"])
    (output,) = session.run(None, {"input": padded[None]})
    return scaling.model_to_dn(output[0][:, :height, :width], info)


def _model_input(model: Path, s2_path: str, s1_path: str) -> np.ndarray:
    from qgis_cloudremoval.core import scaling
    info = read_model_info(str(model))
    s2 = gdal.Open(s2_path).ReadAsArray().astype(np.float32)
    s1 = gdal.Open(s1_path).ReadAsArray().astype(np.float32)
    return np.concatenate([scaling.optical_to_model(s2, info), scaling.sar_to_model(s1, info)])


def _feathered_reference(model: Path, network_input: np.ndarray, tile: int, overlap: int) -> np.ndarray:
    """Tiles blended in whole-scene arrays, written here from the docs' rule: windows of ``tile`` px spread
    evenly, each weighted by min(1, distance to its nearest inner edge / overlap), means normalised."""
    height, width = network_input.shape[1:]

    def starts(length):
        count = int(np.ceil((length - tile) / (tile - overlap))) + 1 if length > tile else 1
        return [round(i * (length - tile) / (count - 1)) for i in range(count)] if count > 1 else [0]

    def ramp(start, length, scene):
        centre = np.arange(length) + 0.5
        inner = [centre if start > 0 else np.inf, length - centre if start + length < scene else np.inf]
        return np.minimum(1.0, np.minimum(*inner) / overlap)

    total = np.zeros((13, height, width))
    weights = np.zeros((height, width))
    for y in starts(height):
        for x in starts(width):
            h, w = min(tile, height), min(tile, width)
            weight = ramp(y, h, height)[:, None] * ramp(x, w, width)[None, :]
            total[:, y:y + h, x:x + w] += weight * _network(model, network_input[:, y:y + h, x:x + w])
            weights[y:y + h, x:x + w] += weight
    return total / weights


def test_engine_feathers_overlapping_tiles_as_documented(exported, tmp_path):
    _, (s2_path, s1_path) = _scene(tmp_path, 150, 100)
    network_input = _model_input(exported, s2_path, s1_path)
    whole = _network(exported, network_input)
    # One tile of the whole scene: the engine's own arithmetic against the bare run (1 DN of rounding).
    single = engine.remove_clouds(RemovalRequest(s2_path, str(exported), str(tmp_path / "single.tif"), s1_path,
                                                 tile_size=160))
    assert single.tiles == 1
    single_dn = gdal.Open(single.output_path).ReadAsArray().astype(np.float32)
    assert np.abs(single_dn - np.clip(np.rint(whole), 1, 65535)).max() <= 1
    # 64 px tiles overlapping by at least 24 px: the documented blend of bare runs, which is not the whole image.
    tiled = engine.remove_clouds(RemovalRequest(s2_path, str(exported), str(tmp_path / "tiled.tif"), s1_path,
                                                tile_size=64, output_type="float32"))
    assert tiled.tiles == 4 * 2  # along x: ceil((150 - 64) / (64 - 24)) + 1 windows
    tiled_dn = gdal.Open(tiled.output_path).ReadAsArray().astype(np.float64) * 10000
    reference = _feathered_reference(exported, network_input, 64, 24)
    assert np.abs(tiled_dn - reference).max() < 0.05
    assert np.abs(tiled_dn - whole).max() > 1  # the U-Net sees its tile: tiles are not the whole image
    dataset = gdal.Open(tiled.output_path)
    assert (dataset.RasterCount, dataset.RasterXSize, dataset.RasterYSize) == (13, 150, 100)
    assert dataset.GetGeoTransform() == (500000.0, 10.0, 0.0, 5000000.0, 0.0, -10.0)


def test_keep_clear_runs_only_where_it_matters_and_equals_the_full_computation(exported, tmp_path):
    s2, (s2_path, s1_path) = _scene(tmp_path, 200, 100, seed=2)
    cloudy = tmp_path / "cloudy.tif"
    gdal.Translate(str(cloudy), s2_path)
    dataset = gdal.Open(str(cloudy), gdal.GA_Update)
    data = dataset.ReadAsArray()
    data[:, 30:50, 45:55] = 7000  # one thick cloud in the core of the second tile column (x 34..67)
    dataset.WriteArray(data)
    dataset = None
    given = np.zeros((100, 200), np.uint8)
    given[30:50, 45:55] = 1  # the cloud, as a mask the user gives (no detector in the way)
    mask = _write(tmp_path / "given_mask.tif", given[None], gdal.GDT_Byte)
    runs = {}
    for name, keep_clear in (("kept", True), ("full", False)):
        runs[name] = engine.remove_clouds(RemovalRequest(str(cloudy), str(exported), str(tmp_path / f"{name}.tif"),
                                                         s1_path, tile_size=64, keep_clear=keep_clear,
                                                         cloud_mask_path=str(mask), output_type="float32"))
    assert runs["kept"].tiles == 5 * 2
    # The windows that reach the feathered cloud (x 37..62) ran: columns 0 and 34, in both rows. The first
    # column runs although the cloud is outside its core (x 0..33): its window feeds the blend there.
    assert runs["kept"].network_tiles == 2 * 2
    kept = gdal.Open(runs["kept"].output_path).ReadAsArray() * 10000
    full = gdal.Open(runs["full"].output_path).ReadAsArray() * 10000
    weight = engine._feather_weight(given.astype(bool))
    expected = weight * full + (1 - weight) * data.astype(np.float32)
    assert np.abs(kept - expected).max() < 0.05  # float rounding; tiles far from the cloud never ran
    kept_reflectance = gdal.Open(runs["kept"].output_path).ReadAsArray()
    clear = weight == 0
    assert np.array_equal(kept_reflectance[:, clear], data[:, clear].astype(np.float32) / np.float32(10000))


def test_tiles_partition_the_scene_and_a_smooth_prediction_blends_back_exactly():
    tiles = blending.plan_tiles(700, 257, 256, 64, context=20)
    cover = np.zeros((257, 700), int)
    field = np.stack(np.mgrid[0:257, 0:700]).astype(np.float32)
    blender = blending.FeatherBlender(tiles, 700, 257, 2, 64)
    result = np.zeros_like(field)
    for tile in tiles:
        core, network, read = tile.core, tile.network, tile.read
        cover[core.y:core.y + core.height, core.x:core.x + core.width] += 1
        assert read.x <= network.x <= core.x and core.x + core.width <= network.x + network.width
        blender.add(tile, field[:, network.y:network.y + network.height, network.x:network.x + network.width])
        result[:, core.y:core.y + core.height, core.x:core.x + core.width] = blender.take(tile)
    assert (cover == 1).all()
    assert np.abs(result - field).max() < 1e-3  # the weights sum to 1 everywhere
    assert blender.pending_bytes == 0
    # Neighbours overlap by at least 64 px, and every network window has the tile size.
    starts = sorted({tile.network.x for tile in tiles})
    assert all(b - a <= 256 - 64 for a, b in zip(starts, starts[1:]))
    assert {(tile.network.width, tile.network.height) for tile in tiles} == {(256, 256)}


def test_a_constant_tile_fades_into_its_neighbours():
    tiles = blending.plan_tiles(400, 10, 256, 64)
    blender = blending.FeatherBlender(tiles, 400, 10, 1, 64)
    row = np.zeros(400, np.float32)
    for value, tile in enumerate(tiles):
        blender.add(tile, np.full((1, 10, tile.network.width), float(value), np.float32))
        row[tile.core.x:tile.core.x + tile.core.width] = blender.take(tile)[0, 0]
    assert (row[:144] == 0).all() and (row[256:] == 1).all()  # one tile alone, either side of the overlap
    assert np.all(np.diff(row) >= 0) and np.abs(np.diff(row)).max() <= 1 / 64 + 1e-6  # a ramp, no step


def test_tile_sizes_the_u_net_cannot_take_are_refused_with_the_multiple(exported, tmp_path):
    _, (s2_path, s1_path) = _scene(tmp_path, 64, 64)
    request = RemovalRequest(s2_path, str(exported), str(tmp_path / "out.tif"), s1_path, tile_size=100)
    assert engine.check_request(request) == [
        "Tile size 100 px is not a multiple of 16 px, which this pix2pix model needs (its U-Net halves the tile "
        "4 times); use 96 or 112 px, or 0 to choose automatically"]
    request.tile_size = 48
    assert engine.check_request(request) == [
        "Tile size 48 px is too small for this pix2pix model: its tiles overlap by 24 px, so use at least 64 px, "
        "or 0 to choose automatically"]
    assert not (tmp_path / "out.tif").exists()
    assert blending.tile_size_problem(0, "cpu", read_model_info(str(exported))) is None


def test_unknown_model_and_wrong_architecture_on_resume_are_explained(dataset, uninterrupted, dsen2cr_checkpoint,
                                                                      tmp_path, capsys):
    assert train.main(["--model", "unet"]) == 1
    assert capsys.readouterr().err.strip() == "error: model must be one of dsen2cr, pix2pix, not 'unet'"
    pix2pix_checkpoint = uninterrupted / "checkpoints" / "last.pt"
    assert train.main(["--set", f"data={dataset}", "--set", f"out_dir={tmp_path / 'a'}", "--set", "num_workers=0",
                       "--resume", str(pix2pix_checkpoint)]) == 1
    assert capsys.readouterr().err.strip() == (
        f"error: Cannot resume from {pix2pix_checkpoint}: it holds a pix2pix network, but this run trains DSen2-CR; "
        "resume it with --model pix2pix (model: pix2pix in the config), or start a new run without --resume")
    assert train.main(_settings(dataset, tmp_path / "b") + ["--resume", str(dsen2cr_checkpoint)]) == 1
    assert capsys.readouterr().err.strip() == (
        f"error: Cannot resume from {dsen2cr_checkpoint}: it holds a DSen2-CR network, but this run trains pix2pix; "
        "resume it with --model dsen2cr (model: dsen2cr in the config), or start a new run without --resume")
    assert train.main(_settings(dataset, tmp_path / "c", "crop=40")) == 1
    assert capsys.readouterr().err.strip() == (
        "error: crop 40 is not a multiple of 16 px, which a U-Net of unet_depth 4 needs (each level halves the "
        "input); use a multiple of 16, or a smaller unet_depth")
    assert train.main(["--model", "pix2pix", "--loss", "carl"]) == 1
    assert capsys.readouterr().err.strip() == "error: loss 'carl' does not train pix2pix: use cgan"


def test_the_pix2pix_config_file_trains_the_paper_baseline():
    from training.config import load_config
    config = load_config(str(REPO / "training" / "configs" / "pix2pix.yaml"))
    assert (config.model, config.unet_depth, config.num_features, config.loss, config.l1_weight) == (
        "pix2pix", 8, 64, "cgan", 100.0)
    assert (config.learning_rate, config.crop) == (2e-4, 256)
    generator = train.build(train.architecture(config))
    assert generator.tile_multiple == 256 and generator.receptive_field_radius == 511
    assert sum(p.numel() for p in generator.parameters()) == 54_447_309  # Isola et al.'s 256 px U-Net, 15 inputs
    discriminator = pix2pix.PatchDiscriminator(15 + 13)
    assert discriminator(torch.zeros(1, 15, 256, 256), torch.zeros(1, 13, 256, 256)).shape == (1, 1, 30, 30)
    # One logit sees a 70 x 70 px patch: the PatchGAN of the paper.
    condition = torch.zeros(1, 15, 128, 128, requires_grad=True)
    discriminator.eval()(condition, torch.zeros(1, 13, 128, 128))[0, 0, 7, 7].backward()
    rows = torch.nonzero(condition.grad.abs().sum(dim=(0, 1, 3)))
    assert int(rows.max() - rows.min()) + 1 == 70


def _readme_block(heading: str):
    """The commands of the first ``sh`` block after ``heading`` in the README."""
    text = (REPO / "README.md").read_text()
    block = text[text.index(heading):].split("```sh\n", 1)[1].split("```", 1)[0]
    return [line for line in block.splitlines() if line and not line.startswith("#")]


def test_the_readme_pix2pix_commands_run_as_written(dataset, dsen2cr_checkpoint, tmp_path):
    """The README's three pix2pix lines, run from a fresh folder as a user would; only the dataset path, the
    process count and the network's size are made small (the data is tiny, the machine has 2 cores)."""
    import shlex
    commands = _readme_block("### pix2pix, the paper's baseline")
    assert [shlex.split(line)[0:3] for line in commands] == [
        [".venv/bin/torchrun", "--nproc_per_node=4", "-m"], [".venv/bin/python", "-m", "training.evaluate"],
        [".venv/bin/python", "-m", "training.export_onnx"]]
    (tmp_path / "runs" / "dsen2cr_carl" / "checkpoints").mkdir(parents=True)
    shutil.copy(dsen2cr_checkpoint, tmp_path / "runs" / "dsen2cr_carl" / "checkpoints" / "last.pt")
    small = [item for setting in TINY[:-1] + ["epochs=1"] for item in ("--set", setting)]
    outputs = []
    for line in commands:
        words = [word.replace(".venv/bin/", f"{Path(sys.executable).parent}/")
                 .replace("training/configs/", f"{REPO}/training/configs/").replace("/data/sen12mscr", str(dataset))
                 for word in shlex.split(line)]
        if words[1] == "--nproc_per_node=4":
            words[1:2] = ["--nproc_per_node=2", "--master_addr=127.0.0.1", f"--master_port={free_port()}"]
            words += small
        result = subprocess.run(words, cwd=tmp_path, capture_output=True, text=True, timeout=300,
                                env=dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(REPO)))
        assert result.returncode == 0, (line, result.stderr[-2000:])
        outputs.append(result.stdout)
    assert (tmp_path / "runs" / "pix2pix" / "checkpoints" / "last.pt").is_file()
    assert "| pix2pix (test, 1 patches) |" in outputs[1] and "| DSen2-CR (test, 1 patches) |" in outputs[1]
    info = read_model_info(str(tmp_path / "pix2pix.onnx"))
    assert (info.architecture, info.tile_multiple, info.blend_overlap) == ("pix2pix", 16, pix2pix.BLEND_OVERLAP)
