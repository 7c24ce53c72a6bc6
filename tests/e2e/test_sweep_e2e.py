"""End to end: real Ray Tune + SQLite MLflow on tiny synthetic data (2 CPU cores).

- a 4-trial sweep (columns g and h: h = g + SWAG, so h starts from g's main phase) through the
  test-only fault-injecting trainable (orchestration/sweep/testing.py): g-seed1 raises at
  every attempt (COMPACT_REID_FAIL_TRIAL) and ends FAILED, so h-seed1 trains alone and says
  why; g-seed0 SIGKILLs its own worker once at epoch 2 (COMPACT_REID_KILL_TRIAL) and is
  retried from its checkpoint into the SAME MLflow run without a gap or a duplicate step, and
  h-seed0 starts from its main phase only after that retry; the sweep itself does not fail;
- a sweep whose driver (alone) is SIGKILLed after its first trial finished: no process it
  started (local Ray, trial workers) is left a few seconds later; then
  `compact-reid sweep resume`: the finished trial is not trained again, the others finish.
"""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest
from processes import wait_gone
from sweep_yaml import tiny_sweep_yaml

pytestmark = [pytest.mark.e2e]

ray = pytest.importorskip("ray")
mlflow = pytest.importorskip("mlflow")

from mlflow.tracking import MlflowClient  # noqa: E402

from orchestration.mlflow_log import names  # noqa: E402
from reid_core.config import flatten  # noqa: E402
from reid_core.presets import preset_config  # noqa: E402

REPO = Path(__file__).resolve().parents[2]


TRIAL_TAGS = (
    "mlflow.parentRunId",
    names.ROLE,
    names.SWEEP,
    names.PRESET,
    names.COLUMN,
    names.SEED,
    names.TRIAL_ID,
    names.TRIAL_NAME,
    names.GRID_POINT,
    names.SCHEMA_VERSION_TAG,
)


def _spec(name: str, **kwargs) -> str:
    return tiny_sweep_yaml(name, "end-to-end test sweep", extra_overrides=SWAG_OVERRIDES, **kwargs)


SWAG_OVERRIDES = {"swag.cycles": 2, "swag.samples": 2, "swag.bn_batches": 1}


def _env() -> dict:
    env = dict(os.environ)
    env.update({"RAY_DEDUP_LOGS": "0", "RAY_USAGE_STATS_ENABLED": "0", "PYTHONUNBUFFERED": "1"})
    return env


def _children(client: MlflowClient, exp_name: str) -> dict:
    exp = client.get_experiment_by_name(exp_name)
    runs = client.search_runs([exp.experiment_id], f"tags.`{names.ROLE}` = 'trial'")
    run_names = [r.info.run_name for r in runs]
    assert len(run_names) == len(set(run_names)), f"duplicate runs: {run_names}"
    return {r.info.run_name: r for r in runs}


def _steps(client: MlflowClient, run_id: str, key: str) -> list[int]:
    return [m.step for m in client.get_metric_history(run_id, key)]


@pytest.fixture(scope="module")
def fault_sweep(tmp_path_factory):
    """Runs one 4-trial sweep in-process with the two fault hooks; yields what the tests read."""
    from orchestration.sweep.runner import SweepOptions, run_sweep
    from orchestration.sweep.testing import FaultHooks, fault_injecting_trial

    root = tmp_path_factory.mktemp("sweep_e2e")
    spec = root / "e2e.yaml"
    spec.write_text(_spec("e2e", grid="grid:\n  preset: [g, h]", seeds="[0, 1]", max_concurrent=2))
    hooks = {
        "COMPACT_REID_FAIL_TRIAL": "g-seed1",
        "COMPACT_REID_FAIL_EPOCH": "1",
        "COMPACT_REID_KILL_TRIAL": "g-seed0",
        "COMPACT_REID_KILL_EPOCH": "2",
        "MLFLOW_SYSTEM_METRICS_SAMPLING_INTERVAL": "1",
    }  # trials last seconds: sample every second
    t0 = time.perf_counter()
    with pytest.MonkeyPatch.context() as mp:  # module-scoped: the function-scoped fixture can't be used
        for k, v in hooks.items():
            mp.setenv(k, v)
        try:
            trial_fn = fault_injecting_trial(FaultHooks.from_env(marker_dir=root / "runs"))
            outcome = run_sweep(spec, SweepOptions(runs_dir=root / "runs", verbose=0, trial_fn=trial_fn))
        finally:
            if ray.is_initialized():
                ray.shutdown()
    wall = time.perf_counter() - t0
    client = MlflowClient(outcome.tracking_uri)
    return {"root": root, "outcome": outcome, "client": client, "wall": wall}


