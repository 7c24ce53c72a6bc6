"""The runs a table does not average: excluded (older schema), not FINISHED, or planned and
never started, each with the reason shown under the table."""

from __future__ import annotations

import dataclasses
from typing import Any

import pandas as pd

from .sweep_data import FINISHED, SweepData


@dataclasses.dataclass(frozen=True)
class Problem:
    """One run not in the averages (a row of the list under a table)."""

    trial: Any
    group: Any
    status: str
    error: str  # the headline shown
    error_full: str  # the whole error tag (the HTML shows it on hover)
    run_id: Any


PROBLEM_COLUMNS = [f.name for f in dataclasses.fields(Problem)]


def error_headline(text: str, limit: int = 200) -> str:
    """The line of an error tag that says what happened (a traceback's last line)."""
    lines = [ln.strip() for ln in str(text or "").strip().splitlines() if ln.strip() and ln.strip() != "...(truncated)"]
    if not lines:
        return ""
    line = lines[-1] if len(lines) > 1 and lines[0].startswith("Traceback") else lines[0]
    return line if len(line) <= limit else line[: limit - 1] + "…"


def _stop_reason(stopped: str) -> str:
    return "stopped early by the scheduler" if stopped == "early" else f"stopped ({stopped})"


def _run_problem(run: pd.Series) -> Problem | None:
    group = run.get("group", run["grid_point"])
    if run["excluded"]:
        return Problem(
            trial=run["trial_name"],
            group=group,
            status=f"excluded ({run['status']})",
            error=run["excluded"],
            error_full=run["excluded"],
            run_id=run["run_id"],
        )
    if run["status"] == FINISHED:
        return None
    err = run["error"] or ""
    if not err and run.get("stopped"):
        err = _stop_reason(run["stopped"])
    return Problem(
        trial=run["trial_name"],
        group=group,
        status=run["status"],
        error=error_headline(err),
        error_full=err,
        run_id=run["run_id"],
    )


def problems_frame(data: SweepData) -> pd.DataFrame:
    """Runs not in the averages: excluded (older schema), not FINISHED, or planned and never started."""
    found = [_run_problem(run) for _, run in data.runs.iterrows()]
    found += [
        Problem(
            trial=str(trial["trial_name"]),
            group=str(trial.get("grid_point", "")),
            status="not started",
            error="",
            error_full="",
            run_id="",
        )
        for trial in data.not_started
    ]
    rows = [dataclasses.asdict(problem) for problem in found if problem is not None]
    return pd.DataFrame(rows, columns=PROBLEM_COLUMNS)
