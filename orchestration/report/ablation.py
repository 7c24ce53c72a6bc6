"""Table 3 (the ablation: one column per preset) or, for a sweep over other config axes, the
grid table (one column per grid point).

Rank-1 / mAP are MLflow's fractions x 100 (percent); a cell is the mean and its 95%
confidence interval (Student's t, compare.interval) over the FINISHED runs of a group that
recorded the metric; "n/a (1 seed)" with one. When that number n differs from the seeds
planned for the group (N, from trials.json) the cell says (n/N). Runs that FAILED, still
RUN, were KILLED, or were planned but never started are listed under the table, never
averaged. A metric nobody recorded is "–".

The switch rows are derived from each run's recorded config.json with
`reid_core.presets.switches_from_flat`, never from the preset's name. The paper's figure
shown beside a group is the paper's column with the SAME switches and triplet loss.

Every row is defined once in `_sections`, as its label with the function of its cell.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pandas as pd

from reid_core.presets import PRESETS, SWITCH_LABELS, SWITCHES, TABLE3_COLUMNS

from ..mlflow_log import names
from ..sweep.trial import format_value
from .cells import METRICS, Stat, ci_cell, diff_or_none, fmt_diff, fmt_num, pct, stat
from .compare import Interval, interval
from .groups import base_groups, group_frames, group_label, group_order, group_switches, planned_count
from .layout import Row, row_cells, section_starts
from .paper import TRIPLET_LABELS, column_for, comparable_to_paper, paper_table3
from .preset_overrides import override_notes
from .problems import problems_frame
from .sweep_data import CHECK, CONFIG_PREFIX, MISSING, NON_AXIS_PARAMS, SweepData, Table, metric

__all__ = ["table3"]

MAIN_NOTE = (
    "Rank-1 / mAP of the reported model (final_rank1 / final_mAP: SWAG when enabled, else the "
    "last weights) and of the untrained network (untrained_*), % mean [95% confidence interval, Student's t] "
    "over finished seeds; (n/N) = seeds averaged / planned. Switches are read from each run's recorded "
    f"{names.CONFIG_ARTIFACT}; Δ paper = this sweep − paper, in points (Market-1501 runs only). The differences between "
    "groups, with their intervals and verdicts, are in the differences table below."
)


@dataclass(frozen=True)
class _MetricSummary:
    """One metric of one group: over its finished seeds, before training, and the paper's."""

    stat: Stat  # mean, std, n over the finished seeds
    trained: Interval
    untrained: Interval
    paper: float | None  # the paper's figure for the column with the same switches
    paper_reference: float | None  # the same where comparable (Market-1501 runs), else None


@dataclass(frozen=True)
class _GroupColumn:
    """Everything one column of the table shows, computed once per group."""

    group: str
    base_group: str
    label: str
    axis_values: dict[str, str]
    switches: dict[str, bool | None]
    triplet: str | None
    paper_column: str | None
    finished: int
    planned: int | None
    metrics: dict[str, _MetricSummary]  # by metric key (cells.METRICS)


def _axis_keys(data: SweepData, groups: list[str]) -> list[str]:
    """Config fields whose value differs between groups (the sweep's axes)."""
    included = data.included
    keys = []
    for col in included.columns:
        key = col[len(CONFIG_PREFIX) :]
        if not col.startswith(CONFIG_PREFIX) or key in NON_AXIS_PARAMS:
            continue
        per_group = {
            group: frozenset(map(format_value, included.loc[included["group"] == group, col])) for group in groups
        }
        if len(set(per_group.values())) > 1:
            keys.append(key)
    return keys


def _axis_value(runs: pd.DataFrame, key: str) -> str:
    values = sorted(set(map(format_value, runs[CONFIG_PREFIX + key].dropna())))
    if len(values) == 1:
        return values[0]
    return "mixed: " + ", ".join(values) if values else MISSING


def _group_column(data: SweepData, mode: str, group: str, axis: list[str]) -> _GroupColumn:
    runs, finished = group_frames(data, group)
    switches, triplet = group_switches(finished if len(finished) else runs)
    column = column_for(switches, triplet)
    comparable = comparable_to_paper(runs)
    base_group = base_groups(data)[group]
    metrics = {}
    for key, _ in METRICS:
        paper = paper_table3(column, key)
        metrics[key] = _MetricSummary(
            stat=stat(metric(finished, f"final_{key}")),
            trained=interval(metric(finished, f"final_{key}")),
            untrained=interval(metric(finished, f"untrained_{key}")),
            paper=paper,
            paper_reference=paper if comparable else None,
        )
    return _GroupColumn(
        group=group,
        base_group=base_group,
        label=group_label(group, mode),
        axis_values={key: _axis_value(runs, key) for key in axis},
        switches=switches,
        triplet=triplet,
        paper_column=column,
        finished=len(finished),
        planned=planned_count(data, mode, base_group),
        metrics=metrics,
    )


