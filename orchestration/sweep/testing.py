"""Test-only fault injection: a trainable that wraps the production `run_trial`.

The end-to-end tests run real sweeps through real Ray with
`run_sweep(..., trial_fn=fault_injecting_trial(FaultHooks.from_env(marker_dir)))`; the
production path never reads these variables. Names are trial names, comma-separated:

  COMPACT_REID_FAIL_TRIAL=a-seed0[,..]   raise TrainingError after logging epoch
                                         COMPACT_REID_FAIL_EPOCH (default 1), every attempt
  COMPACT_REID_KILL_TRIAL=a-seed1[,..]   SIGKILL the trial's own worker process after
                                         logging epoch COMPACT_REID_KILL_EPOCH (default 2)
                                         and before that epoch's checkpoint, once: a marker
                                         file `kill-<trial>.marker` in
                                         COMPACT_REID_KILL_MARKER_DIR (default: the marker_dir
                                         given to from_env) records that it happened.
  COMPACT_REID_EPOCH_SLEEP=SECONDS       sleep after every epoch of every trial (slow trials
                                         down so that an outage test fits inside one)
"""

from __future__ import annotations

import os
import signal
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable


@dataclass(frozen=True)
class FaultHooks:
    fail_trials: tuple[str, ...] = ()
    fail_epoch: int = 1
    kill_trials: tuple[str, ...] = ()
    kill_epoch: int = 2
    kill_marker_dir: str = "."
    epoch_sleep: float = 0.0

    @classmethod
    def from_env(cls, marker_dir: str | os.PathLike[str]) -> "FaultHooks":
        def names(var: str) -> tuple[str, ...]:
            return tuple(x.strip() for x in os.environ.get(var, "").split(",") if x.strip())

        return cls(
            names("COMPACT_REID_FAIL_TRIAL"),
            int(os.environ.get("COMPACT_REID_FAIL_EPOCH", "1")),
            names("COMPACT_REID_KILL_TRIAL"),
            int(os.environ.get("COMPACT_REID_KILL_EPOCH", "2")),
            os.environ.get("COMPACT_REID_KILL_MARKER_DIR", str(marker_dir)),
            float(os.environ.get("COMPACT_REID_EPOCH_SLEEP", "0")),
        )

    def on_epoch(self, name: str, epoch: int) -> None:
        """Called by run_trial after the epoch is handed to MLflow (logged, or queued while
        the store is down), before its checkpoint."""
        if self.epoch_sleep:
            import time

            time.sleep(self.epoch_sleep)
        if name in self.fail_trials and epoch == self.fail_epoch:
            from reid_core.errors import TrainingError

            raise TrainingError(f"injected failure (COMPACT_REID_FAIL_TRIAL) at epoch {epoch}")
        if name in self.kill_trials and epoch == self.kill_epoch:
            marker = Path(self.kill_marker_dir) / f"kill-{name}.marker"
            if not marker.exists():
                marker.parent.mkdir(parents=True, exist_ok=True)
                marker.write_text(f"killed at epoch {epoch}, pid {os.getpid()}\n")
                print(f"[{name}] injected SIGKILL (COMPACT_REID_KILL_TRIAL) at epoch {epoch}", flush=True)
                os.kill(os.getpid(), signal.SIGKILL)


def fault_injecting_trial(hooks: FaultHooks) -> Callable[..., None]:
    """A Ray function trainable: the production run_trial with `hooks.on_epoch` plugged in."""

    def fault_injecting_trial(config: dict[str, Any], ctx: Any) -> None:
        from .trainable import run_trial

        run_trial(config, ctx, on_epoch=hooks.on_epoch)

    return fault_injecting_trial


def main(argv: list[str] | None = None) -> int:
    """`python -m orchestration.sweep.testing SPEC --runs-dir D [--address A] [--tracking-uri U] [--storage S]`:
    a real sweep with the hooks above read from the environment (for tests that must run the
    driver in its own process). Exit 0 when no trial failed and the sweep was not interrupted."""
    import argparse

    from .runner import SweepOptions, run_sweep

    ap = argparse.ArgumentParser(prog="python -m orchestration.sweep.testing")
    ap.add_argument("spec")
    ap.add_argument("--runs-dir", required=True)
    ap.add_argument("--address", default=None)
    ap.add_argument("--tracking-uri", default=None)
    ap.add_argument("--storage", default=None)
    args = ap.parse_args(argv)
    hooks = FaultHooks.from_env(marker_dir=args.runs_dir)
    options = SweepOptions(
        address=args.address,
        tracking_uri=args.tracking_uri,
        storage=args.storage,
        runs_dir=args.runs_dir,
        verbose=0,
        trial_fn=fault_injecting_trial(hooks),
    )
    outcome = run_sweep(args.spec, options)
    print("COUNTS", outcome.counts, "INTERRUPTED", outcome.interrupted, flush=True)
    return 0 if not outcome.counts.get("FAILED") and not outcome.interrupted else 1


if __name__ == "__main__":
    raise SystemExit(main())
