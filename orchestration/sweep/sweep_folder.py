"""Where a sweep keeps its files, its saved state (`sweep.json`), and what each trial is given.

Everything another node or a later driver reads lives under the storage root (`--storage`:
a path, s3:// or gs://; default `<runs-dir>/storage`, absolute):

    <root>/<sweep>/                 Ray Tune's experiment folder (its state, trial folders,
                                    their checkpoints), and the sweep's own files:
        sweep.json                  what resume and status need (`SweepState`)
        added_trials.json           trials adaptive seeds added
        summary.json                the last summary table
    <root>/_shared/<key>/...        checkpoints by training identity (checkpoints.py)
    <root>/_data/...                generated datasets by recipe (sweep_data.py)

The local `<runs-dir>/<sweep>/` is a cache: a copy of sweep.json (so `sweep status NAME`
finds the storage), the summary. From the sweep's name, the storage URI and the tracking URI,
any machine finds the rest (`open_sweep`).
"""

from __future__ import annotations

import dataclasses
import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from ..storage import StorageURI
from ..storage.store import Store
from .errors import SweepError

SWEEP_FILE = "sweep.json"
DEFAULT_STORAGE = "storage"  # under --runs-dir
# sweep.json's format. 2: trials travel as frozen Trial records (trial.py), files live under
# the storage URI; a sweep saved in format 1 (before 2026-12) cannot be resumed by this version.
STATE_FORMAT = 2  # (and several specs in one, a campaign: `members`)


def storage_root(storage: str | None, runs_dir: str | os.PathLike[str]) -> StorageURI:
    """The storage root: `--storage`, else `<runs-dir>/storage` (absolute)."""
    return StorageURI.parse(storage or str(Path(runs_dir).resolve() / DEFAULT_STORAGE))


@dataclass(frozen=True)
class MemberContext:
    """What the trials of one spec share: its MLflow experiment and parent run, its data."""

    experiment_id: str
    parent_run_id: str
    data_source: str  # a local folder, or a storage URI staged on each node (sweep_data.py)
    data_name: str
    data_sha256: str | None = None  # a staged archive's checksum, checked on every node
    checkpoint_every: int = 1


@dataclass(frozen=True)
class TrialContext:
    """What every trial of a sweep (or campaign) shares, passed with `tune.with_parameters`;
    the trial's own record travels in Ray's `config`, and `trial.sweep` picks its member."""

    sweep: str  # the sweep's (campaign's) name
    tracking_uri: str
    storage: str  # the storage root URI
    members: Mapping[str, MemberContext]
    threads: int = 1
    trial_logs: bool = True  # each trial's output to its own file (trial_log.py), not the console


@dataclass
class MemberState:
    """One spec of a sweep (a campaign has several): its text, MLflow runs, data, trials."""

    name: str
    spec_source: str
    spec_text: str
    experiment_id: str
    parent_run_id: str
    data_source: str
    data_name: str
    data_sha256: str | None = None
    checkpoint_every: int = 1
    planned: list[dict[str, Any]] = field(default_factory=list)

    def context(self) -> MemberContext:
        return MemberContext(
            self.experiment_id,
            self.parent_run_id,
            self.data_source,
            self.data_name,
            self.data_sha256,
            self.checkpoint_every,
        )


