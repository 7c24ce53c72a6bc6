"""What a manifest assumes of the container image (deploy/Dockerfile) and where it puts things
in the pods. The Dockerfile's RAY_VERSION must equal `RAY_VERSION`: KubeRay picks its job
submission command by the cluster's rayVersion, and every pod runs the image's Ray
(tests/orch/test_k8s_manifest.py checks both against pyproject.toml)."""

from __future__ import annotations

RAY_VERSION = "2.60.0"
SPEC_DIR = "/etc/compact-reid/sweep"  # the ConfigMap with the spec's YAML, on the head pod
RUNS_DIR = "/tmp/compact-reid/runs"  # the driver's local defaults (a cache: everything shared is in storage)
SHM_DIR = "/dev/shm"  # Ray's object store and DataLoader workers need more than a container's 64 MB
