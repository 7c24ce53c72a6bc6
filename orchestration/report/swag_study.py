"""Table 4 (the SWAG study): each group with SWAG (or phase metrics) through its phases
plain -> + cyclic LR -> + SWAG, beside the paper's setup with the same switches.

Every row is defined once in `_metric_rows`, as its label with the function of its cell.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pandas as pd

from reid_core.presets import TABLE4_SETUPS

from .cells import METRICS, Stat, ci_cell, diff_or_none, fmt_diff, fmt_num, pct, stat
from .compare import Interval, interval
from .groups import base_groups, group_frames, group_label, group_order, group_switches, planned_count
from .layout import Row, row_cells, section_starts
from .paper import TABLE4_LABELS, TABLE4_PHASES, comparable_to_paper, paper_table4, setup_for
from .sweep_data import SweepData, Table, metric

__all__ = ["table4", "setup_groups", "setup_label"]

NOTE = (
    "plain = end of the main phase (plain_*), + cyclic LR = last weights after the cosine-restart phase "
    "(cyclic_*), + SWAG = the SWAG model (swag_*); % mean [95% confidence interval, Student's t] over "
    "finished seeds; (n/N) = "
    "seeds averaged / planned. Paper numbers beside the group whose switches (SWAG aside) equal a setup "
    "of the paper's Table 4; Δ paper = this sweep − paper, in points (Market-1501 runs only). The steps' "
    "differences, paired per run, are in the next table."
)


@dataclass(frozen=True)
class _Phase:
    """One phase (a column) of one group and metric."""

    name: str  # plain / cyclic / swag: the metric key's prefix
    stat: Stat  # mean, std, n over the finished seeds
    interval: Interval
    paper: float | None
    paper_reference: float | None  # the paper's figure where comparable (Market-1501 runs), else None


def setup_groups(data: SweepData, mode: str) -> list[tuple[str, str | None]]:
    """Table 4's groups in its order, with the paper setup each one's switches give."""
    setup_rank = {setup: i for i, setup in enumerate(TABLE4_SETUPS)}
    chosen = []
    for group in group_order(data, mode):
        runs, finished = group_frames(data, group)
        has_phases = any(metric(runs, f"{phase}_rank1").notna().any() for phase in ("cyclic", "swag"))
        switches, triplet = group_switches(finished if len(finished) else runs)
        if not (switches["swag"] or has_phases):
            continue
        setup = setup_for(switches, triplet)
        chosen.append((setup_rank.get(setup or "", len(setup_rank)), group, setup))
    chosen.sort(key=lambda entry: entry[0])
    return [(group, setup) for _, group, setup in chosen]


def setup_label(group: str, setup: str | None, mode: str) -> str:
    return group_label(group, mode) + (f" (paper setup {TABLE4_LABELS[setup]})" if setup else "")


def _metric_rows(name: str, planned: int | None) -> list[Row[_Phase]]:
    """One metric's rows: this sweep's figure, the paper's, the difference to it."""
    return [
        Row(f"{name} (%)", lambda phase: ci_cell(phase.interval, planned)),
        Row(f"{name} paper", lambda phase: fmt_num(phase.paper)),
        Row(f"{name} Δ paper", lambda phase: fmt_diff(phase.stat.mean, phase.paper_reference)),
    ]


def _phases(finished: pd.DataFrame, setup: str | None, key: str, comparable: bool) -> dict[str, _Phase]:
    """The phases of one metric, by column header."""
    phases = {}
    for phase, header in TABLE4_PHASES:
        paper = paper_table4(setup, phase, key)
        phases[header] = _Phase(
            name=phase,
            stat=stat(metric(finished, f"{phase}_{key}")),
            interval=interval(metric(finished, f"{phase}_{key}")),
            paper=paper,
            paper_reference=paper if comparable else None,
        )
    return phases


def _record(group: str, setup: str | None, key: str, planned: int | None, phases: dict[str, _Phase]) -> dict[str, Any]:
    """The CSV row of one group and metric."""
    record: dict[str, Any] = {"group": group, "paper_setup": setup or "", "metric": key, "planned": planned}
    for phase in phases.values():
        record.update(
            {
                f"{phase.name}_mean": phase.stat.mean,
                f"{phase.name}_lo": pct(phase.interval.lo),
                f"{phase.name}_hi": pct(phase.interval.hi),
                f"{phase.name}_std": phase.stat.std,
                f"{phase.name}_n": phase.stat.n,
                f"{phase.name}_paper": phase.paper,
                f"{phase.name}_diff": diff_or_none(phase.stat.mean, phase.paper_reference),
            }
        )
    return record


def table4(data: SweepData, mode: str) -> Table | None:
    """Table 4, None when no group ran SWAG or recorded its phases; `data` from `groups.group_runs`."""
    chosen = setup_groups(data, mode)
    if not chosen:
        return None
    base_of = base_groups(data)
    blocks: list[list[dict[str, str]]] = []
    records: list[dict[str, Any]] = []
    for group, setup in chosen:
        runs, finished = group_frames(data, group)
        planned = planned_count(data, mode, base_of[group])
        comparable = comparable_to_paper(runs)
        block: list[dict[str, str]] = []
        for key, name in METRICS:
            phases = _phases(finished, setup, key, comparable)
            block += row_cells(_metric_rows(name, planned), phases)
            records.append(_record(group, setup, key, planned, phases))
        # the setup's name once, on its block's first row
        label = setup_label(group, setup, mode)
        blocks.append([{"setup": label if i == 0 else "", **cells} for i, cells in enumerate(block)])
    return Table(
        "table4",
        "Table 4: SWAG study (plain → + cyclic LR → + SWAG)",
        pd.DataFrame([cells for block in blocks for cells in block]),
        pd.DataFrame(records),
        [NOTE],
        sections=section_starts(blocks),
        left_cols=2,
    )
