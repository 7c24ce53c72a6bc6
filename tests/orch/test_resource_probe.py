"""`resources: auto` (orchestration/probe/): what is open, the decision on recorded figures
(GPU ones included: no GPU is needed), failures ruled out, the cache, the fallback, node
kinds, applying and recording the choice; the real worker path (reid_core/throughput.py) on
a tiny preset; and `compact-reid probe`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from orchestration.cli import main
from orchestration.mlflow_log.names import PROBE_TAG, RESOURCE_CHOICE_ARTIFACT, RESOURCES_TAG
from orchestration.probe import Cell, NodeKind, ResourceChoice, apply_choice, cache_path, choose_resources, record
from orchestration.probe.cache import PROBE_VERSION
from orchestration.probe.cells import OpenChoices, cell_resources, decide, default_cell, packings, row_label
from orchestration.sweep.spec import parse_text
from reid_core.config import ConfigError, to_dict

TINY = """\
name: probe-test
dataset:
  synthetic: {ids: 24, train_ids: 12, cameras: 2, images_per_id: 6, seed: 0}
base_preset: g
seeds: [0, 1, 2, 3]
overrides:
  model.width_multiplier: 0.25
  model.depth_multiplier: 0.25
  schedule.scale: 0.01
  data.p: 4
  data.k: 4
  data.num_workers: 0
