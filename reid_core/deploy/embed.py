"""Embed a list of crops with any Embedder, batched; progress through a callback (the CLI
plugs tqdm in: reid_core itself needs only torch/torchvision)."""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from ..errors import DataError
from .features import FeatureSet
from .images import CropBatches, Skipped
from .runtime import Embedder

__all__ = ["embed_images"]


def embed_images(
    embedder: Embedder,
    paths: Sequence[str | Path],
    batch_size: int = 64,
    num_workers: int = 0,
    progress: Callable[[int, int], None] | None = None,
) -> tuple[FeatureSet, Skipped]:
    """Features of every readable file of `paths` (in order) and the files skipped.

    `progress(done, total)` is called after each batch (skipped files count as done).
    Raises DataError when no file at all could be read.
    """
    info = embedder.info
    batches = CropBatches(paths, info.input_height, info.input_width, batch_size, num_workers)
    feats: list[np.ndarray] = []
    kept: list[str] = []
    for images, idx in batches:
        batch_features = embedder(images)
        if batch_features.shape != (len(idx), info.embedding_dim):
            raise DataError(
                f"the model returned features of shape {batch_features.shape}, expected "
                f"({len(idx)}, {info.embedding_dim}) from its metadata"
            )
        feats.append(batch_features.astype(np.float32, copy=False))
        kept += [batches.paths[i] for i in idx]
        if progress is not None:
            progress(len(kept) + len(batches.skipped), len(batches.paths))
    skipped = batches.skipped
    if progress is not None:
        progress(len(batches.paths), len(batches.paths))
    if not feats:
        raise DataError(f"none of the {len(batches.paths)} file(s) is a readable image\n{skipped.summary()}")
    return FeatureSet(np.concatenate(feats), kept, info), skipped
