"""Training checkpoints at phase boundaries, kept in the sweep's storage by training identity.

Layout under the storage root (a path, s3:// or gs://):

    _shared/<key>/epoch-NNNNN.pt     the checkpoint (reid_core's training checkpoint format)
    _shared/<key>/epoch-NNNNN.json   who stored it: trial, sweep, MLflow run id

`key` is sharing.py's `checkpoint_key`: a hash of everything that acted up to that epoch, so
the file fits any trial, of this sweep or a later one, whose key matches. The `.json` is
written first and the `.pt` last (a local file through a rename; an object is visible only
once whole): a `.pt` that can be seen is complete. The live plan asks `has()` often, so the
listing is read at most every `refresh_s` seconds.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any, Callable

from ..storage.store import Store

__all__ = ["SharedCheckpoints", "SHARED_PREFIX"]

SHARED_PREFIX = "_shared"


class SharedCheckpoints:
    def __init__(self, store: Store, refresh_s: float = 3.0) -> None:
        self.store = store
        self.refresh_s = refresh_s
        self._seen: set[tuple[str, int]] = set()
        self._read_at = -1e18

    def __getstate__(self) -> dict[str, Any]:  # pickled with the live plan: re-read after a restore
        return {"store": self.store, "refresh_s": self.refresh_s, "_seen": set(), "_read_at": -1e18}

    @staticmethod
    def rel(key: str, epoch: int, suffix: str = ".pt") -> str:
        return f"{SHARED_PREFIX}/{key}/epoch-{epoch:05d}{suffix}"

    # What is there -------------------------------------------------------------------------
    def available(self, fresh: bool = False) -> set[tuple[str, int]]:
        """Every (key, epoch) whose checkpoint is stored (listing at most every `refresh_s`)."""
        if fresh or time.monotonic() - self._read_at >= self.refresh_s:
            found = set()
            for rel in self.store.listing(SHARED_PREFIX):
                key, _, name = rel.partition("/")
                if name.startswith("epoch-") and name.endswith(".pt"):
                    found.add((key, int(name[len("epoch-") : -len(".pt")])))
            self._seen, self._read_at = found, time.monotonic()
        return set(self._seen)

    def has(self, key: str, epoch: int) -> bool:
        return (key, epoch) in self._seen or (key, epoch) in self.available()

    def info(self, key: str, epoch: int) -> dict[str, Any]:
        """Who stored it ({} when unknown)."""
        try:
            data = self.store.read_bytes(self.rel(key, epoch, ".json"))
            return dict(json.loads(data)) if data else {}
        except (ValueError, TypeError):
            return {}

    # Moving them ---------------------------------------------------------------------------
    def publish(self, key: str, epoch: int, save: Callable[[Path], Any], scratch: Path, about: dict[str, Any]) -> int:
        """Store a checkpoint: `save(path)` writes it locally, then up it goes; its size."""
        local = scratch / f"publish-{key}-{epoch:05d}.pt"
        save(local)
        try:
            self.store.write_bytes(self.rel(key, epoch, ".json"), (json.dumps(about) + "\n").encode())
            size = self.store.upload(local, self.rel(key, epoch))
        finally:
            local.unlink(missing_ok=True)
        self._seen.add((key, epoch))
        return size

    def fetch(self, key: str, epoch: int, scratch: Path) -> Path:
        """The checkpoint as a local file (a local storage's own file; else a download)."""
        if self.store.uri.is_local:
            return Path(self.store.path(self.rel(key, epoch)))
        local = scratch / f"start-{key}-{epoch:05d}.pt"
        self.store.download(self.rel(key, epoch), local)
        return local
