"""Table 1 (architecture: parameters and multiply-accumulates per distinct model config)
and Table 2 (the paper's state-of-the-art rows with this sweep's best groups)."""

from __future__ import annotations

from typing import Any, Mapping

import pandas as pd

from .groups import fmt_num, fmt_stat, group_label, group_order, stat
from .paper import PAPER_DATASETS, load_sota
from .sweep_data import CONFIG_PREFIX, MISSING, SweepData, Table, metric, num

__all__ = ["table1", "table2", "best_groups"]


def _paper_arch(m: Any) -> str | None:
    if (m.width_multiplier, m.depth_multiplier, m.global_dim, m.local_dim, m.input_height, m.input_width) != (
        1.0,
        1.0,
        0,
        0,
        160,
        64,
    ):
        return None
    return {("inception", "1x"): "hacnn", ("shuffle", "1x"): "compact-1x", ("shuffle", "2x"): "compact-2x"}.get(
        (m.block, m.size)
    )


def _arch_label(m: Any) -> str:
    label = f"{'Shuffle' if m.block == 'shuffle' else 'Inception'} {m.size}"
    extras = []
    if m.width_multiplier != 1.0:
        extras.append(f"width x{m.width_multiplier:g}")
    if m.depth_multiplier != 1.0:
        extras.append(f"depth x{m.depth_multiplier:g}")
    if m.global_dim or m.local_dim:
        extras.append(f"FC {m.global_features}/{m.local_features}")
    if (m.input_height, m.input_width) != (160, 64):
        extras.append(f"{m.input_height}x{m.input_width}")
    extras.append(m.pooling)
    return label + (" (" + ", ".join(extras) + ")" if extras else "")


def table1(data: SweepData, mode: str, recompute: bool = True) -> Table:
    from reid_core.complexity import PAPER_TABLE1

    inc = data.included
    models: dict[Any, dict[str, Any]] = {}  # one entry per distinct ModelConfig (frozen: hashable)
    for _, r in inc.iterrows():
        m = models.setdefault(r["_config"].model, {"groups": [], "runs": []})
        if r["group"] not in m["groups"]:
            m["groups"].append(r["group"])
        m["runs"].append(r)
    order = {g: i for i, g in enumerate(group_order(data, mode))}
    rows, records, notes = [], [], []
    for model_cfg, m in sorted(models.items(), key=lambda kv: min(order.get(g, 10**9) for g in kv[1]["groups"])):
        measured: dict[str, float | None] = {}
        for k in ("params", "params_with_classifiers", "macs"):
            vals = [v for v in (num(r.get(f"metric.{k}")) for r in m["runs"]) if v is not None]
            measured[k] = vals[0] if vals else None
        source = "logged"
        if any(v is None for v in measured.values()) and recompute:
            from reid_core.complexity import profile_model

            prof = profile_model(model_cfg)
            for k in measured:
                if measured[k] is None:
                    measured[k] = float(prof[k])
            source = "recomputed"
        arch = _paper_arch(model_cfg)
        paper = PAPER_TABLE1.get(arch or "", {"params_m": None, "macs_g": None})
        pm = None if measured["params"] is None else measured["params"] / 1e6
        pwc = None if measured["params_with_classifiers"] is None else measured["params_with_classifiers"] / 1e6
        mg = None if measured["macs"] is None else measured["macs"] / 1e9
        pct = lambda v, p: MISSING if v is None or not p else f"{100 * (v - p) / p:+.1f}%"  # noqa: E731
        nc = model_cfg.num_classes
        rows.append(
            {
                "model": _arch_label(model_cfg),
                "groups": ", ".join(group_label(g, mode) for g in m["groups"]),
                "params (M)": fmt_num(pm, 3),
                "+ classifiers (M)": fmt_num(pwc, 3) + (f" [{nc} ids]" if pwc is not None else ""),
                "paper params (M)": fmt_num(paper["params_m"]),
                "Δ params": pct(pm, paper["params_m"]),
                "MACs (G)": fmt_num(mg, 3),
                "paper MACs (G)": fmt_num(paper["macs_g"], 2),
                "Δ MACs": pct(mg, paper["macs_g"]),
            }
        )
        records.append(
            {
                "model": _arch_label(model_cfg),
                "paper_model": arch or "",
                "groups": ";".join(m["groups"]),
                "num_classes": nc,
                "params": measured["params"],
                "params_with_classifiers": measured["params_with_classifiers"],
                "macs": measured["macs"],
                "source": source,
                "paper_params_m": paper["params_m"],
                "paper_macs_g": paper["macs_g"],
            }
        )
    notes.insert(
        0,
        "params = unique parameters of the test-time network WITHOUT the two identity classifiers "
        "(+ classifiers: with them, for the run's number of training identities); MACs = "
        "multiply-accumulates of one 160x64 image at test time (conv + linear). Values logged by "
        "the runs (params, params_with_classifiers, macs) or recomputed from the recorded config "
        "with reid_core.complexity.profile_model. The paper quotes 2.7 M for HA-CNN (no MACs).",
    )
    return Table(
        "table1",
        "Table 1: architecture (parameters and multiply-accumulates)",
        pd.DataFrame(rows),
        pd.DataFrame(records),
        notes,
        colour_deltas=False,
        left_cols=2,
    )


