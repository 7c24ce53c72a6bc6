"""A campaign: several sweep specs run as one plan (`sweep run A.yaml B.yaml ...`).

Each spec keeps its own MLflow experiment, parent run and tables; their trials are one Ray
Tune run, planned together, so training they share (Table 4's setup 2 is Table 3's h) is
done once, as `sweep show --cost` plans it. A single spec is a campaign of one.

Refused before anything starts, naming the files: a spec file given twice; two specs with
the same experiment name; a trial name two specs both define (trial names are the campaign's
namespace: the same name with another config would be two trials under one name, with the
same config one trial planned twice); specs a single Tune run cannot hold (a search or a
scheduler next to other specs, different per-trial resources).
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from reid_core.config import ConfigError, flatten

from .spec import SweepSpec, load_spec
from .trial import Trial

__all__ = ["Campaign", "load_campaign", "campaign_name"]


@dataclass(frozen=True)
class Campaign:
    name: str
    members: tuple[SweepSpec, ...]

    @property
    def trials(self) -> tuple[Trial, ...]:
        return tuple(t for spec in self.members for t in spec.trials)

    @property
    def single(self) -> bool:
        return len(self.members) == 1

    def member(self, name: str) -> SweepSpec:
        return next(spec for spec in self.members if spec.file.name == name)


def campaign_name(members: Sequence[SweepSpec]) -> str:
    """A single spec's own name; several: `campaign-<hash of their names>` (printed at launch)."""
    if len(members) == 1:
        return members[0].file.name
    names = sorted(spec.file.name for spec in members)
    return "campaign-" + hashlib.sha256("+".join(names).encode()).hexdigest()[:8]


def load_campaign(
    paths: Sequence[str | os.PathLike[str]], name: str | None = None, specs: Sequence[SweepSpec] | None = None
) -> Campaign:
    """Validate every spec, then what they say together (module docstring). `specs`: the
    specs already loaded (a rehearsal's)."""
    if not paths:
        raise ConfigError("sweep run: give at least one spec")
    resolved = [str(Path(p).resolve()) for p in paths]
    twice = sorted({p for p in resolved if resolved.count(p) > 1})
    if twice:
        raise ConfigError(f"{twice[0]}: given twice; each spec once")
    members = tuple(specs) if specs is not None else tuple(load_spec(p) for p in paths)
    if len(members) > 1:
        _check_together(members)
    if name is not None and not name.replace("-", "").replace("_", "").replace(".", "").isalnum():
        raise ConfigError(f"--name {name!r}: use letters, digits, '_', '-', '.' (it names folders)")
    return Campaign(name or campaign_name(members), members)


def _check_together(members: Sequence[SweepSpec]) -> None:
    by_name: dict[str, SweepSpec] = {}
    for spec in members:
        other = by_name.get(spec.file.name)
        if other is not None:
            raise ConfigError(
                f"{spec.source} and {other.source}: both name the experiment {spec.file.name!r}; "
                "each spec of a campaign keeps its own experiment: rename one (`name:`)"
            )
        by_name[spec.file.name] = spec
        if spec.search is not None or spec.scheduler is not None:
            raise ConfigError(
                f"{spec.source}: a search or a scheduler runs as a sweep of its own, not in a campaign of several specs"
            )
    first = members[0]
    for spec in members[1:]:
        if spec.file.resources.model_dump() != first.file.resources.model_dump():
            raise ConfigError(
                f"{spec.source} and {first.source}: different per-trial `resources`; one Tune run gives every "
                "trial the same: make them equal, or run the specs as separate sweeps"
            )
    trials: dict[str, Trial] = {}
    for spec in members:
        for trial in spec.trials:
            seen = trials.get(trial.name)
            if seen is None:
                trials[trial.name] = trial
                continue
            where = f"{member_source(members, seen)} and {spec.source}"
            mine, theirs = flatten(trial.config), flatten(seen.config)
            differ = sorted(k for k in mine if mine.get(k) != theirs.get(k) and k != "preset")
            if differ:
                shown = ", ".join(f"{k}: {theirs.get(k)!r} vs {mine.get(k)!r}" for k in differ[:4])
                raise ConfigError(f"{where}: both define trial {trial.name!r}, differently ({shown})")
            raise ConfigError(
                f"{where}: both define trial {trial.name!r} (the same training); keep it in one spec, "
                "or rename a grid point"
            )


def member_source(members: Sequence[SweepSpec], trial: Trial) -> str:
    return next(spec.source for spec in members if spec.file.name == trial.sweep)
