"""Worker threads, started before the network takes its memory.

A thread needs address space for its stack. Under a memory limit (``ulimit -v``, a container's or a
job's) a thread started in the middle of a run, once the network holds most of it, fails with
``RuntimeError: can't start new thread``; started first, it is there when needed.
"""

from concurrent.futures import ThreadPoolExecutor
from typing import List

from .progress import CoreError

THREAD_LIMIT_MESSAGE = ("Could not start a worker thread: this process has reached its memory or thread limit "
                        "(ulimit -v or -u, or a container's or job's memory limit); raise the limit or free memory")


def is_thread_start_failure(exc: BaseException) -> bool:
    """Whether ``exc`` is Python's failure to start a thread (no address space for its stack, or too many)."""
    return isinstance(exc, RuntimeError) and "start new thread" in str(exc)


def started_pools(*names: str) -> List[ThreadPoolExecutor]:
    """One one-thread pool per name, each thread running already; where one cannot start, those started are
    shut down and :data:`THREAD_LIMIT_MESSAGE` is raised as a :class:`CoreError`."""
    pools: List[ThreadPoolExecutor] = []
    try:
        for name in names:
            pools.append(ThreadPoolExecutor(max_workers=1, thread_name_prefix=name))
            pools[-1].submit(int).result()  # a pool starts its thread at the first task
    except RuntimeError as exc:
        for pool in pools:
            pool.shutdown(wait=True)
        if is_thread_start_failure(exc):
            raise CoreError(THREAD_LIMIT_MESSAGE) from None
        raise
    return pools
