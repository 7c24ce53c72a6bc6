"""The Trainer's input pipeline: one interface, one implementation per `data.pipeline`.

`torchvision` (the reference, torchvision_pipeline.py): PIL + transforms.v2 per image in
DataLoader workers. `device` (device_pipeline.py): the splits as uint8 tensors on the
training device, augmented in batches there. Both take their PK batches from the same
sampler, so the Trainer never asks which one it has.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Iterator, Protocol

import torch

from ..config import TrainConfig
from .datasets import ReIDDataset
from .sampler import PKSampler

__all__ = ["InputPipeline", "build_pipeline"]


class InputPipeline(Protocol):
    def batches(self, epoch: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """(augmented float images, pids) on the training device for every PK batch of `epoch`."""
        ...

    def embed(self, model: torch.nn.Module) -> torch.Tensor:
        """Eval-mode embeddings [Nq + Ng, D] of the query images, then of the gallery's."""
        ...


def build_pipeline(
    dataset: ReIDDataset,
    root: str | Path,
    cfg: TrainConfig,
    device: torch.device,
    sampler: PKSampler,
    log: Callable[[str], None] | None = None,
    progress: bool = True,
) -> InputPipeline:
    """The pipeline `cfg.data.pipeline` names, over `dataset` (only that one is built)."""
    if cfg.data.pipeline == "device":
        from .device_pipeline import DeviceData

        return DeviceData(dataset, root, cfg, device, sampler, log=log, progress=progress)
    from .torchvision_pipeline import TorchvisionData

    return TorchvisionData(dataset, cfg, device, sampler)
