"""onnxruntime sessions for DSen2-CR models: provider choice, caching, dtype.

Providers are tried in the order TensorRT, CUDA, CPU (those this
onnxruntime build offers). The provider that actually runs is read back from
the session, because onnxruntime silently falls back to CPU when a GPU
provider fails to load (missing CUDA or cuDNN libraries, for instance).
"""

import ctypes
import ctypes.util
import gc
import importlib.util
import os
import tempfile
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from types import ModuleType
from typing import TYPE_CHECKING, Callable, List, Optional, Tuple, Union

import numpy as np

if TYPE_CHECKING:
    import onnxruntime

from . import winograd, workers
from .dependencies import GPU_RUNTIME_PACKAGES, import_onnxruntime, install_command, python_executable
from .memory import says_out_of_memory
from .model_info import ModelInfo, unloadable_model_message
from .progress import CoreError, first_line

GPU_PROVIDERS = ("TensorrtExecutionProvider", "CUDAExecutionProvider")
CPU_PROVIDER = "CPUExecutionProvider"
#: Options of onnxruntime's CUDA provider (strings, as onnxruntime takes them). NHWC
#: convolutions ran DSen2-CR 17% faster in fp32 and 27% in fp16 on an H100 (onnxruntime-gpu
#: 1.31.1, 2026-11-25, benchmarks/bench_gpu_engine.py).
CUDA_PROVIDER_OPTIONS = {"prefer_nhwc": "1"}
#: Sessions kept open at once (each holds the weights, up to ~80 MB for the full network).
SESSION_CACHE_SIZE = 2
#: Cached sessions unused for this long are released (their weights and memory arenas).
SESSION_IDLE_SECONDS = 300


class OutOfMemory(CoreError):
    """onnxruntime could not allocate memory for a run; the engine names a tile size that fits."""


#: Install the GPU build (it replaces onnxruntime: uninstall that first).
GPU_INSTALL_HINT = (f"{python_executable()} -m pip uninstall onnxruntime, then {install_command(GPU_RUNTIME_PACKAGES)} "
                    "(an NVIDIA GPU with the CUDA and cuDNN versions that onnxruntime-gpu release requires)")
GPU_MISSING_MESSAGE = (
    "Device 'gpu' was requested but this onnxruntime offers no GPU provider (it has: {available}). "
    f"Install onnxruntime-gpu into QGIS's Python: {GPU_INSTALL_HINT}; or choose device 'auto' or 'cpu'")
GPU_FAILED_MESSAGE = (
    "Device 'gpu' was requested and onnxruntime offers {wanted}, but it fell back to {actual} "
    "(the CUDA or cuDNN libraries could not be loaded); check the NVIDIA driver and the CUDA and cuDNN "
    "versions your onnxruntime-gpu release requires, or choose device 'cpu'")


def choose_providers(device: str) -> List[str]:
    """Execution providers to try for ``device`` (``"auto"``, ``"gpu"`` or ``"cpu"``), best first."""
    available = import_onnxruntime().get_available_providers()
    if device == "cpu":
        return [CPU_PROVIDER]
    gpu = [name for name in GPU_PROVIDERS if name in available
           and (name != "TensorrtExecutionProvider" or _tensorrt_installed())]
    if device == "gpu" and not gpu:
        raise CoreError(GPU_MISSING_MESSAGE.format(available=", ".join(available)))
    if device not in ("auto", "gpu"):
        raise CoreError(f"Unknown device '{device}'; use 'auto', 'gpu' or 'cpu'")
    return gpu + [CPU_PROVIDER]


_cuda_libraries_preloaded = False


def _preload_cuda_libraries(ort: ModuleType) -> None:
    """Load the CUDA and cuDNN libraries of pip's nvidia-* packages, where onnxruntime can (1.21 and later).

    Without it, onnxruntime-gpu finds only system-wide CUDA installs; the
    libraries pip installs beside it are not on the loader's path.
    """
    global _cuda_libraries_preloaded
    if _cuda_libraries_preloaded or not hasattr(ort, "preload_dlls"):
        return
    _cuda_libraries_preloaded = True
    try:
        ort.preload_dlls()
    except Exception:  # missing libraries: the session falls back to CPU and the log says why
        pass


