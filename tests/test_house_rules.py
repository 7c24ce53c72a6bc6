"""Rules of the code base that a review once had to find by reading: now a test fails instead."""

from __future__ import annotations

import ast
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PACKAGES = ("reid_core", "orchestration", "mlflow_server", "process_tether")
NAMES_MODULE = REPO / "orchestration" / "mlflow_log" / "names.py"
TAG_PREFIX = "compact_reid" + "."  # spelled in two parts so that this file passes its own rule
MAX_ORCHESTRATION_LINES = 450


def _python_files(*roots: str) -> list[Path]:
    return sorted(p for root in roots for p in (REPO / root).rglob("*.py") if "__pycache__" not in p.parts)


def test_mlflow_names_are_spelled_once():
    """Every MLflow tag name lives in orchestration/mlflow_log/names.py; code, tests and
    benchmarks import it. A literal elsewhere drifts the day the name changes."""
    offenders = [
        f"{path.relative_to(REPO)}:{number}"
        for path in _python_files(*PACKAGES, "tests", "benchmarks")
        if path != NAMES_MODULE
        for number, line in enumerate(path.read_text().splitlines(), 1)
        if TAG_PREFIX in line
    ]
    assert not offenders, f"spell these with orchestration.mlflow_log.names instead: {offenders}"


def test_orchestration_modules_stay_small():
    sizes = {
        str(path.relative_to(REPO)): len(path.read_text().splitlines())
        for path in _python_files("orchestration", "mlflow_server", "process_tether")
    }
    assert not {path: n for path, n in sizes.items() if n > MAX_ORCHESTRATION_LINES}


def test_the_trainer_stays_small():
    assert len((REPO / "reid_core" / "training" / "trainer.py").read_text().splitlines()) <= 420


def test_the_sweep_package_lists_every_module():
    """The package docstring is the module map a newcomer reads first: complete, or it misleads."""
    package = REPO / "orchestration" / "sweep"
    doc = ast.get_docstring(ast.parse((package / "__init__.py").read_text())) or ""
    missing = [p.stem for p in package.glob("*.py") if p.stem != "__init__" and f"`{p.stem}`" not in doc]
    assert not missing, f"orchestration/sweep/__init__.py does not describe {missing}"
