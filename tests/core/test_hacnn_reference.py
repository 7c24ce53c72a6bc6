"""The `hacnn` preset against torchreid's HA-CNN (torchreid/models/hacnn.py).

torchreid is not a dependency: its parameter names and shapes are written out below, the
weights are random (fixed seed), and `reference_forward` re-computes torchreid's forward
with torch.nn.functional from that state dict alone, independently of reid_core's modules.
"""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from reid_core.errors import CheckpointError
from reid_core.models import build_model
from reid_core.models.torchreid_compat import load_torchreid_hacnn
from reid_core.presets import preset_config

NUM_CLASSES = 11
CHANNELS = (128, 256, 384)  # torchreid's nchannels
FEAT_DIM = 512
CROP_SIZES = ((24, 28), (12, 14), (6, 7))
REGION_SCALE = (1.0, 0.25)
BN_EPS = 1e-5

# --------------------------------------------------------------------------------------
# torchreid's state-dict layout


def _conv_block(shapes: dict, name: str, cin: int, cout: int, k: int) -> None:
    """torchreid ConvBlock: conv (with bias) + bn."""
    shapes[f"{name}.conv.weight"] = (cout, cin, k, k)
    shapes[f"{name}.conv.bias"] = (cout,)
    for leaf in ("weight", "bias", "running_mean", "running_var"):
        shapes[f"{name}.bn.{leaf}"] = (cout,)
    shapes[f"{name}.bn.num_batches_tracked"] = ()


def _inception_a(shapes: dict, name: str, cin: int, cout: int) -> None:
    mid = cout // 4
    for s in (1, 2, 3):
        _conv_block(shapes, f"{name}.stream{s}.0", cin, mid, 1)
        _conv_block(shapes, f"{name}.stream{s}.1", mid, mid, 3)
    _conv_block(shapes, f"{name}.stream4.1", cin, mid, 1)  # stream4.0 is the avg pool


def _inception_b(shapes: dict, name: str, cin: int, cout: int) -> None:
    mid = cout // 4
    _conv_block(shapes, f"{name}.stream1.0", cin, mid, 1)
    _conv_block(shapes, f"{name}.stream1.1", mid, mid, 3)
    _conv_block(shapes, f"{name}.stream2.0", cin, mid, 1)
    _conv_block(shapes, f"{name}.stream2.1", mid, mid, 3)
    _conv_block(shapes, f"{name}.stream2.2", mid, mid, 3)
    _conv_block(shapes, f"{name}.stream3.1", cin, mid * 2, 1)  # stream3.0 is the max pool


def _fc_bn(shapes: dict, name: str, cin: int, cout: int) -> None:
    shapes[f"{name}.0.weight"] = (cout, cin)
    shapes[f"{name}.0.bias"] = (cout,)
    for leaf in ("weight", "bias", "running_mean", "running_var"):
        shapes[f"{name}.1.{leaf}"] = (cout,)
    shapes[f"{name}.1.num_batches_tracked"] = ()


