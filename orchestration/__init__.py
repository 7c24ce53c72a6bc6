"""orchestration: Ray Tune sweeps, MLflow tracking, tables and the `compact-reid` CLI.

- `cli` and `commands` (one module per subcommand); `sweep` (spec, Ray Tune runner, trial);
- `mlflow_log` (MLflow names, tracking-URI rule, runs); `report` (tables and figures);
- `multicam_eval` (Table 5 over a sweep's trials, logged on their runs).
"""
