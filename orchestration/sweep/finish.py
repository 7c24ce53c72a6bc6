"""After Ray Tune's fit: each spec's runs settled, what was trained counted, the summary.

- child runs still RUNNING whose trial errored -> FAILED, stopped early -> KILLED; each spec's
  parent run FINISHED (FAILED if every trial failed), unless the sweep was interrupted;
- trials adaptive seeds added join their spec's planned list (sweep.json, trials.json);
- the trial-epochs trained are counted from the runs (each trial's epochs minus those it
  inherited or copied) and printed beside what the plan said: realized against planned;
- the summary table on the console, `summary.json` in the storage and on each parent run;
- a rehearsal then writes every spec's tables and figures, as `compact-reid tables` does.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from ..mlflow_log.names import INHERITED_EPOCHS, REUSED_FROM, SWEEP_SUMMARY_ARTIFACT, TOTAL_EPOCHS, TRIALS_ARTIFACT
from ..storage import StorageError
from ..storage.store import Store
from . import ray_tune
from .sweep_folder import SweepState
from .trial_status import SUMMARY_FILE, format_table, ray_trials, trial_rows

__all__ = ["SweepOutcome", "fit_and_finish"]

Log = Callable[[str], None]
TABLE_ROWS = 30  # a wider sweep's table lists only the trials that did not finish (it must fit a screen)


@dataclass
class SweepOutcome:
    name: str
    sweep_dir: str
    parent_run_id: str  # the first spec's (a campaign: `parent_runs`)
    tracking_uri: str
    trials: list[dict[str, Any]] = field(default_factory=list)
    wall_seconds: float = 0.0
    interrupted: bool = False
    counts: dict[str, int] = field(default_factory=dict)
    parent_runs: dict[str, str] = field(default_factory=dict)  # spec -> its parent run
    trained_epochs: int | None = None  # realized, counted from the runs
    planned_epochs: int | None = None
    tables: dict[str, str] = field(default_factory=dict)  # experiment -> folder (a rehearsal)

    @property
    def all_failed(self) -> bool:
        return bool(self.trials) and all(row["status"] == "ERROR" for row in self.trials)

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "sweep_dir": self.sweep_dir,
            "parent_run_id": self.parent_run_id,
            "parent_runs": self.parent_runs,
            "tracking_uri": self.tracking_uri,
            "wall_seconds": self.wall_seconds,
            "interrupted": self.interrupted,
            "counts": self.counts,
            "trained_epochs": self.trained_epochs,
            "planned_epochs": self.planned_epochs,
            "tables": self.tables,
            "trials": self.trials,
        }


def fit_and_finish(
    tuner: Any, state: SweepState, store: Store, options: Any, began: float, started_ray: bool
) -> SweepOutcome:
    from ..mlflow_log import SweepTracker

    log = options.log
    tracker = SweepTracker(state.tracking_uri)
    try:
        try:
            results = tuner.fit()
        except KeyboardInterrupt:
            log(f"interrupted: the sweep stays resumable with `compact-reid sweep resume {state.name}`")
            raise
        _record_added_trials(state, store, options.runs_dir, tracker, log)
        outcomes, rows, interrupted = trial_rows(ray_trials(results.experiment_path, results.filesystem))
        counts: dict[str, int] = {}
        member_of = {t["trial_name"]: m.name for m in state.members for t in m.planned}
        for member in state.members:
            mine = {name: o for name, o in outcomes.items() if member_of.get(name, member.name) == member.name}
            ended = tracker.finalize(member.parent_run_id, member.experiment_id, mine, end_parent=not interrupted)
            for status, count in ended.items():
                counts[status] = counts.get(status, 0) + count
        wall = time.perf_counter() - began
        outcome = SweepOutcome(
            state.name,
            state.experiment.display,
            state.members[0].parent_run_id,
            state.tracking_uri,
            rows,
            wall,
            interrupted,
            counts,
            parent_runs={m.name: m.parent_run_id for m in state.members},
            trained_epochs=_trained_epochs(tracker, state),
            planned_epochs=(state.sharing or {}).get("trial_epochs_after_reuse"),
        )
        if state.rehearsal and not interrupted:
            outcome.tables = _tables(state, options, log)
        _save_summary(outcome, state, tracker, store, options.runs_dir, log)
        log("")
        shown = rows if len(rows) <= TABLE_ROWS else [row for row in rows if row["status"] != "TERMINATED"]
        if shown:
            log(format_table(shown))
        if len(rows) > TABLE_ROWS:
            log(f"({len(rows) - len(shown)} finished trial(s) not listed: `compact-reid sweep status {state.name}`)")
        failed = sum(1 for row in rows if row["status"] == "ERROR")
        realized = (
            f"; trained {outcome.trained_epochs} trial-epochs (planned {outcome.planned_epochs})"
            if outcome.planned_epochs is not None
            else ""
        )
        log(
            f"sweep {state.name}: {len(rows)} trial(s), {failed} failed, wall {wall:.1f}s{realized}; "
            f"MLflow {state.tracking_uri}: {state.tracking_label}"
            + (f"; INTERRUPTED: resume with `compact-reid sweep resume {state.name}`" if interrupted else "")
        )
        return outcome
    finally:
        ray_tune.shutdown_ray(started_ray)


def _trained_epochs(tracker: Any, state: SweepState) -> int | None:
    """Epochs trained in this sweep, from the runs: each run's epochs minus those it inherited
    (a reused run copied all of them)."""
    total = 0
    try:
        for member in state.members:
            for run in tracker.children(member.parent_run_id, member.experiment_id):
                tags = run.data.tags
                if REUSED_FROM in tags or TOTAL_EPOCHS not in tags:
                    continue
                total += int(tags[TOTAL_EPOCHS]) - int(tags.get(INHERITED_EPOCHS, 0))
    except Exception:  # noqa: BLE001 - a count for the console, never worth the sweep
        return None
    return total


def _record_added_trials(
    state: SweepState, store: Store, runs_dir: str | os.PathLike[str], tracker: Any, log: Log
) -> None:
    """Trials adaptive seeds added join their spec's planned list (sweep.json, trials.json)."""
    from .adaptive_seeds import read_added

    changed = False
    for member in state.members:
        have = {t["trial_name"] for t in member.planned}
        added = [t for t in read_added(store, member.name) if t["trial_name"] not in have]
        if not added:
            continue
        member.planned = member.planned + added
        changed = True
        try:
            tracker.log_parent_json(member.parent_run_id, member.planned, TRIALS_ARTIFACT)
        except Exception as e:  # never lose the sweep over an artifact
            log(f"warning: could not update trials.json of {member.name}: {e}")
    if changed:
        state.write(store, runs_dir)


