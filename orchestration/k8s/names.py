"""Kubernetes names: the RayJob's (a DNS-1035 label KubeRay keeps short, since it appends a
suffix for its RayCluster and pods), the ConfigMap's and the spec's key in it."""

from __future__ import annotations

import re

from .errors import ManifestError

MAX_JOB_NAME = 47  # KubeRay: a RayCluster name is at most 53 characters, and the RayJob's gets 6 more
DNS_1035 = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
DNS_1123 = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
CONFIGMAP_KEY = re.compile(r"^[-._a-zA-Z0-9]+$")


def job_name_from(sweep_name: str, suffix: str = "") -> str:
    """A valid RayJob name made from the sweep's name: lowercase, runs of other characters to
    '-', a leading letter, at most MAX_JOB_NAME characters with `suffix` kept."""
    base = re.sub(r"[^a-z0-9]+", "-", sweep_name.lower()).strip("-")
    base = base if base[:1].isalpha() else f"sweep-{base}".rstrip("-")
    base = base[: MAX_JOB_NAME - len(suffix)].rstrip("-")
    return base + suffix


def check_job_name(name: str) -> str:
    if len(name) > MAX_JOB_NAME or not DNS_1035.match(name):
        raise ManifestError(
            f"--job-name {name!r}: a RayJob name is a DNS-1035 label of at most {MAX_JOB_NAME} characters "
            "(lowercase letters, digits and '-', starting with a letter)"
        )
    return name


def check_label(option: str, name: str) -> str:
    """A namespace or Secret name: a DNS-1123 label (Secrets allow dots too; the label is the
    common subset)."""
    if len(name) > 63 or not DNS_1123.match(name):
        raise ManifestError(f"{option} {name!r}: expected a DNS-1123 label (lowercase letters, digits and '-')")
    return name


def spec_key(file_name: str) -> str:
    """The spec's file name as its key in the ConfigMap (and the mounted file's name)."""
    return file_name if CONFIGMAP_KEY.match(file_name) else "sweep.yaml"
