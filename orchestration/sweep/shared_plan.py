"""Shared training: which training a sweep's trials actually need (no Ray, no MLflow).

Built on reid_core/config_phases.py (when each config field acts):
- trials equal in everything before and during the SWAG phase, `swag.cycles` aside, form a
  *train group*: its longest trial (the most cycles) runs; each other member finishes from
  that run's checkpoint at its own last epoch (re-evaluated when its evaluation fields
  differ), so a grid over `swag.cycles` trains once, to the largest count;
- the runs of train groups equal in the main phase (and in evaluation, so the inherited
  per-epoch history is exactly theirs) share that phase: one producer trains it (a run
  without SWAG when the sweep has one, e.g. column g for h), the others start from its
  checkpoint at the end of the main phase;
- a trial identical to a FINISHED run in the tracking store (`identity`) is copied, not run.

A trial's *identity* is what decides its results: every field that acts (main, swag, eval),
the seed, the dataset's fingerprint and reid_core's TRAINING_SEMANTICS_VERSION. A preset's
name is a label and not part of it.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field, replace
from typing import Any, Iterable, Mapping, Sequence

from reid_core.config_phases import TRAINING_SEMANTICS_VERSION, fields_of
from reid_core.training.epochs import epoch_counts

from .trial_plan import TrialSpec

__all__ = ["Keys", "Step", "keys_of", "plan_sharing", "PlanCost", "plan_cost"]


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
    main_epochs: int
    total_epochs: int
    swag: bool


def keys_of(config: Mapping[str, Any], dataset_fingerprint: str) -> Keys:
    """The sharing keys of one trial's resolved config (`TrialSpec.config_dict`)."""
    from reid_core.config import TrainConfig, from_dict

    base = {"data": dataset_fingerprint, "version": TRAINING_SEMANTICS_VERSION}
    main = fields_of(config, "main")
    swag = fields_of(config, "swag")
    swag_no_cycles = {k: v for k, v in swag.items() if k != "swag.cycles"}
    ev = fields_of(config, "eval")
    ev_main = {k: v for k, v in ev.items() if not k.startswith("swag.")}  # SWAG's act after the main phase
    counts = epoch_counts(from_dict(TrainConfig, dict(config)))
    return Keys(
        main=_digest({**base, **main}),
        history=_digest({**base, **main, **ev_main}),
        train=_digest({**base, **main, **swag_no_cycles}),
        evaluation=_digest(ev),
        identity=_digest({**base, **main, **swag, **ev}),
        main_epochs=counts.main_epochs,
        total_epochs=counts.total_epochs,
        swag=bool(swag),
    )


@dataclass(frozen=True)
class Step:
    """What one planned trial does.

    start_from/start_epoch: the producer trial whose checkpoint at `start_epoch` this trial
    starts from (None/0: from scratch). `reevaluate`: it inherits all its training and only
    its evaluation differs. publish: epochs at which this trial writes a shared checkpoint
    for its consumers. reuse_run: a FINISHED run in the tracking store this trial copies.
    """

    name: str
    keys: Keys
    start_from: str | None = None
    start_epoch: int = 0
    reevaluate: bool = False
    publish: tuple[int, ...] = ()
    reuse_run: str | None = None

    @property
    def trained_epochs(self) -> int:
        return 0 if self.reuse_run else self.keys.total_epochs - self.start_epoch

    def to_record(self) -> dict[str, Any]:
        """What travels in the trial's Ray record (`record['share']`)."""
        return {
            "identity": self.keys.identity,
            "start_from": self.start_from,
            "start_epoch": self.start_epoch,
            "reevaluate": self.reevaluate,
            "publish": list(self.publish),
            "reuse_run": self.reuse_run,
        }


