"""A sweep on a real 2-node Ray cluster on this machine (head + worker node, loopback,
`ray.cluster_utils.Cluster`), joined with `--address`, with the worker node killed mid-sweep.

- trials spread over both nodes (each node offers 1 CPU, each trial asks for 1);
- the worker node is removed while its trial trains: that trial is rescheduled on the
  head and resumes from its last checkpoint into the same MLflow run;
- every MLflow run ends FINISHED with each epoch exactly once; the finished ones are not
  re-run; the run count equals the planned count.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from sweep_yaml import tiny_sweep_yaml

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

ray = pytest.importorskip("ray")
pytest.importorskip("mlflow")

from mlflow.tracking import MlflowClient  # noqa: E402

from orchestration.mlflow_log import names  # noqa: E402

REPO = Path(__file__).resolve().parents[2]


def _trials(client: MlflowClient) -> list:
    exp = client.get_experiment_by_name("cluster")
    if exp is None:
        return []
    return client.search_runs([exp.experiment_id], f"tags.`{names.ROLE}` = 'trial'")


@pytest.mark.timeout(1500)
def test_sweep_survives_losing_a_node(tmp_path: Path) -> None:
    from ray.cluster_utils import Cluster

    cluster = Cluster(
        initialize_head=True,
        head_node_args={"num_cpus": 1, "include_dashboard": False, "object_store_memory": 200 * 1024 * 1024},
    )
    worker = cluster.add_node(num_cpus=1, object_store_memory=200 * 1024 * 1024)
    cluster.wait_for_nodes()
    head_id, worker_id = cluster.head_node.node_id, worker.node_id
    spec = tmp_path / "cluster.yaml"
    spec.write_text(
        tiny_sweep_yaml(
            "cluster",
            "a sweep over two Ray nodes, one of which dies",
            seeds="[0, 1, 2]",
            scale=0.02,  # 7 epochs: the worker's trial is killed at epoch 3 or later
            eval_every=5,
            max_failures=2,
        )
    )
    runs = tmp_path / "runs"
    env = dict(os.environ, COMPACT_REID_EPOCH_SLEEP="2", RAY_USAGE_STATS_ENABLED="0", PYTHONUNBUFFERED="1")
    runs.mkdir()
    client = MlflowClient(f"sqlite:///{runs / 'mlflow.db'}")
    client.search_experiments()  # the store's schema exists before two processes open it
    log = open(tmp_path / "sweep.log", "wb")
    sweep = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "orchestration.sweep.testing",
            str(spec),
            "--address",
            cluster.address,
            "--runs-dir",
            str(runs),
        ],
        cwd=REPO,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        # both nodes busy, and the worker's trial a few epochs in
        deadline = time.monotonic() + 600
        while True:
            assert sweep.poll() is None, (tmp_path / "sweep.log").read_text()[-4000:]
            assert time.monotonic() < deadline, "never saw a trial on each node"
            running = {
                r.data.tags.get(names.NODE_ID): r
                for r in _trials(client)
                if r.info.status == "RUNNING" and r.data.metrics.get("epoch", 0) >= 1
            }
            on_worker = running.get(worker_id)
            if head_id in running and on_worker is not None and on_worker.data.metrics.get("epoch", 0) >= 3:
                break
            time.sleep(1)
        victim = on_worker.data.tags[names.TRIAL_NAME]
        killed_at_epoch = int(on_worker.data.metrics["epoch"])
        cluster.remove_node(worker, allow_graceful=False)  # the node dies with its trial's process
        assert sweep.wait(900) == 0, (tmp_path / "sweep.log").read_text()[-4000:]

        trials = {r.data.tags[names.TRIAL_NAME]: r for r in _trials(client)}
        assert sorted(trials) == ["g-seed0", "g-seed1", "g-seed2"]  # run count = planned, no duplicate
        for name, r in trials.items():
            assert r.info.status == "FINISHED", name
            total = int(r.data.tags[names.TOTAL_EPOCHS])
            steps = [m.step for m in client.get_metric_history(r.info.run_id, "loss")]
            assert steps == list(range(1, total + 1)), (name, steps)  # each epoch exactly once, no gap
        moved = trials[victim]
        assert int(moved.data.tags[names.ATTEMPT]) >= 2
        resumed = int(moved.data.tags[names.RESUMED_FROM])
        assert 1 <= resumed <= killed_at_epoch  # from its last checkpoint, not from scratch
        assert moved.data.tags[names.NODE_ID] == head_id  # rescheduled on the surviving node
        for name, r in trials.items():
            if name != victim and r.data.tags[names.NODE_ID] == head_id:
                assert r.data.tags[names.ATTEMPT] == "1"  # nothing finished was re-run
        print(
            f"victim {victim} killed at epoch {killed_at_epoch}, resumed from {resumed}; "
            f"nodes: {sorted({r.data.tags[names.NODE_ID][:8] for r in trials.values()})}"
        )
    finally:
        if sweep.poll() is None:
            sweep.kill()
        cluster.shutdown()
