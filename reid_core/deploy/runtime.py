"""Embedders: one call `embedder(batch) -> [N, D] float32 numpy`, whatever runs the model
(PyTorch weights, an ONNX file through ONNX Runtime, or a TorchScript file). Each carries
the `ModelInfo` of the network it runs, read from the exported file's metadata."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch

from ..errors import CheckpointError, ExportError
from .model import EmbeddingNet, ModelInfo, load_embedding_net
from .optional import require

__all__ = [
    "Embedder",
    "TorchEmbedder",
    "OnnxEmbedder",
    "TorchScriptEmbedder",
    "open_embedder",
    "onnx_providers",
    "METADATA_KEY",
    "INPUT_NAME",
    "OUTPUT_NAME",
]

METADATA_KEY = "compact_reid"  # ONNX metadata_props key / TorchScript extra file (".json" added)
INPUT_NAME, OUTPUT_NAME = "images", "embedding"
_ORT_PROVIDERS = {"cpu": "CPUExecutionProvider", "cuda": "CUDAExecutionProvider"}


class Embedder(Protocol):
    info: ModelInfo
    backend: str

    def __call__(self, images: torch.Tensor | np.ndarray) -> np.ndarray: ...


def _as_tensor(images: torch.Tensor | np.ndarray) -> torch.Tensor:
    return images if isinstance(images, torch.Tensor) else torch.from_numpy(np.ascontiguousarray(images))


class TorchEmbedder:
    """PyTorch eager: the EmbeddingNet of a weights file."""

    backend = "pytorch"

    def __init__(self, net: EmbeddingNet, info: ModelInfo, device: str | torch.device = "cpu") -> None:
        self.device = torch.device(device)
        self.net, self.info = net.to(self.device).eval(), info

    @torch.inference_mode()
    def __call__(self, images: torch.Tensor | np.ndarray) -> np.ndarray:
        return self.net(_as_tensor(images).to(self.device)).float().cpu().numpy()


def onnx_providers(device: str = "cpu") -> list[str]:
    """ONNX Runtime execution providers for `device` ('cpu' or 'cuda'); ExportError if this
    machine's onnxruntime cannot run there (e.g. the CPU-only wheel asked for cuda)."""
    ort = require("onnxruntime", "running an ONNX model")
    if device not in _ORT_PROVIDERS:
        raise ExportError(f"device {device!r}: allowed for ONNX Runtime: {', '.join(_ORT_PROVIDERS)}")
    wanted = _ORT_PROVIDERS[device]
    available = ort.get_available_providers()
    if wanted not in available:
        raise ExportError(
            f"ONNX Runtime here cannot run on {device} ({wanted} missing; available: "
            f"{', '.join(available)}); for CUDA install onnxruntime-gpu instead of onnxruntime"
        )
    return [wanted] + (["CPUExecutionProvider"] if wanted != "CPUExecutionProvider" else [])


class OnnxEmbedder:
    """ONNX Runtime session of an exported file (its ModelInfo from the metadata_props)."""

    backend = "onnxruntime"

    def __init__(self, path: str | Path, device: str = "cpu", threads: int = 0) -> None:
        ort = require("onnxruntime", "running an ONNX model")
        path = Path(path)
        if not path.is_file():
            raise CheckpointError(f"{path}: no such ONNX file")
        opts = ort.SessionOptions()
        opts.log_severity_level = 3  # warnings of graph optimisation are not the user's business
        if threads:
            opts.intra_op_num_threads = threads
        try:
            self.session = ort.InferenceSession(str(path), sess_options=opts, providers=onnx_providers(device))
        except ExportError:
            raise
        except Exception as e:  # onnxruntime raises its own Fail/InvalidProtobuf types
            raise CheckpointError(f"{path}: not a readable ONNX model ({type(e).__name__}: {e})") from e
        meta = self.session.get_modelmeta().custom_metadata_map
        if METADATA_KEY not in meta:
            raise CheckpointError(
                f"{path}: an ONNX model without compact-reid metadata (export it with `compact-reid export`)"
            )
        self.info = ModelInfo.from_json(meta[METADATA_KEY], str(path))
        self.path = path

    def __call__(self, images: torch.Tensor | np.ndarray) -> np.ndarray:
        array = images.detach().cpu().numpy() if isinstance(images, torch.Tensor) else images
        return self.session.run([OUTPUT_NAME], {INPUT_NAME: np.ascontiguousarray(array, dtype=np.float32)})[0]


class TorchScriptEmbedder:
    """A TorchScript file written by `export_torchscript` (ModelInfo in an extra file)."""

    backend = "torchscript"

    def __init__(self, path: str | Path, device: str | torch.device = "cpu") -> None:
        path = Path(path)
        if not path.is_file():
            raise CheckpointError(f"{path}: no such TorchScript file")
        extra = {f"{METADATA_KEY}.json": ""}
        self.device = torch.device(device)
        try:
            with warnings.catch_warnings():  # its deprecation is reported once, at export time
                warnings.simplefilter("ignore", FutureWarning)
                self.module = torch.jit.load(str(path), map_location=self.device, _extra_files=extra)
        except Exception as e:
            raise CheckpointError(f"{path}: not a readable TorchScript file ({type(e).__name__}: {e})") from e
        raw: Any = extra[f"{METADATA_KEY}.json"]
        self.info = ModelInfo.from_json(raw.decode() if isinstance(raw, bytes) else raw, str(path))
        self.module.eval()

    @torch.inference_mode()
    def __call__(self, images: torch.Tensor | np.ndarray) -> np.ndarray:
        return self.module(_as_tensor(images).to(self.device)).float().cpu().numpy()


def open_embedder(
    weights: str | Path | None = None,
    onnx: str | Path | None = None,
    torchscript: str | Path | None = None,
    device: str = "cpu",
) -> Embedder:
    """Exactly one of weights / onnx / torchscript -> an Embedder on `device`."""
    given = [(k, v) for k, v in (("weights", weights), ("onnx", onnx), ("torchscript", torchscript)) if v]
    if len(given) != 1:
        raise ExportError(f"give exactly one model: --weights, --onnx or --torchscript (got {len(given)})")
    from ..training.trainer import pick_device  # 'auto', and a clear error for cuda without a GPU

    kind, path = given[0]
    if kind == "onnx":  # ONNX Runtime's providers say what it can run on, not torch
        return OnnxEmbedder(path, device=torch.device(device if device != "auto" else "cpu").type)
    dev = pick_device(device)
    if kind == "weights":
        net, info = load_embedding_net(path)
        return TorchEmbedder(net, info, dev)
    return TorchScriptEmbedder(path, dev)
