"""The paper's Table 3 (ablation; a grid table for other axes) and Table 4 (SWAG study),
their differences tables, and `build_tables`, which makes every table of the report in order.

Conventions of every table:
- Rank-1 / mAP are MLflow's fractions x 100 (percent); a cell is the mean and its 95%
  confidence interval (Student's t, compare.interval) over the FINISHED runs of a group that
  recorded the metric; "n/a (1 seed)" with one. When that number n differs from the seeds
  planned for the group (N, from trials.json) the cell says (n/N). Runs that FAILED, still
  RUN, were KILLED, or were planned but never started are listed under the table, never
  averaged. A metric nobody recorded is "–".
- Differences (`table3_diff` / `grid_diff`, `table4_diff`): each group against its reference
  (groups.references), each group's final model against its untrained network (paired per
  run), and Table 4's steps within a group (paired per run); compare.compare gives the
  interval, P(improve), the verdict and the seeds that would resolve it.
- Table 3's switch rows are derived from each run's recorded config.json with
  `reid_core.presets.switches_from_flat`, never from the preset's name. The paper's figure
  shown beside a group is the paper's column with the SAME switches and triplet loss.
"""

from __future__ import annotations

import math
from typing import Any

import pandas as pd

from reid_core.config import flatten
from reid_core.presets import PRESETS, SWITCH_LABELS, SWITCHES, TABLE3_COLUMNS, TABLE4_SETUPS

from ..sweep.names import format_value
from .arch import table1, table2
from .compare import interval
from .groups import (
    COMPARISON_COLUMNS,
    COMPARISON_NOTE,
    METRICS,
    assign_groups,
    ci_cell,
    comparison_cells,
    comparison_record,
    fmt_diff,
    fmt_num,
    group_comparisons,
    group_label,
    group_order,
    group_switches,
    pct,
    phase_comparisons,
    planned_count,
    problems_frame,
    references,
    stat,
)
from .paper import PAPER_TABLE3, PAPER_TABLE4, TABLE4_LABELS, TABLE4_PHASES, TRIPLET_LABELS, paper_column, paper_setup
from .sweep_data import CHECK, CONFIG_PREFIX, MISSING, NON_AXIS_PARAMS, SweepData, Table, metric

__all__ = ["table3", "table4", "table3_diff", "table4_diff", "build_tables"]


def _axis_keys(data: SweepData, groups: list[str]) -> list[str]:
    """Config fields whose value differs between groups (the sweep's axes)."""
    inc = data.included
    keys = []
    for col in inc.columns:
        key = col[len(CONFIG_PREFIX) :]
        if not col.startswith(CONFIG_PREFIX) or key in NON_AXIS_PARAMS:
            continue
        per_group = {g: frozenset(map(format_value, inc.loc[inc["group"] == g, col])) for g in groups}
        if len(set(per_group.values())) > 1:
            keys.append(key)
    return keys


# Fields that say nothing about the method (where data lives, how many identities it has).
_NOT_OVERRIDES = NON_AXIS_PARAMS | {"preset", "model.num_classes"}


def _same(v: Any, d: Any) -> bool:
    if isinstance(d, float) or (isinstance(d, int) and isinstance(v, float)):
        return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isclose(float(v), float(d))
    return v == d


def _overrides(cfg: Any, preset: str) -> dict[str, str] | None:
    """Recorded config fields that differ from the preset's defaults (None for an unknown preset)."""
    from reid_core.presets import preset_config

    if preset not in PRESETS or cfg is None:
        return None
    ref, got = flatten(preset_config(preset)), flatten(cfg)
    return {
        k: format_value(got[k]) for k, d in ref.items() if k not in _NOT_OVERRIDES and k in got and not _same(got[k], d)
    }


