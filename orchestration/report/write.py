"""Write the report's files into --out and log them on the sweep's parent run (`tables/`)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Iterable

import pandas as pd

from ..mlflow_log import names
from .figures import FigureResult
from .groups import group_runs
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

    Returns {"files": [...], "logged_to": run id or None}. `data` is not changed (the runs
    list is grouped on a copy).
    """
    grouped = group_runs(data, mode)
    formats = list(formats)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    files: list[Path] = []

    def write_text(name: str, text: str) -> None:
        path = out_dir / name
        path.write_text(text, encoding="utf-8")
        files.append(path)

    def write_csv(name: str, frame: pd.DataFrame) -> None:
        path = out_dir / name
        frame.to_csv(path, index=False)
        files.append(path)

    for figure in figures:
        files += figure.save(out_dir)
    if "md" in formats:
        write_text("tables.md", render_markdown_report(grouped, mode, tables, figures))
    if "latex" in formats:
        for table in tables.values():
            write_text(f"{table.key}.tex", to_latex(table))
        write_text("tables.tex", render_latex_report(tables))
    if "csv" in formats:
        for table in tables.values():
            write_csv(f"{table.key}.csv", table.data)
        write_csv("runs.csv", _runs_csv(grouped))
    if "html" in formats:
        write_text("report.html", render_html_report(grouped, mode, tables, figures))
    logged_to = None
    if log and grouped.parent_run_id:
        from ..mlflow_log import client_for

        client = client_for(grouped.tracking_uri)
        for path in files:
            client.log_artifact(grouped.parent_run_id, str(path), artifact_path=names.TABLES_DIR)
        logged_to = grouped.parent_run_id
    return {"files": [str(path) for path in files], "logged_to": logged_to}


def summary_json(
    data: SweepData, mode: str, tables: dict[str, Table], figures: list[FigureResult], written: dict[str, Any]
) -> str:
    first_table = next(iter(tables.values()))
    out = {
        "experiment": data.experiment_name,
        "experiment_id": data.experiment_id,
        "tracking_uri": data.tracking_uri,
        "parent_run_id": data.parent_run_id,
        "group_by": mode,
        "counts": counts(data),
        "warnings": data.warnings,
        "tables": {key: {"title": t.title, "rows": records(t.data), "notes": t.notes} for key, t in tables.items()},
        "not_averaged": records(first_table.problems),
        "figures": {fig.key: {"drawn": fig.figure is not None, "notes": fig.notes} for fig in figures},
        **written,
    }
    return json.dumps(out, indent=2, default=str)


def write_experiment_tables(
    experiment: str,
    tracking_uri: str,
    out: str | Path,
    formats: str = "md,latex,html,csv",
    group_by: str = "auto",
    log: bool = True,
) -> list[str]:
    """Every table and figure of one experiment into `out`, as `compact-reid tables` writes
    them (and logged on its parent run); the files written."""
    from .build import build_tables
    from .collect import load_sweep
    from .figures import build_figures
    from .render import parse_formats

    data = load_sweep(experiment, tracking_uri)
    mode, tables = build_tables(data, group_by)
    figures = build_figures(data, mode)
    written = write_report(data, mode, tables, figures, Path(out), parse_formats(formats), log=log)
    return list(written["files"])
