"""Ray's ports and temporary folder for one node of one job, so that two jobs sharing a
node (or, in the tests, several Slurm nodes on one host) do not collide.

Each (job, node) gets a block of ports derived from the job id and the node's index in the
job; a block with a port already taken is skipped for the next candidate (another job's Ray
got there first). Ray's worker processes bind ports the kernel picks (`--min-worker-port 0`).
The head's actual address is written to a file its job's shell reads (join.py).
"""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Callable

FIRST_PORT = 20000
SLOTS = 4000  # blocks of BLOCK ports: 20000-51999
NAMES = ("gcs", "node_manager", "object_manager", "agent_listen", "agent_grpc", "metrics", "runtime_env_agent")
BLOCK = 8
STRIDE = 97  # the next candidate block: away from the blocks of this job's other nodes
TRIES = 40
# Ray's Unix sockets live 64 characters below it (session_<date>_<pid>/sockets/plasma_store)
# and a socket's path holds 107
MAX_TEMP_LEN = 43


def slot_of(job_id: int, node_index: int) -> int:
    """The first candidate block of a (job, node): 64 node indices per job before two of the
    same job meet, and jobs 125 ids apart before two jobs' same index meet."""
    return (job_id * 64 + node_index) % SLOTS


def ports_at(slot: int) -> dict[str, int]:
    base = FIRST_PORT + (slot % SLOTS) * BLOCK
    return {name: base + offset for offset, name in enumerate(NAMES)}


def port_is_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind(("0.0.0.0", port))
        except OSError:
            return False
    return True


def pick_ports(
    job_id: int, node_index: int, is_free: Callable[[int], bool] = port_is_free
) -> tuple[dict[str, int], list[int]]:
    """(this node's ports, the ports found taken on the way): the first block, from the
    derived one on, whose every port is free."""
    taken: list[int] = []
    slot = slot_of(job_id, node_index)
    for attempt in range(TRIES):
        ports = ports_at(slot + attempt * STRIDE)
        busy = [port for port in ports.values() if not is_free(port)]
        if not busy:
            return ports, taken
        taken += busy
    raise OSError(f"no free block of {BLOCK} ports for job {job_id}, node {node_index} (taken: {taken[:10]}...)")


def temp_dir(work: str | Path, node: str, job_id: int) -> Path:
    """Ray's temporary folder on this node: `<work>/<node>` (work is per job), or, when that
    is too long for Ray's Unix sockets, /tmp/reid-ray-<job>/<node>."""
    folder = Path(work) / node
    if len(str(folder)) > MAX_TEMP_LEN:
        folder = Path("/tmp") / f"reid-ray-{job_id}" / node
    return folder
