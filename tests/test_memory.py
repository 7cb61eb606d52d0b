"""What a run may allocate: the machine's MemAvailable, control-group limits and ulimit -v, least first."""

import os
import re
import resource
import subprocess
import sys
from pathlib import Path

import pytest

from qgis_cloudremoval.core import memory, workers

REPO = Path(__file__).resolve().parents[1]
GIB = 1 << 30


def _meminfo() -> dict:
    with open("/proc/meminfo") as meminfo:
        return {line.split(":")[0]: int(line.split()[1]) * 1024 for line in meminfo}


def test_the_system_share_is_memavailable_not_free_pages():
    fields = _meminfo()
    # MemAvailable moves between the two reads; both reads see the page cache as available.
    assert abs(memory.system_available() - fields["MemAvailable"]) < 256 << 20
    assert memory.system_available() >= fields["MemFree"] - (256 << 20)


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def test_a_cgroup_v2_limit_leaves_limit_minus_usage_plus_inactive_cache(tmp_path):
    """A SLURM job inside a user slice: the job's 4 GiB limit counts, not the slice's looser 16 GiB."""
    _write(tmp_path / "proc_cgroup", "0::/system.slice/slurm/job_42\n")
    root = tmp_path / "cgroup"
    _write(root / "memory.max", "max\n")  # no limit at the root
    _write(root / "system.slice/slurm/memory.max", f"{16 * GIB}\n")
    _write(root / "system.slice/slurm/memory.current", f"{10 * GIB}\n")
    _write(root / "system.slice/slurm/memory.stat", "anon 100\nfile 200\ninactive_file 0\n")
    job = root / "system.slice/slurm/job_42"
    _write(job / "memory.max", f"{4 * GIB}\n")
    _write(job / "memory.current", f"{GIB}\n")
    _write(job / "memory.stat", f"anon {GIB}\nactive_file 5\ninactive_file {256 << 20}\n")
    assert memory.cgroup_headroom(str(tmp_path / "proc_cgroup"), str(root)) == 3 * GIB + (256 << 20)
    # a tighter ancestor wins
    _write(root / "system.slice/slurm/memory.current", f"{15 * GIB}\n")
    assert memory.cgroup_headroom(str(tmp_path / "proc_cgroup"), str(root)) == GIB


def test_inside_a_container_the_mounted_root_is_the_containers_group(tmp_path):
    """Docker --memory 2g with cgroup v1: /proc/self/cgroup names the host's path, which the container
    does not see; its own group is the mount's root."""
    _write(tmp_path / "proc_cgroup", "12:cpu,cpuacct:/docker/abc\n4:memory:/docker/abc\n0::/docker/abc\n")
    root = tmp_path / "cgroup"
    _write(root / "memory/memory.limit_in_bytes", f"{2 * GIB}\n")
    _write(root / "memory/memory.usage_in_bytes", f"{GIB // 2}\n")
    _write(root / "memory/memory.stat", f"inactive_file 7\ntotal_inactive_file {GIB // 4}\n")
    assert memory.cgroup_headroom(str(tmp_path / "proc_cgroup"), str(root)) == GIB + GIB // 2 + GIB // 4


def test_no_limit_anywhere_gives_none(tmp_path):
    _write(tmp_path / "proc_cgroup", "4:memory:/user\n0::/user.slice\n")
    root = tmp_path / "cgroup"
    _write(root / "user.slice/memory.max", "max\n")
    _write(root / "user.slice/memory.current", f"{GIB}\n")
    _write(root / "memory/user/memory.limit_in_bytes", "9223372036854771712\n")  # v1's "unlimited"
    _write(root / "memory/user/memory.usage_in_bytes", f"{GIB}\n")
    assert memory.cgroup_headroom(str(tmp_path / "proc_cgroup"), str(root)) is None
    assert memory.cgroup_headroom(str(tmp_path / "missing"), str(root)) is None


ADDRESS_SPACE_CHILD = """
from qgis_cloudremoval.core import memory, tiling
mapped = next(int(line.split()[1]) * 1024 for line in open("/proc/self/status") if line.startswith("VmSize:"))
print(memory.address_space_headroom(), mapped, memory.available_memory(),
      tiling.largest_fitting_tile("cpu", 34, 256, 15, winograd=True))
print(tiling.tile_size_problem(4096, "cpu", 34, 256, 15, winograd=True))
"""