def _override_notes(data: SweepData, groups: list[str], axis: set[str], mode: str) -> list[str]:
    """Say how the runs depart from their presets' defaults (scaled schedules, narrower nets)."""
    inc = data.included
    per_group: dict[str, dict[str, str]] = {}
    for g in groups:
        r = inc[inc["group"] == g].iloc[0]
        ov = _overrides(r["_config"], str(r["preset"]))
        if ov is not None:
            per_group[g] = {k: v for k, v in ov.items() if k not in axis}
    if not per_group:
        return []
    common = dict(set.intersection(*(set(o.items()) for o in per_group.values())))
    notes = []
    if common:
        notes.append(
            "Every group departs from its preset's defaults in: "
            + ", ".join(f"{k}={v}" for k, v in sorted(common.items()))
        )
    for g, ov in per_group.items():
        rest = {k: v for k, v in ov.items() if k not in common}
        if rest:
            notes.append(f"{group_label(g, mode)} also: " + ", ".join(f"{k}={v}" for k, v in sorted(rest.items())))
    return notes


def _on_market(runs: pd.DataFrame) -> bool:
    """True when every run ran on Market-1501: the paper's figures are Market-1501's, so a
    difference to them means something only then."""
    return set(runs["dataset"]) == {"Market1501"}


def table3(data: SweepData, mode: str, max_columns: int = 12) -> Table:
    groups = group_order(data, mode)
    inc = data.included
    fin = data.finished
    labels = [group_label(g, mode) for g in groups]
    base_of = dict(zip(inc["group"], inc["base_group"]))
    axis = _axis_keys(data, groups) if mode == "grid_point" else []
    disp: dict[str, list[str]] = {}
    records: list[dict[str, Any]] = []
    notes: list[str] = []
    for g, label in zip(groups, labels):
        allg = inc[inc["group"] == g]
        fg = fin[fin["group"] == g]
        basis = fg if len(fg) else allg
        sw, trip = group_switches(basis)
        col = paper_column(sw, trip) if all(v is not None for v in sw.values()) and trip else None
        N = planned_count(data, mode, base_of[g])
        r1, mp = stat(metric(fg, "final_rank1")), stat(metric(fg, "final_mAP"))
        i1, im = interval(metric(fg, "final_rank1")), interval(metric(fg, "final_mAP"))
        u1, um = interval(metric(fg, "untrained_rank1")), interval(metric(fg, "untrained_mAP"))
        p1, pm = PAPER_TABLE3.get(col, (None, None)) if col else (None, None)
        d1, dm = (p1, pm) if _on_market(allg) else (None, None)
        cells: list[str] = []
        for key in axis:
            vals = sorted(set(map(format_value, allg[CONFIG_PREFIX + key].dropna())))
            cells.append(vals[0] if len(vals) == 1 else ("mixed: " + ", ".join(vals) if vals else MISSING))
        for s in SWITCHES:
            cells.append(CHECK if sw[s] else ("mixed" if sw[s] is None else ""))
        cells.append(TRIPLET_LABELS.get(trip, trip) if trip else "mixed")
        cells.append(group_label(col, "preset") if col else MISSING)
        cells.append(f"{len(fg)}/{N}" if N is not None else f"{len(fg)}/?")
        cells += [
            ci_cell(u1, N, show_n=False),
            ci_cell(i1, N),
            fmt_num(p1),
            fmt_diff(r1.mean, d1),
            ci_cell(um, N, show_n=False),
            ci_cell(im, N),
            fmt_num(pm),
            fmt_diff(mp.mean, dm),
        ]
        disp[label] = cells
        if any(v is None for v in sw.values()) or trip is None:
            notes.append(f"{label}: its runs recorded different switches (see the runs list)")
        if mode == "preset" and base_of[g] in PRESETS and col != base_of[g] and base_of[g] in TABLE3_COLUMNS:
            notes.append(
                f"{label}: the recorded config does not give the switches of the paper's column "
                f"{base_of[g]}" + (f" but those of column {col}" if col else "")
            )
        rec: dict[str, Any] = {"group": g, "paper_column": col or "", "triplet": trip or "mixed"}
        rec.update({CONFIG_PREFIX + k: c for k, c in zip(axis, cells)})
        rec.update({s: sw[s] for s in SWITCHES})
        rec.update(
            {
                "finished": len(fg),
                "planned": N,
                "rank1_untrained": pct(u1.mean),
                "rank1_mean": r1.mean,
                "rank1_lo": pct(i1.lo),
                "rank1_hi": pct(i1.hi),
                "rank1_std": r1.std,
                "rank1_n": r1.n,
                "paper_rank1": p1,
                "rank1_diff": None if r1.mean is None or d1 is None else r1.mean - d1,
                "mAP_untrained": pct(um.mean),
                "mAP_mean": mp.mean,
                "mAP_lo": pct(im.lo),
                "mAP_hi": pct(im.hi),
                "mAP_std": mp.std,
                "mAP_n": mp.n,
                "paper_mAP": pm,
                "mAP_diff": None if mp.mean is None or dm is None else mp.mean - dm,
            }
        )
        records.append(rec)
    row_labels = (
        axis
        + [SWITCH_LABELS[s] for s in SWITCHES]
        + [
            "Triplet loss",
            "Paper column (same switches)",
            "Seeds finished",
            "Rank-1 untrained (%)",
            "Rank-1 (%)",
            "Rank-1 paper",
            "Rank-1 Δ paper",
            "mAP untrained (%)",
            "mAP (%)",
            "mAP paper",
            "mAP Δ paper",
        ]
    )
    display = pd.DataFrame({"": row_labels, **disp})
    datasets = ", ".join(dict.fromkeys(inc["dataset"]))
    title = (
        f"Table 3: ablation ({datasets})"
        if mode == "preset"
        else "Grid table: " + (", ".join(axis) if axis else "grid points") + f" ({datasets})"
    )
    if any(d != "Market1501" for d in dict.fromkeys(inc["dataset"])):
        notes.append(
            f"The paper's figures are Market-1501 results; this sweep ran on {datasets}: compare the "
            "groups with each other, not with the paper."
        )
    notes[0:0] = _override_notes(data, groups, set(axis), mode)
    notes.insert(
        0,
        "Rank-1 / mAP of the reported model (final_rank1 / final_mAP: SWAG when enabled, else the "
        "last weights) and of the untrained network (untrained_*), % mean [95% confidence interval, Student's t] "
        "over finished seeds; (n/N) = seeds averaged / planned. Switches are read from each run's recorded "
        "config.json; Δ paper = this sweep − paper, in points (Market-1501 runs only). The differences between "
        "groups, with their intervals and verdicts, are in the differences table below.",
    )
    na = len(axis)
    sections = [i for i in (na, na + len(SWITCHES), na + len(SWITCHES) + 3, na + len(SWITCHES) + 7) if i > 0]
    table = Table(
        "table3" if mode == "preset" else "grid",
        title,
        display,
        pd.DataFrame(records),
        notes,
        problems_frame(data),
        sections=sections,
    )
    if len(groups) > max_columns:  # a search or a long grid: one row per group instead
        table.display = display.set_index("").T.reset_index(names="group")
        table.sections, table.left_cols = [], 1
    return table


