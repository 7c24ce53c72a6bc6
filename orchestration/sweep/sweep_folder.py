"""A sweep's folder: its saved state (`sweep.json`), where it is, its synthetic data, and
what each trial is given (`TrialContext`, built from that state).

Layout (defaults; `--storage` moves the Ray part):
  runs/mlflow.db, runs/mlartifacts/<sweep>/     MLflow (default tracking URI)
  runs/<sweep>/ray/<sweep>/                    Ray experiment folder (= the sweep folder):
      sweep.json                               what resume/status need (`SweepState`)
      synthetic-data/                          the generated dataset (synthetic specs)
      shared/<producer>/epoch-NNNNN.pt         shared training: checkpoints consumers start from
      summary.json                             the last summary table
      <trial folders with checkpoints>
With `--storage s3://...` (a cluster), sweep.json and synthetic data stay in runs/<sweep>/.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping

from reid_core.config import ConfigError
from reid_core.errors import ReIDError

from .errors import SweepError
from .spec import SweepSpec

SWEEP_FILE = "sweep.json"
SHARED_DIR = "shared"  # producers' checkpoints for the trials that start from them (live_plan.py)
# sweep.json's format. 2: trials travel as frozen Trial records (trial.py); a sweep saved in
# format 1 (untyped dict records, before 2026-12) cannot be resumed by this version.
STATE_FORMAT = 2


@dataclass(frozen=True)
class TrialContext:
    """What every trial of a sweep shares (passed with `tune.with_parameters`); the trial's
    own record travels in Ray's `config`."""

    sweep: str
    tracking_uri: str
    experiment_id: str
    parent_run_id: str
    data_root: str
    data_name: str
    threads: int = 1
    checkpoint_every: int = 1
    shared_dir: str = ""  # where producers publish checkpoints for shared training (live_plan.py)


@dataclass
class SweepState:
    """sweep.json: everything `sweep resume` and `sweep status` need."""

    name: str
    spec_source: str
    spec_text: str
    tracking_uri: str
    experiment_id: str
    parent_run_id: str
    storage_path: str
    experiment_path: str
    data_root: str
    data_name: str
    resources: dict[str, float]
    max_concurrent: int | None
    checkpoint_every: int
    num_trials: int
    planned: list[dict[str, Any]] = field(default_factory=list)
    created: float = field(default_factory=time.time)
    resumed: int = 0
    shared_dir: str = ""
    sharing: dict[str, Any] = field(default_factory=dict)  # what shared training planned (cost, starts)
    format: int = STATE_FORMAT

    def context(self) -> TrialContext:
        return TrialContext(
            self.name,
            self.tracking_uri,
            self.experiment_id,
            self.parent_run_id,
            self.data_root,
            self.data_name,
            max(1, int(self.resources["cpu"])),
            self.checkpoint_every,
            self.shared_dir,
        )

    def write(self, sweep_dir: Path) -> None:
        """Atomically (temp name + rename)."""
        sweep_dir.mkdir(parents=True, exist_ok=True)
        tmp = sweep_dir / (SWEEP_FILE + ".tmp")
        tmp.write_text(json.dumps(dataclasses.asdict(self), indent=2, default=str) + "\n")
        tmp.replace(sweep_dir / SWEEP_FILE)

    @classmethod
    def read(cls, sweep_dir: Path) -> "SweepState":
        path = sweep_dir / SWEEP_FILE
        try:
            saved = json.loads(path.read_text())
            state = cls(**{f.name: saved[f.name] for f in dataclasses.fields(cls) if f.name in saved})
        except (OSError, json.JSONDecodeError, TypeError) as e:
            raise SweepError(
                f"{path}: unreadable ({type(e).__name__}: {e}); this sweep was written by another "
                "compact-reid version or is damaged"
            ) from None
        if saved.get("format", 1) != STATE_FORMAT:
            raise SweepError(
                f"{path}: saved by another compact-reid version (state format {saved.get('format', 1)}, this "
                f"version reads {STATE_FORMAT}), so it cannot be resumed here. Start it again with "
                f"`compact-reid sweep run {state.spec_source} --fresh`: its FINISHED trials are reused from "
                f"the tracking store ({state.tracking_uri}), so only the unfinished ones train again"
            )
        return state


