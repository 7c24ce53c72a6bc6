"""The tiny sweep YAML the sweep tests run (synthetic data, width and depth 0.25, one CPU a trial),
written once: `tiny_sweep_yaml(name, description, ...)` returns the file's text."""

from __future__ import annotations

from typing import Any

TINY_SYNTHETIC = "{ids: 24, train_ids: 12, cameras: 2, images_per_id: 6, seed: 0}"


def tiny_sweep_yaml(
    name: str,
    description: str,
    *,
    grid: str = "grid:\n  preset: [g]",
    seeds: str = "[0, 1]",
    scale: float = 0.01,
    eval_every: int = 2,
    extra_overrides: dict[str, Any] | None = None,
    max_concurrent: int = 2,
    max_failures: int = 1,
) -> str:
    """`grid` is the YAML of the grid point (a `grid:` block or `base_preset: x`); `extra_overrides`
    are added after `schedule.scale`."""
    overrides = {
        "model.width_multiplier": 0.25,
        "model.depth_multiplier": 0.25,
        "schedule.scale": scale,
        **(extra_overrides or {}),
        "data.p": 4,
        "data.k": 4,
        "data.num_workers": 0,
        "eval.every": eval_every,
        "eval.batch_size": 64,
    }
    lines = [
        f"name: {name}",
        f"description: {description}",
        "dataset:",
        f"  synthetic: {TINY_SYNTHETIC}",
        grid,
        f"seeds: {seeds}",
        "overrides:",
        *(f"  {k}: {v}" for k, v in overrides.items()),
        "resources: {cpu: 1, gpu: 0}",
        f"max_concurrent: {max_concurrent}",
        f"max_failures: {max_failures}",
    ]
    return "\n".join(lines) + "\n"