def gpu_note(device: str, session: "ModelSession") -> str:
    """Why ``session`` runs on the CPU although ``device`` allowed a GPU; "" when it does not, or for "cpu"."""
    if device == "cpu" or session.provider in GPU_PROVIDERS:
        return ""
    if not any(name in import_onnxruntime().get_available_providers() for name in GPU_PROVIDERS):
        return f"No GPU used: this onnxruntime has no GPU provider. For an NVIDIA GPU: {GPU_INSTALL_HINT}"
    return ("No GPU used: onnxruntime offers a GPU provider but fell back to the CPU (the CUDA or cuDNN "
            "libraries could not be loaded); check the NVIDIA driver and the CUDA and cuDNN versions your "
            "onnxruntime-gpu release requires")


def _tensorrt_installed() -> bool:
    """Whether TensorRT's libraries can be found.

    onnxruntime-gpu lists the TensorRT provider whenever it was built with it;
    without TensorRT installed, trying it prints a page of errors before
    onnxruntime falls back to CUDA.
    """
    return (ctypes.util.find_library("nvinfer") is not None
            or any(importlib.util.find_spec(name) is not None for name in ("tensorrt", "tensorrt_libs")))


def device_kind(provider: str) -> str:
    """``"gpu"`` for TensorRT and CUDA, ``"cpu"`` otherwise (used to size tiles)."""
    return "gpu" if provider in GPU_PROVIDERS else "cpu"


@dataclass
class ModelSession:
    """An onnxruntime session on a DSen2-CR model.

    ``run`` takes and returns float32 ``(N, C, H, W)`` arrays whatever the
    model's own input type (float16 models are fed float16).
    """

    session: "onnxruntime.InferenceSession"
    path: str
    provider: str
    input_name: str
    output_name: str
    input_channels: int
    input_dtype: type
    #: Convolutions running as Winograd F(4x4, 3x3) (:mod:`.winograd`); 0: all direct.
    winograd_layers: int = 0
    #: Memory onnxruntime reads in place (the Winograd filters and the OrtValues over them):
    #: it must live as long as the session.
    external_buffers: tuple = ()

    @property
    def convolutions(self) -> str:
        """How the 3x3 convolutions run, for the log."""
        return f"Winograd F(4x4, 3x3), {self.winograd_layers} layers" if self.winograd_layers else "direct"

    @property
    def batch_limit(self) -> Optional[int]:
        """Tiles per ``session.run`` the model accepts (``None``: any); :meth:`run` splits larger batches."""
        return 1 if self.winograd_layers else None

    def model_info(self) -> ModelInfo:
        """The model's DSen2-CR metadata, read from this session (no second load of the weights).

        Raises :class:`CoreError` when the model carries no usable metadata.
        """
        props = dict(self.session.get_modelmeta().custom_metadata_map)
        return ModelInfo.from_metadata_props(props, source=os.path.basename(self.path))

    @property
    def output_channels(self) -> Optional[int]:
        """Channels of the model's output as its graph declares them (None where not fixed)."""
        shape = self.session.get_outputs()[0].shape
        return shape[1] if len(shape) == 4 and isinstance(shape[1], int) else None

    def run(self, batch: np.ndarray) -> np.ndarray:
        """Network input ``(N, C, H, W)`` float32 -> output ``(N, 13, H, W)`` float32.

        Raises :class:`OutOfMemory` when onnxruntime cannot allocate (CPU or GPU memory), and
        :class:`CoreError` naming the model for any other failure of the run.
        """
        if self.batch_limit and len(batch) > self.batch_limit:
            return np.concatenate([self.run(batch[start:start + self.batch_limit])
                                   for start in range(0, len(batch), self.batch_limit)])
        feed: np.ndarray = np.ascontiguousarray(batch, dtype=self.input_dtype)
        try:
            output = self.session.run([self.output_name], {self.input_name: feed})[0]
        except MemoryError:
            self._forget()
            raise OutOfMemory("the Python process ran out of memory") from None
        except Exception as exc:  # onnxruntime raises its own exception types (Fail, RuntimeException, ...)
            first = first_line(exc)
            if says_out_of_memory(str(exc)):
                self._forget()
                raise OutOfMemory(first[:200]) from None
            raise CoreError(f"The model {os.path.basename(self.path)} failed to run on {self.provider}: "
                            f"{first[:300]}; check that it is a DSen2-CR export") from None
        _used_now()
        return output.astype(np.float32, copy=False)

    def _forget(self) -> None:
        """Leave the cache: after running out of memory the session's arena holds what the failed run took,
        and the run the user retries with smaller tiles would find that memory gone. It is freed with the
        session, when the failed run lets go of it."""
        with _cache_lock:
            for key in [key for key, cached in _cache.items() if cached is self]:
                del _cache[key]


