"""A tracking-server outage longer than MLflow's HTTP retries, mid-sweep, loses nothing.

A real `compact-reid server` is SIGKILLed while a trial trains (slowed to a few seconds an
epoch by the test-only COMPACT_REID_EPOCH_SLEEP hook) and restarted on the same port and
store a minute later. The trial does not fail; the epochs it trained meanwhile are
replayed in order: every epoch exactly once, the run FINISHED and tagged as replayed.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

pytest.importorskip("ray")
pytest.importorskip("mlflow")

from mlflow.tracking import MlflowClient  # noqa: E402

from mlflow_server.server import ServerError, find_free_port, wait_healthy  # noqa: E402
from orchestration.mlflow_log import names  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
# The queue / quick-probe / replay path starts once the trial's 3 HTTP retries run out: MLflow's
# backoff (factor 2, jitter <= 1 s) sleeps 0 + 4 + 8 s, so within about 15 s. 45 s is three times
# that window: several epochs (about 6 at 3 s of sleep + training each) are trained while the
# server is down, queued and replayed in order. A longer outage exercises nothing more.
OUTAGE_S = 45
EPOCH_SLEEP_S = 3

SPEC = """
name: outage
description: a trial outliving a tracking-server outage
dataset:
  synthetic: {ids: 24, train_ids: 12, cameras: 2, images_per_id: 6, seed: 0}
grid:
  preset: [g]
seeds: [0]
overrides:
  model.width_multiplier: 0.25
  model.depth_multiplier: 0.25
  schedule.scale: 0.065  # 23 epochs: 20 after the kill at epoch 3, at least 60 s (> the outage)
  data.p: 4
  data.k: 4
  data.num_workers: 0
  eval.every: 10
  eval.batch_size: 64
