"""Sweeps as Slurm jobs on a real Slurm (tests/slurm_cluster.py: slurmctld and two slurmd,
n1 and n2, on this machine), submitted with `compact-reid slurm submit`.

- the smoke grid on 2 nodes: Ray saw both nodes, trials ran on both, every MLflow run
  FINISHED, Ray stopped, the job COMPLETED;
- warned mid-sweep (Slurm's USR1 to the batch shell, as `--signal=B:USR1@N` sends it), the
  job stops the sweep and requeues itself; the next run resumes it: every trial FINISHED,
  each epoch logged once, no finished trial trained again, `scontrol show job` Restarts >= 1;
- more nodes than the partition has: Slurm's refusal, the partition named;
- a node whose daemon hangs: its worker never joins, the job fails naming it, the sweep
  untouched.
"""

from __future__ import annotations

import json
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

from orchestration.mlflow_log import names  # noqa: E402

CLI = str(Path(sys.executable).with_name("compact-reid"))
DATA = "{ids: 24, train_ids: 12, cameras: 2, images_per_id: 6, seed: 0}"


def spec_text(name: str, grid: str, seeds: str, epochs: int, milestone: int, extra: str = "") -> str:
    """The smoke sweep's shape (sweeps/smoke.yaml) at tiny scale."""
    return f"""name: {name}
description: a Slurm test sweep
dataset:
  synthetic: {DATA}
grid:
  preset: {grid}
seeds: {seeds}
overrides:
  model.width_multiplier: 0.25
  model.depth_multiplier: 0.25
  schedule.epochs: {epochs}
  schedule.warmup_epochs: 1
  schedule.milestones: [{milestone}]
  data.p: 4
  data.k: 4
  data.num_workers: 0
  eval.every: 2
  eval.batch_size: 64
{extra}resources: {{cpu: 1, gpu: 0}}
max_concurrent: 2
max_failures: 1
"""


SMOKE = spec_text(
    "slurm-smoke",
    "[g, compact-1x]",
    "[0, 1]",
    4,
    3,
    "  swag.cycles: 1\n  swag.cycle_epochs: 1\n  swag.samples: 2\n  swag.bn_batches: 2\n",
)
LONG = spec_text("slurm-requeue", "[g]", "[0, 1, 2, 3]", 10, 8)


def submit(slurm, tmp_path: Path, spec: str, *options: str) -> subprocess.CompletedProcess:
    path = tmp_path / "spec.yaml"
    path.write_text(spec)
    env = slurm.env(dict(os.environ, TMPDIR=str(slurm.scratch), PYTHONUNBUFFERED="1"))
    cmd = [CLI, "slurm", "submit", str(path), "--runs-dir", str(tmp_path / "runs"), *options]
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120, cwd=tmp_path)


def job_id_of(done: subprocess.CompletedProcess) -> str:
    assert done.returncode == 0, done.stderr
    return done.stdout.split("submitted job ", 1)[1].split(":", 1)[0]


def output(tmp_path: Path, name: str, job_id: str) -> str:
    path = tmp_path / "runs" / name / "slurm" / f"slurm-{job_id}.out"
    return path.read_text(errors="replace") if path.exists() else "(no output yet)"


def record(tmp_path: Path, name: str) -> dict:
    return json.loads((tmp_path / "runs" / "storage" / name / "slurm.json").read_text())


def trial_runs(tmp_path: Path, name: str) -> tuple[MlflowClient, list]:
    client = MlflowClient(f"sqlite:///{tmp_path / 'runs' / 'mlflow.db'}")
    experiment = client.get_experiment_by_name(name)
    if experiment is None:
        return client, []
    return client, client.search_runs([experiment.experiment_id], f"tags.`{names.ROLE}` = 'trial'")


def epochs_logged(client: MlflowClient, run) -> list[int]:
    return [m.step for m in client.get_metric_history(run.info.run_id, "loss")]


