"""Trial names (MLflow run names, Ray trial folders): the grid point, then `-seed<k>`.

  - preset axis only:            `c-seed2`
  - one other axis:              `gem_p_init=4.0-seed0`
  - several axes:                `compact-1x-width_multiplier=0.5-seed1` (preset first,
                                 then the axes in the YAML's order)
  - no grid:                     the base preset, `g-seed0`
  - a search:                    from the sampled values, `lr=0.0213-label_smoothing=0.118-seed0`
The grid point is the name without `-seed<k>`, so seeds pool under one grid point.
A trial record (Ray's `config["trial"]`, trial_plan.py) carries its planned name, or for a
search the keys whose sampled values name it: `record_name`, Ray's `trial_name_creator`.
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


def python_value(v: Any) -> Any:
    """Numpy scalars (Optuna's samples) as Python values, recursively."""
    if isinstance(v, dict):
        return {k: python_value(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [python_value(x) for x in v]
    return v.item() if hasattr(v, "item") and not isinstance(v, (int, float, str, bool)) else v


def sampled_values(record: Mapping[str, Any]) -> dict[str, Any]:
    """A searched record's sampled values (dotted key -> value); {} for a grid record."""
    out = {}
    for dotted in record.get("search_keys") or ():
        v: Any = record["config"]
        for k in dotted.split("."):
            v = v[k]
        out[dotted] = python_value(v)
    return out


def record_name(record: Mapping[str, Any]) -> tuple[str, str]:
    """(trial name, grid point) of a trial record: as planned, or from its sampled values."""
    values = sampled_values(record)
    if values:
        return search_trial_name(values, int(record["seed"]))
    return record["trial_name"], record["grid_point"]


def trial_name_creator(trial: Any) -> str:
    """Ray's name of a trial (`TuneConfig.trial_name_creator`): its record's name."""
    record = (trial.config or {}).get("trial")
    return record_name(record)[0] if record else str(trial.trial_id)


def trial_dirname_creator(trial: Any) -> str:
    """Ray's trial folder: the trial name made safe for a path, then Ray's trial id."""
    safe = "".join(ch if ch.isalnum() or ch in "-_.=" else "_" for ch in trial_name_creator(trial))[:80]
    return f"{safe}_{trial.trial_id}"
