"""The network family: shapes, every switch, GeM, hard attention, validation, complexity."""

import math

import pytest
import torch
import torch.nn.functional as F

from reid_core.complexity import count_parameters, profile_presets
from reid_core.config import ConfigError, ModelConfig, TrainConfig, from_dict, with_overrides
from reid_core.errors import DataError
from reid_core.models import GeM, ReIDOutput, build_model
from reid_core.models.attention import HardAttention, SoftAttention, crop_regions, region_thetas
from reid_core.presets import PRESETS, preset_config

SMALL = {"width_multiplier": 0.25, "depth_multiplier": 0.3, "num_classes": 10}


def _x(n=2, h=160, w=64):
    return torch.randn(n, 3, h, w)


@pytest.mark.parametrize("block,size", [("inception", "1x"), ("shuffle", "1x"), ("shuffle", "2x")])
def test_output_shapes_train_and_eval(block, size):
    torch.manual_seed(0)
    model = build_model(block=block, size=size, num_classes=7)
    cfg = model.cfg
    model.train()
    out = model(_x(4))
    assert isinstance(out, ReIDOutput)
    assert [tuple(t.shape) for t in out.logits] == [(4, 7), (4, 7)]
    assert [tuple(t.shape) for t in out.features] == [(4, cfg.global_features), (4, cfg.local_features)]
    model.eval()
    with torch.no_grad():
        emb = model(_x(3))
    assert emb.shape == (3, cfg.embedding_dim)
    g, loc = emb[:, : cfg.global_features], emb[:, cfg.global_features :]
    assert torch.allclose(g.norm(dim=1), torch.ones(3), atol=1e-5)
    assert torch.allclose(loc.norm(dim=1), torch.ones(3), atol=1e-5)


def test_table1_dims_2x():
    cfg = ModelConfig(size="2x")
    assert cfg.stem_channels == 36 and cfg.stage_channels == (240, 320, 480)
    assert cfg.stage_repeats == (8, 11, 8) and (cfg.global_features, cfg.local_features) == (960, 700)


SWITCHES = [
    {"block": "inception"},
    {"block": "shuffle"},
    {"pooling": "avg"},
    {"pooling": "max"},
    {"pooling": "avgmax"},
    {"pooling": "gem", "gem_p_init": 4.5},
    {"neck": "l2"},
    {"neck": "bnneck"},
    {"neck": "none"},
    {"classifier_bias": True},
    {"classifier_bias": False},
    {"size": "2x"},
    {"width_multiplier": 0.5},
    {"depth_multiplier": 0.5},
    {"global_dim": 64, "local_dim": 32},
    {"gem_trainable": False},
]


@pytest.mark.parametrize("switch", SWITCHES, ids=lambda s: ",".join(f"{k}={v}" for k, v in s.items()))
def test_every_switch_forward_backward(switch):
    torch.manual_seed(0)
    model = build_model({**SMALL, **switch})
    out = model(_x(4))
    loss = sum(F.cross_entropy(lg, torch.tensor([0, 1, 2, 3])) for lg in out.logits)
    loss = loss + sum(f.pow(2).sum() for f in out.features)
    loss.backward()
    grads = [p.grad for p in model.parameters() if p.requires_grad]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)
    assert any(g.abs().sum() > 0 for g in grads)
    has_bias = model.classifier_global.bias is not None
    assert has_bias == model.cfg.classifier_bias


def test_avgmax_doubles_head_input():
    a = build_model({**SMALL, "pooling": "avg"})
    b = build_model({**SMALL, "pooling": "avgmax"})
    assert b.head_global.fc[0].in_features == 2 * a.head_global.fc[0].in_features


def test_gem_equals_avg_at_p1_and_tends_to_max():
    x = torch.rand(2, 5, 6, 4) + 0.1
    assert torch.allclose(GeM(p=1.0)(x), x.mean(dim=(2, 3)), atol=1e-6)
    big = GeM(p=80.0)(x)
    mx = x.amax(dim=(2, 3))
    assert torch.all(big <= mx + 1e-5)
    assert torch.allclose(big, mx, rtol=0.05)
    # monotone in p: closer to max as p grows
    assert (mx - GeM(p=10.0)(x)).abs().mean() > (mx - big).abs().mean()


def test_gem_float32_under_autocast_and_trainable():
    gem = GeM(3.0)
    x = (torch.rand(2, 4, 3, 3) * 1e-3).requires_grad_()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        y = gem(x.bfloat16())
    assert y.dtype == torch.float32 and torch.isfinite(y).all()
    y.sum().backward()
    assert torch.isfinite(gem.p.grad) and torch.isfinite(x.grad).all()


def test_hard_attention_crops_stay_inside_the_image():
    """model.hard_attention='bounded' (this project's variant, the config default)."""
    torch.manual_seed(0)
    attn = HardAttention(16, "bounded")
    with torch.no_grad():
        attn.fc.weight.normal_(std=100.0)  # drive tanh into saturation both ways
    x = torch.randn(64, 16, 5, 4) * 10
    t = attn(x)
    theta = region_thetas(t, attn.scale)
    grid = F.affine_grid(theta, [theta.shape[0], 1, 24, 28], align_corners=False)
    assert grid.abs().max() <= 1.0 + 1e-6
    assert t.abs().amax() > 0.5  # the test did push the regions to the edges


def test_hard_attention_initial_regions_are_stripes():
    attn = HardAttention(8, "bounded")
    t = attn(torch.randn(1, 8, 4, 4))[0]
    assert torch.allclose(t[:, 0], torch.zeros(4))
    ys = t[:, 1].tolist()
    assert ys == sorted(ys) and abs(ys[1] + 0.25) < 1e-4 and abs(ys[2] - 0.25) < 1e-4


