"""Running a function over many items, in-process or in a pool of worker processes."""

from __future__ import annotations

import multiprocessing as mp
import sys
from typing import Callable, Iterable, TypeVar

Item = TypeVar("Item")
Result = TypeVar("Result")


def run_unordered(
    func: Callable[[Item], Result],
    items: Iterable[Item],
    workers: int,
    on_result: Callable[[Result], None],
    chunksize: int = 32,
) -> None:
    """Call `on_result(func(item))` in this process for every item, in completion order.

    workers == 1 runs in this process; otherwise `func` must be picklable (a module-level
    function, or a functools.partial of one with picklable arguments): it is what carries
    the workers' inputs, there is no per-worker state. If anything raises, including
    `on_result`, the pool is terminated without waiting for the remaining items.
    """
    if workers == 1:
        for item in items:
            on_result(func(item))
        return
    method = "fork" if sys.platform.startswith("linux") else "spawn"
    pool = mp.get_context(method).Pool(workers)
    try:
        for result in pool.imap_unordered(func, items, chunksize=chunksize):
            on_result(result)
    except BaseException:
        pool.terminate()  # do not wait for the remaining items
        raise
    finally:
        pool.close()
        pool.join()
