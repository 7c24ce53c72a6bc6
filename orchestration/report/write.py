"""Write the report's files into --out and log them on the sweep's parent run (`tables/`)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Iterable

import pandas as pd

from ..mlflow_log import names
from .figures import FigureResult
from .html import counts, render_html_report
from .render import FORMATS, records, render_latex_report, render_markdown_report, to_latex
from .sweep_data import SweepData, Table

__all__ = ["write_report", "summary_json"]


def _runs_csv(data: SweepData) -> pd.DataFrame:
    front = [
        "trial_name",
        "group",
        "preset",
        "grid_point",
        "seed",
        "dataset",
        "status",
        "error",
        "excluded",
        "schema_version",
        "run_id",
        "run_name",
        "triplet",
    ]
    cols = [c for c in front if c in data.runs.columns]
    rest = sorted(c for c in data.runs.columns if c not in cols and not c.startswith("_"))
    return data.runs[cols + rest]


def write_report(
    data: SweepData,
    mode: str,
    tables: dict[str, Table],
    figures: list[FigureResult],
    out_dir: Path,
    formats: Iterable[str] = FORMATS,
    log: bool = True,
) -> dict[str, Any]:
    """Writes the files; logs them on the parent run (artifact path `tables/`) unless log=False.

    Returns {"files": [...], "logged_to": run id or None}.
    """
    formats = list(formats)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    files: list[Path] = []
    for f in figures:
        files += f.save(out_dir)
    if "md" in formats:
        p = out_dir / "tables.md"
        p.write_text(render_markdown_report(data, mode, tables, figures), encoding="utf-8")
        files.append(p)
    if "latex" in formats:
        for t in tables.values():
            p = out_dir / f"{t.key}.tex"
            p.write_text(to_latex(t), encoding="utf-8")
            files.append(p)
        p = out_dir / "tables.tex"
        p.write_text(render_latex_report(tables), encoding="utf-8")
        files.append(p)
    if "csv" in formats:
        for t in tables.values():
            p = out_dir / f"{t.key}.csv"
            t.data.to_csv(p, index=False)
            files.append(p)
        p = out_dir / "runs.csv"
        _runs_csv(data).to_csv(p, index=False)
        files.append(p)
    if "html" in formats:
        p = out_dir / "report.html"
        p.write_text(render_html_report(data, mode, tables, figures), encoding="utf-8")
        files.append(p)
    logged_to = None
    if log and data.parent_run_id:
        from ..mlflow_log import client_for

        client = client_for(data.tracking_uri)
        for p in files:
            client.log_artifact(data.parent_run_id, str(p), artifact_path=names.TABLES_DIR)
        logged_to = data.parent_run_id
    return {"files": [str(p) for p in files], "logged_to": logged_to}


def summary_json(
    data: SweepData, mode: str, tables: dict[str, Table], figures: list[FigureResult], written: dict[str, Any]
) -> str:
    t3 = next(iter(tables.values()))
    out = {
        "experiment": data.experiment_name,
        "experiment_id": data.experiment_id,
        "tracking_uri": data.tracking_uri,
        "parent_run_id": data.parent_run_id,
        "group_by": mode,
        "counts": counts(data),
        "warnings": data.warnings,
        "tables": {k: {"title": t.title, "rows": records(t.data), "notes": t.notes} for k, t in tables.items()},
        "not_averaged": records(t3.problems),
        "figures": {f.key: {"drawn": f.figure is not None, "notes": f.notes} for f in figures},
        **written,
    }
    return json.dumps(out, indent=2, default=str)
