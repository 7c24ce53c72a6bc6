"""PK sampling: batches of P identities x K images (for the triplet losses).

One epoch covers the training images about once, as the field's samplers do
(torchreid's RandomIdentitySampler, Bag of Tricks): each identity's images are shuffled
and cut into chunks of K (an identity with fewer than K images gives one chunk drawn
with replacement; an incomplete last chunk is dropped); batches then take one chunk from
each of P identities drawn at random among those with chunks left, until fewer than P
remain. The order depends only on
(seed, epoch): after `set_epoch(e)` a resumed trainer gets exactly the batches of epoch
e again. The sampler runs in the main process, so DataLoader workers do not matter.

Use with `DataLoader(dataset, batch_size=sampler.batch_size, sampler=sampler)`.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
from torch.utils.data import Sampler

from ..config import DataConfig
from ..errors import DataError

__all__ = ["PKSampler"]

_DEFAULT = DataConfig()


class PKSampler(Sampler[int]):
    """Indices into a dataset whose i-th item has identity `pids[i]`."""

    def __init__(self, pids: Sequence[Any], p: int = _DEFAULT.p, k: int = _DEFAULT.k, seed: int = 0):
        if p < 1 or k < 1:
            raise DataError(f"PK sampler: P and K must be >= 1, got P={p}, K={k}")
        labels = [_pid_of(x) for x in pids]
        groups: dict[int, list[int]] = {}
        for i, pid in enumerate(labels):
            groups.setdefault(pid, []).append(i)
        if len(groups) < p:
            raise DataError(
                f"PK sampler: a batch needs P={p} identities x K={k} images, but the training "
                f"set has only {len(groups)} identities ({len(labels)} images); lower data.p"
            )
        self.p, self.k, self.seed = int(p), int(k), int(seed)
        self.epoch = 0
        # Sorted by identity so that the order does not depend on the dataset's order of ids.
        self._ids = sorted(groups)
        self._index = [np.asarray(groups[pid], dtype=np.int64) for pid in self._ids]

    @classmethod
    def from_config(cls, pids: Sequence[Any], cfg: DataConfig, seed: int = 0) -> "PKSampler":
        return cls(pids, p=cfg.p, k=cfg.k, seed=seed)

    @property
    def batch_size(self) -> int:
        return self.p * self.k

    @property
    def num_identities(self) -> int:
        return len(self._ids)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def state_dict(self) -> dict[str, int]:
        return {"seed": self.seed, "epoch": self.epoch}

    def load_state_dict(self, state: dict[str, int]) -> None:
        self.seed, self.epoch = int(state["seed"]), int(state["epoch"])

    def batches(self) -> list[np.ndarray]:
        """The epoch's batches, each an array of P*K dataset indices (P ids x K images)."""
        cached = getattr(self, "_cache", None)
        if cached is not None and cached[0] == (self.seed, self.epoch):
            return cached[1]
        rng = np.random.default_rng([self.seed, self.epoch])
        chunks: list[list[np.ndarray]] = []
        for idx in self._index:
            if len(idx) < self.k:
                chunks.append([rng.choice(idx, size=self.k, replace=True)])
                continue
            perm = rng.permutation(idx)
            num_chunks = len(perm) // self.k
            chunks.append([perm[c * self.k : (c + 1) * self.k] for c in range(num_chunks)])
        available = [j for j in range(len(chunks)) if chunks[j]]
        out = []
        while len(available) >= self.p:
            picked = rng.choice(len(available), size=self.p, replace=False)
            ids = [available[i] for i in picked]
            out.append(np.concatenate([chunks[j].pop() for j in ids]))
            available = [j for j in available if chunks[j]]
        self._cache = ((self.seed, self.epoch), out)
        return out

    def __iter__(self) -> Iterator[int]:
        for batch in self.batches():
            yield from batch.tolist()

    def __len__(self) -> int:
        return len(self.batches()) * self.p * self.k


def _pid_of(x: Any) -> int:
    # Accepts plain labels or dataset items (path, pid, camid).
    if isinstance(x, (tuple, list)):
        return int(x[1])
    return int(x)
