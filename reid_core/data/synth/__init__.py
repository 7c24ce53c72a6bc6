"""Synthetic person-ReID data in the Market-1501 layout, for machines without datasets.

A person is a cheap 2-D figure (colours and shapes carry the identity); cameras change
what real cameras change. Each image has its own random stream seeded by (seed, kind, id,
image index): byte-identical output whatever the number of workers. The appearance model
and the renderer are public (the multicam scene reuses them).

Modules, in dependency order:
  palette     colour tables shared by sampling and rendering
  streams     ids of the random streams (what makes the output deterministic)
  appearance  PersonAppearance, sample_identity: who a person is
  cameras     CameraStyle, sample_camera, soften_camera, camera_styles
  pose        Pose, sample_pose: where a person stands in a camera's box
  figure      the person as a label map, and its colours
  render      render_person, render_background: scene, occluders, camera effects
  plan        which image goes to which subset and camera, Market-1501 file names
  worker      RenderContext, render_task: render and save one planned image
  pool        run_unordered: in-process or a multiprocessing pool, no per-worker state
  dataset     generate (folders, images, synth.json), MARKET_SIZED, FORMAT_VERSION
Details: docs/ARCHITECTURE.md, "Module notes: reid_core/data/synth/".
"""

from __future__ import annotations

from .appearance import PersonAppearance, sample_identity
from .cameras import CameraStyle, camera_styles, sample_camera, soften_camera
from .dataset import FORMAT_VERSION, MARKET_SIZED, generate
from .pose import DIRECTIONS, Pose, sample_pose
from .render import render_background, render_person

__all__ = [
    "PersonAppearance",
    "CameraStyle",
    "Pose",
    "DIRECTIONS",
    "sample_identity",
    "sample_camera",
    "camera_styles",
    "soften_camera",
    "sample_pose",
    "render_person",
    "render_background",
    "generate",
    "MARKET_SIZED",
    "FORMAT_VERSION",
]
