"""The sweep's console: a screen's worth, whatever the width of the grid.

Ray Tune's own output prints each trial's whole config (the TrainConfig, about 70 rows), a
TensorBoard hint and periodic status tables, and Ray forwards every line each trial prints.
`SweepConsole` replaces Tune's (RunConfig's `progress_reporter`, honoured by its classic
output engine: `init_ray` sets RAY_AIR_NEW_OUTPUT=0); each trial's own lines go to its log
file (trial_log.py). What it prints:

    [0:03] g-seed0            preset=g            started
    [1:06] g-seed0            preset=g            8/8   rank1  25.2%  mAP  20.9%  FINISHED
    [1:06] compact-1x-seed0   preset=compact-1x   started from epoch 8
    [1:30] sweep smoke: 3/4 finished, 1 running, 0 to start | 34/36 epochs (94%) | ETA 0:12
    [2:11] verdict smoke: compact-1x vs g on final_rank1: better (+2.1 [0.4, 3.8]) n=2/2

one line when a trial starts and when it ends (a failure names its log file), a progress
line (trials, epochs trained against the plan, ETA) every `progress_every_s` and at the end,
and a verdict as each comparison (every group against its reference, verdicts.py) has all
its seeds. `verbose >= 2` adds a line per epoch. When stdout is a terminal, a live table of
the running trials (rich) replaces the start lines and the progress lines.
rank1 / mAP are the latest evaluation; a finished trial's are its reported model's
(`final_*`: the SWAG model when SWAG ran), as in the tables.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Sequence

from ray.tune import ProgressReporter

from .trial import format_value, trial_of
from .trial_log import log_path
from .verdicts import Verdicts

# Ray's trial states
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
    start_epoch: int = 0  # epochs it inherits (shared training) or resumes after
    sweep: str = ""
    result: Mapping[str, Any] = field(default_factory=dict)

    @property
    def ended(self) -> bool:
        return self.status in (_FINISHED, _ERROR)

    @property
    def trained(self) -> int:
        """Epochs trained by this sweep so far."""
        done = self.total if self.status == _FINISHED and self.total else self.epoch
        return max(0, done - self.start_epoch)


@dataclass(frozen=True)
class ConsolePlan:
    """What the console knows before Tune does: trials it has not created yet (a live plan
    releases them later), the epochs the plan trains, where each trial's log goes."""

    sweep: str
    trials: int = 0
    epochs_to_train: int | None = None
    logs: str = ""  # the storage root the trials' log files are under, as printed
    verdicts: Verdicts | None = None


def trial_view(ray_trial: Any) -> TrialView:
    """The console's view of a Ray Trial (only `trial_id`, `status`, `config`, `last_result` are read)."""
    config = getattr(ray_trial, "config", None) or {}
    result = getattr(ray_trial, "last_result", None) or {}
    key = str(getattr(ray_trial, "trial_id", id(ray_trial)))
    trial = trial_of(config) if "trial" in config else None
    axes_text = ""
    if trial is not None:
        axes = {"preset": trial.preset, **trial.axes}
        axes.update({k.rsplit(".", 1)[-1]: v for k, v in (config.get("sampled") or {}).items()})
        axes_text = " ".join(f"{k}={_short(v)}" for k, v in axes.items() if v is not None)
    total = result.get("total_epochs") or (trial.total_epochs if trial is not None else None)
    return TrialView(
        key=key,
        name=trial.name if trial is not None else key,
        axes=axes_text,
        status=str(getattr(ray_trial, "status", _PENDING)),
        epoch=int(result.get("epoch", 0) or 0),
        total=int(total) if total else None,
        # the run's reported model once it has one (final_*: SWAG when enabled), else the latest evaluation
        rank1=_number(result.get("final_rank1", result.get("rank1"))),
        mAP=_number(result.get("final_mAP", result.get("mAP"))),
        start_epoch=trial.start.epoch if trial is not None else 0,
        sweep=trial.sweep if trial is not None else "",
        result=result,
    )


