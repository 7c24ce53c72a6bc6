"""Shared training: which training a sweep's trials actually need, and what that saves (no Ray, no MLflow).

Built on reid_core/config_phases.py (when each config field acts):
- trials equal in everything before and during the SWAG phase, `swag.cycles` aside, form a
  *train group*: its longest trial (the most cycles) runs; each other member finishes from
  that run's checkpoint at its own last epoch (re-evaluated when its evaluation fields
  differ), so a grid over `swag.cycles` trains once, to the largest count;
- the runs of train groups equal in the main phase (and in evaluation, so the inherited
  per-epoch history is exactly theirs) share that phase: one producer trains it (a run
  without SWAG when the sweep has one, e.g. column g for h), the others start from its
  checkpoint at the end of the main phase;
- a trial identical to a FINISHED run in the tracking store (`identity`) is copied, not run;
- checkpoints at phase boundaries (the end of the main phase, the end of a SWAG cycle) are
  stored under a key of everything that acted until then (`checkpoint_key`), in the sweep's
  storage (checkpoints.py), and stay there: a trial whose key and epoch the storage already
  holds starts from it, so a later sweep with the same storage extends that training instead
  of training it again (`stored`). Every trial stores the phase boundaries it trains through
  (its end of main phase, the end of each SWAG cycle), so specs run one after another
  realize what running them together plans (`sweep show --cost`), in any order.

A trial's *identity* is what decides its results: every field that acts (main, swag, eval),
the seed, the dataset's fingerprint and reid_core's TRAINING_SEMANTICS_VERSION. A preset's
name is a label and not part of it. `share_training` writes each trial's `Start`
(trial.py); `plan_cost` and `sweep_cost` count trial-epochs alone, shared and after reuse.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Sequence

from reid_core.config import TrainConfig, to_dict
from reid_core.config_phases import TRAINING_SEMANTICS_VERSION, fields_of
from reid_core.training.epochs import epoch_counts

from .trial import Start, Trial

__all__ = ["Keys", "keys_of", "share_training", "PlanCost", "plan_cost", "dataset_fingerprint", "sweep_cost"]

# Training images of the public datasets (bounding_box_train), used when the folder is not here.
KNOWN_TRAIN_IMAGES = {"market1501": 12936, "dukemtmcreid": 16522}


def _digest(obj: Any) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:16]


@dataclass(frozen=True)
class Keys:
    """What a trial shares with others (hashes of field classes; see module docstring)."""

    main: str  # main-phase fields + seed + dataset + version
    history: str  # main + eval: equal main-phase histories, epoch by epoch
    train: str  # main + swag (cycles aside): equal training up to the shorter run's end
    evaluation: str  # eval fields only
    identity: str  # everything that acts: equal results
    cycles: str  # train + eval: equal training and history up to the end of a shared cycle
    main_epochs: int
    total_epochs: int
    cycle_epochs: int
    swag: bool

    def checkpoint_key(self, epoch: int) -> str | None:
        """The storage key of this training's checkpoint at `epoch` when that is a phase
        boundary (the end of the main phase, or of a SWAG cycle); None otherwise."""
        if epoch == self.main_epochs:
            return f"main-{self.history}"
        after = epoch - self.main_epochs
        if self.swag and 0 < after and epoch <= self.total_epochs and after % self.cycle_epochs == 0:
            return f"swag-{self.cycles}"
        return None

    def boundaries(self) -> list[int]:
        """The phase-boundary epochs of this training, in order."""
        ends = [self.main_epochs]
        if self.swag:
            ends += list(range(self.main_epochs + self.cycle_epochs, self.total_epochs + 1, self.cycle_epochs))
        return ends


def keys_of(config: TrainConfig, fingerprint: str) -> Keys:
    """The sharing keys of one trial's config on a dataset (`dataset_fingerprint`)."""
    plain = to_dict(config)
    base = {"data": fingerprint, "version": TRAINING_SEMANTICS_VERSION}
    main = fields_of(plain, "main")
    swag = fields_of(plain, "swag")
    swag_no_cycles = {k: v for k, v in swag.items() if k != "swag.cycles"}
    evaluation = fields_of(plain, "eval")
    eval_main = {k: v for k, v in evaluation.items() if not k.startswith("swag.")}  # SWAG's act after the main phase
    counts = epoch_counts(config)
    return Keys(
        main=_digest({**base, **main}),
        history=_digest({**base, **main, **eval_main}),
        train=_digest({**base, **main, **swag_no_cycles}),
        evaluation=_digest(evaluation),
        identity=_digest({**base, **main, **swag, **evaluation}),
        cycles=_digest({**base, **main, **swag_no_cycles, **evaluation}),
        main_epochs=counts.main_epochs,
        total_epochs=counts.total_epochs,
        cycle_epochs=counts.cycle_epochs,
        swag=bool(swag),
    )


