"""One node's Ray, started by the job's `srun` step on that node and stopped with it.

`ray start --block` runs under a tether (process_tether): whatever ends the step (the job's
stop, scancel, the time limit) ends Ray's processes on the node too, none left behind. Its
CPUs and GPUs are given explicitly from the allocation, never detected: Ray would count the
whole node's. A node with no GPU asked for sees none (CUDA_VISIBLE_DEVICES=""): without
--gres Slurm sets no CUDA_VISIBLE_DEVICES and Ray would take every GPU of the node.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from .errors import SlurmError
from .ports import pick_ports, temp_dir

ADDRESS_FILE = "head-address"
OBJECT_STORE_SHARE = 0.3  # of the job's memory on the node, when Slurm says how much (Ray's own share)


def node_resource(node: str) -> str:
    """The custom Ray resource that names a Slurm node: how the job tells which node joined."""
    return "slurm_node_" + re.sub(r"[^A-Za-z0-9_]", "_", node)


@dataclass(frozen=True)
class NodeSetup:
    job_id: int
    node: str
    index: int
    ip: str
    cpus: int
    gpus: int
    temp: Path
    ports: dict[str, int]
    object_store_bytes: int | None = None

    def command(self, head: bool, address: str | None = None) -> list[str]:
        """`ray start --block` for this node, every port and folder explicit."""
        ray = str(Path(sys.executable).with_name("ray"))
        cmd = [ray, "start", "--block", "--disable-usage-stats"]
        if head:
            cmd += ["--head", "--port", str(self.ports["gcs"]), "--include-dashboard", "false"]
        else:
            if not address:
                raise SlurmError("a worker node needs the head's --address")
            cmd += ["--address", address]
        cmd += [
            "--node-ip-address",
            self.ip,
            "--num-cpus",
            str(self.cpus),
            "--num-gpus",
            str(self.gpus),
            "--resources",
            json.dumps({node_resource(self.node): 1}),
            "--temp-dir",
            str(self.temp),
            "--node-manager-port",
            str(self.ports["node_manager"]),
            "--object-manager-port",
            str(self.ports["object_manager"]),
            "--dashboard-agent-listen-port",
            str(self.ports["agent_listen"]),
            "--dashboard-agent-grpc-port",
            str(self.ports["agent_grpc"]),
            "--metrics-export-port",
            str(self.ports["metrics"]),
            "--runtime-env-agent-port",
            str(self.ports["runtime_env_agent"]),
            "--min-worker-port",
            "0",  # 0: each worker binds a port the kernel picks (the default range is shared by every job)
            "--max-worker-port",
            "0",
        ]
        if self.object_store_bytes:
            cmd += ["--object-store-memory", str(self.object_store_bytes)]
        return cmd


def node_ip(interface: str | None) -> str:
    """The address Ray announces for this node: the IPv4 address of `interface`, else the
    one the node's hostname resolves to (the wrong one on hosts whose hostname maps to a
    management network: then pass --network-interface)."""
    if interface:
        import psutil

        addresses = psutil.net_if_addrs().get(interface)
        if addresses is None:
            raise SlurmError(f"--network-interface {interface}: no such interface on {socket.gethostname()}")
        for address in addresses:
            if address.family == socket.AF_INET:
                return address.address
        raise SlurmError(f"--network-interface {interface}: it has no IPv4 address on {socket.gethostname()}")
    address = socket.gethostbyname(socket.gethostname())
    if address.startswith("127."):
        print(
            f"note: {socket.gethostname()} resolves to {address}, a loopback address: nodes on other hosts cannot "
            "reach this one; pass --network-interface (e.g. ib0, eth0) if they are to join"
        )
    return address


def gpu_count(asked: int, environ: dict[str, str], log: Callable[[str], None] = print) -> tuple[int, dict[str, str]]:
    """(the GPUs Ray gets, the environment Ray runs in)."""
    env = dict(environ)
    if asked == 0:
        env["CUDA_VISIBLE_DEVICES"] = ""  # none asked, none used, whatever the node has
        return 0, env
    visible = [device for device in environ.get("CUDA_VISIBLE_DEVICES", "").split(",") if device.strip()]
    if "CUDA_VISIBLE_DEVICES" not in environ:
        log(
            f"warning: Slurm set no CUDA_VISIBLE_DEVICES for {asked} GPU(s) (no GPU confinement on this cluster?): "
            f"Ray uses GPUs 0-{asked - 1} of the node, which another job may be using"
        )
        return asked, env
    if len(visible) != asked:
        log(f"warning: asked for {asked} GPU(s) per node, Slurm gave {len(visible)} ({','.join(visible)}): using those")
    return min(asked, len(visible)), env


def cpu_count(asked: str, environ: dict[str, str]) -> int:
    """--cpus-per-node when given, else every CPU Slurm gave the job on this node."""
    if asked:
        return int(asked)
    return int(environ.get("SLURM_CPUS_ON_NODE") or os.cpu_count() or 1)


def object_store(environ: dict[str, str]) -> int | None:
    """Ray's object store from the job's memory on the node (SLURM_MEM_PER_NODE, MB): Ray's
    own default is a share of the whole node's, more than a job may have been given."""
    megabytes = environ.get("SLURM_MEM_PER_NODE", "")
    return int(int(megabytes) * 1024 * 1024 * OBJECT_STORE_SHARE) if megabytes.isdigit() else None


