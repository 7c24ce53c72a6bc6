"""Folders / globs of person crops -> batches of normalised tensors, with the files that do
not decode (non-images, truncated JPEGs) counted, named and skipped instead of fatal.

Preprocessing is `build_test_transform` and decoding is `ImageDataset`'s: exactly what
`compact-reid evaluate` feeds the network.
"""

from __future__ import annotations

import glob
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Sequence

import torch
from torch.utils.data import DataLoader, Dataset

from ..data import ImageDataset, build_test_transform
from ..errors import DataError

__all__ = ["list_images", "CropBatches", "Skipped"]


def list_images(spec: str | Path | Sequence[str | Path]) -> list[Path]:
    """A folder (its files, sorted, hidden ones excluded), a glob pattern (`**` recursive),
    a single file, or a list of those. Every listed file is tried: one that is not an image
    is reported at load time, not silently ignored here."""
    specs = [spec] if isinstance(spec, (str, Path)) else list(spec)
    out: list[Path] = []
    for s in specs:
        path = Path(s).expanduser()
        if path.is_dir():
            out += sorted(f for f in path.iterdir() if f.is_file() and not f.name.startswith("."))
        elif path.is_file():
            out.append(path)
        elif glob.has_magic(str(s)):
            out += sorted(Path(f) for f in glob.glob(str(path), recursive=True) if Path(f).is_file())
        else:
            raise DataError(f"--images {s}: no such folder or file, and not a glob pattern")
    if not out:
        raise DataError(f"--images {', '.join(map(str, specs))}: no file found")
    return out


@dataclass
class Skipped:
    """Files that could not be read, with the reason."""

    files: list[tuple[str, str]] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.files)

    def summary(self, limit: int = 10) -> str:
        lines = [f"skipped {len(self.files)} file(s) that are not readable images:"]
        lines += [f"  {p}: {why}" for p, why in self.files[:limit]]
        if len(self.files) > limit:
            lines.append(f"  ... and {len(self.files) - limit} more")
        return "\n".join(lines)


class _Tolerant(Dataset):
    """ImageDataset whose unreadable items come back as (None, index, reason)."""

    def __init__(self, base: ImageDataset) -> None:
        self.base = base

    def __len__(self) -> int:
        return len(self.base)

    def __getitem__(self, index: int) -> tuple[Any, int, str]:
        try:
            return self.base[index][0], index, ""
        except DataError as e:
            return None, index, str(e).split(": ", 1)[-1]  # the reason; the path is known by index


def _collate(items: list[tuple[Any, int, str]]) -> tuple[torch.Tensor | None, list[int], list[tuple[int, str]]]:
    good = [(x, i) for x, i, _ in items if x is not None]
    bad = [(i, why) for x, i, why in items if x is None]
    images = torch.stack([x for x, _ in good]) if good else None
    return images, [i for _, i in good], bad


class CropBatches:
    """Iterate (images [B, 3, H, W], file indices) over `paths`; unreadable files go to `.skipped`."""

    def __init__(
        self, paths: Sequence[str | Path], height: int, width: int, batch_size: int = 64, num_workers: int = 0
    ) -> None:
        if batch_size < 1:
            raise DataError(f"--batch-size: must be >= 1, got {batch_size}")
        self.paths = [str(p) for p in paths]
        ds = _Tolerant(ImageDataset([(p, -1, -1) for p in self.paths], build_test_transform(height, width)))
        self.loader = DataLoader(ds, batch_size=batch_size, num_workers=num_workers, collate_fn=_collate)
        self.skipped = Skipped()

    def __len__(self) -> int:
        return len(self.loader)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, list[int]]]:
        self.skipped = Skipped()
        for images, idx, bad in self.loader:
            self.skipped.files += [(self.paths[i], why) for i, why in bad]
            if images is not None:
                yield images, idx
