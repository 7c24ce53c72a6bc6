"""A rehearsal: the same plan as the real run, at tiny scale, on generated data (`--rehearse`).

A bug in a spec, a report or the orchestration should cost minutes on a laptop, not GPU-hours.
`rehearsal_specs(paths)` reads specs and changes only their scale:
- the dataset: a small generated set in Market-1501 layout (`REHEARSAL_DATA`) stands in for
  every dataset, so specs whose `${MARKET1501_ROOT}` is unset or points nowhere rehearse;
- the experiment: `<name>-rehearsal`, so nothing mixes with the real runs;
- every trial's `REHEARSAL_SCALE` fields (epochs through `schedule.scale`, input size, batch
  composition, SWAG samples, loader workers), through `Trial.with_overrides`; a field the
  spec's grid varies keeps its grid values.
Everything else is the plan and stays: every spec, column, seed, phase, SWAG cycle count,
shared-training dependency and adaptive-seed rule. `plan_differences(real, rehearsal)` is how
that is checked (tests/orch/test_campaign.py runs it on the five reproduction specs).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Sequence

import yaml

from reid_core.config import ConfigError, flatten
from reid_core.training.epochs import epoch_counts

from .spec import SweepSpec, parse_spec

__all__ = ["REHEARSAL_DATA", "REHEARSAL_SCALE", "REHEARSAL_SUFFIX", "rehearsal_specs", "plan_differences"]

REHEARSAL_SUFFIX = "-rehearsal"
# 8 training identities, 4 images each, 3 cameras: two batches an epoch; 4 identities to rank.
# Evaluation is most of a rehearsal's time (SWAG's at every cycle end), so the gallery is small.
REHEARSAL_DATA = {"ids": 12, "train_ids": 8, "cameras": 3, "images_per_id": 4, "seed": 0, "size": [64, 32]}
# What "scale" means here: every other field is the plan.
REHEARSAL_SCALE: dict[str, Any] = {
    "schedule.scale": 0.02,  # the paper's 350 + 15 x 35 epochs: 7 main (both LR drops kept) + 1 per SWAG cycle
    "model.input_height": 64,
    "model.input_width": 32,
    "data.p": 4,
    "data.k": 4,
    "data.num_workers": 0,
    "eval.batch_size": 64,
    "swag.samples": 1,
    "swag.bn_batches": 1,
}


def rehearsal_specs(paths: Sequence[str | os.PathLike[str]]) -> list[SweepSpec]:
    """The specs at `paths` at rehearsal scale (module docstring). Specs that name the same
    dataset rehearse on the same generated one; another dataset gets another generated one
    (its own seed), so training is shared exactly where the real run shares it."""
    datasets: dict[str, int] = {}
    out = []
    for path in paths:
        source = str(path)
        try:
            data = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, yaml.YAMLError) as e:
            raise ConfigError(f"{source}: cannot read ({e})") from None
        if not isinstance(data, dict) or "name" not in data:
            raise ConfigError(f"{source}: (top level): not a sweep spec (a mapping with `name`)")
        seed = datasets.setdefault(json.dumps(data.get("dataset"), sort_keys=True, default=str), len(datasets))
        out.append(at_rehearsal_scale(parse_spec(_rehearsal_mapping(data, seed), source, check_paths=False)))
    return out


def _rehearsal_mapping(data: dict[str, Any], seed: int) -> dict[str, Any]:
    rehearsal = dict(data)
    rehearsal["name"] = f"{data['name']}{REHEARSAL_SUFFIX}"
    rehearsal["dataset"] = {"synthetic": {**REHEARSAL_DATA, "seed": seed}}
    note = f"Rehearsal of {data['name']} at tiny scale on generated data (compact-reid sweep run --rehearse)."
    rehearsal["description"] = f"{note} {data.get('description', '')}".strip()
    return rehearsal


def at_rehearsal_scale(spec: SweepSpec) -> SweepSpec:
    """Every trial with `REHEARSAL_SCALE`, except the fields its grid or search varies."""
    varied: set[str] = set()  # the spec's fixed overrides are scale too (e.g. data.num_workers: 4)
    for trial in spec.trials:
        varied |= {key for key in trial.overrides if key not in spec.overrides}
    if spec.search is not None:
        varied |= set(spec.search.space)
    scale = {key: value for key, value in REHEARSAL_SCALE.items() if key not in varied}
    return spec.with_trials([trial.with_overrides(scale) for trial in spec.trials])


def plan_differences(real: Sequence[SweepSpec], rehearsal: Sequence[SweepSpec]) -> list[str]:
    """Where the rehearsal's plan differs from the real one's; [] when only scale does.
    Compared: the specs, every trial (name, grid point, preset, seed, axes), every config
    field but `REHEARSAL_SCALE`'s, each trial's phases (SWAG on, cycle count), and the
    shared-training graph (who starts from whom, at the end of which phase)."""
    found: list[str] = []
    names = [f"{s.file.name}{REHEARSAL_SUFFIX}" for s in real]
    if names != [s.file.name for s in rehearsal]:
        return [f"specs: {names} vs {[s.file.name for s in rehearsal]}"]
    for spec_real, spec_rehearsal in zip(real, rehearsal):
        same_rules = (spec_real.file.adaptive, spec_real.file.reference) == (
            spec_rehearsal.file.adaptive,
            spec_rehearsal.file.reference,
        )
        if not same_rules:
            found.append(f"{spec_real.file.name}: adaptive seeds or reference")
        if len(spec_real.trials) != len(spec_rehearsal.trials):
            found.append(f"{spec_real.file.name}: {len(spec_real.trials)} trials vs {len(spec_rehearsal.trials)}")
        for trial, rehearsed in zip(spec_real.trials, spec_rehearsal.trials):
            found += _trial_differences(trial, rehearsed)
    real_graph, rehearsal_graph = _graph(real), _graph(rehearsal)
    found += [
        f"shared training of {name}: {real_graph[name]} vs {rehearsal_graph.get(name)}"
        for name in real_graph
        if real_graph[name] != rehearsal_graph.get(name)
    ]
    return found


def _trial_differences(trial: Any, rehearsed: Any) -> list[str]:
    out = []
    for field in ("name", "grid_point", "preset", "seed"):
        if getattr(trial, field) != getattr(rehearsed, field):
            out.append(f"{trial.name}: {field} {getattr(trial, field)!r} vs {getattr(rehearsed, field)!r}")
    if dict(trial.axes) != dict(rehearsed.axes):
        out.append(f"{trial.name}: axes")
    mine, theirs = flatten(trial.config), flatten(rehearsed.config)
    for key in sorted(set(mine) | set(theirs)):
        if key not in REHEARSAL_SCALE and mine.get(key) != theirs.get(key):
            out.append(f"{trial.name}: {key} {mine.get(key)!r} vs {theirs.get(key)!r}")
    counts, rehearsed_counts = epoch_counts(trial.config), epoch_counts(rehearsed.config)
    if (counts.cycles, counts.main_epochs > 0) != (rehearsed_counts.cycles, rehearsed_counts.main_epochs > 0):
        out.append(f"{trial.name}: phases {counts.cycles} cycles vs {rehearsed_counts.cycles}")
    return out


def _graph(specs: Sequence[SweepSpec]) -> dict[str, tuple]:
    """trial -> (its producer, the phase boundary it starts at, re-evaluated only), planned as
    a campaign plans it: together, each dataset on its own."""
    from .sharing import dataset_fingerprint, share_training

    by_data: dict[str, list] = {}
    for spec in specs:
        by_data.setdefault(dataset_fingerprint(spec.dataset), []).extend(spec.trials)
    out = {}
    for fingerprint, trials in by_data.items():
        for trial in share_training(trials, fingerprint):
            start, counts = trial.start, epoch_counts(trial.config)
            if not start.epoch:
                boundary = "scratch"
            elif start.epoch == counts.main_epochs:
                boundary = "main"
            else:
                boundary = f"cycle {(start.epoch - counts.main_epochs) // max(counts.cycle_epochs, 1)}"
            out[trial.name] = (start.from_trial, boundary, start.reevaluate)
    return out