_cache: "OrderedDict[Tuple, ModelSession]" = OrderedDict()
_cache_lock = threading.Lock()


def _provider_options(name: str, gpu_index: int) -> dict:
    if name == "TensorrtExecutionProvider":
        # Building a TensorRT engine takes minutes; keep it between runs.
        cache = os.path.join(tempfile.gettempdir(), "qgis_cloudremoval_trt")
        return {"trt_engine_cache_enable": True, "trt_engine_cache_path": cache,
                "device_id": str(gpu_index)}
    if name == "CUDAExecutionProvider":
        return dict(CUDA_PROVIDER_OPTIONS, device_id=str(gpu_index))
    return {}


def _session_options(ort: ModuleType) -> "onnxruntime.SessionOptions":
    """Session options that keep onnxruntime's own log to errors."""
    options = ort.SessionOptions()
    options.log_severity_level = 3
    return options


def open_session(model_path: str, device: str = "auto", fast_convolutions: bool = True, *,
                 gpu_index: int = 0) -> ModelSession:
    """A (cached) session on ``model_path`` for ``device``.

    ``gpu_index`` chooses the GPU (CUDA device number): several scenes
    running at once in one process (a Dask worker with several GPUs) each
    take their own. The CPU provider keeps onnxruntime's thread count (one
    per physical core): with other counts its convolutions may sum in
    another order, and a result can differ by 1 DN in a few pixels.

    On the CPU provider alone, with ``fast_convolutions`` and the ``onnx``
    package installed, the wide 3x3 convolutions of a float32 model run as
    Winograd F(4x4, 3x3) (:mod:`.winograd`; full network, measured 1.76x per
    tile and 1.57x for a whole scene at the engine's tile sizes, the same
    outputs to about 1e-5). Sessions are cached per (model
    path, modification time, size, provider list, convolutions, GPU),
    so a re-exported model is reloaded. Raises :class:`CoreError`
    when onnxruntime is missing, no GPU provider exists for ``device="gpu"``
    or a GPU provider failed to load, or the file is not a loadable model.
    """
    ort = import_onnxruntime()
    providers = choose_providers(device)
    path = os.path.abspath(model_path)
    try:
        stat = os.stat(path)
    except OSError:
        raise CoreError(f"Model file not found: {model_path}") from None
    key = (path, stat.st_mtime_ns, stat.st_size, tuple(providers), fast_convolutions, gpu_index)
    with _cache_lock:
        if key in _cache:
            _cache.move_to_end(key)
            return _cache[key]
    options = _session_options(ort)
    if providers == [CPU_PROVIDER]:
        # onnxruntime plans one block for a run's whole memory pattern after the first run and
        # keeps the arena of that first run as well: the resident memory of every run after the
        # first grew by 70 % (direct, 452 px tile) and 60 % (Winograd, 324 px), for no speed gained.
        options.enable_mem_pattern = False
    model: Union[str, bytes] = path
    rewritten: Optional[winograd.Rewritten] = None
    values: list = []
    if fast_convolutions and providers == [CPU_PROVIDER] and hasattr(options, "add_external_initializers"):
        rewritten = _winograd_model(path)  # (that option exists from onnxruntime 1.15 on)
        if rewritten is not None:
            model = rewritten.model
            values = [ort.OrtValue.ortvalue_from_numpy(array) for array in rewritten.filters.values()]
            options.add_external_initializers(list(rewritten.filters), values)
    session, actual = _create_session(ort, model, options, providers, device, path, gpu_index)
    model_input = session.get_inputs()[0]
    input_channels = model_input.shape[1] if len(model_input.shape) == 4 else None
    if not isinstance(input_channels, int):
        raise CoreError(f"{os.path.basename(path)} does not take (N, C, H, W) input with a fixed channel "
                        f"count (its input is {model_input.shape}); export it with 'python -m training.export_onnx'")
    dtype = np.float16 if model_input.type == "tensor(float16)" else np.float32
    model_session = ModelSession(session, path, actual, model_input.name, session.get_outputs()[0].name,
                                 input_channels, dtype, rewritten.layers if rewritten else 0,
                                 (rewritten.filters, values) if rewritten else ())
    with _cache_lock:
        _cache[key] = model_session
        while len(_cache) > SESSION_CACHE_SIZE:
            _cache.popitem(last=False)
    return model_session


