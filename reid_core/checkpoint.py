"""Checkpoint and weights files: their format, reading one back, the network it holds.

Both are `torch.save` dicts with 'kind', 'config' (the run's `to_dict(TrainConfig)`) and
'model' (a state_dict). A checkpoint (`Trainer.save_checkpoint`) also holds what resumes a
run; a weights file (`Trainer.save_weights`) only the network. Kept apart from the trainer
so that deploy, multicam and the CLI read weights without the training code.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

import torch

from .config import TrainConfig, from_dict, to_dict
from .errors import CheckpointError
from .models import HACNNFamily, build_model

__all__ = [
    "CHECKPOINT_FORMAT",
    "WEIGHTS_FORMAT",
    "check_format",
    "load_weights",
    "build_model_from_weights",
    "check_resumable",
    "check_shareable",
]

CHECKPOINT_FORMAT = "compact-reid-checkpoint"
WEIGHTS_FORMAT = "compact-reid-weights"

# Config sections that say how the step runs, not what it computes: a checkpoint resumes
# under other values of them.
_RUNTIME_SECTIONS = ("runtime.",)


def check_format(obj: Any, source: str | Path = "") -> Mapping[str, Any]:
    """`obj` if it is a checkpoint or weights dict, else CheckpointError (naming `source`)."""
    if (
        not isinstance(obj, Mapping)
        or obj.get("kind") not in (CHECKPOINT_FORMAT, WEIGHTS_FORMAT)
        or "model" not in obj
        or "config" not in obj
    ):
        where = f"{source}: " if source else ""
        raise CheckpointError(f"{where}not a compact-reid checkpoint or weights file (no 'kind'/'model'/'config')")
    return obj


def load_weights(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Load a weights file or a full checkpoint (both carry 'model' and 'config')."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such checkpoint file")
    try:
        obj = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as e:  # torch raises many types for truncated/garbage files
        raise CheckpointError(f"{path}: not a readable checkpoint ({type(e).__name__}: {e})") from e
    return check_format(obj, path)  # type: ignore[return-value]


def build_model_from_weights(obj: Mapping[str, Any]) -> HACNNFamily:
    """A model built from a weights/checkpoint dict's config with its weights loaded."""
    check_format(obj)
    cfg = from_dict(TrainConfig, obj["config"])
    model = build_model(cfg.model)
    try:
        model.load_state_dict(obj["model"])
    except RuntimeError as e:
        raise CheckpointError(f"weights do not fit the recorded architecture ({e})") from e
    return model


def check_resumable(ckpt: Mapping[str, Any], cfg: TrainConfig, path: str | Path) -> None:
    """CheckpointError unless `ckpt` is a training checkpoint made for `cfg` (runtime options aside)."""
    if ckpt.get("kind") != CHECKPOINT_FORMAT:
        raise CheckpointError(f"{path}: a weights file, not a training checkpoint (it cannot resume a run)")
    try:  # keys added since the checkpoint was written take their defaults
        theirs = to_dict(from_dict(TrainConfig, ckpt["config"]))
    except Exception as e:
        raise CheckpointError(f"{path}: its configuration is not valid here ({e})") from e
    diff = [d for d in _config_diff(theirs, to_dict(cfg)) if not d.startswith(_RUNTIME_SECTIONS)]
    if diff:
        raise CheckpointError(f"{path}: made for a different configuration: " + "; ".join(diff[:6]))


def check_shareable(ckpt: Mapping[str, Any], cfg: TrainConfig, epoch: int, main_epochs: int, path: str | Path) -> None:
    """CheckpointError unless `ckpt` (another run's, at `epoch`) is where `cfg` would be after
    `epoch` epochs: equal in every field that acts by then (reid_core/config_phases.py)."""
    from .config_phases import prefix_fields

    if ckpt.get("kind") != CHECKPOINT_FORMAT:
        raise CheckpointError(f"{path}: a weights file, not a training checkpoint (it cannot start a run)")
    if int(ckpt.get("epoch", -1)) != epoch:
        raise CheckpointError(f"{path}: holds epoch {ckpt.get('epoch')}, not {epoch}")
    try:
        theirs = from_dict(TrainConfig, ckpt["config"])
    except Exception as e:
        raise CheckpointError(f"{path}: its configuration is not valid here ({e})") from e
    through = "main" if epoch <= main_epochs else "swag"
    ckpt_fields, run_fields = prefix_fields(theirs, through), prefix_fields(cfg, through)
    ignored = ["model.num_classes"]  # the dataset's, checked by the weights
    if through == "swag":
        ignored.append("swag.cycles")  # a shorter run is a prefix of a longer one
    for key in ignored:
        ckpt_fields.pop(key, None)
        run_fields.pop(key, None)
    diff = [
        f"{k}: checkpoint {ckpt_fields.get(k)!r} vs this run {run_fields.get(k)!r}"
        for k in sorted(set(ckpt_fields) | set(run_fields))
        if ckpt_fields.get(k) != run_fields.get(k)
    ]
    if diff:
        raise CheckpointError(f"{path}: not a prefix of this run (epoch {epoch}): " + "; ".join(diff[:6]))


def _config_diff(a: dict[str, Any], b: dict[str, Any], prefix: str = "") -> list[str]:
    out = []
    for k in sorted(set(a) | set(b)):
        va, vb = a.get(k), b.get(k)
        if isinstance(va, dict) and isinstance(vb, dict):
            out += _config_diff(va, vb, f"{prefix}{k}.")
        elif va != vb:
            out.append(f"{prefix}{k}: checkpoint {va!r} vs this run {vb!r}")
    return out
