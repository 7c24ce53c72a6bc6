"""Deployment: export the embedding network (ONNX / TorchScript, parity-checked), embed
folders of crops into features files, search a gallery, and render the results.

Needs only torch/torchvision to import; onnx, onnxscript, onnxruntime and pyarrow are
imported by the functions that use them (MissingDependencyError names the package).
"""

from .embed import embed_images
from .export import FORMATS, ONNX_OPSET, PARITY_TOLERANCE, ExportResult, export_model
from .features import FeatureSet, check_compatible, load_features, save_features
from .gallery_page import render_search_page, write_search_page
from .images import CropBatches, list_images
from .model import EmbeddingNet, ModelInfo, load_embedding_net
from .runtime import OnnxEmbedder, TorchEmbedder, TorchScriptEmbedder, open_embedder
from .search import QueryResult, parse_person_id, search

__all__ = [
    "EmbeddingNet",
    "ModelInfo",
    "load_embedding_net",
    "FORMATS",
    "ONNX_OPSET",
    "PARITY_TOLERANCE",
    "ExportResult",
    "export_model",
    "OnnxEmbedder",
    "TorchEmbedder",
    "TorchScriptEmbedder",
    "open_embedder",
    "CropBatches",
    "list_images",
    "embed_images",
    "FeatureSet",
    "save_features",
    "load_features",
    "check_compatible",
    "QueryResult",
    "search",
    "parse_person_id",
    "render_search_page",
    "write_search_page",
]
