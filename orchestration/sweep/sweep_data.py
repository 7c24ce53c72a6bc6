"""A sweep's dataset: where it comes from, and how every node gets a local copy.

`prepare_data` (the driver, once per sweep) returns a `DataSource`:
- `dataset.path: DIR`: the folder (its layout checked); every node must see it (storage_check.py);
- `dataset.path: s3://.../Market-1501.zip` (an archive or a prefix): staged here and on each
  node (storage/staging.py), the archive's checksum fixed by the driver's copy (or the spec's
  `dataset.sha256`), so every node trains on the same bytes;
- a synthetic dataset: generated once per recipe into the storage, `_data/synthetic-<fp>/`
  when the storage is a path (reused by any sweep with the same options), or, on object
  storage, generated locally and uploaded as `_data/synthetic-<fp>.zip` (+ `.json` with its
  checksum), then staged on each node like any archive. Generating the recipe on every node
  instead was the other way: at Market size it costs minutes of CPU per node against seconds
  of download (docs/BENCHMARKS.md).
`local_root(ctx)` (each trial) is the folder to train on.
"""

from __future__ import annotations

import json
import os
import shutil
import time
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping

from reid_core.config import ConfigError
from reid_core.errors import ReIDError

from ..storage import StorageURI
from ..storage.staging import file_sha256, stage
from ..storage.store import Store
from .spec import SweepSpec

__all__ = ["DataSource", "prepare_data", "local_root", "DATA_PREFIX"]

DATA_PREFIX = "_data"
Log = Callable[[str], None]


@dataclass(frozen=True)
class DataSource:
    source: str  # what trials read: a local folder or a storage URI
    name: str  # the dataset kind (market1501, dukemtmcreid, generic)
    sha256: str | None  # an archive's checksum, checked wherever it is staged
    root: str  # the driver's local folder of it


def prepare_data(spec: SweepSpec, root: StorageURI, runs_dir: str | os.PathLike[str], log: Log = print) -> DataSource:
    """The sweep's data (module docstring); ConfigError naming the spec's key when unusable."""
    dataset = spec.dataset
    if dataset.is_synthetic:
        return _synthetic(spec, root, Path(runs_dir), log)
    if "://" in (dataset.path or ""):
        try:
            staged = stage(dataset.path, dataset.sha256, log)  # type: ignore[arg-type]
            found = _find_root(staged.root, dataset.name)
        except ReIDError as e:
            raise ConfigError(f"{spec.source}: dataset.path: {e}") from None
        return DataSource(dataset.path, dataset.name, staged.sha256, str(found))  # type: ignore[arg-type]
    try:
        found = _find_root(Path(dataset.path), dataset.name)  # type: ignore[arg-type]
    except ReIDError as e:
        raise ConfigError(f"{spec.source}: dataset.path: {e}") from None
    return DataSource(str(found), dataset.name, None, str(found))


def data_location(spec: SweepSpec, root: StorageURI) -> str:
    """Where the sweep's data will be, known before it is prepared (for the node check):
    the spec's path, or, for synthetic data, the storage's data folder."""
    if spec.dataset.is_synthetic:
        return str(root.join(DATA_PREFIX))
    return spec.dataset.path or ""


def local_root(source: str, name: str, sha256: str | None, log: Log = print) -> str:
    """The local folder a trial trains on: the source itself, or its staged copy here."""
    if "://" not in source:
        return source
    return str(_find_root(stage(source, sha256, log).root, name))


def _find_root(folder: Path, name: str) -> Path:
    from reid_core.data.layout import find_root

    return Path(find_root(folder, name))


def _synthetic(spec: SweepSpec, root: StorageURI, runs_dir: Path, log: Log) -> DataSource:
    from .sharing import dataset_fingerprint

    options = dict(spec.dataset.synthetic or {})
    recipe = f"synthetic-{dataset_fingerprint(spec.dataset)}"
    if root.is_local:
        folder = Path(root.path) / DATA_PREFIX / recipe
        _generate(folder, options, log)
        return DataSource(str(folder), "generic", None, str(folder))
    store = Store(root, log=log)
    archive, about = f"{DATA_PREFIX}/{recipe}.zip", f"{DATA_PREFIX}/{recipe}.json"
    local = runs_dir / DATA_PREFIX / recipe
    known = store.read_bytes(about)
    if known is not None and store.exists(archive):
        sha256 = json.loads(known)["sha256"]
        log(f"synthetic dataset: reusing {root.join(archive).display}")
        return DataSource(
            str(root.join(archive)), "generic", sha256, local_root(str(root.join(archive)), "generic", sha256, log)
        )
    _generate(local, options, log)
    began = time.perf_counter()
    packed = local.with_suffix(".zip")
    _zip(local, packed)
    sha256 = file_sha256(packed)
    size = store.upload(packed, archive)
    store.write_bytes(about, (json.dumps({"sha256": sha256, "bytes": size, "options": options}) + "\n").encode())
    packed.unlink()
    log(
        f"synthetic dataset: uploaded to {root.join(archive).display} ({size / 1e6:.1f} MB, {time.perf_counter() - began:.1f}s)"
    )
    return DataSource(str(root.join(archive)), "generic", sha256, str(local))


def _generate(folder: Path, options: Mapping[str, Any], log: Log) -> None:
    """Generate into `folder` once: a complete earlier run (synth.json, written last) is reused."""
    if _same_synthetic(folder / "synth.json", options):
        log(f"synthetic dataset: reusing {folder}")
        return
    shutil.rmtree(folder, ignore_errors=True)
    from reid_core.data.synth import generate

    began = time.perf_counter()
    kwargs = dict(options)
    kwargs.setdefault("workers", max(1, min(4, os.cpu_count() or 1)))
    info = generate(folder, overwrite=True, **kwargs)
    log(
        f"synthetic dataset: {info.get('train_images')} train / {info.get('query_images')} query / "
        f"{info.get('gallery_images')} gallery images in {folder} ({time.perf_counter() - began:.1f}s)"
    )


def _zip(folder: Path, archive: Path) -> None:
    """The folder as a zip (stored, not deflated: JPEGs do not compress), members in order."""
    tmp = archive.with_name(archive.name + ".tmp")
    with zipfile.ZipFile(tmp, "w", zipfile.ZIP_STORED) as packed:
        for path in sorted(folder.rglob("*")):
            if path.is_file():
                packed.write(path, str(path.relative_to(folder)))
    tmp.replace(archive)


def _same_synthetic(done: Path, want: Mapping[str, Any]) -> bool:
    """True when `synth.json` (written last by generate()) records the wanted parameters."""
    try:
        made = json.loads(done.read_text())
    except (OSError, json.JSONDecodeError):
        return False
    if not made:
        return False
    made.setdefault("camera_variation", 1.0)  # written by generate() since it got the knob
    return all(made.get(k) == (list(v) if isinstance(v, tuple) else v) for k, v in want.items() if k in made)
