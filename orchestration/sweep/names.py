"""Trial names (MLflow run names, Ray trial folders): the grid point, then `-seed<k>`.

  - preset axis only:            `c-seed2`
  - one other axis:              `gem_p_init=4.0-seed0`
  - several axes:                `compact-1x-width_multiplier=0.5-seed1` (preset first,
                                 then the axes in the YAML's order)
  - no grid:                     the base preset, `g-seed0`
  - a search:                    from the sampled values, `lr=0.0213-label_smoothing=0.118-seed0`
The grid point is the name without `-seed<k>`, so seeds pool under one grid point.
"""
from __future__ import annotations

import re
from typing import Any, Mapping

SEED_SUFFIX = re.compile(r"-seed\d+$")


def format_value(v: Any) -> str:
    """A grid value as it appears in a trial name or a table: 4.0 -> '4.0', True -> 'true'."""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float):
        return repr(v)
    if isinstance(v, (list, tuple)):
        return "[" + ",".join(format_value(x) for x in v) + "]"
    return str(v)


def trial_name(preset: str | None, axes: Mapping[str, Any], seed: int) -> tuple[str, str]:
    """(trial name, grid point) of a grid trial; `preset` is None when it is not an axis."""
    parts = [preset] if preset is not None else []
    parts += [f"{k}={format_value(v)}" for k, v in axes.items()]
    point = "-".join(parts) if parts else "trial"
    return f"{point}-seed{seed}", point


def _short(v: Any) -> str:
    if isinstance(v, float) and not isinstance(v, bool):
        return f"{v:.3g}"
    return format_value(v)


def search_trial_name(values: Mapping[str, Any], seed: int) -> tuple[str, str]:
    """(trial name, grid point) of a searched trial, from its sampled values (leaf names)."""
    parts = [f"{k.rsplit('.', 1)[-1]}={_short(v)}" for k, v in values.items()]
    point = "-".join(parts) if parts else "sample"
    return f"{point}-seed{seed}", point
