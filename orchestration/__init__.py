"""orchestration: Ray Tune sweeps, MLflow tracking, tables and the `compact-reid` CLI."""
