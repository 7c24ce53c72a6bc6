"""Table 2 (the paper's state-of-the-art rows with this sweep's best groups)."""

from __future__ import annotations

from typing import Any, Mapping

import pandas as pd

from ..mlflow_log import names
from .cells import fmt_num, fmt_stat, stat
from .groups import group_label
from .paper import PAPER_DATASETS, load_sota
from .sweep_data import CONFIG_PREFIX, MISSING, SweepData, Table, metric, num

__all__ = ["best_groups", "table2"]

NOTE = (
    "Literature rows: the paper's Table 2 (orchestration/report/data/sota_market_duke.csv); params (M) only "
    f"where publicly known, else –. This sweep: per dataset ({names.DATA_NAME_PARAM} param) the group with the best "
    "mean final rank-1, and the best of each other model size; % mean ± sample std over its finished "
    "seeds. A synthetic or other dataset gets its own columns: its numbers are not comparable."
)


def best_groups(data: SweepData) -> list[dict[str, Any]]:
    """Per dataset: the group with the best mean final rank-1, and the best of each other
    model size (the paper lists its 1x and 2x models)."""
    finished = data.finished
    out = []
    for dataset in dict.fromkeys(finished["dataset"]):
        on_dataset = finished[finished["dataset"] == dataset]
        candidates = []
        for group in dict.fromkeys(on_dataset["group"]):
            runs = on_dataset[on_dataset["group"] == group]
            rank1, mean_ap = stat(metric(runs, "final_rank1")), stat(metric(runs, "final_mAP"))
            if rank1.mean is None:
                continue
            params = [value for value in (num(x) for x in metric(runs, "params")) if value is not None]
            size_col = CONFIG_PREFIX + "model.size"
            size = str(runs[size_col].iloc[0]) if size_col in runs else ""
            candidates.append(
                {
                    "dataset": dataset,
                    "group": group,
                    "rank1": rank1,
                    "mAP": mean_ap,
                    "size": size,
                    "params": params[0] if params else None,
                }
            )
        candidates.sort(key=lambda candidate: -candidate["rank1"].mean)
        sizes_seen = set()
        for candidate in candidates:
            if candidate["size"] not in sizes_seen:
                out.append(candidate)
                sizes_seen.add(candidate["size"])
    return out


def table2(data: SweepData, mode: str, params_of_group: Mapping[str, float]) -> Table:
    """Table 2; `params_of_group` (arch.group_params) where a group's runs logged no params."""
    sota = load_sota()
    best = best_groups(data)
    extra = [d for d in dict.fromkeys(b["dataset"] for b in best) if d not in dict(PAPER_DATASETS)]
    cols = list(PAPER_DATASETS) + [(d, None) for d in extra]
    rows, records = [], []
    for _, paper_row in sota.iterrows():
        method = {"family": paper_row["family"], "method": paper_row["method"]}
        row = {**method, "params (M)": fmt_num(num(paper_row["params_m"]))}
        record = {**method, "params_m": num(paper_row["params_m"]), "source": "paper"}
        for dataset, prefix in cols:
            rank1 = num(paper_row[f"{prefix}_r1"]) if prefix else None
            mean_ap = num(paper_row[f"{prefix}_map"]) if prefix else None
            row[f"{dataset} R1"], row[f"{dataset} mAP"] = fmt_num(rank1), fmt_num(mean_ap)
            record[f"{dataset}_r1"], record[f"{dataset}_mAP"] = rank1, mean_ap
        rows.append(row)
        records.append(record)
    highlight = []
    for candidate in best:
        params = candidate["params"] if candidate["params"] is not None else params_of_group.get(candidate["group"])
        params_m = None if params is None else params / 1e6
        seeds = candidate["rank1"].n
        row = {
            "family": "This sweep",
            "method": f"{group_label(candidate['group'], mode)} ({candidate['dataset']}, "
            f"{seeds} seed{'s' if seeds != 1 else ''})",
            "params (M)": fmt_num(params_m),
        }
        record = {
            "family": "This sweep",
            "method": candidate["group"],
            "params_m": params_m,
            "source": data.experiment_name,
        }
        for dataset, _ in cols:
            mine = dataset == candidate["dataset"]
            row[f"{dataset} R1"] = fmt_stat(candidate["rank1"], None, show_n=False) if mine else MISSING
            row[f"{dataset} mAP"] = fmt_stat(candidate["mAP"], None, show_n=False) if mine else MISSING
            record[f"{dataset}_r1"] = candidate["rank1"].mean if mine else None
            record[f"{dataset}_mAP"] = candidate["mAP"].mean if mine else None
        record["seeds"] = seeds
        highlight.append(len(rows))
        rows.append(row)
        records.append(record)
    sections = [i for i in range(1, len(rows)) if rows[i]["family"] != rows[i - 1]["family"]]
    for start in sorted(sections, reverse=True) + [0]:  # the family name once per block, as in the paper
        for j in range(start + 1, len(rows)):
            if j in sections:
                break
            rows[j] = {**rows[j], "family": ""}
    return Table(
        "table2",
        "Table 2: comparison with the state of the art",
        pd.DataFrame(rows),
        pd.DataFrame(records),
        [NOTE],
        highlight_rows=highlight,
        sections=sections,
        left_cols=2,
    )
