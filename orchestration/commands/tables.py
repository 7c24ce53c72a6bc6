"""`compact-reid tables`: the paper's Tables 1-4 and Figures 1 and 6 from a sweep's MLflow runs."""

from __future__ import annotations

import argparse
import os
import re
import sys
from pathlib import Path

from orchestration.mlflow_log.store import quiet_store_logs, resolve_tracking_uri  # imports no mlflow


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "tables",
        help="tables and figures of the paper from a sweep's MLflow runs",
        description="Reads what MLflow recorded for a sweep (parent run + trials.json, child runs: params, tags, "
        "metric histories) and writes Table 3 (ablation, or a grid table for a sweep over a config "
        "axis), Table 4 (SWAG study), Table 1 (parameters, MACs), Table 2 (state of the art with "
        "this sweep's best runs), Figure 6 (SWAG vs SGD) and Figure 1 (accuracy vs parameters) as "
        "Markdown, LaTeX (booktabs), CSV and one self-contained HTML page; the files are also logged "
        "on the sweep's parent run under tables/. Exit code 2 for an unusable experiment.",
    )
    parser.add_argument("--experiment", required=True, help="the sweep's MLflow experiment (named after the sweep)")
    parser.add_argument(
        "--tracking-uri",
        default=None,
        help="MLflow tracking URI: sqlite:///path/mlflow.db, a *.db path or http://host:port "
        "(default: $MLFLOW_TRACKING_URI, else sqlite:///<abs>/<runs-dir>/mlflow.db)",
    )
    parser.add_argument("--runs-dir", default="runs", help="folder of the local defaults (default ./runs)")
    parser.add_argument("--out", default=None, help="output folder (default: tables/<experiment>)")
    parser.add_argument(
        "--format",
        default="md,latex,html,csv",
        help="comma-separated subset of md, latex, html, csv (figures are always written as PNG + SVG)",
    )
    parser.add_argument(
        "--group-by",
        choices=("auto", "preset", "grid_point"),
        default="auto",
        help="table columns: one per preset (Table 3), one per grid point (grid table), or auto: "
        "preset when every preset has a single grid point",
    )
    parser.add_argument("--no-log", action="store_true", help="do not log the files on the sweep's parent run")
    parser.add_argument("--json", action="store_true", help="machine-readable summary on stdout instead of Markdown")
    parser.set_defaults(func=run)


def _quiet_mlflow() -> None:
    # A read-only command: fail fast on an unreachable server instead of minutes of retries,
    # and keep the store's migration chatter off the console.
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "2")
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "20")
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    quiet_store_logs()


def run(args: argparse.Namespace) -> int:
    _quiet_mlflow()
    from mlflow.exceptions import MlflowException

    from orchestration.report import TablesError, build_figures, build_tables, load_sweep, summary_json, write_report
    from orchestration.report.render import parse_formats, render_markdown_report

    formats = parse_formats(args.format)
    uri = resolve_tracking_uri(args.tracking_uri, args.runs_dir)
    out = Path(args.out) if args.out else Path("tables") / re.sub(r"[^A-Za-z0-9._=-]+", "_", args.experiment)
    try:
        data = load_sweep(args.experiment, uri)
        mode, tables = build_tables(data, args.group_by)
        figures = build_figures(data, mode)
        written = write_report(data, mode, tables, figures, out, formats, log=not args.no_log)
    except MlflowException as e:
        raise TablesError(f"MLflow ({uri}): {e.message}") from None
    except OSError as e:
        raise TablesError(f"--out {out}: {e}") from None
    if args.json:
        print(summary_json(data, mode, tables, figures, written))
        return 0
    print(render_markdown_report(data, mode, tables, figures))
    where = f"; logged on run {written['logged_to']} under tables/" if written["logged_to"] else ""
    print(f"wrote {len(written['files'])} files to {out}{where}", file=sys.stderr)
    return 0
