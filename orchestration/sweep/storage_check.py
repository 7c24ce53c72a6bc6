"""Preflight: every node of the Ray cluster can use the sweep's storage and data.

A trial writes its checkpoints into the storage, and reads its dataset, from the node it
runs on. A local path that only the head has fails each trial placed elsewhere, one by one,
after the sweep has created its MLflow runs. So before anything is created the driver writes
a probe file with a random token into each folder that trials write to, and one tiny
zero-CPU task pinned to each alive node reads it back and writes a file of its own beside it;
a dataset folder (trials only read it) is compared by its listing. A storage URI (s3://,
gs://) is checked on each node with that node's own environment (endpoint, credentials):
reachable, bucket, credentials, write permission (orchestration/storage/check.py).
"""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from ..storage import StorageURI
from .errors import SweepError

PROBE_PREFIX = ".compact-reid-probe-"
TIMEOUT_S = 120.0  # a node's first task may have to start a worker process on a loaded machine
LISTING_MAX = 200  # entries compared for a read-only folder: enough to tell two folders apart


@dataclass(frozen=True)
class Folder:
    path: Path | None  # a local folder, or None for a storage URI
    what: str  # named in the error, e.g. "storage (--storage)"
    writable: bool  # trials write there: token probe + write test; else the listing is compared
    fix: str  # what the user changes
    uri: str = ""  # a storage URI every node must reach with its own environment


def sweep_folders(root: StorageURI, data_source: str) -> list[Folder]:
    """What trials use on whatever node they land: the storage (a local folder, or a URI each
    node must reach), and a user's local dataset folder when it is not under the storage."""
    folders = []
    if root.is_local:
        folders.append(
            Folder(
                Path(root.path),
                "storage (--storage)",
                True,
                "pass --storage on a filesystem every node mounts at the same path (e.g. NFS), "
                "or --storage s3://BUCKET/PREFIX",
            )
        )
    else:
        folders.append(
            Folder(
                None,
                f"storage {root.display}",
                True,
                "give every node the endpoint and credentials (AWS_ENDPOINT_URL, AWS_ACCESS_KEY_ID, "
                "AWS_SECRET_ACCESS_KEY in the environment `ray start` runs in)",
                uri=str(root),
            )
        )
    local_data = "://" not in data_source
    if data_source and local_data and not (root.is_local and Path(data_source).is_relative_to(root.path)):
        folders.append(
            Folder(
                Path(data_source),
                "dataset folder (dataset.path)",
                False,
                "put the dataset on a filesystem every node mounts at the same path (e.g. NFS), "
                "copy it to that same path on every node, or give dataset.path as s3://... (staged on each node)",
            )
        )
    return folders


def check_nodes_see(folders: list[Folder], log: Callable[[str], None] = print, timeout: float = TIMEOUT_S) -> None:
    """Refuse (SweepError naming the nodes, the folder and what to fix) unless every alive
    node of the connected Ray cluster sees `folders` as the driver does. A cluster that is
    only the driver's own node is not probed. A folder the driver must create is removed
    again when the check fails."""
    import ray
    import ray.util.client

    folders = [f for f in folders if f.uri or f.writable or f.path.is_dir()]  # a missing dataset: prepare_data's
    nodes = [nd for nd in ray.nodes() if nd.get("Alive")]
    own = ray.get_runtime_context().get_node_id()
    client = ray.util.client.ray.is_connected()  # a Ray Client driver's disk is no node's disk at all
    if not folders or (not client and [nd["NodeID"] for nd in nodes] == [own]):
        return
    created: list[Path] = []
    probes: list[Path] = []
    try:
        expected = []
        for f in folders:
            if f.uri:
                expected.append((f.uri, None, None, None))
            elif f.writable:
                created += _mkdirs(f.path)
                token = secrets.token_hex(16)
                probe = f.path / f"{PROBE_PREFIX}{token[:8]}"
                tmp = probe.with_name(probe.name + ".tmp")
                tmp.write_text(token)
                tmp.replace(probe)
                probes.append(probe)
                expected.append((str(f.path), probe.name, token, None))
            else:
                expected.append((str(f.path), None, None, _listing(f.path)))
        problems = _run_on_nodes(nodes, expected, timeout)
    except BaseException:
        _cleanup(probes, created)
        raise
    _cleanup(probes, [] if not problems else created)
    if problems:
        raise SweepError(_message(folders, problems, len(nodes)))
    log(f"storage check: {len(nodes)} Ray node(s) see " + ", ".join(f.uri or str(f.path) for f in folders))