def _switch_cell(value: bool | None) -> str:
    return CHECK if value else ("mixed" if value is None else "")


def _metric_rows(key: str, name: str) -> list[Row[_GroupColumn]]:
    """One metric's rows: untrained, trained, the paper's figure, the difference to it."""
    return [
        Row(f"{name} untrained (%)", lambda col: ci_cell(col.metrics[key].untrained, col.planned, show_n=False)),
        Row(f"{name} (%)", lambda col: ci_cell(col.metrics[key].trained, col.planned)),
        Row(f"{name} paper", lambda col: fmt_num(col.metrics[key].paper)),
        Row(f"{name} Δ paper", lambda col: fmt_diff(col.metrics[key].stat.mean, col.metrics[key].paper_reference)),
    ]


def _sections(axis: list[str]) -> list[list[Row[_GroupColumn]]]:
    """The table's rows, block by block (a rule between blocks)."""
    return [
        [Row(key, lambda col, key=key: col.axis_values[key]) for key in axis],
        [Row(SWITCH_LABELS[name], lambda col, name=name: _switch_cell(col.switches[name])) for name in SWITCHES],
        [
            Row("Triplet loss", lambda col: TRIPLET_LABELS.get(col.triplet, col.triplet) if col.triplet else "mixed"),
            Row(
                "Paper column (same switches)",
                lambda col: group_label(col.paper_column, "preset") if col.paper_column else MISSING,
            ),
            Row("Seeds finished", lambda col: f"{col.finished}/{'?' if col.planned is None else col.planned}"),
        ],
        *(_metric_rows(key, name) for key, name in METRICS),
    ]


def _record(col: _GroupColumn, axis: list[str]) -> dict[str, Any]:
    """The CSV row of a group (numbers, not text)."""
    record: dict[str, Any] = {
        "group": col.group,
        "paper_column": col.paper_column or "",
        "triplet": col.triplet or "mixed",
    }
    record.update({CONFIG_PREFIX + key: col.axis_values[key] for key in axis})
    record.update({name: col.switches[name] for name in SWITCHES})
    record.update({"finished": col.finished, "planned": col.planned})
    for key, _ in METRICS:
        entry = col.metrics[key]
        record.update(
            {
                f"{key}_untrained": pct(entry.untrained.mean),
                f"{key}_mean": entry.stat.mean,
                f"{key}_lo": pct(entry.trained.lo),
                f"{key}_hi": pct(entry.trained.hi),
                f"{key}_std": entry.stat.std,
                f"{key}_n": entry.stat.n,
                f"paper_{key}": entry.paper,
                f"{key}_diff": diff_or_none(entry.stat.mean, entry.paper_reference),
            }
        )
    return record


def _column_notes(col: _GroupColumn, mode: str) -> list[str]:
    notes = []
    if any(value is None for value in col.switches.values()) or col.triplet is None:
        notes.append(f"{col.label}: its runs recorded different switches (see the runs list)")
    base = col.base_group
    if mode == "preset" and base in PRESETS and col.paper_column != base and base in TABLE3_COLUMNS:
        notes.append(
            f"{col.label}: the recorded config does not give the switches of the paper's column "
            f"{base}" + (f" but those of column {col.paper_column}" if col.paper_column else "")
        )
    return notes


def table3(data: SweepData, mode: str, max_columns: int = 12) -> Table:
    """Table 3 (mode "preset") or the grid table; `data` grouped by `groups.group_runs`."""
    groups = group_order(data, mode)
    axis = _axis_keys(data, groups) if mode == "grid_point" else []
    columns = [_group_column(data, mode, group, axis) for group in groups]
    sections = _sections(axis)
    rows = [row for section in sections for row in section]
    display = pd.DataFrame(row_cells(rows, {col.label: col for col in columns}))
    datasets_seen = list(dict.fromkeys(data.included["dataset"]))
    datasets = ", ".join(datasets_seen)
    title = (
        f"Table 3: ablation ({datasets})"
        if mode == "preset"
        else "Grid table: " + (", ".join(axis) if axis else "grid points") + f" ({datasets})"
    )
    notes = [MAIN_NOTE, *override_notes(data, groups, set(axis), mode)]
    notes += [note for col in columns for note in _column_notes(col, mode)]
    if any(dataset != "Market1501" for dataset in datasets_seen):
        notes.append(
            f"The paper's figures are Market-1501 results; this sweep ran on {datasets}: compare the "
            "groups with each other, not with the paper."
        )
    rules = section_starts(sections)
    if len(groups) > max_columns:  # a search or a long grid: one row per group instead
        display, rules = display.set_index("").T.reset_index(names="group"), []
    return Table(
        "table3" if mode == "preset" else "grid",
        title,
        display,
        pd.DataFrame([_record(col, axis) for col in columns]),
        notes,
        problems_frame(data),
        sections=rules,
    )
