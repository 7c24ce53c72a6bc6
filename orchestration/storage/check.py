"""Preflight of a storage URI, before anything is created (no MLflow run, no Ray trial).

Three requests, each with few retries so a wrong address fails in seconds: the bucket
(reachable? does it exist?), a listing under the prefix (are the credentials accepted?), and
a probe object written, read back and deleted (may we write?). The error names the URI, the
operation that failed and what is wrong; never a credential.
"""

from __future__ import annotations

import secrets
from pathlib import Path
from typing import Callable

from .errors import StorageError
from .store import Store, classify
from .uri import StorageURI

__all__ = ["check_storage", "PROBE_PREFIX"]

PROBE_PREFIX = ".compact-reid-probe-"


def check_storage(uri: StorageURI | str, what: str = "storage", log: Callable[[str], None] = print) -> StorageURI:
    """Refuse (StorageError) a storage URI this process cannot use; the parsed URI otherwise."""
    import pyarrow.fs as pafs

    parsed = uri if isinstance(uri, StorageURI) else StorageURI.parse(uri)
    store = Store(parsed, wait_s=0.0, attempts=2)
    if parsed.is_local:  # the folders made for the probe go again: a refused sweep leaves nothing
        missing = [p for p in (Path(parsed.path), *Path(parsed.path).parents) if not p.exists()]
        try:
            _writable_probe(store, what)
        finally:
            for folder in missing:
                try:
                    folder.rmdir()
                except OSError:
                    break
        return parsed

    def fail(operation: str, error: BaseException) -> StorageError:
        return StorageError(f"{what} {parsed.display}: {operation} failed: {classify(error)}")

    try:
        bucket = store.fs.get_file_info(parsed.bucket)
    except OSError as e:
        if "ACCESS_DENIED" not in str(e):  # denied: the listing below tells credentials from permissions
            raise fail(f"reaching bucket {parsed.bucket}", e) from None
    else:
        if bucket.type == pafs.FileType.NotFound:
            raise StorageError(f"{what} {parsed.display}: reaching bucket {parsed.bucket} failed: it does not exist")
    try:
        store.fs.get_file_info(pafs.FileSelector(parsed.fs_path, allow_not_found=True))
    except OSError as e:
        raise fail("listing", e) from None
    _writable_probe(store, what)
    log(f"{what}: {parsed.display} reachable and writable")
    return parsed


def _writable_probe(store: Store, what: str) -> None:
    rel = f"{PROBE_PREFIX}{secrets.token_hex(8)}"
    token = secrets.token_bytes(16)
    try:
        store.write_bytes(rel, token)
        if store.read_bytes(rel) != token:
            raise StorageError(f"{what} {store.describe()}: reading back a probe object returned other bytes")
        store.delete(rel)
    except StorageError as e:
        raise StorageError(str(e).replace("write failed", "writing a probe object failed")) from None
    except OSError as e:  # a local folder that cannot be created or written
        raise StorageError(f"{what} {store.describe()}: writing a probe object failed: {classify(e)}") from None
