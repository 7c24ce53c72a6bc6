"""What the report is built from: `SweepData` (one row per trial run, read from MLflow by
`collect.load_sweep`) and `Table` (what every renderer takes)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from reid_core.errors import ReIDError
from reid_core.presets import switch_overrides

MISSING = "–"  # en dash: a value nobody recorded
CHECK = "✓"
FINISHED = "FINISHED"
# Config fields that `switches_from_flat` reads: a run whose config.json lacks them cannot be
# placed in Table 3.
SWITCH_PARAMS = tuple(switch_overrides({}))
# Config fields that never define a group (they differ between seeds or say where data lives).
NON_AXIS_PARAMS = {"seed", "data.root", "data.num_workers", "eval.batch_size"}
CONFIG_PREFIX = "config."  # run-frame columns holding the run's config.json, flattened (typed values)


class TablesError(ReIDError):
    """The experiment cannot give tables (missing, empty, or only incompatible runs)."""


@dataclass
class Table:
    """One table: `display` (strings, rendered to md/LaTeX/HTML) and `data` (numbers, CSV).

    `problems` lists the runs that are not in the averages (failed, running, not started,
    excluded), shown under the table; `notes` are sentences shown under it.
    """

    key: str
    title: str
    display: pd.DataFrame
    data: pd.DataFrame
    notes: list[str] = field(default_factory=list)
    problems: pd.DataFrame | None = None
    highlight_rows: list[int] = field(default_factory=list)
    colour_deltas: bool = True
    sections: list[int] = field(default_factory=list)  # display rows that start a new block (a rule above)
    left_cols: int = 1  # leading columns that label the rows (left-aligned)


@dataclass(frozen=True)
class SweepData:
    """What MLflow recorded for a sweep; nothing that builds a table changes it (grouping
    returns a copy, groups.group_runs)."""

    experiment_name: str
    experiment_id: str
    tracking_uri: str
    parent_run_id: str | None
    planned: list[dict[str, Any]] | None  # trials.json, None when the parent has none
    runs: pd.DataFrame  # one row per trial run (latest attempt per trial name); `_config`: its TrainConfig
    histories: dict[str, dict[str, list[tuple[int, float]]]] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    superseded: int = 0  # earlier attempts of a trial name that a later run replaced
    # the spec's top-level `reference:` (a grid point every other group is compared with), from
    # the parent run's spec.yaml; None: the paper's references for presets, else the first group
    reference: str | None = None
    # "preset" / "grid_point" once groups.group_runs gave the runs their `group` column
    group_by: str | None = None

    @property
    def not_started(self) -> list[dict[str, Any]]:
        """Planned trials (trials.json) that have no run."""
        seen = set(self.runs["trial_name"])
        return [t for t in self.planned or [] if str(t.get("trial_name", "")) and str(t["trial_name"]) not in seen]

    @property
    def included(self) -> pd.DataFrame:
        """Runs usable in tables (current schema), any status."""
        return self.runs[self.runs["excluded"] == ""]

    @property
    def finished(self) -> pd.DataFrame:
        included = self.included
        return included[included["status"] == FINISHED]


def metric(frame: pd.DataFrame, key: str) -> pd.Series:
    """A metric column of the run frame (all None when no run logged it)."""
    col = f"metric.{key}"
    return frame[col] if col in frame.columns else pd.Series([None] * len(frame), index=frame.index, dtype=object)


def num(value: Any) -> float | None:
    """A finite float, else None."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None
