"""Batched training augmentation on the device: uint8 [B, 3, H, W] -> normalised float.

The torchvision path's steps and distributions (flip, pad + crop, normalisation, random
erasing), drawn per sample for the whole batch at once; only the order of the random
numbers differs (tests/core/test_device_pipeline.py checks the statistics). Each step, and
why not torchvision.transforms.v2: docs/ARCHITECTURE.md, "Module notes: reid_core/data/device_augment.py".
"""

from __future__ import annotations

import functools
import math

import torch
import torch.nn.functional as F

from ..config import DataConfig
from .transforms import IMAGENET_MEAN, IMAGENET_STD, PAD

__all__ = ["BatchAugment", "normalise", "ERASING_TRIES"]

ERASING_TRIES = 10  # torchvision's RandomErasing


@functools.lru_cache(maxsize=8)
def _mean_std(device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    # made once per device: a host-to-device copy per batch would sync the CUDA stream every step
    mean = torch.tensor(IMAGENET_MEAN, device=device, dtype=torch.float32).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD, device=device, dtype=torch.float32).view(1, 3, 1, 1)
    return mean, std


def normalise(images: torch.Tensor, channels_last: bool = False) -> torch.Tensor:
    """uint8 [B, 3, H, W] -> float32 normalised as ToDtype(scale=True) + Normalize do it;
    `channels_last`: in the memory format the GPU step runs in."""
    x = images.to(torch.float32).mul_(1.0 / 255)  # torchvision to_dtype_image, op for op
    mean, std = _mean_std(x.device)
    x = x.sub_(mean).div_(std)
    return x.contiguous(memory_format=torch.channels_last) if channels_last else x


class BatchAugment:
    """Callable: `aug(uint8 batch, generator=None) -> float batch` (see module docstring)."""

    def __init__(self, cfg: DataConfig | None = None) -> None:
        cfg = cfg if cfg is not None else DataConfig()
        self.flip = cfg.flip
        self.pad_crop = cfg.pad_crop
        self.erasing_p = float(cfg.erasing_p)
        self.area = tuple(float(a) for a in cfg.erasing_area)
        self.log_ratio = (math.log(cfg.erasing_ratio[0]), math.log(cfg.erasing_ratio[1]))

    def __call__(self, images: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        if images.dtype != torch.uint8 or images.dim() != 4:
            raise ValueError(
                f"BatchAugment: expected a uint8 [B, C, H, W] batch, got {images.dtype} {tuple(images.shape)}"
            )
        batch = normalise(self.geometry(images, generator))
        if self.erasing_p > 0:
            batch.masked_fill_(self.erasing_mask(batch.shape, batch.device, generator)[:, None], 0.0)
        return batch

    def geometry(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """Flip (p 0.5) then pad(10) + crop, per image, as ONE gather on the uint8 batch.

        Flipping then padding equals padding then flipping (the padding is symmetric), so
        output (y, x) = padded[top + y, left + x], or padded[top + y, Wp - 1 - (left + x)]
        for a flipped image: torchvision's RandomHorizontalFlip -> Pad -> RandomCrop.
        """
        if not (self.flip or self.pad_crop):
            return x
        b, c, h, w = x.shape
        dev = x.device
        flip = torch.rand(b, device=dev, generator=generator) < 0.5 if self.flip else None
        if self.pad_crop:
            off = self.crop_offsets(b, dev, generator)
            src = F.pad(x, (PAD, PAD, PAD, PAD), value=0)  # black padding, as T.Pad(10)
        else:
            off = torch.zeros((b, 2), dtype=torch.long, device=dev)
            src = x
        pw = src.shape[3]
        cols = off[:, 1:2] + torch.arange(w, device=dev)  # [B, W]
        if flip is not None:
            cols = torch.where(flip[:, None], pw - 1 - cols, cols)
        rows = off[:, 0:1] + torch.arange(h, device=dev)  # [B, H]
        idx = (rows[:, :, None] * pw + cols[:, None, :]).view(b, 1, h * w).expand(b, c, h * w)
        return src.reshape(b, c, -1).gather(2, idx).view(b, c, h, w)

    @staticmethod
    def crop_offsets(b: int, device: torch.device, generator: torch.Generator | None = None) -> torch.Tensor:
        """[B, 2] (top, left) offsets into the padded image, uniform in [0, 2 x PAD]."""
        return torch.randint(0, 2 * PAD + 1, (b, 2), device=device, generator=generator)

    def erasing_params(
        self, b: int, h: int, w: int, device: torch.device, generator: torch.Generator | None = None
    ) -> dict[str, torch.Tensor]:
        """Per-image rectangles: `erase` [B] bool, `top`, `left`, `height`, `width` [B] int."""
        tries = ERASING_TRIES
        area = h * w * torch.empty(b, tries, device=device).uniform_(*self.area, generator=generator)
        aspect = torch.exp(torch.empty(b, tries, device=device).uniform_(*self.log_ratio, generator=generator))
        eh = torch.sqrt(area * aspect).round().long()
        ew = torch.sqrt(area / aspect).round().long()
        fits = (eh < h) & (ew < w)
        first = fits.long().argmax(dim=1)  # index of the first try that fits (0 if none)
        eh = eh.gather(1, first[:, None])[:, 0]
        ew = ew.gather(1, first[:, None])[:, 0]
        position = torch.rand(b, 2, device=device, generator=generator)  # uniform in [0, 1)^2
        top = torch.minimum((position[:, 0] * (h - eh + 1)).floor().long(), h - eh)
        left = torch.minimum((position[:, 1] * (w - ew + 1)).floor().long(), w - ew)
        coin = torch.rand(b, device=device, generator=generator) < self.erasing_p
        return {"erase": coin & fits.any(dim=1), "top": top, "left": left, "height": eh, "width": ew}

    def erasing_mask(
        self, shape: torch.Size, device: torch.device, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        """[B, H, W] bool: True inside the image's rectangle (all False if not erased)."""
        b, _c, h, w = shape
        rect = self.erasing_params(b, h, w, device, generator)
        rows = torch.arange(h, device=device)[None, :]
        cols = torch.arange(w, device=device)[None, :]
        in_rows = (
            (rows >= rect["top"][:, None]) & (rows < (rect["top"] + rect["height"])[:, None]) & rect["erase"][:, None]
        )
        in_cols = (cols >= rect["left"][:, None]) & (cols < (rect["left"] + rect["width"])[:, None])
        return in_rows[:, :, None] & in_cols[:, None, :]
