"""The project's schema of the RayJob it renders (schemas/rayjob.schema.json, JSON Schema
2020-12): every manifest is checked against it before it is printed. Kubernetes has no
schema for a custom resource until its CRD is installed in a cluster, so the project keeps
its own for the fields it uses; the pod templates inside are Kubernetes' own PodSpec, which
the tests check against Kubernetes' schema."""

from __future__ import annotations

import json
from functools import lru_cache
from importlib import resources
from typing import Any

from .errors import ManifestError

SCHEMA_FILE = "rayjob.schema.json"


@lru_cache(maxsize=1)
def rayjob_schema() -> dict[str, Any]:
    return json.loads(resources.files(__package__).joinpath("schemas").joinpath(SCHEMA_FILE).read_text())


def rayjob_errors(rayjob: dict[str, Any]) -> list[str]:
    """Every place `rayjob` breaks the schema, as 'dotted.path: message'; [] when it is valid."""
    from jsonschema import Draft202012Validator

    validator = Draft202012Validator(rayjob_schema())
    return [
        f"{'.'.join(str(part) for part in error.absolute_path) or '(top level)'}: {error.message}"
        for error in sorted(validator.iter_errors(rayjob), key=lambda error: list(map(str, error.absolute_path)))
    ]


def check_rayjob(rayjob: dict[str, Any]) -> None:
    errors = rayjob_errors(rayjob)
    if errors:
        raise ManifestError(f"the rendered RayJob breaks {SCHEMA_FILE}: " + "; ".join(errors))
