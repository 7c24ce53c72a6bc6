"""The kinds of node a sweep runs on, and probing each where it is: a kind this process
runs on is probed here; any other kind by a Ray task pinned to one of its nodes
(NodeAffinitySchedulingStrategy), whose output goes to the driver's log."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Sequence

from .cells import NodeKind

if TYPE_CHECKING:
    from .measure import KindProbe


def node_kinds() -> list[NodeKind]:
    """The alive Ray nodes, grouped by (CPUs, GPUs, accelerator type)."""
    import ray

    kinds: dict[tuple[int, int, str], NodeKind] = {}
    for node in ray.nodes():
        if not node.get("Alive"):
            continue
        resources = node.get("Resources", {})
        accelerator = next((name.split(":", 1)[1] for name in resources if name.startswith("accelerator_type:")), "")
        key = (int(resources.get("CPU", 0)), int(resources.get("GPU", 0)), accelerator)
        kinds.setdefault(key, NodeKind(*key)).node_ids.append(node["NodeID"])
    return list(kinds.values())


def main_kind(kinds: Sequence[NodeKind]) -> NodeKind:
    """The kind whose choice the sweep applies (Ray Tune gives all trials the same resources
    and configs): the most GPUs in total, then the most CPUs."""
    return max(kinds, key=lambda kind: (kind.gpus * len(kind.node_ids), kind.cpus * len(kind.node_ids)))


def is_local(kind: NodeKind) -> bool:
    """True when this process runs on a node of `kind` (or Ray is not running: unit use)."""
    try:
        import ray

        if not ray.is_initialized():
            return True
        return ray.get_runtime_context().get_node_id() in kind.node_ids
    except Exception:  # noqa: BLE001 - no usable Ray: this machine is the only one
        return True


def device_of(kind: NodeKind) -> str:
    """The device model a kind's cache entry is keyed by (here: measured; elsewhere: Ray's view)."""
    if is_local(kind):
        from reid_core.throughput import device_model

        try:
            return device_model("cuda" if kind.gpus else "cpu")
        except Exception:  # noqa: BLE001 - e.g. recorded GPU figures replayed on a CPU machine
            pass
    return f"{kind.accelerator or ('GPU' if kind.gpus else 'CPU')} ({kind.key})"


def remote_probe(job: "KindProbe") -> dict[str, Any]:
    """`measure.probe_kind(job)` as a Ray task pinned to the first node of `job.kind`."""
    import ray
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    kind = job.kind
    # One GPU on a GPU node: Ray then makes exactly that GPU visible to the probe's workers.
    task = ray.remote(num_cpus=0, num_gpus=1 if kind.gpus else 0, max_retries=0)(_probe_task).options(
        scheduling_strategy=NodeAffinitySchedulingStrategy(node_id=kind.node_ids[0], soft=False)
    )
    return ray.get(task.remote(job), timeout=job.budget_s * 3 + 120)


def _probe_task(job: "KindProbe") -> dict[str, Any]:
    from .measure import probe_kind

    return probe_kind(job, log=lambda message: print(message, flush=True))
