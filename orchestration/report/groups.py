"""Groups (table columns), statistics over seeds, cell formatting, runs not averaged."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any, Iterable

import pandas as pd

from reid_core.presets import SWITCHES, TABLE3_COLUMNS

from .paper import COLUMN_LABELS
from .sweep_data import FINISHED, MISSING, SweepData, TablesError, num


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