def plain_session(model_path: str, device: str = "auto", *,
                  gpu_index: int = 0) -> Tuple["onnxruntime.InferenceSession", str]:
    """An onnxruntime session on any ONNX model (a helper network such as the cloud detector), with the
    provider choice of :func:`open_session`: ``(session, provider that runs)``. Not cached."""
    ort = import_onnxruntime()
    providers = choose_providers(device)
    return _create_session(ort, model_path, _session_options(ort), providers, device, model_path, gpu_index)


def _create_session(ort: ModuleType, model: Union[str, bytes], options: "onnxruntime.SessionOptions",
                    providers: List[str], device: str, path: str,
                    gpu_index: int) -> Tuple["onnxruntime.InferenceSession", str]:
    """The session on ``model`` (a path or bytes) and the provider that actually runs, checked against ``device``."""
    if providers[0] in GPU_PROVIDERS:
        _preload_cuda_libraries(ort)
    try:
        session = ort.InferenceSession(model, options,
                                       providers=[(name, _provider_options(name, gpu_index)) for name in providers])
    except Exception as exc:  # onnxruntime raises its own exception types
        raise CoreError(unloadable_model_message(path, exc, providers[0])) from None
    actual = session.get_providers()[0]
    if device == "gpu" and actual not in GPU_PROVIDERS:
        raise CoreError(GPU_FAILED_MESSAGE.format(wanted=", ".join(providers[:-1]), actual=actual))
    return session, actual


def _winograd_model(path: str) -> Optional[winograd.Rewritten]:
    """The model rewritten for the CPU, or ``None`` (no onnx package, nothing to rewrite, unreadable file)."""
    try:
        with open(path, "rb") as model_file:
            return winograd.rewrite(model_file.read())
    except Exception:  # not ONNX, or a graph the rewrite does not understand: the plain model decides
        return None


def clear_session_cache() -> None:
    """Forget all cached sessions and give their memory back (weights, arenas); the plugin calls it on unload."""
    with _cache_lock:
        _cache.clear()
    gc.collect()  # a session can sit in a reference cycle (tracebacks, closures) until the collector runs
    return_freed_memory()


_last_used = 0.0
_idle_watch: Optional[threading.Thread] = None


def _used_now() -> None:
    """Note a session run; a watcher releases the cache :data:`SESSION_IDLE_SECONDS` after the last one."""
    global _last_used, _idle_watch
    _last_used = time.monotonic()
    with _cache_lock:
        if _idle_watch is None or not _idle_watch.is_alive():
            watch = threading.Thread(target=_release_when_idle, name="cloudremoval-idle-sessions", daemon=True)
            try:
                watch.start()
            except RuntimeError as exc:  # at a memory or thread limit: the sessions stay until the next run
                if not workers.is_thread_start_failure(exc):
                    raise
            else:
                _idle_watch = watch


def _release_when_idle() -> None:
    while True:
        left = _last_used + SESSION_IDLE_SECONDS - time.monotonic()
        if left <= 0:
            clear_session_cache()
            return
        time.sleep(left)


def _load_malloc_trim() -> Optional[Callable[[int], int]]:
    """glibc's ``malloc_trim``, which gives freed heap memory back to the system; None elsewhere."""
    try:
        return ctypes.CDLL("libc.so.6").malloc_trim
    except (OSError, AttributeError):  # not glibc: nothing to do
        return None


_malloc_trim = _load_malloc_trim()


def return_freed_memory() -> None:
    """Give freed heap pages back to the system.

    Tiles are allocated in the read thread and freed in others; glibc keeps
    such freed pages in per-thread arenas, and without a trim the resident
    size creeps up with the number of tiles rather than staying at one tile's.
    """
    if _malloc_trim is not None:
        _malloc_trim(0)