def plan_sharing(
    trials: Sequence[TrialSpec],
    dataset_fingerprint: str,
    reusable: Mapping[str, str] | None = None,
    share: bool = True,
) -> dict[str, Step]:
    """Each trial's Step (module docstring). `reusable`: identity -> FINISHED run id.
    `share=False`: every trial trains alone (reuse still applies)."""
    reusable = reusable or {}
    keys = {t.name: keys_of(t.config_dict, dataset_fingerprint) for t in trials}
    steps = {t.name: Step(t.name, keys[t.name]) for t in trials}
    todo = []
    for t in trials:
        run = reusable.get(keys[t.name].identity)
        if run:
            steps[t.name] = replace(steps[t.name], reuse_run=run)
        else:
            todo.append(t.name)

    publish: dict[str, set[int]] = {n: set() for n in steps}
    if not share:
        return steps
    # Train groups: the longest member runs, the others finish from its checkpoint.
    runners: list[str] = []
    for members in _groups(todo, lambda n: keys[n].train):
        runner = max(members, key=lambda n: (keys[n].total_epochs, -todo.index(n)))
        runners.append(runner)
        for n in members:
            if n == runner:
                continue
            e = keys[n].total_epochs
            steps[n] = replace(
                steps[n],
                start_from=runner,
                start_epoch=e,
                reevaluate=keys[n].evaluation != keys[runner].evaluation,
            )
            publish[runner].add(e)
    # Main groups: one producer trains the main phase, the other runners start after it.
    for members in _groups(runners, lambda n: keys[n].history):
        producer = next((n for n in members if not keys[n].swag), members[0])
        for n in members:
            if n == producer:
                continue
            m = keys[n].main_epochs
            steps[n] = replace(steps[n], start_from=producer, start_epoch=m)
            publish[producer].add(m)
    return {n: replace(s, publish=tuple(sorted(publish[n]))) for n, s in steps.items()}


def _groups(names: Iterable[str], key: Any) -> list[list[str]]:
    out: dict[str, list[str]] = {}
    for n in names:
        out.setdefault(key(n), []).append(n)
    return list(out.values())


@dataclass
class PlanCost:
    """Trial-epochs of a plan: naive (every trial alone), after sharing, after reuse."""

    trials: int = 0
    naive: int = 0
    shared: int = 0
    reused_trials: int = 0
    after_reuse: int = 0
    images_per_epoch: dict[str, int] = field(default_factory=dict)  # trial -> training images an epoch

    def add(self, other: "PlanCost") -> None:
        self.trials += other.trials
        self.naive += other.naive
        self.shared += other.shared
        self.reused_trials += other.reused_trials
        self.after_reuse += other.after_reuse
        self.images_per_epoch.update(other.images_per_epoch)


def plan_cost(steps_no_reuse: Mapping[str, Step], steps_with_reuse: Mapping[str, Step] | None = None) -> PlanCost:
    """Trial-epochs: naive = every trial's own epochs; shared = what `steps_no_reuse` trains;
    after_reuse = what `steps_with_reuse` trains (= shared when no store was asked)."""
    with_reuse = steps_with_reuse if steps_with_reuse is not None else steps_no_reuse
    return PlanCost(
        trials=len(steps_no_reuse),
        naive=sum(s.keys.total_epochs for s in steps_no_reuse.values()),
        shared=sum(s.trained_epochs for s in steps_no_reuse.values()),
        reused_trials=sum(1 for s in with_reuse.values() if s.reuse_run),
        after_reuse=sum(s.trained_epochs for s in with_reuse.values()),
    )


def dataset_fingerprint(dataset: Any, data_root: str | None = None) -> str:
    """What identifies a sweep's data: a synthetic dataset's generator options, or a folder's
    image listing (relative names and sizes) when it is at hand, else its path and name."""
    import os
    from pathlib import Path

    if dataset.is_synthetic:
        from reid_core.data import synth

        return _digest({"synthetic": dict(dataset.synthetic or {}), "format": getattr(synth, "FORMAT_VERSION", 1)})
    root = Path(data_root) if data_root else None
    if root is not None and root.is_dir():
        listing = []
        for dirpath, _dirs, files in os.walk(root):
            for f in files:
                if f.lower().endswith((".jpg", ".jpeg", ".png")):
                    p = Path(dirpath, f)
                    listing.append((str(p.relative_to(root)), p.stat().st_size))
        return _digest({"name": dataset.name, "images": sorted(listing)})
    return _digest({"path": dataset.path, "name": dataset.name})
