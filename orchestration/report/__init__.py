"""The paper's tables and figures from what MLflow recorded for a sweep (docs/CONTRACTS.md).

    data = load_sweep("my-sweep", "sqlite:///mlflow.db")      # collect: -> SweepData
    mode, tables = build_tables(data)                         # build: {"table3": Table, ...}
    figures = build_figures(data, mode)                       # figures: forest plot, Figures 6 and 1
    write_report(data, mode, tables, figures, out_dir)        # render/html/write: md, tex, csv, html

Nothing after `load_sweep` changes `data`: the groups live on a copy (`groups.group_runs`),
and what one table needs from another (parameters per group) is passed explicitly.

- `sweep_data` (SweepData, Table), `collect` (the store -> SweepData; MLflow names from
  `orchestration.mlflow_log.names`);
- `groups` (table columns: presets or grid points), `cells` (statistics over seeds, cell
  text), `problems` (runs not averaged), `compare` (intervals, differences, verdicts; no
  ray/mlflow), `comparisons` (which groups are compared), `paper` (the paper's figures);
- `layout` (`Row` / `Column`: each row defined once with its cell function);
- `ablation` (Table 3 / grid table), `preset_overrides` (its notes on config departures),
  `swag_study` (Table 4), `differences` (both differences tables), `arch` (Table 1 and
  parameters per group), `sota` (Table 2), `build` (`build_tables`), `figures`;
- `render` (Markdown, LaTeX), `html` (jinja2 template), `write` (files + parent-run artifacts).
"""

from .build import build_tables
from .collect import load_sweep
from .figures import build_figures
from .groups import group_runs
from .sweep_data import SweepData, Table, TablesError
from .write import summary_json, write_experiment_tables, write_report

__all__ = [
    "load_sweep",
    "group_runs",
    "build_tables",
    "build_figures",
    "write_report",
    "summary_json",
    "write_experiment_tables",
    "SweepData",
    "Table",
    "TablesError",
]
