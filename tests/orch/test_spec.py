"""Sweep specs: the shipped YAMLs validate and expand; bad input names the file and the key;
`sweep validate` / `sweep show` import neither Ray nor MLflow."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from orchestration.sweep.spec import load_spec, parse_text
from orchestration.sweep.trial import format_value, search_trial_name, trial_name
from reid_core.config import ConfigError
from reid_core.presets import TABLE3_COLUMNS, TABLE4_SETUPS

REPO = Path(__file__).resolve().parents[2]
SWEEPS = REPO / "sweeps"
SHIPPED = sorted(p.name for p in SWEEPS.glob("*.yaml"))


@pytest.fixture()
def market_root(tmp_path, monkeypatch):
    root = tmp_path / "Market-1501"
    for sub in ("bounding_box_train", "query", "bounding_box_test"):
        (root / sub).mkdir(parents=True)
    monkeypatch.setenv("MARKET1501_ROOT", str(root))
    return root


def test_every_shipped_spec_is_listed():
    for name in (
        "smoke.yaml",
        "table3_ablation.yaml",
        "table4_swag.yaml",
        "gem_p_init.yaml",
        "width_multiplier.yaml",
        "swag_cycles.yaml",
        "optuna_search.yaml",
    ):
        assert name in SHIPPED


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_spec_validates_and_expands(name, market_root):
    spec = load_spec(SWEEPS / name)
    assert spec.file.name == Path(name).stem
    assert spec.file.description
    assert spec.num_trials >= 1
    names = [t.name for t in spec.trials]
    assert len(names) == len(set(names))
    for t in spec.trials:
        cfg = t.config
        assert cfg.seed == t.seed and cfg.preset == t.preset
        assert t.name == f"{t.grid_point}-seed{t.seed}"
    json.dumps(spec.to_dict())  # JSON-ready


def test_table3_has_55_trials(market_root):
    spec = load_spec(SWEEPS / "table3_ablation.yaml")
    assert len(spec.trials) == 55
    assert [t.name for t in spec.trials[:5]] == [f"hacnn-seed{s}" for s in range(5)]
    assert {t.preset for t in spec.trials} == set(TABLE3_COLUMNS)
    assert {t.grid_point for t in spec.trials} == set(TABLE3_COLUMNS)
    assert spec.dataset.path == str(market_root.resolve()) and spec.dataset.name == "market1501"
    assert spec.trials[-1].config.schedule.scale == 1.0  # the paper's schedule
    planned = spec.planned()
    assert len(planned) == 55 and set(planned[0]) >= {"trial_name", "grid_point", "preset", "seed", "overrides"}


def test_table4_and_axes(market_root):
    t4 = load_spec(SWEEPS / "table4_swag.yaml")
    assert len(t4.trials) == 15 and {t.preset for t in t4.trials} == set(TABLE4_SETUPS)
    assert all(t.config.swag.enabled for t in t4.trials)
    gem = load_spec(SWEEPS / "gem_p_init.yaml")
    assert "gem_p_init=4.0-seed0" in [t.name for t in gem.trials]
    assert {t.config.model.gem_p_init for t in gem.trials} == {1.0, 2.0, 3.0, 4.0, 6.0}
    sw = load_spec(SWEEPS / "swag_cycles.yaml")
    assert {t.config.swag.cycles for t in sw.trials} == {1, 5, 10, 15, 20}
    assert sw.trials[0].name == "swag.cycles=1-seed0"
    wm = load_spec(SWEEPS / "width_multiplier.yaml")
    assert {t.config.model.width_multiplier for t in wm.trials} == {0.25, 0.5, 0.75, 1.0, 1.5}


def test_smoke_spec_is_tiny():
    spec = load_spec(SWEEPS / "smoke.yaml")
    # the demo's set: enough identities that the networks learn, few enough for ~5 min (docs/BENCHMARKS.md)
    assert spec.dataset.is_synthetic and 100 <= spec.dataset.synthetic["num_train_ids"] <= 200
    assert 3 <= len(spec.trials) <= 4
    cfgs = [t.config for t in spec.trials]
    assert any(c.swag.enabled and c.swag.cycles == 2 and c.swag.samples == 2 for c in cfgs)
    assert all(c.model.width_multiplier <= 0.25 for c in cfgs)
    assert len({t.seed for t in spec.trials}) == 2


def test_optuna_spec(market_root):
    spec = load_spec(SWEEPS / "optuna_search.yaml")
    assert spec.search is not None and spec.search.algorithm == "optuna"
    assert set(spec.search.space) == {"optim.lr", "loss.label_smoothing", "data.erasing_p"}
    assert spec.scheduler is not None and spec.scheduler.type == "asha"
    assert spec.scheduler.max_t == 70  # 0.2 x 350 epochs
    assert spec.num_trials == spec.search.num_samples and spec.planned() == []


def test_trial_names():
    assert trial_name("c", {}, 2) == ("c-seed2", "c")
    assert trial_name(None, {"gem_p_init": 4.0}, 0) == ("gem_p_init=4.0-seed0", "gem_p_init=4.0")
    assert trial_name("compact-1x", {"width_multiplier": 0.5}, 1)[0] == "compact-1x-width_multiplier=0.5-seed1"
    assert format_value(True) == "true" and format_value(3) == "3"
    assert (
        search_trial_name({"optim.lr": 0.021345, "loss.label_smoothing": 0.1}, 0)[0]
        == "lr=0.0213-label_smoothing=0.1-seed0"
    )


def test_two_axes_cross_product(tmp_path):
    spec = parse_text(
        """
