"""`resources: auto` (orchestration/sweep/resource_probe.py): what is open, the decision on
recorded figures (GPU ones included: no GPU is needed), failures ruled out, the cache, the
fallback, node kinds; and the real worker path (reid_core/throughput.py) on a tiny preset."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from orchestration.sweep import resource_probe as rp
from orchestration.sweep.resource_probe import Cell, NodeKind
from orchestration.sweep.spec import parse_text

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

    def __init__(self, figs: dict[str, Any], default: Any = 100.0) -> None:
        self.figs, self.default, self.calls = figs, default, []

    def __call__(self, cell: Cell, window: float, timeout: float) -> dict[str, Any]:
        self.calls.append(cell.label)
        v = self.figs.get(cell.label, self.default)
        if isinstance(v, str):
            return {"status": v, "error": f"{v} (injected)", "wall_seconds": 1.0}
        return {"status": "ok", "aggregate_images_per_second": v, "wall_seconds": 1.0}


@pytest.fixture(autouse=True)
def _probe_mode_from_the_spec(monkeypatch):
    """conftest.py pins sweeps under test to the built-in rules; here the probe is the subject."""
    monkeypatch.delenv("COMPACT_REID_RESOURCES", raising=False)


def choose(s: Any, measure: Any, tmp_path: Path, kinds=(GPU,), defaults=GPU_DEFAULTS, **kw: Any) -> rp.ResourceChoice:
    logs: list[str] = []
    kw.setdefault("budget_s", 60)
    c = rp.choose_resources(
        s,
        "/nowhere",
        "generic",
        kinds=list(kinds),
        default_resources=defaults,
        cache_dir=tmp_path,
        measure=measure,
        log=logs.append,
        **kw,
    )
    c.logs = logs  # type: ignore[attr-defined]
    return c


def test_gpu_choice_on_recorded_figures_rules_out_oom(tmp_path):
    m = FakeMeasure(GPU_FIGS)
    c = choose(spec(), m, tmp_path)
    # pipeline first (A B B A), then compile with the faster pipeline (A B B A), then packing;
    # the winner (another layout) measured again next to the defaults
    tv, dev, comp = "torchvision/off/1x4", "device/off/1x4", "device/default/1x4"
    assert m.calls == [tv, dev, dev, tv, dev, comp, comp, dev, "device/default/2x2", "device/default/4x1"] + [
        "device/default/2x2",
        tv,
    ]
    assert c.overrides == {"data.pipeline": "device", "runtime.compile": "default"}
    assert c.resources == {"cpu": 2.0, "gpu": 0.5} and c.max_concurrent is None and c.threads == 2
    assert c.source == "probe" and "device/default/2x2" in c.reason and "4.67x" in c.reason
    rows = {rp._label(r): r for r in c.table}
    assert rows["device/default/4x1"]["status"] == "oom"
    assert "ruled out: device/default/4x1 oom" in c.reason
    assert rows["device/default/2x2"]["repeat"] == 4200.0
    text = "\n".join(c.lines())
    assert "4200.0" in text and "oom" in text and "why:" in text
    json.dumps(c.to_dict())  # what the parent run records


def test_compile_failure_is_ruled_out_and_eager_kept(tmp_path):
    m = FakeMeasure({**GPU_FIGS, "device/default/1x4": "compile_failed"})
    c = choose(spec(), m, tmp_path)
    assert "runtime.compile" not in c.overrides and c.overrides == {"data.pipeline": "device"}
    assert any(r["status"] == "compile_failed" for r in c.table)
    assert all(r["compile"] == "off" for r in c.table if r["processes"] > 1)  # packing measured eager


def test_within_noise_keeps_the_defaults():
    d = Cell("torchvision", "off", 2, 1)
    table = [
        {**d.__dict__, "status": "ok", "images_per_second": 100.0},
        {
            "pipeline": "device",
            "compile": "off",
            "processes": 2,
            "threads": 1,
            "status": "ok",
            "images_per_second": 104,
        },
    ]
    win, why = rp.decide(table, d)
    assert win == d and "noise" in why
    # 8% better: enough after a side-by-side repeat, not without one (twice the margin)
    table[1]["images_per_second"] = 108.0
    assert rp.decide(table, d)[0] == d
    table[1]["repeat"], table[0]["repeat"] = 108.0, 100.0
    assert rp.decide(table, d)[0] == Cell("device", "off", 2, 1)
    # a winner that loses the side-by-side repeat is not taken
    table[1]["images_per_second"], table[1]["repeat"], table[0]["repeat"] = 150.0, 99.0, 101.0
    table[0]["images_per_second"] = 90.0
    win, why = rp.decide(table, d)
    assert win == d and "repeat" in why


def test_cpu_packings_and_defaults_cell():
    o = rp.Open(True, True, True, max_processes=4)
    assert rp.packings(CPU2, o) == [(1, 2), (2, 1)]
    assert rp.packings(NodeKind(16, 0), o) == [(1, 16), (2, 8), (4, 4)]  # capped at the sweep's 4 trials
    assert rp.default_cell(CPU2, o, {"cpu": 1.0, "gpu": 0.0}) == Cell("torchvision", "off", 2, 1)
    assert rp.cell_resources(Cell("device", "off", 1, 2), CPU2) == ({"cpu": 2.0, "gpu": 0.0}, 1)


def test_cpu_probe_never_tries_compile(tmp_path):
    m = FakeMeasure({"torchvision/off/1x2": 300.0})
    c = choose(spec(), m, tmp_path, kinds=(CPU2,), defaults={"cpu": 1.0, "gpu": 0.0})
    assert all("/default/" not in x for x in m.calls)
    assert c.resources == {"cpu": 2.0, "gpu": 0.0} and c.max_concurrent == 1 and c.threads == 2


def test_explicit_settings_win(tmp_path):
    s = spec(extra="resources: {cpu: 2, gpu: 1}\n", overrides="  data.pipeline: torchvision\n")
    m = FakeMeasure(GPU_FIGS)
    c = choose(s, m, tmp_path, defaults={"cpu": 2.0, "gpu": 1.0})
    assert all(x.startswith("torchvision/") and x.endswith("/1x2") for x in m.calls)  # only compile was open
    assert c.resources == {"cpu": 2.0, "gpu": 1.0}
    assert "data.pipeline" not in c.overrides
    # everything set: no probe at all
    s = spec(extra="resources: {cpu: 2, gpu: 1}\n", overrides="  data.pipeline: device\n  runtime.compile: 'off'\n")
    m = FakeMeasure(GPU_FIGS)
    c = choose(s, m, tmp_path, defaults={"cpu": 2.0, "gpu": 1.0})
    assert m.calls == [] and c.source == "spec"
    # resources: defaults (or --resources defaults): no probe
    for s, mode in ((spec(extra="resources: defaults\n"), None), (spec(), "defaults")):
        m = FakeMeasure(GPU_FIGS)
        c = choose(s, m, tmp_path, mode=mode)
        assert m.calls == [] and c.source == "defaults" and c.resources == GPU_DEFAULTS


def test_probe_that_fails_entirely_falls_back(tmp_path):
    c = choose(spec(), FakeMeasure({}, default="oom"), tmp_path)
    assert c.source == "fallback" and c.resources == GPU_DEFAULTS and c.overrides == {}
    assert "probe failed" in c.reason and "oom" in c.reason
    assert not rp.cache_path(tmp_path).exists()  # a failed probe is not cached

    def boom(cell, window, timeout):
        raise RuntimeError("no data")

    c = choose(spec(), boom, tmp_path)
    assert c.source == "fallback" and "no data" in c.reason
    c = choose(spec(), boom, tmp_path, kinds=())  # anything else going wrong: the same fallback
    assert c.source == "fallback" and c.resources == GPU_DEFAULTS and "ValueError" in c.reason


def test_cache_reprobe_corrupt_and_other_version(tmp_path):
    m = FakeMeasure(GPU_FIGS)
    first = choose(spec(), m, tmp_path)
    n = len(m.calls)
    second = choose(spec(), m, tmp_path)
    assert len(m.calls) == n and second.source == "cache"
    assert (second.resources, second.overrides) == (first.resources, first.overrides)
    assert any("cached result" in x for x in second.logs)
    choose(spec(), m, tmp_path, reprobe=True)
    assert len(m.calls) > n
    path = rp.cache_path(tmp_path)
    for bad in ("{not json", json.dumps({"version": 0, "entries": {}}), "[]"):
        path.write_text(bad)
        n = len(m.calls)
        c = choose(spec(), m, tmp_path)
        assert len(m.calls) > n and c.source == "probe" and any("ignored" in x for x in c.logs)
        assert json.loads(path.read_text())["version"] == rp.PROBE_VERSION  # rewritten


def test_each_node_kind_gets_its_own_probe(tmp_path):
    m = FakeMeasure(GPU_FIGS)
    cpu16 = NodeKind(16, 0, node_ids=["c1", "c2"])
    c = choose(spec(), m, tmp_path, kinds=(cpu16, GPU))
    assert set(c.per_kind) == {cpu16.key, GPU.key}
    assert c.node_kind == GPU.key  # the kind with the accelerators is applied
    assert c.per_kind[cpu16.key]["table"] and c.per_kind[cpu16.key]["choice"]
    assert any(cpu16.key in line for line in c.lines())


def test_apply_choice_and_spec_shorthand():
    s = spec()
    assert s.file.resources.mode == "auto"
    ch = rp.ResourceChoice({"cpu": 1.0, "gpu": 0.0}, 2, 1, {"data.pipeline": "device"}, [], "", "probe")
    s2 = rp.apply_choice(s, ch)
    assert all(t.config().data.pipeline == "device" for t in s2.trials)
    assert s.trials[0].config().data.pipeline == "torchvision"
    assert spec(extra="resources: defaults\n").file.resources.mode == "defaults"
    with pytest.raises(Exception, match="resources"):
        spec(extra="resources: sometimes\n")


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

    s = spec()
    job = {"config": s.trials[0].config_dict, "data": tiny_data, "device": "cpu", "scratch": str(tmp_path), "warmup": 1}
    for what in ("oom", "compile_failed"):
        r = measure_processes({**job, "inject": what}, 1, 1, 0.5, timeout=120)
        assert r["status"] == what, r
    r = measure_processes(job, 2, 1, 1.0, timeout=120)
    assert r["status"] == "ok" and r["aggregate_images_per_second"] > 0 and len(r["workers"]) == 2
    # two pipelines in the same workers, windows A B B A
    variants = [{"data.pipeline": "torchvision"}, {"data.pipeline": "device"}]
    r = measure_processes({**job, "variants": variants, "pattern": [0, 1, 1, 0]}, 2, 1, 0.5, timeout=120)
    assert r["status"] == "ok", r
    assert [v for v, _ in r["slot_images_per_second"]] == [0, 1, 1, 0]
    assert len(r["variants"]) == 2 and all(len(f) == 2 and min(f) > 0 for f in r["variants"])


def test_real_probe_on_a_tiny_preset(tiny_data, tmp_path, monkeypatch):
    monkeypatch.setenv("COMPACT_REID_PROBE_INJECT", "device/off/2x1=oom")
    c = rp.choose_resources(
        spec(),
        tiny_data,
        "generic",
        kinds=[CPU2],
        default_resources={"cpu": 1.0, "gpu": 0.0},
        cache_dir=tmp_path,
        budget_s=60,
        window_s=1.0,
        log=lambda m: None,
    )
    rows = {rp._label(r): r for r in c.table}
    assert rows["device/off/2x1"]["status"] == "oom"
    assert rows["torchvision/off/2x1"]["status"] == "ok" and rows["torchvision/off/2x1"]["images_per_second"] > 0
    assert c.source in ("probe", "fallback") and c.overrides.get("data.pipeline") != "device"


@pytest.mark.e2e
def test_probe_as_a_ray_task_pinned_to_a_node(tiny_data, tmp_path):
    """The cluster path on one machine: the probe of a node kind runs as a Ray task with a
    node-affinity strategy (what each kind of a heterogeneous cluster gets)."""
    import ray

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    try:
        kind = rp.node_kinds()[0]
        assert kind.cpus == 2 and kind.gpus == 0 and kind.node_ids
        o = rp.Open(pipeline=False, compile=False, packing=True, max_processes=2)
        d = rp.default_cell(kind, o, {"cpu": 1.0, "gpu": 0.0})
        out = rp._remote_probe(kind, (kind, o, d, spec().trials[0].config_dict, tiny_data, "generic", 30.0, 1.0), print)
    finally:
        ray.shutdown()
    labels = [rp._label(r) for r in out["table"]]
    assert labels[:2] == ["torchvision/off/2x1", "torchvision/off/1x2"]
    assert all(r["status"] == "ok" for r in out["table"]) and out["device"].startswith("CPU")


def test_record_on_the_parent_run(tmp_path):
    c = choose(spec(), FakeMeasure(GPU_FIGS), tmp_path)

    class Client:
        tags: dict[str, str] = {}

        def set_tag(self, run_id, k, v):
            self.tags[k] = v

    class Tracker:
        client = Client()
        logged: dict[str, Any] = {}

        def log_parent_json(self, run_id, obj, name):
            self.logged[name] = json.loads(json.dumps(obj, default=str))

    t = Tracker()
    rp.record(t, "run", c)
    assert t.logged[rp.CHOICE_ARTIFACT]["reason"] == c.reason
    assert t.client.tags[rp.PROBE_TAG + "device.default.2x2"] == "4200.00 img/s"
    assert t.client.tags[rp.PROBE_TAG + "device.default.4x1"] == "oom"
    assert json.loads(t.client.tags[rp.RESOURCES_TAG + "choice"])["runtime.compile"] == "default"
