"""Datasets from object storage, staged once per node onto local disk.

`stage(source)`: `source` is a local folder (used as it is) or a storage URI of an archive
(`.zip`, `.tar`, `.tar.gz`, `.tgz`) or of a prefix holding the dataset's files. The staged
copy lives in `<cache>/datasets/<key>/` ($COMPACT_REID_CACHE, else ~/.cache/compact-reid),
where `key` comes from the object's ETag and size (a prefix: every object's name and size),
so a changed object is staged anew and an unchanged one never twice.
- One download per node: stagers take an exclusive lock on `<key>.lock`; the others wait
  for it and then use its result.
- Atomic: the archive is downloaded and unpacked under temporary names; `manifest.json`
  (every file's size and BLAKE2b digest) is written last, then the folder is renamed into place.
- Verified before every use: a missing, truncated or altered file (a partial or corrupted
  copy) makes it stage again.
- `sha256`: the archive's expected checksum (the spec's `dataset.sha256`, or what the driver
  staged); a download that does not match is refused, naming both checksums.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
import tarfile
import time
import zipfile
from pathlib import Path
from typing import Callable

from .errors import StorageError
from .store import Store
from .uri import StorageURI

__all__ = ["stage", "Staged", "ARCHIVE_SUFFIXES", "cache_root", "file_sha256"]

ARCHIVE_SUFFIXES = (".zip", ".tar", ".tar.gz", ".tgz")
MANIFEST = "manifest.json"
_CHUNK = 1 << 20


class Staged:
    """A staged dataset: its local folder and the archive's checksum (None for a prefix)."""

    def __init__(self, root: Path, sha256: str | None, seconds: float, downloaded: bool) -> None:
        self.root, self.sha256, self.seconds, self.downloaded = root, sha256, seconds, downloaded


def cache_root() -> Path:
    base = os.environ.get("COMPACT_REID_CACHE") or Path.home() / ".cache" / "compact-reid"
    return Path(base) / "datasets"


def file_sha256(path: str | os.PathLike[str]) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        for block in iter(lambda: stream.read(_CHUNK), b""):
            digest.update(block)
    return digest.hexdigest()


def stage(source: str, sha256: str | None = None, log: Callable[[str], None] = print) -> Staged:
    """The local folder of the dataset at `source` (module docstring)."""
    began = time.perf_counter()
    uri = StorageURI.parse(source)
    if uri.is_local:
        return Staged(Path(uri.path), None, 0.0, False)
    name = uri.path.rsplit("/", 1)[-1]
    is_archive = name.lower().endswith(ARCHIVE_SUFFIXES)
    store = Store(_parent(uri), log=log) if is_archive else Store(uri, log=log)  # the archive's folder, or the prefix
    identity = _archive_identity(store, name) if is_archive else _prefix_identity(store)
    key = hashlib.sha256(f"{uri.display}|{identity}|{sha256 or ''}".encode()).hexdigest()[:24]
    folder = cache_root() / key
    folder.parent.mkdir(parents=True, exist_ok=True)
    with _exclusive(folder.with_suffix(".lock"), log, uri.display):
        manifest = _verified(folder)
        if manifest is not None:
            return Staged(folder, manifest.get("sha256"), time.perf_counter() - began, False)
        if folder.exists():
            log(f"staged copy of {uri.display} in {folder} is partial or altered: staging it again")
            shutil.rmtree(folder)
        checksum = _fetch(store, name, uri, folder, sha256, is_archive)
    seconds = time.perf_counter() - began
    log(f"staged {uri.display} into {folder} in {seconds:.1f}s")
    return Staged(folder, checksum, seconds, True)


def _parent(uri: StorageURI) -> StorageURI:
    head = uri.path.rsplit("/", 1)[0] if "/" in uri.path else ""
    return StorageURI(uri.scheme, uri.bucket, head, uri.query)


