"""Market-1501 / DukeMTMC-reID (and any folder in their layout) as lists of items.

Layout: `<root>/bounding_box_train`, `<root>/query`, `<root>/bounding_box_test`; file
names start with `<pid>_c<camera>` (`0002_c1s1_000451_03.jpg`). Person id -1 is junk
(dropped everywhere), 0 a distractor (kept in the gallery only). Train ids are relabelled
0..N-1 (in increasing order of the original id); cameras become 0-based.

Listing reads directory entries only (no image is decoded), so it takes well under a
second on Market-1501. A file that does not decode is reported when `ImageDataset` loads
it (DataError naming the path), not at listing time.
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, NamedTuple, Sequence

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError
from torch.utils.data import Dataset

from ..errors import DataError
from .layout import _HINTS, _NAME, DATASET_NAMES, IMAGE_EXTENSIONS, SUBSETS, find_root

__all__ = [
    "Item",
    "ReIDDataset",
    "SUBSETS",
    "DATASET_NAMES",
    "find_root",
    "load_dataset",
    "ReIDFolderDataset",
    "Market1501",
    "DukeMTMCreID",
    "ImageDataset",
]


class Item(NamedTuple):
    path: str
    pid: int
    camid: int


@dataclass
class ReIDDataset:
    """Train / query / gallery items of one dataset (paths are absolute strings)."""

    name: str
    root: str
    train: list[Item]
    query: list[Item]
    gallery: list[Item]
    num_train_pids: int
    num_cameras: int
    junk: dict[str, int] = field(default_factory=dict)  # pid -1 files dropped, per subset
    distractors: dict[str, int] = field(default_factory=dict)  # pid 0 files (kept in gallery)
    skipped: dict[str, int] = field(default_factory=dict)  # names that did not parse

    def stats(self) -> dict[str, Any]:
        """JSON-ready counts per subset."""
        out: dict[str, Any] = {
            "name": self.name,
            "root": self.root,
            "num_train_pids": self.num_train_pids,
            "num_cameras": self.num_cameras,
        }
        for subset in SUBSETS:
            items = getattr(self, subset)
            out[subset] = {
                "ids": len({it.pid for it in items}),
                "images": len(items),
                "cameras": len({it.camid for it in items}),
                "junk": self.junk.get(subset, 0),
                "distractors": self.distractors.get(subset, 0),
                "skipped": self.skipped.get(subset, 0),
            }
        return out

    def summary(self) -> str:
        """A torchreid-style table: subset | # ids | # images | # cameras."""
        stats = self.stats()
        line = "  " + "-" * 40
        rows = [f"=> Loaded {self.name} from {self.root}", line, "  subset   | # ids | # images | # cameras", line]
        for subset in SUBSETS:
            counts = stats[subset]
            rows.append(f"  {subset:<8} | {counts['ids']:5d} | {counts['images']:8d} | {counts['cameras']:9d}")
        rows.append(line)
        extra = []
        for key, label in (
            ("distractors", "distractor images (id 0) kept in the gallery"),
            ("junk", "junk images (id -1) dropped"),
            ("skipped", "files skipped (name did not parse)"),
        ):
            total = sum(stats[subset][key] for subset in SUBSETS)
            if total:
                extra.append(f"  {total} {label}")
        return "\n".join(rows + extra)


def _detect_name(root: Path, given: Path) -> str:
    for part in (root.name.lower(), given.name.lower()):
        for name, hint in _HINTS.items():
            if hint in part:
                return name
    return "generic"


def _list_folder(folder: Path, max_cam: int | None) -> tuple[list[Item], list[str], int]:
    """(items with the ORIGINAL pid and 0-based camera, unparseable names, junk count)."""
    if not folder.is_dir():
        raise DataError(f"dataset folder missing: {folder}")
    items: list[Item] = []
    bad: list[str] = []
    junk = 0
    with os.scandir(folder) as it:
        names = sorted(e.name for e in it if e.is_file() and e.name.lower().endswith(IMAGE_EXTENSIONS))
    for fname in names:
        match = _NAME.match(fname)
        if match is None:
            bad.append(fname)
            continue
        pid, cam = int(match.group(1)), int(match.group(2))
        if cam < 1 or (max_cam is not None and cam > max_cam) or pid < -1:
            bad.append(fname)
            continue
        if pid == -1:
            junk += 1
            continue
        items.append(Item(str(folder / fname), pid, cam - 1))
    return items, bad, junk