def share_training(
    trials: Sequence[Trial],
    fingerprint: str,
    reusable: Mapping[str, str] | None = None,
    share: bool = True,
    stored: Iterable[tuple[str, int]] = (),
) -> tuple[Trial, ...]:
    """The trials with their `Start` (module docstring). `reusable`: identity -> FINISHED run
    id. `share=False`: every trial trains alone (reuse still applies). `stored`: the
    (checkpoint key, epoch) pairs the storage holds."""
    reusable = reusable or {}
    stored = set(stored)
    keys = {t.name: keys_of(t.config, fingerprint) for t in trials}
    starts = {
        t.name: Start(identity=keys[t.name].identity, reuse_run=reusable.get(keys[t.name].identity)) for t in trials
    }
    todo = [t.name for t in trials if not starts[t.name].reuse_run]
    if share:
        _train_groups(todo, keys, starts)
        _stored_starts(todo, keys, starts, stored)
    publish: dict[str, set[tuple[int, str]]] = {name: set() for name in starts}
    for name in todo:
        start, own = starts[name], keys[name]
        if start.from_trial:  # its producer stores what it starts from
            publish[start.from_trial].add((start.epoch, start.checkpoint))
        for epoch in own.boundaries():  # for later sweeps: the end of the main phase, of every cycle
            key = own.checkpoint_key(epoch)
            if share and key and start.epoch < epoch and (key, epoch) not in stored:
                publish[name].add((epoch, key))
    return tuple(
        t.with_start(dataclasses.replace(starts[t.name], publish=tuple(sorted(publish[t.name])))) for t in trials
    )


def _train_groups(todo: list[str], keys: Mapping[str, Keys], starts: dict[str, Start]) -> None:
    """Train groups: the longest member runs, the others finish from its checkpoint. Then
    main groups: one producer trains the main phase, the other runners start after it."""
    runners: list[str] = []
    for members in _groups(todo, lambda name: keys[name].train):
        runner = max(members, key=lambda name: (keys[name].total_epochs, -todo.index(name)))
        runners.append(runner)
        for name in members:
            if name == runner:
                continue
            last = keys[name].total_epochs
            starts[name] = dataclasses.replace(
                starts[name],
                from_trial=runner,
                epoch=last,
                checkpoint=keys[runner].checkpoint_key(last) or "",
                reevaluate=keys[name].evaluation != keys[runner].evaluation,
            )
    for members in _groups(runners, lambda name: keys[name].history):
        producer = next((name for name in members if not keys[name].swag), members[0])
        for name in members:
            if name == producer:
                continue
            main_epochs = keys[name].main_epochs
            checkpoint = keys[producer].checkpoint_key(main_epochs) or ""
            starts[name] = dataclasses.replace(
                starts[name], from_trial=producer, epoch=main_epochs, checkpoint=checkpoint
            )


def _stored_starts(
    todo: list[str], keys: Mapping[str, Keys], starts: dict[str, Start], stored: set[tuple[str, int]]
) -> None:
    """Starts from checkpoints the storage already holds: a consumer whose checkpoint is
    there waits for nobody; any trial starts from its own latest stored phase boundary,
    a producer no later than what its waiting consumers need from it."""
    for name in todo:
        start = starts[name]
        if start.from_trial and (start.checkpoint, start.epoch) in stored:
            starts[name] = dataclasses.replace(start, from_trial=None)
    needed: dict[str, int] = {}
    for name in todo:
        start = starts[name]
        if start.from_trial:
            needed[start.from_trial] = min(needed.get(start.from_trial, start.epoch), start.epoch)
    for name in todo:
        own, start = keys[name], starts[name]
        limit = needed.get(name, own.total_epochs)
        found = [e for e in own.boundaries() if start.epoch < e <= limit and (own.checkpoint_key(e), e) in stored]
        if found:
            epoch = max(found)
            starts[name] = dataclasses.replace(
                start, from_trial=None, epoch=epoch, checkpoint=own.checkpoint_key(epoch) or "", reevaluate=False
            )


def _groups(names: Iterable[str], key: Callable[[str], str]) -> list[list[str]]:
    out: dict[str, list[str]] = {}
    for name in names:
        out.setdefault(key(name), []).append(name)
    return list(out.values())


@dataclass
class PlanCost:
    """Trial-epochs of a plan: naive (every trial alone), after sharing, after reuse."""

    trials: int = 0
    naive: int = 0
    shared: int = 0
    reused_trials: int = 0
    after_reuse: int = 0


def plan_cost(shared: Sequence[Trial], with_reuse: Sequence[Trial] | None = None) -> PlanCost:
    """Trial-epochs: naive = every trial's own epochs; shared = what `shared` trains (planned
    without reuse); after_reuse = what `with_reuse` trains (= shared when no store was asked)."""
    with_reuse = with_reuse if with_reuse is not None else shared
    return PlanCost(
        trials=len(shared),
        naive=sum(t.total_epochs for t in shared),
        shared=sum(t.trained_epochs for t in shared),
        reused_trials=sum(1 for t in with_reuse if t.start.reuse_run),
        after_reuse=sum(t.trained_epochs for t in with_reuse),
    )


