"""A sweep on Ray nodes that share no folder: everything another node reads is in S3.

A real 3-node Ray cluster on this machine: the head (the driver's node, no CPU for trials) and
two worker nodes, each in a mount namespace of its own with an empty tmpfs over the test's
folder, so neither sees the driver's runs folder, the tracking server's files, the staging
cache of the other, or anything else the test writes. The storage is a real S3 endpoint
(moto's server) reached with the standard variables, the tracking server keeps its
artifacts there too. The sweep is the smoke grid (g and compact-1x, 2 seeds each):
- compact-1x starts from g's main phase: the checkpoint g stored in S3, on another node or
  on a fresh process of the same one (tags SHARED_FROM / INHERITED_EPOCHS);
- a worker node is killed mid-trial: its trial resumes on the other node from the last
  checkpoint Ray stored in S3, into the same MLflow run;
- every run ends FINISHED with each epoch exactly once;
- with the local runs folder deleted, `sweep status` (from the storage URI) and `tables` (from
  MLflow, artifacts from S3) still work, as they would on another machine.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import pytest
from ray_nodes import BIN, ENV, kill_node, mount_namespace_refusal, start_head, start_worker, stop, wait_for_nodes
from sweep_yaml import tiny_sweep_yaml

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

pytest.importorskip("ray")
pytest.importorskip("mlflow")

from mlflow.tracking import MlflowClient  # noqa: E402

from mlflow_server.server import start_server  # noqa: E402
from orchestration.mlflow_log import names  # noqa: E402
from orchestration.storage.store import Store  # noqa: E402

WORKERS = ("worker_a", "worker_b")


def _trials(client: MlflowClient, name: str) -> dict:
    experiment = client.get_experiment_by_name(name)
    if experiment is None:
        return {}
    runs = client.search_runs([experiment.experiment_id], f"tags.`{names.ROLE}` = '{names.ROLE_TRIAL}'")
    return {r.data.tags[names.TRIAL_NAME]: r for r in runs}


def _cli(*args: str, env: dict, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(BIN / "compact-reid"), *args], env=env, cwd=cwd, capture_output=True, text=True, timeout=600
    )


@pytest.mark.timeout(1500)
def test_a_sweep_on_nodes_that_share_no_folder(s3, tmp_path: Path, monkeypatch) -> None:
    why = mount_namespace_refusal(tmp_path)
    if why:
        pytest.skip(why)
    for key, value in s3.env().items():
        monkeypatch.setenv(key, value)  # the tracking server's (it writes the artifacts)
    storage = f"s3://{s3.bucket}/{tmp_path.name}"
    env = {**ENV, **s3.env(), "COMPACT_REID_CACHE": str(tmp_path / "cache"), "COMPACT_REID_EPOCH_SLEEP": "1"}
    spec = tmp_path / "nofs.yaml"
    spec.write_text(
        tiny_sweep_yaml(
            "nofs",
            "nodes that share no folder",
            grid="grid:\n  preset: [g, compact-1x]",
            scale=0.02,  # g: 7 epochs; compact-1x: g's 7, then 2 one-epoch SWAG cycles
            eval_every=5,
            extra_overrides={"swag.cycles": 2},
            max_failures=2,
        )
    )
    temp = Path(tempfile.mkdtemp(prefix="ros", dir="/tmp"))  # short: Ray's socket paths must fit 107 chars
    nodes, sweep = [], None
    with start_server(
        port=0,
        backend_store_uri=f"sqlite:///{tmp_path / 'server' / 'mlflow.db'}",
        artifacts_destination=f"{storage}/mlflow",
        runs_dir=tmp_path / "server",
    ) as server:
        try:
            head, address = start_head(tmp_path / "head.log", temp, num_cpus=0, env=env)
            nodes.append(head)
            workers, logs = {}, [tmp_path / "head.log"]
            for name in WORKERS:  # one at a time: two `ray start` on one machine at once can race for ports
                logs.append(tmp_path / f"{name}.log")
                workers[name] = start_worker(address, logs[-1], 1, hidden=[tmp_path], env=env, resources={name: 1})
                nodes.append(workers[name])
                joined = wait_for_nodes(address, len(logs), logs=logs)
            ids = {n["id"]: next((w for w in WORKERS if w in n["resources"]), "head") for n in joined}
            node_of = {kind: node_id for node_id, kind in ids.items()}
            log = open(tmp_path / "sweep.log", "wb")
            command = ["sweep", "run", str(spec), "--address", address, "--storage", storage]
            command += ["--tracking-uri", server.url, "--runs-dir", str(tmp_path / "runs")]
            sweep = subprocess.Popen(
                [str(BIN / "compact-reid"), *command], cwd=tmp_path, env=env, stdout=log, stderr=log
            )
            client = MlflowClient(server.url)
            deadline = time.monotonic() + 900
            while True:  # a trial a few epochs into its run on worker_a
                assert sweep.poll() is None, (tmp_path / "sweep.log").read_text()[-4000:]
                assert time.monotonic() < deadline, "never saw a trial a few epochs in on worker_a"
                victim = next(
                    (
                        run
                        for run in _trials(client, "nofs").values()
                        if run.info.status == "RUNNING"
                        and run.data.tags.get(names.NODE_ID) == node_of["worker_a"]
                        and run.data.metrics.get("epoch", 0) >= 2
                    ),
                    None,
                )
                if victim is not None:
                    break
                time.sleep(1)
            killed_at = int(victim.data.metrics["epoch"])
            kill_node(workers["worker_a"])  # the node dies with its trial's process
            assert sweep.wait(900) == 0, (tmp_path / "sweep.log").read_text()[-4000:]
            sweep_log = (tmp_path / "sweep.log").read_text()

            trials = _trials(client, "nofs")
            assert sorted(trials) == ["compact-1x-seed0", "compact-1x-seed1", "g-seed0", "g-seed1"], sweep_log[-3000:]
            for name, run in trials.items():
                assert run.info.status == "FINISHED", name
                total = int(run.data.tags[names.TOTAL_EPOCHS])
                steps = [m.step for m in client.get_metric_history(run.info.run_id, "loss")]
                assert steps == list(range(1, total + 1)), (name, steps)  # each epoch once, none missing
                assert ids[run.data.tags[names.NODE_ID]] in WORKERS  # trials ran on the nodes without the folder
            moved = trials[victim.data.tags[names.TRIAL_NAME]]
            assert int(moved.data.tags[names.ATTEMPT]) >= 2
            assert 1 <= int(moved.data.tags[names.RESUMED_FROM]) <= killed_at  # from its S3 checkpoint
            assert moved.data.tags[names.NODE_ID] == node_of["worker_b"]
            for seed in (0, 1):  # from g's main phase, through S3
                consumer = trials[f"compact-1x-seed{seed}"]
                assert consumer.data.tags[names.INHERITED_EPOCHS] == "7"
                assert consumer.data.tags[names.SHARED_FROM] == f"{trials[f'g-seed{seed}'].info.run_id}@7"
            stored = Store(storage).listing()
            assert any(path.startswith("_shared/main-") and path.endswith("epoch-00007.pt") for path in stored)
            assert any(path.startswith("_data/synthetic-") and path.endswith(".zip") for path in stored)

            # another machine: the name, the storage URI and the tracking URI; no local folder
            shutil.rmtree(tmp_path / "runs")
            status = _cli(
                "sweep",
                "status",
                "nofs",
                "--storage",
                storage,
                "--runs-dir",
                str(tmp_path / "elsewhere"),
                "--json",
                env=env,
                cwd=tmp_path,
            )
            assert status.returncode == 0, status.stderr
            assert '"FINISHED": 4' in status.stdout
            tables = _cli(
                "tables",
                "--experiment",
                "nofs",
                "--tracking-uri",
                server.url,
                "--out",
                str(tmp_path / "tables"),
                "--no-log",
                env=env,
                cwd=tmp_path,
            )
            assert tables.returncode == 0, tables.stderr[-3000:]
            assert "compact-1x" in (tmp_path / "tables" / "table3.csv").read_text()
            print(
                f"victim {moved.info.run_name} killed at epoch {killed_at} on worker_a, resumed from "
                f"{moved.data.tags[names.RESUMED_FROM]} on worker_b; S3 objects: {len(stored)}"
            )
        finally:
            if sweep is not None and sweep.poll() is None:
                sweep.kill()
            for node in reversed(nodes):
                stop(node)
            shutil.rmtree(temp, ignore_errors=True)
