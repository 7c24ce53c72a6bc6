"""`StorageError`: a storage URI cannot be used (unreachable, no bucket, refused credentials,
no write permission, a staged dataset that does not match). Its message names the URI, never
a credential, and the operation that failed."""

from __future__ import annotations

from reid_core.errors import ReIDError


class StorageError(ReIDError, RuntimeError):
    """A storage location cannot be used (message: the URI, the operation, what is wrong)."""
