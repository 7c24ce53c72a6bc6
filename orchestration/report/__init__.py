"""The paper's tables and figures from what MLflow recorded for a sweep (docs/CONTRACTS.md).

    data = load_sweep("my-sweep", "sqlite:///mlflow.db")      # collect: -> SweepData
    mode, tables = build_tables(data)                         # tables/arch: {"table3": Table, ...}
    figures = build_figures(data, mode)                       # figures: Figures 6 and 1
    write_report(data, mode, tables, figures, out_dir)        # render/html/write: md, tex, csv, html

- `collect`: runs, tags, metrics, histories and each run's typed config.json (never the params);
- `compare`: a group's mean with its 95% interval, the difference of two groups with its
  interval, P(improve), verdict and seeds needed, and which groups are compared (no ray/mlflow);
- `groups`: table columns (presets or grid points), statistics over seeds, the comparisons of
  the differences tables, runs not averaged;
- `paper`: the paper's own figures and which column/setup a run's switches give;
- `tables` (Tables 3 and 4 and their differences, `build_tables`), `arch` (Tables 1 and 2),
  `figures` (forest plot, Figures 6 and 1);
- `render` (Markdown, LaTeX), `html` (jinja2 template), `write` (files + parent-run artifacts).
"""

from .collect import load_sweep
from .figures import build_figures
from .sweep_data import SweepData, Table, TablesError
from .table_builders import build_tables
from .write import summary_json, write_report

__all__ = [
    "load_sweep",
    "build_tables",
    "build_figures",
    "write_report",
    "summary_json",
    "SweepData",
    "Table",
    "TablesError",
]