name: two
dataset: {synthetic: {ids: 20}}
grid: {width_multiplier: [0.25, 0.5], preset: [g, h]}
seeds: [0, 1]
""",
        "two.yaml",
    )
    assert len(spec.trials) == 8
    assert spec.trials[0].name == "g-width_multiplier=0.25-seed0"
    assert spec.trials[0].overrides == {"model.width_multiplier": 0.25}


def test_env_path_and_relative_path(tmp_path, monkeypatch):
    d = tmp_path / "data"
    d.mkdir()
    monkeypatch.chdir(tmp_path)
    spec = parse_text("name: x\ndataset: {path: data}\nbase_preset: g\n", "x.yaml")
    assert spec.dataset.path == str(d.resolve())
    monkeypatch.setenv("MY_DATA", str(d))
    assert parse_text("name: x\ndataset: {path: '${MY_DATA}'}\nbase_preset: g\n", "x.yaml").dataset.path == str(d)


GOOD = """
name: bad_case
dataset:
  synthetic: {ids: 20, cameras: 2, images_per_id: 6, seed: 0}
grid:
  preset: [g, h]
seeds: [0, 1]
overrides:
  schedule.scale: 0.01
"""

BAD_CASES = [
    # (description, yaml text, key that must be named)
    ("malformed YAML", "name: x\ngrid: [unclosed\n", "line"),
    ("empty file", "", "(top level)"),
    ("not a mapping", "- a\n- b\n", ""),
    ("unknown top-level key", GOOD + "bogus: 1\n", "bogus"),
    ("missing name", GOOD.replace("name: bad_case", ""), "name"),
    ("bad name", GOOD.replace("name: bad_case", "name: 'a b/c'"), "name"),
    ("unknown preset in grid", GOOD.replace("[g, h]", "[g, zz]"), "grid.preset[1]"),
    ("unknown base preset", GOOD.replace("grid:\n  preset: [g, h]", "base_preset: nope"), "base_preset"),
    ("base preset and preset axis", GOOD + "base_preset: g\n", "base_preset"),
    ("no preset at all", GOOD.replace("grid:\n  preset: [g, h]", ""), "base_preset"),
    ("empty grid", GOOD.replace("grid:\n  preset: [g, h]", "grid: {}"), "grid"),
    ("null grid", GOOD.replace("grid:\n  preset: [g, h]", "grid:"), "grid"),
    ("empty axis", GOOD.replace("preset: [g, h]", "preset: []"), "grid.preset"),
    ("axis not a list", GOOD.replace("preset: [g, h]", "preset: g"), "grid.preset"),
    (
        "unknown config key in grid",
        GOOD.replace("preset: [g, h]", "preset: [g]\n  not_a_field: [1, 2]"),
        "grid.not_a_field",
    ),
    ("ambiguous shortcut", GOOD.replace("preset: [g, h]", "preset: [g]\n  scale: [0.5, 1.0]"), "grid.scale"),
    (
        "duplicate grid value",
        GOOD.replace("preset: [g, h]", "preset: [g]\n  gem_p_init: [2.0, 2.0]"),
        "grid.gem_p_init",
    ),
    ("invalid value in grid", GOOD.replace("preset: [g, h]", "preset: [g]\n  gem_p_init: [0.5]"), "gem_p_init"),
    ("wrong type in overrides", GOOD.replace("schedule.scale: 0.01", "schedule.scale: fast"), "schedule.scale"),
    ("unknown override", GOOD.replace("schedule.scale: 0.01", "schedule.speed: 2"), "overrides.schedule.speed"),
    ("seed in overrides", GOOD.replace("schedule.scale: 0.01", "seed: 3"), "overrides.seed"),
    (
        "axis also overridden",
        GOOD.replace("preset: [g, h]", "preset: [g]\n  schedule.scale: [0.5]"),
        "grid.schedule.scale",
    ),
    ("seeds not integers", GOOD.replace("seeds: [0, 1]", "seeds: [a]"), "seeds[0]"),
    ("duplicate seeds", GOOD.replace("seeds: [0, 1]", "seeds: [1, 1]"), "seeds"),
    ("dataset with both", GOOD.replace("dataset:\n", "dataset:\n  path: /tmp\n"), "dataset"),
    ("unknown dataset key", GOOD.replace("dataset:\n", "dataset:\n  format: x\n"), "dataset.format"),
    ("synthetic without ids", GOOD.replace("ids: 20, ", ""), "dataset.synthetic.ids"),
    ("synthetic bad type", GOOD.replace("ids: 20", "ids: many"), "dataset.synthetic.ids"),
    ("unknown synthetic option", GOOD.replace("seed: 0}", "seed: 0, colour: red}"), "dataset.synthetic.colour"),
    (
        "synthetic cameras out of range",
        GOOD.replace("cameras: 2", "cameras: 12"),
        "dataset.synthetic.cameras: must be in 2..9",
    ),
    (
        "synthetic train_ids not below ids",
        GOOD.replace("ids: 20,", "ids: 20, train_ids: 20,"),
        "dataset.synthetic.train_ids: must be below the number of identities (20)",
    ),
    ("synthetic size not two numbers", GOOD.replace("seed: 0}", "seed: 0, size: [64]}"), "dataset.synthetic.size"),
    (
        "synthetic camera variation",
        GOOD.replace("seed: 0}", "seed: 0, camera_variation: 1.5}"),
        "dataset.synthetic.camera_variation: must be in [0, 1]",
    ),
    (
        "nonexistent dataset path",
        GOOD.replace("  synthetic: {ids: 20, cameras: 2, images_per_id: 6, seed: 0}", "  path: /nonexistent/market"),
        "dataset.path",
    ),
    (
        "unset env var",
        GOOD.replace(
            "  synthetic: {ids: 20, cameras: 2, images_per_id: 6, seed: 0}", "  path: ${COMPACT_REID_TEST_UNSET_VAR}"
        ),
        "dataset.path",
    ),
    (
        "unknown dataset name",
        GOOD.replace("  synthetic: {ids: 20, cameras: 2, images_per_id: 6, seed: 0}", "  path: /tmp\n  name: cuhk03"),
        "dataset.name",
    ),
    ("resources wrong type", GOOD + "resources: {gpu: lots}\n", "resources.gpu"),
    ("resources unknown key", GOOD + "resources: {tpu: 1}\n", "resources.tpu"),
    ("resources fractional above 1", GOOD + "resources: {gpu: 1.5}\n", "resources.gpu"),
    ("max_concurrent zero", GOOD + "max_concurrent: 0\n", "max_concurrent"),
    ("max_failures negative", GOOD + "max_failures: -1\n", "max_failures"),
    (
        "search with grid",
        GOOD + "search: {num_samples: 2, space: {optim.lr: {type: uniform, low: 0.01, high: 0.1}}}\n",
        "grid",
    ),
    (
        "search unknown algorithm",
        GOOD.replace("grid:\n  preset: [g, h]", "base_preset: g").replace("[0, 1]", "[0]")
        + "search: {algorithm: hyperopt, num_samples: 2, space: {lr: {type: uniform, low: 0.01, high: 0.1}}}\n",
        "search.algorithm",
    ),
    (
        "search bad space type",
        GOOD.replace("grid:\n  preset: [g, h]", "base_preset: g").replace("[0, 1]", "[0]")
        + "search: {num_samples: 2, space: {lr: {type: normal, low: 0.01, high: 0.1}}}\n",
        "search.space.lr.type",
    ),
    (
        "search low >= high",
        GOOD.replace("grid:\n  preset: [g, h]", "base_preset: g").replace("[0, 1]", "[0]")
        + "search: {num_samples: 2, space: {lr: {type: loguniform, low: 0.1, high: 0.01}}}\n",
        "search.space.lr.high",
    ),
    (
        "search invalid bound",
        GOOD.replace("grid:\n  preset: [g, h]", "base_preset: g").replace("[0, 1]", "[0]")
        + "search: {num_samples: 2, space: {label_smoothing: {type: uniform, low: 0.0, high: 1.5}}}\n",
        "search.space.label_smoothing",
    ),
    (
        "search unknown metric",
        GOOD.replace("grid:\n  preset: [g, h]", "base_preset: g").replace("[0, 1]", "[0]")
        + "search: {metric: accuracy, num_samples: 2, space: {lr: {type: uniform, low: 0.01, high: 0.1}}}\n",
        "search.metric",
    ),
    (
        "scheduler metric differs from search",
        GOOD.replace("grid:\n  preset: [g, h]", "base_preset: g").replace("[0, 1]", "[0]")
        + "search: {metric: final_mAP, num_samples: 2, space: {lr: {type: uniform, low: 0.01, "
        "high: 0.1}}}\nscheduler: {type: asha, metric: loss}\n",
        "scheduler.metric",
    ),
    ("scheduler unknown type", GOOD + "scheduler: {type: pbt, metric: mAP}\n", "scheduler.type"),
    ("scheduler without metric", GOOD + "scheduler: {type: asha}\n", "scheduler.metric"),
    (
        "scheduler bad grace",
        GOOD + "scheduler: {type: asha, metric: mAP, max_t: 2, grace_period: 5}\n",
        "scheduler.grace_period",
    ),
]


@pytest.mark.parametrize("desc,text,key", BAD_CASES, ids=[c[0] for c in BAD_CASES])
def test_bad_input_names_file_and_key(desc, text, key, tmp_path, monkeypatch):
    monkeypatch.delenv("COMPACT_REID_TEST_UNSET_VAR", raising=False)
    f = tmp_path / "bad_spec.yaml"
    f.write_text(text)
    with pytest.raises(ConfigError) as ei:
        load_spec(f)
    msg = str(ei.value)
    assert msg.startswith(str(f)), msg
    assert key in msg, f"{desc}: key {key!r} not in {msg!r}"


def test_missing_file_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="no such sweep file"):
        load_spec(tmp_path / "nope.yaml")


def _run_cli(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    code = (
        "import sys, runpy\n"
        "from orchestration.cli import main\n"
        "rc = main(sys.argv[1:])\n"
        "bad = sorted(m for m in ('ray', 'mlflow', 'optuna') if m in sys.modules)\n"
        "print('HEAVY_IMPORTS=' + ','.join(bad))\n"
        "sys.exit(rc)\n"
    )
    return subprocess.run(
        [sys.executable, "-c", code, *args],
        capture_output=True,
        text=True,
        cwd=REPO,
        env={**os.environ, **(env or {})},
        timeout=120,
    )


def test_show_and_validate_do_not_import_ray_or_mlflow(market_root):
    env = {"MARKET1501_ROOT": str(market_root)}
    r = _run_cli("sweep", "show", "sweeps/smoke.yaml", "--json", env=env)
    assert r.returncode == 0, r.stderr
    out, marker = r.stdout.rsplit("HEAVY_IMPORTS=", 1)
    assert marker.strip() == "", f"imported: {marker}"
    data = json.loads(out)
    assert data["name"] == "smoke" and len(data["trials"]) == data["num_trials"]
    r = _run_cli("sweep", "show", "sweeps/table3_ablation.yaml", env=env)
    assert r.returncode == 0, r.stderr
    assert "c-seed2" in r.stdout and r.stdout.strip().endswith("HEAVY_IMPORTS=")
    r = _run_cli("sweep", "validate", "sweeps/optuna_search.yaml", env=env)
    assert r.returncode == 0 and "OK" in r.stdout and r.stdout.strip().endswith("HEAVY_IMPORTS="), r.stdout


def test_cli_error_is_one_line_with_file_and_key(tmp_path):
    f = tmp_path / "s.yaml"
    f.write_text(GOOD.replace("[g, h]", "[g, zz]"))
    r = _run_cli("sweep", "validate", str(f))
    assert r.returncode == 2
    assert str(f) in r.stderr and "grid.preset[1]" in r.stderr and "Traceback" not in r.stderr


# ---------------------------------------------------------------------------------
# The JSON Schema (`compact-reid sweep schema`), the generator options, the trial record


def test_schema_accepts_shipped_specs_and_rejects_bad_keys(tmp_path):
    jsonschema = pytest.importorskip("jsonschema")
    import yaml

    out = tmp_path / "sweep.schema.json"
    r = _run_cli("sweep", "schema", "--out", str(out))
    assert r.returncode == 0, r.stderr
    schema = json.loads(out.read_text())
    jsonschema.Draft202012Validator.check_schema(schema)
    validator = jsonschema.Draft202012Validator(schema)
    for name in SHIPPED:
        errors = list(validator.iter_errors(yaml.safe_load((SWEEPS / name).read_text())))
        assert not errors, (name, [e.message for e in errors])
    bad = yaml.safe_load(GOOD.replace("schedule.scale: 0.01", "schedule.speed: 2"))
    assert any("schedule.speed" in e.message for e in validator.iter_errors(bad))
    bad = yaml.safe_load(GOOD.replace("[g, h]", "[g, zz]"))
    assert list(validator.iter_errors(bad))
    props = schema["properties"]["overrides"]["properties"]
    assert props["model.block"]["enum"] == ["inception", "shuffle"] and "gem_p_init" in props


def test_synthetic_options_are_the_generators():
    """Every option of generate() (but where and how it writes) is a key of the synthetic
    block, and every value rule the spec applies is one generate() applies too."""
    import inspect

    from orchestration.sweep.spec_models import SyntheticSpec
    from reid_core.data.synth import generate
    from reid_core.synth_options import SynthOptionError, check_options

    params = set(inspect.signature(generate).parameters) - {"out_dir", "overwrite", "progress"}
    every = SyntheticSpec(
        ids=10,
        train_ids=4,
        cameras=3,
        images_per_id=5,
        seed=1,
        num_distractors=1,
        num_junk=1,
        workers=1,
        size=[64, 32],
        camera_variation=0.5,
    ).generator_kwargs()
    assert set(every) == params and len(every) == len(SyntheticSpec.model_fields)
    check_options(every)  # a valid set passes
    with pytest.raises(SynthOptionError) as ei:
        check_options({**every, "num_cameras": 12})
    with pytest.raises(ConfigError) as spec_error:
        parse_text(GOOD.replace("cameras: 2", "cameras: 12"), "g.yaml")
    assert str(spec_error.value) == f"g.yaml: dataset.synthetic.cameras: {ei.value.problem}"


@pytest.mark.parametrize(
    "order",
    [
        ("schedule.epochs", "schedule.warmup_epochs", "schedule.milestones"),
        ("schedule.milestones", "schedule.warmup_epochs", "schedule.epochs"),
    ],
)
def test_overrides_are_applied_together_in_any_order(order):
    """Each override alone against the preset refused `epochs: 10` (the preset's milestones
    150, 225 lie past it); together, as `train --set` applies them, they are one valid schedule."""
    values = {"schedule.epochs": 10, "schedule.warmup_epochs": 1, "schedule.milestones": [8]}
    text = "name: o\ndataset: {synthetic: {ids: 20}}\nbase_preset: g\noverrides:\n" + "".join(
        f"  {k}: {values[k]}\n" for k in order
    )
    schedule = parse_text(text, "o.yaml").trials[0].config.schedule
    assert (schedule.epochs, schedule.warmup_epochs, schedule.milestones) == (10, 1, (8,))


def test_overrides_that_conflict_together_name_the_file_and_key():
    text = "name: o\ndataset: {synthetic: {ids: 20}}\nbase_preset: g\noverrides: {schedule.epochs: 10}\n"
    with pytest.raises(ConfigError, match=r"^o\.yaml: overrides: schedule\.milestones: must lie in \(0, epochs=10\)"):
        parse_text(text, "o.yaml")  # the preset's milestones (150, 225), not an override, are named
    text = text.replace("{schedule.epochs: 10}", "{epochs: 10, milestones: [12]}")
    with pytest.raises(ConfigError, match=r"^o\.yaml: overrides\.milestones: schedule\.milestones: must lie in"):
        parse_text(text, "o.yaml")  # an override's own field: named as written


def test_a_trial_carries_its_resolved_config_and_round_trips():
    import pickle

    from orchestration.sweep.trial import Trial, trial_of
    from reid_core.config import TrainConfig

    spec = parse_text(GOOD, "good.yaml")
    trial = spec.trials[3]
    assert isinstance(trial.config, TrainConfig) and trial.config.seed == trial.seed == 1
    assert trial.config.schedule.scale == 0.01 and trial.config.preset == "h"
    saved = trial.to_dict()
    assert saved["config"]["seed"] == 1 and "config" not in trial.to_dict(with_config=False)
    assert Trial.from_dict(json.loads(json.dumps(saved))) == trial  # sweep.json / trials.json
    assert pickle.loads(pickle.dumps(trial)) == trial  # what Ray's experiment state keeps
    searched = trial_of({"trial": trial, "sampled": {"optim.lr": 0.0213456}})  # Optuna's values
    assert searched.name == "lr=0.0213-seed1" and searched.config.optim.lr == 0.0213456
    assert searched.overrides["optim.lr"] == 0.0213456 and trial.config.optim.lr != 0.0213456


def test_config_edits_go_through_the_configs_own_validation():
    trial = parse_text(GOOD, "good.yaml").trials[0]
    assert trial.with_overrides({"data.pipeline": "device"}).config.data.pipeline == "device"
    with pytest.raises(ConfigError, match="data.pipeline"):
        trial.with_overrides({"data.pipeline": "nonsense"})
    reseeded = trial.reseeded(7, 9, "why", preset_in_name=True)
    assert (reseeded.name, reseeded.seed, reseeded.config.seed, reseeded.index) == ("g-seed7", 7, 7, 9)
    with pytest.raises(TypeError, match="older compact-reid"):  # a sweep saved with untyped records
        from orchestration.sweep.trial import trial_of

        trial_of({"trial": trial.to_dict()})


def test_ray_names_a_trial_after_its_record():
    from types import SimpleNamespace

    from orchestration.sweep.trial import trial_dirname_creator, trial_name_creator

    trial = parse_text(GOOD, "good.yaml").trials[3]
    searched = {"trial": trial, "sampled": {"optim.lr": 0.0213456}}
    assert trial_name_creator(SimpleNamespace(config={"trial": trial}, trial_id="t1")) == "h-seed1"
    assert trial_name_creator(SimpleNamespace(config=searched, trial_id="t2")) == "lr=0.0213-seed1"
    assert trial_name_creator(SimpleNamespace(config={}, trial_id="t3")) == "t3"
    assert trial_dirname_creator(SimpleNamespace(config={"trial": trial}, trial_id="t1")) == "h-seed1_t1"


def test_reid_core_needs_no_pydantic_ray_or_mlflow():
    """reid_core runs on a GPU machine with only torch/torchvision/numpy/pyyaml."""
    code = (
        "import sys\n"
        "import reid_core.config, reid_core.presets, reid_core.metric_keys, reid_core.training.trainer\n"
        "print(','.join(sorted(m for m in ('pydantic', 'ray', 'mlflow', 'optuna') if m in sys.modules)))\n"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=120)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == ""


def test_a_sweep_saved_by_the_previous_version_is_refused_saying_what_to_do(tmp_path: Path) -> None:
    """Format 1 (before 2026-12) kept sweep.json in <runs>/<sweep>/ray/<sweep>/ and the trials
    as dicts: `sweep resume` / `sweep status` name the file and the command that starts it again."""
    from orchestration.sweep.errors import SweepError
    from orchestration.sweep.sweep_folder import open_sweep

    legacy = tmp_path / "runs" / "smoke" / "ray" / "smoke" / "sweep.json"
    legacy.parent.mkdir(parents=True)
    saved = {"name": "smoke", "spec_source": "sweeps/smoke.yaml", "tracking_uri": "sqlite:///runs/mlflow.db"}
    legacy.write_text(json.dumps({**saved, "trials": [{"name": "g-seed0", "config": {}}]}))
    with pytest.raises(SweepError) as refused:
        open_sweep("smoke", runs_dir=tmp_path / "runs")
    message = str(refused.value)
    assert str(legacy) in message and "state format 1" in message
    assert "compact-reid sweep run sweeps/smoke.yaml --fresh" in message and "sqlite:///runs/mlflow.db" in message
