"""How much memory a run may take: the least that the system, the process's control group and its
address-space limit leave.

A machine's ``MemAvailable`` is not what a process may use inside a container (Docker ``--memory``),
a systemd unit with ``MemoryMax`` or a cluster job (SLURM's cgroup limits), nor under ``ulimit -v``.
There the kernel stops the process (or an allocation fails) long before the machine runs out, so an
automatic tile size sized by the machine alone would not fit.
"""

import os
from typing import List, Optional, Tuple

MEMINFO = "/proc/meminfo"
PROC_CGROUP = "/proc/self/cgroup"
CGROUP_ROOT = "/sys/fs/cgroup"
PROC_STATUS = "/proc/self/status"
#: A control-group limit at or above this many bytes is no limit (cgroup v1 writes "unlimited" as
#: the largest page-aligned 64-bit number).
NO_LIMIT = 1 << 60
#: What to do when an allocation failed.
LIMIT_ADVICE = ("close other programs, or raise this process's memory limit (ulimit -v, or a container's or "
                "job's limit)")
#: Words of the messages of a failed allocation: GDAL and its codecs ("cannot allocate 131072 bytes",
#: "ZSTD_compressStream(): Allocation error : not enough memory"), onnxruntime and CUDA, and the
#: dynamic loader that could not map a library ("failed to map segment from shared object").
OUT_OF_MEMORY_WORDS = ("cannot allocate", "out of memory", "not enough memory", "failed to allocate", "bad_alloc",
                       "cudaerrormemoryallocation", "cublas_status_alloc_failed", "cudnn_status_alloc_failed",
                       "available memory", "failed to map segment")
#: What a machine that does not say is assumed to have free, bytes.
UNKNOWN_MACHINE = 4 << 30


def says_out_of_memory(message: str) -> bool:
    """Whether an error message says an allocation failed (:data:`OUT_OF_MEMORY_WORDS`), not the input."""
    lowered = message.lower()
    return any(words in lowered for words in OUT_OF_MEMORY_WORDS)


def cannot_load_message(what: str, reason: str) -> str:
    """One line: ``what`` (a library, a model) could not be loaded for lack of memory, and what to do."""
    return f"Not enough memory to load {what} ({reason}); {LIMIT_ADVICE}"


def available_memory() -> int:
    """Bytes a run may allocate: the least of :func:`system_available`, :func:`cgroup_headroom` and
    :func:`address_space_headroom` (those that apply)."""
    return binding_limit()[0]


def binding_limit() -> Tuple[int, str]:
    """:func:`available_memory` and what sets it, in words for a message ("free on this machine", ...)."""
    limits = [(system_available(), "free on this machine"),
              (cgroup_headroom(), "left under this process's memory limit (its control group)"),
              (address_space_headroom(), "left under this process's address-space limit (ulimit -v)")]
    known = [(amount, reason) for amount, reason in limits if amount is not None]
    available, reason = min(known, key=lambda limit: limit[0])
    return max(0, available), reason


def available_text() -> str:
    """What a run may allocate, for a message: "2.5 GB left under this process's address-space limit (ulimit -v)"."""
    available, reason = binding_limit()
    return f"{available / 2**30:.1f} GB {reason}"


def system_available() -> int:
    """Bytes the system can give without swapping: ``MemAvailable`` (free pages plus reclaimable cache).

    Free pages alone would count the page cache as used, and a machine that
    has been reading files for a while looks full although it is not.
    """
    value = _field(MEMINFO, "MemAvailable:")
    if value is not None:
        return value * 1024
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):  # not Linux: assume a modest machine
        return UNKNOWN_MACHINE


def cgroup_headroom(proc_cgroup: str = PROC_CGROUP, root: str = CGROUP_ROOT) -> Optional[int]:
    """Bytes left below the memory limits of this process's control group and its ancestors, or None
    where no level has a limit.

    Each limited level leaves its limit minus its usage plus its inactive file cache (which the kernel
    reclaims before it fails an allocation); the least over the levels counts. Control groups v2
    (``memory.max``) and v1 (``memory.limit_in_bytes``) are both read.

    Args:
        proc_cgroup: the process's ``/proc/<pid>/cgroup``.
        root: where the control-group file systems are mounted.
    """
    try:
        with open(proc_cgroup) as stream:
            lines = stream.read().splitlines()
    except OSError:
        return None
    headrooms: List[int] = []
    for line in lines:
        parts = line.split(":", 2)
        if len(parts) != 3:
            continue
        hierarchy, controllers, path = parts
        if hierarchy == "0" and controllers == "":
            for mount in (root, os.path.join(root, "unified")):  # unified, or hybrid with v2 beside v1
                headrooms += _level_headrooms(mount, path, "memory.max", "memory.current", "inactive_file")
        elif "memory" in controllers.split(","):
            headrooms += _level_headrooms(os.path.join(root, "memory"), path, "memory.limit_in_bytes",
                                          "memory.usage_in_bytes", "total_inactive_file")
    return min(headrooms) if headrooms else None


def _level_headrooms(mount: str, path: str, limit_file: str, usage_file: str, inactive_key: str) -> List[int]:
    # From the process's group up to the mount's root. Inside a container the group's path names the
    # host's hierarchy, which is not mounted there: the levels that do not exist are skipped, and the
    # root, the container's own group, is read.
    headrooms = []
    mount = os.path.normpath(mount)
    folder = os.path.normpath(os.path.join(mount, path.lstrip("/")))
    while folder.startswith(mount):
        limit = _number(os.path.join(folder, limit_file))
        usage = _number(os.path.join(folder, usage_file))
        if limit is not None and limit < NO_LIMIT and usage is not None:
            inactive = _field(os.path.join(folder, "memory.stat"), inactive_key + " ") or 0
            headrooms.append(limit - usage + inactive)
        if folder == mount:
            break
        folder = os.path.dirname(folder)
    return headrooms


def address_space_headroom() -> Optional[int]:
    """Bytes of address space left under ``ulimit -v`` (``RLIMIT_AS``), or None where there is no such limit."""
    try:
        import resource  # POSIX only
    except ImportError:
        return None
    soft, _ = resource.getrlimit(resource.RLIMIT_AS)
    if soft == resource.RLIM_INFINITY:
        return None
    mapped = _field(PROC_STATUS, "VmSize:")
    return soft - (mapped or 0) * 1024


def _number(path: str) -> Optional[int]:
    """The integer a control-group file holds, or None (no file, or "max")."""
    try:
        with open(path) as stream:
            return int(stream.read().strip())
    except (OSError, ValueError):
        return None


def _field(path: str, key: str) -> Optional[int]:
    """The first number on the line of ``path`` that starts with ``key`` (``/proc`` and ``memory.stat`` files)."""
    try:
        with open(path) as stream:
            for line in stream:
                if line.startswith(key):
                    return int(line[len(key):].split()[0])
    except (OSError, ValueError, IndexError):
        pass
    return None
