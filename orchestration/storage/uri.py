"""A storage URI: a local path, `s3://BUCKET/PREFIX` or `gs://BUCKET/PREFIX`, and its filesystem.

Endpoint and credentials come from the environment every client reads (AWS_ENDPOINT_URL,
AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN, AWS_DEFAULT_REGION; GCS: its
own), or the endpoint from `?endpoint_override=HOST:PORT` in the URI. Credentials in a URI
are refused: a URI is printed, logged to MLflow and saved with Ray's state.

`filesystem()` builds the pyarrow filesystem itself, for S3 with the endpoint made explicit
(pyarrow's `S3FileSystem()` constructor does not read AWS_ENDPOINT_URL, apache/arrow#49643)
and a retry strategy long enough to ride out an object store that restarts; credentials are
never passed, so the filesystem pickles (Ray sends it to every node and saves it with the
experiment) without them, and each process finds its own through the default chain.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

from .errors import StorageError

__all__ = ["StorageURI", "redact", "SECRET_VARIABLES"]

REMOTE_SCHEMES = ("s3", "gs", "gcs")
CREDENTIAL_QUERY_KEYS = ("access_key", "secret_key", "session_token", "token", "password")
SECRET_VARIABLES = (
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_ACCESS_KEY_ID",
    "MLFLOW_TRACKING_PASSWORD",
    "MLFLOW_TRACKING_TOKEN",
)
# An S3 store that restarts: the SDK's standard retries back off up to 20 s each, so about
# 15 attempts cover a minute of outage before an operation fails (our own retries add more).
DEFAULT_S3_ATTEMPTS = 15


def redact(text: str) -> str:
    """`text` with the value of every credential variable in the environment masked."""
    for name in SECRET_VARIABLES:
        value = os.environ.get(name)
        if value and len(value) >= 4:
            text = text.replace(value, "***")
    return re.sub(r"(?i)(secret|password|token)=([^&\s]+)", r"\1=***", text)


@dataclass(frozen=True)
class StorageURI:
    """A parsed storage location (module docstring)."""

    scheme: str  # "" for a local path
    bucket: str  # "" for a local path
    path: str  # local: absolute path; remote: key prefix without leading or trailing '/'
    query: str = ""  # remote: the URI's options (endpoint_override, region, scheme), as given

    @classmethod
    def parse(cls, text: str | os.PathLike[str]) -> "StorageURI":
        raw = str(text).strip()
        if "://" not in raw or raw.startswith("file://"):
            local = raw[len("file://") :] if raw.startswith("file://") else raw
            return cls("", "", str(Path(local).expanduser().resolve()))
        parts = urlsplit(raw)
        scheme = parts.scheme.lower()
        shown = f"{scheme}://{parts.hostname or ''}{parts.path}"
        if scheme not in REMOTE_SCHEMES:
            raise StorageError(f"storage {shown}: unsupported scheme {scheme!r}; use a path, s3:// or gs://")
        # A bucket name never holds ':' or '@'; either means user:secret@ (a secret with '/' in
        # it moves the '@' into the path, so the path is not shown then).
        if "@" in raw.split("?")[0] or ":" in parts.netloc:
            raise StorageError(
                f"storage {scheme}://***: credentials in the URI are refused (they would be printed and saved); "
                "put them in AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY"
            )
        options = parse_qsl(parts.query, keep_blank_values=True)
        if any(key.lower() in CREDENTIAL_QUERY_KEYS for key, _ in options):
            raise StorageError(
                f"storage {shown}: credentials in the URI's query are refused; put them in the environment "
                "(AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY)"
            )
        if not parts.netloc:
            raise StorageError(f"storage {raw.split('?')[0]}: no bucket; write {scheme}://BUCKET/PREFIX")
        return cls(scheme, parts.netloc, parts.path.strip("/"), urlencode(options))

    # What it is ---------------------------------------------------------------------------
    @property
    def is_local(self) -> bool:
        return not self.scheme

    def __str__(self) -> str:
        if self.is_local:
            return self.path
        base = f"{self.scheme}://{self.bucket}" + (f"/{self.path}" if self.path else "")
        return base + (f"?{self.query}" if self.query else "")

    @property
    def display(self) -> str:
        """The URI as printed (it can hold no credential: parse refuses them)."""
        return str(self)

    def join(self, *parts: str) -> "StorageURI":
        tail = "/".join(p.strip("/") for p in parts if p)
        if self.is_local:
            return StorageURI("", "", str(Path(self.path, tail)))
        return StorageURI(self.scheme, self.bucket, f"{self.path}/{tail}".strip("/"), self.query)

    @property
    def fs_path(self) -> str:
        """The path within `filesystem()`: local path, or BUCKET/PREFIX."""
        return self.path if self.is_local else f"{self.bucket}/{self.path}".rstrip("/")

    def option(self, key: str) -> str | None:
        return dict(parse_qsl(self.query)).get(key)

    # Its filesystem -----------------------------------------------------------------------
    def filesystem(self, attempts: int | None = None) -> Any:
        """The pyarrow filesystem of this URI (module docstring); paths in it are `fs_path`.
        `attempts`: S3 tries per request (default $COMPACT_REID_S3_ATTEMPTS, else 15; a
        preflight asks for few, to fail fast)."""
        import pyarrow.fs as pafs

        if self.is_local:
            return pafs.LocalFileSystem()
        if self.scheme != "s3":
            return pafs.FileSystem.from_uri(str(self))[0]  # gs:// (untested here: docs/USAGE.md)
        endpoint = (
            self.option("endpoint_override")
            or os.environ.get("AWS_ENDPOINT_URL_S3")
            or os.environ.get("AWS_ENDPOINT_URL")
        )
        scheme = self.option("scheme")
        if endpoint and "://" in endpoint:
            scheme, endpoint = endpoint.split("://", 1)
        region = self.option("region") or os.environ.get("AWS_DEFAULT_REGION") or os.environ.get("AWS_REGION")
        if region is None:
            region = "us-east-1" if endpoint else _bucket_region(self.bucket)
        return pafs.S3FileSystem(
            region=region,
            endpoint_override=endpoint.rstrip("/") if endpoint else None,
            scheme=scheme or "https",
            connect_timeout=5,
            request_timeout=60,
            retry_strategy=pafs.AwsStandardS3RetryStrategy(max_attempts=attempts or _default_attempts()),
        )


def _default_attempts() -> int:
    return int(os.environ.get("COMPACT_REID_S3_ATTEMPTS", DEFAULT_S3_ATTEMPTS))


def _bucket_region(bucket: str) -> str:
    import pyarrow.fs as pafs

    try:
        return pafs.resolve_s3_region(bucket)
    except OSError:
        return "us-east-1"  # the preflight then says what is wrong with the bucket