@pytest.mark.timeout(600)
def test_smoke_grid_on_two_slurm_nodes(slurm, tmp_path):
    began = time.monotonic()
    done = submit(slurm, tmp_path, SMOKE, "--nodes", "2", "--cpus-per-node", "1", "--time", "15")
    job_id = job_id_of(done)
    assert f"runs/slurm-smoke/slurm/slurm-{job_id}.out" in done.stdout and f"squeue -j {job_id}" in done.stdout
    try:
        job = slurm.wait_job(job_id, ("COMPLETED", "FAILED", "CANCELLED", "TIMEOUT"), timeout=540)
    finally:
        print(output(tmp_path, "slurm-smoke", job_id)[-5000:])
    wall = time.monotonic() - began
    assert job["JobState"] == "COMPLETED" and job["ExitCode"] == "0:0", output(tmp_path, "slurm-smoke", job_id)

    saved = record(tmp_path, "slurm-smoke")
    assert saved["state"] == "FINISHED" and sorted(saved["ray_nodes"]) == ["n1", "n2"]  # Ray saw both nodes
    client, runs = trial_runs(tmp_path, "slurm-smoke")
    assert sorted(r.data.tags[names.TRIAL_NAME] for r in runs) == [
        "compact-1x-seed0",
        "compact-1x-seed1",
        "g-seed0",
        "g-seed1",
    ]
    assert all(r.info.status == "FINISHED" for r in runs)
    experiment = client.get_experiment_by_name("slurm-smoke")
    parents = client.search_runs([experiment.experiment_id], f"tags.`{names.ROLE}` = 'sweep'")
    assert [p.info.status for p in parents] == ["FINISHED"]
    ray_nodes = {r.data.tags[names.NODE_ID] for r in runs}
    assert ray_nodes == set(saved["ray_nodes"].values())  # trials ran on both nodes, and only there
    text = output(tmp_path, "slurm-smoke", job_id)
    assert "ray: every node joined: n1" in text and "the sweep is done" in text
    logs = sorted(p.name for p in (tmp_path / "runs" / "slurm-smoke" / "slurm").glob("ray-*.log"))
    assert logs == [f"ray-{job_id}-n1.log", f"ray-{job_id}-n2.log"]
    assert not (slurm.scratch / f"reid-ray-{job_id}").exists(), "Ray's temporary folders stay after a clean stop"

    def status_of(command: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [CLI, command, "status", "slurm-smoke", "--runs-dir", str(tmp_path / "runs")],
            env=slurm.env(),
            capture_output=True,
            text=True,
            timeout=120,
        )

    status = status_of("slurm")
    assert status.stdout.startswith(f"slurm: job {job_id} COMPLETED"), status.stdout + status.stderr
    sweep_status = status_of("sweep")
    assert f"slurm: job {job_id} COMPLETED" in sweep_status.stdout, sweep_status.stdout + sweep_status.stderr
    summary = json.loads((tmp_path / "runs" / "storage" / "slurm-smoke" / "summary.json").read_text())
    print(
        f"2-node Slurm smoke sweep: submit to COMPLETED {wall:.1f} s, job run time {job['RunTime']}, "
        f"sweep wall {summary['wall_seconds']:.1f} s"
    )