def trial_line(view: TrialView, name_width: int = 20, axes_width: int = 18, log: str = "") -> str:
    parts = [f"{view.name:<{name_width}}", f"{view.axes:<{axes_width}}"]
    if view.status == _RUNNING and view.epoch <= view.start_epoch:
        parts.append(f"started from epoch {view.start_epoch}" if view.start_epoch else "started")
        return "  ".join(parts).rstrip()
    total = str(view.total) if view.total else "?"
    parts.append(f"{view.epoch:>{len(total)}}/{total}")
    if view.rank1 is not None:
        parts.append(f"rank1 {100 * view.rank1:5.1f}%")
    if view.mAP is not None:
        parts.append(f"mAP {100 * view.mAP:5.1f}%")
    if view.status != _RUNNING:
        parts.append("FINISHED" if view.status == _FINISHED else view.status)
    if view.status == _ERROR and log:
        parts.append(f"log {log}")
    return "  ".join(parts).rstrip()


def sweep_line(plan: ConsolePlan, views: Sequence[TrialView], elapsed: float) -> str:
    """`sweep NAME: 1/4 finished, 2 running, 1 to start | 27/40 epochs (68%) | ETA 3:10`."""
    count = {s: sum(1 for v in views if v.status == s) for s in (_FINISHED, _ERROR, _RUNNING)}
    planned = max(plan.trials, len(views))
    to_start = planned - count[_FINISHED] - count[_ERROR] - count[_RUNNING]
    parts = [f"{count[_FINISHED]}/{planned} finished"]
    if count[_ERROR]:
        parts.append(f"{count[_ERROR]} failed")
    parts += [f"{count[_RUNNING]} running", f"{to_start} to start"]
    done = sum(v.trained for v in views)
    target = plan.epochs_to_train if plan.epochs_to_train is not None else sum((v.total or 0) for v in views)
    epochs = f"{done}/{target} epochs" + (f" ({100 * done / target:.0f}%)" if target else "")
    line = f"sweep {plan.sweep}: " + ", ".join(parts) + " | " + epochs
    if done and target and done < target and elapsed > 0:
        line += f" | ETA {_clock((target - done) * elapsed / done)}"
    return line


