"""Real Ray nodes on this machine for the cluster tests: a head (`ray start --head`) and worker
nodes (`ray start --address`), a worker optionally in a mount namespace of its own
(`unshare --mount`) with tmpfs over folders, so that it does not see the head's copy of them,
as a node of a real cluster would not. Each node runs in a process group of its own, which
`stop` (or `kill_node`) ends; nothing is stopped by name."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Mapping, Sequence

BIN = Path(sys.executable).parent
# Token authentication (this Ray's default for `ray start`) needs one token shared by every
# process; off for all of them here, whatever ~/.ray holds: not what these tests are about.
ENV = dict(os.environ, RAY_AUTH_MODE="disabled", RAY_USAGE_STATS_ENABLED="0", OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1")
NODES = """
import json, sys, time, ray
ray.init(address=sys.argv[1], log_to_driver=False, logging_level="error")
deadline = time.monotonic() + float(sys.argv[3])
while len(alive := [n for n in ray.nodes() if n["Alive"]]) < int(sys.argv[2]) and time.monotonic() < deadline:
    time.sleep(1)
print(json.dumps([{"id": n["NodeID"], "ip": n["NodeManagerAddress"], "resources": n["Resources"],
                   "head": "node:__internal_head__" in n["Resources"]} for n in alive]))
"""
COMMON = ["--node-ip-address", "127.0.0.1", "--object-store-memory", str(100 * 1024**2), "--block"]


def mount_namespace_refusal(tmp: Path) -> str | None:
    """Why a private mount namespace with a tmpfs cannot be made here (None: it can)."""
    if shutil.which("unshare") is None:
        return "no `unshare` (util-linux) on this machine"
    target = tmp / "mnt-probe"
    target.mkdir(exist_ok=True)
    try:
        done = subprocess.run(
            ["unshare", "--mount", "--propagation", "private", "sh", "-c", f"mount -t tmpfs tmpfs {target}"],
            capture_output=True,
            text=True,
            timeout=60,
        )
    except (OSError, subprocess.TimeoutExpired) as e:
        return f"unshare failed: {e}"
    return None if done.returncode == 0 else f"unshare --mount / mount -t tmpfs not permitted: {done.stderr.strip()}"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_head(log: Path, temp_dir: Path, num_cpus: int, env: Mapping[str, str] = ENV) -> tuple[subprocess.Popen, str]:
    """(the head's process, its address), once its GCS answers."""
    port = free_port()
    cmd = [str(BIN / "ray"), "start", "--head", "--port", str(port), "--include-dashboard", "false"]
    cmd += ["--temp-dir", str(temp_dir), "--num-cpus", str(num_cpus), *COMMON]
    with open(log, "wb") as out:
        head = subprocess.Popen(cmd, env=dict(env), stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    deadline = time.monotonic() + 300
    while True:
        assert head.poll() is None, f"the head exited: {log.read_text()[-3000:]}"
        assert time.monotonic() < deadline, f"the head's GCS never answered: {log.read_text()[-3000:]}"
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return head, f"127.0.0.1:{port}"
        except OSError:
            time.sleep(1)


def start_worker(
    address: str,
    log: Path,
    num_cpus: int,
    hidden: Sequence[Path] = (),
    env: Mapping[str, str] = ENV,
    resources: Mapping[str, float] | None = None,
    then: str = "",
) -> subprocess.Popen:
    """A worker node; with `hidden`, in a mount namespace of its own where each of those
    folders is an empty tmpfs. `then`: shell commands run inside first (e.g. mkdir)."""
    cmd = [str(BIN / "ray"), "start", "--address", address, "--num-cpus", str(num_cpus), *COMMON]
    if resources:
        cmd += ["--resources", json.dumps(dict(resources))]
    with open(log, "wb") as out:
        if not hidden:
            return subprocess.Popen(cmd, env=dict(env), stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        mounts = " && ".join(f"mount -t tmpfs tmpfs {folder}" for folder in hidden)
        script = f"{mounts} {('&& ' + then) if then else ''} && exec {' '.join(_quote(c) for c in cmd)}"
        return subprocess.Popen(
            ["unshare", "--mount", "--propagation", "private", "sh", "-c", script],
            env=dict(env),
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def _quote(arg: str) -> str:
    import shlex

    return shlex.quote(arg)


def wait_for_nodes(
    address: str, count: int, env: Mapping[str, str] = ENV, timeout: float = 240, logs: Sequence[Path] = ()
) -> list[dict]:
    """The alive nodes once there are `count` of them: [{"id", "ip", "resources", "head"}].
    `logs`: the nodes' `ray start` logs, shown when a node never joins."""
    done = subprocess.run(
        [sys.executable, "-c", NODES, address, str(count), str(timeout)],
        env=dict(env),
        capture_output=True,
        text=True,
        timeout=timeout + 120,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    nodes = json.loads(done.stdout.strip().splitlines()[-1])
    shown = "".join(f"\n--- {log}:\n{log.read_text(errors='replace')[-2000:]}" for log in logs if log.exists())
    assert len(nodes) == count, f"{len(nodes)} of {count} nodes joined: {nodes}{shown}"
    return nodes


def stop(proc: subprocess.Popen) -> None:
    """End the process group this test started (its own session), never Ray by name."""
    try:
        import psutil

        kids = psutil.Process(proc.pid).children(recursive=True)
    except Exception:
        kids = []
    # `ray start --block` rarely ends within 15 s of SIGTERM here; a test has nothing to save
    for sig, wait in ((signal.SIGTERM, 3), (signal.SIGKILL, 5)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            break
        try:
            proc.wait(wait)
            break
        except subprocess.TimeoutExpired:
            pass
    for kid in kids:  # a Ray worker process that left the group
        try:
            kid.kill()
        except Exception:
            pass


def kill_node(proc: subprocess.Popen) -> None:
    """SIGKILL a node outright (its raylet and trial processes with it): a node lost."""
    import psutil

    try:
        kids = psutil.Process(proc.pid).children(recursive=True)
    except psutil.NoSuchProcess:
        kids = []
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    for kid in kids:
        try:
            kid.kill()
        except psutil.NoSuchProcess:
            pass
    proc.wait(10)
