"""data.pipeline=device: the uint8 split cache, batched augmentation statistics, memory
check, device-side ranking. Statistical tests use fixed seeds and wide tolerances (several
standard deviations), so they cannot flake."""

from __future__ import annotations

import hashlib
import math
import multiprocessing as mp
import os

import numpy as np
import pytest
import torch
from PIL import Image
from torchvision.transforms import v2 as T

from reid_core.config import DataConfig
from reid_core.data import ImageDataset, build_test_transform, load_dataset
from reid_core.data.device_augment import PAD, BatchAugment, normalise
from reid_core.data.device_cache import load_or_build
from reid_core.data.device_pipeline import check_fits
from reid_core.errors import DataError
from reid_core.evaluation import compute_distance, evaluate, evaluate_features

H, W = 160, 64


# ---------------------------------------------------------------------------------
# augmentation


def _coords(b: int) -> torch.Tensor:
    """uint8 images whose channel 0 = row + 1, channel 1 = column + 1 (0 = padding)."""
    x = torch.zeros(b, 3, H, W, dtype=torch.uint8)
    x[:, 0] = (torch.arange(H) + 1)[:, None].to(torch.uint8)
    x[:, 1] = (torch.arange(W) + 1)[None, :].to(torch.uint8)
    x[:, 2] = 200
    return x


def _geometry(seed: int, n: int, flip: bool, pad_crop: bool) -> tuple[BatchAugment, torch.Tensor, torch.Tensor]:
    torch.manual_seed(seed)
    aug = BatchAugment(DataConfig(flip=flip, pad_crop=pad_crop, erasing_p=0.0))
    x = _coords(n)
    return aug, x, aug.geometry(x)


def test_flip_rate_is_one_half_per_image():
    n = 20_000
    aug, x, out = _geometry(0, n, flip=True, pad_crop=False)
    flipped = out[:, 1, 0, 0] == W  # first column shows the last one
    assert torch.equal(out[flipped], x[flipped].flip(3)) and torch.equal(out[~flipped], x[~flipped])
    rate = flipped.float().mean().item()
    print(f"flip rate {rate:.4f} over {n} images")
    assert abs(rate - 0.5) < 0.02  # sd 0.0035
    y = aug(x[:64])
    assert y.dtype == torch.float32 and y.shape == (64, 3, H, W)


