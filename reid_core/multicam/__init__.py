"""Multicam: multi-camera person identities with ReID at entries (paper Section 5, Table 5) on a synthetic scene.

- `reid_step`: identity gallery, assignment of an entering person, threshold calibration;
- `scene`: a LAB-like room (4 corner cameras, people entering, sitting, leaving and
  coming back) with ground truth, a near-perfect within-room tracker and lazy crops;
- `metrics`: motmetrics (MOTA, IDF1, ...) on ground-plane positions;
- `evaluate`: no ReID vs a model vs the oracle (`run_multicam_eval`).
"""

from .reid_step import (
    Assignment,
    Calibration,
    Entry,
    Exit,
    IdentityGallery,
    ReIDStep,
    assign,
    calibrate_threshold,
    entry_correctness,
    run_sequence,
)
from .scene import Scene, SceneConfig, Visit, build_scene

__all__ = [
    "Assignment",
    "Calibration",
    "Entry",
    "Exit",
    "IdentityGallery",
    "ReIDStep",
    "assign",
    "calibrate_threshold",
    "entry_correctness",
    "run_sequence",
    "Scene",
    "SceneConfig",
    "Visit",
    "build_scene",
    "run_multicam_eval",
    "run_multicam_eval_many",
]


def __getattr__(name: str):  # the evaluation pulls torch models and motmetrics: import on use
    if name in ("run_multicam_eval", "run_multicam_eval_many"):
        from . import evaluate

        return getattr(evaluate, name)
    raise AttributeError(name)