def _run_on_nodes(
    nodes: list[dict[str, Any]], expected: list[tuple[str, str | None, str | None, list[str] | None]], timeout: float
) -> dict[tuple[str, str], list[tuple[int, str]]]:
    """(node IP, node id) -> [(index of the folder, what is wrong)] for the nodes that do not
    see them; one task per node, pinned to it (soft=False: never run elsewhere)."""
    import ray
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    probe = ray.remote(num_cpus=0, max_retries=0)(probe_folders)
    refs = {
        probe.options(scheduling_strategy=NodeAffinitySchedulingStrategy(nd["NodeID"], soft=False)).remote(expected): (
            nd["NodeManagerAddress"],
            nd["NodeID"],
        )
        for nd in nodes
    }
    ready, pending = ray.wait(list(refs), num_returns=len(refs), timeout=timeout)
    problems: dict[tuple[str, str], list[tuple[int, str]]] = {}
    for ref in ready:
        try:
            found = ray.get(ref)
        except Exception as e:  # the node died, or cannot import this package
            last = (str(e).strip().splitlines() or [""])[-1]
            found = [(-1, f"could not run the check ({type(e).__name__}: {last})")]
        if found:
            problems[refs[ref]] = found
    for ref in pending:
        ray.cancel(ref, force=True)
        problems[refs[ref]] = [(-1, f"did not run the check within {timeout:g}s (is the node healthy? `ray status`)")]
    return problems


def probe_folders(expected: list[tuple[str, str | None, str | None, list[str] | None]]) -> list[tuple[int, str]]:
    """Runs on one node: [(index of the folder, what is wrong)], empty when it sees them all."""
    found = []
    for i, (path, probe, token, listing) in enumerate(expected):
        if "://" in path:  # a storage URI, with this node's environment
            from ..storage import StorageError
            from ..storage.check import check_storage

            try:
                check_storage(path, log=lambda _msg: None)
            except StorageError as e:
                found.append((i, str(e)))
            continue
        folder = Path(path)
        try:
            if probe is None:
                if _listing(folder) != listing:
                    found.append((i, "sees other contents there (not the same folder)"))
                continue
            if (folder / probe).read_text() != token:
                found.append((i, "sees another folder there (the probe file holds another token)"))
                continue
            mine = folder / f"{PROBE_PREFIX}{secrets.token_hex(8)}.node"
            mine.write_text("ok")
            mine.unlink()
        except OSError as e:
            found.append((i, f"{type(e).__name__}: {e.strerror or e}"))
    return found


def _listing(folder: Path) -> list[str]:
    return sorted(os.listdir(folder))[:LISTING_MAX]


def _mkdirs(path: Path) -> list[Path]:
    """mkdir -p; the folders it created, deepest first."""
    missing = []
    folder = path
    while not folder.exists() and folder != folder.parent:
        missing.append(folder)
        folder = folder.parent
    path.mkdir(parents=True, exist_ok=True)
    return missing


def _cleanup(probes: list[Path], created: list[Path]) -> None:
    for p in probes:
        p.unlink(missing_ok=True)
    for d in created:
        try:
            d.rmdir()  # only when empty: never remove what someone else put there
        except OSError:
            break


def _message(folders: list[Folder], problems: dict[tuple[str, str], list[tuple[int, str]]], n_nodes: int) -> str:
    lines = [
        f"{len(problems)} of {n_nodes} Ray node(s) cannot use the sweep's folders, so their trials would "
        "fail; nothing was started:"
    ]
    for (ip, node_id), found in sorted(problems.items()):
        for i, what in found:
            where = f"{folders[i].what} {folders[i].path}: " if i >= 0 and folders[i].path else ""
            lines.append(f"  node {ip} (id {node_id}): {where}{what}")
    bad = sorted({i for found in problems.values() for i, _ in found if i >= 0})
    lines += [f"Fix: {folders[i].fix}" for i in bad] or ["Fix: the node(s) above (`ray status`), or remove them"]
    return "\n".join(lines)
