"""The self-contained HTML report: `templates/report.html.j2` (jinja2, autoescaped) with
`templates/report.css` inlined and the figures as base64 PNGs (no network access needed)."""

from __future__ import annotations

import base64
import datetime as _dt
import math
import re
from pathlib import Path
from typing import Any

from .figures import FigureResult
from .sweep_data import CHECK, FINISHED, MISSING, SweepData, Table

_TEMPLATES = Path(__file__).parent / "templates"
_DELTA = re.compile(r"^[+\-−]\d")
_PARTIAL = re.compile(r"\((\d+/\d+|n=\d+)\)")
_NUMERIC = re.compile(r"^[+\-−]?\d[\d.,]*(%| ±.*)?( \[.*\])?$")
_PILLS = {"finished": "FINISHED", "failed": "FAILED", "running": "RUNNING", "not started": "not-started"}


def _cell_class(v: str, col: int, colour_deltas: bool, left_cols: int = 1) -> str:
    if col < left_cols:
        return "txt"
    if v == CHECK:
        return "ck"
    if v in ("better", "worse"):  # a verdict of the differences tables
        return "pos" if v == "better" else "neg"
    if v == MISSING:
        return "na"
    if _PARTIAL.search(v):
        return "partial"
    if _DELTA.match(v) and colour_deltas:
        return "neg" if v[0] in "-−" else "pos"
    if _NUMERIC.match(v):
        return "num"
    return "txt" if len(v) > 24 else ""


def _table_view(t: Table) -> dict[str, Any]:
    rows = []
    for i, row in enumerate(t.display.itertuples(index=False)):
        cls = " ".join(c for c, on in (("sep", i in t.sections), ("hl", i in t.highlight_rows)) if on)
        cells = [(str(v), _cell_class(str(v), j, t.colour_deltas, t.left_cols)) for j, v in enumerate(row)]
        rows.append({"cls": cls, "cells": cells})
    problems = [] if t.problems is None else [{k: str(v) for k, v in p.items()} for p in t.problems.to_dict("records")]
    return {
        "key": t.key,
        "title": t.title,
        "columns": [str(c) for c in t.display.columns],
        "rows": rows,
        "notes": t.notes,
        "problems": problems,
    }


def counts(data: SweepData) -> dict[str, int]:
    """Trial runs per state (and planned, not started, excluded)."""
    status = data.included["status"]
    by_state = {
        "finished": int((status == FINISHED).sum()),
        "failed": int((status == "FAILED").sum()),
        "running": int((status == "RUNNING").sum()),
        "other": int((~status.isin([FINISHED, "FAILED", "RUNNING"])).sum()),
        "excluded": int((data.runs["excluded"] != "").sum()),
    }
    by_state["not started"] = len(data.not_started)
    if data.planned is not None:
        by_state["planned"] = len(data.planned)
    return by_state


def _runs_view(data: SweepData) -> list[list[tuple[str, str]]]:
    runs = data.runs
    out = []
    for _, row in runs.sort_values(["group", "trial_name"] if "group" in runs else ["trial_name"]).iterrows():
        cells = []
        for col in (
            "trial_name",
            "group",
            "seed",
            "dataset",
            "status",
            "metric.final_rank1",
            "metric.final_mAP",
            "run_id",
        ):
            value = row.get(col)
            if col.startswith("metric."):
                number = None if value is None or (isinstance(value, float) and math.isnan(value)) else float(value)
                cells.append((f"{100 * number:.1f}", "num") if number is not None else (MISSING, "na"))
            else:
                cells.append((str(value if value is not None else ""), ""))
        out.append(cells)
    return out


def render_html_report(data: SweepData, mode: str, tables: dict[str, Table], figures: list[FigureResult]) -> str:
    import jinja2

    env = jinja2.Environment(loader=jinja2.FileSystemLoader(_TEMPLATES), autoescape=True)
    figs = [
        {
            "key": f.key,
            "title": f.title,
            "caption": f.caption,
            "notes": f.notes,
            "png_b64": base64.b64encode(f.png_bytes()).decode("ascii") if f.figure is not None else "",
        }
        for f in figures
    ]
    return env.get_template("report.html.j2").render(
        data=data,
        mode=mode,
        css=(_TEMPLATES / "report.css").read_text(encoding="utf-8"),
        now=_dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        counts=counts(data),
        pill_cls=_PILLS,
        sections=[(t.key, t.title) for t in tables.values()] + [(f.key, f.title) for f in figures],
        tables=[_table_view(t) for t in tables.values()],
        figures=figs,
        runs=_runs_view(data),
        missing=MISSING,
    )
