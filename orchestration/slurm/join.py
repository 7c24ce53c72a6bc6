"""Waiting for the job's Ray: the head's address (written by its node, node.py), then every
node of the job joined. No fixed sleep: each waits for the thing itself, and a step that
ended early, or a timeout, stops the wait naming what is missing."""

from __future__ import annotations

import time
from typing import Callable, Iterable

from .errors import SlurmError
from .node import ADDRESS_FILE, node_resource
from .ports import temp_dir

POLL_S = 0.5


class JoinError(SlurmError):
    """Some of the job's nodes did not join Ray: `missing` names them."""

    def __init__(self, message: str, missing: list[str]) -> None:
        super().__init__(message)
        self.missing = missing


def pid_alive(pid: int) -> bool:
    """Running and not a zombie (an srun step that ended but its shell did not collect yet)."""
    import psutil

    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def head_address(work: str, node: str, job_id: int, timeout: float, step_pid: int | None = None) -> str:
    """HOST:PORT of the job's head, once its GCS answers (its node writes the file then)."""
    path = temp_dir(work, node, job_id) / ADDRESS_FILE
    deadline = time.monotonic() + timeout
    while True:
        if path.is_file():
            text = path.read_text().strip()
            if text:
                return text
        if step_pid is not None and not pid_alive(step_pid):
            raise SlurmError(f"Ray's head step on {node} ended before its GCS answered")
        if time.monotonic() > deadline:
            raise SlurmError(f"Ray's head on {node} did not answer within {timeout:g} s")
        time.sleep(POLL_S)


def joined(alive_nodes: Iterable[dict], expected: list[str]) -> dict[str, str]:
    """{Slurm node: Ray node id} of the expected nodes among Ray's alive nodes."""
    keys = {node_resource(name): name for name in expected}
    found: dict[str, str] = {}
    for node in alive_nodes:
        for key in node.get("Resources", {}):
            if key in keys:
                found[keys[key]] = node["NodeID"]
    return found


def wait_for_nodes(
    address: str,
    expected: list[str],
    timeout: float,
    step_pids: Iterable[int] = (),
    alive_nodes: Callable[[], list[dict]] | None = None,
    log: Callable[[str], None] = print,
) -> dict[str, str]:
    """{Slurm node: Ray node id} once every expected node is alive in the cluster at
    `address`; SlurmError naming the missing nodes when a step ended or `timeout` passed."""
    pids = list(step_pids)
    if alive_nodes is None:
        alive_nodes = _ray_nodes(address)
    deadline = time.monotonic() + timeout
    seen: dict[str, str] = {}
    while True:
        found = joined(alive_nodes(), expected)
        for name in found.keys() - seen.keys():
            log(f"ray: {name} joined ({len(found)}/{len(expected)})")
        seen = found
        if len(found) == len(expected):
            return found
        missing = [name for name in expected if name not in found]
        ended = [pid for pid in pids if not pid_alive(pid)]
        if ended or time.monotonic() > deadline:
            why = "a Ray step ended" if ended else f"after {timeout:g} s"
            raise JoinError(
                f"not every node joined Ray ({why}): missing {', '.join(missing)} of {', '.join(expected)}; "
                "see their ray-JOB-NODE.log next to the job's output",
                missing,
            )
        time.sleep(POLL_S * 2)


def _ray_nodes(address: str) -> Callable[[], list[dict]]:
    import ray

    ray.init(address=address, log_to_driver=False, logging_level="error")

    def alive() -> list[dict]:
        return [node for node in ray.nodes() if node.get("Alive")]

    return alive
