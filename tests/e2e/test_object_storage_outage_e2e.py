"""The object store down for 30 s mid-sweep: its server process killed, and restarted on the
same port 30 s later with what it held (tests/s3_server.py: a journalled moto server of its
own, since the session's server must stay up for the other tests).

Uploads are retried (Ray's checkpoints through the project's filesystem, the shared-training
checkpoint, the sweep's state), trials go on, nothing is lost (every epoch logged once, every
run FINISHED, the consumer starting from its producer's stored checkpoint), and the driver
says when the store went away and when it came back.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from s3_server import LocalS3
from sweep_yaml import tiny_sweep_yaml

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

pytest.importorskip("ray")
pytest.importorskip("mlflow")

from mlflow.tracking import MlflowClient  # noqa: E402

from orchestration.mlflow_log import names  # noqa: E402
from orchestration.storage.store import Store  # noqa: E402

OUTAGE_S = 30


@pytest.mark.timeout(1200)
def test_the_object_store_down_for_30_seconds(tmp_path: Path, monkeypatch) -> None:
    s3 = LocalS3(tmp_path / "s3", auth=False).start()
    storage = f"s3://{s3.bucket}/outage"
    env = dict(
        os.environ,
        **s3.env(),
        COMPACT_REID_CACHE=str(tmp_path / "cache"),
        COMPACT_REID_EPOCH_SLEEP="2",
        RAY_USAGE_STATS_ENABLED="0",
        PYTHONUNBUFFERED="1",
    )
    spec = tmp_path / "outage.yaml"
    spec.write_text(
        tiny_sweep_yaml(
            "outage",
            "the object store goes away for 30 s",
            grid="grid:\n  preset: [g, compact-1x]",
            seeds="[0]",
            scale=0.02,
            eval_every=5,
            extra_overrides={"swag.cycles": 2},
        )
    )
    runs = tmp_path / "runs"
    runs.mkdir()
    client = MlflowClient(f"sqlite:///{runs / 'mlflow.db'}")
    client.search_experiments()  # the schema exists before two processes open the store
    log = open(tmp_path / "sweep.log", "wb")
    sweep = subprocess.Popen(
        [sys.executable, "-m", "orchestration.sweep.testing", str(spec), "--runs-dir", str(runs), "--storage", storage],
        cwd=tmp_path,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 600
        while True:  # g two epochs in
            assert sweep.poll() is None, (tmp_path / "sweep.log").read_text()[-4000:]
            assert time.monotonic() < deadline, "the sweep never got two epochs in"
            experiment = client.get_experiment_by_name("outage")
            runs_now = client.search_runs([experiment.experiment_id]) if experiment else []
            if any(run.data.metrics.get("epoch", 0) >= 2 for run in runs_now):
                break
            time.sleep(0.5)
        s3.kill()
        time.sleep(OUTAGE_S)
        s3.start()  # same port, what it held replayed
        assert sweep.wait(900) == 0, (tmp_path / "sweep.log").read_text()[-4000:]
        output = (tmp_path / "sweep.log").read_text()

        experiment = client.get_experiment_by_name("outage")
        trials = {
            run.data.tags[names.TRIAL_NAME]: run
            for run in client.search_runs([experiment.experiment_id], f"tags.`{names.ROLE}` = '{names.ROLE_TRIAL}'")
        }
        assert sorted(trials) == ["compact-1x-seed0", "g-seed0"]
        for name, run in trials.items():
            assert run.info.status == "FINISHED", name
            total = int(run.data.tags[names.TOTAL_EPOCHS])
            steps = [m.step for m in client.get_metric_history(run.info.run_id, "loss")]
            assert steps == list(range(1, total + 1)), (name, steps)
        assert trials["compact-1x-seed0"].data.tags[names.SHARED_FROM].endswith("@7")
        assert "unreachable" in output and "back after" in output, output[-4000:]
        for key, value in s3.env().items():
            monkeypatch.setenv(key, value)
        stored = Store(storage).listing()
        assert "outage/sweep.json" in stored and any(p.startswith("_shared/") for p in stored)
        checkpoints = [p for p in stored if p.startswith("outage/") and p.endswith("checkpoint.pt")]
        assert checkpoints, sorted(stored)  # Ray's own, written through the outage
        print([line for line in output.splitlines() if "unreachable" in line or "back after" in line])
    finally:
        if sweep.poll() is None:
            sweep.kill()
        s3.stop()
