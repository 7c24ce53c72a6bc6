"""Error types. Every error a user can cause derives from ReIDError, so the CLI prints
its message (which names the file, key or path) instead of a traceback."""


class ReIDError(Exception):
    """Base class of the errors caused by bad input."""


class DataError(ReIDError, ValueError):
    """A dataset folder, file name or image is missing or invalid."""


class CheckpointError(ReIDError, ValueError):
    """A checkpoint is corrupted or belongs to another architecture."""


class TrainingError(ReIDError, RuntimeError):
    """Training cannot go on (non-finite loss, too few identities, ...)."""


class ExportError(ReIDError, RuntimeError):
    """An export cannot be made or run here, or fails its parity check."""


class MissingDependencyError(ReIDError, ImportError):
    """An optional package (onnx, onnxruntime, pyarrow, ...) that a command needs is not installed."""
