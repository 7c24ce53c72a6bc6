"""`build_tables`: every table of the report, in report order, from a sweep's data (which it
leaves as it was)."""

from __future__ import annotations

from .ablation import table3
from .arch import group_params, model_sizes, table1
from .differences import table3_diff, table4_diff
from .groups import group_runs
from .sota import table2
from .swag_study import table4
from .sweep_data import SweepData, Table

__all__ = ["build_tables"]


def build_tables(data: SweepData, group_by: str = "auto", recompute: bool = True) -> tuple[str, dict[str, Table]]:
    """(mode, {key: Table}) in report order: Table 3 / grid and its differences, 4 and its
    differences, 1, 2. `data` is not changed (the groups live on a copy, groups.group_runs)."""
    grouped = group_runs(data, group_by)
    mode = str(grouped.group_by)
    sizes = model_sizes(grouped, mode, recompute=recompute)
    built = [
        table3(grouped, mode),
        table3_diff(grouped, mode),
        table4(grouped, mode),
        table4_diff(grouped, mode),
        table1(sizes, mode),
        table2(grouped, mode, group_params(sizes)),
    ]
    return mode, {table.key: table for table in built if table is not None}