def _address_space_child(limit=None):
    def set_limit():
        if limit:
            resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    done = subprocess.run([sys.executable, "-c", ADDRESS_SPACE_CHILD], capture_output=True, text=True, cwd=REPO,
                          preexec_fn=set_limit, check=True, timeout=120)
    numbers, problem = done.stdout.splitlines()
    return [int(value) if value != "None" else None for value in numbers.split()] + [problem]


def test_under_ulimit_v_a_run_may_take_what_the_address_space_leaves():
    headroom, mapped, available, largest_tile, problem = _address_space_child(3 * GIB)
    assert re.fullmatch(r"Tile size 4096 px needs about \d+\.\d GB for this model, more than the (\d\.\d) GB left "
                        r"under this process's address-space limit \(ulimit -v\); use at most \d+ px, or 0 to choose "
                        r"automatically", problem), problem
    assert abs(headroom - (3 * GIB - mapped)) < 16 << 20
    assert available <= 3 * GIB - mapped + (16 << 20)
    unlimited_headroom, _, _, unlimited_tile, _ = _address_space_child()
    assert unlimited_headroom is None
    assert largest_tile < unlimited_tile  # the tile size follows the limit


LOAD_CHILD = """
import os
import re
import resource
from osgeo import gdal
from qgis_cloudremoval.core import dependencies
from qgis_cloudremoval.core.progress import CoreError
mapped = next(int(line.split()[1]) * 1024 for line in open("/proc/self/status") if line.startswith("VmSize:"))
room = mapped + (8 << 20)  # less than onnxruntime's library takes to map
resource.setrlimit(resource.RLIMIT_AS, (room, room))
try:
    dependencies.import_onnxruntime()
except CoreError as exc:
    print(exc)
"""


def test_onnxruntime_installed_but_without_memory_to_load_is_not_called_missing():
    """Under a tight ulimit -v, onnxruntime's library cannot be mapped: "not installed" would send the user to pip."""
    done = subprocess.run([sys.executable, "-c", LOAD_CHILD], capture_output=True, text=True, cwd=REPO, timeout=120)
    assert re.fullmatch(r"Not enough memory to load onnxruntime \(.*onnxruntime.*: failed to map segment from shared "
                        r"object\); " + re.escape(memory.LIMIT_ADVICE) + "\n", done.stdout), done.stdout + done.stderr


AT_THE_LIMIT_CHILD = """
import resource, sys
from osgeo import gdal, gdal_array  # gdal_array: loaded before the limit, as in a run
gdal.UseExceptions() if sys.argv[2] == "exceptions" else gdal.DontUseExceptions()
from qgis_cloudremoval.core import workers
from qgis_cloudremoval.core.gdal_io import read_array
from qgis_cloudremoval.core.progress import CoreError
dataset = gdal.Open(sys.argv[1])
band = dataset.GetRasterBand(1)
mapped = next(int(line.split()[1]) * 1024 for line in open("/proc/self/status") if line.startswith("VmSize:"))
room = mapped + (64 << 10)  # less than a thread's stack or one GDAL block takes
resource.setrlimit(resource.RLIMIT_AS, (room, room))
for attempt in (lambda: read_array(band, sys.argv[1], "Sentinel-2 raster", 0, 0, 4, 4),
                lambda: workers.started_pools("test")):
    try:
        attempt()
        print("no error")
    except CoreError as exc:
        print(exc)
"""


@pytest.mark.parametrize("mode", ("exceptions", "return codes"))
def test_at_the_memory_limit_reads_and_threads_say_so(mode, tmp_path):
    """Not "the file may be damaged" for a read that could not allocate, nor an unexpected error for a thread."""
    from osgeo import gdal
    path = str(tmp_path / "s2.tif")
    options = ["TILED=YES", "BLOCKXSIZE=256", "BLOCKYSIZE=256", "COMPRESS=ZSTD"]
    dataset = gdal.GetDriverByName("GTiff").Create(path, 512, 512, 1, gdal.GDT_UInt16, options)
    dataset.GetRasterBand(1).Fill(1000)
    dataset = None
    done = subprocess.run([sys.executable, "-c", AT_THE_LIMIT_CHILD, path, mode], capture_output=True, text=True,
                          cwd=REPO, timeout=120)
    read, thread = done.stdout.splitlines()
    assert re.fullmatch(rf"Not enough memory to read the Sentinel-2 raster {re.escape(path)} \(.+\); "
                        + re.escape(memory.LIMIT_ADVICE), read), done.stdout + done.stderr
    assert thread == workers.THREAD_LIMIT_MESSAGE


