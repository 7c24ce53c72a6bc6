"""The head's and the workers' pod templates. KubeRay fills in each Ray container's command
(`ray start`), ports and probes, and derives Ray's CPUs, GPUs and memory from the container's
resource limits; requests equal limits, so a worker is scheduled only where all of it fits.
The same image and the same credentials (secretKeyRef) everywhere: the driver on the head
and the trials on the workers talk to the same storage and tracking server."""

from __future__ import annotations

from typing import Any

from . import image

GPU = "nvidia.com/gpu"  # the NVIDIA device plugin's resource name
SHM_VOLUME = "dshm"
SPEC_VOLUME = "sweep-spec"


def head_template(
    image_ref: str, cpus: int, memory: str, env: list[dict[str, Any]], configmap: str, labels: dict[str, str]
) -> dict[str, Any]:
    """The head runs Ray's control plane and the sweep's driver (the RayJob's entrypoint), which
    reads the spec from the ConfigMap; it gets no trial (rayStartParams num-cpus 0)."""
    container = _container("ray-head", image_ref, _resources(cpus, memory, 0), env)
    container["volumeMounts"].append({"name": SPEC_VOLUME, "mountPath": image.SPEC_DIR, "readOnly": True})
    spec = _pod_spec(container)
    spec["volumes"].append({"name": SPEC_VOLUME, "configMap": {"name": configmap}})
    return {"metadata": {"labels": {**labels, "app.kubernetes.io/component": "ray-head"}}, "spec": spec}


def worker_template(
    image_ref: str, cpus: int, memory: str, gpus: int, env: list[dict[str, Any]], labels: dict[str, str]
) -> dict[str, Any]:
    """A worker runs trials: Ray sees its CPU and GPU limits as the node's resources."""
    spec = _pod_spec(_container("ray-worker", image_ref, _resources(cpus, memory, gpus), env))
    if gpus:  # GPU nodes are commonly tainted so that only pods asking for GPUs land there
        spec["tolerations"] = [{"key": GPU, "operator": "Exists", "effect": "NoSchedule"}]
    return {"metadata": {"labels": {**labels, "app.kubernetes.io/component": "ray-worker"}}, "spec": spec}


def _resources(cpus: int, memory: str, gpus: int) -> dict[str, Any]:
    amounts = {"cpu": str(cpus), "memory": memory, **({GPU: str(gpus)} if gpus else {})}
    return {"requests": dict(amounts), "limits": dict(amounts)}


def _container(name: str, image_ref: str, resources: dict[str, Any], env: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "name": name,  # KubeRay takes the first container as Ray's
        "image": image_ref,
        "imagePullPolicy": "IfNotPresent",
        "resources": resources,
        "env": env,
        "volumeMounts": [{"name": SHM_VOLUME, "mountPath": image.SHM_DIR}],
        "securityContext": {"allowPrivilegeEscalation": False},
    }


def _pod_spec(container: dict[str, Any]) -> dict[str, Any]:
    return {
        "containers": [container],
        "volumes": [{"name": SHM_VOLUME, "emptyDir": {"medium": "Memory"}}],
        "securityContext": {"runAsNonRoot": True},  # the image runs as a numeric non-root user
    }
