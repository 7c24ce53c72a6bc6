"""Train / test image transforms (torchvision.transforms.v2), PIL image -> float tensor.

Train: resize to the model's input size (160x64 by default), horizontal flip, optional
pad(10) + random crop back to size, to float, ImageNet normalisation, random erasing.

Random erasing is torchvision's `RandomErasing(p, scale=erasing_area,
ratio=erasing_ratio, value=0)`. It differs from the reference (Zhong et al.) in three
ways that we accept: torchvision samples the aspect ratio log-uniformly (reference:
uniform in [0.3, 1/0.3]), tries 10 times to fit a rectangle (reference: 100), and fills
with 0, which after Normalize is the ImageNet mean (reference: the per-channel mean
before normalisation, i.e. the same colour).
"""

from __future__ import annotations

import torch
from torchvision.transforms import InterpolationMode
from torchvision.transforms import v2 as T

from ..config import DataConfig

__all__ = ["IMAGENET_MEAN", "IMAGENET_STD", "PAD", "resize", "build_train_transform", "build_test_transform"]

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
PAD = 10  # pixels of black padding before the random crop (the paper's pad 10)


def resize(height: int, width: int) -> T.Resize:
    """The one resize every path uses (train, test, the device cache): bilinear, antialiased."""
    return T.Resize((height, width), interpolation=InterpolationMode.BILINEAR, antialias=True)


def _to_normalised_tensor() -> list[T.Transform]:
    return [T.ToImage(), T.ToDtype(torch.float32, scale=True), T.Normalize(IMAGENET_MEAN, IMAGENET_STD)]


def build_train_transform(cfg: DataConfig | None = None, height: int = 160, width: int = 64) -> T.Compose:
    """Augmenting transform for training (settings from `cfg`, DataConfig() by default)."""
    cfg = cfg if cfg is not None else DataConfig()
    steps: list[T.Transform] = [resize(height, width)]
    if cfg.flip:
        steps.append(T.RandomHorizontalFlip(p=0.5))
    if cfg.pad_crop:
        steps += [T.Pad(PAD), T.RandomCrop((height, width))]
    steps += _to_normalised_tensor()
    if cfg.erasing_p > 0:
        steps.append(
            T.RandomErasing(p=cfg.erasing_p, scale=tuple(cfg.erasing_area), ratio=tuple(cfg.erasing_ratio), value=0)
        )
    steps.append(T.ToPureTensor())  # a plain torch.Tensor, not a tv_tensors.Image
    return T.Compose(steps)


def build_test_transform(height: int = 160, width: int = 64) -> T.Compose:
    """Deterministic transform for evaluation: resize, to float, normalise."""
    return T.Compose([resize(height, width), *_to_normalised_tensor(), T.ToPureTensor()])
