"""Each split decoded ONCE into a uint8 tensor [N, 3, H, W] at the model's input size.

Cached on disk beside the dataset (`<root>/.reid-cache/`, else the user cache dir), with the
same pixels as the torchvision path after its Resize. A file whose content key, size or
BLAKE2b digest does not match is rebuilt; builders take a file lock and write atomically.
File layout, key and race safety: docs/ARCHITECTURE.md, "Module notes: reid_core/data/device_cache.py".
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import struct
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator, Sequence

import torch

from ..errors import DataError

__all__ = ["CacheResult", "load_or_build", "cache_key", "user_cache_dir", "CACHE_DIRNAME"]

MAGIC = b"RIDCACH1"
FORMAT_VERSION = 1
CACHE_DIRNAME = ".reid-cache"
_HASH_CHUNK = 1 << 24


@dataclass
class CacheResult:
    images: torch.Tensor  # uint8 [N, 3, H, W], on the CPU
    path: Path
    built: bool  # True when this call decoded the images (False: loaded a valid file)
    seconds: float


def user_cache_dir() -> Path:
    env = os.environ.get("COMPACT_REID_CACHE")
    if env:
        return Path(env)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "compact-reid"


def cache_key(items: Sequence[tuple[str, int, int]], root: str | Path, height: int, width: int) -> str:
    """Content key: relative paths, labels, byte sizes and mtimes of the items, and the size."""
    root = Path(root)
    hasher = hashlib.blake2b(digest_size=16)
    hasher.update(f"v{FORMAT_VERSION}|{height}x{width}|{len(items)}\n".encode())
    for path, pid, cam in items:
        try:
            st = os.stat(path)
        except OSError as e:
            raise DataError(f"cannot read image {path}: {e}") from e
        try:
            rel = os.path.relpath(path, root)
        except ValueError:  # another drive (Windows)
            rel = str(path)
        hasher.update(f"{rel}|{pid}|{cam}|{st.st_size}|{st.st_mtime_ns}\n".encode())
    return hasher.hexdigest()


def _digest(buf: memoryview) -> str:
    hasher = hashlib.blake2b(digest_size=16)
    for start in range(0, len(buf), _HASH_CHUNK):
        hasher.update(buf[start : start + _HASH_CHUNK])
    return hasher.hexdigest()


def _read_valid(path: Path, key: str, shape: tuple[int, ...]) -> torch.Tensor | None:
    """The cached tensor, or None when the file is absent, torn or for other content."""
    try:
        with open(path, "rb") as f:
            if f.read(8) != MAGIC:
                return None
            (hlen,) = struct.unpack("<Q", f.read(8))
            if hlen > 1 << 20:
                return None
            header = json.loads(f.read(hlen).decode())
            nbytes = int(header["nbytes"])
            if (
                header.get("key") != key
                or tuple(header.get("shape", ())) != shape
                or nbytes != int(torch.Size(shape).numel())
            ):
                return None
            if os.fstat(f.fileno()).st_size != 16 + hlen + nbytes:  # truncated or padded
                return None
            data = bytearray(nbytes)
            if f.readinto(data) != nbytes:
                return None
    except (OSError, ValueError, KeyError, struct.error, UnicodeDecodeError):
        return None
    if _digest(memoryview(data)) != header.get("blake2b"):
        return None
    return torch.frombuffer(data, dtype=torch.uint8).view(shape)


def _write(path: Path, key: str, images: torch.Tensor) -> None:
    images = images.contiguous()
    buf = memoryview(images.numpy()).cast("B")
    header = json.dumps(
        {
            "format": FORMAT_VERSION,
            "key": key,
            "shape": list(images.shape),
            "dtype": "uint8",
            "nbytes": len(buf),
            "blake2b": _digest(buf),
        }
    ).encode()
    tmp = path.with_name(f"{path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        with open(tmp, "wb") as f:
            f.write(MAGIC + struct.pack("<Q", len(header)) + header)
            f.write(buf)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows: temp name + os.replace still hold
        yield
        return
    with open(path.with_name(path.name + ".lock"), "a+b") as lf:
        fcntl.flock(lf.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lf.fileno(), fcntl.LOCK_UN)


def _writable_dir(d: Path) -> bool:
    try:
        d.mkdir(parents=True, exist_ok=True)
        probe = d / f".probe-{os.getpid()}-{uuid.uuid4().hex[:6]}"
        probe.write_bytes(b"")
        probe.unlink()
        return True
    except OSError:
        return False


def _cache_dir(root: Path, log: Callable[[str], None]) -> Path:
    beside = root / CACHE_DIRNAME
    if _writable_dir(beside):
        return beside
    fallback = user_cache_dir()
    if not _writable_dir(fallback):
        raise DataError(
            f"device data cache: neither {beside} nor {fallback} is writable; "
            "set COMPACT_REID_CACHE to a writable folder or use data.pipeline=torchvision"
        )
    log(f"device data cache: {beside} is not writable, using {fallback} instead")
    return fallback


def _decode(
    items: Sequence[tuple[str, int, int]], height: int, width: int, workers: int, progress: bool
) -> torch.Tensor:
    """Decode and resize every image with the torchvision path's own Resize, in workers."""
    from torch.utils.data import DataLoader
    from torchvision.transforms import v2 as T

    from .datasets import ImageDataset
    from .transforms import resize

    tf = T.Compose([resize(height, width), T.PILToTensor()])
    loader = DataLoader(ImageDataset(items, tf), batch_size=256, num_workers=workers, shuffle=False)
    out = torch.empty((len(items), 3, height, width), dtype=torch.uint8)
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=len(items), desc="decoding into the device cache", unit="img", leave=False)
    for imgs, _p, _c, idx in loader:
        out[idx] = imgs
        if bar is not None:
            bar.update(len(idx))
    if bar is not None:
        bar.close()
    return out


def load_or_build(
    items: Sequence[tuple[str, int, int]],
    root: str | Path,
    split: str,
    height: int,
    width: int,
    workers: int = 2,
    log: Callable[[str], None] | None = None,
    progress: bool = True,
) -> CacheResult:
    """The split's uint8 tensor from a valid cache file, else decoded once and cached."""
    log = log or (lambda _m: None)
    t0 = time.perf_counter()
    root = Path(root)
    if not items:
        raise DataError(f"device data cache: split {split!r} of {root} has no image")
    key = cache_key(items, root, height, width)
    cache_dir = _cache_dir(root, log)
    # One file per split and size (not per key): a new version of the dataset finds the
    # old file, sees its key differ and replaces it, so stale caches do not pile up.
    path = cache_dir / f"{split}-{height}x{width}.u8"
    shape = (len(items), 3, height, width)
    found = _read_valid(path, key, shape)
    if found is not None:
        return CacheResult(found, path, False, time.perf_counter() - t0)
    with _locked(path):
        found = _read_valid(path, key, shape)  # another process may have built it meanwhile
        if found is not None:
            return CacheResult(found, path, False, time.perf_counter() - t0)
        if path.exists():
            log(f"device data cache: {path} is truncated or does not match the dataset; rebuilding it")
        images = _decode(items, height, width, workers, progress)
        _write(path, key, images)
    log(
        f"device data cache: decoded {len(items)} {split} images to {path} "
        f"({images.numel() / 2**20:.0f} MiB, {time.perf_counter() - t0:.1f} s)"
    )
    return CacheResult(images, path, True, time.perf_counter() - t0)
