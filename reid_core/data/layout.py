"""Where a dataset's folders are: the Market-1501 layout, known names, file names, `find_root`.

Imports neither torch nor torchvision (the sweep driver finds a dataset's root without them).
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from ..errors import DataError

__all__ = ["SUBSETS", "DATASET_NAMES", "IMAGE_EXTENSIONS", "FILE_NAME_PATTERN", "find_root"]

SUBSETS = {"train": "bounding_box_train", "query": "query", "gallery": "bounding_box_test"}
# Known datasets: number of cameras (None = as many as the files name).
DATASET_NAMES: dict[str, int | None] = {"market1501": 6, "dukemtmcreid": 8, "generic": None}
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp")
# Anchored at the start of the name: `foo_0002_c1.jpg` is not silently read as id 2.
_NAME = re.compile(r"^(-?\d+)_c(\d+)")
FILE_NAME_PATTERN = _NAME  # public: groups (person id, 1-based camera); used by reid_core.deploy.search
_HINTS = {"market1501": "market", "dukemtmcreid": "duke"}


def _has_layout(d: Path) -> bool:
    return all((d / sub).is_dir() for sub in SUBSETS.values())


def find_root(path: str | os.PathLike, name: str = "auto") -> Path:
    """The dataset root: `path` itself, or its only sub-folder in the standard layout.

    With several candidate sub-folders, a specific `name` picks the one whose folder name
    says it (`market`, `duke`); otherwise DataError lists them.
    """
    folder = Path(path).expanduser()
    if not folder.is_dir():
        raise DataError(f"dataset folder not found: {folder}")
    if _has_layout(folder):
        return folder
    subdirs = sorted(d for d in folder.iterdir() if d.is_dir())
    candidates = [d for d in subdirs if _has_layout(d)]
    if len(candidates) > 1 and name in _HINTS:
        hinted = [d for d in candidates if _HINTS[name] in d.name.lower()]
        if len(hinted) == 1:
            candidates = hinted
    if len(candidates) == 1:
        return candidates[0]
    if len(candidates) > 1:
        raise DataError(
            f"several datasets under {folder}: {', '.join(d.name for d in candidates)}; pass the dataset folder itself"
        )
    # Nothing complete: name the missing folder(s) of the most likely partial layout.
    for d in [folder] + subdirs:
        present = [sub for sub in SUBSETS.values() if (d / sub).is_dir()]
        if present:
            missing = [str(d / sub) for sub in SUBSETS.values() if sub not in present]
            raise DataError(f"dataset folder incomplete, missing: {', '.join(missing)}")
    raise DataError(
        f"no dataset in {folder}: expected folders {', '.join(SUBSETS.values())} in it or in one of its sub-folders"
    )
