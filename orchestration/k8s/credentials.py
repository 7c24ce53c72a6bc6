"""The credentials a sweep's pods need, as references to one Secret, never as values.

Every container of the RayJob (head and workers) gets the variables the object-storage and
tracking clients read (docs/CLUSTER.md) through `valueFrom.secretKeyRef`: the kubelet fills
them in when a pod starts, so they are in no manifest, in no RayJob field and not in the
runtime environment Ray shows on its dashboard. The renderer never reads their values; the
Secret is made by the user from a file (`secret_template`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Credential:
    name: str  # the environment variable, and its key in the Secret
    what: str  # shown in the Secret's template
    placeholder: str  # what the template shows as its value
    for_s3: bool = False  # required when the storage or the dataset is on S3; optional otherwise


CREDENTIALS = (
    Credential("AWS_ACCESS_KEY_ID", "the S3 access key id", "<access key id>", for_s3=True),
    Credential("AWS_SECRET_ACCESS_KEY", "the S3 secret access key", "<secret access key>", for_s3=True),
    Credential("AWS_SESSION_TOKEN", "temporary S3 credentials only", "<session token>"),
    Credential("AWS_ENDPOINT_URL", "MinIO, Ceph RGW or another S3-compatible store", "http://minio.internal:9000"),
    Credential("AWS_DEFAULT_REGION", "the bucket's region (else it is looked up)", "us-east-1"),
    Credential("MLFLOW_TRACKING_USERNAME", "a tracking server with basic authentication", "<user>"),
    Credential("MLFLOW_TRACKING_PASSWORD", "a tracking server with basic authentication", "<password>"),
    Credential("MLFLOW_TRACKING_TOKEN", "a tracking server with bearer tokens", "<token>"),
)
NAMES = frozenset(credential.name for credential in CREDENTIALS)


def secret_env(secret: str, uses_s3: bool) -> list[dict[str, Any]]:
    """The containers' `env` entries: one secretKeyRef per credential. A key the sweep needs
    (S3 keys when it uses S3) is required, so a pod without it fails to start and says which;
    the others are optional: a Secret without them leaves the variable unset."""
    return [
        {
            "name": credential.name,
            "valueFrom": {
                "secretKeyRef": {
                    "name": secret,
                    "key": credential.name,
                    "optional": not (credential.for_s3 and uses_s3),
                }
            },
        }
        for credential in CREDENTIALS
    ]


def secret_template(secret: str, namespace: str | None, file_name: str = "credentials.env") -> str:
    """An env file for `kubectl create secret generic --from-env-file`, with placeholders
    (never values): the S3 keys to fill in, the optional ones commented out (a placeholder
    left in would be sent as a credential)."""
    where = f" --namespace {namespace}" if namespace else ""
    lines = [
        f"# The Secret {secret!r}: what every pod of the RayJob reads its credentials from (secretKeyRef).",
        "# Fill in the values with an editor (not on a command line: shell history keeps it), keep the",
        "# file out of git, then create the Secret from it and delete the file:",
        f"#   kubectl create secret generic {secret}{where} --from-env-file={file_name}",
        "# Optional keys are commented out: uncomment the ones your storage and tracking server need.",
    ]
    for credential in CREDENTIALS:
        lines.append(f"# {credential.name}: {credential.what}" + (" (required with S3)" if credential.for_s3 else ""))
        lines.append(("" if credential.for_s3 else "# ") + f"{credential.name}={credential.placeholder}")
    return "\n".join(lines) + "\n"
