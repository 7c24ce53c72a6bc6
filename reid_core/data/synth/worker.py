"""Rendering and writing one planned image: what each worker process runs.

Everything a worker needs travels in a `RenderContext` bound to `render_task` with
functools.partial, so the same function runs in-process or in a pool.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from . import streams
from .appearance import PersonAppearance, sample_identity
from .cameras import CameraStyle
from .plan import ImageTask, file_name
from .pose import DIRECTIONS, Pose, sample_pose
from .render import render_background, render_person


@dataclass(frozen=True)
class RenderContext:
    """What is the same for every image of a dataset (small and picklable)."""

    seed: int
    cameras: tuple[CameraStyle, ...]  # computed once by the caller, not per image
    size: tuple[int, int]  # height, width
    out_dir: str


@functools.lru_cache(maxsize=4096)
def _identity(seed: int, pid: int) -> PersonAppearance:
    # A memo of a pure function: each worker samples a person once, not once per image.
    return sample_identity(np.random.default_rng([seed, streams.IDENTITY, pid]))


def _track_pose(seed: int, pid: int, cam: CameraStyle, rng: np.random.Generator) -> Pose:
    """A person walks one way through a camera's view: images of one (id, camera) share
    direction and framing, with per-image jitter and an occasional turn."""
    track_rng = np.random.default_rng([seed, streams.TRACK, pid, cam.index])
    base = sample_pose(track_rng, cam)
    direction = base.direction if rng.random() > 0.25 else DIRECTIONS[int(rng.choice(4, p=cam.view_probs))]
    return Pose(
        direction=direction,
        phase=float(rng.uniform(-1, 1)),
        scale=float(base.scale * np.exp(rng.normal(0, 0.02))),
        dx=float(base.dx + rng.normal(0, 0.02)),
        dy=float(base.dy + rng.normal(0, 0.015)),
    )


def render_task(context: RenderContext, task: ImageTask) -> str:
    """Render the task's image, save it as JPEG under its subset folder; returns the subset."""
    seed, size = context.seed, context.size
    cam = context.cameras[task.cam]
    if task.kind == "id":
        rng = np.random.default_rng([seed, streams.IMAGE, task.number, task.image])
        pose = _track_pose(seed, task.number, cam, rng)
        img = render_person(_identity(seed, task.number), cam, rng, size, pose=pose)
    elif task.kind == "distractor":  # a one-off person, often a bad (partial) detection
        rng = np.random.default_rng([seed, streams.DISTRACTOR, task.number])
        pose = sample_pose(rng, cam)
        if rng.random() < 0.5:
            pose = Pose(
                pose.direction, pose.phase, pose.scale * rng.uniform(1.2, 1.8), pose.dx * 2, rng.uniform(-0.35, 0.35)
            )
        img = render_person(sample_identity(rng), cam, rng, size, pose=pose)
    else:  # junk: background, or a fragment of a body
        rng = np.random.default_rng([seed, streams.JUNK, task.number])
        if rng.random() < 0.6:
            img = render_background(cam, rng, size)
        else:
            pose = sample_pose(rng, cam)
            pose = Pose(
                pose.direction,
                pose.phase,
                pose.scale * rng.uniform(2.0, 3.0),
                rng.uniform(-0.5, 0.5),
                rng.uniform(-0.6, 0.6),
            )
            img = render_person(sample_identity(rng), cam, rng, size, pose=pose)
    name = file_name(seed, task)
    quality = int(np.clip(cam.jpeg_quality + rng.integers(-5, 6), 20, 95))
    img.save(Path(context.out_dir) / task.subset / name, format="JPEG", quality=quality)
    return task.subset
