"""Groups (table columns), statistics over seeds, cell formatting, the comparisons between
groups (`group_comparisons`, the numbers of the differences tables and the forest plot), runs
not averaged."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any, Iterable

import pandas as pd

from reid_core.presets import SWITCHES, TABLE3_COLUMNS

from .compare import Comparison, Interval, compare, reference_of
from .paper import COLUMN_LABELS, paper_column
from .sweep_data import FINISHED, MISSING, SweepData, TablesError, metric, num


def _natural_key(s: str) -> list[Any]:
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", str(s))]


def assign_groups(data: SweepData, by: str = "auto") -> str:
    """Adds `group` (table column), `base_group` (planned-seed lookup) to data.runs.

    by = preset | grid_point | auto (preset when every preset has one grid point).
    Returns the mode used. Several datasets in one sweep split each group by dataset.
    """
    runs = data.runs
    if by not in ("auto", "preset", "grid_point"):
        raise TablesError(f"--group-by {by!r}: expected auto, preset or grid_point")
    if by == "auto":
        pairs = set(zip(runs["preset"], runs["grid_point"]))
        for t in data.planned or []:
            pairs.add((str(t.get("preset", "")), str(t.get("grid_point", ""))))
        per_preset: dict[str, set[str]] = {}
        for p, g in pairs:
            per_preset.setdefault(p, set()).add(g)
        by = "preset" if all(len(g) == 1 for g in per_preset.values()) else "grid_point"
    runs["base_group"] = runs[by].astype(str)
    inc = runs[runs["excluded"] == ""]
    multi = inc["dataset"].nunique() > 1
    runs["group"] = [f"{g} [{d}]" if multi else g for g, d in zip(runs["base_group"], runs["dataset"])]
    return by


def group_order(data: SweepData, mode: str) -> list[str]:
    runs = data.included
    groups = list(dict.fromkeys(runs["group"]))
    base_of = dict(zip(runs["group"], runs["base_group"]))
    if mode == "preset":
        rank = {p: i for i, p in enumerate(TABLE3_COLUMNS)}
        return sorted(groups, key=lambda g: (rank.get(base_of[g], len(rank)), _natural_key(g)))
    planned_order = {}
    for i, t in enumerate(data.planned or []):
        planned_order.setdefault(str(t.get("grid_point", "")), i)
    return sorted(groups, key=lambda g: (planned_order.get(base_of[g], 10**9), _natural_key(g)))


def planned_count(data: SweepData, mode: str, base_group: str) -> int | None:
    if data.planned is None:
        return None
    n = sum(1 for t in data.planned if str(t.get(mode, "")) == base_group)
    return n or None  # a group the plan does not know: shown as n=...


# ---------------------------------------------------------------------------------
# Statistics and formatting


@dataclass(frozen=True)
class Stat:
    mean: float | None
    std: float | None
    n: int


def stat(values: Iterable[Any], scale: float = 100.0) -> Stat:
    """Mean and sample std (ddof=1; None for one value) of the finite values, x scale."""
    vals = [v * scale for v in (num(x) for x in values) if v is not None]
    n = len(vals)
    if n == 0:
        return Stat(None, None, 0)
    mean = sum(vals) / n
    std = math.sqrt(sum((v - mean) ** 2 for v in vals) / (n - 1)) if n > 1 else None
    return Stat(mean, std, n)


def fmt_stat(s: Stat, planned: int | None, show_n: bool = True) -> str:
    if s.n == 0 or s.mean is None:
        return MISSING
    out = f"{s.mean:.1f}" + (f" ± {s.std:.1f}" if s.std is not None else "")
    if not show_n:
        return out
    if planned is None:
        out += f" (n={s.n})"
    elif s.n != planned:
        out += f" ({s.n}/{planned})"
    return out


def ci_cell(iv: Interval, planned: int | None, show_n: bool = True) -> str:
    """ "45.2 [41.0, 49.4]" (mean and 95% interval in %), "45.2, n/a (1 seed)", with (n/N)."""
    if iv.n == 0 or iv.mean is None:
        return MISSING
    out = iv.text()
    if not show_n:
        return out
    if planned is None:
        out += f" (n={iv.n})"
    elif iv.n != planned:
        out += f" ({iv.n}/{planned})"
    return out


def pct(v: float | None) -> float | None:
    """A fraction as points (x 100); None stays None."""
    return None if v is None else 100.0 * v


def by_seed(frame: pd.DataFrame, key: str) -> dict[Any, float]:
    """{seed: metric} over the frame's runs with a finite value (by trial name when seeds repeat)."""
    vals = [(r.seed, r.trial_name, num(v)) for r, v in zip(frame.itertuples(index=False), metric(frame, key))]
    vals = [t for t in vals if t[2] is not None]
    seeds = [t[0] for t in vals]
    if len(set(seeds)) == len(seeds):
        return {s: v for s, _, v in vals}
    return {name: v for _, name, v in vals}


