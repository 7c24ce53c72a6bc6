"""Data: Market-1501 / DukeMTMC-reID layouts, synthetic generator, PK sampling, transforms,
and the Trainer's input pipelines (pipeline: one interface; torchvision_pipeline, device_pipeline)."""

from .datasets import ImageDataset, ReIDDataset, load_dataset
from .sampler import PKSampler
from .transforms import build_test_transform, build_train_transform

__all__ = ["ImageDataset", "ReIDDataset", "load_dataset", "PKSampler", "build_test_transform", "build_train_transform"]
