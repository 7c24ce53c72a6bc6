"""Data: Market-1501 / DukeMTMC-reID layouts, synthetic generator, PK sampling, transforms,
and the Trainer's input pipelines (pipeline: one interface; torchvision_pipeline, device_pipeline).

The names below are imported when first used: `reid_core.data.synth` and `.layout` need no
torch, and a sweep's driver, which only generates data and finds its root, stays without it
(about 600 MB less memory).
"""

from __future__ import annotations

from typing import Any

__all__ = ["ImageDataset", "ReIDDataset", "load_dataset", "PKSampler", "build_test_transform", "build_train_transform"]

_HOMES = {
    "ImageDataset": "datasets",
    "ReIDDataset": "datasets",
    "load_dataset": "datasets",
    "PKSampler": "sampler",
    "build_test_transform": "transforms",
    "build_train_transform": "transforms",
}


def __getattr__(name: str) -> Any:
    if name in _HOMES:
        from importlib import import_module

        return getattr(import_module(f".{_HOMES[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
