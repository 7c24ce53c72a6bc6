"""Which groups are compared and how: each group against its reference, trained against
untrained, Table 4's phases; the numbers of the differences tables and the forest plot."""

from __future__ import annotations

from typing import Any

import pandas as pd

from .cells import METRICS, pct
from .compare import Comparison, compare, reference_of
from .groups import base_groups, dataset_of, group_frames, group_label, group_order, group_switches
from .layout import Column, column_cells, headers
from .paper import column_for
from .sweep_data import SweepData, metric, num


def by_seed(frame: pd.DataFrame, key: str) -> dict[Any, float]:
    """{seed: metric} over the frame's runs with a finite value (by trial name when seeds repeat)."""
    vals = [(r.seed, r.trial_name, num(v)) for r, v in zip(frame.itertuples(index=False), metric(frame, key))]
    vals = [t for t in vals if t[2] is not None]
    seeds = [t[0] for t in vals]
    if len(set(seeds)) == len(seeds):
        return {seed: value for seed, _, value in vals}
    return {name: value for _, name, value in vals}


def _paper_columns(data: SweepData, groups: list[str]) -> dict[str, str]:
    """base group -> the paper's column its recorded switches give ("" for none)."""
    base_of = base_groups(data)
    columns = {}
    for group in groups:
        runs, finished = group_frames(data, group)
        switches, triplet = group_switches(finished if len(finished) else runs)
        columns[base_of[group]] = column_for(switches, triplet) or ""
    return columns


def references(data: SweepData, mode: str) -> tuple[dict[str, str], list[str]]:
    """group -> its reference group, within each dataset, and notes on how they were chosen.

    Preset sweeps: the paper's Table 3 references, by the switches each group recorded (so h
    and compact-1x are one configuration); other sweeps: the spec's `reference:` grid point,
    else the first group (compare.reference_of)."""
    included = data.included
    base_of = base_groups(data)
    notes: list[str] = []
    out: dict[str, str] = {}
    by_dataset: dict[str, list[str]] = {}
    for group in group_order(data, mode):
        by_dataset.setdefault(dataset_of(included, group), []).append(group)
    named = data.reference
    for groups in by_dataset.values():
        bases = [base_of[g] for g in groups]
        group_of = dict(zip(bases, groups))
        presets = _paper_columns(data, groups) if mode == "preset" and named is None else None
        reference = named if named in bases else None
        if named is not None and reference is None:
            message = (
                f"the spec names reference {named!r}, which is no group of this sweep; the first group is the reference"
            )
            if message not in notes:
                notes.append(message)
        pairs = reference_of(bases, presets, reference)
        out.update({group_of[other]: group_of[ref] for other, ref in pairs.items()})
    return out, notes


def _comparison(kind: str, group: str, reference: str, key: str, label: str, result: Comparison) -> dict[str, Any]:
    return {"kind": kind, "group": group, "reference": reference, "metric": key, "label": label, "comparison": result}


def group_comparisons(data: SweepData, mode: str) -> list[dict[str, Any]]:
    """Every comparison of the differences table, in table order: each group against its
    reference (kind "reference"), then each group's final model against its untrained
    network, paired per run (kind "untrained"). Each: {kind, group, reference, metric,
    label, comparison: Comparison}."""
    finished = data.finished
    groups = group_order(data, mode)
    refs, _notes = references(data, mode)
    out: list[dict[str, Any]] = []
    for group in groups:
        if group not in refs:
            continue
        ref = refs[group]
        label = f"{group_label(group, mode)} − {group_label(ref, mode)}"
        for key, _ in METRICS:
            result = compare(
                by_seed(finished[finished["group"] == ref], f"final_{key}"),
                by_seed(finished[finished["group"] == group], f"final_{key}"),
                reference_name=ref,
                other_name=group,
            )
            out.append(_comparison("reference", group, ref, key, label, result))
    for group in groups:
        group_finished = finished[finished["group"] == group]
        label = f"{group_label(group, mode)}: trained − untrained"
        for key, _ in METRICS:
            before, after = by_seed(group_finished, f"untrained_{key}"), by_seed(group_finished, f"final_{key}")
            if not before and not after:
                continue
            result = compare(before, after, reference_name=f"{group} untrained", other_name=group)
            out.append(_comparison("untrained", group, group, key, label, result))
    return out


# Table 4's steps: (earlier phase, later phase, label).
PHASE_STEPS = (("plain", "cyclic", "plain → + cyclic LR"), ("cyclic", "swag", "+ cyclic LR → + SWAG"))


def phase_comparisons(group_finished: pd.DataFrame, group: str, key: str) -> list[tuple[str, Comparison]]:
    """Table 4's steps within one group, paired per run: plain -> + cyclic LR -> + SWAG."""
    return [
        (
            label,
            compare(
                by_seed(group_finished, f"{earlier}_{key}"),
                by_seed(group_finished, f"{later}_{key}"),
                reference_name=f"{group} {earlier}",
                other_name=f"{group} {later}",
            ),
        )
        for earlier, later, label in PHASE_STEPS
    ]


def comparison_record(result: Comparison) -> dict[str, Any]:
    """The numbers of a comparison for the CSV/JSON (differences in points)."""
    return {
        "n_ref": result.n_ref,
        "n_other": result.n_other,
        "paired": result.paired,
        "diff": pct(result.diff),
        "diff_lo": pct(result.lo),
        "diff_hi": pct(result.hi),
        "p_improve": result.p_improve,
        "verdict": result.verdict,
        "seeds_needed": result.seeds_needed,
        "method": result.method,
    }


def _seeds_cell(result: Comparison) -> str:
    """The first group's seeds vs the second's, or shared and paired."""
    if result.paired:
        return f"{result.n_ref}, paired"
    if result.n_ref < 2 or result.n_other < 2:  # no interval either way
        return f"{result.n_other} vs {result.n_ref}"
    return f"{result.n_other} vs {result.n_ref}, unpaired (seeds differ)"


# The display columns of every comparison, defined once.
COMPARISON_COLUMNS: tuple[Column[Comparison], ...] = (
    Column("seeds", _seeds_cell),
    Column("Δ (points) [95% CI]", Comparison.diff_text),
    Column("P(improve)", Comparison.p_text),
    Column("verdict", Comparison.verdict_text),
)
COMPARISON_HEADERS = headers(COMPARISON_COLUMNS)


def comparison_cells(result: Comparison) -> dict[str, str]:
    """The display cells of a comparison, by column header."""
    return column_cells(COMPARISON_COLUMNS, result)


COMPARISON_NOTE = (
    "Δ = the first group − the second, in points, with its 95% confidence interval: Student's t over the "
    "per-seed differences when both groups have the same seeds (paired), Welch's t when they do not (unpaired); "
    "'n/a (1 seed)' where a side has fewer than two seeds. P(improve) = the chance that a run of the first "
    "beats a run of the second (paired: the share of seeds on which it does). Verdict: better / worse when the "
    "interval excludes 0, else not resolved, with the seeds per group at which a difference of this size would "
    "be resolved at the observed spread."
)
