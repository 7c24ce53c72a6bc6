"""The manifest: a ConfigMap with the spec's YAML and a KubeRay RayJob (ray.io/v1) whose
entrypoint runs the sweep on the RayCluster it creates, then deletes it.

The entrypoint is `compact-reid sweep run` (or `sweep resume`) on the head, where Ray runs a
job's driver with RAY_ADDRESS set to its own cluster; storage and tracking URIs are in it, and
no credential: those reach every container from the Secret (credentials.py). There is no
runtimeEnvYAML: the image has everything, and what a runtime environment carries is shown on
Ray's dashboard. No retries (KubeRay's default): a retry would start the sweep over, where
`--resume` continues it from its saved state.
"""

from __future__ import annotations

import os
import shlex
from dataclasses import dataclass
from typing import Any

from . import image
from .credentials import secret_env
from .names import job_name_from, spec_key
from .options import ManifestOptions, check_options
from .pods import head_template, worker_template
from .schema import check_rayjob
from .sweep_fit import PodSpec, load_for_pods

WORKER_GROUP = "workers"


@dataclass(frozen=True)
class Manifest:
    """What `compact-reid k8s manifest` prints: the ConfigMap, then the RayJob."""

    configmap: dict[str, Any]
    rayjob: dict[str, Any]
    sweep: str  # the sweep's name

    @property
    def documents(self) -> list[dict[str, Any]]:
        return [self.configmap, self.rayjob]


def render_manifest(spec_path: str | os.PathLike[str], options: ManifestOptions) -> Manifest:
    """Check the options and the spec, build both documents, check the RayJob against the
    project's schema (schemas/rayjob.schema.json)."""
    storage = check_options(options)
    pod_spec = load_for_pods(spec_path, options)
    sweep = pod_spec.spec.file.name
    job = options.job_name or job_name_from(sweep, "-resume" if options.resume else "")
    labels = {"app.kubernetes.io/name": "compact-reid", "app.kubernetes.io/instance": job}
    namespace = {"namespace": options.namespace} if options.namespace else {}
    configmap = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": f"{job}-spec", **namespace, "labels": dict(labels)},
        "data": {spec_key(pod_spec.file_name): pod_spec.spec.text},
    }
    uses_s3 = storage.scheme == "s3" or pod_spec.dataset_on_s3
    spec = {
        "entrypoint": entrypoint(pod_spec, str(storage), options),
        "submissionMode": "K8sJobMode",
        "shutdownAfterJobFinishes": True,
        "ttlSecondsAfterFinished": options.ttl_seconds,
        **({"activeDeadlineSeconds": options.deadline_seconds} if options.deadline_seconds else {}),
        "rayClusterSpec": cluster_spec(options, pod_spec, uses_s3, configmap["metadata"]["name"], labels),
    }
    rayjob = {
        "apiVersion": "ray.io/v1",
        "kind": "RayJob",
        "metadata": {"name": job, **namespace, "labels": dict(labels)},
        "spec": spec,
    }
    check_rayjob(rayjob)
    return Manifest(configmap=configmap, rayjob=rayjob, sweep=sweep)


def cluster_spec(
    options: ManifestOptions, pod_spec: PodSpec, uses_s3: bool, configmap: str, labels: dict[str, str]
) -> dict[str, Any]:
    """One head (the driver, no trials) and one fixed-size group of workers (the trials)."""
    dataset_env = [{"name": name, "value": value} for name, value in sorted(pod_spec.dataset_env.items())]
    head = head_template(
        options.image,
        options.head_cpus,
        options.head_memory,
        secret_env(options.secret, uses_s3) + dataset_env,  # the driver stages the dataset
        configmap,
        labels,
    )
    worker = worker_template(
        options.image,
        options.cpus_per_worker,
        options.memory_per_worker,
        options.gpus_per_worker,
        secret_env(options.secret, uses_s3),
        labels,
    )
    return {
        "rayVersion": options.ray_version,
        "headGroupSpec": {
            "serviceType": "ClusterIP",
            "rayStartParams": {"num-cpus": "0", "dashboard-host": "0.0.0.0"},
            "template": head,
        },
        "workerGroupSpecs": [
            {
                "groupName": WORKER_GROUP,
                "replicas": options.workers,
                "minReplicas": options.workers,
                "maxReplicas": options.workers,
                "rayStartParams": {},
                "template": worker,
            }
        ],
    }


def entrypoint(pod_spec: PodSpec, storage: str, options: ManifestOptions) -> str:
    """The sweep's command as the head runs it (the driver joins Ray through RAY_ADDRESS)."""
    if options.resume:  # the spec and the tracking URI come back from the sweep's saved state
        words = ["compact-reid", "sweep", "resume", pod_spec.spec.file.name, "--storage", storage]
    else:
        spec_file = f"{image.SPEC_DIR}/{spec_key(pod_spec.file_name)}"
        words = ["compact-reid", "sweep", "run", spec_file, "--storage", storage]
        words += ["--tracking-uri", str(options.tracking_uri)]
    return shlex.join(words + ["--runs-dir", image.RUNS_DIR])
