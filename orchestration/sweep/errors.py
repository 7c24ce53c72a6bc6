"""`SweepError`: a sweep cannot start, resume or be read. In its own module because the
runner, Ray setup, storage preflight, sweep folder and status all raise it."""

from __future__ import annotations

from reid_core.errors import ReIDError


class SweepError(ReIDError, RuntimeError):
    """The sweep cannot start or resume (existing state, missing state, bad paths)."""
