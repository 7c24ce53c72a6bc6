"""The sweep's console: one short line per trial update and a progress line for the sweep.

Ray Tune's own output prints each trial's whole config (the TrainConfig, about 70 rows),
a TensorBoard hint and periodic status tables. `SweepConsole` replaces it (RunConfig's
`progress_reporter`, which Ray honours with its classic output engine: `init_ray` sets
RAY_AIR_NEW_OUTPUT=0). What it prints:

    [3:41] g-seed0               preset=g           epoch  4/8   rank1  16.5%  mAP  13.1%
    [7:02] g-seed1               preset=g           epoch  8/8   rank1  31.7%  mAP  27.7%  FINISHED
    [7:02] sweep smoke: 1/4 finished, 1 running, 2 pending | epochs 15/~32 (47%)

rank1 / mAP are the latest evaluation (every `eval.every` epochs; the untrained network's
until the first); a finished trial's are its reported model's (`final_*`: the SWAG model
when SWAG ran), as in the tables.
A trial line when a trial starts, reaches a new epoch (at most one line per `trial_every_s`
a trial), finishes (with its last epoch) or fails; a sweep line after a trial ends, when
lines were printed and `progress_every_s` has passed, and at least every `heartbeat_s`.
The trial count is read from Ray's trial list on every step, so trials that a searcher
adds while the sweep runs are counted as they come.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass
from typing import Any, Callable, Sequence

from ray.tune import ProgressReporter

from .trial import format_value, trial_of

# Ray's trial states, and how the sweep line names them
_FINISHED, _ERROR, _RUNNING, _PENDING, _PAUSED = "TERMINATED", "ERROR", "RUNNING", "PENDING", "PAUSED"


@dataclass(frozen=True)
class TrialView:
    """What the console shows of one trial."""

    key: str  # Ray's trial id
    name: str
    axes: str  # "preset=g lr=0.03"
    status: str  # Ray's: PENDING, RUNNING, PAUSED, TERMINATED, ERROR
    epoch: int
    total: int | None  # planned epochs (None: unknown)
    rank1: float | None  # fractions, as reported
    mAP: float | None

    @property
    def ended(self) -> bool:
        return self.status in (_FINISHED, _ERROR)


def trial_view(ray_trial: Any) -> TrialView:
    """The console's view of a Ray Trial (only `trial_id`, `status`, `config`, `last_result` are read)."""
    config = getattr(ray_trial, "config", None) or {}
    result = getattr(ray_trial, "last_result", None) or {}
    key = str(getattr(ray_trial, "trial_id", id(ray_trial)))
    trial = trial_of(config) if "trial" in config else None
    if trial is not None:
        axes = {"preset": trial.preset, **trial.axes}
        axes.update({k.rsplit(".", 1)[-1]: v for k, v in (config.get("sampled") or {}).items()})
        axes_text = " ".join(f"{k}={_short(v)}" for k, v in axes.items() if v is not None)
    total = result.get("total_epochs") or (trial.total_epochs if trial is not None else None)
    return TrialView(
        key=key,
        name=trial.name if trial is not None else key,
        axes=axes_text if trial is not None else "",
        status=str(getattr(ray_trial, "status", _PENDING)),
        epoch=int(result.get("epoch", 0) or 0),
        total=int(total) if total else None,
        # the run's reported model once it has one (final_*: SWAG when enabled), else the latest evaluation
        rank1=_number(result.get("final_rank1", result.get("rank1"))),
        mAP=_number(result.get("final_mAP", result.get("mAP"))),
    )


def trial_line(v: TrialView, name_width: int = 20, axes_width: int = 18) -> str:
    total = str(v.total) if v.total else "?"
    epoch = f"epoch {v.epoch:>{len(total)}}/{total}"
    parts = [f"{v.name:<{name_width}}", f"{v.axes:<{axes_width}}", epoch]
    if v.rank1 is not None:
        parts.append(f"rank1 {100 * v.rank1:5.1f}%")
    if v.mAP is not None:
        parts.append(f"mAP {100 * v.mAP:5.1f}%")
    if v.status != _RUNNING:
        parts.append("FINISHED" if v.status == _FINISHED else v.status)
    elif v.epoch == 0 and v.rank1 is None:
        parts.append("started")
    return "  ".join(parts).rstrip()


