"""The benchmark prepared for a lent GPU runs, here on the CPU at a small size (no timing is checked)."""

import sys
from pathlib import Path

from qgis_cloudremoval.core import runtime

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import bench_gpu_end_to_end as bench  # noqa: E402


def test_the_gpu_end_to_end_benchmark_runs_every_variant_on_a_small_scene(tmp_path):
    options = dict(runtime.CUDA_PROVIDER_OPTIONS)
    out = tmp_path / "results.md"
    assert bench.main(["--scene", "200", "--blocks", "1", "--features", "8", "--device", "cpu",
                       "--folder", str(tmp_path), "--out", str(out)]) == 0
    table = out.read_text().splitlines()
    assert table[0].startswith("DSen2-CR B=1 F=8 with SAR, engine end to end (GDAL I/O included), 200 px scene, "
                               "CPU (")
    rows = [line.split(" | ")[:3] for line in table if line.startswith("| fp")]
    assert rows == [["| fp32, NHWC (default)", "100 %", "1 of 1"], ["| fp32, NHWC (default)", "30 %", "1 of 1"]] + [
        [f"| {variant.label}", "100 %", "1 of 1"] for variant in bench.VARIANTS[1:]]
    assert any(line.startswith("bare session, one ") for line in table)
    assert runtime.CUDA_PROVIDER_OPTIONS == options  # the plugin's options are put back
    assert sorted(p.name for p in tmp_path.iterdir()) == ["results.md"]  # the scene and models are gone
