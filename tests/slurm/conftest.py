"""The Slurm cluster of the Slurm end-to-end tests (tests/slurm_cluster.py): one per module,
torn down with no daemon, job step, Ray process or job left."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import psutil
import pytest


@pytest.fixture(scope="module")
def slurm(tmp_path_factory):
    from processes import wait_gone
    from slurm_cluster import SlurmCluster, refusal

    why = refusal()
    if why:
        pytest.skip(f"no Slurm here: {why}")
    root = tmp_path_factory.mktemp("slurm")
    # the jobs' TMPDIR: short, so that Ray's temporary folders (and sockets) go under it
    scratch = Path(tempfile.mkdtemp(prefix="slurmtest-", dir="/tmp"))
    cluster = SlurmCluster(root).start()
    cluster.scratch = scratch
    try:
        yield cluster
    finally:
        started = cluster.descendants()
        queue = cluster.run(["squeue", "-h", "-o", "%i %T"], check=False).stdout.strip()
        cluster.stop()
        left, _ = wait_gone(started, timeout=60)
        escaped = [p for p in psutil.process_iter(["cmdline"]) if str(scratch) in " ".join(p.info["cmdline"] or [])]
        shutil.rmtree(scratch, ignore_errors=True)
        assert not left, f"left behind: {[(p.pid, p.name()) for p in left]}"
        assert not escaped, f"Ray processes left: {[(p.pid, p.info['cmdline'][:2]) for p in escaped]}"
        assert not queue, f"jobs left in the queue: {queue}"
        print(f"slurm teardown: jobs at the end: {queue or 'none'}; {len(started)} process(es) all gone")