def fmt_num(v: float | None, digits: int = 1) -> str:
    return MISSING if v is None else f"{v:.{digits}f}"


def fmt_diff(mean: float | None, paper: float | None) -> str:
    if mean is None or paper is None:
        return MISSING
    return f"{mean - paper:+.1f}"


def group_switches(frame: pd.DataFrame) -> tuple[dict[str, bool | None], str | None]:
    """Switches shared by the group's runs (None where they disagree) and its triplet kind."""
    sw: dict[str, bool | None] = {}
    for s in SWITCHES:
        vals = set(frame[f"sw.{s}"].astype(bool))
        sw[s] = vals.pop() if len(vals) == 1 else None
    trip = set(frame["triplet"])
    return sw, (trip.pop() if len(trip) == 1 else None)


def group_label(group: str, mode: str) -> str:
    return COLUMN_LABELS.get(group, group) if mode == "preset" else group


# ---------------------------------------------------------------------------------
# Problems (runs not averaged)


def error_headline(text: str, limit: int = 200) -> str:
    """The line of an error tag that says what happened (a traceback's last line)."""
    lines = [ln.strip() for ln in str(text or "").strip().splitlines() if ln.strip() and ln.strip() != "...(truncated)"]
    if not lines:
        return ""
    line = lines[-1] if len(lines) > 1 and lines[0].startswith("Traceback") else lines[0]
    return line if len(line) <= limit else line[: limit - 1] + "…"


def problems_frame(data: SweepData) -> pd.DataFrame:
    """Runs not in the averages: excluded (older schema), not FINISHED, or planned and never started."""
    runs = data.runs
    rows: list[dict[str, Any]] = []
    for _, r in runs.iterrows():
        group = r.get("group", r["grid_point"])
        if r["excluded"]:
            rows.append(
                {
                    "trial": r["trial_name"],
                    "group": group,
                    "status": f"excluded ({r['status']})",
                    "error": r["excluded"],
                    "error_full": r["excluded"],
                    "run_id": r["run_id"],
                }
            )
        elif r["status"] != FINISHED:
            err = r["error"] or ""
            if not err and r.get("stopped"):
                err = "stopped early by the scheduler" if r["stopped"] == "early" else f"stopped ({r['stopped']})"
            rows.append(
                {
                    "trial": r["trial_name"],
                    "group": group,
                    "status": r["status"],
                    "error": error_headline(err),
                    "error_full": err,
                    "run_id": r["run_id"],
                }
            )
    for t in data.not_started:
        rows.append(
            {
                "trial": str(t["trial_name"]),
                "group": str(t.get("grid_point", "")),
                "status": "not started",
                "error": "",
                "error_full": "",
                "run_id": "",
            }
        )
    return pd.DataFrame(rows, columns=["trial", "group", "status", "error", "error_full", "run_id"])


# ---------------------------------------------------------------------------------
# Comparisons (the differences tables and the forest plot)

METRICS = (("rank1", "Rank-1"), ("mAP", "mAP"))


def _dataset_of(frame: pd.DataFrame, group: str) -> str:
    ds = frame.loc[frame["group"] == group, "dataset"]
    return str(ds.iloc[0]) if len(ds) else ""


def references(data: SweepData, mode: str) -> tuple[dict[str, str], list[str]]:
    """group -> its reference group, within each dataset, and notes on how they were chosen.

    Preset sweeps: the paper's Table 3 references, by the switches each group recorded (so h
    and compact-1x are one configuration); other sweeps: the spec's `reference:` grid point,
    else the first group (compare.reference_of)."""
    inc = data.included
    groups = group_order(data, mode)
    base_of = dict(zip(inc["group"], inc["base_group"]))
    fin = data.finished
    notes: list[str] = []
    out: dict[str, str] = {}
    by_ds: dict[str, list[str]] = {}
    for g in groups:
        by_ds.setdefault(_dataset_of(inc, g), []).append(g)
    named = data.reference
    for _ds, gs in by_ds.items():
        bases = [base_of[g] for g in gs]
        group_of = dict(zip(bases, gs))
        presets: dict[str, str] | None = None
        if mode == "preset" and named is None:
            presets = {}
            for g, b in zip(gs, bases):
                fg = fin[fin["group"] == g]
                sw, trip = group_switches(fg if len(fg) else inc[inc["group"] == g])
                col = paper_column(sw, trip) if all(v is not None for v in sw.values()) and trip else None
                presets[b] = col or ""
        ref = named if named in bases else None
        if named is not None and ref is None:
            msg = (
                f"the spec names reference {named!r}, which is no group of this sweep; the first group is the reference"
            )
            if msg not in notes:
                notes.append(msg)
        pairs = reference_of(bases, presets, ref)
        out.update({group_of[o]: group_of[r] for o, r in pairs.items()})
    return out, notes