def load_dataset(root: str | os.PathLike, name: str = "auto") -> ReIDDataset:
    """Load a dataset in the Market-1501 layout.

    name: auto (from the folder name: `market`, `duke`, else generic) | market1501 (6
    cameras) | dukemtmcreid (8 cameras) | generic (any camera count). Files whose names do
    not parse (or name a camera out of range) are skipped, counted and warned about.
    Raises DataError for a missing folder or when no query has a gallery match from
    another camera.
    """
    if name != "auto" and name not in DATASET_NAMES:
        raise DataError(f"unknown dataset name {name!r}; allowed: auto, {', '.join(DATASET_NAMES)}")
    given = Path(root).expanduser()
    root_dir = find_root(given, name)
    if name == "auto":
        name = _detect_name(root_dir, given)
    max_cam = DATASET_NAMES[name]

    lists: dict[str, list[Item]] = {}
    junk: dict[str, int] = {}
    skipped: dict[str, int] = {}
    bad_examples: list[str] = []
    for subset, folder in SUBSETS.items():
        items, bad, junk[subset] = _list_folder(root_dir / folder, max_cam)
        lists[subset] = items
        skipped[subset] = len(bad)
        bad_examples += [f"{folder}/{b}" for b in bad[:3]]
    if sum(skipped.values()):
        warnings.warn(
            f"{root_dir}: skipped {sum(skipped.values())} image file(s) whose name does not match "
            f"'<pid>_c<camera>...'{' with camera <= ' + str(max_cam) if max_cam else ''}, "
            f"e.g. {', '.join(bad_examples[:5])}",
            UserWarning,
            stacklevel=2,
        )

    # Distractors (0) only make sense in the gallery; drop them from train and query.
    distractors = {s: sum(1 for it in lists[s] if it.pid == 0) for s in SUBSETS}
    train_raw = [it for it in lists["train"] if it.pid != 0]
    query = [it for it in lists["query"] if it.pid != 0]
    gallery = lists["gallery"]

    relabel = {pid: i for i, pid in enumerate(sorted({it.pid for it in train_raw}))}
    train = [Item(it.path, relabel[it.pid], it.camid) for it in train_raw]

    # At least one query must have a gallery image of its id from another camera.
    gallery_cams: dict[int, set[int]] = {}
    for it in gallery:
        gallery_cams.setdefault(it.pid, set()).add(it.camid)
    if not any(gallery_cams.get(it.pid, set()) - {it.camid} for it in query):
        raise DataError(
            f"no valid query in {root_dir / SUBSETS['query']}: none of its {len(query)} images has a "
            f"gallery image ({root_dir / SUBSETS['gallery']}) of the same id from another camera"
        )

    cams = {it.camid for subset in (train, query, gallery) for it in subset}
    num_cameras = max_cam if max_cam is not None else (max(cams) + 1 if cams else 0)
    return ReIDDataset(
        name=name,
        root=str(root_dir),
        train=train,
        query=query,
        gallery=gallery,
        num_train_pids=len(relabel),
        num_cameras=num_cameras,
        junk=junk,
        distractors=distractors,
        skipped=skipped,
    )


class ReIDFolderDataset:
    """Any dataset in the standard layout: `ReIDFolderDataset.load(root)`."""

    dataset_name = "generic"

    @classmethod
    def load(cls, root: str | os.PathLike) -> ReIDDataset:
        return load_dataset(root, name=cls.dataset_name)


class Market1501(ReIDFolderDataset):
    dataset_name = "market1501"


class DukeMTMCreID(ReIDFolderDataset):
    dataset_name = "dukemtmcreid"


def _to_tensor(img: Image.Image) -> torch.Tensor:
    arr = np.asarray(img, dtype=np.uint8).copy()
    return torch.from_numpy(arr).permute(2, 0, 1).float().div_(255.0)


class ImageDataset(Dataset):
    """(image tensor, pid, camid, index) for each (path, pid, camid) item.

    `transform` takes a PIL RGB image (default: to a float tensor in [0, 1]). A file that
    is missing, truncated or not an image raises DataError naming its path (inside a
    DataLoader worker the error is re-raised in the main process).
    """

    def __init__(self, items: Sequence[tuple[str, int, int]], transform: Callable[[Image.Image], Any] | None = None):
        self.items = [Item(str(p), int(pid), int(cam)) for p, pid, cam in items]
        self.transform = transform if transform is not None else _to_tensor

    @property
    def pids(self) -> list[int]:
        return [it.pid for it in self.items]

    @property
    def camids(self) -> list[int]:
        return [it.camid for it in self.items]

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> tuple[Any, int, int, int]:
        path, pid, camid = self.items[index]
        try:
            with Image.open(path) as img:
                img = img.convert("RGB")  # forces the full decode: truncation fails here
        except (OSError, UnidentifiedImageError, SyntaxError, ValueError) as e:
            raise DataError(f"cannot read image {path}: {e}") from e
        return self.transform(img), pid, camid, index
