"""The config's renamed section: `train.*` (old) is a deprecated alias of `runtime.*`, for
override keys (--set, sweep YAML) and for saved config dicts (checkpoints, config.json)."""

from __future__ import annotations

import pytest

from reid_core.checkpoint import WEIGHTS_FORMAT, build_model_from_weights
from reid_core.config import ConfigError, TrainConfig, from_dict, resolve_key, to_dict, with_overrides
from reid_core.presets import preset_config


def _old_dict(cfg: TrainConfig) -> dict:
    """`cfg` as a record written before the rename ("train" section)."""
    d = to_dict(cfg)
    d["train"] = d.pop("runtime")
    return d


def test_runtime_section_holds_the_runtime_options():
    cfg = with_overrides(TrainConfig(), {"runtime.compile": "default"})
    assert cfg.runtime.compile == "default" and "runtime" in to_dict(cfg) and "train" not in to_dict(cfg)
    assert resolve_key("compile") == "runtime.compile"


def test_old_override_key_is_a_deprecated_alias():
    with pytest.warns(FutureWarning, match="'train.compile' is deprecated; use 'runtime.compile'"):
        assert resolve_key("train.compile") == "runtime.compile"
    with pytest.warns(FutureWarning):
        cfg = preset_config("compact-1x", {"train.compile": "reduce-overhead"})  # as --set writes it
    assert cfg.runtime.compile == "reduce-overhead"
    with pytest.raises(ConfigError, match="train.nope"):
        with pytest.warns(FutureWarning):
            resolve_key("train.nope")


def test_old_config_dict_loads():
    cfg = with_overrides(TrainConfig(), {"runtime.compile": "default", "seed": 3})
    assert from_dict(TrainConfig, _old_dict(cfg)) == cfg
    both = {**to_dict(cfg), "train": {"compile": "off"}}
    with pytest.raises(ConfigError, match="deprecated name of 'runtime'"):
        from_dict(TrainConfig, both)


def test_old_weights_file_builds_its_model():
    from reid_core.models import build_model

    cfg = preset_config("compact-1x", {"model.width_multiplier": 0.25, "model.depth_multiplier": 0.3})
    state = build_model(cfg.model).state_dict()
    model = build_model_from_weights({"kind": WEIGHTS_FORMAT, "config": _old_dict(cfg), "model": state})
    assert model.cfg == cfg.model


def test_sweep_yaml_with_the_old_key_still_expands():
    pytest.importorskip("pydantic")
    from orchestration.sweep.spec import parse_text

    head = "name: old_key\ndataset: {synthetic: {ids: 20}}\nbase_preset: g\n"
    with pytest.warns(FutureWarning):
        grid = parse_text(head + "grid: {train.compile: ['off', default]}\n", "grid.yaml")
        fixed = parse_text(head + "overrides: {train.compile: default}\n", "overrides.yaml")
    assert [t.config.runtime.compile for t in grid.trials] == ["off", "default"]
    assert [t.config.runtime.compile for t in fixed.trials] == ["default"]
