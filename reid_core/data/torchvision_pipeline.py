"""`data.pipeline: torchvision` (the reference): PIL decode + transforms.v2 per image in
DataLoader workers.

The loaders are built once with persistent workers (not one fork per epoch), and every
training image's augmentation is seeded from (seed, epoch, batch, slot), so the draws
depend neither on the worker count nor on what a worker drew before.
"""

from __future__ import annotations

from typing import Any, Iterator

import torch
from torch.utils.data import DataLoader

from ..config import TrainConfig
from ..evaluation import extract_features
from ..seeding import epoch_seed
from .datasets import ImageDataset, ReIDDataset
from .sampler import PKSampler
from .transforms import build_test_transform, build_train_transform

__all__ = ["TorchvisionData"]


class TorchvisionData:
    """Train / query / gallery of `dataset` through DataLoaders (see module doc)."""

    def __init__(self, dataset: ReIDDataset, cfg: TrainConfig, device: torch.device, sampler: PKSampler) -> None:
        h, w = cfg.model.input_height, cfg.model.input_width
        self.cfg, self.device, self.sampler = cfg, device, sampler
        self.train = _SeededDataset(ImageDataset(dataset.train, build_train_transform(cfg.data, h, w)))
        test_tf = build_test_transform(h, w)
        self.query = ImageDataset(dataset.query, test_tf)
        self.gallery = ImageDataset(dataset.gallery, test_tf)
        self._loaders: dict[str, DataLoader] = {}

    def loader(self, name: str) -> DataLoader:
        """The 'train', 'query' or 'gallery' loader, built on first use."""
        if name not in self._loaders:
            workers = self.cfg.data.num_workers
            # Own generator: the loader's worker seeds never draw from the global RNG (the
            # items are seeded per image anyway), so resuming cannot shift the model's draws.
            common = {
                "num_workers": workers,
                "pin_memory": self.device.type == "cuda",
                "persistent_workers": workers > 0,
                "generator": torch.Generator().manual_seed(self.cfg.seed),
            }
            if name == "train":
                dl = DataLoader(self.train, batch_sampler=_SeededBatches(self.sampler, self.cfg.seed), **common)
            else:
                ds = self.query if name == "query" else self.gallery
                dl = DataLoader(ds, batch_size=self.cfg.eval.batch_size, shuffle=False, **common)
            self._loaders[name] = dl
        return self._loaders[name]

    def batches(self, epoch: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """(augmented float images, pids) for every PK batch of `epoch`, on the device."""
        self.sampler.set_epoch(epoch)
        for imgs, pids, _cams, _idx in self.loader("train"):
            yield imgs.to(self.device, non_blocking=True), pids.to(self.device, non_blocking=True)

    def embed(self, model: torch.nn.Module) -> torch.Tensor:
        """Eval-mode embeddings of the query images, then of the gallery's (on the CPU)."""
        flip = self.cfg.eval.flip
        query, _, _ = extract_features(model, self.loader("query"), self.device, flip=flip)
        gallery, _, _ = extract_features(model, self.loader("gallery"), self.device, flip=flip)
        return torch.cat([torch.as_tensor(query), torch.as_tensor(gallery)])


class _SeededDataset(torch.utils.data.Dataset):
    """Items addressed by (index, seed): the transform runs under its own seeded RNG, so an
    image's augmentation depends on (seed, epoch, batch, slot) only, not on which
    (persistent) worker draws it or what that worker drew before."""

    def __init__(self, dataset: Any) -> None:
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, key: tuple[int, int]) -> Any:
        index, seed = key
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            return self.dataset[index]


class _SeededBatches:
    """Batch sampler over the PK sampler's current epoch: lists of (index, seed)."""

    def __init__(self, sampler: PKSampler, seed: int) -> None:
        self.sampler, self.seed = sampler, seed

    def __iter__(self) -> Iterator[list[tuple[int, int]]]:
        base = epoch_seed(self.seed, self.sampler.epoch)
        for b, batch in enumerate(self.sampler.batches()):
            yield [(int(i), (base * 1_000_003 + b * 4099 + j) % (2**63)) for j, i in enumerate(batch.tolist())]

    def __len__(self) -> int:
        return len(self.sampler.batches())
