"""How each group's recorded config departs from its preset's defaults (scaled schedules,
narrower nets): the notes under Table 3 / the grid table."""

from __future__ import annotations

import math
from typing import Any

from reid_core.config import flatten
from reid_core.presets import PRESETS, preset_config

from ..sweep.trial import format_value
from .groups import group_label
from .sweep_data import NON_AXIS_PARAMS, SweepData

# Fields that say nothing about the method (where data lives, how many identities it has).
_NOT_OVERRIDES = NON_AXIS_PARAMS | {"preset", "model.num_classes"}


def _same(value: Any, default: Any) -> bool:
    if isinstance(default, float) or (isinstance(default, int) and isinstance(value, float)):
        return (
            isinstance(value, (int, float))
            and not isinstance(value, bool)
            and math.isclose(float(value), float(default))
        )
    return value == default


def overrides(cfg: Any, preset: str) -> dict[str, str] | None:
    """Recorded config fields that differ from the preset's defaults (None for an unknown preset)."""
    if preset not in PRESETS or cfg is None:
        return None
    defaults, recorded = flatten(preset_config(preset)), flatten(cfg)
    return {
        key: format_value(recorded[key])
        for key, default in defaults.items()
        if key not in _NOT_OVERRIDES and key in recorded and not _same(recorded[key], default)
    }


def override_notes(data: SweepData, groups: list[str], axis: set[str], mode: str) -> list[str]:
    """Say how the runs depart from their presets' defaults, first what every group shares."""
    included = data.included
    per_group: dict[str, dict[str, str]] = {}
    for group in groups:
        first_run = included[included["group"] == group].iloc[0]
        departures = overrides(first_run["_config"], str(first_run["preset"]))
        if departures is not None:
            per_group[group] = {key: value for key, value in departures.items() if key not in axis}
    if not per_group:
        return []
    common = dict(set.intersection(*(set(departures.items()) for departures in per_group.values())))
    notes = []
    if common:
        notes.append(
            "Every group departs from its preset's defaults in: "
            + ", ".join(f"{key}={value}" for key, value in sorted(common.items()))
        )
    for group, departures in per_group.items():
        rest = {key: value for key, value in departures.items() if key not in common}
        if rest:
            notes.append(
                f"{group_label(group, mode)} also: "
                + ", ".join(f"{key}={value}" for key, value in sorted(rest.items()))
            )
    return notes
