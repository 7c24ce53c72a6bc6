"""The per-machine cache of probe results: `$COMPACT_REID_CACHE/resource-probe.json`
(default ~/.cache/compact-reid), one entry per (device model, kind of node, preset, model
size, input size, batch, versions, what was open, the defaults' cell). A corrupt cache, or
one of another PROBE_VERSION, is ignored and rewritten; writes are atomic (temp + rename)."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any, Callable, Mapping

from .cells import Cell, NodeKind, OpenChoices

Log = Callable[[str], None]
PROBE_VERSION = 2  # 2: pipeline / compile cells alternated in the same workers
CACHE_FILE = "resource-probe.json"
CACHE_ENV = "COMPACT_REID_CACHE"


def cache_path(cache_dir: str | os.PathLike[str] | None = None) -> Path:
    """`cache_dir`, else $COMPACT_REID_CACHE, else ~/.cache/compact-reid; the file in it."""
    base = cache_dir or os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "compact-reid"
    return Path(base) / CACHE_FILE


def cache_key(device: str, config: Mapping[str, Any], kind: NodeKind, left_open: OpenChoices, default: Cell) -> str:
    """A short hash, then the readable parts it hashes (so the file says what each entry is)."""
    import torch

    try:
        import torchvision

        torchvision_version = torchvision.__version__
    except ImportError:  # pragma: no cover - torchvision is a dependency
        torchvision_version = "none"
    model, data = config["model"], config["data"]
    parts = {
        "device": device,
        "kind": kind.key,
        "preset": config.get("preset", ""),
        "width": model.get("width_multiplier"),
        "depth": model.get("depth_multiplier"),
        "input": f"{model['input_height']}x{model['input_width']}",
        "batch": f"{data['p']}x{data['k']}",
        "num_workers": data.get("num_workers"),
        "versions": f"probe {PROBE_VERSION}, torch {torch.__version__}, torchvision {torchvision_version}",
        "open": [left_open.pipeline, left_open.compile, left_open.packing, left_open.max_processes],
        "default": default.label,
    }
    text = json.dumps(parts, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16] + " " + text


def _entries(path: Path) -> dict[str, Any]:
    """The cache's entries; ValueError when it is not a cache of this version."""
    data = json.loads(path.read_text())
    if not isinstance(data, dict) or data.get("version") != PROBE_VERSION or not isinstance(data.get("entries"), dict):
        found = data.get("version") if isinstance(data, dict) else "?"
        raise ValueError(f"version {found}, not {PROBE_VERSION}")
    return data["entries"]


def read_cache(path: Path, key: str, log: Log) -> dict[str, Any] | None:
    """The entry under `key`, or None (no cache, no entry, or an unusable cache: logged)."""
    if not path.exists():
        return None
    try:
        entries = _entries(path)
    except (OSError, ValueError) as e:
        log(f"resource probe cache {path}: ignored ({type(e).__name__}: {e}); it will be rewritten")
        return None
    entry = entries.get(key)
    return entry if isinstance(entry, dict) and isinstance(entry.get("table"), list) else None


def write_cache(path: Path, key: str, entry: Mapping[str, Any], log: Log) -> None:
    """Add or replace one entry, keeping the others of this version; a failure is logged."""
    try:
        entries = _entries(path)
    except (OSError, ValueError):
        entries = {}
    entries[key] = dict(entry)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary = path.with_name(f"{path.name}.{os.getpid()}.tmp")
        temporary.write_text(json.dumps({"version": PROBE_VERSION, "entries": entries}, indent=1, default=str) + "\n")
        temporary.replace(path)
    except OSError as e:
        log(f"resource probe cache {path}: not written ({e})")