def _archive_identity(store: Store, name: str) -> str:
    def metadata() -> dict:
        with store.fs.open_input_file(store.path(name)) as stream:
            return {k: (v.decode() if isinstance(v, bytes) else v) for k, v in stream.metadata().items()}

    if not store.exists(name):
        raise StorageError(f"dataset {store.describe(name)}: no such object")
    meta = store.retrying("stat", name, metadata)
    return f"{meta.get('ETag', '')}|{meta.get('Content-Length', '')}"


def _prefix_identity(store: Store) -> str:
    files = store.listing()
    if not files:
        raise StorageError(f"dataset {store.describe()}: no objects under this prefix")
    return hashlib.sha256(json.dumps(sorted(files.items())).encode()).hexdigest()


def _fetch(store: Store, name: str, uri: StorageURI, folder: Path, sha256: str | None, is_archive: bool) -> str | None:
    """Download (and unpack) into a temporary folder, check, write the manifest, rename."""
    work = folder.with_name(f"{folder.name}.{os.getpid()}.staging")
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    try:
        checksum = None
        if is_archive:
            archive = work.with_suffix(".archive")
            size = store.download(name, archive)
            checksum = file_sha256(archive)
            if sha256 and checksum != sha256:
                archive.unlink()
                raise StorageError(
                    f"dataset {uri.display}: checksum mismatch: expected sha256 {sha256}, the download has "
                    f"sha256 {checksum} ({size} bytes); the object changed or the expected checksum is wrong"
                )
            _unpack(archive, work, uri.display)
            archive.unlink()
        else:
            for rel in store.listing():
                store.download(rel, work / rel)
        manifest = {"source": uri.display, "sha256": checksum, "files": _digests(work)}
        (work / MANIFEST).write_text(json.dumps(manifest) + "\n")
        work.rename(folder)
        return checksum
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _unpack(archive: Path, into: Path, shown: str) -> None:
    """Extract, refusing members that would land outside `into`."""
    base = into.resolve()
    try:
        if zipfile.is_zipfile(archive):
            with zipfile.ZipFile(archive) as packed:
                for member in packed.namelist():
                    if not (base / member).resolve().is_relative_to(base):
                        raise StorageError(f"dataset {shown}: archive member {member!r} points outside the archive")
                packed.extractall(into)
            return
        with tarfile.open(archive) as packed:
            packed.extractall(into, filter="data")
    except (zipfile.BadZipFile, tarfile.TarError, EOFError) as e:
        raise StorageError(f"dataset {shown}: the archive cannot be unpacked ({type(e).__name__}: {e})") from None


def _digests(folder: Path) -> dict[str, list]:
    out = {}
    for path in sorted(folder.rglob("*")):
        if path.is_file() and path.name != MANIFEST:
            out[str(path.relative_to(folder))] = [path.stat().st_size, _blake2b(path)]
    return out


def _blake2b(path: Path) -> str:
    digest = hashlib.blake2b(digest_size=16)
    with open(path, "rb") as stream:
        for block in iter(lambda: stream.read(_CHUNK), b""):
            digest.update(block)
    return digest.hexdigest()


def _verified(folder: Path) -> dict | None:
    """The manifest of a staged folder whose every file is there, whole and unaltered; else None."""
    try:
        manifest = json.loads((folder / MANIFEST).read_text())
        files = manifest["files"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    for rel, (size, digest) in files.items():
        path = folder / rel
        try:
            if path.stat().st_size != size or _blake2b(path) != digest:
                return None
        except OSError:
            return None
    return manifest


class _exclusive:
    """An exclusive lock on a file: trials on one node stage one copy; the others wait."""

    def __init__(self, path: Path, log: Callable[[str], None], shown: str) -> None:
        self.path, self.log, self.shown = path, log, shown

    def __enter__(self) -> None:
        self.handle = open(self.path, "a+")
        try:
            fcntl.flock(self.handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self.log(f"waiting for another process staging {self.shown} on this node")
            fcntl.flock(self.handle, fcntl.LOCK_EX)

    def __exit__(self, *exc: object) -> None:
        fcntl.flock(self.handle, fcntl.LOCK_UN)
        self.handle.close()