# ---------------------------------------------------------------------------------
# Table 4 (SWAG study)


def table4(data: SweepData, mode: str) -> Table | None:
    inc, fin = data.included, data.finished
    base_of = dict(zip(inc["group"], inc["base_group"]))
    rows: list[dict[str, str]] = []
    records: list[dict[str, Any]] = []
    chosen = [
        (g, setup, fin[fin["group"] == g], _on_market(inc[inc["group"] == g])) for g, setup in _setup_groups(data, mode)
    ]
    if not chosen:
        return None
    sections = []
    for g, setup, fg, on_market in chosen:
        N = planned_count(data, mode, base_of[g])
        label = group_label(g, mode) + (f" (paper setup {TABLE4_LABELS[setup]})" if setup else "")
        if rows:
            sections.append(len(rows))
        for key, mlabel in (("rank1", "Rank-1"), ("mAP", "mAP")):
            ours = {"setup": label if key == "rank1" else "", "": f"{mlabel} (%)"}
            paper_row = {"setup": "", "": f"{mlabel} paper"}
            delta_row = {"setup": "", "": f"{mlabel} Δ paper"}
            rec: dict[str, Any] = {"group": g, "paper_setup": setup or "", "metric": key, "planned": N}
            for phase, plabel in TABLE4_PHASES:
                st = stat(metric(fg, f"{phase}_{key}"))
                iv = interval(metric(fg, f"{phase}_{key}"))
                paper = PAPER_TABLE4[setup][phase][0 if key == "rank1" else 1] if setup else None
                ours[plabel] = ci_cell(iv, N)
                paper_row[plabel] = fmt_num(paper)
                ref = paper if on_market else None
                delta_row[plabel] = fmt_diff(st.mean, ref)
                rec.update(
                    {
                        f"{phase}_mean": st.mean,
                        f"{phase}_lo": pct(iv.lo),
                        f"{phase}_hi": pct(iv.hi),
                        f"{phase}_std": st.std,
                        f"{phase}_n": st.n,
                        f"{phase}_paper": paper,
                        f"{phase}_diff": None if st.mean is None or ref is None else st.mean - ref,
                    }
                )
            rows += [ours, paper_row, delta_row]
            records.append(rec)
    display = pd.DataFrame(rows)
    notes = [
        "plain = end of the main phase (plain_*), + cyclic LR = last weights after the cosine-restart phase "
        "(cyclic_*), + SWAG = the SWAG model (swag_*); % mean [95% confidence interval, Student's t] over "
        "finished seeds; (n/N) = "
        "seeds averaged / planned. Paper numbers beside the group whose switches (SWAG aside) equal a setup "
        "of the paper's Table 4; Δ paper = this sweep − paper, in points (Market-1501 runs only). The steps' "
        "differences, paired per run, are in the next table."
    ]
    return Table(
        "table4",
        "Table 4: SWAG study (plain → + cyclic LR → + SWAG)",
        display,
        pd.DataFrame(records),
        notes,
        sections=sections,
        left_cols=2,
    )


