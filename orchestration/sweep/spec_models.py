"""The sweep YAML as pydantic models: the one description of every key (type, range,
default, meaning), `extra="forbid"`. `SweepSpec.file` (spec.py) is this model
validated, so a new plain key is added here, read where it is used, and tested.

`SweepFile.model_validate(yaml.safe_load(text))` checks what one key can say on its own;
`spec.py` then checks what keys say together (presets, config fields, grid vs search) and
expands the trials. `error_message` turns pydantic's first error into this project's form,
`<dotted.key>: <what is wrong>; allowed: ...` (spec.py prefixes the file).
`sweep_json_schema()` is what `compact-reid sweep schema` prints, for editors.
"""

from __future__ import annotations

import re
import types
import typing
from typing import Annotated, Any, ClassVar, Literal, Union

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    ValidationError,
    WithJsonSchema,
    model_validator,
)

from reid_core.metric_keys import EVAL_KEYS, FINAL_KEYS, LOSS_KEYS
from reid_core.presets import PRESETS

RESERVED_KEYS = ("seed", "preset")  # set by `seeds:` and `base_preset` / `grid.preset`, never as config keys
# Metrics a trial reports to Ray every epoch (eval metrics carry their latest value).
RAY_METRICS = EVAL_KEYS + LOSS_KEYS + tuple(f"final_{k}" for k in FINAL_KEYS)
DATASET_NAMES = ("auto", "market1501", "dukemtmcreid", "generic")
SPACE_TYPES = ("uniform", "loguniform", "int", "choice")
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")

PresetName = Literal[tuple(PRESETS)]  # type: ignore[valid-type]
Metric = Literal[RAY_METRICS]  # type: ignore[valid-type]
Mode = Literal["max", "min"]


class _Strict(BaseModel):
    # strict: YAML already gives typed values, so "2" is not an integer and 2.0 is not one either;
    # frozen: SweepSpec.file is read by the runner, Ray setup and `sweep show`, never changed
    model_config = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False, frozen=True)


def _name(v: str) -> str:
    if not _NAME_RE.match(v):
        raise ValueError(f"{v!r}: use letters, digits, '_', '-', '.' (it names folders)")
    return v


def _grid_value(v: Any) -> Any:
    if v is None or isinstance(v, dict):
        raise ValueError(f"expected a value (number, string, boolean or list), got {type(v).__name__}")
    return v


def _unique_seeds(v: list[int]) -> list[int]:
    if len(set(v)) != len(v):
        raise ValueError(f"duplicate seed in {v}")
    return v


def _auto_is_none(v: Any) -> Any:
    return None if v == "auto" else v


def _whole_above_one(v: float | None) -> float | None:
    if v is not None and v > 1 and not float(v).is_integer():
        raise ValueError(f"above 1 must be a whole number, got {v}")
    return v


def _resource(**bounds: float) -> Any:
    """A number of CPUs/GPUs per trial, or `auto` / nothing (the runner decides)."""
    number = {
        "type": "number",
        **({"exclusiveMinimum": bounds["gt"]} if "gt" in bounds else {}),
        **({"minimum": bounds["ge"]} if "ge" in bounds else {}),
    }
    return Annotated[
        Union[Annotated[float, Field(**bounds)], None],
        BeforeValidator(_auto_is_none),
        AfterValidator(_whole_above_one),
        WithJsonSchema({"anyOf": [number, {"const": "auto"}, {"type": "null"}]}),
    ]


class SyntheticSpec(_Strict):
    """`reid_core.data.synth.generate`'s options: names and types here, value rules in
    reid_core/synth_options.py (spec.py reports them under these keys); left out: generate()'s default."""

    # The YAML's (and `data synth`'s) short names of three generate() options: the one place they map.
    GENERATOR_NAMES: ClassVar[dict[str, str]] = {
        "ids": "num_ids",
        "train_ids": "num_train_ids",
        "cameras": "num_cameras",
    }

    ids: int = Field(description="number of identities, train + test")
    train_ids: int | None = Field(None, description="training identities (default: half of ids)")
    cameras: int | None = None
    images_per_id: int | None = None
    seed: int | None = None
    num_distractors: int | None = None
    num_junk: int | None = None
    workers: int | None = None
    size: list[int] | None = Field(None, description="image [height, width]")
    camera_variation: float | None = None

    def generator_kwargs(self) -> dict[str, Any]:
        """The options given, under generate()'s names (size as a tuple)."""
        out = {self.GENERATOR_NAMES.get(k, k): v for k, v in self.model_dump(exclude_none=True).items()}
        if "size" in out:
            out["size"] = tuple(out["size"])
        return out

    @classmethod
    def key_of(cls, option: str) -> str:
        """The YAML key of one of generate()'s options."""
        return next((k for k, v in cls.GENERATOR_NAMES.items() if v == option), option)


def _sha256(v: str | None) -> str | None:
    if v is not None and not re.fullmatch(r"[0-9a-f]{64}", v):
        raise ValueError(f"{v!r}: 64 lowercase hex digits (sha256sum's output)")
    return v