def torchreid_hacnn_shapes(num_classes: int) -> dict[str, tuple[int, ...]]:
    """Every key of torchreid's HACNN(num_classes).state_dict() with its shape."""
    shapes: dict[str, tuple[int, ...]] = {}
    _conv_block(shapes, "conv", 3, 32, 3)
    cin = 32
    for i, c in enumerate(CHANNELS, 1):
        _inception_a(shapes, f"inception{i}.0", cin, c)
        _inception_b(shapes, f"inception{i}.1", c, c)
        _conv_block(shapes, f"ha{i}.soft_attn.spatial_attn.conv1", 1, 1, 3)
        _conv_block(shapes, f"ha{i}.soft_attn.spatial_attn.conv2", 1, 1, 1)
        _conv_block(shapes, f"ha{i}.soft_attn.channel_attn.conv1", c, c // 16, 1)
        _conv_block(shapes, f"ha{i}.soft_attn.channel_attn.conv2", c // 16, c, 1)
        _conv_block(shapes, f"ha{i}.soft_attn.conv", c, c, 1)
        shapes[f"ha{i}.hard_attn.fc.weight"] = (8, c)
        shapes[f"ha{i}.hard_attn.fc.bias"] = (8,)
        cin = c
    _fc_bn(shapes, "fc_global", CHANNELS[2], FEAT_DIM)
    shapes["classifier_global.weight"] = (num_classes, FEAT_DIM)
    shapes["classifier_global.bias"] = (num_classes,)
    for i, (ci, co) in enumerate(zip((32,) + CHANNELS[:2], CHANNELS), 1):
        _inception_b(shapes, f"local_conv{i}", ci, co)
    _fc_bn(shapes, "fc_local", CHANNELS[2] * 4, FEAT_DIM)
    shapes["classifier_local.weight"] = (num_classes, FEAT_DIM)
    shapes["classifier_local.bias"] = (num_classes,)
    return shapes


def random_torchreid_state(seed: int = 0, conv_bias: bool = False) -> dict[str, torch.Tensor]:
    """Random weights of torchreid's layout; activations stay O(1) (He-scaled convs)."""
    g = torch.Generator().manual_seed(seed)
    hard_attn_bias = torch.tensor([0, -0.75, 0, -0.25, 0, 0.25, 0, 0.75])  # torchreid's init
    state: dict[str, torch.Tensor] = {}
    for key, shape in torchreid_hacnn_shapes(NUM_CLASSES).items():
        leaf = key.rsplit(".", 1)[-1]
        if leaf == "num_batches_tracked":
            t = torch.tensor(0, dtype=torch.long)
        elif ".hard_attn.fc." in key:
            # small random weights: the regions move per image, well inside the map
            t = torch.randn(shape, generator=g) * 0.02 if leaf == "weight" else hard_attn_bias.clone()
        elif len(shape) == 4:
            t = torch.randn(shape, generator=g) * math.sqrt(2.0 / (shape[1] * shape[2] * shape[3]))
        elif len(shape) == 2:
            t = torch.randn(shape, generator=g) / math.sqrt(shape[1])
        elif ".conv.bias" in key:
            t = torch.randn(shape, generator=g) * 0.2 if conv_bias else torch.zeros(shape)
        elif leaf in ("running_var", "weight"):
            t = torch.rand(shape, generator=g) + 0.5
        else:  # BN bias, running_mean, Linear bias
            t = torch.randn(shape, generator=g) * 0.1
        state[key] = t
    return state


# --------------------------------------------------------------------------------------
# torchreid's forward, re-computed with torch.nn.functional


def _cb(p: dict, name: str, x: torch.Tensor, stride: int = 1, padding: int = 0, train: bool = False) -> torch.Tensor:
    y = F.conv2d(x, p[f"{name}.conv.weight"], p[f"{name}.conv.bias"], stride=stride, padding=padding)
    y = F.batch_norm(
        y,
        p[f"{name}.bn.running_mean"].clone(),
        p[f"{name}.bn.running_var"].clone(),
        p[f"{name}.bn.weight"],
        p[f"{name}.bn.bias"],
        training=train,
        eps=BN_EPS,
    )
    return F.relu(y)


def _inc_a(p: dict, name: str, x: torch.Tensor, train: bool) -> torch.Tensor:
    s = [
        _cb(p, f"{name}.stream{i}.1", _cb(p, f"{name}.stream{i}.0", x, train=train), padding=1, train=train)
        for i in (1, 2, 3)
    ]
    s.append(_cb(p, f"{name}.stream4.1", F.avg_pool2d(x, 3, stride=1, padding=1), train=train))
    return torch.cat(s, dim=1)


def _inc_b(p: dict, name: str, x: torch.Tensor, train: bool) -> torch.Tensor:
    s1 = _cb(p, f"{name}.stream1.1", _cb(p, f"{name}.stream1.0", x, train=train), 2, 1, train)
    s2 = _cb(p, f"{name}.stream2.0", x, train=train)
    s2 = _cb(p, f"{name}.stream2.2", _cb(p, f"{name}.stream2.1", s2, 1, 1, train), 2, 1, train)
    s3 = _cb(p, f"{name}.stream3.1", F.max_pool2d(x, 3, stride=2, padding=1), train=train)
    return torch.cat([s1, s2, s3], dim=1)


def _harm_attn(p: dict, name: str, x: torch.Tensor, train: bool) -> tuple[torch.Tensor, torch.Tensor]:
    sp = _cb(p, f"{name}.soft_attn.spatial_attn.conv1", x.mean(1, keepdim=True), 2, 1, train)
    sp = F.interpolate(sp, (sp.shape[2] * 2, sp.shape[3] * 2), mode="bilinear", align_corners=True)
    sp = _cb(p, f"{name}.soft_attn.spatial_attn.conv2", sp, train=train)
    ch = _cb(p, f"{name}.soft_attn.channel_attn.conv1", F.avg_pool2d(x, x.shape[2:]), train=train)
    ch = _cb(p, f"{name}.soft_attn.channel_attn.conv2", ch, train=train)
    mask = torch.sigmoid(_cb(p, f"{name}.soft_attn.conv", sp * ch, train=train))
    pooled = F.avg_pool2d(x, x.shape[2:]).flatten(1)
    theta = torch.tanh(F.linear(pooled, p[f"{name}.hard_attn.fc.weight"], p[f"{name}.hard_attn.fc.bias"]))
    return mask, theta.view(-1, 4, 2)


def _stn_region(x: torch.Tensor, t: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    theta = torch.zeros(x.shape[0], 2, 3, dtype=x.dtype)
    theta[:, 0, 0], theta[:, 1, 1] = REGION_SCALE
    theta[:, :, 2] = t
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    out = F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    return F.interpolate(out, size, mode="bilinear", align_corners=True)


def _fc_bn_relu(p: dict, name: str, x: torch.Tensor, train: bool) -> torch.Tensor:
    y = F.linear(x, p[f"{name}.0.weight"], p[f"{name}.0.bias"])
    y = F.batch_norm(
        y,
        p[f"{name}.1.running_mean"].clone(),
        p[f"{name}.1.running_var"].clone(),
        p[f"{name}.1.weight"],
        p[f"{name}.1.bias"],
        training=train,
        eps=BN_EPS,
    )
    return F.relu(y)


def reference_forward(p: dict, img: torch.Tensor, train: bool = False):
    """torchreid HACNN.forward (learn_region=True): eval -> [N, 1024] embedding; train ->
    (global logits, local logits, global feature, local feature)."""
    x = _cb(p, "conv", img, 2, 1, train)
    crop_source, local = x, None
    for i, size in enumerate(CROP_SIZES, 1):
        xi = _inc_b(p, f"inception{i}.1", _inc_a(p, f"inception{i}.0", crop_source, train), train)
        mask, theta = _harm_attn(p, f"ha{i}", xi, train)
        regions = []
        for r in range(4):
            crop = _stn_region(crop_source, theta[:, r], size)
            regions.append(_inc_b(p, f"local_conv{i}", crop if local is None else crop + local[r], train))
        local = regions
        crop_source = xi * mask
    g = _fc_bn_relu(p, "fc_global", F.avg_pool2d(crop_source, crop_source.shape[2:]).flatten(1), train)
    loc = torch.cat([F.avg_pool2d(r, r.shape[2:]).flatten(1) for r in local], dim=1)
    loc = _fc_bn_relu(p, "fc_local", loc, train)
    if not train:
        return torch.cat([g / g.norm(dim=1, keepdim=True), loc / loc.norm(dim=1, keepdim=True)], dim=1)
    lg = F.linear(g, p["classifier_global.weight"], p["classifier_global.bias"])
    ll = F.linear(loc, p["classifier_local.weight"], p["classifier_local.bias"])
    return lg, ll, g, loc


# --------------------------------------------------------------------------------------


def hacnn_model():
    return build_model(preset_config("hacnn", {"model.num_classes": NUM_CLASSES}).model)


def images(n: int = 3, seed: int = 1) -> torch.Tensor:
    return torch.randn(n, 3, 160, 64, generator=torch.Generator().manual_seed(seed))


def embedding_difference(state: dict[str, torch.Tensor], model: torch.nn.Module | None = None) -> float:
    """max |embedding(reid_core hacnn) - embedding(reference)| in eval mode."""
    model = model or hacnn_model()
    load_torchreid_hacnn(model, state)
    x = images()
    with torch.no_grad():
        ours = model.eval()(x)
        ref = reference_forward(state, x)
    assert ours.shape == ref.shape == (3, 2 * FEAT_DIM)
    return float((ours - ref).abs().max())


def test_state_layout_is_torchreid_hacnn() -> None:
    shapes = torchreid_hacnn_shapes(NUM_CLASSES)
    n_params = sum(
        math.prod(s)
        for k, s in shapes.items()
        if not k.endswith(("running_mean", "running_var", "num_batches_tracked"))
    )
    # torchreid's layout = ours + the conv biases it keeps (we fold them into BatchNorm).
    ours = sum(p.numel() for p in hacnn_model().parameters())
    conv_biases = sum(math.prod(s) for k, s in shapes.items() if k.endswith("conv.bias"))
    assert n_params == ours + conv_biases


def test_hacnn_embedding_matches_torchreid_reference() -> None:
    diff = embedding_difference(random_torchreid_state(seed=0))
    print(f"max |embedding - reference| = {diff:.2e}")
    assert diff < 1e-5


def test_conv_biases_fold_into_batchnorm() -> None:
    state = random_torchreid_state(seed=2, conv_bias=True)
    assert any(v.abs().sum() > 0 for k, v in state.items() if k.endswith("conv.bias"))
    assert embedding_difference(state) < 1e-5


def test_train_mode_global_branch_matches_reference() -> None:
    """Train mode (BN on batch statistics): the global branch and its classifier match.

    The local branch does not: torchreid runs its local convs once per region (BN
    statistics per region), reid_core once on the 4 regions stacked (docs/FIDELITY.md)."""
    # float64: batch statistics of 4 samples amplify float32 rounding to ~1e-4.
    state = {k: v.double() if v.is_floating_point() else v for k, v in random_torchreid_state(seed=3).items()}
    model = hacnn_model().double()
    load_torchreid_hacnn(model, state)
    x = images(n=4, seed=5).double()
    with torch.no_grad():
        out = model.train()(x)
        lg, _, g, _ = reference_forward(state, x, train=True)
    assert (out.features[0] - g).abs().max() < 1e-9
    assert (out.logits[0] - lg).abs().max() < 1e-9


def test_soft_attention_mask_range_is_half_to_one() -> None:
    model = hacnn_model().eval()
    load_torchreid_hacnn(model, random_torchreid_state(seed=4))
    feats = []
    hook = model.soft_attn[0].register_forward_hook(lambda _m, _i, out: feats.append(out))
    with torch.no_grad():
        model(images())
    hook.remove()
    mask = feats[0]
    assert mask.min() >= 0.5 and mask.max() < 1.0
    assert mask.min() < 0.51 and mask.max() > 0.6  # both ends reached: the ReLU does clip


def test_bad_state_is_a_clear_error() -> None:
    state = random_torchreid_state()
    with pytest.raises(CheckpointError, match="size mismatch for classifier_global.weight"):
        load_torchreid_hacnn(build_model(preset_config("hacnn", {"model.num_classes": 5}).model), state)
    with pytest.raises(CheckpointError, match="hard_attention"):
        bounded = build_model(
            preset_config("hacnn", {"model.num_classes": NUM_CLASSES, "model.hard_attention": "bounded"}).model
        )
        load_torchreid_hacnn(bounded, state)
    del state["fc_local.0.weight"]
    with pytest.raises(CheckpointError, match="head_local.fc.0.weight"):
        load_torchreid_hacnn(hacnn_model(), state)