resources: {cpu: 1, gpu: 0}
max_concurrent: 1
max_failures: 0
"""


def _server(port: int, root: Path) -> subprocess.Popen:
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "orchestration.cli",
            "server",
            "--port",
            str(port),
            "--runs-dir",
            str(root / "store"),
            "--workers",
            "1",
        ],
        cwd=REPO,
        stdout=open(root / f"server-{time.time():.0f}.log", "wb"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


def _kill_tree(proc: subprocess.Popen) -> None:
    """SIGKILL `compact-reid server` and the `mlflow server` it runs in its own session."""
    import psutil

    try:
        kids = psutil.Process(proc.pid).children(recursive=True)
    except psutil.NoSuchProcess:
        kids = []
    for p in [psutil.Process(proc.pid), *kids] if proc.poll() is None else kids:
        try:
            os.killpg(os.getpgid(p.pid), signal.SIGKILL)
        except (ProcessLookupError, psutil.NoSuchProcess):
            pass
    proc.wait(30)


def _epochs(client: MlflowClient) -> int:
    exp = client.get_experiment_by_name("outage")
    if exp is None:
        return 0
    runs = client.search_runs([exp.experiment_id], f"tags.`{names.ROLE}` = 'trial'")
    return int(runs[0].data.metrics.get("epoch", 0)) if runs else 0


@pytest.mark.timeout(900)
def test_trial_survives_a_tracking_outage(tmp_path: Path) -> None:
    port = find_free_port()
    url = f"http://127.0.0.1:{port}"
    spec = tmp_path / "outage.yaml"
    spec.write_text(SPEC)
    server = _server(port, tmp_path)
    wait_healthy(url, 120, server)
    env = dict(
        os.environ,
        COMPACT_REID_EPOCH_SLEEP=str(EPOCH_SLEEP_S),
        RAY_USAGE_STATS_ENABLED="0",
        PYTHONUNBUFFERED="1",
        MLFLOW_SYSTEM_METRICS_SAMPLING_INTERVAL="2",
    )
    env.pop("MLFLOW_HTTP_REQUEST_MAX_RETRIES", None)  # the trial's own retry policy is what is tested
    log = open(tmp_path / "sweep.log", "wb")
    sweep = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "orchestration.sweep.testing",
            str(spec),
            "--tracking-uri",
            url,
            "--runs-dir",
            str(tmp_path / "runs"),
        ],
        cwd=REPO,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    client = MlflowClient(url)
    try:
        deadline = time.monotonic() + 400
        while _epochs(client) < 3:
            assert sweep.poll() is None, (tmp_path / "sweep.log").read_text()[-3000:]
            assert time.monotonic() < deadline, "the trial never reached epoch 3"
            time.sleep(2)
        _kill_tree(server)  # the server dies without a word
        with pytest.raises(ServerError):
            wait_healthy(url, 3)
        killed_at = time.monotonic()
        time.sleep(OUTAGE_S)
        assert sweep.poll() is None, (
            "the sweep ended during the outage:\n" + (tmp_path / "sweep.log").read_text()[-3000:]
        )
        server = _server(port, tmp_path)
        wait_healthy(url, 120, server)
        outage = time.monotonic() - killed_at
        assert sweep.wait(600) == 0, (tmp_path / "sweep.log").read_text()[-4000:]

        exp = client.get_experiment_by_name("outage")
        (run,) = client.search_runs([exp.experiment_id], f"tags.`{names.ROLE}` = 'trial'")
        total = int(run.data.tags[names.TOTAL_EPOCHS])
        assert run.info.status == "FINISHED"
        for key in ("loss", "lr", "epoch_seconds"):
            steps = [m.step for m in client.get_metric_history(run.info.run_id, key)]
            assert steps == list(range(1, total + 1)), (key, steps)  # no gap, no duplicate
        replayed = int(run.data.tags[names.REPLAYED_EPOCHS])
        # about (OUTAGE_S - the retry window) / (EPOCH_SLEEP_S + an epoch's training) epochs trained while down
        assert replayed >= 3, replayed
        # The trial meets the outage at its next log call and sees the server back at its next
        # probe, each up to an epoch (sleep + training, slower on a loaded machine) after the fact.
        seen = float(run.data.tags[names.OUTAGE_SECONDS])
        assert OUTAGE_S - 20 <= seen <= outage + 20, (seen, outage)
        assert run.data.tags[names.ATTEMPT] == "1"  # the trial never failed
        # the trial's own lines go to its log file (the console keeps one line per start and end)
        (trial_log,) = (tmp_path / "runs").glob("**/logs/*.log")
        text = trial_log.read_text()
        assert "tracking store unreachable" in text and "replayed" in text, text[-3000:]
        print(
            f"outage {outage:.0f}s (the trial's tag: {seen:.0f}s), {replayed} epochs replayed of {total}, "
            f"gaps 0, duplicates 0"
        )
    finally:
        if sweep.poll() is None:
            sweep.kill()
        _kill_tree(server)


@pytest.mark.timeout(600)
def test_epoch_log_queues_replays_and_bounds(tmp_path: Path) -> None:
    """EpochLog against a real server that is stopped and restarted on the same store."""
    from mlflow_server.server import start_server
    from orchestration.mlflow_log import SweepTracker, TrialRun
    from orchestration.mlflow_log.outage import EpochLog
    from orchestration.mlflow_log.store import TrackingError

    port = find_free_port()
    store = f"sqlite:///{tmp_path / 'm.db'}"

    def serve():
        return start_server(
            port=port, backend_store_uri=store, artifacts_destination=str(tmp_path / "art"), runs_dir=tmp_path
        )

    trial = {"trial_name": "g-seed0", "grid_point": "g", "preset": "g", "seed": 0, "overrides": {}}
    msgs: list[str] = []
    with serve() as srv:
        tracker = SweepTracker(srv.url)
        exp = tracker.experiment("outage-unit")
        parent = tracker.start_parent(exp, "outage-unit", "name: outage-unit\n", [trial])
        run = TrialRun.open(srv.url, exp, parent, "outage-unit", trial)
        log = EpochLog(run, msgs.append)
        bounded = EpochLog(run, msgs.append, max_pending=2)
        assert log.epoch({"epoch": 1, "loss": 1.0})
    # server gone (same port and store come back below)
    first_failed_call = time.time()
    assert not log.epoch({"epoch": 2, "loss": 0.5})
    t0 = time.monotonic()
    assert not log.epoch({"epoch": 3, "loss": 0.4}) and not log.epoch({"epoch": 4, "loss": 0.3})
    assert time.monotonic() - t0 < 30  # while down: quick probes, no retry storms
    assert len(log.pending) == 3 and any("unreachable" in m for m in msgs)
    assert not bounded.epoch({"epoch": 9, "loss": 0.1}) and not bounded.epoch({"epoch": 10, "loss": 0.1})
    with pytest.raises(TrackingError, match="max_pending=2"):
        bounded.epoch({"epoch": 11, "loss": 0.1})
    with serve() as srv:
        back = time.time()
        assert log.epoch({"epoch": 5, "loss": 0.2})
        client = MlflowClient(srv.url)
        assert [m.step for m in client.get_metric_history(run.run_id, "loss")] == [1, 2, 3, 4, 5]
        tags = client.get_run(run.run_id).data.tags
        assert tags[names.REPLAYED_EPOCHS] == "4"
        # counted from the first failed call, its HTTP retries included
        assert float(tags[names.OUTAGE_SECONDS]) >= back - first_failed_call - 0.5