class DatasetSection(_Strict):
    path: str | None = Field(
        None,
        description="dataset folder, or an s3:// / gs:// archive (.zip, .tar, .tar.gz) or prefix staged on each "
        "node; ${VAR} and ~ are expanded",
    )
    name: Literal[DATASET_NAMES] | None = None  # type: ignore[valid-type]
    sha256: Annotated[str | None, AfterValidator(_sha256)] = Field(
        None, description="the archive's expected sha256 (an object-storage path): a download that differs is refused"
    )
    synthetic: SyntheticSpec | None = None


class SpaceEntry(_Strict):
    type: Literal[SPACE_TYPES] = Field(description="uniform, loguniform, int or choice")  # type: ignore[valid-type]
    low: float | None = None
    high: float | None = None
    values: list[Any] | None = Field(None, min_length=1)


class SearchSection(_Strict):
    algorithm: Literal["optuna"] = "optuna"
    metric: Metric = "final_mAP"
    mode: Mode = "max"
    num_samples: int = Field(ge=1, description="how many configurations to try")
    space: dict[str, SpaceEntry] = Field(min_length=1, description="{dotted.key: {type: ..., low/high or values}}")
    seed: int | None = Field(None, ge=0)


class SchedulerSection(_Strict):
    type: Literal["asha"] = "asha"
    max_t: int | None = Field(None, ge=1, description="epochs (default: the longest trial's)")
    grace_period: int = Field(1, ge=1)
    reduction_factor: float = Field(2.0, gt=1)
    metric: Metric | None = None
    mode: Mode | None = None


class ResourcesSection(_Strict):
    """`resources: defaults` (the default): the built-in rules (ray_tune.resources_rule);
    `resources: auto`: the resource probe's choice for what the spec leaves open
    (orchestration/probe/, `compact-reid probe`; measured first when not cached); `{cpu, gpu}`:
    these per trial (with `mode: auto` the probe still picks data.pipeline / runtime.compile
    when they are left open)."""

    cpu: _resource(gt=0) = None  # type: ignore[valid-type]
    gpu: _resource(ge=0) = None  # type: ignore[valid-type]
    mode: Literal["auto", "defaults"] = Field(
        "defaults", description="defaults: the built-in rules; auto: the resource probe's (cached) choice"
    )

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, v: Any) -> Any:
        return {"mode": v} if isinstance(v, str) else v


class AdaptiveSeeds(_Strict):
    """`seeds: {initial: 3, max: 10, until: resolved}`: seeds 0..initial-1 first; while the
    sweep runs, a comparison (each grid point against its reference) that is not resolved at
    its seeds gets one more seed on both sides, until resolved or `max` seeds."""

    initial: int = Field(3, ge=2, description="seeds every grid point starts with (0..initial-1)")
    max: int = Field(10, ge=2, description="most seeds a grid point gets")
    until: Literal["resolved"] = "resolved"
    metric: Literal["final_rank1", "final_mAP"] = Field("final_rank1", description="what the comparison reads")

    @property
    def seeds(self) -> list[int]:
        return list(range(self.initial))


def _seeds(v: Any) -> Any:
    return [v] if isinstance(v, int) and not isinstance(v, bool) else v


SeedList = Annotated[list[Annotated[int, Field(ge=0)]], Field(min_length=1), AfterValidator(_unique_seeds)]


class CheckpointSection(_Strict):
    every: int = Field(1, ge=1)
    num_to_keep: int = Field(2, ge=1)


class SweepFile(_Strict):
    """One sweep YAML (sweeps/*.yaml)."""

    name: Annotated[str, AfterValidator(_name)] = Field(
        description="the sweep's name: MLflow experiment and storage folder"
    )
    description: Annotated[str, AfterValidator(str.strip)] = ""
    dataset: DatasetSection = Field(description="`path: DIR` or `synthetic: {ids: N, ...}`")
    base_preset: PresetName | None = None
    grid: dict[str, Annotated[list[Annotated[Any, AfterValidator(_grid_value)]], Field(min_length=1)]] | None = None
    seeds: Annotated[
        Union[Annotated[SeedList, Tag("list")], Annotated[AdaptiveSeeds, Tag("adaptive")]],
        Discriminator(lambda v: "adaptive" if isinstance(v, (dict, AdaptiveSeeds)) else "list"),
        BeforeValidator(_seeds),
    ] = Field(default_factory=lambda: [0], description="a seed, a list of seeds, or {initial, max, until: resolved}")
    reference: str | None = Field(
        None, description="the grid point every other one is compared with (default: the first grid value)"
    )
    overrides: dict[str, Any] = Field(default_factory=dict)
    resources: ResourcesSection = Field(default_factory=ResourcesSection)
    max_concurrent: int | None = Field(None, ge=1)
    max_failures: int = Field(2, ge=0)
    checkpoint: CheckpointSection = Field(default_factory=CheckpointSection)
    search: SearchSection | None = None
    scheduler: SchedulerSection | None = None

    @property
    def seed_list(self) -> list[int]:
        """The seeds every grid point starts with."""
        return self.seeds.seeds if isinstance(self.seeds, AdaptiveSeeds) else list(self.seeds)

    @property
    def adaptive(self) -> AdaptiveSeeds | None:
        return self.seeds if isinstance(self.seeds, AdaptiveSeeds) else None