def sweep_line(name: str, views: Sequence[TrialView], expected: int = 0) -> str:
    """`sweep NAME: 1/4 finished, 2 running, 1 pending | epochs 27/40 (68%)`. `expected`: the
    trial count Tune announced (its grid generator creates trials a few at a time); trials
    not created yet count as pending, with the mean epochs of the others (the total then
    reads `~N`); a total that misses unknown epochs reads `N+`."""
    count = {s: sum(1 for v in views if v.status == s) for s in (_FINISHED, _ERROR, _RUNNING, _PENDING, _PAUSED)}
    uncreated = max(0, expected - len(views))
    count[_PENDING] += uncreated
    parts = [f"{count[_FINISHED]}/{len(views) + uncreated} finished"]
    if count[_ERROR]:
        parts.append(f"{count[_ERROR]} failed")
    parts.append(f"{count[_RUNNING]} running")
    parts.append(f"{count[_PENDING]} pending")
    if count[_PAUSED]:
        parts.append(f"{count[_PAUSED]} paused")
    done = sum(v.total if v.status == _FINISHED and v.total else v.epoch for v in views)
    planned = sum(v.total or v.epoch for v in views)
    totals = [v.total for v in views if v.total]
    mark = ""
    if uncreated and totals:
        planned += round(uncreated * sum(totals) / len(totals))
        mark = "~"
    total = f"{mark}{planned}" + ("" if len(totals) == len(views) and (totals or not uncreated) else "+")
    epochs = f"epochs {done}/{total}"
    if planned:
        epochs += f" ({100 * done / planned:.0f}%)"
    return f"sweep {name}: " + ", ".join(parts) + " | " + epochs


class SweepConsole(ProgressReporter):
    """Ray Tune progress reporter for `compact-reid sweep run/resume` (module docstring)."""

    def __init__(
        self,
        sweep_name: str = "",
        trial_every_s: float = 5.0,
        progress_every_s: float = 15.0,
        heartbeat_s: float = 60.0,
        write: Callable[[str], None] | None = None,
        clock: Callable[[], float] = time.time,
    ):
        self.sweep_name = sweep_name
        self.trial_every_s = trial_every_s
        self.progress_every_s = progress_every_s
        self.heartbeat_s = heartbeat_s
        self._write = write
        self._clock = clock
        self._expected = 0
        self._reset()

    def _reset(self) -> None:
        self._start = self._clock()
        self._shown: dict[str, tuple[str, int]] = {}  # trial id -> (status, epoch) last printed
        self._shown_at: dict[str, float] = {}
        self._last_progress = self._start
        self._pending: list[str] = []
        self._widths = (20, 18)
        self._last_line = ""
        self._progress_due = False

    def __getstate__(self) -> dict[str, Any]:  # Ray pickles the RunConfig with its reporter
        state = dict(self.__dict__)
        state["_write"] = None
        state["_clock"] = time.time
        return state

    # ProgressReporter interface ------------------------------------------------------------
    def setup(self, start_time: float | None = None, total_samples: int | None = None, **_: Any) -> None:
        self._reset()
        # Tune's count of planned trials (a grid's size, a search's num_samples; huge when unbounded)
        self._expected = total_samples if isinstance(total_samples, int) and 0 < total_samples < 10**6 else 0
        if start_time is not None and self._clock is time.time:
            self._start = self._last_progress = start_time

    def should_report(self, trials: Sequence[Any], done: bool = False) -> bool:
        now = self._clock()
        views = [trial_view(t) for t in trials]
        # columns only widen, so the lines of one sweep stay aligned
        self._widths = (
            max([self._widths[0]] + [len(v.name) for v in views]),
            max([self._widths[1]] + [len(v.axes) for v in views]),
        )
        width, axes_width = self._widths
        for v in views:
            before = self._shown.get(v.key)
            changed_status = before is None or before[0] != v.status
            new_epoch = before is not None and v.epoch != before[1]
            if before is None and v.status == _PENDING:
                self._shown[v.key] = (v.status, v.epoch)  # counted in the sweep line, no line of its own
                continue
            due = now - self._shown_at.get(v.key, -1e18) >= self.trial_every_s
            last = v.total is not None and v.epoch >= v.total  # shown by the trial's end line
            if changed_status or (new_epoch and due and not last):
                self._pending.append(self._stamp(now) + trial_line(v, width, axes_width))
                self._shown[v.key] = (v.status, v.epoch)
                self._shown_at[v.key] = now
                if changed_status and v.ended:
                    self._progress_due = True
        since = now - self._last_progress
        line = sweep_line(self.sweep_name, views, self._expected)
        if (
            (done and line != self._last_line)  # the last word, unless just said
            or self._progress_due
            or (self._pending and since >= self.progress_every_s)
            or since >= self.heartbeat_s
        ):
            self._pending.append(self._stamp(now) + line)
            self._last_progress, self._last_line = now, line
            self._progress_due = False
        return bool(self._pending)

    def report(self, trials: Sequence[Any], done: bool, *sys_info: str) -> None:
        lines, self._pending = self._pending, []
        if lines:
            self._emit("\n".join(lines))

    # ----------------------------------------------------------------------------------------
    def _stamp(self, now: float) -> str:
        seconds = max(0, int(now - self._start))
        h, m, sec = seconds // 3600, (seconds // 60) % 60, seconds % 60
        return f"[{h}:{m:02d}:{sec:02d}] " if h else f"[{m}:{sec:02d}] "

    def _emit(self, text: str) -> None:
        if self._write is not None:
            self._write(text)
        else:
            sys.stdout.write(text + "\n")
            sys.stdout.flush()


def _short(v: Any) -> str:
    if isinstance(v, float) and not isinstance(v, bool):
        return f"{v:.4g}"
    return format_value(v)


def _number(x: Any) -> float | None:
    try:
        return None if x is None else float(x)
    except (TypeError, ValueError):
        return None