@pytest.mark.timeout(600)
def test_sweep_runs_every_trial_and_tracks_it(fault_sweep):
    out, client = fault_sweep["outcome"], fault_sweep["client"]
    assert not out.interrupted
    states = {r["trial"]: r["status"] for r in out.trials}
    assert states == {"g-seed0": "TERMINATED", "g-seed1": "ERROR", "h-seed0": "TERMINATED", "h-seed1": "TERMINATED"}

    exp = client.get_experiment_by_name("e2e")
    assert exp.tags["mlflow.experimentKind"] == "custom_model_development"
    assert exp.tags["mlflow.note.content"] == "end-to-end test sweep"
    parents = client.search_runs([exp.experiment_id], f"tags.`{names.ROLE}` = 'sweep'")
    assert len(parents) == 1
    parent = parents[0]
    assert parent.info.run_name == "e2e" and parent.info.status == "FINISHED"
    planned = json.loads(Path(client.download_artifacts(parent.info.run_id, "trials.json")).read_text())
    assert [t["trial_name"] for t in planned] == ["g-seed0", "g-seed1", "h-seed0", "h-seed1"]
    assert "spec.yaml" in {a.path for a in client.list_artifacts(parent.info.run_id)}

    runs = _children(client, "e2e")
    assert set(runs) == {"g-seed0", "g-seed1", "h-seed0", "h-seed1"}
    for name in ("g-seed0", "h-seed0", "h-seed1"):
        r = runs[name]
        assert r.info.status == "FINISHED", name
        for tag in TRIAL_TAGS:
            assert r.data.tags.get(tag), f"{name}: tag {tag} missing"
        assert r.data.tags["mlflow.parentRunId"] == parent.info.run_id
        assert r.data.tags[names.GRID_POINT] == name.split("-seed")[0]
        assert r.data.tags[names.SEED] == name.rsplit("seed", 1)[1]
        assert set(flatten(preset_config("g"))) <= set(r.data.params)
        assert {names.DATA_NAME_PARAM, names.DATA_ROOT_PARAM} <= set(r.data.params)
        assert r.data.params["model.width_multiplier"] == "0.25"
        total = int(r.data.tags[names.TOTAL_EPOCHS])
        assert _steps(client, r.info.run_id, "loss") == list(range(1, total + 1)), name
        rank1 = _steps(client, r.info.run_id, "rank1")
        assert rank1 and rank1 == sorted(set(rank1)) and rank1[-1] == total
        assert _steps(client, r.info.run_id, "mAP") == rank1
        assert _steps(client, r.info.run_id, "final_mAP") == [total]
        arts = {a.path for a in client.list_artifacts(r.info.run_id)}
        assert {"config.json", "metrics_history.json", "summary.json", "weights"} <= arts
        w = {a.path for a in client.list_artifacts(r.info.run_id, "weights")}
        swa = {"weights/swa.pt"} if name.startswith("h") else set()  # h runs SWAG, g does not
        assert w == {"weights/final.pt", "weights/best.pt"} | swa
        # where it ran, and MLflow's system metrics over its life (the UI's system-metrics chart)
        assert r.data.tags[names.NODE_IP] and r.data.tags[names.NODE_ID]
        cpu = client.get_metric_history(r.info.run_id, "system/cpu_utilization_percentage")
        assert cpu and all(0 <= m.value <= 100 * os.cpu_count() for m in cpu), name
        assert client.get_metric_history(r.info.run_id, "system/system_memory_usage_megabytes"), name
    # the SWAG phase logs its own keys at the cycle ends
    h0 = runs["h-seed0"]
    assert _steps(client, h0.info.run_id, "swag_rank1") == [5, 6]
    assert "swag_mAP" in h0.data.metrics and "cyclic_mAP" in h0.data.metrics
    import torch

    path = client.download_artifacts(h0.info.run_id, "weights/final.pt")
    obj = torch.load(path, weights_only=True)
    assert obj["kind"] == "compact-reid-weights" and obj["config"]["preset"] == "h"
    swa = torch.load(client.download_artifacts(h0.info.run_id, "weights/swa.pt"), weights_only=True)
    assert swa["which"] == "swa" and swa["model"].keys() == obj["model"].keys()


