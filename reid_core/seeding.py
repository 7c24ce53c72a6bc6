"""Seeds of a training run: every random draw of an epoch derives from (seed, epoch).

So an epoch's batches and augmentations do not depend on what ran before it, which is
what lets a resumed run reach the same weights as an uninterrupted one (on CPU).
"""

from __future__ import annotations

import random

import numpy as np
import torch

__all__ = ["seed_all", "epoch_seed"]


def seed_all(seed: int) -> None:
    """Seed torch, numpy and Python's `random`."""
    torch.manual_seed(seed)
    np.random.seed(seed % (2**32))
    random.seed(seed)


def epoch_seed(seed: int, epoch: int) -> int:
    """The seed of epoch `epoch` of a run seeded with `seed`."""
    return (seed * 1_000_003 + epoch * 7919 + 17) % (2**31)