def best_groups(data: SweepData) -> list[dict[str, Any]]:
    """Per dataset: the group with the best mean final rank-1, and the best of each other
    model size (the paper lists its 1x and 2x models)."""
    fin = data.finished
    out = []
    for dataset in dict.fromkeys(fin["dataset"]):
        fd = fin[fin["dataset"] == dataset]
        cands = []
        for g in dict.fromkeys(fd["group"]):
            fg = fd[fd["group"] == g]
            r1, mp = stat(metric(fg, "final_rank1")), stat(metric(fg, "final_mAP"))
            if r1.mean is None:
                continue
            params = [v for v in (num(x) for x in metric(fg, "params")) if v is not None]
            size = str(fg[CONFIG_PREFIX + "model.size"].iloc[0]) if CONFIG_PREFIX + "model.size" in fg else ""
            cands.append(
                {
                    "dataset": dataset,
                    "group": g,
                    "rank1": r1,
                    "mAP": mp,
                    "size": size,
                    "params": params[0] if params else None,
                }
            )
        cands.sort(key=lambda c: -c["rank1"].mean)
        picked, sizes = [], set()
        for c in cands:
            if c["size"] not in sizes:
                picked.append(c)
                sizes.add(c["size"])
        out.extend(picked)
    return out


def table2(data: SweepData, mode: str, arch_params: Mapping[str, float] | None = None) -> Table:
    sota = load_sota()
    best = best_groups(data)
    extra = [d for d in dict.fromkeys(b["dataset"] for b in best) if d not in dict(PAPER_DATASETS)]
    cols = list(PAPER_DATASETS) + [(d, None) for d in extra]
    rows, records = [], []
    for _, r in sota.iterrows():
        row = {"family": r["family"], "method": r["method"], "params (M)": fmt_num(num(r["params_m"]))}
        rec = {"family": r["family"], "method": r["method"], "params_m": num(r["params_m"]), "source": "paper"}
        for d, prefix in cols:
            r1 = num(r[f"{prefix}_r1"]) if prefix else None
            mp = num(r[f"{prefix}_map"]) if prefix else None
            row[f"{d} R1"], row[f"{d} mAP"] = fmt_num(r1), fmt_num(mp)
            rec[f"{d}_r1"], rec[f"{d}_mAP"] = r1, mp
        rows.append(row)
        records.append(rec)
    highlight = []
    for b in best:
        params = b["params"] if b["params"] is not None else (arch_params or {}).get(b["group"])
        pm = None if params is None else params / 1e6
        seeds = b["rank1"].n
        row = {
            "family": "This sweep",
            "method": f"{group_label(b['group'], mode)} ({b['dataset']}, {seeds} seed{'s' if seeds != 1 else ''})",
            "params (M)": fmt_num(pm),
        }
        rec = {"family": "This sweep", "method": b["group"], "params_m": pm, "source": data.experiment_name}
        for d, _ in cols:
            mine = d == b["dataset"]
            row[f"{d} R1"] = fmt_stat(b["rank1"], None, show_n=False) if mine else MISSING
            row[f"{d} mAP"] = fmt_stat(b["mAP"], None, show_n=False) if mine else MISSING
            rec[f"{d}_r1"] = b["rank1"].mean if mine else None
            rec[f"{d}_mAP"] = b["mAP"].mean if mine else None
        rec["seeds"] = seeds
        highlight.append(len(rows))
        rows.append(row)
        records.append(rec)
    notes = [
        "Literature rows: the paper's Table 2 (orchestration/report/data/sota_market_duke.csv); params (M) only "
        "where publicly known, else –. This sweep: per dataset (data.name param) the group with the best "
        "mean final rank-1, and the best of each other model size; % mean ± sample std over its finished "
        "seeds. A synthetic or other dataset gets its own columns: its numbers are not comparable."
    ]
    sections = [i for i in range(1, len(rows)) if rows[i]["family"] != rows[i - 1]["family"]]
    for i in sorted(sections, reverse=True) + [0]:  # the family name once per block, as in the paper
        for j in range(i + 1, len(rows)):
            if j in sections:
                break
            rows[j] = {**rows[j], "family": ""}
    return Table(
        "table2",
        "Table 2: comparison with the state of the art",
        pd.DataFrame(rows),
        pd.DataFrame(records),
        notes,
        highlight_rows=highlight,
        sections=sections,
        left_cols=2,
    )
