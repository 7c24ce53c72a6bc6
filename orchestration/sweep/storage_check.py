"""Preflight: every node of the Ray cluster sees the sweep's local folders.

A trial writes its checkpoints into the Ray storage path, and reads its dataset, from the
node it runs on. A local path that only the head has fails each trial placed elsewhere, one
by one, after the sweep has created its MLflow runs. So before anything is created the driver
writes a probe file with a random token into each folder that trials write to, and one tiny
zero-CPU task pinned to each alive node reads it back and writes a file of its own beside it;
a dataset folder (trials only read it) is compared by its listing. Remote URIs (s3://, gs://,
...) are Ray's (pyarrow's) to reach and are not probed.
"""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from .errors import SweepError
from .spec import DatasetSpec

PROBE_PREFIX = ".compact-reid-probe-"
TIMEOUT_S = 120.0  # a node's first task may have to start a worker process on a loaded machine
LISTING_MAX = 200  # entries compared for a read-only folder: enough to tell two folders apart


@dataclass(frozen=True)
class Folder:
    path: Path
    what: str  # named in the error, e.g. "Ray storage path (--storage)"
    writable: bool  # trials write there: token probe + write test; else the listing is compared
    fix: str  # what the user changes


def sweep_folders(
    storage_path: str, sweep_dir: Path, dataset: DatasetSpec, data_root: str | None = None
) -> list[Folder]:
    """The local folders trials use on whatever node they land: the Ray storage path, the
    folder the synthetic dataset is generated into when that is not under it (storage on
    s3://), and a user's dataset folder (`data_root`: the resolved one, on resume)."""
    folders = []
    local_storage = "://" not in storage_path
    if local_storage:
        folders.append(
            Folder(
                Path(storage_path),
                "Ray storage path (--storage)",
                True,
                "pass --storage on a filesystem every node mounts at the same path (e.g. NFS), "
                "or --storage s3://BUCKET/PREFIX",
            )
        )
    if dataset.is_synthetic:
        if not local_storage:
            folders.append(
                Folder(
                    sweep_dir,
                    "sweep folder (--runs-dir; the synthetic dataset is generated there)",
                    True,
                    "pass --runs-dir on a filesystem every node mounts at the same path "
                    "(e.g. NFS), or use a dataset.path every node has",
                )
            )
    else:
        folders.append(
            Folder(
                Path(data_root or dataset.path or ""),
                "dataset folder (dataset.path)",
                False,
                "put the dataset on a filesystem every node mounts at the same path (e.g. NFS), "
                "or copy it to that same path on every node",
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

    folders = [f for f in folders if f.writable or f.path.is_dir()]  # a missing dataset is prepare_data's error
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
            if f.writable:
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
    log(f"storage check: {len(nodes)} Ray node(s) see " + ", ".join(str(f.path) for f in folders))


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
            where = f"{folders[i].what} {folders[i].path}: " if i >= 0 else ""
            lines.append(f"  node {ip} (id {node_id}): {where}{what}")
    bad = sorted({i for found in problems.values() for i, _ in found if i >= 0})
    lines += [f"Fix: {folders[i].fix}" for i in bad] or ["Fix: the node(s) above (`ray status`), or remove them"]
    return "\n".join(lines)
