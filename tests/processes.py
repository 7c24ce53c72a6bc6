"""Which of a set of processes still live, and which are tethers: the tests that kill a
launcher check what it started and what it left."""

from __future__ import annotations

import time

import psutil

from process_tether import is_tether


def alive(procs: list[psutil.Process]) -> list[psutil.Process]:
    out = []
    for p in procs:
        try:
            if p.is_running() and p.status() != psutil.STATUS_ZOMBIE:
                out.append(p)
        except psutil.NoSuchProcess:
            pass
    return out


def wait_gone(procs: list[psutil.Process], timeout: float = 30) -> tuple[list[psutil.Process], float]:
    """Poll until none of `procs` is alive; (those still alive, seconds waited)."""
    t0 = time.monotonic()
    while alive(procs) and time.monotonic() - t0 < timeout:
        time.sleep(0.1)
    return alive(procs), time.monotonic() - t0


def tethers(procs: list[psutil.Process]) -> list[psutil.Process]:
    """Those of `procs` that are tethers (process_tether's marker in their environment)."""
    return [p for p in procs if is_tether(p.pid)]