def dataset_fingerprint(dataset: Any, data_root: str | None = None) -> str:
    """What identifies a sweep's data: a synthetic dataset's generator options, or a folder's
    image listing (relative names and sizes) when it is at hand, else its path and name."""
    if dataset.is_synthetic:
        from reid_core.data import synth

        return _digest({"synthetic": dict(dataset.synthetic or {}), "format": synth.FORMAT_VERSION})
    root = Path(data_root) if data_root else None
    if root is not None and root.is_dir():
        listing = []
        for dirpath, _dirs, files in os.walk(root):
            for file_name in files:
                if file_name.lower().endswith((".jpg", ".jpeg", ".png")):
                    path = Path(dirpath, file_name)
                    listing.append((str(path.relative_to(root)), path.stat().st_size))
        return _digest({"name": dataset.name, "images": sorted(listing)})
    return _digest({"path": dataset.path, "name": dataset.name})


# `sweep show --cost`: several specs planned together -------------------------------------


def train_images(spec: Any) -> int | None:
    """Training images an epoch goes through (about: the PK sampler drops a partial batch)."""
    dataset = spec.dataset
    if dataset.is_synthetic:
        options = dataset.synthetic or {}
        ids = int(options.get("num_ids", 0))
        return int(options.get("num_train_ids", ids // 2)) * int(options.get("images_per_id", 8))
    train = Path(dataset.path or "") / "bounding_box_train"
    if train.is_dir():
        return sum(1 for p in train.iterdir() if p.suffix.lower() in (".jpg", ".jpeg", ".png"))
    return KNOWN_TRAIN_IMAGES.get(dataset.name)


def sweep_cost(
    specs: Sequence[Any], tracking_uri: str | None = None, images_per_second: float | None = None
) -> dict[str, Any]:
    """Per spec and in all: trial-epochs alone / shared / after reuse, and GPU-hours. The specs
    are planned TOGETHER, as one sweep: a trial two specs both plan (Table 4's setup 2 and
    Table 3's column h) is counted once."""
    trials: list[Trial] = []
    fingerprints: dict[str, str] = {}
    images: dict[str, int | None] = {}
    rows = []
    searched = 0
    for spec in specs:
        if spec.search is not None:  # sampled trials: each trains alone, nothing to plan together
            epochs = spec.num_trials * spec.trials[0].total_epochs
            rows.append(
                {"spec": spec.file.name, "trials": spec.num_trials, "alone": epochs, "shared": epochs, "images": None}
            )
            searched += epochs
            continue
        fingerprint = dataset_fingerprint(spec.dataset)
        own = plan_cost(share_training(spec.trials, fingerprint))
        spec_images = train_images(spec)
        rows.append(
            {
                "spec": spec.file.name,
                "trials": own.trials,
                "alone": own.naive,
                "shared": own.shared,
                "images": spec_images,
            }
        )
        for t in spec.trials:
            name = f"{spec.file.name}/{t.name}"
            trials.append(dataclasses.replace(t, name=name))
            fingerprints[name], images[name] = fingerprint, spec_images
    reusable: dict[str, str] = {}
    if tracking_uri:
        from ..mlflow_log.reuse import find_reusable

        reusable = find_reusable(tracking_uri, {keys_of(t.config, fingerprints[t.name]).identity for t in trials})
    shared: list[Trial] = []
    reused: list[Trial] = []
    for fingerprint in dict.fromkeys(fingerprints.values()):  # each dataset planned on its own
        group = [t for t in trials if fingerprints[t.name] == fingerprint]
        shared += share_training(group, fingerprint)
        reused += share_training(group, fingerprint, reusable)
    cost = plan_cost(shared, reused)
    image_epochs = {
        "alone": _image_epochs(shared, images, lambda t: t.total_epochs),
        "shared": _image_epochs(shared, images, lambda t: t.trained_epochs),
        "after_reuse": _image_epochs(reused, images, lambda t: t.trained_epochs),
    }
    hours = None
    if images_per_second and all(v is not None for v in image_epochs.values()):
        hours = {k: v / images_per_second / 3600.0 for k, v in image_epochs.items()}  # type: ignore[operator]
    return {
        "specs": rows,
        "trials": cost.trials + sum(s.num_trials for s in specs if s.search is not None),
        "alone": cost.naive + searched,
        "shared": cost.shared + searched,
        "after_reuse": cost.after_reuse + searched,
        "reused_trials": cost.reused_trials,
        "store": tracking_uri,
        "images_per_second": images_per_second,
        "gpu_hours": hours,
    }


def _image_epochs(
    trials: Sequence[Trial], images: Mapping[str, int | None], epochs: Callable[[Trial], int]
) -> float | None:
    total = 0.0
    for t in trials:
        count = images.get(t.name)
        if count is None:
            return None
        total += epochs(t) * count
    return total