def _setup_groups(data: SweepData, mode: str) -> list[tuple[str, str | None]]:
    """Table 4's groups in its order, with the paper setup each one's switches give."""
    inc, fin = data.included, data.finished
    setup_rank = {s: i for i, s in enumerate(TABLE4_SETUPS)}
    chosen = []
    for g in group_order(data, mode):
        allg = inc[inc["group"] == g]
        fg = fin[fin["group"] == g]
        has = any(metric(allg, f"{p}_rank1").notna().any() for p in ("cyclic", "swag"))
        sw, trip = group_switches(fg if len(fg) else allg)
        if not (sw["swag"] or has):
            continue
        setup = paper_setup(sw, trip) if all(v is not None for v in sw.values()) and trip else None
        chosen.append((setup_rank.get(setup or "", len(setup_rank)), g, setup))
    chosen.sort(key=lambda c: c[0])
    return [(g, setup) for _, g, setup in chosen]


# ---------------------------------------------------------------------------------
# Differences tables


def table3_diff(data: SweepData, mode: str) -> Table:
    """Each group against its reference, then each group's final model against its untrained
    network (paired per run): Δ [95% CI], P(improve), verdict."""
    rows: list[dict[str, str]] = []
    records: list[dict[str, Any]] = []
    sections: list[int] = []
    refs, ref_notes = references(data, mode)
    kinds = (("reference", "against the reference"), ("untrained", "trained against untrained"))
    comps = group_comparisons(data, mode)
    for kind, _title in kinds:
        block = [c for c in comps if c["kind"] == kind]
        if not block:
            continue
        if rows:
            sections.append(len(rows))
        last = None
        for c in block:
            cmp_ = c["comparison"]
            first = c["label"] if c["label"] != last else ""
            last = c["label"]
            mlabel = dict(METRICS)[c["metric"]]
            rows.append(
                dict(zip(["comparison", "metric", *COMPARISON_COLUMNS], [first, mlabel, *comparison_cells(cmp_)]))
            )
            records.append(
                {
                    "kind": kind,
                    "group": c["group"],
                    "reference": c["reference"] if kind == "reference" else f"{c['group']} (untrained)",
                    "metric": c["metric"],
                    **comparison_record(cmp_),
                }
            )
    display = pd.DataFrame(rows, columns=["comparison", "metric", *COMPARISON_COLUMNS])
    notes = [COMPARISON_NOTE]
    if mode == "preset" and data.reference is None:
        notes.append(
            "References (the full model each column switches one thing off from, found by the switches each group "
            "recorded): b-g against i, h and i against Compact-ReID, HA-CNN against a, a against b; a group whose "
            "reference is not in the sweep is set against the group whose switches are the smallest superset of its "
            "own, and a group with neither (the full model) is only compared with its untrained network."
        )
    else:
        first = group_order(data, mode)[:1]
        ref = data.reference if data.reference and not ref_notes else (first[0] if first else "")
        notes.append(
            f"Reference: {group_label(ref, mode)} ("
            + ("named by the spec's `reference:`" if data.reference and not ref_notes else "the first group")
            + "); every other group is compared with it."
        )
    notes += ref_notes
    notes.append(
        "Trained − untrained: each group's reported model (final_*) against the network before training "
        "(untrained_*), paired per run. Only finished runs are compared; the runs left out are listed under "
        "the table above."
    )
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
        sections=sections,
        left_cols=2,
        colour_deltas=False,
    )


