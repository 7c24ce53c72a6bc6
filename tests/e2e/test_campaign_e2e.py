"""A campaign rehearsed for real (two specs, one plan) with its driver SIGKILLed mid-way, then
`sweep resume NAME`: every trial FINISHED in its own spec's experiment, nothing that had
finished trained again, each epoch logged once, the trial-epochs trained equal to the plan's,
and both specs' tables written."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from sweep_yaml import tiny_sweep_yaml

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

pytest.importorskip("ray")
pytest.importorskip("mlflow")

from mlflow.tracking import MlflowClient  # noqa: E402

from orchestration.mlflow_log import names  # noqa: E402

BIN = Path(sys.executable).parent


def _runs(client: MlflowClient, experiment: str) -> dict:
    found = client.get_experiment_by_name(experiment)
    if found is None:
        return {}
    runs = client.search_runs([found.experiment_id], f"tags.`{names.ROLE}` = '{names.ROLE_TRIAL}'")
    return {run.data.tags[names.TRIAL_NAME]: run for run in runs}


@pytest.mark.timeout(1200)
def test_a_rehearsed_campaign_survives_its_driver_being_killed(tmp_path: Path) -> None:
    a, b = tmp_path / "a.yaml", tmp_path / "b.yaml"
    a.write_text(tiny_sweep_yaml("a", "g and h", grid="grid:\n  preset: [g, h]", seeds="[0, 1]"))
    b.write_text(tiny_sweep_yaml("b", "h under its other name", grid="grid:\n  preset: [compact-1x]", seeds="[0, 1]"))
    runs, tables = tmp_path / "runs", tmp_path / "tables"
    env = dict(os.environ, COMPACT_REID_EPOCH_SLEEP="0.5", RAY_USAGE_STATS_ENABLED="0", PYTHONUNBUFFERED="1")
    command = [str(BIN / "compact-reid"), "sweep", "run", str(a), str(b), "--rehearse", "--name", "duo"]
    command += ["--runs-dir", str(runs), "--tables-out", str(tables)]
    with open(tmp_path / "first.log", "wb") as log:
        driver = subprocess.Popen(
            command, cwd=tmp_path, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
    client = MlflowClient(f"sqlite:///{runs / 'mlflow.db'}")
    deadline = time.monotonic() + 600
    try:
        while True:  # one trial finished, another part-way
            assert driver.poll() is None, (tmp_path / "first.log").read_text()[-3000:]
            assert time.monotonic() < deadline, "the campaign never got going"
            if (runs / "mlflow.db").exists():
                trials = {**_runs(client, "a-rehearsal"), **_runs(client, "b-rehearsal")}
                finished = [n for n, r in trials.items() if r.info.status == "FINISHED"]
                going = [
                    n for n, r in trials.items() if r.info.status == "RUNNING" and r.data.metrics.get("epoch", 0) >= 2
                ]
                if finished and going:
                    break
            time.sleep(0.5)
    finally:
        os.killpg(driver.pid, signal.SIGKILL)  # the driver and its Ray, at once
        driver.wait(30)
    done_before = {n: r.info.run_id for n, r in trials.items() if r.info.status == "FINISHED"}
    first = (tmp_path / "first.log").read_text()
    assert "campaign duo-rehearsal: a-rehearsal, b-rehearsal" in first
    assert "rehearsal: 6 trial(s), the real plan at tiny scale, on generated data in Market-1501 layout" in first
    assert "synthetic dataset: " in first  # what it generated, and where

    resumed = subprocess.run(
        [str(BIN / "compact-reid"), "sweep", "resume", "duo-rehearsal", "--runs-dir", str(runs)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert resumed.returncode == 0, resumed.stdout[-3000:] + resumed.stderr[-3000:]
    a_runs, b_runs = _runs(client, "a-rehearsal"), _runs(client, "b-rehearsal")
    assert sorted(a_runs) == ["g-seed0", "g-seed1", "h-seed0", "h-seed1"]  # each spec in its own experiment
    assert sorted(b_runs) == ["compact-1x-seed0", "compact-1x-seed1"]
    for name, run in {**a_runs, **b_runs}.items():
        assert run.info.status == "FINISHED", name
        total = int(run.data.tags[names.TOTAL_EPOCHS])
        steps = [m.step for m in client.get_metric_history(run.info.run_id, "loss")]
        assert steps == list(range(1, total + 1)), (name, steps)
    for name, run_id in done_before.items():  # finished before the kill: not trained again
        run = {**a_runs, **b_runs}[name]
        assert run.info.run_id == run_id and run.data.tags[names.ATTEMPT] == "1", name
    for seed in (0, 1):  # b's compact-1x is a's h: inherited whole, trained nothing
        assert (
            b_runs[f"compact-1x-seed{seed}"].data.tags[names.INHERITED_EPOCHS]
            == b_runs[f"compact-1x-seed{seed}"].data.tags[names.TOTAL_EPOCHS]
        )
    summary = json.loads((runs / "duo-rehearsal" / "summary.json").read_text())
    assert summary["trained_epochs"] == summary["planned_epochs"], summary  # realized = planned
    assert set(summary["tables"]) == {"a-rehearsal", "b-rehearsal"}
    assert (tables / "a-rehearsal" / "tables.md").is_file() and (tables / "b-rehearsal" / "tables.md").is_file()
