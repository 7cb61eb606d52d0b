"""Scenes on a Dask cluster: one ``dask.distributed`` task per scene.

Dask is optional (QGIS users never need it) and imported only here, when a
batch asks for a cluster. Every worker must see the scenes' files under the
same paths (a shared file system) and be able to import this package.

- ``local:N`` starts a :class:`distributed.LocalCluster` of N worker
  processes on this machine; anything else is a scheduler address.
- With ``gpus_per_worker`` G, each task asks for the worker resource
  ``GPU=1``, so a worker started with ``--resources GPU=G`` runs at most G
  scenes at once, each on a CUDA device of its own.
- On the CPU every scene uses onnxruntime's threads (one per core), as a
  single process does, so results are the same to the bit; local workers
  share the cores (benchmarks/bench_batch.py measures what that gains).
- A worker keeps its onnxruntime sessions between scenes (the engine's
  session cache lives in the worker process), so a model loads once per worker.
- When a worker dies while running a scene, the scheduler gives the scene to
  another worker, up to ``distributed.scheduler.allowed-failures`` times.
- Ctrl+C sets a Dask :class:`~distributed.Event` that the running scenes
  poll between tiles, so they stop and remove their partial files.
"""

import contextlib
import importlib.util
import logging
import os
import queue
import threading
import time
import uuid
from dataclasses import replace
from types import ModuleType
from typing import TYPE_CHECKING, Dict, Iterator, List, Optional, Tuple

from .batch import FAILED, Outcome, Progress, Scene, run_scene, scene_request
from .dependencies import install_command
from .progress import CoreError, Reporter, first_line
from .request import RemovalRequest

if TYPE_CHECKING:
    from distributed import Client, Future

DASK_PACKAGES = ("dask[distributed]",)
DASK_MISSING_MESSAGE = ("--dask needs Dask's distributed scheduler, which is not installed: "
                        f"{install_command(DASK_PACKAGES)}")
LOCAL_PREFIX = "local:"
#: Worker resource that counts GPUs (start workers with --resources GPU=N).
GPU_RESOURCE = "GPU"
#: How often a running scene asks the scheduler whether the batch was stopped, and reports progress, seconds.
STOP_POLL_SECONDS = 2.0
PROGRESS_SECONDS = 0.5
#: How long Ctrl+C waits for running scenes to stop and clean up, seconds.
STOP_WAIT_SECONDS = 60
CONNECT_TIMEOUT = "10s"


def parse_address(text: str) -> Tuple[Optional[int], str]:
    """``local:N`` -> ``(N, "")``; a scheduler address -> ``(None, address)``."""
    if text.startswith(LOCAL_PREFIX):
        count = text[len(LOCAL_PREFIX):]
        if not count.isdigit() or int(count) < 1:
            raise CoreError(f"--dask {text}: give the number of local workers, e.g. local:2")
        return int(count), ""
    if not text.strip():
        raise CoreError("--dask needs a scheduler address (tcp://host:8786) or local:N")
    return None, text


def _import_distributed() -> ModuleType:
    try:
        import distributed
    except ImportError:
        raise CoreError(DASK_MISSING_MESSAGE) from None
    return distributed


@contextlib.contextmanager
def connect(address: str, gpus_per_worker: int = 0) -> Iterator["Client"]:
    """A :class:`distributed.Client` on ``address`` (``local:N`` starts and later stops a local cluster)."""
    distributed = _import_distributed()
    workers, scheduler = parse_address(address)
    if workers is not None:
        resources = {GPU_RESOURCE: gpus_per_worker} if gpus_per_worker else None
        with distributed.LocalCluster(n_workers=workers, threads_per_worker=max(1, gpus_per_worker),
                                      processes=True, resources=resources, dashboard_address=None,
                                      silence_logs=logging.ERROR) as cluster, distributed.Client(cluster) as client:
            yield client
        return
    try:
        client = distributed.Client(scheduler, timeout=CONNECT_TIMEOUT)
    except (OSError, TimeoutError, ValueError) as exc:
        raise CoreError(f"Cannot reach the Dask scheduler at {scheduler} ({first_line(exc)}); check the address, "
                        "or use --dask local:N for workers on this machine") from None
    with client:
        _check_workers_import_us(client, scheduler)
        if gpus_per_worker:
            _check_gpu_workers(client, scheduler)
        yield client


#: The package every worker must import (it runs the scenes).
PACKAGE = __name__.split(".")[0]
CHECKOUT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
NOT_IMPORTABLE_ADVICE = (f"the scheduler and every worker load this package's tasks: start them with "
                         f"PYTHONPATH={CHECKOUT} (the checkout's root)")


def _check_workers_import_us(client: "Client", scheduler: str) -> None:
    """Refuse a cluster whose scheduler or present workers cannot import this package: Dask's scheduler
    unpacks every task, and the workers run them."""
    if client.run_on_scheduler(importlib.util.find_spec, PACKAGE) is None:
        raise CoreError(f"The Dask scheduler at {scheduler} cannot import {PACKAGE}; {NOT_IMPORTABLE_ADVICE}")
    found = client.run(importlib.util.find_spec, PACKAGE)
    lacking = sorted(worker for worker, spec in found.items() if spec is None)
    if lacking:
        raise CoreError(f"{len(lacking)} of {len(found)} workers of the Dask cluster at {scheduler} cannot import "
                        f"{PACKAGE} ({', '.join(lacking)}); {NOT_IMPORTABLE_ADVICE}")


