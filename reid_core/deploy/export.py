"""Export the embedding network to ONNX or TorchScript, with a parity check against PyTorch.

ONNX: `torch.onnx.export(dynamo=True)` (the default exporter since torch 2.9, built on
torch.export), dynamic batch via `dynamic_shapes`, opset 18: the hard attention's
affine_grid + grid_sample need GridSample (opset >= 16), and 18 is the dynamo exporter's
own baseline (lower opsets go through a version converter). TorchScript: `torch.jit.trace`
(deprecated in torch 2.14 in favour of torch.export, still working; `torch.jit.script`
cannot compile the config dataclasses). The file is written under a temporary name,
loaded back through the same runtime `compact-reid embed` uses, compared with PyTorch on
random inputs (batch 1 and an odd batch, so the dynamic batch is exercised) and on real
crops when given; it is renamed into place only if the largest difference is within the
tolerance, otherwise removed.
"""

from __future__ import annotations

import contextlib
import io
import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from ..errors import ExportError
from .model import EmbeddingNet, ModelInfo
from .optional import require
from .runtime import INPUT_NAME, METADATA_KEY, OUTPUT_NAME, OnnxEmbedder, TorchScriptEmbedder

__all__ = ["FORMATS", "ONNX_OPSET", "PARITY_TOLERANCE", "ParityCheck", "ExportResult", "export_model"]

FORMATS = ("onnx", "torchscript")
ONNX_OPSET = 18
PARITY_TOLERANCE = 1e-3
_RANDOM_BATCHES = (1, 7)


@dataclass
class ParityCheck:
    label: str  # "random" or "crops"
    batch: int
    max_abs_diff: float


@dataclass
class ExportResult:
    path: Path
    format: str
    info: ModelInfo
    checks: list[ParityCheck]
    tolerance: float
    notes: list[str] = field(default_factory=list)

    @property
    def max_abs_diff(self) -> float:
        return max(c.max_abs_diff for c in self.checks)


def check_format(fmt: str) -> None:
    """ExportError unless `fmt` is a format this machine can write AND run for the parity check."""
    if fmt not in FORMATS:
        raise ExportError(f"--format {fmt!r}: allowed: {', '.join(FORMATS)}")
    if fmt == "onnx":
        for mod in ("onnx", "onnxscript", "onnxruntime"):
            require(mod, "--format onnx (export and its parity check)")


def _parity_inputs(info: ModelInfo, crops: torch.Tensor | None, seed: int) -> list[tuple[str, torch.Tensor]]:
    generator = torch.Generator().manual_seed(seed)
    shape = (3, info.input_height, info.input_width)
    out = [("random", torch.randn(n, *shape, generator=generator)) for n in _RANDOM_BATCHES]
    if crops is not None and len(crops):
        out.append(("crops", crops.float()))
    return out


def _write_onnx(net: EmbeddingNet, info: ModelInfo, tmp: Path, opset: int) -> list[str]:
    require("onnxscript", "--format onnx")
    example = torch.randn(2, 3, info.input_height, info.input_width)
    batch = torch.export.Dim("batch")
    # The exporter prints its progress steps; keep the command's output to what matters.
    with warnings.catch_warnings(record=True) as caught, contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("always")
        try:
            program = torch.onnx.export(
                net,
                (example,),
                input_names=[INPUT_NAME],
                output_names=[OUTPUT_NAME],
                opset_version=opset,
                dynamo=True,
                external_data=False,
                dynamic_shapes={INPUT_NAME: {0: batch}},
                verbose=False,
            )
        except Exception as e:
            raise ExportError(f"ONNX export (opset {opset}) failed: {type(e).__name__}: {e}") from e
    program.model.metadata_props[METADATA_KEY] = info.to_json()
    program.save(str(tmp), external_data=False)
    return sorted({str(w.message).splitlines()[0] for w in caught if issubclass(w.category, FutureWarning)})


def _write_torchscript(net: EmbeddingNet, info: ModelInfo, tmp: Path) -> list[str]:
    example = torch.randn(2, 3, info.input_height, info.input_width)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        # The shape checks of the input become constants of the trace (they are static anyway).
        traced = torch.jit.trace(net, example, check_trace=False)
        torch.jit.save(traced, str(tmp), _extra_files={f"{METADATA_KEY}.json": info.to_json()})
    notes = []
    if any("deprecated" in str(w.message) for w in caught):
        notes.append(
            "torch.jit.trace is deprecated in this torch "
            f"({torch.__version__}); the TorchScript file works, prefer --format onnx for new deployments"
        )
    return notes


def export_model(
    net: EmbeddingNet,
    info: ModelInfo,
    fmt: str,
    out: str | Path,
    crops: torch.Tensor | None = None,
    tolerance: float = PARITY_TOLERANCE,
    opset: int = ONNX_OPSET,
    seed: int = 0,
) -> ExportResult:
    """Write `net` as `fmt` to `out` if its outputs match PyTorch's within `tolerance`.

    Raises ExportError (with the measured difference) and leaves no file when they do not.
    """
    check_format(fmt)
    if fmt == "onnx" and opset < 16:
        raise ExportError(f"--opset {opset}: the hard attention's grid sampling needs GridSample, opset >= 16")
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp-{os.getpid()}")
    net = net.cpu().eval()
    try:
        notes = _write_onnx(net, info, tmp, opset) if fmt == "onnx" else _write_torchscript(net, info, tmp)
        runner = OnnxEmbedder(tmp) if fmt == "onnx" else TorchScriptEmbedder(tmp)
        checks = []
        with torch.inference_mode():
            for label, x in _parity_inputs(info, crops, seed):
                ref = net(x).numpy()
                got = runner(x)
                if got.shape != ref.shape:
                    raise ExportError(f"{fmt} output has shape {got.shape}, PyTorch {ref.shape} (batch {len(x)})")
                checks.append(ParityCheck(label, len(x), float(np.abs(got - ref).max())))
        worst = max(c.max_abs_diff for c in checks)
        if not np.isfinite(worst) or worst > tolerance:
            raise ExportError(
                f"{fmt} export refused: max |{fmt} - pytorch| = {worst:.3g} > tolerance {tolerance:g} "
                f"({', '.join(f'{c.label} batch {c.batch}: {c.max_abs_diff:.3g}' for c in checks)}); "
                f"{out} not written"
            )
        tmp.replace(out)
    finally:
        tmp.unlink(missing_ok=True)
    return ExportResult(out, fmt, info, checks, tolerance, notes)
