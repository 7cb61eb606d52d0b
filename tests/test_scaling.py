"""Network input scaling against the authors' formulas, for every input type and into given arrays."""

import numpy as np
import pytest

from qgis_cloudremoval.core.model_info import ModelInfo
from qgis_cloudremoval.core.scaling import optical_to_model, sar_to_model

INFO = ModelInfo()


@pytest.mark.parametrize("dtype", [np.uint16, np.int16, np.float32, np.float64])
def test_optical_is_clipped_to_0_10000_dn_and_divided_by_2000(dtype):
    rng = np.random.default_rng(0)
    dn = (rng.random((13, 9, 7)) * 14000 - 2000).clip(np.iinfo(np.uint16).min if dtype == np.uint16 else -3000)
    dn = dn.astype(dtype)
    expected = np.minimum(np.maximum(dn.astype(np.float64), 0), 10000) / 2000
    result = optical_to_model(dn, INFO)
    assert result.dtype == np.float32
    np.testing.assert_allclose(result, expected, rtol=1e-6)  # float32 arithmetic
    # into a strided view of a larger batch array, as the data loader does
    batch = np.full((2, 15, 9, 7), -1, dtype=np.float32)
    optical_to_model(dn[..., ::-1], INFO, out=batch[1, :13])
    np.testing.assert_array_equal(batch[1, :13], result[..., ::-1])
    assert (batch[0] == -1).all() and (batch[1, 13:] == -1).all()


def test_sar_bands_are_clipped_to_their_db_ranges_and_mapped_to_0_2():
    db = np.array([[[-30.0, -25.0, -12.5, 0.0, 3.0]], [[-40.0, -32.5, -16.25, 0.0, 1.0]]], dtype=np.float32)
    expected = np.array([[[0, 0, 1, 2, 2]], [[0, 0, 1, 2, 2]]], dtype=np.float32)
    np.testing.assert_allclose(sar_to_model(db, INFO), expected, atol=1e-6)
    out = np.zeros((2, 1, 5), dtype=np.float32)
    assert sar_to_model(db, INFO, out=out) is out
    np.testing.assert_allclose(out, expected, atol=1e-6)
