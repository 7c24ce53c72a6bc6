"""Kubernetes: a sweep as a KubeRay RayJob (`compact-reid k8s manifest SPEC`), run on a
RayCluster the RayJob creates and deletes, against object storage and an MLflow server.

Modules, one job each:
- `options`: `ManifestOptions` and their checks (object storage, a reachable tracking server);
- `sweep_fit`: the spec for pods (dataset in object storage or synthetic, a trial fits a worker);
- `credentials`: the Secret's keys as secretKeyRef env entries, and the Secret's template;
- `pods`: the head's and the workers' pod templates;
- `rayjob`: `render_manifest` -> `Manifest` (the ConfigMap with the spec, the RayJob);
- `schema`: the project's RayJob schema (schemas/rayjob.schema.json) and the check against it;
- `yaml_text`: the manifest as YAML, with a header of what it needs;
- `names`: Kubernetes names; `image`: what the manifest assumes of deploy/Dockerfile;
- `errors`: `ManifestError`.
Imports neither Ray nor MLflow: rendering needs only the spec and the options.
"""

from __future__ import annotations

from .errors import ManifestError
from .options import ManifestOptions
from .rayjob import Manifest, render_manifest

__all__ = ["Manifest", "ManifestError", "ManifestOptions", "render_manifest"]