def storage_and_dir(name: str, storage: str | None, runs_dir: Path) -> tuple[str, Path, Path]:
    """(Ray storage_path, local sweep folder, Ray experiment path)."""
    if storage and "://" in storage:
        if storage.startswith("file://"):
            storage = storage[len("file://") :]
        else:
            return storage.rstrip("/"), (runs_dir / name).resolve(), Path(storage.rstrip("/")) / name
    st = Path(storage).expanduser().resolve() if storage else (runs_dir / name / "ray").resolve()
    return str(st), st / name, st / name


def find_sweep(name_or_path: str, runs_dir: str | os.PathLike[str] = "runs") -> Path:
    """The folder holding sweep.json, from a sweep name or a path (sweep folder, Ray
    storage folder or runs/<name>)."""
    runs = Path(runs_dir)
    given = Path(name_or_path).expanduser()
    candidates: list[Path] = []
    if given.exists():
        candidates += [given, *sorted(given.glob(f"*/{SWEEP_FILE}")), *sorted(given.glob(f"ray/*/{SWEEP_FILE}"))]
    candidates += [runs / name_or_path / "ray" / name_or_path, runs / name_or_path]
    for candidate in candidates:
        folder = candidate.parent if candidate.name == SWEEP_FILE else candidate
        if (folder / SWEEP_FILE).is_file():
            return folder.resolve()
    raise SweepError(
        f"{name_or_path}: no sweep found (looked for {SWEEP_FILE} in {given} and "
        f"{runs / name_or_path / 'ray' / name_or_path}); start one with `compact-reid sweep run SPEC`"
    )


def prepare_data(spec: SweepSpec, sweep_dir: Path, log: Callable[[str], None] = print) -> tuple[str, str]:
    """(data root, dataset name): checks a folder's layout, or generates the synthetic
    dataset into `<sweep_dir>/synthetic-data` (once: reused when complete)."""
    dataset = spec.dataset
    if not dataset.is_synthetic:
        from reid_core.data.datasets import find_root

        try:
            root = find_root(dataset.path, dataset.name)  # type: ignore[arg-type]
        except ReIDError as e:
            raise ConfigError(f"{spec.source}: dataset.path: {e}") from None
        return str(root), dataset.name
    out = sweep_dir / "synthetic-data"
    if _same_synthetic(out / "synth.json", dataset.synthetic or {}):
        log(f"synthetic dataset: reusing {out}")
        return str(out), "generic"
    shutil.rmtree(out, ignore_errors=True)
    from reid_core.data.synth import generate

    began = time.perf_counter()
    kwargs = dict(dataset.synthetic or {})
    kwargs.setdefault("workers", max(1, min(4, os.cpu_count() or 1)))
    info = generate(out, overwrite=True, **kwargs)
    log(
        f"synthetic dataset: {info.get('train_images')} train / {info.get('query_images')} query / "
        f"{info.get('gallery_images')} gallery images in {out} ({time.perf_counter() - began:.1f}s)"
    )
    return str(out), "generic"


def _same_synthetic(done: Path, want: Mapping[str, Any]) -> bool:
    """True when `synth.json` (written last by generate()) records the wanted parameters."""
    try:
        made = json.loads(done.read_text())
    except (OSError, json.JSONDecodeError):
        return False
    if not made:
        return False
    made.setdefault("camera_variation", 1.0)  # written by generate() since it got the knob
    return all(made.get(k) == (list(v) if isinstance(v, tuple) else v) for k, v in want.items() if k in made)