@pytest.mark.timeout(600)
def test_failing_trial_is_failed_others_finish(fault_sweep):
    client = fault_sweep["client"]
    runs = _children(client, "e2e")
    bad = runs["g-seed1"]
    assert bad.info.status == "FAILED"
    assert "injected failure" in bad.data.tags[names.ERROR_TAG]
    assert bad.data.tags[names.ATTEMPT] == "2"  # max_failures=1: tried twice, one run
    assert _steps(client, bad.info.run_id, "loss") == [1]
    assert sum(r.info.status == "FINISHED" for r in runs.values()) == 3


@pytest.mark.timeout(600)
def test_killed_worker_resumes_from_checkpoint_into_the_same_run(fault_sweep):
    client, root = fault_sweep["client"], fault_sweep["root"]
    marker = next((root / "runs").rglob("kill-g-seed0.marker"))
    assert "epoch 2" in marker.read_text()
    r = _children(client, "e2e")["g-seed0"]
    assert r.info.status == "FINISHED"
    assert r.data.tags[names.ATTEMPT] == "2"
    assert r.data.tags[names.RESUMED_FROM] == "1"  # killed before epoch 2's checkpoint
    total = int(r.data.tags[names.TOTAL_EPOCHS])
    for key in ("loss", "lr", "epoch_seconds"):
        assert _steps(client, r.info.run_id, key) == list(range(1, total + 1)), key  # no gap, no duplicate
    assert _steps(client, r.info.run_id, "rank1") == [2, 4]


@pytest.mark.timeout(600)
def test_h_starts_from_g_main_phase_after_the_producer_retry(fault_sweep):
    """Shared training: h-seed0 inherits g-seed0's 4 main-phase epochs (g was killed once and
    retried first) and trains only its 2 SWAG epochs; its run still has every epoch once."""
    client, root = fault_sweep["client"], fault_sweep["root"]
    runs = _children(client, "e2e")
    g, h = runs["g-seed0"], runs["h-seed0"]
    assert h.data.tags[names.SHARED_FROM] == f"{g.info.run_id}@4"
    assert h.data.tags[names.INHERITED_EPOCHS] == "4"
    assert h.data.tags[names.ATTEMPT] == "1" and h.data.tags[names.IDENTITY]
    marker = next((root / "runs").rglob("kill-g-seed0.marker"))
    assert h.info.start_time / 1000 > marker.stat().st_mtime  # released after the producer's retry
    for key in ("loss", "lr"):  # inherited epochs 1-4 are g's, bit for bit
        hv = {m.step: m.value for m in client.get_metric_history(h.info.run_id, key)}
        gv = {m.step: m.value for m in client.get_metric_history(g.info.run_id, key)}
        assert sorted(hv) == list(range(1, 7)) and all(hv[e] == gv[e] for e in range(1, 5)), key
    ray_rows = {t["trial"]: t for t in fault_sweep["outcome"].trials}
    assert ray_rows["h-seed0"]["epoch"] == 6
    # g-seed1 failed at every attempt: its consumer trained alone, and says why
    alone = runs["h-seed1"]
    assert alone.info.status == "FINISHED" and names.SHARED_FROM not in alone.data.tags
    assert "g-seed1 failed" in alone.data.tags[names.TRAINED_ALONE]


