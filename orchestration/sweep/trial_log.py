"""A trial's own output in a file of its own: `<storage>/<sweep>/logs/<trial>.log`.

Everything the trial's process writes while it runs (its epoch lines, MLflow's notices, Ray's
checkpoint lines, warnings, a traceback) goes there instead of the driver's console, which
keeps one line per trial start and end (console.py; `--verbose` shows them instead). The
process's stdout and stderr file descriptors are redirected, so threads and C code are
caught too, and restored at the end (Ray reuses the process for the next trial). On a local
storage the file is written in place; on object storage it is written locally and uploaded
at every checkpoint and at the end, after what earlier attempts wrote.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

__all__ = ["TrialLog", "log_path"]

LOGS = "logs"


def log_path(sweep: str, trial: str) -> str:
    """The log's path relative to the storage root."""
    safe = "".join(ch if ch.isalnum() or ch in "-_.=" else "_" for ch in trial)
    return f"{sweep}/{LOGS}/{safe}.log"


class TrialLog:
    def __init__(self, store: Any, rel: str, scratch: Path) -> None:
        self.store, self.rel = store, rel
        if store.uri.is_local:
            self.path = Path(store.path(rel))
            self.path.parent.mkdir(parents=True, exist_ok=True)
        else:
            self.path = scratch / Path(rel).name
            if store.exists(rel):  # an earlier attempt's lines first
                store.download(rel, self.path)
        self.saved: tuple[int, int] | None = None

    @property
    def shown(self) -> str:
        return self.store.describe(self.rel)

    def __enter__(self) -> "TrialLog":
        sys.stdout.flush()
        sys.stderr.flush()
        self.saved = (os.dup(1), os.dup(2))
        descriptor = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        os.dup2(descriptor, 1)
        os.dup2(descriptor, 2)
        os.close(descriptor)
        return self

    def sync(self) -> None:
        """Object storage: upload what is written so far (a killed node loses little)."""
        if not self.store.uri.is_local:
            sys.stdout.flush()
            sys.stderr.flush()
            try:
                self.store.upload(self.path, self.rel)
            except Exception as e:  # noqa: BLE001 - the log is worth less than the trial
                print(f"could not upload this trial's log: {e}", flush=True)

    def __exit__(self, *exc: object) -> None:
        sys.stdout.flush()
        sys.stderr.flush()
        if self.saved is not None:
            os.dup2(self.saved[0], 1)
            os.dup2(self.saved[1], 2)
            os.close(self.saved[0])
            os.close(self.saved[1])
            self.saved = None
        self.sync()
