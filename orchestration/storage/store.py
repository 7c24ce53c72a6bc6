"""Files under a storage URI (`Store`): read, write, list, upload and download, each retried
while the object store is unreachable, and saying so.

pyarrow's S3 client already retries a request (uri.py); an outage longer than its retries
raises, and `Store` retries the whole operation with backoff for up to
$COMPACT_REID_STORAGE_WAIT_S seconds (default 600), logging once when the store goes away
and once when it is back. Errors that waiting cannot fix (no bucket, refused credentials,
no permission) raise `StorageError` at once. A local path writes through a temporary name
and a rename, so a reader never sees half a file; an S3 object is visible only once whole.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any, Callable, TypeVar

from .errors import StorageError
from .uri import StorageURI, redact

__all__ = ["Store", "classify", "is_transient", "storage_wait_seconds"]

Result = TypeVar("Result")

_TRANSIENT = (
    "NETWORK_CONNECTION",
    "curlCode",
    "Could not connect",
    "Connection refused",
    "SERVICE_UNAVAILABLE",
    "INTERNAL_FAILURE",
    "SLOW_DOWN",
    "REQUEST_TIMEOUT",
    "Timeout",
    "timed out",
    "Connection reset",
)
_CATEGORIES = (
    (("NETWORK_CONNECTION", "curlCode", "Could not connect", "Connection refused"), "the endpoint is unreachable"),
    (("NO_SUCH_BUCKET", "NoSuchBucket"), "the bucket does not exist"),
    (
        ("INVALID_ACCESS_KEY_ID", "SIGNATURE_DOES_NOT_MATCH", "InvalidAccessKeyId", "SignatureDoesNotMatch")
        + ("EXPIRED_TOKEN", "INVALID_CLIENT_TOKEN_ID", "InvalidToken", "MISSING_AUTHENTICATION_TOKEN"),
        "the credentials are refused (AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY)",
    ),
    (("ACCESS_DENIED", "AccessDenied", "Forbidden", "403"), "permission denied"),
)


def storage_wait_seconds() -> float:
    return float(os.environ.get("COMPACT_REID_STORAGE_WAIT_S", "600"))


def is_transient(error: BaseException) -> bool:
    """True for what waiting can fix: the store unreachable, overloaded or restarting."""
    text = str(error)
    return isinstance(error, (ConnectionError, TimeoutError)) or any(mark in text for mark in _TRANSIENT)


def classify(error: BaseException) -> str:
    """What a storage error means, in words (for messages that name the operation)."""
    text = str(error)
    for marks, meaning in _CATEGORIES:
        if any(mark in text for mark in marks):
            return meaning
    return f"{type(error).__name__}: {redact(text.splitlines()[0] if text else '')[:200]}"


class Store:
    """Files below one storage URI, addressed by relative paths ("sweep/sweep.json")."""

    def __init__(
        self,
        uri: StorageURI | str,
        log: Callable[[str], None] | None = None,
        wait_s: float | None = None,
        attempts: int | None = None,
    ) -> None:
        self.uri = uri if isinstance(uri, StorageURI) else StorageURI.parse(uri)
        self.fs = self.uri.filesystem(attempts)
        self._log = log  # None: print (a Store may be pickled; print is looked up when used)
        self.wait_s = storage_wait_seconds() if wait_s is None else wait_s
        self.down_since: float | None = None

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state["_log"] = None
        return state

    def log(self, msg: str) -> None:
        (self._log or print)(msg)

    def path(self, rel: str) -> str:
        return f"{self.uri.fs_path}/{rel.strip('/')}" if rel else self.uri.fs_path

    def describe(self, rel: str = "") -> str:
        return self.uri.join(rel).display if rel else self.uri.display

    # Retries ---------------------------------------------------------------------------------
    def retrying(self, what: str, rel: str, call: Callable[[], Result]) -> Result:
        """`call()`, retried while the store is unreachable (module docstring)."""
        deadline = time.monotonic() + self.wait_s
        delay = 1.0
        while True:
            try:
                result = call()
            except (OSError, ConnectionError, TimeoutError) as e:
                if not is_transient(e):
                    raise StorageError(f"storage {self.describe(rel)}: {what} failed: {classify(e)}") from None
                if self.down_since is None:
                    self.down_since = time.monotonic()
                    self.log(
                        f"object store {self.uri.display} unreachable during {what} ({classify(e)}); "
                        f"retrying for up to {self.wait_s:.0f}s"
                    )
                if time.monotonic() > deadline:
                    raise StorageError(
                        f"storage {self.describe(rel)}: {what} failed: still unreachable after {self.wait_s:.0f}s "
                        f"({classify(e)})"
                    ) from None
                time.sleep(delay)
                delay = min(delay * 2, 15.0)
                continue
            if self.down_since is not None:
                self.log(f"object store {self.uri.display} back after {time.monotonic() - self.down_since:.0f}s")
                self.down_since = None
            return result

    # Operations ------------------------------------------------------------------------------
    def exists(self, rel: str) -> bool:
        import pyarrow.fs as pafs

        info = self.retrying("stat", rel, lambda: self.fs.get_file_info(self.path(rel)))
        return info.type != pafs.FileType.NotFound

    def read_bytes(self, rel: str) -> bytes | None:
        """The file's bytes, or None when there is none."""
        if not self.exists(rel):
            return None

        def read() -> bytes:
            with self.fs.open_input_stream(self.path(rel)) as stream:
                return stream.read()

        return self.retrying("read", rel, read)

    def write_bytes(self, rel: str, data: bytes) -> None:
        if self.uri.is_local:
            target = Path(self.path(rel))
            target.parent.mkdir(parents=True, exist_ok=True)
            tmp = target.with_name(f"{target.name}.{os.getpid()}.tmp")
            tmp.write_bytes(data)
            tmp.replace(target)
            return

        def write() -> None:
            with self.fs.open_output_stream(self.path(rel)) as stream:
                stream.write(data)

        self.retrying("write", rel, write)

    def upload(self, local: str | os.PathLike[str], rel: str) -> int:
        """Copy a local file to `rel` (atomically: readers see all of it or nothing); its size."""
        size = os.path.getsize(local)
        if self.uri.is_local:
            import shutil

            target = Path(self.path(rel))
            target.parent.mkdir(parents=True, exist_ok=True)
            tmp = target.with_name(f"{target.name}.{os.getpid()}.tmp")
            shutil.copyfile(local, tmp)
            tmp.replace(target)
            return size

        def copy() -> None:
            import pyarrow.fs as pafs

            pafs.copy_files(str(local), self.path(rel), destination_filesystem=self.fs)

        self.retrying("upload", rel, copy)
        return size

    def download(self, rel: str, local: str | os.PathLike[str]) -> int:
        """Copy `rel` to a local file (written under a temporary name, then renamed); its size."""
        import pyarrow.fs as pafs

        target = Path(local)
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(f"{target.name}.{os.getpid()}.part")

        def copy() -> None:
            pafs.copy_files(self.path(rel), str(tmp), source_filesystem=self.fs)

        self.retrying("download", rel, copy)
        tmp.replace(target)
        return target.stat().st_size

    def listing(self, rel: str = "", recursive: bool = True) -> dict[str, int]:
        """{path relative to `rel`: size} of the files below `rel` ({} when there are none)."""
        import pyarrow.fs as pafs

        base = self.path(rel)
        selector = pafs.FileSelector(base, allow_not_found=True, recursive=recursive)
        infos = self.retrying("list", rel, lambda: self.fs.get_file_info(selector))
        return {
            info.path[len(base) :].lstrip("/"): int(info.size or 0) for info in infos if info.type == pafs.FileType.File
        }

    def delete(self, rel: str) -> None:
        self.retrying("delete", rel, lambda: self.fs.delete_file(self.path(rel)))