def _own_group_folder():
    """Where a child control group with a memory limit can be made for this test, with the files to use:
    (folder, limit file, procs file), or None (not root, or no writable memory controller)."""
    for line in Path("/proc/self/cgroup").read_text().splitlines():
        hierarchy, controllers, path = line.split(":", 2)
        if "memory" in controllers.split(","):
            folder = Path(memory.CGROUP_ROOT) / "memory" / path.lstrip("/")
            limit = "memory.limit_in_bytes"
        elif hierarchy == "0" and controllers == "":
            folder = Path(memory.CGROUP_ROOT) / path.lstrip("/")
            subtree = folder / "cgroup.subtree_control"
            if not (subtree.exists() and "memory" in subtree.read_text().split()):
                continue
            limit = "memory.max"
        else:
            continue
        if folder.is_dir() and os.access(folder, os.W_OK):
            return folder, limit
    return None


GROUP_CHILD = """
from qgis_cloudremoval.core import memory
print(memory.cgroup_headroom(), memory.available_text())
"""


def test_a_real_control_group_limit_is_read(tmp_path):
    """The kernel's own files: this test's child runs in a new group limited to 2 GiB (needs root and a writable
    memory controller, as on the development machine; skipped elsewhere)."""
    found = _own_group_folder()
    if found is None:
        pytest.skip("no writable memory control group here (not root, or the controller is not delegated)")
    parent, limit_file = found
    group = parent / f"cloudremoval-test-{os.getpid()}"
    try:
        group.mkdir()
        (group / limit_file).write_text(str(2 * GIB))
    except OSError as exc:
        pytest.skip(f"cannot make a control group here ({exc})")
    try:
        done = subprocess.run(["sh", "-c", f'echo $$ > "{group}/cgroup.procs" && exec "{sys.executable}" -c "$0"',
                               GROUP_CHILD], capture_output=True, text=True, cwd=REPO, timeout=120, check=True)
    finally:
        group.rmdir()
    headroom, text = done.stdout.split(" ", 1)
    # 2 GiB less what the child itself uses (an interpreter and numpy: well under 200 MB)
    assert 2 * GIB - (200 << 20) < int(headroom) <= 2 * GIB
    assert re.fullmatch(r"[12]\.\d GB left under this process's memory limit \(its control group\)\n", text), text


MODEL_LOAD_CHILD = """
import resource, sys
import onnxruntime  # loaded before the limit, as in a run
from qgis_cloudremoval.core import runtime
from qgis_cloudremoval.core.model_info import read_model_info
from qgis_cloudremoval.core.progress import CoreError
mapped = next(int(line.split()[1]) * 1024 for line in open("/proc/self/status") if line.startswith("VmSize:"))
room = mapped + (1 << 20)  # far less than the model's weights
resource.setrlimit(resource.RLIMIT_AS, (room, room))
for attempt in (lambda: read_model_info(sys.argv[1]), lambda: runtime.open_session(sys.argv[1], "cpu")):
    try:
        attempt()
        print("MESSAGE no error")
    except CoreError as exc:
        print("MESSAGE", exc)  # onnxruntime prints its own banners on stdout too
"""


def test_a_model_without_the_memory_to_load_is_not_called_unreadable():
    """Reading the metadata and opening the session: "not a readable ONNX model" would blame a sound file."""
    from tiny_models import make_tiny_model
    model = make_tiny_model(num_blocks=2, num_features=256)  # about 9 MB of weights
    done = subprocess.run([sys.executable, "-c", MODEL_LOAD_CHILD, str(model)], capture_output=True, text=True,
                          cwd=REPO, timeout=120)
    lines = [line[len("MESSAGE "):] for line in done.stdout.splitlines() if line.startswith("MESSAGE ")]
    assert len(lines) == 2, done.stdout + done.stderr
    for line, where in zip(lines, ("", " on CPUExecutionProvider")):
        assert re.fullmatch(rf"Not enough memory to load {re.escape(model.name + where)} \(.+\); "
                            + re.escape(memory.LIMIT_ADVICE), line), line