class SweepConsole(ProgressReporter):
    """Ray Tune progress reporter for `compact-reid sweep run/resume` (module docstring)."""

    def __init__(
        self,
        plan: ConsolePlan | str,
        verbose: int = 1,
        trial_every_s: float = 5.0,
        progress_every_s: float = 30.0,
        heartbeat_s: float = 120.0,
        write: Callable[[str], None] | None = None,
        clock: Callable[[], float] = time.time,
        live: bool | None = None,
    ):
        self.plan = plan if isinstance(plan, ConsolePlan) else ConsolePlan(plan)
        self.verbose = verbose
        self.trial_every_s, self.progress_every_s, self.heartbeat_s = trial_every_s, progress_every_s, heartbeat_s
        self._write = write
        self._clock = clock
        self._live_wanted = live
        self._reset()

    def _reset(self) -> None:
        self._start = self._clock()
        self._shown: dict[str, tuple[str, int]] = {}  # trial id -> (status, epoch) last printed
        self._shown_at: dict[str, float] = {}
        self._last_progress = self._start
        self._last_line = ""
        self._pending: list[str] = []
        self._widths = (20, 18)
        self._live: Any = None
        self._views: list[TrialView] = []

    def __getstate__(self) -> dict[str, Any]:  # Ray pickles the RunConfig with its reporter
        state = dict(self.__dict__)
        state.update(_write=None, _clock=time.time, _live=None)
        return state

    # ProgressReporter interface ------------------------------------------------------------
    def setup(self, start_time: float | None = None, total_samples: int | None = None, **_: Any) -> None:
        self._reset()
        if isinstance(total_samples, int) and 0 < total_samples < 10**6 and not self.plan.trials:
            self.plan = ConsolePlan(self.plan.sweep, total_samples, self.plan.epochs_to_train, self.plan.logs)
        if start_time is not None and self._clock is time.time:
            self._start = self._last_progress = start_time

    def should_report(self, trials: Sequence[Any], done: bool = False) -> bool:
        now = self._clock()
        views = self._views = [trial_view(t) for t in trials]
        self._widths = (
            max([self._widths[0]] + [len(v.name) for v in views]),
            max([self._widths[1]] + [len(v.axes) for v in views]),
        )
        live = self._use_live()
        for view in views:
            self._trial_lines(view, now, live)
        if self.plan.verdicts is not None:
            self._pending += [self._stamp(now) + line for line in self.plan.verdicts.update(views)]
        line = sweep_line(self.plan, views, now - self._start)
        due = now - self._last_progress >= (self.heartbeat_s if live else self.progress_every_s)
        if (
            (done and line != self._last_line)
            or (due and line != self._last_line)
            or now - self._last_progress >= self.heartbeat_s
        ):
            self._pending.append(self._stamp(now) + line)
            self._last_progress, self._last_line = now, line
        return bool(self._pending) or live

    def _trial_lines(self, view: TrialView, now: float, live: bool) -> None:
        before = self._shown.get(view.key)
        if view.status == _PENDING or (before is not None and before == (view.status, view.epoch)):
            return
        width, axes_width = self._widths
        started = before is None or before[0] != view.status
        every_epoch = self.verbose >= 2 and now - self._shown_at.get(view.key, -1e18) >= self.trial_every_s
        log = f"{self.plan.logs}/{log_path(self.plan.sweep, view.name)}" if self.plan.logs else ""
        if view.ended and (before is None or before[0] != view.status):
            self._pending.append(self._stamp(now) + trial_line(view, width, axes_width, log))
        elif (started and not live) or every_epoch:
            self._pending.append(self._stamp(now) + trial_line(view, width, axes_width, log))
        self._shown[view.key] = (view.status, view.epoch)
        self._shown_at[view.key] = now

    def report(self, trials: Sequence[Any], done: bool, *sys_info: str) -> None:
        lines, self._pending = self._pending, []
        if lines:
            self._emit("\n".join(lines))
        if self._live is not None:
            if done:
                self._live.stop()
                self._live = None
            else:
                self._live.update(self._table())

    # ----------------------------------------------------------------------------------------
    def _use_live(self) -> bool:
        """A live table when stdout is a terminal (and nobody captures the lines)."""
        wanted = self._live_wanted if self._live_wanted is not None else (self._write is None and sys.stdout.isatty())
        if wanted and self._live is None:
            from rich.live import Live

            self._live = Live(self._table(), refresh_per_second=2, transient=True)
            self._live.start()
        return bool(wanted)

    def _table(self) -> Any:
        from rich.table import Table

        elapsed = self._clock() - self._start
        table = Table(title=sweep_line(self.plan, self._views, elapsed), title_justify="left", expand=False)
        for column in ("trial", "grid", "epoch", "rank1", "mAP"):
            table.add_column(column, justify="right" if column in ("epoch", "rank1", "mAP") else "left")
        for view in self._views:
            if view.status == _RUNNING:
                rank1 = f"{100 * view.rank1:.1f}%" if view.rank1 is not None else "-"
                mean_ap = f"{100 * view.mAP:.1f}%" if view.mAP is not None else "-"
                table.add_row(view.name, view.axes, f"{view.epoch}/{view.total or '?'}", rank1, mean_ap)
        return table

    def _stamp(self, now: float) -> str:
        return f"[{_clock(max(0.0, now - self._start))}] "

    def _emit(self, text: str) -> None:
        if self._write is not None:
            self._write(text)
        elif self._live is not None:
            self._live.console.print(text, markup=False, highlight=False)
        else:
            sys.stdout.write(text + "\n")
            sys.stdout.flush()


def _clock(seconds: float) -> str:
    whole = int(seconds)
    hours, minutes, secs = whole // 3600, (whole // 60) % 60, whole % 60
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def _short(v: Any) -> str:
    if isinstance(v, float) and not isinstance(v, bool):
        return f"{v:.4g}"
    return format_value(v)


def _number(x: Any) -> float | None:
    try:
        return None if x is None else float(x)
    except (TypeError, ValueError):
        return None
