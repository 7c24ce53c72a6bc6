"""`<storage>/<sweep>/slurm.json`: the sweep's Slurm job as it was submitted and what each of
its runs did (started, Ray ready, warned, requeued, finished, failed), so that any machine
that reaches the storage can tell, with the sweep's name only (`status.job_line`)."""

from __future__ import annotations

import json
import time
from typing import Any

from ..storage import StorageURI
from ..storage.store import Store

RECORD_FILE = "slurm.json"
# the state each event leaves the job in
STATES = {
    "submitted": "PENDING",
    "started": "RUNNING",
    "ray-ready": "RUNNING",
    "requeued": "REQUEUED",
    "finished": "FINISHED",
    "failed": "FAILED",
    "stopped": "STOPPED",
}


def _store(storage: str | StorageURI) -> Store:
    return Store(storage if isinstance(storage, StorageURI) else StorageURI.parse(storage), attempts=3, wait_s=30)


def read_record(storage: str | StorageURI, sweep: str) -> dict[str, Any] | None:
    data = _store(storage).read_bytes(f"{sweep}/{RECORD_FILE}")
    if data is None:
        return None
    try:
        record = json.loads(data)
    except ValueError:
        return None
    return record if isinstance(record, dict) else None


def write_record(storage: str | StorageURI, sweep: str, record: dict[str, Any]) -> None:
    text = json.dumps(record, indent=2, default=str) + "\n"
    _store(storage).write_bytes(f"{sweep}/{RECORD_FILE}", text.encode())


def add_event(
    storage: str | StorageURI, sweep: str, event: str, restart: int = 0, detail: str = "", **fields: Any
) -> dict[str, Any]:
    """Append an event (and set `fields`) in the record; the job's shell is its only writer
    while the job runs."""
    if event not in STATES:
        raise ValueError(f"unknown event {event!r}")
    record = read_record(storage, sweep) or {}
    record.update(fields)
    record["state"] = STATES[event]
    record["restart"] = restart
    record.setdefault("events", []).append(
        {"at": time.strftime("%Y-%m-%dT%H:%M:%S"), "event": event, "restart": restart, "detail": detail}
    )
    write_record(storage, sweep, record)
    return record
