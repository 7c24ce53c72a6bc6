"""The spec, checked for pods: `load_spec` (without looking at this machine's folders), then
what a RayJob adds: the dataset must be synthetic or in object storage (pods do not see this
machine's folders), and one trial's resources must fit on one worker (else Ray Tune would
wait forever for a node that never comes)."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .credentials import NAMES
from .errors import ManifestError
from .options import ManifestOptions

ENV_REFERENCE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}|\$([A-Za-z_][A-Za-z0-9_]*)")  # as spec.py expands them


@dataclass(frozen=True)
class PodSpec:
    """A spec that pods can run, and what they need of this machine's environment."""

    spec: Any  # orchestration.sweep.spec.SweepSpec
    file_name: str  # the spec's file name
    dataset_env: dict[str, str] = field(default_factory=dict)  # variables dataset.path names: object-storage URIs
    dataset_on_s3: bool = False


def load_for_pods(path: str | os.PathLike[str], options: ManifestOptions) -> PodSpec:
    from ..sweep.spec import load_spec

    spec = load_spec(path, check_paths=False)
    source = spec.source
    dataset_env: dict[str, str] = {}
    if not spec.dataset.is_synthetic:
        if "://" not in spec.dataset.path:
            raise ManifestError(
                f"{source}: dataset.path: {spec.dataset.path} is a folder on this machine, which the pods do not "
                "see: put the dataset in object storage (an archive or a prefix, s3://BUCKET/KEY) or use synthetic data"
            )
        # The spec goes to the pods as written, so the variables its path names go with it (plain
        # values: an object-storage URI, which the spec's parser refuses with a credential in it).
        for match in ENV_REFERENCE.finditer(spec.file.dataset.path or ""):
            variable = match.group(1) or match.group(2)
            if variable in NAMES:
                raise ManifestError(f"{source}: dataset.path: names ${variable}, a credential; write the URI")
            dataset_env[variable] = os.environ[variable]  # set: load_spec refused an unset one
    _check_fit(spec, options, source)
    return PodSpec(
        spec=spec,
        file_name=Path(path).name,
        dataset_env=dataset_env,
        dataset_on_s3=(spec.dataset.path or "").startswith("s3://"),
    )


def _check_fit(spec: Any, options: ManifestOptions, source: str) -> None:
    resources = spec.file.resources
    if resources.gpu is not None and resources.gpu > options.gpus_per_worker:
        raise ManifestError(
            f"{source}: resources.gpu: a trial takes {resources.gpu:g} GPU(s), a worker has {options.gpus_per_worker} "
            "(--gpus-per-worker): no trial could start"
        )
    if resources.cpu is not None and resources.cpu > options.cpus_per_worker:
        raise ManifestError(
            f"{source}: resources.cpu: a trial takes {resources.cpu:g} CPU(s), a worker has {options.cpus_per_worker} "
            "(--cpus-per-worker): no trial could start"
        )