def test_hacnn_hard_attention_is_torchreids():
    """'hacnn' mode (the hacnn and a presets): t = tanh(z) from torchreid's initial bias;
    regions sampled at the full map with zero padding, then resized (align_corners=True)."""
    from reid_core.presets import preset_config

    attn = HardAttention(8, "hacnn")
    assert preset_config("hacnn").model.hard_attention == "hacnn" == preset_config("a").model.hard_attention
    assert ModelConfig().hard_attention == "bounded"  # the Compact-ReID columns' default
    t = attn(torch.randn(1, 8, 4, 4))[0]
    expected_y = torch.tanh(torch.tensor([-0.75, -0.25, 0.25, 0.75]))
    assert torch.allclose(t[:, 0], torch.zeros(4)) and torch.allclose(t[:, 1], expected_y)
    # A region pushed half outside the image (ty = 1, sy = 0.25): the outside rows are zeros.
    x = torch.ones(1, 2, 8, 4)
    out = crop_regions(x, torch.tensor([[[0.0, 1.0]] * 4]), attn.scale, (6, 3))
    assert out.shape == (4, 2, 6, 3)
    assert out[0, :, -1].abs().max() < 1e-6 and torch.allclose(out[0, :, 0], torch.ones(2, 3))
    # the bounded mode pads with the border instead
    assert torch.allclose(
        crop_regions(x, torch.tensor([[[0.0, 1.0]] * 4]), attn.scale, (6, 3), "bounded"), torch.ones(4, 2, 6, 3)
    )


def test_soft_attention_mask_in_half_to_one():
    torch.manual_seed(0)
    attn = SoftAttention(32).train()
    mask = attn(torch.randn(4, 32, 10, 4))
    assert mask.shape == (4, 32, 10, 4)
    assert mask.min() >= 0.5 and mask.max() < 1.0
    assert (mask == 0.5).float().mean() > 0.2  # the ReLU clips about half of a BN-normalised map


def test_local_blocks_shared_and_counted_once():
    model = build_model(SMALL)
    ids = {id(p) for p in model.parameters()}
    assert count_parameters(model) == sum(p.numel() for p in model.parameters())
    assert len(ids) == len(list(model.parameters()))


@pytest.mark.parametrize(
    "data,field",
    [
        ({"pooling": "median"}, "model.pooling"),
        ({"width_multiplier": -1.0}, "model.width_multiplier"),
        ({"block": "resnet"}, "model.block"),
        ({"widht_multiplier": 2.0}, "widht_multiplier"),
        ({"neck": 3}, "model.neck"),
        ({"input_height": 150}, "model.input_height"),
        ({"classifier_bias": "yes"}, "model.classifier_bias"),
    ],
)
def test_invalid_model_config_names_the_field(data, field):
    with pytest.raises(ConfigError) as e:
        build_model(data)
    assert field in str(e.value)


def test_invalid_value_lists_allowed_values():
    with pytest.raises(ConfigError, match="'avg', 'max', 'avgmax', 'gem'"):
        build_model({"pooling": "median"})
    with pytest.raises(ConfigError, match="allowed: .*width_multiplier"):
        from_dict(TrainConfig, {"model": {"wdth": 1}})


def test_wrong_input_size_is_a_clear_error():
    model = build_model(SMALL)
    with pytest.raises(DataError, match="model.input_height=160"):
        model(torch.randn(2, 3, 128, 64))


def test_every_preset_builds():
    for name in PRESETS:
        cfg = preset_config(name, {"model.num_classes": 5})
        assert cfg.preset == name
        model = build_model(cfg.model)
        assert model.cfg == cfg.model


def test_overrides_resolve_shortcuts_and_validate():
    cfg = with_overrides(TrainConfig(), {"gem_p_init": 4.0, "swag.cycles": 3})
    assert cfg.model.gem_p_init == 4.0 and cfg.swag.cycles == 3
    with pytest.raises(ConfigError, match="unknown config key"):
        with_overrides(TrainConfig(), {"not_a_key": 1})


def test_complexity_matches_paper_table1():
    prof = profile_presets()
    one, two, ha = prof["compact-1x"], prof["compact-2x"], prof["hacnn"]
    assert math.isclose(one["params"], 2.9e6, rel_tol=0.05)  # without classifiers
    assert math.isclose(two["params_with_classifiers"], 6.4e6, rel_tol=0.05)
    assert math.isclose(ha["params"], 2.7e6, rel_tol=0.10)
    assert math.isclose(two["macs"], 1.68e9, rel_tol=0.05)
    assert math.isclose(one["macs"], 0.72e9, rel_tol=0.06)
    assert one["params_with_classifiers"] - one["params"] == 2 * 512 * 751


def test_gem_of_huge_activations_stays_finite_in_evaluation():
    """x**p overflows for activations near 1e18 (seen in eval mode on a network without L2
    normalisation trained on little data); the pooled value is then taken relative to each
    map's maximum. Finite results are unchanged bit for bit."""
    import torch

    from reid_core.models.pooling import GeM

    gem = GeM(p=3.0).eval()
    x = torch.rand(2, 4, 5, 3) + 0.5
    expected = x.pow(3.0).mean(dim=(2, 3)).pow(1 / 3.0)
    exponent = gem.p.float()  # the formula as it was: finite results stay bit for bit
    before = torch.nn.functional.adaptive_avg_pool2d(x.clamp(min=gem.eps).pow(exponent), 1).pow(1.0 / exponent)
    assert torch.equal(gem(x), before.flatten(1))
    huge = gem(x * 1e18)
    assert torch.isfinite(huge).all() and torch.allclose(huge / 1e18, expected, rtol=1e-4)
