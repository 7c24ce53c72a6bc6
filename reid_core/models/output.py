"""What the network returns in train mode (the contract between models and losses)."""

from __future__ import annotations

from typing import NamedTuple

import torch


class ReIDOutput(NamedTuple):
    logits: tuple[torch.Tensor, ...]  # per branch: (global, local), each [N, num_classes]
    features: tuple[torch.Tensor, ...]  # per branch: (global, local), each [N, D_branch]; what the triplet loss sees
