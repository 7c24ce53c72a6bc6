"""A Trainer's state in a training checkpoint: written, resumed, or inherited from another run.

`resume` continues a run from its own checkpoint (`check_resumable`). Shared training
(`start_from`, `finish_inherited`) continues a run from ANOTHER run's checkpoint at an
epoch up to which both runs are equal in every field that acts (`check_shareable`,
reid_core/config_phases.py), so the run reaches exactly what it would have trained alone.
The file format and those rules are reid_core/checkpoint.py's; this module knows which of
the Trainer's attributes a checkpoint holds.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping

import numpy as np
import torch

from ..checkpoint import CHECKPOINT_FORMAT, check_resumable, check_shareable, load_weights
from ..config import to_dict
from ..errors import CheckpointError

if TYPE_CHECKING:
    from .trainer import Trainer

__all__ = ["checkpoint_state", "save_checkpoint", "resume", "start_from", "finish_inherited", "PREFIX_SUMMARY"]

# Keys of a summary that exist before the run ends (the rest is written by Trainer.write_summary).
PREFIX_SUMMARY = ("untrained_rank1", "untrained_mAP", "plain_rank1", "plain_mAP")


def checkpoint_state(trainer: Trainer) -> dict[str, Any]:
    """Everything that resumes `trainer` between epochs (the RNG states are recorded, not
    restored: every epoch re-seeds from (seed, epoch))."""
    np_state = np.random.get_state()
    return {
        "kind": CHECKPOINT_FORMAT,
        "version": 1,
        "config": to_dict(trainer.cfg),
        "epoch": trainer.epoch,
        "model": trainer.model.state_dict(),
        "optimizer": trainer.optimizer.state_dict(),
        "scheduler": trainer.scheduler.state_dict(),
        "swag": trainer.swag.state_dict() if trainer.swag is not None else None,
        "sampler": {"seed": trainer.cfg.seed, "epoch": trainer.epoch},
        "rng": {
            "torch": torch.get_rng_state(),
            "numpy": [np_state[0], torch.from_numpy(np_state[1].astype(np.int64)), *np_state[2:]],
            "python": list(random.getstate()[1]),
        },
        "history": trainer.history,
        "summary": trainer.summary,
        "best": {"rank1": trainer.best["rank1"], "epoch": trainer.best["epoch"], "state": trainer.best["state"]},
        "train_seconds": trainer.train_seconds,
    }


def save_checkpoint(trainer: Trainer, path: str | Path) -> Path:
    """Write atomically (temp file + rename), so a crash never leaves a torn checkpoint."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    torch.save(checkpoint_state(trainer), tmp)
    tmp.replace(path)
    return path


def _load_training_state(trainer: Trainer, ckpt: Mapping[str, Any], path: str | Path) -> None:
    """Model, optimiser, scheduler and SWAG moments; then the best evaluation and the training time."""
    try:
        trainer.model.load_state_dict(ckpt["model"])
        trainer.optimizer.load_state_dict(ckpt["optimizer"])
        trainer.scheduler.load_state_dict(ckpt["scheduler"])
        if trainer.swag is not None and ckpt.get("swag"):
            trainer.swag.load_state_dict(ckpt["swag"])
    except (RuntimeError, KeyError, ValueError) as e:
        raise CheckpointError(f"{path}: does not fit this model ({e})") from e
    best = ckpt.get("best") or {}
    trainer.best = {"rank1": best.get("rank1", -1.0), "epoch": best.get("epoch", 0), "state": best.get("state")}
    trainer.train_seconds = float(ckpt.get("train_seconds", 0.0))


def resume(trainer: Trainer, path: str | Path) -> None:
    """Load `trainer`'s own full checkpoint; refuses one made for another architecture or recipe."""
    ckpt = load_weights(path, map_location=trainer.device)
    check_resumable(ckpt, trainer.cfg, path)
    _load_training_state(trainer, ckpt, path)
    trainer.epoch = int(ckpt["epoch"])
    trainer.history = list(ckpt.get("history", []))
    trainer.summary = dict(ckpt.get("summary", {}))
    trainer.log(f"resumed from {path} at epoch {trainer.epoch}/{trainer.total_epochs}")


def start_from(trainer: Trainer, path: str | Path, epoch: int) -> None:
    """Continue `trainer` from ANOTHER run's checkpoint at `epoch`: that run's history up to
    `epoch` and the summary keys known by then are inherited, nothing later."""
    ckpt = load_weights(path, map_location=trainer.device)
    check_shareable(ckpt, trainer.cfg, epoch, trainer.plan.main_epochs, path)
    _load_training_state(trainer, ckpt, path)
    trainer.epoch = epoch
    trainer.history = [dict(h) for h in ckpt.get("history", [])[:epoch]]
    trainer.summary = {k: v for k, v in dict(ckpt.get("summary", {})).items() if k in PREFIX_SUMMARY}
    trainer.log(f"started from {path} at epoch {epoch}/{trainer.total_epochs} (shared training)")


def finish_inherited(trainer: Trainer, reevaluate: bool) -> dict[str, Any]:
    """Complete a run that inherited all its epochs: its last epoch re-evaluated with this
    run's evaluation settings when they differ from the producer's, then the summary."""
    last = dict(trainer.history[-1])
    if reevaluate:
        last.update(trainer.evaluate_epoch(trainer.epoch - 1))
        trainer.history[-1] = last
    trainer.write_summary(last)
    return last
