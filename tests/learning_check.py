"""The learning check's recipe, defined once: the test fixture (conftest.learned_compact) and
`benchmarks/bench_learning_check.py` (which measures its spread over seeds x threads) both use it.

`compact` (main phase + SWAG cycles) shrunk for a CPU, on generated data. CPU float sums
differ with the thread count and the CPU's kernels, so the trajectory is not the same on
every machine: the test's bar comes from the spread measured over seeds x threads
(docs/BENCHMARKS.md, "The learning check"), not from one run.
"""

from __future__ import annotations

import os
import platform
from pathlib import Path
from typing import Any, Callable

# Generated set: 250 training ids with 12 images each (3 PK groups an epoch): every seed's
# network takes off within the first epochs, where 500 ids x 6 images took off after a
# seed-dependent plateau (rank-1 from 13 to 33 % at the same budget). Cameras at low strength.
DATA: dict[str, Any] = {
    "num_ids": 350,
    "num_train_ids": 250,
    "num_cameras": 4,
    "images_per_id": 12,
    "seed": 11,
    "camera_variation": 0.2,
}
OVERRIDES: dict[str, Any] = {
    "model.width_multiplier": 0.25,
    "model.depth_multiplier": 0.3,
    "model.input_height": 80,
    "model.input_width": 32,
    "data.num_workers": 0,
    "schedule.epochs": 8,
    "schedule.warmup_epochs": 2,
    "schedule.milestones": [6],
    "optim.lr": 0.03,
    "swag.cycles": 2,
    "swag.cycle_epochs": 1,
    "swag.samples": 3,
    "swag.bn_batches": 12,
    "eval.every": 100,
}
THREADS = 2  # the test pins torch's intra-op threads (the bars hold at 1 and 2: measured)

# Gains of the SWAG model over the untrained network (fractions) that the test requires,
# set from bench_learning_check.py over 5 seeds x {1, 2} threads (docs/BENCHMARKS.md,
# 2026-12-02): gains in points rank-1 min 28.0, mean 45.2, sd 7.1; mAP min 26.5, mean 39.5,
# sd 5.3. Each bar sits below min - 3 sd (6.7 and 10.5); an untrained network gains 0.
MIN_GAIN_RANK1 = 0.06
MIN_GAIN_MAP = 0.10


def generate_data(root: Path, workers: int = 2) -> Path:
    from reid_core.data.synth import generate

    generate(root, workers=workers, **DATA)
    return root


def config(seed: int = 0, **extra: Any) -> Any:
    from reid_core.presets import preset_config

    return preset_config("compact", {**OVERRIDES, "seed": seed, **extra})


def train(
    root: Path, out: Path, seed: int = 0, threads: int | None = THREADS, log: Callable[[str], None] | None = print
) -> Any:
    """Train the recipe (torch pinned to `threads` intra-op threads for the run); the Trainer."""
    import torch

    from reid_core.training.trainer import Trainer

    before = torch.get_num_threads()
    if threads:
        torch.set_num_threads(threads)
    try:
        t = Trainer(config(seed), root, out, log=log)
        for _ in t.run():
            pass
    finally:
        torch.set_num_threads(before)
    return t


def environment() -> dict[str, str]:
    """What besides the seed decides the trajectory: threads and BLAS kernels."""
    import torch

    return {
        "torch": torch.__version__,
        "threads": str(THREADS),
        "cpu": platform.processor() or platform.machine(),
        "OPENBLAS_CORETYPE": os.environ.get("OPENBLAS_CORETYPE", ""),
    }
