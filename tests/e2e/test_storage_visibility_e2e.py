"""A storage path (and dataset folder) that only the head can see: refused before any trial starts.

A real 2-node Ray cluster on this machine: the head (`ray start --head`) and a worker node
(`ray start --address`) started in its own mount namespace (`unshare --mount`) with a tmpfs
over the head-only folder, so the worker node's processes see that folder empty, as a node
sees a path on the head's local disk (and an empty `data/` there: a stale local copy of the
dataset folder). `compact-reid sweep run --address ... --storage <there>`
must exit non-zero naming the worker node, both folders and what to fix; the tracking store
holds no experiment and no run, and no trial started (no Ray experiment folder).
The probe itself (`probe_folders`, `sweep_folders`) is also checked without Ray.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Iterator

import pytest
from ray_nodes import BIN, ENV, mount_namespace_refusal, start_head, start_worker, stop, wait_for_nodes

from orchestration.storage import StorageURI
from orchestration.sweep.storage_check import PROBE_PREFIX, probe_folders, sweep_folders

SPEC = """
name: headonly
dataset:
  path: {data}
grid:
  preset: [g]
seeds: [0, 1]
resources: {{cpu: 1, gpu: 0}}
"""


def test_probe_folders_tells_what_a_node_sees(tmp_path: Path) -> None:
    shared = tmp_path / "shared"
    shared.mkdir()
    (shared / f"{PROBE_PREFIX}x").write_text("token-1")
    data = tmp_path / "data"
    data.mkdir()
    (data / "a.jpg").write_text("")
    ok = [(str(shared), f"{PROBE_PREFIX}x", "token-1", None), (str(data), None, None, ["a.jpg"])]
    assert probe_folders(ok) == []
    assert [p.name for p in shared.iterdir()] == [f"{PROBE_PREFIX}x"]  # its own write test is removed
    bad = [
        (str(shared), f"{PROBE_PREFIX}x", "token-2", None),
        (str(tmp_path / "nope"), "p", "t", None),
        (str(data), None, None, ["b.jpg"]),
    ]
    found = dict(probe_folders(bad))
    assert "another token" in found[0] and "FileNotFoundError" in found[1] and "other contents" in found[2]


def test_sweep_folders_are_what_trials_use(tmp_path: Path) -> None:
    local, remote = StorageURI.parse(str(tmp_path / "st")), StorageURI.parse("s3://b/p")
    generated = str(tmp_path / "st" / "_data" / "synthetic-x")  # under the storage: no folder of its own
    assert [f.path for f in sweep_folders(local, generated)] == [tmp_path / "st"]
    data = str(tmp_path / "data")
    assert [(f.path, f.writable) for f in sweep_folders(local, data)] == [
        (tmp_path / "st", True),
        (tmp_path / "data", False),
    ]
    folders = sweep_folders(remote, data)  # the URI is checked on each node with its own environment
    assert [(f.uri, f.writable) for f in folders] == [("s3://b/p", True), ("", False)] and folders[
        1
    ].path == tmp_path / "data"
    assert [f.uri for f in sweep_folders(remote, "s3://b/p/_data/synthetic-x.zip")] == ["s3://b/p"]


@pytest.fixture
def head_and_hidden_worker(tmp_path: Path) -> Iterator[tuple[str, Path, dict[str, dict]]]:
    """(address, the head-only folder, {"head"|"worker": {"id", "ip"}}). The worker node sees
    the folder as an empty tmpfs holding only an empty `data/`: a node's own local folder
    at the same path, not the head's."""
    why = mount_namespace_refusal(tmp_path)
    if why:
        pytest.skip(why)
    hidden = tmp_path / "head-only"
    hidden.mkdir()
    temp = Path(tempfile.mkdtemp(prefix="rsv", dir="/tmp"))  # short: Ray's socket paths must fit 107 chars
    procs = []
    try:
        head, address = start_head(tmp_path / "head.log", temp, num_cpus=1)
        procs.append(head)
        procs.append(start_worker(address, tmp_path / "worker.log", 1, hidden=[hidden], then=f"mkdir {hidden}/data"))
        nodes = wait_for_nodes(address, 2, logs=[tmp_path / "head.log", tmp_path / "worker.log"])
        yield address, hidden, {("head" if n["head"] else "worker"): n for n in nodes}
    finally:
        for proc in reversed(procs):
            stop(proc)
        shutil.rmtree(temp, ignore_errors=True)


@pytest.mark.e2e
@pytest.mark.slow
@pytest.mark.timeout(900)
def test_storage_only_the_head_sees_is_refused(head_and_hidden_worker, tmp_path: Path) -> None:
    address, hidden, nodes = head_and_hidden_worker
    storage, data = hidden / "ray", hidden / "data"  # storage: created by the driver, removed again
    data.mkdir()
    (data / "0001_c1s1_000001_00.jpg").write_text("")
    spec = tmp_path / "headonly.yaml"
    spec.write_text(SPEC.format(data=data))
    db = tmp_path / "mlflow.db"
    runs = tmp_path / "runs"
    t0 = time.monotonic()
    r = subprocess.run(
        [
            str(BIN / "compact-reid"),
            "sweep",
            "run",
            str(spec),
            "--address",
            address,
            "--storage",
            str(storage),
            "--tracking-uri",
            f"sqlite:///{db}",
            "--runs-dir",
            str(runs),
        ],
        cwd=tmp_path,
        env=ENV,
        capture_output=True,
        text=True,
        timeout=600,
    )
    wall = time.monotonic() - t0
    err = r.stderr
    assert r.returncode == 2 and "Traceback" not in err, err[-4000:]
    worker, head = nodes["worker"], nodes["head"]
    assert f"node {worker['ip']} (id {worker['id']})" in err and head["id"] not in err, err
    assert f"storage (--storage) {storage}: FileNotFoundError" in err, err
    assert f"dataset folder (dataset.path) {data}: sees other contents" in err, err
    assert "NFS" in err and "--storage s3://" in err, err

    # nothing created: no experiment, no run, no Ray experiment / trial folder, no probe left
    if db.exists():
        from mlflow.tracking import MlflowClient

        client = MlflowClient(f"sqlite:///{db}")
        exps = client.search_experiments()
        assert "headonly" not in [e.name for e in exps]
        assert client.search_runs([e.experiment_id for e in exps]) == []
    assert not storage.exists() and sorted(p.name for p in hidden.iterdir()) == ["data"]
    assert [p.name for p in data.iterdir()] == ["0001_c1s1_000001_00.jpg"]
    assert not (runs / "headonly").exists()
    print(f"refused in {wall:.1f}s (driver start + probe of 2 nodes):\n{err.strip()}")
