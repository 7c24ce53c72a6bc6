"""A trial keeps training while its tracking server is down, and loses no metric.

`EpochLog` sits between the trial and its `TrialRun`: each epoch's metrics join a queue
that is flushed to MLflow in order. When a call fails (after 3 HTTP retries, or the
user's MLFLOW_HTTP_REQUEST_MAX_RETRIES),
the trial goes on; later epochs only probe the server quickly (no retries), and once it
answers the queue is replayed in order, each epoch at its own step, and the run is tagged
`names.REPLAYED_EPOCHS` / `names.OUTAGE_SECONDS`.

The queue needs no spool file of its own: every queued epoch is also in the trainer's
history, which each checkpoint holds, and a restarted attempt backfills the epochs its
run lacks (`TrialRun.log_history`). Bound: `max_pending` epochs (default 1000, more than
the paper's 875-epoch schedule); past it the trial fails with an error saying so, and
its retry backfills from the checkpoint's history once the server is back.
"""

from __future__ import annotations

import os
import time
from typing import Any, Callable, Mapping

from . import names
from .store import TrackingError, quick_failing, scoped_env

__all__ = ["EpochLog", "wait_for_store", "store_wait_seconds"]


def store_wait_seconds() -> float:
    """How long a trial waits for its tracking store at start and at the end
    ($COMPACT_REID_TRACKING_WAIT_S, default 1800: a server restart, not a lost server)."""
    return float(os.environ.get("COMPACT_REID_TRACKING_WAIT_S", "1800"))


Log = Callable[[str], None]


class EpochLog:
    def __init__(self, run: Any, log: Log = print, max_pending: int = 1000) -> None:
        self.run, self.log, self.max_pending = run, log, max_pending
        self.pending: list[dict[str, Any]] = []
        self.down_since: float | None = None
        self.replayed = 0
        self.outage_s = 0.0

    def epoch(self, metrics: Mapping[str, Any]) -> bool:
        """Queue one epoch and flush; True when everything queued reached MLflow."""
        self.pending.append(dict(metrics))
        if len(self.pending) > self.max_pending:
            raise TrackingError(
                f"tracking store unreachable for {len(self.pending)} epochs (more than max_pending="
                f"{self.max_pending}); failing this attempt: its retry backfills the epochs from the checkpoint"
            )
        return self.flush()

    def flush(self) -> bool:
        if not self.pending:
            return True
        outage = self.down_since is not None
        started = time.time()  # an outage counts from the call that met it, not from when its retries ran out
        try:
            # A dead server must not stall training: while it is down only quick probes; before
            # that a few retries (MLflow's default, 7 with backoff, blocks about 4 minutes), as
            # nothing is lost when they run out. A user's MLFLOW_HTTP_REQUEST_MAX_RETRIES leaves
            # both the retries and the timeout to them.
            with quick_failing() if outage else _few_retries():
                self._drain()
        except Exception as e:  # MlflowException, requests errors, ...: the store is down
            if not outage:
                self.down_since = started
                self.log(
                    f"tracking store unreachable ({type(e).__name__}: {str(e)[:160]}); training goes on, "
                    f"metrics are queued and replayed in order when it answers"
                )
            return False
        if outage:
            self._recovered()
        return True

    def _drain(self) -> None:
        while self.pending:
            self.run.log_epoch(self.pending[0])
            self.pending.pop(0)
            if self.down_since is not None:
                self.replayed += 1

    def _recovered(self) -> None:
        down = time.time() - (self.down_since or time.time())
        self.outage_s += down
        self.down_since = None
        self.run.set_tags({names.REPLAYED_EPOCHS: self.replayed, names.OUTAGE_SECONDS: round(self.outage_s, 1)})
        self.log(f"tracking store back after {down:.0f}s: replayed {self.replayed} epoch(s) in order")

    def wait_flushed(self, timeout: float, interval: float = 5.0) -> None:
        """Block until the queue is empty (before the run is completed); TrackingError after `timeout`."""
        deadline = time.monotonic() + timeout
        while not self.flush():
            if time.monotonic() > deadline:
                raise TrackingError(
                    f"tracking store still unreachable after {timeout:.0f}s with {len(self.pending)} epoch(s) queued"
                )
            time.sleep(interval)


def _few_retries() -> Any:
    if "MLFLOW_HTTP_REQUEST_MAX_RETRIES" in os.environ:
        return scoped_env()
    return scoped_env(MLFLOW_HTTP_REQUEST_MAX_RETRIES="3", MLFLOW_HTTP_REQUEST_TIMEOUT="30")


def wait_for_store(
    call: Callable[[], Any], timeout: float, log: Log = print, what: str = "tracking store", interval: float = 5.0
) -> Any:
    """`call()` until it succeeds, for at most `timeout` seconds (a trial starting or
    finishing while the server restarts waits for it instead of failing)."""
    deadline = time.monotonic() + timeout
    warned = False
    while True:
        try:
            if warned:
                with quick_failing():
                    return call()
            return call()
        except Exception as e:
            if time.monotonic() > deadline:
                raise TrackingError(
                    f"{what} unreachable for {timeout:.0f}s: {type(e).__name__}: {str(e)[:200]}"
                ) from None
            if not warned:
                log(f"{what} unreachable ({type(e).__name__}); waiting up to {timeout:.0f}s for it")
                warned = True
            time.sleep(interval)
