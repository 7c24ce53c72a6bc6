"""The differences tables: Table 3's (each group against its reference, each group's final
model against its untrained network, paired per run) and Table 4's (its steps within a group,
paired per run). compare.compare gives the interval, P(improve), the verdict and the seeds
that would resolve it; the display columns are comparisons.COMPARISON_COLUMNS.
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from .cells import METRICS
from .comparisons import (
    COMPARISON_HEADERS,
    COMPARISON_NOTE,
    comparison_cells,
    comparison_record,
    group_comparisons,
    phase_comparisons,
    references,
)
from .groups import group_label, group_order
from .layout import section_starts
from .swag_study import setup_groups, setup_label
from .sweep_data import SweepData, Table

__all__ = ["table3_diff", "table4_diff"]

# Table 3's blocks, in order: the comparison kinds of comparisons.group_comparisons.
_KINDS = ("reference", "untrained")

REFERENCES_NOTE = (
    "References (the full model each column switches one thing off from, found by the switches each group "
    "recorded): b-g against i, h and i against Compact-ReID, HA-CNN against a, a against b; a group whose "
    "reference is not in the sweep is set against the group whose switches are the smallest superset of its "
    "own, and a group with neither (the full model) is only compared with its untrained network."
)
UNTRAINED_NOTE = (
    "Trained − untrained: each group's reported model (final_*) against the network before training "
    "(untrained_*), paired per run. Only finished runs are compared; the runs left out are listed under "
    "the table above."
)
PHASES_NOTE = (
    "plain = end of the main phase, + cyclic LR = last weights after the cosine-restart phase, + SWAG = the "
    "SWAG model; each step is paired per run (the phases of one run share its seed)."
)


def _reference_note(data: SweepData, mode: str, ref_notes: list[str]) -> str:
    """Which group every other one is compared with, and why (grid sweeps, named references)."""
    named = bool(data.reference) and not ref_notes
    first = group_order(data, mode)[:1]
    reference = data.reference if named else (first[0] if first else "")
    why = "named by the spec's `reference:`" if named else "the first group"
    return f"Reference: {group_label(reference or '', mode)} ({why}); every other group is compared with it."


def table3_diff(data: SweepData, mode: str) -> Table:
    """Each group against its reference, then each group's final model against its untrained
    network (paired per run): Δ [95% CI], P(improve), verdict."""
    _refs, ref_notes = references(data, mode)
    comparisons = group_comparisons(data, mode)
    blocks: list[list[dict[str, str]]] = []
    records: list[dict[str, Any]] = []
    for kind in _KINDS:
        block: list[dict[str, str]] = []
        previous_label = None
        for entry in (entry for entry in comparisons if entry["kind"] == kind):
            # the comparison's name once, on its first metric's row
            shown = entry["label"] if entry["label"] != previous_label else ""
            previous_label = entry["label"]
            metric_label = dict(METRICS)[entry["metric"]]
            block.append({"comparison": shown, "metric": metric_label, **comparison_cells(entry["comparison"])})
            records.append(
                {
                    "kind": kind,
                    "group": entry["group"],
                    "reference": entry["reference"] if kind == "reference" else f"{entry['group']} (untrained)",
                    "metric": entry["metric"],
                    **comparison_record(entry["comparison"]),
                }
            )
        blocks.append(block)
    display = pd.DataFrame(
        [cells for block in blocks for cells in block], columns=["comparison", "metric", *COMPARISON_HEADERS]
    )
    notes = [COMPARISON_NOTE]
    if mode == "preset" and data.reference is None:
        notes.append(REFERENCES_NOTE)
    else:
        notes.append(_reference_note(data, mode, ref_notes))
    notes += ref_notes
    notes.append(UNTRAINED_NOTE)
    unpaired = [r for r in records if not r["paired"] and r["n_ref"] >= 2 and r["n_other"] >= 2]
    if unpaired:
        notes.append(
            "Unpaired (Welch) where the two groups' seeds differ: "
            + ", ".join(sorted({f"{r['group']} vs {r['reference']}" for r in unpaired}))
            + "."
        )
    title = (
        "Table 3 differences: each column against its reference"
        if mode == "preset"
        else "Grid differences: each group against the reference"
    )
    return Table(
        "table3_diff" if mode == "preset" else "grid_diff",
        title,
        display,
        pd.DataFrame(records),
        notes,
        sections=section_starts(blocks),
        left_cols=2,
        colour_deltas=False,
    )


def table4_diff(data: SweepData, mode: str) -> Table | None:
    """Table 4's steps within each group, paired per run: plain → + cyclic LR → + SWAG."""
    finished = data.finished
    blocks: list[list[dict[str, str]]] = []
    records: list[dict[str, Any]] = []
    empty: list[str] = []
    for group, setup in setup_groups(data, mode):
        label = setup_label(group, setup, mode)
        group_finished = finished[finished["group"] == group]
        steps = [
            (key, metric_label, step, result)
            for key, metric_label in METRICS
            for step, result in phase_comparisons(group_finished, group, key)
            if result.n_ref or result.n_other
        ]
        if not steps:
            empty.append(label)
            continue
        block = []
        for key, metric_label, step, result in steps:
            # the setup's name once, on its block's first row
            shown = "" if block else label
            block.append({"setup": shown, "step": step, "metric": metric_label, **comparison_cells(result)})
            records.append(
                {"group": group, "paper_setup": setup or "", "step": step, "metric": key, **comparison_record(result)}
            )
        blocks.append(block)
    if not blocks:
        return None
    notes = [
        COMPARISON_NOTE.replace("the first group − the second", "the later phase − the earlier one, within a run"),
        PHASES_NOTE,
    ]
    if empty:
        notes.append("No finished run recorded the phases (plain_*, cyclic_*, swag_*) of: " + ", ".join(empty) + ".")
    return Table(
        "table4_diff",
        "Table 4 differences: plain → + cyclic LR → + SWAG within a setup",
        pd.DataFrame(
            [cells for block in blocks for cells in block], columns=["setup", "step", "metric", *COMPARISON_HEADERS]
        ),
        pd.DataFrame(records),
        notes,
        sections=section_starts(blocks),
        left_cols=3,
        colour_deltas=False,
    )
