"""MLflow tracking layer (orchestration/mlflow_log) against SQLite and a real `mlflow server`."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

mlflow = pytest.importorskip("mlflow")

from orchestration.mlflow_log import (  # noqa: E402
    ERROR_TAG,
    SweepTracker,
    TrackingError,
    TrialRun,
    check_tracking_uri,
    default_tracking_uri,
    names,
    normalize_tracking_uri,
)
from reid_core.config import SCHEMA_VERSION, flatten  # noqa: E402
from reid_core.presets import preset_config  # noqa: E402

TRIALS = [
    {"trial_name": "c-seed0", "grid_point": "c", "preset": "c", "seed": 0, "overrides": {}},
    {"trial_name": "c-seed1", "grid_point": "c", "preset": "c", "seed": 1, "overrides": {}},
    {"trial_name": "h-seed0", "grid_point": "h", "preset": "h", "seed": 0, "overrides": {}},
]


def _epoch(e: int, evaluate: bool = False) -> dict:
    m = {
        "epoch": e,
        "phase": "main",
        "lr": 0.03,
        "loss": 1.0 / e,
        "loss_ce": 0.5 / e,
        "loss_triplet": 0.5 / e,
        "epoch_seconds": 0.1,
        "images_per_second": 100.0,
    }
    if evaluate:
        m.update({"rank1": 0.1 * e, "rank5": 0.2, "rank10": 0.3, "mAP": 0.05 * e, "mINP": 0.01})
    return m


def _steps(client, run_id: str, key: str) -> list[int]:
    return [m.step for m in client.get_metric_history(run_id, key)]


def exercise_store(uri: str, sweep: str = "unit") -> None:
    """The whole parent/child/resume protocol against one store (SQLite or server)."""
    tracker = SweepTracker(uri)
    exp_id = tracker.experiment(sweep, "A test sweep.\nSecond line.")
    assert tracker.experiment(sweep, "A test sweep.\nSecond line.") == exp_id  # get, not create
    exp = tracker.client.get_experiment(exp_id)
    assert exp.name == sweep
    assert exp.tags["mlflow.experimentKind"] == "custom_model_development"
    assert exp.tags["mlflow.note.content"].startswith("A test sweep.")

    parent = tracker.start_parent(exp_id, sweep, "name: unit\n", TRIALS)
    prun = tracker.client.get_run(parent)
    assert prun.info.run_name == sweep and prun.info.status == "RUNNING"
    assert prun.data.tags[names.ROLE] == "sweep" and prun.data.tags[names.SWEEP] == sweep
    arts = {a.path for a in tracker.client.list_artifacts(parent)}
    assert {"spec.yaml", "trials.json"} <= arts
    local = tracker.client.download_artifacts(parent, "trials.json")
    assert json.loads(Path(local).read_text()) == TRIALS

    # A child run, epochs 1..3 logged, one log_batch call per epoch.
    trial = TRIALS[0]
    run = TrialRun.open(uri, exp_id, parent, sweep, trial, trial_id="abc_00000")
    assert run.created and run.last_step == 0
    calls = []
    orig = run.client.log_batch

    def spy(*a, **k):
        calls.append(k.get("metrics") or (a[1] if len(a) > 1 else None))
        return orig(*a, **k)

    run.client.log_batch = spy
    cfg = preset_config("c", {"seed": 0})
    params = {**flatten(cfg), names.DATA_NAME_PARAM: "generic", names.DATA_ROOT_PARAM: "/data/x"}
    run.log_params(params)
    for e in (1, 2, 3):
        assert run.log_epoch(_epoch(e, evaluate=e == 2))
    metric_calls = [c for c in calls if c]
    assert len(metric_calls) == 3  # one batched call per epoch
    run.client.log_batch = orig

    got = run.get_run()
    assert got.info.run_name == "c-seed0"
    tags = got.data.tags
    assert tags["mlflow.parentRunId"] == parent
    assert tags[names.ROLE] == "trial" and tags[names.SWEEP] == sweep
    assert tags[names.PRESET] == "c" and tags[names.COLUMN] == "c"
    assert tags[names.SEED] == "0" and tags[names.TRIAL_NAME] == "c-seed0"
    assert tags[names.GRID_POINT] == "c" and tags[names.TRIAL_ID] == "abc_00000"
    assert tags[names.SCHEMA_VERSION_TAG] == str(SCHEMA_VERSION)
    assert set(got.data.params) == set(params)
    assert got.data.params["model.block"] == "shuffle" and got.data.params["swag.enabled"] == "false"
    assert got.data.params[names.DATA_ROOT_PARAM] == "/data/x"
    assert _steps(run.client, run.run_id, "loss") == [1, 2, 3]
    assert _steps(run.client, run.run_id, "rank1") == [2]

    # Retried / resumed: the same run, the steps it has are skipped, missing ones backfilled.
    again = TrialRun.open(uri, exp_id, parent, sweep, trial, trial_id="abc_00000")
    assert again.run_id == run.run_id and not again.created and again.last_step == 3
    again.log_params(params)  # idempotent
    assert again.log_history([_epoch(1), _epoch(2, True)]) == 0
    assert not again.log_epoch(_epoch(3))
    assert again.log_history([_epoch(e, e == 4) for e in (1, 2, 3, 4)]) == 1  # epoch 4 backfilled
    assert again.log_epoch(_epoch(5))
    assert _steps(again.client, again.run_id, "loss") == [1, 2, 3, 4, 5]
    summary = {"final_rank1": 0.5, "final_mAP": 0.4, "params": 123, "train_seconds": 1.5}
    assert again.log_summary({**summary, "loss": 0.2}, 5, skip=_epoch(5).keys())
    assert not again.log_summary(summary, 5)  # once
    assert _steps(again.client, again.run_id, "final_mAP") == [5]
    assert _steps(again.client, again.run_id, "loss") == [1, 2, 3, 4, 5]  # a key of the final epoch: not twice
    again.log_json({"a": 1}, "config.json")
    again.finish()
    assert again.status == "FINISHED"

    # A failed attempt: FAILED + error tag; the retry reopens the same run.
    bad = TrialRun.open(uri, exp_id, parent, sweep, TRIALS[1], trial_id="abc_00001")
    bad.log_epoch(_epoch(1))
    bad.fail("TrainingError: boom")
    r = bad.get_run()
    assert r.info.status == "FAILED" and "boom" in r.data.tags[ERROR_TAG]
    retry = TrialRun.open(uri, exp_id, parent, sweep, TRIALS[1], trial_id="abc_00001")
    assert retry.run_id == bad.run_id and retry.last_step == 1
    r = retry.get_run()
    assert r.info.status == "RUNNING" and ERROR_TAG not in r.data.tags

    # Driver-side finalize: errored child RUNNING -> FAILED; unknown RUNNING child -> KILLED.
    stray = TrialRun.open(uri, exp_id, parent, sweep, TRIALS[2], trial_id="abc_00002")
    counts = tracker.finalize(
        parent,
        exp_id,
        {
            "c-seed0": {"state": "TERMINATED", "complete": True},
            "c-seed1": {"state": "ERROR", "error": "worker died"},
            "h-seed0": {"state": "TERMINATED", "complete": False},
        },
    )
    assert counts == {"FINISHED": 1, "FAILED": 1, "KILLED": 1}
    r = retry.get_run()
    assert r.info.status == "FAILED" and "worker died" in r.data.tags[ERROR_TAG]
    assert stray.get_run().data.tags[names.STOPPED] == "early"
    assert tracker.client.get_run(parent).info.status == "FINISHED"
    children = tracker.children(parent, exp_id)
    assert sorted(c.info.run_name for c in children) == ["c-seed0", "c-seed1", "h-seed0"]  # no duplicates

    # Every trial failed -> the parent is FAILED.
    p2 = tracker.start_parent(exp_id, sweep, "name: unit\n", TRIALS[:1])
    TrialRun.open(uri, exp_id, p2, sweep, TRIALS[0])
    tracker.finalize(p2, exp_id, {"c-seed0": {"state": "ERROR", "error": "x"}})
    assert tracker.client.get_run(p2).info.status == "FAILED"
    # A different parent run (a new sweep execution) has its own child for the same name.
    assert len(tracker.children(p2, exp_id)) == 1


def test_sqlite_store(tmp_path):
    uri = normalize_tracking_uri(None, tmp_path / "runs")
    assert uri == "sqlite:///" + str((tmp_path / "runs" / "mlflow.db").resolve())
    assert check_tracking_uri(uri) == f"SQLite file {tmp_path / 'runs' / 'mlflow.db'} (no server)"
    exercise_store(uri)
    # artifacts of a SQLite store live next to it, never in the working directory
    assert (tmp_path / "runs" / "mlartifacts" / "unit").is_dir()


def test_uri_normalisation(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert normalize_tracking_uri("sqlite:///x/m.db") == "sqlite:///" + str(tmp_path / "x" / "m.db")
    assert normalize_tracking_uri("x/m.db") == "sqlite:///" + str(tmp_path / "x" / "m.db")
    assert normalize_tracking_uri("http://127.0.0.1:5000/") == "http://127.0.0.1:5000"
    assert default_tracking_uri("runs").startswith("sqlite:////")
    with pytest.raises(TrackingError, match="file store"):
        normalize_tracking_uri("file:///tmp/mlruns")
    with pytest.raises(TrackingError):
        normalize_tracking_uri("./mlruns")


def test_unreachable_server_is_a_clear_error():
    from mlflow_server.server import find_free_port

    port = find_free_port()
    t0 = time.perf_counter()
    with pytest.raises(TrackingError, match="cannot reach the MLflow tracking server"):
        check_tracking_uri(f"http://127.0.0.1:{port}", timeout=3)
    assert time.perf_counter() - t0 < 10


def test_unusable_sqlite_path_is_a_clear_error(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    with pytest.raises(TrackingError):
        check_tracking_uri("sqlite:///" + str(blocker / "sub" / "mlflow.db"))


@pytest.mark.e2e
@pytest.mark.timeout(300)
def test_real_mlflow_server(tmp_path):
    from mlflow_server.server import start_server

    with start_server(port=0, runs_dir=tmp_path / "srv") as srv:
        assert srv.url.startswith("http://127.0.0.1:")
        # what the server says about itself: its version and store kind
        assert check_tracking_uri(srv.url) == (
            f"MLflow server {mlflow.__version__} at {srv.url}, store SqlStore, without credentials"
        )
        exercise_store(srv.url, sweep="unit_server")
        # artifacts went through the server's proxy into its artifacts destination
        assert any((tmp_path / "srv" / "mlartifacts").rglob("trials.json"))
    assert not srv.alive
    with pytest.raises(TrackingError):
        check_tracking_uri(srv.url, timeout=2)


# ---------------------------------------------------------------------------------
# Runner preflight: nothing starts when the tracking store is unreachable or state exists

PREFLIGHT_SPEC = """
name: preflight
dataset: {synthetic: {ids: 8, cameras: 2, images_per_id: 4}}
base_preset: g
overrides: {schedule.scale: 0.01}
"""


def test_run_refuses_unreachable_tracking_before_anything_starts(tmp_path):
    from mlflow_server.server import find_free_port
    from orchestration.sweep.runner import SweepOptions, run_sweep

    spec = tmp_path / "preflight.yaml"
    spec.write_text(PREFLIGHT_SPEC)
    port = find_free_port()
    with pytest.raises(TrackingError, match="cannot reach"):
        run_sweep(spec, SweepOptions(tracking_uri=f"http://127.0.0.1:{port}", runs_dir=tmp_path / "runs"))
    assert not (tmp_path / "runs").exists()  # no data generated, no sweep state, no runs
    import ray

    assert not ray.is_initialized()


def test_run_refuses_a_sweep_that_has_state(tmp_path):
    from orchestration.sweep.runner import SweepError, SweepOptions, run_sweep

    spec = tmp_path / "preflight.yaml"
    spec.write_text(PREFLIGHT_SPEC)
    state = tmp_path / "runs" / "storage" / "preflight"  # the default storage's experiment folder
    state.mkdir(parents=True)
    (state / "sweep.json").write_text("{}")
    with pytest.raises(SweepError, match="sweep resume"):
        run_sweep(spec, SweepOptions(runs_dir=tmp_path / "runs"))