@dataclass
class SweepState:
    """sweep.json: everything `sweep resume` and `sweep status` need."""

    name: str
    tracking_uri: str
    storage: str
    resources: dict[str, float]
    max_concurrent: int | None
    members: list[MemberState] = field(default_factory=list)
    created: float = field(default_factory=time.time)
    resumed: int = 0
    sharing: dict[str, Any] = field(default_factory=dict)  # what shared training planned (cost, starts)
    rehearsal: bool = False
    format: int = STATE_FORMAT

    def __post_init__(self) -> None:
        self.members = [m if isinstance(m, MemberState) else MemberState(**m) for m in self.members]

    @property
    def root(self) -> StorageURI:
        return StorageURI.parse(self.storage)

    @property
    def experiment(self) -> StorageURI:
        """Ray Tune's experiment folder (the sweep's own files are there too)."""
        return self.root.join(self.name)

    @property
    def planned(self) -> list[dict[str, Any]]:
        return [trial for member in self.members for trial in member.planned]

    @property
    def tracking_label(self) -> str:
        """The MLflow experiments, as printed."""
        return ", ".join(f"{m.name} (parent run {m.parent_run_id})" for m in self.members)

    def member(self, name: str) -> MemberState:
        return next(m for m in self.members if m.name == name)

    def context(self, trial_logs: bool = True) -> TrialContext:
        return TrialContext(
            sweep=self.name,
            tracking_uri=self.tracking_uri,
            storage=self.storage,
            members={m.name: m.context() for m in self.members},
            threads=max(1, int(self.resources["cpu"])),
            trial_logs=trial_logs,
        )

    def write(self, store: Store, runs_dir: str | os.PathLike[str]) -> None:
        """Into the storage (authoritative) and the local cache."""
        text = json.dumps(dataclasses.asdict(self), indent=2, default=str) + "\n"
        store.write_bytes(f"{self.name}/{SWEEP_FILE}", text.encode())
        local = Path(runs_dir) / self.name
        local.mkdir(parents=True, exist_ok=True)
        tmp = local / f"{SWEEP_FILE}.tmp"
        tmp.write_text(text)
        tmp.replace(local / SWEEP_FILE)

    @classmethod
    def parse(cls, text: str | bytes, where: str) -> "SweepState":
        try:
            saved = json.loads(text)
            version = saved.get("format", 1)
        except (ValueError, AttributeError) as e:
            raise SweepError(
                f"{where}: unreadable ({type(e).__name__}: {e}); damaged, or not a sweep's state"
            ) from None
        if version != STATE_FORMAT:
            source = saved.get("spec_source", "SPEC")
            raise SweepError(
                f"{where}: saved by another compact-reid version (state format {version}, this "
                f"version reads {STATE_FORMAT}), so it cannot be resumed here. Start it again with "
                f"`compact-reid sweep run {source} --fresh`: its FINISHED trials are reused from the "
                f"tracking store ({saved.get('tracking_uri', '?')}), so only the unfinished ones train again"
            )
        try:
            return cls(**{f.name: saved[f.name] for f in dataclasses.fields(cls) if f.name in saved})
        except TypeError as e:
            raise SweepError(
                f"{where}: unreadable ({e}); damaged, or written by another compact-reid version"
            ) from None


def open_sweep(name_or_path: str, runs_dir: str | os.PathLike[str] = "runs", storage: str | None = None) -> SweepState:
    """A sweep's state, from its name (and `--storage`, when not the default or the one the
    local cache recorded) or the path of a folder holding sweep.json."""
    given = Path(name_or_path).expanduser()
    if storage is None and (given / SWEEP_FILE).is_file() and given.name != name_or_path:
        cached = SweepState.parse((given / SWEEP_FILE).read_text(), str(given / SWEEP_FILE))
        storage, name_or_path = cached.storage, cached.name
    name = name_or_path
    if storage is None:
        cached_file = Path(runs_dir) / name / SWEEP_FILE
        if cached_file.is_file():
            storage = SweepState.parse(cached_file.read_text(), str(cached_file)).storage
    root = storage_root(storage, runs_dir)
    store = Store(root)
    data = store.read_bytes(f"{name}/{SWEEP_FILE}")
    legacy = Path(runs_dir) / name / "ray" / name / SWEEP_FILE  # format 1's place (before 2026-12)
    if data is None and storage is None and legacy.is_file():
        return SweepState.parse(legacy.read_text(), str(legacy))  # refused, saying what to do
    if data is None:
        raise SweepError(
            f"{name}: no sweep found in {root.join(name).display} (looked for {SWEEP_FILE}); pass the "
            "storage it ran with (--storage URI), or start one with `compact-reid sweep run SPEC`"
        )
    return SweepState.parse(data, root.join(name, SWEEP_FILE).display)


def has_state(store: Store, name: str) -> bool:
    return store.exists(f"{name}/{SWEEP_FILE}")
