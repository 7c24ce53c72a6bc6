"""Processes that end with the process that launched them, even when it is SIGKILLed.

`tether.py` is a small supervisor run as a script (`python -I`, so it starts without
importing this package): `tethered(cmd)` is the argv that runs a command under it (the
MLflow tracking server, PostgreSQL), `watcher()` the argv of one that ends the processes a
launcher cannot start under it (Ray's own). `is_tether()` / `tether_of()` recognise a tether
and the processes below it by the marker in their environment.

Used by mlflow_server and orchestration; imports neither (nor reid_core).
"""

from .tether import MARKER, PARENT_GONE, descendants, is_tether, tether_of, tethered, watcher

__all__ = ["MARKER", "PARENT_GONE", "descendants", "is_tether", "tether_of", "tethered", "watcher"]