def _check_gpu_workers(client: "Client", scheduler: str) -> None:
    workers = client.scheduler_info().get("workers", {})
    if workers and not any(worker.get("resources", {}).get(GPU_RESOURCE) for worker in workers.values()):
        raise CoreError(f"No worker of the Dask cluster at {scheduler} offers the {GPU_RESOURCE} resource, so no "
                        f"scene could start; start the workers with --resources {GPU_RESOURCE}=1 (one per GPU), "
                        "or leave out --gpus-per-worker")


def run_on_cluster(client: "Client", scenes: List[Scene], progress: Progress,
                   gpus_per_worker: int = 0) -> Iterator[Outcome]:
    """Submit one task per scene to ``client`` and yield each :class:`Outcome` as it ends."""
    distributed = _import_distributed()
    token = uuid.uuid4().hex
    topic = f"cloudremoval-progress-{token}"
    stop = distributed.Event(f"cloudremoval-stop-{token}", client=client)

    def on_progress(event: Tuple[float, dict]) -> None:
        message = event[1]
        if message.get("started"):
            progress.started(message["label"])
        else:
            progress.fraction(message["label"], message["fraction"])

    client.subscribe_topic(topic, on_progress)
    resources = {GPU_RESOURCE: 1} if gpus_per_worker else None
    futures = {}
    for index, scene in enumerate(scenes):
        future = client.submit(_scene_task, scene_request(scene), scene.label, token, gpus_per_worker,
                               key=f"scene-{index}-{token}", pure=False, resources=resources)
        futures[future] = scene
    ended = False
    try:
        for future in distributed.as_completed(list(futures)):
            yield _outcome(future, futures[future], distributed)
        ended = True
    finally:
        if not ended:  # Ctrl+C, or the caller stopped: let running scenes stop cleanly, then drop the rest
            stop.set()
            distributed.wait(list(futures), timeout=STOP_WAIT_SECONDS)
            client.cancel(list(futures))
        client.unsubscribe_topic(topic)


def _outcome(future: "Future", scene: Scene, distributed: ModuleType) -> Outcome:
    try:
        return future.result()
    except distributed.KilledWorker:
        import dask
        tries = dask.config.get("distributed.scheduler.allowed-failures") + 1
        return Outcome(scene.label, FAILED, f"the Dask worker running it died {tries} times (out of memory, or "
                                            "killed); give the workers more memory, or use a smaller TILE_SIZE")
    except Exception as exc:  # what the worker raised or Dask reported: the scene fails alone
        if isinstance(exc, ImportError) or "deserializ" in str(exc):  # a process that cannot import the package
            return Outcome(scene.label, FAILED, f"a Dask worker could not load the scene's task ({first_line(exc)}); "
                                                f"{NOT_IMPORTABLE_ADVICE}")
        return Outcome(scene.label, FAILED, f"the Dask task failed: {type(exc).__name__}: {first_line(exc)}")


_gpu_lock = threading.Lock()
_free_gpus: Dict[int, "queue.Queue[int]"] = {}  # per GPU count of the worker: device numbers not in use


@contextlib.contextmanager
def _gpu_slot(gpus_per_worker: int) -> Iterator[Optional[int]]:
    """A CUDA device number of this worker that no other running scene holds (None without GPUs)."""
    if not gpus_per_worker:
        yield None
        return
    with _gpu_lock:
        if gpus_per_worker not in _free_gpus:
            _free_gpus[gpus_per_worker] = queue.Queue()
            for index in range(gpus_per_worker):
                _free_gpus[gpus_per_worker].put(index)
    free = _free_gpus[gpus_per_worker]
    index = free.get()
    try:
        yield index
    finally:
        free.put(index)


def _scene_task(request: RemovalRequest, label: str, token: str, gpus_per_worker: int) -> Outcome:
    """One scene, run on a worker; reports progress to the client and stops when the batch is stopped."""
    import distributed
    worker = distributed.get_worker()
    topic = f"cloudremoval-progress-{token}"
    stop = distributed.Event(f"cloudremoval-stop-{token}")
    last = {"poll": time.monotonic(), "progress": 0.0}

    def report(done: float) -> None:
        now = time.monotonic()
        if now - last["progress"] >= PROGRESS_SECONDS or done >= 1:
            last["progress"] = now
            worker.log_event(topic, {"label": label, "fraction": done})

    def stopped() -> bool:
        now = time.monotonic()
        if now - last["poll"] < STOP_POLL_SECONDS:
            return False
        last["poll"] = now
        return stop.is_set()

    worker.log_event(topic, {"label": label, "started": True})
    with _gpu_slot(gpus_per_worker) as gpu_index:
        if gpu_index is not None:
            request = replace(request, gpu_index=gpu_index)
        return run_scene(request, label, Reporter(progress=report, is_cancelled=stopped))