# ---------------------------------------------------------------------------------
# Errors in this project's form


def _dotted(loc: tuple[Any, ...]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _unwrap(tp: Any) -> Any:
    """The model class inside Optional[...] / Annotated[...] / dict[str, ...] / list[...]."""
    while True:
        origin, args = typing.get_origin(tp), typing.get_args(tp)
        if origin is Annotated:
            tp = args[0]
        elif origin in (Union, types.UnionType):
            tp = next((a for a in args if a is not type(None)), tp)
            if typing.get_origin(tp) in (Union, types.UnionType):
                return tp
        elif origin in (dict, list):
            tp = args[-1]
        else:
            return tp


def _field_at(loc: tuple[Any, ...]) -> tuple[type[BaseModel] | None, str | None]:
    """(the model that holds the last key of `loc`, that key)."""
    model: Any = SweepFile
    for part in loc[:-1]:
        if (
            isinstance(part, str)
            and isinstance(model, type)
            and issubclass(model, BaseModel)
            and part in model.model_fields
        ):
            model = _unwrap(model.model_fields[part].annotation)
    if isinstance(model, type) and issubclass(model, BaseModel):
        return model, loc[-1] if loc and isinstance(loc[-1], str) else None
    return None, None


def error_message(e: ValidationError) -> tuple[str, str]:
    """(dotted key, message) of a validation error's first problem."""
    err = e.errors()[0]
    loc, typ = tuple(err["loc"]), err["type"]
    if loc[:1] == ("seeds",) and loc[1:2] in (("list",), ("adaptive",)):  # the union's branch is no key
        loc = loc[:1] + loc[2:]
    key = _dotted(loc) or "(top level)"
    model, name = _field_at(loc) if loc[:1] != ("seeds",) or len(loc) < 2 else (AdaptiveSeeds, loc[-1])
    if typ == "extra_forbidden" and model is not None:
        return key, f"unknown key; allowed here: {', '.join(model.model_fields)}"
    if typ == "missing":
        info = model.model_fields.get(name) if model is not None and name else None
        return key, "required" + (f" ({info.description})" if info is not None and info.description else "")
    if typ == "literal_error":
        return key, f"invalid value {err['input']!r}; allowed: {err['ctx']['expected']}"
    if typ in ("value_error", "assertion_error"):
        return key, str(err["ctx"]["error"])
    if typ in ("model_type", "dict_type"):
        return key, f"expected a mapping, got {type(err['input']).__name__}"
    return key, f"{err['msg'][0].lower()}{err['msg'][1:]}, got {err['input']!r}"


def sweep_json_schema() -> dict[str, Any]:
    """JSON Schema of a sweep YAML. `overrides`, `grid` and `search.space` list every config
    field (dotted path and unique leaf shortcut) with its type, generated from reid_core's
    TrainConfig dataclasses with pydantic's TypeAdapter (reid_core itself stays pydantic-free)."""
    from pydantic import TypeAdapter

    from reid_core.config import TrainConfig, flatten, resolve_key

    schema = SweepFile.model_json_schema()
    hints = _leaf_types(TrainConfig)
    fields = {}
    for path in flatten(TrainConfig()):
        if path in RESERVED_KEYS:
            continue
        leaf = TypeAdapter(hints[path]).json_schema()
        fields[path] = leaf
        short = path.rsplit(".", 1)[-1]
        try:
            if resolve_key(short) == path and short != path:
                fields[short] = leaf
        except Exception:  # noqa: BLE001 - an ambiguous shortcut is simply not offered
            pass
    props = schema["properties"]
    props["overrides"] = {
        "type": "object",
        "properties": fields,
        "additionalProperties": False,
        "description": "config fields (dotted path or a unique leaf name) -> value",
    }
    props["grid"] = {
        "type": "object",
        "additionalProperties": False,
        "minProperties": 1,
        "properties": {
            "preset": {"type": "array", "minItems": 1, "items": {"enum": list(PRESETS)}},
            **{k: {"type": "array", "minItems": 1, "items": v} for k, v in fields.items()},
        },
    }
    space = schema["$defs"]["SearchSection"]["properties"]["space"]
    space["propertyNames"] = {"enum": list(fields)}
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "compact-reid sweep"
    return schema


def _leaf_types(cls: Any, prefix: str = "") -> dict[str, Any]:
    import dataclasses

    out: dict[str, Any] = {}
    for name, tp in typing.get_type_hints(cls).items():
        if dataclasses.is_dataclass(tp):
            out.update(_leaf_types(tp, f"{prefix}{name}."))
        else:
            out[f"{prefix}{name}"] = tp
    return out
