"""Groups: the table columns (presets or grid points) a sweep's runs fall into, their order,
planned seeds, shared switches and labels."""

from __future__ import annotations

import dataclasses
import re
from typing import Any

import pandas as pd

from reid_core.presets import SWITCHES, TABLE3_COLUMNS

from .paper import COLUMN_LABELS
from .sweep_data import SweepData, TablesError

GROUP_MODES = ("preset", "grid_point")


def _natural_key(text: str) -> list[Any]:
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", str(text))]


def _auto_mode(data: SweepData) -> str:
    """preset when every preset has one grid point (run or planned), else grid_point."""
    runs = data.runs
    pairs = set(zip(runs["preset"], runs["grid_point"]))
    for trial in data.planned or []:
        pairs.add((str(trial.get("preset", "")), str(trial.get("grid_point", ""))))
    per_preset: dict[str, set[str]] = {}
    for preset, grid_point in pairs:
        per_preset.setdefault(preset, set()).add(grid_point)
    return "preset" if all(len(points) == 1 for points in per_preset.values()) else "grid_point"


def group_runs(data: SweepData, by: str = "auto") -> SweepData:
    """A copy of `data` whose runs carry `group` (table column) and `base_group` (planned-seed
    lookup) and whose `group_by` is the mode used; `data` itself is left as it was.

    by = preset | grid_point | auto (preset when every preset has one grid point). Several
    datasets in one sweep split each group by dataset. Data already grouped that way is
    returned as it is.
    """
    if by not in ("auto", *GROUP_MODES):
        raise TablesError(f"--group-by {by!r}: expected auto, preset or grid_point")
    if data.group_by is not None and by in ("auto", data.group_by):
        return data
    mode = _auto_mode(data) if by == "auto" else by
    runs = data.runs
    base_group = runs[mode].astype(str)
    included = runs[runs["excluded"] == ""]
    several_datasets = included["dataset"].nunique() > 1
    group = [f"{g} [{d}]" if several_datasets else g for g, d in zip(base_group, runs["dataset"])]
    grouped = runs.assign(base_group=base_group, group=group)
    return dataclasses.replace(data, runs=grouped, group_by=mode)


def group_order(data: SweepData, mode: str) -> list[str]:
    runs = data.included
    groups = list(dict.fromkeys(runs["group"]))
    base_of = dict(zip(runs["group"], runs["base_group"]))
    if mode == "preset":
        rank = {preset: i for i, preset in enumerate(TABLE3_COLUMNS)}
        return sorted(groups, key=lambda g: (rank.get(base_of[g], len(rank)), _natural_key(g)))
    planned_order: dict[str, int] = {}
    for i, trial in enumerate(data.planned or []):
        planned_order.setdefault(str(trial.get("grid_point", "")), i)
    return sorted(groups, key=lambda g: (planned_order.get(base_of[g], 10**9), _natural_key(g)))


def planned_count(data: SweepData, mode: str, base_group: str) -> int | None:
    if data.planned is None:
        return None
    count = sum(1 for trial in data.planned if str(trial.get(mode, "")) == base_group)
    return count or None  # a group the plan does not know: shown as n=...


def base_groups(data: SweepData) -> dict[str, str]:
    """group -> its base group (the preset or grid point the plan names)."""
    included = data.included
    return dict(zip(included["group"], included["base_group"]))


def group_frames(data: SweepData, group: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(every included run of the group, its finished runs)."""
    included, finished = data.included, data.finished
    return included[included["group"] == group], finished[finished["group"] == group]


def group_switches(frame: pd.DataFrame) -> tuple[dict[str, bool | None], str | None]:
    """Switches shared by the group's runs (None where they disagree) and its triplet kind."""
    switches: dict[str, bool | None] = {}
    for name in SWITCHES:
        values = set(frame[f"sw.{name}"].astype(bool))
        switches[name] = values.pop() if len(values) == 1 else None
    triplets = set(frame["triplet"])
    return switches, (triplets.pop() if len(triplets) == 1 else None)


def group_label(group: str, mode: str) -> str:
    return COLUMN_LABELS.get(group, group) if mode == "preset" else group


def dataset_of(frame: pd.DataFrame, group: str) -> str:
    datasets = frame.loc[frame["group"] == group, "dataset"]
    return str(datasets.iloc[0]) if len(datasets) else ""