@pytest.mark.timeout(600)
def test_status_command(fault_sweep):
    from orchestration.sweep.trial_status import sweep_status

    st = sweep_status("e2e", runs_dir=fault_sweep["root"] / "runs")
    by = {t["trial"]: t for t in st["trials"]}
    assert by["g-seed1"]["status"] == "ERROR" and by["g-seed1"]["mlflow"] == "FAILED"
    assert by["h-seed0"]["status"] == "TERMINATED" and by["h-seed0"]["mlflow"] == "FINISHED"
    assert by["h-seed0"]["epoch"] == 6 and by["h-seed0"]["final_mAP"] is not None
    assert by["h-seed0"]["node"]  # the node's address, from Ray's result and the run's tag
    assert by["h-seed0"]["eta_s"] is None  # finished: nothing left
    from orchestration.sweep.trial_status import format_table

    table = format_table(st["trials"])
    assert table.splitlines()[0].split()[:4] == ["trial", "ray", "mlflow", "node"]
    assert "eta_s" in table.splitlines()[0]


def test_eta_from_pace() -> None:
    from orchestration.sweep.trial_status import _eta

    assert _eta(30.0, 3, 10) == pytest.approx(70.0)
    assert _eta(30.0, 0, 10) is None and _eta(30.0, 10, 10) is None and _eta(None, 3, 10) is None


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "orchestration.cli", *args]


@pytest.mark.timeout(600)
def _finished_trial_in_store(db) -> bool:
    """Poll the SQLite store read-only: an MlflowClient opened while the sweep is still
    creating the store would run the schema migration concurrently with it."""
    import sqlite3

    if not db.exists():
        return False
    try:
        con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=1)
        try:
            row = con.execute(
                "select count(*) from runs r join tags t on r.run_uuid = t.run_uuid "
                f"where t.key = '{names.ROLE}' and t.value = 'trial' and r.status = 'FINISHED'"
            ).fetchone()
        finally:
            con.close()
    except sqlite3.Error:  # tables not created yet, or locked
        return False
    return bool(row and row[0])