@pytest.mark.timeout(600)
def test_warned_job_requeues_and_the_next_run_resumes(slurm, tmp_path):
    done = submit(slurm, tmp_path, LONG, "--nodes", "2", "--cpus-per-node", "1", "--time", "15", "--max-requeues", "2")
    job_id = job_id_of(done)
    # mid-sweep: a trial FINISHED, another part-way; then Slurm's warning, as --signal=B:USR1 sends it
    deadline = time.monotonic() + 300
    while True:
        assert time.monotonic() < deadline, output(tmp_path, "slurm-requeue", job_id)[-4000:]
        _, runs = trial_runs(tmp_path, "slurm-requeue")
        finished = [r for r in runs if r.info.status == "FINISHED"]
        partway = [r for r in runs if r.info.status == "RUNNING" and 2 <= r.data.metrics.get("epoch", 0) < 8]
        if finished and partway:
            break
        time.sleep(0.5)
    warned_at = time.time()
    finished_before = {r.data.tags[names.TRIAL_NAME]: r.info.end_time for r in finished}
    slurm.run(["scancel", "--batch", "--signal=USR1", job_id])
    try:
        job = slurm.wait_job(job_id, ("COMPLETED", "FAILED", "CANCELLED", "TIMEOUT"), timeout=420)
    finally:
        print(output(tmp_path, "slurm-requeue", job_id)[-6000:])
    text = output(tmp_path, "slurm-requeue", job_id)
    assert job["JobState"] == "COMPLETED" and job["ExitCode"] == "0:0", text[-4000:]
    assert int(job["Restarts"]) >= 1  # scontrol show job: the job was requeued
    assert "the sweep stopped (exit 3); requeued" in text and "compact-reid sweep resume slurm-requeue" in text

    client, runs = trial_runs(tmp_path, "slurm-requeue")
    trials = {r.data.tags[names.TRIAL_NAME]: r for r in runs}
    assert sorted(trials) == ["g-seed0", "g-seed1", "g-seed2", "g-seed3"]  # one run per trial, none twice
    for name, run in trials.items():
        assert run.info.status == "FINISHED", name
        assert epochs_logged(client, run) == list(range(1, 11)), name  # each epoch once, none lost
    for name, end_time in finished_before.items():  # finished before the warning: not trained again
        assert trials[name].info.end_time == end_time and trials[name].data.tags[names.ATTEMPT] == "1", name
    resumed = [r for r in runs if int(r.data.tags.get(names.RESUMED_FROM, 0)) >= 1]
    assert resumed, "no trial continued from its checkpoint"
    events = [(e["event"], e["restart"]) for e in record(tmp_path, "slurm-requeue")["events"]]
    assert ("requeued", 0) in events and ("started", 1) in events and events[-1] == ("finished", 1)
    restarted = next(e for e in record(tmp_path, "slurm-requeue")["events"] if e["event"] == "started" and e["restart"])
    print(f"warned at {time.strftime('%T', time.localtime(warned_at))}, run 2 started at {restarted['at']}")


def test_more_nodes_than_the_partition_has_is_refused_by_slurm(slurm, tmp_path):
    done = submit(slurm, tmp_path, SMOKE, "--nodes", "3", "--cpus-per-node", "1", "--time", "5")
    assert done.returncode == 2
    # without EnforcePartLimits (this cluster) Slurm takes the job and holds it for good; with it, sbatch refuses
    assert "Slurm would never start job" in done.stderr and "reason Partition" in done.stderr
    assert "3 node(s) x 1 CPU(s) in partition debug (the default), which has 2 node(s)" in done.stderr
    assert not (tmp_path / "runs" / "slurm-smoke" / "slurm" / "job.sbatch").exists()


@pytest.mark.timeout(300)
def test_a_node_that_never_joins_fails_the_job_naming_it(slurm, tmp_path):
    daemon = slurm.node_daemon("n2")
    daemon.send_signal(signal.SIGSTOP)  # n2's slurmd hangs: its step never starts
    try:
        done = submit(
            slurm, tmp_path, SMOKE, "--nodes", "2", "--cpus-per-node", "1", "--time", "5", "--join-timeout", "30"
        )
        job_id = job_id_of(done)
        deadline = time.monotonic() + 180
        while record(tmp_path, "slurm-smoke").get("state") != "FAILED":
            assert time.monotonic() < deadline, output(tmp_path, "slurm-smoke", job_id)[-4000:]
            time.sleep(1)
    finally:
        daemon.send_signal(signal.SIGCONT)
    job = slurm.wait_job(job_id, ("COMPLETED", "FAILED", "CANCELLED"), timeout=120)
    text = output(tmp_path, "slurm-smoke", job_id)
    saved = record(tmp_path, "slurm-smoke")
    assert job["JobState"] == "FAILED", text[-3000:]
    assert saved["missing_nodes"] == ["n2"] and "missing n2 of n1, n2" in saved["events"][-1]["detail"]
    assert slurm.run(["squeue", "-h", "-j", job_id], check=False).stdout.strip() == ""
    assert "not every node joined Ray" in text and "missing n2" in text
    assert not (tmp_path / "runs" / "storage" / "slurm-smoke" / "sweep.json").exists()  # the sweep is untouched
    _, runs = trial_runs(tmp_path, "slurm-smoke")
    assert runs == []