"""


def spec(extra: str = "", overrides: str = "") -> Any:
    return parse_text(TINY + overrides + extra, "probe-test.yaml")


GPU = NodeKind(cpus=16, gpus=2, accelerator="H200", node_ids=["n1"])
CPU2 = NodeKind(cpus=2, gpus=0, node_ids=["c1"])
GPU_DEFAULTS = {"cpu": 4.0, "gpu": 1.0}

# Recorded-style GPU figures (images/s by cell label); missing -> ok at 100
GPU_FIGS = {
    "torchvision/off/1x4": 900.0,
    "device/off/1x4": 2400.0,
    "device/default/1x4": 3100.0,
    "device/default/2x2": 4200.0,
    "device/default/4x1": "oom",
}


class FakeMeasure:
    """measure(cell, window, timeout) from a table of figures or failure statuses."""

    def __init__(self, figures: dict[str, Any], default: Any = 100.0) -> None:
        self.figures, self.default, self.calls = figures, default, []

    def __call__(self, cell: Cell, window: float, timeout: float) -> dict[str, Any]:
        self.calls.append(cell.label)
        value = self.figures.get(cell.label, self.default)
        if isinstance(value, str):
            return {"status": value, "error": f"{value} (injected)", "wall_seconds": 1.0}
        return {"status": "ok", "aggregate_images_per_second": value, "wall_seconds": 1.0}


def choose(
    sweep: Any, measure: Any, tmp_path: Path, kinds=(GPU,), defaults=GPU_DEFAULTS, **options: Any
) -> ResourceChoice:
    logs: list[str] = []
    options.setdefault("budget_s", 60)
    choice = choose_resources(
        sweep,
        "/nowhere",
        "generic",
        kinds=list(kinds),
        default_resources=defaults,
        cache_dir=tmp_path,
        measure=measure,
        log=logs.append,
        **options,
    )
    choice.logs = logs  # type: ignore[attr-defined]
    return choice


def test_gpu_choice_on_recorded_figures_rules_out_oom(tmp_path):
    fake = FakeMeasure(GPU_FIGS)
    choice = choose(spec(), fake, tmp_path)
    # pipeline first (A B B A), then compile with the faster pipeline (A B B A), then packing;
    # the winner (another layout) measured again next to the defaults
    tv, dev, comp = "torchvision/off/1x4", "device/off/1x4", "device/default/1x4"
    assert fake.calls == [tv, dev, dev, tv, dev, comp, comp, dev, "device/default/2x2", "device/default/4x1"] + [
        "device/default/2x2",
        tv,
    ]
    assert choice.overrides == {"data.pipeline": "device", "runtime.compile": "default"}
    assert choice.resources == {"cpu": 2.0, "gpu": 0.5} and choice.max_concurrent is None and choice.threads == 2
    assert choice.source == "probe" and "device/default/2x2" in choice.reason and "4.67x" in choice.reason
    rows = {row_label(row): row for row in choice.table}
    assert rows["device/default/4x1"]["status"] == "oom"
    assert "ruled out: device/default/4x1 oom" in choice.reason
    assert rows["device/default/2x2"]["repeat"] == 4200.0
    text = "\n".join(choice.lines())
    assert "4200.0" in text and "oom" in text and "why:" in text
    json.dumps(choice.to_dict())  # what the parent run records


def test_compile_failure_is_ruled_out_and_eager_kept(tmp_path):
    fake = FakeMeasure({**GPU_FIGS, "device/default/1x4": "compile_failed"})
    choice = choose(spec(), fake, tmp_path)
    assert "runtime.compile" not in choice.overrides and choice.overrides == {"data.pipeline": "device"}
    assert any(row["status"] == "compile_failed" for row in choice.table)
    assert all(row["compile"] == "off" for row in choice.table if row["processes"] > 1)  # packing measured eager


def test_within_noise_keeps_the_defaults():
    default = Cell("torchvision", "off", 2, 1)
    table = [
        {**default.__dict__, "status": "ok", "images_per_second": 100.0},
        {
            "pipeline": "device",
            "compile": "off",
            "processes": 2,
            "threads": 1,
            "status": "ok",
            "images_per_second": 104,
        },
    ]
    winner, why = decide(table, default)
    assert winner == default and "noise" in why
    # 8% better: enough after a side-by-side repeat, not without one (twice the margin)
    table[1]["images_per_second"] = 108.0
    assert decide(table, default)[0] == default
    table[1]["repeat"], table[0]["repeat"] = 108.0, 100.0
    assert decide(table, default)[0] == Cell("device", "off", 2, 1)
    # a winner that loses the side-by-side repeat is not taken
    table[1]["images_per_second"], table[1]["repeat"], table[0]["repeat"] = 150.0, 99.0, 101.0
    table[0]["images_per_second"] = 90.0
    winner, why = decide(table, default)
    assert winner == default and "repeat" in why


def test_cpu_packings_and_defaults_cell():
    left_open = OpenChoices(True, True, True, max_processes=4)
    assert packings(CPU2, left_open) == [(1, 2), (2, 1)]
    assert packings(NodeKind(16, 0), left_open) == [(1, 16), (2, 8), (4, 4)]  # capped at the sweep's 4 trials
    assert default_cell(CPU2, left_open, {"cpu": 1.0, "gpu": 0.0}) == Cell("torchvision", "off", 2, 1)
    assert cell_resources(Cell("device", "off", 1, 2), CPU2) == ({"cpu": 2.0, "gpu": 0.0}, 1)


def test_cpu_probe_never_tries_compile(tmp_path):
    fake = FakeMeasure({"torchvision/off/1x2": 300.0})
    choice = choose(spec(), fake, tmp_path, kinds=(CPU2,), defaults={"cpu": 1.0, "gpu": 0.0})
    assert all("/default/" not in label for label in fake.calls)
    assert choice.resources == {"cpu": 2.0, "gpu": 0.0} and choice.max_concurrent == 1 and choice.threads == 2


def test_explicit_settings_win(tmp_path):
    sweep = spec(extra="resources: {cpu: 2, gpu: 1}\n", overrides="  data.pipeline: torchvision\n")
    fake = FakeMeasure(GPU_FIGS)
    choice = choose(sweep, fake, tmp_path, defaults={"cpu": 2.0, "gpu": 1.0})
    assert all(label.startswith("torchvision/") and label.endswith("/1x2") for label in fake.calls)  # only compile
    assert choice.resources == {"cpu": 2.0, "gpu": 1.0}
    assert "data.pipeline" not in choice.overrides
    # --max-concurrent (or the spec's): packing is not probed, and that value is the choice's
    fake = FakeMeasure(GPU_FIGS)
    choice = choose(spec(), fake, tmp_path, max_concurrent=3)
    assert all(label.endswith("/1x4") for label in fake.calls) and choice.max_concurrent == 3
    assert choice.resources == GPU_DEFAULTS
    # everything set: no probe at all
    sweep = spec(extra="resources: {cpu: 2, gpu: 1}\n", overrides="  data.pipeline: device\n  runtime.compile: 'off'\n")
    fake = FakeMeasure(GPU_FIGS)
    choice = choose(sweep, fake, tmp_path, defaults={"cpu": 2.0, "gpu": 1.0})
    assert fake.calls == [] and choice.source == "spec"


def test_probe_that_fails_entirely_falls_back(tmp_path):
    choice = choose(spec(), FakeMeasure({}, default="oom"), tmp_path)
    assert choice.source == "fallback" and choice.resources == GPU_DEFAULTS and choice.overrides == {}
    assert "probe failed" in choice.reason and "oom" in choice.reason
    assert not cache_path(tmp_path).exists()  # a failed probe is not cached

    def boom(cell, window, timeout):
        raise RuntimeError("no data")

    choice = choose(spec(), boom, tmp_path)
    assert choice.source == "fallback" and "no data" in choice.reason
    choice = choose(spec(), boom, tmp_path, kinds=())  # anything else going wrong: the same fallback
    assert choice.source == "fallback" and choice.resources == GPU_DEFAULTS and "ValueError" in choice.reason


def test_cache_reprobe_corrupt_and_other_version(tmp_path):
    fake = FakeMeasure(GPU_FIGS)
    first = choose(spec(), fake, tmp_path)
    calls = len(fake.calls)
    second = choose(spec(), fake, tmp_path)
    assert len(fake.calls) == calls and second.source == "cache"
    assert (second.resources, second.overrides) == (first.resources, first.overrides)
    assert any("cached result" in line for line in second.logs)
    choose(spec(), fake, tmp_path, reprobe=True)
    assert len(fake.calls) > calls
    path = cache_path(tmp_path)
    for bad in ("{not json", json.dumps({"version": 0, "entries": {}}), "[]"):
        path.write_text(bad)
        calls = len(fake.calls)
        choice = choose(spec(), fake, tmp_path)
        assert len(fake.calls) > calls and choice.source == "probe" and any("ignored" in x for x in choice.logs)
        assert json.loads(path.read_text())["version"] == PROBE_VERSION  # rewritten


def test_each_node_kind_gets_its_own_probe(tmp_path):
    fake = FakeMeasure(GPU_FIGS)
    cpu16 = NodeKind(16, 0, node_ids=["c1", "c2"])
    choice = choose(spec(), fake, tmp_path, kinds=(cpu16, GPU))
    assert set(choice.per_kind) == {cpu16.key, GPU.key}
    assert choice.node_kind == GPU.key  # the kind with the accelerators is applied
    assert choice.per_kind[cpu16.key]["table"] and choice.per_kind[cpu16.key]["choice"]
    # the other kind's defaults: ray_tune.resources_rule on one such node (1 CPU, no GPU)
    assert choice.per_kind[cpu16.key]["table"][0]["threads"] == 1
    assert any(cpu16.key in line for line in choice.lines())


def test_apply_choice_and_spec_shorthand():
    sweep = spec()
    assert sweep.file.resources.mode == "defaults"  # the built-in rules unless the spec asks
    choice = ResourceChoice({"cpu": 1.0, "gpu": 0.0}, 2, 1, {"data.pipeline": "device"}, [], "", "probe")
    applied = apply_choice(sweep, choice)
    assert all(trial.config.data.pipeline == "device" for trial in applied.trials)
    assert sweep.trials[0].config.data.pipeline == "torchvision"  # the spec itself is left as it was
    assert dict(applied.trials[0].overrides) == dict(sweep.trials[0].overrides)  # the spec's own overrides
    assert apply_choice(sweep, ResourceChoice({"cpu": 1.0, "gpu": 0.0}, 2, 1, {}, [], "", "probe")) is sweep
    assert spec(extra="resources: auto\n").file.resources.mode == "auto"
    with pytest.raises(Exception, match="resources"):
        spec(extra="resources: sometimes\n")


def test_apply_choice_goes_through_the_config_validation():
    """Every trial through Trial.with_overrides: a value TrainConfig refuses is refused here too."""
    sweep = spec()
    for bad in ({"data.pipeline": "gpu-magic"}, {"runtime.compile": "always"}, {"data.no_such_field": 1}):
        with pytest.raises(ConfigError):
            apply_choice(sweep, ResourceChoice({"cpu": 1.0, "gpu": 0.0}, None, 1, bad, [], "", "probe"))


def test_record_on_the_parent_run(tmp_path):
    choice = choose(spec(), FakeMeasure(GPU_FIGS), tmp_path)

    class Client:
        tags: dict[str, str] = {}

        def set_tag(self, run_id, name, value):
            self.tags[name] = value

    class Tracker:
        client = Client()
        logged: dict[str, Any] = {}

        def log_parent_json(self, run_id, obj, name):
            self.logged[name] = json.loads(json.dumps(obj, default=str))

    tracker = Tracker()
    record(tracker, "run", choice)
    assert tracker.logged[RESOURCE_CHOICE_ARTIFACT]["reason"] == choice.reason
    assert tracker.client.tags[PROBE_TAG + "device.default.2x2"] == "4200.00 img/s"
    assert tracker.client.tags[PROBE_TAG + "device.default.4x1"] == "oom"
    assert json.loads(tracker.client.tags[RESOURCES_TAG + "choice"])["runtime.compile"] == "default"
    assert tracker.client.tags[RESOURCES_TAG + "source"] == "probe"


def test_probe_command_refuses_bad_input_before_starting_ray(tmp_path, capsys):
    assert main(["probe", str(tmp_path / "missing.yaml")]) == 2
    spec_file = tmp_path / "probe-test.yaml"
    spec_file.write_text(TINY)
    for option in (["--budget", "0"], ["--max-concurrent", "0"], ["--gpus-per-trial", "-1"]):
        assert main(["probe", str(spec_file), *option]) == 2
    err = capsys.readouterr().err
    assert "no such sweep file" in err and "--budget" in err and "--max-concurrent" in err


# ---------------------------------------------------------------------------------
# the real worker path (a few seconds a cell)


@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory) -> str:
    from reid_core.data.synth import generate

    root = tmp_path_factory.mktemp("probe") / "market"
    generate(root, num_ids=24, num_train_ids=12, num_cameras=2, images_per_id=6, seed=0, workers=1)
    return str(root)


def test_worker_oom_and_compile_failure_are_reported_not_raised(tiny_data, tmp_path):
    from reid_core.throughput import measure_processes

    config = to_dict(spec().trials[0].config)
    job = {"config": config, "data": tiny_data, "device": "cpu", "scratch": str(tmp_path), "warmup": 1}
    for what in ("oom", "compile_failed"):
        result = measure_processes({**job, "inject": what}, 1, 1, 0.5, timeout=120)
        assert result["status"] == what, result
    result = measure_processes(job, 2, 1, 1.0, timeout=120)
    assert result["status"] == "ok" and result["aggregate_images_per_second"] > 0 and len(result["workers"]) == 2
    # two pipelines in the same workers, windows A B B A
    variants = [{"data.pipeline": "torchvision"}, {"data.pipeline": "device"}]
    result = measure_processes({**job, "variants": variants, "pattern": [0, 1, 1, 0]}, 2, 1, 0.5, timeout=120)
    assert result["status"] == "ok", result
    assert [variant for variant, _ in result["slot_images_per_second"]] == [0, 1, 1, 0]
    assert len(result["variants"]) == 2 and all(len(f) == 2 and min(f) > 0 for f in result["variants"])


def test_real_probe_on_a_tiny_preset(tiny_data, tmp_path, monkeypatch):
    monkeypatch.setenv("COMPACT_REID_PROBE_INJECT", "device/off/2x1=oom")
    choice = choose_resources(
        spec(),
        tiny_data,
        "generic",
        kinds=[CPU2],
        default_resources={"cpu": 1.0, "gpu": 0.0},
        cache_dir=tmp_path,
        budget_s=600,  # a budget a loaded machine cannot spend; the two pipelines only (packing fixed)
        window_s=1.0,
        max_concurrent=2,
        log=lambda message: None,
    )
    rows = {row_label(row): row for row in choice.table}
    assert list(rows) == ["torchvision/off/2x1", "device/off/2x1"]  # measured alone after the pair failed
    assert rows["device/off/2x1"]["status"] == "oom"
    assert rows["torchvision/off/2x1"]["status"] == "ok" and rows["torchvision/off/2x1"]["images_per_second"] > 0
    assert choice.source in ("probe", "fallback") and choice.overrides.get("data.pipeline") != "device"


@pytest.mark.e2e
def test_probe_as_a_ray_task_pinned_to_a_node(tiny_data):
    """The cluster path on one machine: the probe of a node kind runs as a Ray task with a
    node-affinity strategy (what each kind of a heterogeneous cluster gets)."""
    import ray

    from orchestration.probe.measure import KindProbe
    from orchestration.probe.nodes import node_kinds, remote_probe

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    try:
        kind = node_kinds()[0]
        assert kind.cpus == 2 and kind.gpus == 0 and kind.node_ids
        left_open = OpenChoices(pipeline=False, compile=False, packing=True, max_processes=2)
        default = default_cell(kind, left_open, {"cpu": 1.0, "gpu": 0.0})
        config = to_dict(spec().trials[0].config)
        outcome = remote_probe(KindProbe(kind, left_open, default, config, tiny_data, "generic", 30.0, 1.0))
    finally:
        ray.shutdown()
    labels = [row_label(row) for row in outcome["table"]]
    assert labels[:2] == ["torchvision/off/2x1", "torchvision/off/1x2"]
    assert all(row["status"] == "ok" for row in outcome["table"]) and outcome["device"].startswith("CPU")


@pytest.mark.e2e
def test_probe_command_measures_then_reads_the_cache(tmp_path, monkeypatch, capsys):
    """`compact-reid probe`: a local Ray, the sweep's synthetic data where `sweep run` puts it,
    a short probe that is cached; the second run reads the cache and measures nothing."""
    monkeypatch.setenv("COMPACT_REID_CACHE", str(tmp_path / "cache"))
    spec_file, runs = tmp_path / "probe-test.yaml", tmp_path / "runs"
    spec_file.write_text(TINY)
    command = ["probe", str(spec_file), "--budget", "8", "--runs-dir", str(runs)]
    assert main(command) == 0
    out = capsys.readouterr().out
    assert "resources (probe" in out and "choice:" in out and "why:" in out
    assert "does not say `resources: auto`" in out  # this spec keeps the built-in rules in `sweep run`
    assert f"cache: {tmp_path / 'cache' / 'resource-probe.json'}" in out
    cache = json.loads((tmp_path / "cache" / "resource-probe.json").read_text())
    assert cache["version"] == PROBE_VERSION and len(cache["entries"]) == 1
    assert list((runs / "storage" / "_data").glob("synthetic-*/synth.json"))  # where `sweep run` will find it

    assert main([*command, "--json"]) == 0
    captured = capsys.readouterr()
    second = json.loads(captured.out)
    assert second["source"] == "cache" and second["cache"] == str(tmp_path / "cache" / "resource-probe.json")
    assert "cached result" in captured.err and "synthetic dataset: reusing" in captured.err
    assert second["resources"]["gpu"] == 0.0 and second["table"]
