"""Optional packages of the deployment path, imported only when a function needs them:
reid_core itself must import and run with only torch and torchvision."""

from __future__ import annotations

import importlib
from types import ModuleType

from ..errors import MissingDependencyError

__all__ = ["require"]

# import name -> pip name
_PIP_NAMES = {"onnx": "onnx", "onnxruntime": "onnxruntime", "onnxscript": "onnxscript", "pyarrow": "pyarrow"}


def require(module: str, purpose: str) -> ModuleType:
    """Import `module` or raise MissingDependencyError naming the package and its install command."""
    try:
        return importlib.import_module(module)
    except ImportError as e:
        pip = _PIP_NAMES.get(module.split(".")[0], module.split(".")[0])
        raise MissingDependencyError(
            f"{purpose} needs the Python package '{pip}', which is not installed here "
            f"(pip install {pip}; `make install` installs it with the project) [{e}]"
        ) from e