def test_pad_crop_offsets_are_uniform_per_image_and_match_pad_then_crop():
    n = 21_000
    _aug, x, out = _geometry(1, n, flip=False, pad_crop=True)
    # the centre pixel is never padding: it names its source row / column
    top = out[:, 0, H // 2, W // 2].long() - 1 - H // 2 + PAD
    left = out[:, 1, H // 2, W // 2].long() - 1 - W // 2 + PAD
    for off in (top, left):
        assert int(off.min()) == 0 and int(off.max()) == 2 * PAD
        counts = torch.bincount(off, minlength=2 * PAD + 1).float()
        expected = n / (2 * PAD + 1)
        print(f"crop offset counts min {int(counts.min())} max {int(counts.max())} (expected {expected:.0f})")
        assert (counts - expected).abs().max() < 0.2 * expected  # sd ~ 0.03 x expected
    assert (top * 21 + left).unique().numel() > 400  # per-image offsets, not one per batch
    padded = torch.nn.functional.pad(x[:50], (PAD, PAD, PAD, PAD))
    for b in range(50):  # exactly T.Pad(10) + crop at that offset
        i, j = int(top[b]), int(left[b])
        assert torch.equal(out[b], padded[b, :, i : i + H, j : j + W])


def test_flip_and_crop_together_are_flip_then_pad_then_crop():
    aug = BatchAugment(DataConfig(flip=True, pad_crop=True, erasing_p=0.0))
    x = torch.randint(0, 256, (64, 3, H, W), dtype=torch.uint8, generator=torch.Generator().manual_seed(7))
    out = aug.geometry(x, torch.Generator().manual_seed(8))
    g = torch.Generator().manual_seed(8)  # the same draws, in the same order
    flip = torch.rand(64, generator=g) < 0.5
    off = torch.randint(0, 2 * PAD + 1, (64, 2), generator=g)
    assert 10 < int(flip.sum()) < 54
    for b in range(64):
        img = x[b].flip(2) if flip[b] else x[b]
        padded = torch.nn.functional.pad(img, (PAD, PAD, PAD, PAD))
        i, j = int(off[b, 0]), int(off[b, 1])
        assert torch.equal(out[b], padded[:, i : i + H, j : j + W]), b


def test_erasing_statistics_match_torchvision_and_the_paper_ranges():
    cfg = DataConfig(erasing_p=0.5, erasing_area=(0.02, 0.4), erasing_ratio=(0.3, 3.3))
    aug = BatchAugment(cfg)
    n = 40_000
    g = torch.Generator().manual_seed(2)
    p = aug.erasing_params(n, H, W, torch.device("cpu"), generator=g)
    e = p["erase"]
    area = (p["height"] * p["width"]).float()[e] / (H * W)
    log_aspect = torch.log(p["height"].float()[e] / p["width"].float()[e])
    rate = e.float().mean().item()
    # torchvision's RandomErasing on single images, same parameters (its own loop of 10 tries)
    torch.manual_seed(3)
    ref = T.RandomErasing(p=1.0, scale=cfg.erasing_area, ratio=cfg.erasing_ratio, value=0)
    m = 3000
    ref_area, ref_aspect, ref_none = [], [], 0
    for _ in range(m):
        prm = ref.make_params([torch.empty(3, H, W)])
        if prm["v"] is None:
            ref_none += 1
            continue
        ref_area.append(prm["h"] * prm["w"] / (H * W))
        ref_aspect.append(math.log(prm["h"] / prm["w"]))
    print(
        f"erasing: rate {rate:.4f} (p 0.5 x fits {1 - ref_none / m:.4f}); area mean {area.mean():.4f} "
        f"(torchvision {np.mean(ref_area):.4f}) range [{area.min():.4f}, {area.max():.4f}]; log-aspect mean "
        f"{log_aspect.mean():.4f} (torchvision {np.mean(ref_aspect):.4f}) range "
        f"[{math.exp(log_aspect.min()):.3f}, {math.exp(log_aspect.max()):.3f}]"
    )
    assert abs(rate - 0.5 * (1 - ref_none / m)) < 0.02
    # the paper's ranges, up to the rounding of h and w to whole pixels
    assert 0.02 * 0.85 <= float(area.min()) and float(area.max()) <= 0.4 * 1.1
    assert math.log(0.3) - 0.15 <= float(log_aspect.min()) and float(log_aspect.max()) <= math.log(3.3) + 0.15
    assert bool((p["height"][e] < H).all() and (p["width"][e] < W).all())
    # same distribution as torchvision (means within several standard errors)
    assert abs(float(area.mean()) - np.mean(ref_area)) < 0.015  # se ~ 0.002
    assert abs(float(log_aspect.mean()) - np.mean(ref_aspect)) < 0.08  # se ~ 0.013
    # inside the image, and one rectangle per image
    assert bool(((p["top"] + p["height"]) <= H).all() and ((p["left"] + p["width"]) <= W).all())
    assert bool((p["top"] >= 0).all() and (p["left"] >= 0).all())
    rects = torch.stack([p["top"], p["left"], p["height"], p["width"]], 1)[e]
    assert rects.unique(dim=0).shape[0] > 0.9 * rects.shape[0]


def test_erasing_fills_zero_after_normalisation_inside_each_rectangle():
    aug = BatchAugment(DataConfig(flip=False, pad_crop=False, erasing_p=0.5))
    x = torch.full((256, 3, H, W), 100, dtype=torch.uint8)
    g = torch.Generator().manual_seed(4)
    out = aug(x, generator=g)
    g = torch.Generator().manual_seed(4)
    mask = aug.erasing_mask(x.shape, x.device, generator=g)
    assert torch.equal(out == 0, mask[:, None].expand_as(out))  # the base colour is never exactly 0
    assert torch.equal(out[~mask[:, None].expand_as(out)], normalise(x)[~mask[:, None].expand_as(out)])
    sizes = mask.flatten(1).sum(1)
    assert 0.3 < (sizes > 0).float().mean().item() < 0.7


def test_normalise_equals_the_torchvision_test_transform():
    rng = np.random.default_rng(0)
    img = Image.fromarray(rng.integers(0, 256, size=(H, W, 3), dtype=np.uint8))
    ref = build_test_transform(H, W)(img)
    mine = normalise(torch.from_numpy(np.array(img)).permute(2, 0, 1)[None])[0]
    assert torch.equal(ref, mine)


# ---------------------------------------------------------------------------------
# cache


@pytest.fixture()
def small_data(tmp_path):
    from reid_core.data.synth import generate

    root = tmp_path / "market"
    generate(root, num_ids=6, num_cameras=2, images_per_id=4, seed=5, workers=1)
    return root


def _build(root, log=None, split="train", h=H, w=W):
    ds = load_dataset(root)
    return load_or_build(getattr(ds, split), root, split, h, w, workers=0, log=log, progress=False)


def test_cache_holds_the_torchvision_pixels_and_is_reused(small_data):
    first = _build(small_data)
    assert first.built and first.path.parent == small_data / ".reid-cache"
    again = _build(small_data)
    assert not again.built and torch.equal(first.images, again.images)
    ds = load_dataset(small_data)
    ref = ImageDataset(ds.train, build_test_transform(H, W))
    for i in (0, len(ref) - 1):
        assert torch.equal(normalise(first.images[i : i + 1])[0], ref[i][0])
    other = _build(small_data, h=128, w=64)  # another input size: another file
    assert other.built and other.images.shape[2:] == (128, 64)


def test_truncated_or_corrupted_cache_is_rebuilt(small_data):
    first = _build(small_data)
    data = first.path.read_bytes()
    logs: list[str] = []
    first.path.write_bytes(data[: len(data) - 100])  # truncated
    r = _build(small_data, log=logs.append)
    assert r.built and torch.equal(r.images, first.images)
    assert any("truncated or does not match" in m for m in logs)
    flipped = bytearray(first.path.read_bytes())
    flipped[-10] ^= 0xFF  # same size, one payload byte changed: the digest catches it
    first.path.write_bytes(bytes(flipped))
    r = _build(small_data)
    assert r.built and torch.equal(r.images, first.images)


def test_another_dataset_version_is_detected_and_rebuilt(small_data):
    first = _build(small_data)
    ds = load_dataset(small_data)
    path = ds.train[0].path
    Image.new("RGB", (64, 128), (255, 0, 0)).save(path, quality=95)  # the dataset changed
    r = _build(small_data)
    assert r.built
    assert not torch.equal(r.images[0], first.images[0]) and torch.equal(r.images[1:], first.images[1:])
    assert int(r.images[0, 0].float().mean()) > 240  # the new red image
    assert sorted(p.name for p in (small_data / ".reid-cache").glob("*.u8")) == ["train-160x64.u8"]


def test_read_only_cache_dir_falls_back_to_the_user_cache(small_data, tmp_path, monkeypatch):
    (small_data / ".reid-cache").write_text("a file where the cache folder would go")  # unwritable
    user = tmp_path / "user-cache"
    monkeypatch.setenv("COMPACT_REID_CACHE", str(user))
    logs: list[str] = []
    r = _build(small_data, log=logs.append)
    assert r.built and r.path.parent == user
    assert any("not writable" in m and str(user) in m for m in logs)


def _race_worker(root: str, barrier, queue) -> None:
    ds = load_dataset(root)
    barrier.wait()
    r = load_or_build(ds.train, root, "train", H, W, workers=0, progress=False)
    queue.put((r.built, hashlib.sha256(r.images.numpy().tobytes()).hexdigest(), str(r.path)))


def test_two_processes_racing_build_the_cache_once(small_data):
    ctx = mp.get_context("spawn")
    barrier, queue = ctx.Barrier(2), ctx.Queue()
    procs = [ctx.Process(target=_race_worker, args=(str(small_data), barrier, queue)) for _ in range(2)]
    for p in procs:
        p.start()
    results = [queue.get(timeout=300) for _ in procs]
    for p in procs:
        p.join(timeout=60)
        assert p.exitcode == 0
    built = [b for b, _, _ in results]
    print(f"race: built flags {built}")
    assert sorted(built) == [False, True]  # decoded once, loaded by the other
    assert results[0][1] == results[1][1] and results[0][2] == results[1][2]
    files = sorted(p.name for p in (small_data / ".reid-cache").iterdir())
    assert [f for f in files if not f.endswith(".lock")] == ["train-160x64.u8"]  # no temp file left
    r = _build(small_data)
    assert not r.built and hashlib.sha256(r.images.numpy().tobytes()).hexdigest() == results[0][1]


# ---------------------------------------------------------------------------------
# memory check and device-side ranking


def test_a_dataset_too_large_for_the_device_names_the_size_and_the_fallback():
    with pytest.raises(DataError, match=r"3\.00 GiB.*1\.00 GiB.*data\.pipeline=torchvision"):
        check_fits(3 * 2**30, torch.device("cpu"), "the images", available=2**30)
    check_fits(2**20, torch.device("cpu"), "the images", available=2**30)


@pytest.mark.parametrize("seed", [0, 1])
def test_device_ranking_gives_the_same_numbers_as_evaluate(seed):
    rng = np.random.default_rng(seed)
    nq, ng, d = 300, 2000, 32
    q_pids = rng.integers(1, 60, nq)
    g_pids = np.concatenate([rng.integers(1, 60, ng - 200), np.zeros(200, dtype=np.int64)])  # + distractors
    q_cams, g_cams = rng.integers(1, 7, nq), rng.integers(1, 7, ng)
    qf = torch.nn.functional.normalize(torch.from_numpy(rng.normal(size=(nq, d)).astype(np.float32)), dim=1)
    gf = torch.nn.functional.normalize(torch.from_numpy(rng.normal(size=(ng, d)).astype(np.float32)), dim=1)
    gf[100:110] = gf[99]  # exact ties: broken by the gallery index in both
    qf[:5] = gf[:5]  # zero distances
    ref = evaluate(compute_distance(qf, gf), q_pids, g_pids, q_cams, g_cams, max_rank=50)
    mine = evaluate_features(qf, gf, q_pids, g_pids, q_cams, g_cams, max_rank=50, chunk_size=128)
    for k in ("rank1", "rank5", "rank10", "mAP", "mINP", "num_valid_queries", "num_queries"):
        assert mine[k] == ref[k], k
    assert np.array_equal(mine["cmc"], ref["cmc"])


def test_device_ranking_rejects_an_empty_problem():
    with pytest.raises(DataError, match="empty"):
        evaluate_features(torch.zeros(0, 4), torch.zeros(3, 4), [], [1, 2, 3], [], [1, 1, 1])


def test_cache_outside_the_dataset_is_not_touched_by_a_missing_image(small_data):
    ds = load_dataset(small_data)
    os.remove(ds.train[0].path)
    with pytest.raises(DataError, match="cannot read image"):
        load_or_build(ds.train, small_data, "train", H, W, workers=0, progress=False)
    assert not list((small_data / ".reid-cache").glob("*.u8"))
