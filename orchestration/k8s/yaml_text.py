"""The manifest as YAML: its documents after a header that says what it needs and the
commands that follow, multi-line strings (the spec's YAML) as literal blocks, keys in the
order they were built, no line folding (an entrypoint stays one line)."""

from __future__ import annotations

from typing import Any

import yaml

from .credentials import CREDENTIALS


class _Dumper(yaml.SafeDumper):
    def ignore_aliases(self, data: Any) -> bool:
        return True  # every env entry written out in full: anchors would hide what a pod gets


def _string(dumper: yaml.SafeDumper, text: str) -> yaml.ScalarNode:
    style = "|" if "\n" in text else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", text, style=style)


_Dumper.add_representer(str, _string)


def manifest_yaml(documents: list[dict[str, Any]], header: list[str]) -> str:
    body = yaml.dump_all(documents, Dumper=_Dumper, sort_keys=False, width=1_000_000, explicit_start=True)
    return "".join(f"# {line}".rstrip() + "\n" for line in header) + body


def header_lines(
    job: str, sweep: str, secret: str, namespace: str | None, image_ref: str, file_name: str = "rayjob.yaml"
) -> list[str]:
    where = f" -n {namespace}" if namespace else ""
    required = ", ".join(credential.name for credential in CREDENTIALS if credential.for_s3)
    return [
        f"Sweep {sweep!r} as a KubeRay RayJob (rendered by `compact-reid k8s manifest`; docs/CLUSTER.md, 'Kubernetes').",
        "Needs: the KubeRay operator (1.1 or later) in the cluster; the image "
        f"{image_ref} (deploy/Dockerfile) pullable by the nodes;",
        f"the Secret {secret!r} in the same namespace ({required} required with S3, the rest optional):",
        f"  compact-reid k8s secret --secret {secret} --out credentials.env   # then fill it in",
        f"  kubectl create secret generic {secret}{where} --from-env-file=credentials.env",
        "Run and follow it:",
        f"  kubectl apply{where} -f {file_name}",
        f"  kubectl get rayjob {job}{where} -w",
        f"  kubectl logs{where} -l job-name={job} -f",
        "The cluster is deleted when the sweep ends; storage and the tracking server keep everything.",
        "",
    ]
