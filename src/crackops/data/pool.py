"""Worker pools for the data scan and the synthesizer: forked processes where forking is safe,
threads otherwise, and a Ctrl-C or an error that ends them at once, with nothing left behind.

No TensorFlow here: this module must import fast.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

_THREADED_LIBS = ("tensorflow", "torch", "jax", "keras")


def fork_is_safe() -> bool:
    """Whether this process may fork workers: no other Python threads and no library with native
    thread pools (TensorFlow, torch, jax) loaded, since forking those can deadlock the child."""
    import multiprocessing as mp
    import sys
    import threading

    return ("fork" in mp.get_all_start_methods() and threading.active_count() == 1
            and not any(m in sys.modules for m in _THREADED_LIBS))


def _worker_start() -> None:
    """In each forked worker: Ctrl-C is the parent's to handle (it ends the workers), so a worker
    never dies half-way through a write to the pool's pipes (which would hang the others)."""
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})   # forked while the parent held it back


def worker_pool(max_workers: int):
    """An executor for chunks of files: forked worker processes when forking is safe, threads
    otherwise.

    Never ``spawn`` or ``forkserver``: both re-import the caller's ``__main__``, so a script
    without an ``if __name__ == "__main__"`` guard would run again in every worker (a training
    script would train once per worker). Threads are correct but gain little: the per-file work
    is small and mostly holds the GIL (6,000 files: 0.95 s in one thread, 0.91 s in two threads,
    0.53 s in two forked processes). The training job and ``crackops data check`` scan before
    TensorFlow is imported, so they fork.
    """
    from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor

    if fork_is_safe():
        import multiprocessing as mp

        return ProcessPoolExecutor(max_workers=max_workers, mp_context=mp.get_context("fork"),
                                   initializer=_worker_start)
    return ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix="crackops-scan")


def _stop_pool(pool) -> None:
    """End a pool now (an interrupt or an error): queued chunks dropped, worker processes ended
    and waited for, Ctrl-C held back meanwhile, so that no worker is left behind."""
    from crackops.interrupts import blocked

    with blocked():
        procs = list((getattr(pool, "_processes", None) or {}).values())
        manager = getattr(pool, "_executor_manager_thread", None)
        pool.shutdown(wait=False, cancel_futures=True)
        for p in procs:
            if p.is_alive():
                p.terminate()
        for p in procs:
            p.join(5)
            if p.is_alive():
                p.kill()
                p.join(5)
        if manager is not None:   # it sees the workers gone and closes the pool's pipes: let it finish
            manager.join(10)


def run_chunks(fn: Callable[..., Any], calls: list[tuple], workers: int) -> Iterator[tuple[int, Any]]:
    """``fn(*call)`` for each call over a :func:`worker_pool`, yielding ``(index, result)`` as they
    finish. A Ctrl-C (or any error) ends the pool at once: queued calls dropped, workers ended and
    waited for. Raises ``BrokenProcessPool``/``OSError``/``RuntimeError`` when workers cannot
    start or die (the callers then finish the rest themselves)."""
    from concurrent.futures import as_completed

    from crackops.interrupts import blocked

    pool = worker_pool(min(workers, len(calls)))
    try:
        with blocked():   # the workers are forked here: none may see a Ctrl-C before it ignores them
            futures = {pool.submit(fn, *call): i for i, call in enumerate(calls)}
        for fut in as_completed(futures):
            yield futures[fut], fut.result()
    except BaseException:
        _stop_pool(pool)
        raise
    pool.shutdown()