def setup(
    job_id: int, nodes: list[str], work: str, cpus: str, gpus: int, interface: str | None
) -> tuple[NodeSetup, dict[str, str]]:
    environ = dict(os.environ)
    node = environ.get("SLURMD_NODENAME") or socket.gethostname()
    index = nodes.index(node) if node in nodes else 0
    ports, taken = pick_ports(job_id, index)
    if taken:
        print(f"ray on {node}: ports {taken[:5]} in use (another job's Ray?): took {sorted(ports.values())[0]}+")
    gpus_for_ray, env = gpu_count(gpus, environ)
    # the job stops Ray once its sweep is done: nothing to drain (Ray waits up to 30 s otherwise)
    env.setdefault("RAY_GRACEFUL_SHUTDOWN_DRAIN_TIMEOUT_S", "0")
    return (
        NodeSetup(
            job_id=job_id,
            node=node,
            index=index,
            ip=node_ip(interface or None),
            cpus=cpu_count(cpus, environ),
            gpus=gpus_for_ray,
            temp=temp_dir(work, node, job_id),
            ports=ports,
            object_store_bytes=object_store(environ),
        ),
        env,
    )


def run_node(node_setup: NodeSetup, env: dict[str, str], head: bool, address: str | None = None) -> int:
    """Start Ray on this node and wait. The head writes its address to `<temp>/head-address`
    once its GCS answers; SIGTERM/SIGINT stop Ray (the tether sends ray start SIGTERM, then
    SIGKILLs whatever is left below it). The temporary folder goes when Ray stopped cleanly."""
    from process_tether import tethered

    node_setup.temp.mkdir(parents=True, exist_ok=True)
    where = f"{node_setup.node} ({node_setup.ip})"
    print(
        f"ray on {where}: {'head' if head else 'worker'}, {node_setup.cpus} CPU(s), {node_setup.gpus} GPU(s), "
        f"ports {node_setup.ports}, temp {node_setup.temp}",
        flush=True,
    )
    proc = subprocess.Popen(tethered(node_setup.command(head, address), grace=20), env=env)

    stopped: list[int] = []

    def stop(signum: int, frame: object) -> None:
        stopped.append(signum)
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)

    for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(signum, stop)
    written = not head
    while proc.poll() is None:
        if not written and _answers(node_setup.ip, node_setup.ports["gcs"]):
            _write_address(node_setup.temp, f"{node_setup.ip}:{node_setup.ports['gcs']}")
            written = True
        time.sleep(0.5)
    code = proc.wait()
    if stopped:  # asked to stop: the end of the job
        shutil.rmtree(node_setup.temp, ignore_errors=True)
        try:
            node_setup.temp.parent.rmdir()  # the job's folder, once no node of this host uses it
        except OSError:
            pass
        return 0
    print(f"ray on {where} exited by itself with {code}: its logs stay in {node_setup.temp}", flush=True)
    return code or 1


def _answers(host: str, port: int) -> bool:
    try:
        socket.create_connection((host, port), timeout=1).close()
        return True
    except OSError:
        return False


def _write_address(folder: Path, address: str) -> None:
    tmp = folder / f".{ADDRESS_FILE}.tmp"
    tmp.write_text(address + "\n")
    tmp.replace(folder / ADDRESS_FILE)
