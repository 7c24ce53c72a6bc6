"""Fixtures shared across test modules."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest


@dataclass
class LearnedRun:
    summary: dict[str, Any]
    config: Any
    weights: Path  # <run>/weights/final.pt: the last weights, for track-eval


@pytest.fixture(scope="session")
def learned_compact(tmp_path_factory) -> LearnedRun:
    """The learning check's run, trained once per session (about 3-4 min on 2 cores).

    `compact` (main phase + SWAG cycles) scaled for CPU: 500 training identities (many
    ids with few images each generalise, few ids overfit), cameras at half strength,
    80x32 input, width 0.25, depth 0.3. tests/test_trainer.py checks that it learned;
    the tracking tests use its weights, so they score a model that learned (a model
    trained on a few dozen ids has a rank-1 near 0 on unseen ids, and whether it then
    beats no-ReID in tracking is down to the seed).
    """
    from reid_core.data.synth import generate
    from reid_core.presets import preset_config
    from reid_core.training.trainer import Trainer

    root = tmp_path_factory.mktemp("learn") / "market"
    generate(root, num_ids=600, num_train_ids=500, num_cameras=4, images_per_id=6, seed=11, workers=2,
             camera_variation=0.5)
    cfg = preset_config("compact", {
        "model.width_multiplier": 0.25, "model.depth_multiplier": 0.3,
        "model.input_height": 80, "model.input_width": 32, "data.num_workers": 0,
        "schedule.epochs": 12, "schedule.warmup_epochs": 2, "schedule.milestones": [10], "optim.lr": 0.03,
        "swag.cycles": 2, "swag.cycle_epochs": 1, "swag.samples": 3, "swag.bn_batches": 12, "eval.every": 100,
    })
    out = tmp_path_factory.mktemp("learned") / "learned-compact"
    t = Trainer(cfg, root, out, log=print)
    for _ in t.run():
        pass
    weights = t.save_weights(out / "weights" / "final.pt", "final")
    return LearnedRun(summary=dict(t.summary), config=cfg, weights=weights)
