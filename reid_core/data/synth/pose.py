"""Where and how a person stands in a camera's box."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .cameras import CameraStyle

DIRECTIONS = ("front", "back", "left", "right")


@dataclass(frozen=True)
class Pose:
    """Where a person stands in one image, and how they walk."""

    direction: str  # front | back | left | right (walking direction as the camera sees it)
    phase: float  # walking cycle in [-1, 1]: leg and arm swing
    scale: float  # person height / box height
    dx: float  # horizontal offset, fraction of the box width
    dy: float  # vertical offset, fraction of the box height


def sample_pose(rng: np.random.Generator, camera: CameraStyle, direction: str | None = None) -> Pose:
    """A random pose; the direction follows the camera's usual walking directions unless given."""
    if direction is None:
        direction = DIRECTIONS[int(rng.choice(4, p=camera.view_probs))]
    return Pose(
        direction=direction,
        phase=float(rng.uniform(-1, 1)),
        scale=float(camera.scale * np.exp(rng.normal(0, 0.05))),
        dx=float(rng.normal(0, 0.05)),
        dy=float(rng.normal(0, 0.03)),
    )