def table4_diff(data: SweepData, mode: str) -> Table | None:
    """Table 4's steps within each group, paired per run: plain → + cyclic LR → + SWAG."""
    fin = data.finished
    rows: list[dict[str, str]] = []
    records: list[dict[str, Any]] = []
    sections: list[int] = []
    empty: list[str] = []
    for g, setup in _setup_groups(data, mode):
        fg = fin[fin["group"] == g]
        label = group_label(g, mode) + (f" (paper setup {TABLE4_LABELS[setup]})" if setup else "")
        first = True
        steps = [(key, mlabel, step, c) for key, mlabel in METRICS for step, c in phase_comparisons(fg, g, key)]
        if all(c.n_ref == 0 and c.n_other == 0 for *_, c in steps):
            empty.append(label)
            continue
        if rows:
            sections.append(len(rows))
        for key, mlabel, step, c in steps:
            if c.n_ref == 0 and c.n_other == 0:
                continue
            cells = [label if first else "", step, mlabel, *comparison_cells(c)]
            rows.append(dict(zip(["setup", "step", "metric", *COMPARISON_COLUMNS], cells)))
            first = False
            records.append(
                {"group": g, "paper_setup": setup or "", "step": step, "metric": key, **comparison_record(c)}
            )
    if not rows:
        return None
    notes = [
        COMPARISON_NOTE.replace("the first group − the second", "the later phase − the earlier one, within a run"),
        "plain = end of the main phase, + cyclic LR = last weights after the cosine-restart phase, + SWAG = the "
        "SWAG model; each step is paired per run (the phases of one run share its seed).",
    ]
    if empty:
        notes.append("No finished run recorded the phases (plain_*, cyclic_*, swag_*) of: " + ", ".join(empty) + ".")
    return Table(
        "table4_diff",
        "Table 4 differences: plain → + cyclic LR → + SWAG within a setup",
        pd.DataFrame(rows, columns=["setup", "step", "metric", *COMPARISON_COLUMNS]),
        pd.DataFrame(records),
        notes,
        sections=sections,
        left_cols=3,
        colour_deltas=False,
    )


# ---------------------------------------------------------------------------------
# All tables


def build_tables(data: SweepData, group_by: str = "auto", recompute: bool = True) -> tuple[str, dict[str, Table]]:
    """(mode, {key: Table}) in report order: Table 3 / grid and its differences, 4 and its
    differences, 1, 2."""
    mode = assign_groups(data, group_by)
    tables: dict[str, Table] = {}
    t3 = table3(data, mode)
    tables[t3.key] = t3
    t3d = table3_diff(data, mode)
    tables[t3d.key] = t3d
    t4 = table4(data, mode)
    if t4 is not None:
        tables["table4"] = t4
        t4d = table4_diff(data, mode)
        if t4d is not None:
            tables[t4d.key] = t4d
    t1 = table1(data, mode, recompute=recompute)
    tables["table1"] = t1
    # Parameter counts per group for Table 2 / Figure 1 (logged, else Table 1's recomputation).
    arch_params: dict[str, float] = {}
    for rec in t1.data.to_dict("records"):
        for g in str(rec["groups"]).split(";"):
            if rec["params"] is not None and not (isinstance(rec["params"], float) and math.isnan(rec["params"])):
                arch_params[g] = float(rec["params"])
    data.arch_params = arch_params
    tables["table2"] = table2(data, mode, arch_params)
    return mode, tables
