"""One trial of a sweep: the frozen `Trial` record that travels from the spec to the trainable.

A trial is a grid point x a seed: its name, preset, seed, grid axes, its resolved
`TrainConfig`, and what it starts from (`Start`: shared training, reuse). Ray Tune's config
of a trial is `{"trial": Trial}` (a search adds `{"sampled": {...}}`: Optuna's values, applied
with `Trial.sampled`); the trainable reads attributes. `Trial.to_dict` / `Trial.from_dict`
are the only serialiser (sweep.json, the parent run's trials.json); every config edit goes
through `reid_core.config.with_overrides`.

Names (MLflow run names, Ray trial folders) are the grid point, then `-seed<k>`:
  - preset axis only:   `c-seed2`
  - one other axis:     `gem_p_init=4.0-seed0`
  - several axes:       `compact-1x-width_multiplier=0.5-seed1` (preset first, then the YAML's order)
  - no grid:            the base preset, `g-seed0`
  - a search:           from the sampled values, `lr=0.0213-label_smoothing=0.118-seed0`
The grid point is the name without `-seed<k>`, so seeds pool under one grid point.
Imports neither Ray nor MLflow.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Mapping

from reid_core.config import TrainConfig, from_dict, to_dict, with_overrides
from reid_core.training.epochs import epoch_counts

__all__ = [
    "Start",
    "Trial",
    "trial_of",
    "trial_name",
    "search_trial_name",
    "format_value",
    "python_value",
    "trial_name_creator",
    "trial_dirname_creator",
    "SEED_SUFFIX",
]

SEED_SUFFIX = re.compile(r"-seed\d+$")


@dataclass(frozen=True)
class Start:
    """What a trial starts from (planned by sharing.py; the live plan may change it to
    "alone" when its producer fails).

    `epoch` / `checkpoint`: it starts from the training checkpoint stored under key
    `checkpoint` at `epoch` (sharing.py's keys; 0 / "": from scratch). `from_trial`: the trial
    of this sweep that publishes that checkpoint (it waits for it); None when the storage
    already holds it. `reevaluate`: it inherits all its training and only its evaluation
    differs. `publish`: (epoch, key) of the checkpoints this trial stores for its consumers
    and for later sweeps. `reuse_run`: a FINISHED run in the tracking store this trial
    copies. `identity`: what decides its results (MLflow tag `names.IDENTITY`).
    """

    identity: str = ""
    from_trial: str | None = None
    epoch: int = 0
    checkpoint: str = ""
    reevaluate: bool = False
    publish: tuple[tuple[int, str], ...] = ()
    reuse_run: str | None = None
    alone_because: str = ""

    def alone(self, why: str) -> "Start":
        """This start, from scratch, saying why."""
        return dataclasses.replace(self, from_trial=None, epoch=0, checkpoint="", reevaluate=False, alone_because=why)

    def to_dict(self) -> dict[str, Any]:
        return {**dataclasses.asdict(self), "publish": [list(pair) for pair in self.publish]}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "Start":
        fields = dict(data)
        fields["publish"] = tuple((int(epoch), str(key)) for epoch, key in fields.get("publish", ()))
        return cls(**fields)


@dataclass(frozen=True)
class Trial:
    """One planned trial (module docstring)."""

    index: int
    name: str
    grid_point: str
    preset: str
    seed: int
    axes: Mapping[str, Any]  # this trial's grid values, keys as written in the YAML
    overrides: Mapping[str, Any]  # resolved dotted path -> value (fixed overrides + axis values)
    config: TrainConfig = field(repr=False)
    start: Start = Start()
    added_because: str = ""  # adaptive seeds: why this seed was added
    sweep: str = ""  # the spec it comes from (its MLflow experiment); a campaign runs several

    def __post_init__(self) -> None:
        object.__setattr__(self, "axes", MappingProxyType(dict(self.axes)))
        object.__setattr__(self, "overrides", MappingProxyType(dict(self.overrides)))

    def __reduce__(self) -> Any:  # MappingProxyType does not pickle (Ray pickles trials)
        fields = [getattr(self, f.name) for f in dataclasses.fields(self)]
        return (Trial, tuple(dict(v) if isinstance(v, MappingProxyType) else v for v in fields))

    def __deepcopy__(self, memo: dict) -> "Trial":  # frozen: nothing to copy
        return self

    @property
    def total_epochs(self) -> int:
        return epoch_counts(self.config).total_epochs

    @property
    def trained_epochs(self) -> int:
        """Epochs this trial trains itself: none when reused, else those after its start."""
        return 0 if self.start.reuse_run else self.total_epochs - self.start.epoch

    # Edits (new records) ----------------------------------------------------------------
    def with_overrides(self, overrides: Mapping[str, Any]) -> "Trial":
        """The same trial with config fields changed (dotted paths), through the config's
        one override function; `overrides` (the spec's) is left as it was."""
        return dataclasses.replace(self, config=with_overrides(self.config, overrides))

    def with_start(self, start: Start) -> "Trial":
        return dataclasses.replace(self, start=start)

    def reseeded(self, seed: int, index: int, why: str, preset_in_name: bool) -> "Trial":
        """Another seed of this grid point (adaptive seeds)."""
        name, point = trial_name(self.preset if preset_in_name else None, self.axes, seed)
        return dataclasses.replace(
            self,
            index=index,
            name=name,
            grid_point=point,
            seed=seed,
            config=with_overrides(self.config, {"seed": seed}),
            start=Start(),
            added_because=why,
        )

    def sampled(self, values: Mapping[str, Any]) -> "Trial":
        """A search's template with Optuna's values (dotted path -> value), named after them."""
        values = {k: python_value(v) for k, v in values.items()}
        name, point = search_trial_name(values, self.seed)
        return dataclasses.replace(
            self,
            name=name,
            grid_point=point,
            overrides={**self.overrides, **values},
            config=with_overrides(self.config, values),
        )

    # The serialiser ---------------------------------------------------------------------
    def to_dict(self, with_config: bool = True) -> dict[str, Any]:
        """JSON-ready. Without the config: the trials.json entry (docs/CONTRACTS.md)."""
        out: dict[str, Any] = {
            "trial_name": self.name,
            "grid_point": self.grid_point,
            "preset": self.preset,
            "seed": self.seed,
            "overrides": dict(self.overrides),
            "axes": dict(self.axes),
            "index": self.index,
        }
        if self.added_because:
            out["added_because"] = self.added_because
        if self.sweep:
            out["sweep"] = self.sweep
        if with_config:
            out["config"] = to_dict(self.config)
            out["start"] = self.start.to_dict()
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "Trial":
        return cls(
            index=int(data.get("index", 0)),
            name=data["trial_name"],
            grid_point=data["grid_point"],
            preset=data["preset"],
            seed=int(data["seed"]),
            axes=dict(data.get("axes", {})),
            overrides=dict(data.get("overrides", {})),
            config=from_dict(TrainConfig, data["config"]),
            start=Start.from_dict(data.get("start") or {}),
            added_because=str(data.get("added_because", "")),
            sweep=str(data.get("sweep", "")),
        )


def trial_of(config: Mapping[str, Any]) -> Trial:
    """The Trial of a Ray config: `{"trial": Trial}`, or a search's `{"trial", "sampled"}`."""
    trial = config["trial"]
    if not isinstance(trial, Trial):
        raise TypeError(
            f"Ray config holds {type(trial).__name__} where a Trial was expected: this sweep was saved "
            "by an older compact-reid (start it again with `compact-reid sweep run SPEC --fresh`)"
        )
    sampled = config.get("sampled")
    return trial.sampled(sampled) if sampled else trial


# Names ------------------------------------------------------------------------------------


def format_value(v: Any) -> str:
    """A grid value as it appears in a trial name or a table: 4.0 -> '4.0', True -> 'true'."""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float):
        return repr(v)
    if isinstance(v, (list, tuple)):
        return "[" + ",".join(format_value(x) for x in v) + "]"
    return str(v)


def trial_name(preset: str | None, axes: Mapping[str, Any], seed: int) -> tuple[str, str]:
    """(trial name, grid point) of a grid trial; `preset` is None when it is not an axis."""
    parts = [preset] if preset is not None else []
    parts += [f"{k}={format_value(v)}" for k, v in axes.items()]
    point = "-".join(parts) if parts else "trial"
    return f"{point}-seed{seed}", point


def _short(v: Any) -> str:
    if isinstance(v, float) and not isinstance(v, bool):
        return f"{v:.3g}"
    return format_value(v)


def search_trial_name(values: Mapping[str, Any], seed: int) -> tuple[str, str]:
    """(trial name, grid point) of a searched trial, from its sampled values (leaf names)."""
    parts = [f"{k.rsplit('.', 1)[-1]}={_short(v)}" for k, v in values.items()]
    point = "-".join(parts) if parts else "sample"
    return f"{point}-seed{seed}", point


def python_value(v: Any) -> Any:
    """Numpy scalars (Optuna's samples) as Python values, recursively."""
    if isinstance(v, dict):
        return {k: python_value(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [python_value(x) for x in v]
    return v.item() if hasattr(v, "item") and not isinstance(v, (int, float, str, bool)) else v


def trial_name_creator(ray_trial: Any) -> str:
    """Ray's name of a trial (`TuneConfig.trial_name_creator`): its Trial's name."""
    config = ray_trial.config or {}
    return trial_of(config).name if "trial" in config else str(ray_trial.trial_id)


def trial_dirname_creator(ray_trial: Any) -> str:
    """Ray's trial folder: the trial name made safe for a path, then Ray's trial id."""
    safe = "".join(ch if ch.isalnum() or ch in "-_.=" else "_" for ch in trial_name_creator(ray_trial))[:80]
    return f"{safe}_{ray_trial.trial_id}"