def _save_summary(
    outcome: SweepOutcome, state: SweepState, tracker: Any, store: Store, runs_dir: str | os.PathLike[str], log: Log
) -> None:
    summary = outcome.to_dict()
    text = json.dumps(summary, indent=2, default=str) + "\n"
    try:
        store.write_bytes(f"{outcome.name}/{SUMMARY_FILE}", text.encode())
        (Path(runs_dir) / outcome.name).mkdir(parents=True, exist_ok=True)
        (Path(runs_dir) / outcome.name / SUMMARY_FILE).write_text(text)
    except (OSError, StorageError) as e:  # never lose the sweep over a summary file
        log(f"warning: could not write {SUMMARY_FILE}: {e}")
    for member in state.members:
        try:
            tracker.log_parent_json(member.parent_run_id, summary, SWEEP_SUMMARY_ARTIFACT)
        except Exception as e:  # never lose the sweep over a summary artifact
            log(f"warning: could not log {SWEEP_SUMMARY_ARTIFACT} on {member.name}: {e}")


def _tables(state: SweepState, options: Any, log: Log) -> dict[str, str]:
    """Every spec's tables and figures, where `compact-reid tables` writes them."""
    from ..report import write_experiment_tables

    out = Path(options.tables_out or "tables")
    written = {}
    for member in state.members:
        folder = out / member.name
        began = time.perf_counter()
        try:
            files = write_experiment_tables(member.name, state.tracking_uri, folder)
        except Exception as e:  # noqa: BLE001 - a report bug is what a rehearsal is for: say it, keep the rest
            log(f"tables of {member.name}: FAILED: {type(e).__name__}: {e}")
            continue
        written[member.name] = str(folder)
        log(f"tables of {member.name}: {len(files)} files in {folder} ({time.perf_counter() - began:.1f}s)")
    return written