def test_driver_killed_then_resumed(tmp_path):
    spec = tmp_path / "dk.yaml"
    # h-seed0 starts from g-seed0's main phase: the live plan's state resumes with the sweep
    spec.write_text(_spec("dk", grid="grid:\n  preset: [g, h]", seeds="[0, 1]", max_concurrent=1))
    runs = tmp_path / "runs"
    log1 = open(tmp_path / "run.log", "w")
    proc = subprocess.Popen(
        _cli("sweep", "run", str(spec), "--runs-dir", str(runs)),
        cwd=tmp_path,
        env=_env(),
        stdout=log1,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    uri = "sqlite:///" + str((runs / "mlflow.db").resolve())
    first = None
    deadline = time.time() + 300
    try:
        while time.time() < deadline and proc.poll() is None:
            time.sleep(1)
            if not _finished_trial_in_store(runs / "mlflow.db"):
                continue
            client = MlflowClient(uri)
            exp = client.get_experiment_by_name("dk")
            done = client.search_runs(
                [exp.experiment_id], f"tags.`{names.ROLE}` = 'trial' and attributes.status = 'FINISHED'"
            )
            if done:
                first = done[0]
                break
        assert proc.poll() is None, (
            "the sweep ended before it could be killed: " + (tmp_path / "run.log").read_text()[-3000:]
        )
        assert first is not None, "no trial finished in time: " + (tmp_path / "run.log").read_text()[-3000:]
        time.sleep(2)
        # The driver alone is SIGKILLed (as the OOM killer would): the local Ray it started
        # (GCS, raylet, agents, trial workers) must end with it, through its watcher.
        tree = psutil.Process(proc.pid).children(recursive=True)
        assert any("ray::" in " ".join(p.cmdline()) for p in tree if p.is_running())
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=60)
        left, waited = wait_gone(tree, 90)  # a loaded machine schedules the watcher late
        assert left == [], [p.cmdline() for p in left]
        print(f"sweep driver SIGKILLed: {len(tree)} processes below it, {len(left)} alive {waited:.1f}s later")
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=60)
        log1.close()

    client = MlflowClient(uri)
    exp = client.get_experiment_by_name("dk")
    parent = client.search_runs([exp.experiment_id], f"tags.`{names.ROLE}` = 'sweep'")[0]
    assert parent.info.status == "RUNNING"  # the driver died before it could end it
    before = {m.step: m.value for m in client.get_metric_history(first.info.run_id, "loss")}

    res = subprocess.run(
        _cli("sweep", "resume", "dk", "--runs-dir", str(runs)),
        cwd=tmp_path,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=400,
    )
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]

    runs_by = _children(client, "dk")
    assert set(runs_by) == {"g-seed0", "g-seed1", "h-seed0", "h-seed1"}
    assert all(r.info.status == "FINISHED" for r in runs_by.values()), {n: r.info.status for n, r in runs_by.items()}
    again = runs_by[first.info.run_name]
    assert again.info.run_id == first.info.run_id
    assert again.data.tags[names.ATTEMPT] == "1"  # not trained again
    assert again.info.end_time == first.info.end_time
    assert {m.step: m.value for m in client.get_metric_history(first.info.run_id, "loss")} == before
    for r in runs_by.values():
        total = int(r.data.tags[names.TOTAL_EPOCHS])
        assert _steps(client, r.info.run_id, "loss") == list(range(1, total + 1))
    for seed in (0, 1):  # shared training survived the driver's death
        g, h = runs_by[f"g-seed{seed}"], runs_by[f"h-seed{seed}"]
        assert h.data.tags[names.SHARED_FROM] == f"{g.info.run_id}@4"
    assert client.get_run(parent.info.run_id).info.status == "FINISHED"

    st = subprocess.run(
        _cli("sweep", "status", "dk", "--runs-dir", str(runs), "--json"),
        cwd=tmp_path,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert st.returncode == 0, st.stderr
    data = json.loads(st.stdout)
    assert {t["trial"]: t["mlflow"] for t in data["trials"]} == {n: "FINISHED" for n in runs_by}


def test_tables_from_the_real_sweep(fault_sweep, tmp_path):
    """`compact-reid tables` on the store a real sweep filled: Table 3 columns from the
    recorded config.json, the failed seed shown as n/N and listed, files and parent artifacts."""
    from orchestration.cli import main

    uri = fault_sweep["outcome"].tracking_uri
    out = tmp_path / "tables"
    assert (
        main(
            ["tables", "--experiment", "e2e", "--tracking-uri", uri, "--out", str(out), "--format", "md,latex,html,csv"]
        )
        == 0
    )
    md = (out / "tables.md").read_text()
    assert "g-seed1" in md and "FAILED" in md  # listed, not averaged in
    assert "(1/2)" in md  # column g: one of two planned seeds
    t3 = {r["group"]: r for r in csv.DictReader((out / "table3.csv").open())}
    g = next(r for name, r in t3.items() if name.startswith("g"))
    assert g["paper_rank1"] and not g["rank1_diff"]  # synthetic data: the paper's figure, no Δ
    assert (out / "report.html").stat().st_size > 10_000
    assert list(out.glob("*.tex")) and list(out.glob("*.csv"))
    client = fault_sweep["client"]
    exp = client.get_experiment_by_name("e2e")
    parent = client.search_runs([exp.experiment_id], f"tags.`{names.ROLE}` = 'sweep'")[0]
    logged = {a.path for a in client.list_artifacts(parent.info.run_id, "tables")}
    assert "tables/report.html" in logged
