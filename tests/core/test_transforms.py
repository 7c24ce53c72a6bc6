"""Train / test transforms: output shapes, normalisation, random erasing."""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image

from reid_core.config import DataConfig
from reid_core.data.transforms import IMAGENET_MEAN, IMAGENET_STD, build_test_transform, build_train_transform


def _img(h=128, w=64, seed=0):
    return Image.fromarray(np.random.default_rng(seed).integers(1, 255, (h, w, 3), dtype=np.uint8))


def test_shapes_and_plain_tensors():
    for t in (build_train_transform(DataConfig(pad_crop=True)), build_test_transform()):
        x = t(_img(100, 37))
        assert type(x) is torch.Tensor and x.shape == (3, 160, 64) and x.dtype == torch.float32
    assert build_train_transform(DataConfig(), 128, 48)(_img()).shape == (3, 128, 48)


def test_test_transform_normalises():
    x = build_test_transform(8, 4)(Image.new("RGB", (4, 8), (255, 0, 128)))
    expect = (torch.tensor([1.0, 0.0, 128 / 255]) - torch.tensor(IMAGENET_MEAN)) / torch.tensor(IMAGENET_STD)
    torch.testing.assert_close(x[:, 0, 0], expect, atol=1e-5, rtol=0)


def _erased_fraction(x: torch.Tensor) -> float:
    return float((x == 0).all(dim=0).float().mean())


def test_random_erasing_p1_always_and_p0_never():
    torch.manual_seed(0)
    on = build_train_transform(DataConfig(erasing_p=1.0, flip=False))
    off = build_train_transform(DataConfig(erasing_p=0.0, flip=False))
    fractions = [_erased_fraction(on(_img(seed=i))) for i in range(20)]
    # area in [0.02, 0.4] of the image; torchvision gives up (no erase) after 10 failed tries: rare
    assert sum(f > 0 for f in fractions) >= 18
    assert all(f <= 0.41 for f in fractions)
    assert all(_erased_fraction(off(_img(seed=i))) == 0 for i in range(20))


def test_flip_is_random_and_test_transform_deterministic():
    torch.manual_seed(0)
    t = build_train_transform(DataConfig(erasing_p=0.0, flip=True))
    img = _img()
    outs = [t(img) for _ in range(20)]
    flipped = sum(torch.equal(o, outs[0].flip(2)) for o in outs)
    assert 0 < flipped < 20
    assert torch.equal(build_test_transform()(img), build_test_transform()(img))
