"""`SlurmError`: a job cannot be written, submitted or run as asked (the CLI exits 2)."""

from __future__ import annotations

from reid_core.errors import ReIDError


class SlurmError(ReIDError, RuntimeError):
    """Bad options, no Slurm here, or Slurm refused the job."""