def group_comparisons(data: SweepData, mode: str) -> list[dict[str, Any]]:
    """Every comparison of the report, in table order: each group against its reference
    (kind "reference"), each group's final model against its untrained network, paired per
    run (kind "untrained"), and Table 4's steps plain -> + cyclic LR -> + SWAG within a group
    (kind "phase"). Each: {kind, group, reference, metric, label, comparison: Comparison}."""
    fin = data.finished
    groups = group_order(data, mode)
    refs, _notes = references(data, mode)
    out: list[dict[str, Any]] = []
    for g in groups:
        if g not in refs:
            continue
        r = refs[g]
        for key, _ in METRICS:
            c = compare(
                by_seed(fin[fin["group"] == r], f"final_{key}"),
                by_seed(fin[fin["group"] == g], f"final_{key}"),
                reference_name=r,
                other_name=g,
            )
            label = f"{group_label(g, mode)} − {group_label(r, mode)}"
            out.append(
                {"kind": "reference", "group": g, "reference": r, "metric": key, "label": label, "comparison": c}
            )
    for g in groups:
        fg = fin[fin["group"] == g]
        for key, _ in METRICS:
            before, after = by_seed(fg, f"untrained_{key}"), by_seed(fg, f"final_{key}")
            if not before and not after:
                continue
            c = compare(before, after, reference_name=f"{g} untrained", other_name=g)
            label = f"{group_label(g, mode)}: trained − untrained"
            out.append(
                {"kind": "untrained", "group": g, "reference": g, "metric": key, "label": label, "comparison": c}
            )
    return out


def phase_comparisons(fg: pd.DataFrame, group: str, key: str) -> list[tuple[str, Comparison]]:
    """Table 4's steps within one group, paired per run: plain -> + cyclic LR -> + SWAG."""
    steps = (("plain", "cyclic", "plain → + cyclic LR"), ("cyclic", "swag", "+ cyclic LR → + SWAG"))
    out = []
    for a, b, label in steps:
        c = compare(
            by_seed(fg, f"{a}_{key}"),
            by_seed(fg, f"{b}_{key}"),
            reference_name=f"{group} {a}",
            other_name=f"{group} {b}",
        )
        out.append((label, c))
    return out


def comparison_record(c: Comparison) -> dict[str, Any]:
    """The numbers of a comparison for the CSV/JSON (differences in points)."""
    return {
        "n_ref": c.n_ref,
        "n_other": c.n_other,
        "paired": c.paired,
        "diff": pct(c.diff),
        "diff_lo": pct(c.lo),
        "diff_hi": pct(c.hi),
        "p_improve": c.p_improve,
        "verdict": c.verdict,
        "seeds_needed": c.seeds_needed,
        "method": c.method,
    }


def comparison_cells(c: Comparison) -> list[str]:
    """The display cells: seeds (the first group's vs the second's, or shared and paired),
    Δ [95% CI], P(improve), verdict."""
    if c.paired:
        seeds = f"{c.n_ref}, paired"
    elif c.n_ref < 2 or c.n_other < 2:  # no interval either way
        seeds = f"{c.n_other} vs {c.n_ref}"
    else:
        seeds = f"{c.n_other} vs {c.n_ref}, unpaired (seeds differ)"
    return [seeds, c.diff_text(), c.p_text(), c.verdict_text()]


COMPARISON_COLUMNS = ["seeds", "Δ (points) [95% CI]", "P(improve)", "verdict"]
COMPARISON_NOTE = (
    "Δ = the first group − the second, in points, with its 95% confidence interval: Student's t over the "
    "per-seed differences when both groups have the same seeds (paired), Welch's t when they do not (unpaired); "
    "'n/a (1 seed)' where a side has fewer than two seeds. P(improve) = the chance that a run of the first "
    "beats a run of the second (paired: the share of seeds on which it does). Verdict: better / worse when the "
    "interval excludes 0, else not resolved, with the seeds per group at which a difference of this size would "
    "be resolved at the observed spread."
)
