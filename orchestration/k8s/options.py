"""`ManifestOptions`: what `compact-reid k8s manifest` is told besides the spec, checked
before anything is rendered. Every refusal names the option. Pods share no folder with this
machine or each other, so the storage and the tracking server must be reachable over the
network, and neither URI may carry a credential (both are printed in the RayJob's
entrypoint, which Ray shows on its dashboard)."""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from urllib.parse import parse_qsl, urlsplit

from ..storage import StorageError, StorageURI
from . import image
from .errors import ManifestError
from .names import check_job_name, check_label

QUANTITY = re.compile(r"^[0-9]+(\.[0-9]+)?(Ki|Mi|Gi|Ti|Pi|Ei|k|M|G|T|P|E)?$")  # a Kubernetes memory quantity
VERSION = re.compile(r"^[0-9]+\.[0-9]+\.[0-9]+$")
SECRET_QUERY = re.compile(r"(?i)secret|password|token|key")


@dataclass(frozen=True)
class ManifestOptions:
    """The command line's options (`compact-reid k8s manifest --help` says what each is)."""

    image: str
    storage: str
    tracking_uri: str | None  # None only with `resume`: the sweep's saved one
    namespace: str | None = None
    workers: int = 1
    gpus_per_worker: int = 1
    cpus_per_worker: int = 4
    memory_per_worker: str = "16Gi"
    head_cpus: int = 2
    head_memory: str = "8Gi"
    secret: str = "compact-reid-credentials"
    ray_version: str = image.RAY_VERSION
    ttl_seconds: int = 300
    deadline_seconds: int | None = None
    job_name: str | None = None
    resume: bool = False


def check_options(options: ManifestOptions) -> StorageURI:
    """Refuse what pods cannot use; the parsed storage URI."""
    if not options.image.strip() or any(char.isspace() for char in options.image):
        raise ManifestError(f"--image {options.image!r}: expected an image reference (REGISTRY/NAME:TAG)")
    storage = check_storage(options.storage)
    if options.resume and options.tracking_uri is not None:
        raise ManifestError("--tracking-uri: not with --resume (a sweep resumes with the tracking server it ran with)")
    if not options.resume:
        if options.tracking_uri is None:
            raise ManifestError("--tracking-uri: required (an MLflow server every pod reaches, http://HOST:PORT)")
        check_tracking_uri(options.tracking_uri)
    _at_least("--workers", options.workers, 1)
    _at_least("--gpus-per-worker", options.gpus_per_worker, 0)
    _at_least("--cpus-per-worker", options.cpus_per_worker, 1)
    _at_least("--head-cpus", options.head_cpus, 1)
    _at_least("--ttl-seconds", options.ttl_seconds, 0)
    if options.deadline_seconds is not None:
        _at_least("--deadline-seconds", options.deadline_seconds, 1)
    for option, value in (("--memory-per-worker", options.memory_per_worker), ("--head-memory", options.head_memory)):
        if not QUANTITY.match(value):
            raise ManifestError(f"{option} {value!r}: expected a Kubernetes quantity such as 16Gi or 8000M")
    if not VERSION.match(options.ray_version):
        raise ManifestError(
            f"--ray-version {options.ray_version!r}: expected MAJOR.MINOR.PATCH, e.g. {image.RAY_VERSION}"
        )
    if options.namespace is not None:
        check_label("--namespace", options.namespace)
    check_label("--secret", options.secret)
    if options.job_name is not None:
        check_job_name(options.job_name)
    return storage


def check_storage(text: str) -> StorageURI:
    try:
        uri = StorageURI.parse(text)
    except StorageError as e:
        raise ManifestError(f"--storage: {e}") from None
    if uri.is_local:
        raise ManifestError(
            f"--storage {text}: a local path; the pods share no folder with this machine or each other: "
            "give object storage, s3://BUCKET/PREFIX or gs://BUCKET/PREFIX"
        )
    return uri


def check_tracking_uri(text: str) -> None:
    """An MLflow server every pod reaches: http(s)://HOST[:PORT], no credential in it."""
    parts = urlsplit(text)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ManifestError(
            f"--tracking-uri {text.split('?')[0]}: expected an MLflow server every pod reaches, http(s)://HOST:PORT "
            "(`compact-reid server`); a file or database URI would be each pod's own"
        )
    shown = f"{parts.scheme}://{parts.hostname}" + (f":{parts.port}" if parts.port else "")
    if parts.username or parts.password or any(SECRET_QUERY.search(key) for key, _ in parse_qsl(parts.query)):
        raise ManifestError(
            f"--tracking-uri {shown}: credentials in the URI are refused (it is shown on Ray's dashboard); "
            "put them in the Secret (MLFLOW_TRACKING_USERNAME / MLFLOW_TRACKING_PASSWORD or MLFLOW_TRACKING_TOKEN)"
        )
    if _is_loopback(parts.hostname):
        raise ManifestError(
            f"--tracking-uri {shown}: a loopback address is each pod itself; give the server's address in the cluster"
        )


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    return address.is_loopback or address.is_unspecified


def _at_least(option: str, value: int, minimum: int) -> None:
    if value < minimum:
        raise ManifestError(f"{option} {value}: must be at least {minimum}")
