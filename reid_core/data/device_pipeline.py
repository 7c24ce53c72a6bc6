"""`data.pipeline: device`: the dataset as uint8 tensors on the training device.

Each split is decoded once (`device_cache.load_or_build`, cached beside the dataset),
moved to the device whole, and every training batch is an index tensor from the PK
sampler -> a gather -> `BatchAugment` on the device. No DataLoader, no worker, no PIL
per step. Evaluation embeds the query and gallery tensors in large batches. The Trainer
uses it through `pipeline.InputPipeline`.

Memory: the three splits must fit in the device's free memory with room to spare for the
model (at most `MAX_DATA_FRACTION` of it); otherwise a DataError names the sizes and the
`data.pipeline=torchvision` fallback.
"""

from __future__ import annotations

import functools
import os
from pathlib import Path
from typing import Callable, Iterator

import numpy as np
import torch

from ..config import TrainConfig
from ..errors import DataError
from ..evaluation import embed_tensor
from .datasets import ReIDDataset
from .device_augment import BatchAugment, normalise
from .device_cache import load_or_build
from .sampler import PKSampler

__all__ = ["DeviceData", "check_fits", "available_bytes", "MAX_DATA_FRACTION"]

MAX_DATA_FRACTION = 0.6  # of the free device memory; the rest is for the model and activations


def available_bytes(device: torch.device) -> int:
    """Free memory on `device` (CUDA: mem_get_info; CPU: available physical memory)."""
    if device.type == "cuda":
        free, _total = torch.cuda.mem_get_info(device)
        return int(free)
    try:
        return int(os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))
    except (ValueError, OSError, AttributeError):  # pragma: no cover - not POSIX
        return 1 << 62


def check_fits(nbytes: int, device: torch.device, what: str, available: int | None = None) -> None:
    """DataError naming the sizes and the fallback when `nbytes` do not fit on `device`."""
    free = available_bytes(device) if available is None else int(available)
    if nbytes > MAX_DATA_FRACTION * free:
        raise DataError(
            f"data.pipeline=device: {what} need {nbytes / 2**30:.2f} GiB on {device}, but only "
            f"{free / 2**30:.2f} GiB are free there (at most {MAX_DATA_FRACTION:.0%} of it may hold data); "
            "use data.pipeline=torchvision (images decoded per batch by DataLoader workers)"
        )


class DeviceData:
    """Train / query / gallery of `dataset` as uint8 tensors on `device` (see module doc)."""

    def __init__(
        self,
        dataset: ReIDDataset,
        root: str | Path,
        cfg: TrainConfig,
        device: torch.device,
        sampler: PKSampler,
        log: Callable[[str], None] | None = None,
        progress: bool = True,
    ) -> None:
        log = log or (lambda _m: None)
        h, w = cfg.model.input_height, cfg.model.input_width
        root = Path(dataset.root) if getattr(dataset, "root", None) else Path(root)
        splits = {"train": dataset.train, "query": dataset.query, "gallery": dataset.gallery}
        nbytes = sum(len(items) * 3 * h * w for items in splits.values())
        check_fits(
            nbytes,
            device,
            f"the train + query + gallery images at {h}x{w} ({sum(len(v) for v in splits.values())} images)",
        )
        workers = max(1, cfg.data.num_workers)
        images = {
            name: load_or_build(items, root, name, h, w, workers=workers, log=log, progress=progress).images
            for name, items in splits.items()
        }
        self.device = device
        self.train = images["train"].to(device)
        self.query = images["query"].to(device)
        self.gallery = images["gallery"].to(device)
        self.train_pids = torch.tensor([pid for _, pid, _ in dataset.train], dtype=torch.long, device=device)
        self.augment = BatchAugment(cfg.data)
        self.sampler = sampler
        self.cfg = cfg

    def epoch_indices(self, epoch: int) -> torch.Tensor:
        """[num_batches, P*K] int64 indices of epoch `epoch`'s PK batches, on the device."""
        self.sampler.set_epoch(epoch)
        batches = self.sampler.batches()
        if not batches:
            return torch.empty((0, self.sampler.batch_size), dtype=torch.long, device=self.device)
        return torch.from_numpy(np.stack(batches)).to(self.device)

    def batches(self, epoch: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """(augmented float images, pids) for every PK batch of `epoch`, on the device."""
        for idx in self.epoch_indices(epoch):
            yield self.augment(self.train.index_select(0, idx)), self.train_pids.index_select(0, idx)

    def embed(self, model: torch.nn.Module) -> torch.Tensor:
        """Eval-mode embeddings of the query images, then of the gallery's (on the device)."""
        # Large batches straight from the cache on a GPU (eval mode: the batch size does not
        # change the features beyond float rounding).
        cuda = self.device.type == "cuda"
        ev = self.cfg.eval
        bs = max(ev.batch_size, 1024) if cuda else ev.batch_size
        prep = functools.partial(normalise, channels_last=cuda)
        return torch.cat(
            [embed_tensor(model, self.query, bs, ev.flip, prep), embed_tensor(model, self.gallery, bs, ev.flip, prep)]
        )
