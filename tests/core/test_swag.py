"""SWA/SWAG moments, sampling, checkpoints, BN recomputation and BMA on toy models."""

from __future__ import annotations

import io

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from reid_core.config import SwagConfig
from reid_core.training.swag import SWAG, bma_embed, recompute_bn, swa_model


def linear_with(w: float, b: float) -> nn.Linear:
    m = nn.Linear(1, 1)
    with torch.no_grad():
        m.weight.fill_(w)
        m.bias.fill_(b)
    return m


def test_moments_by_hand() -> None:
    # weight takes 1, 2, 6; bias takes 0, 0, 3
    model = linear_with(0.0, 0.0)
    swag = SWAG(var_clamp=1e-30)
    for w, b in [(1.0, 0.0), (2.0, 0.0), (6.0, 3.0)]:
        with torch.no_grad():
            model.weight.fill_(w)
            model.bias.fill_(b)
        swag.collect(model)
    assert swag.n == 3
    # mean = 9/3 = 3, sq_mean = (1 + 4 + 36)/3 = 41/3, var = 41/3 - 9 = 14/3
    assert swag.mean["weight"].item() == pytest.approx(3.0)
    assert swag.sq_mean["weight"].item() == pytest.approx(41 / 3)
    assert swag.variance()["weight"].item() == pytest.approx(14 / 3, rel=1e-6)
    # bias: mean 1, sq_mean 3, var 2
    assert swag.mean["bias"].item() == pytest.approx(1.0)
    assert swag.variance()["bias"].item() == pytest.approx(2.0, rel=1e-6)
    assert swag.mean["weight"].dtype == torch.float32


def test_variance_clamp() -> None:
    model = linear_with(0.5, 0.25)
    swag = SWAG(model, var_clamp=1e-8)
    swag.collect(model)
    swag.collect(model)  # constant weights: variance 0 -> clamp
    assert torch.all(swag.variance()["weight"] == 1e-8)


def collected(n: int = 5, seed: int = 0) -> tuple[nn.Module, SWAG]:
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Linear(4, 8), nn.BatchNorm1d(8), nn.ReLU(), nn.Linear(8, 3))
    swag = SWAG()
    for _ in range(n):
        with torch.no_grad():
            for p in model.parameters():
                p.add_(0.1 * torch.randn_like(p))
        swag.collect(model)
    return model, swag


def test_swag_only_parameters_not_buffers() -> None:
    model, swag = collected()
    assert set(swag.names) == {n for n, _ in model.named_parameters()}
    assert "1.running_mean" not in swag.names


def test_scale_zero_is_swa_mean() -> None:
    _, swag = collected()
    s = swag.sample(0.0, torch.Generator().manual_seed(0))
    for k in swag.names:
        assert torch.equal(s[k], swag.mean[k])


def test_samples_differ_and_variance_matches() -> None:
    _, swag = collected(n=6)
    g = torch.Generator().manual_seed(123)
    s1, s2 = swag.sample(0.5, g), swag.sample(0.5, g)
    assert any(not torch.equal(s1[k], s2[k]) for k in swag.names)
    var = swag.variance()
    n_draws, scale = 4000, 0.5
    draws = torch.stack([swag.sample(scale, g)["0.weight"] for _ in range(n_draws)])
    emp_mean, emp_var = draws.mean(0), draws.var(0)
    # Var of a sample variance ~ 2 var^2 / n: a 15 % relative tolerance is > 6 sigma at n = 4000.
    assert torch.allclose(emp_var, scale * var["0.weight"], rtol=0.15)
    assert torch.allclose(
        emp_mean, swag.mean["0.weight"], atol=float(5 * (scale * var["0.weight"].max() / n_draws) ** 0.5)
    )


def test_default_scale_is_the_swag_authors_value() -> None:
    """Maddox et al.: scale 1 for SWAG-diagonal, 0.5 with the low-rank part. The default
    diagonal sample has the full SWAG-diagonal variance (0.5 before this default)."""
    assert SwagConfig().scale == 1.0 and SwagConfig().low_rank == 0
    _, swag = collected(n=6)
    assert swag.default_scale == 1.0 and SWAG(low_rank=20).default_scale == 0.5
    g = torch.Generator().manual_seed(5)
    draws = torch.stack([swag.sample(None, g)["0.weight"] for _ in range(4000)])
    ratio = draws.var(0) / swag.variance()["0.weight"]
    assert torch.allclose(ratio, torch.ones_like(ratio), rtol=0.15)


def test_generator_makes_samples_reproducible() -> None:
    _, swag = collected()
    a = swag.sample(0.5, torch.Generator().manual_seed(7))
    b = swag.sample(0.5, torch.Generator().manual_seed(7))
    assert all(torch.equal(a[k], b[k]) for k in swag.names)


def test_state_dict_round_trip_weights_only() -> None:
    _, swag = collected()
    buf = io.BytesIO()
    torch.save(swag.state_dict(), buf)
    buf.seek(0)
    state = torch.load(buf, weights_only=True)
    other = SWAG()
    other.load_state_dict(state)
    assert other.n == swag.n and other.var_clamp == swag.var_clamp
    for k in swag.names:
        assert torch.equal(other.mean[k], swag.mean[k]) and torch.equal(other.sq_mean[k], swag.sq_mean[k])
    # collection continues identically after the round trip
    model, _ = collected(seed=1)
    swag.collect(model)
    other.collect(model)
    assert all(torch.equal(other.mean[k], swag.mean[k]) for k in swag.names)


def test_apply_and_load_mean() -> None:
    model, swag = collected()
    swag.load_mean(model)
    for k, p in model.named_parameters():
        assert torch.equal(p.detach(), swag.mean[k])
    with pytest.raises(KeyError):
        SWAG.apply(model, {"nope": torch.zeros(1)})


def test_sample_before_collect_raises() -> None:
    with pytest.raises(RuntimeError):
        SWAG(nn.Linear(2, 2)).sample(0.5)


class BNNet(nn.Module):
    """Identity-ish net with a BatchNorm; train mode returns a tuple like the ReID model."""

    def __init__(self, d: int = 3) -> None:
        super().__init__()
        self.fc = nn.Linear(d, d)
        self.bn = nn.BatchNorm1d(d)
        with torch.no_grad():
            self.fc.weight.copy_(torch.eye(d))
            self.fc.bias.zero_()

    def forward(self, x: torch.Tensor):  # noqa: ANN201
        y = self.bn(self.fc(x))
        return (y, y) if self.training else F.normalize(y, dim=1)


def reid_loader(n_batches: int = 10, mean: float = 5.0, d: int = 3, seed: int = 0) -> list[tuple]:
    """A list of (img, pid, camid, idx) batches like the ReID loaders yield."""
    g = torch.Generator().manual_seed(seed)
    return [
        (
            mean + torch.randn(16, d, generator=g),
            torch.zeros(16, dtype=torch.long),
            torch.zeros(16, dtype=torch.long),
            torch.arange(16),
        )
        for _ in range(n_batches)
    ]


def test_recompute_bn_changes_running_stats() -> None:
    model = BNNet()
    model.bn.momentum = 0.25
    model.eval()
    assert torch.allclose(model.bn.running_mean, torch.zeros(3))
    loader = reid_loader()
    recompute_bn(model, loader)
    data = torch.cat([b[0] for b in loader])
    # momentum=None: cumulative average of the per-batch means = the data mean (equal batches)
    assert torch.allclose(model.bn.running_mean, data.mean(0), atol=1e-5)
    assert torch.allclose(model.bn.running_mean, torch.full((3,), 5.0), atol=0.3)
    assert torch.allclose(model.bn.running_var, torch.ones(3), atol=0.3)
    assert model.bn.momentum == 0.25 and not model.training  # restored
    assert int(model.bn.num_batches_tracked) == len(loader)


def test_recompute_bn_weights_batches_by_size() -> None:
    """swa_gaussian's bn_update: momentum b / (n + b), so a short last batch counts for its size."""
    g = torch.Generator().manual_seed(4)
    sizes, means = (16, 16, 4), (0.0, 1.0, 10.0)
    loader = [(mu + torch.randn(b, 3, generator=g),) for b, mu in zip(sizes, means)]
    model = BNNet()
    recompute_bn(model, loader)
    n = sum(sizes)
    batch_means = [x.mean(0) for (x,) in loader]
    batch_vars = [x.var(0, unbiased=True) for (x,) in loader]  # what BatchNorm's running_var averages
    expected_mean = sum(b * m for b, m in zip(sizes, batch_means)) / n
    expected_var = sum(b * v for b, v in zip(sizes, batch_vars)) / n
    assert torch.allclose(model.bn.running_mean, expected_mean, atol=1e-5)
    assert torch.allclose(model.bn.running_var, expected_var, atol=1e-5)
    # equal batch weights (momentum=None) would be far off: the last 4 samples weigh 1/3
    equal = sum(batch_means) / 3
    assert (model.bn.running_mean - equal).abs().min() > 1.5
    assert model.bn.momentum == 0.1  # restored


def test_recompute_bn_max_batches_and_forward_fn() -> None:
    model = BNNet()
    calls = []

    def forward_fn(m: nn.Module, batch: tuple) -> None:
        calls.append(batch[3].shape[0])
        m(batch[0] * 2)  # a forward that needs more than batch[0] as-is

    loader = reid_loader()
    recompute_bn(model, loader, forward_fn=forward_fn, max_batches=3)
    assert len(calls) == 3
    first3 = torch.cat([b[0] for b in loader[:3]]) * 2
    assert torch.allclose(model.bn.running_mean, first3.mean(0), atol=1e-5)
    assert int(model.bn.num_batches_tracked) == 3


def test_recompute_bn_empty_loader_raises() -> None:
    with pytest.raises(ValueError):
        recompute_bn(BNNet(), [])


def test_swa_model_loads_mean_and_recomputes_bn() -> None:
    model = BNNet()
    swag = SWAG()
    for w in (1.0, 3.0):
        with torch.no_grad():
            model.fc.weight.copy_(w * torch.eye(3))
        swag.collect(model)
    out = swa_model(model, swag, reid_loader())
    assert out is model
    assert torch.allclose(model.fc.weight, 2.0 * torch.eye(3))
    data = torch.cat([b[0] for b in reid_loader()])
    assert torch.allclose(model.bn.running_mean, 2.0 * data.mean(0), atol=1e-4)


def test_bma_embed_normalised_and_restores_weights() -> None:
    model = BNNet()
    swag = SWAG()
    g = torch.Generator().manual_seed(0)
    for _ in range(4):
        with torch.no_grad():
            model.fc.weight.add_(0.2 * torch.randn(3, 3, generator=g))
        swag.collect(model)
    model.train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    queries = torch.randn(7, 3, generator=g) + 5.0

    def embed_fn(m: nn.Module) -> torch.Tensor:
        assert not m.training
        return m(queries)

    emb = bma_embed(
        model,
        swag,
        n_samples=3,
        scale=0.5,
        bn_loader=reid_loader(),
        embed_fn=embed_fn,
        generator=torch.Generator().manual_seed(1),
    )
    assert emb.shape == (7, 3)
    assert torch.allclose(emb.norm(dim=1), torch.ones(7), atol=1e-5)
    after = model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert model.training

    # scale 0 and one sample: the SWA model's normalised embedding
    emb0 = bma_embed(model, swag, n_samples=1, scale=0.0, bn_loader=reid_loader(), embed_fn=embed_fn)
    ref = BNNet()
    ref.load_state_dict(before)
    swa_model(ref, swag, reid_loader())
    ref.eval()
    assert torch.allclose(emb0, F.normalize(ref(queries), dim=1), atol=1e-5)


# Low-rank SWAG -------------------------------------------------------------------------


def test_low_rank_deviations_by_hand() -> None:
    # weight takes 1, 2, 6: means 1, 1.5, 3; deviations w - (updated) mean: 0, 0.5, 3; K = 2 keeps the last two
    model = linear_with(0.0, 0.0)
    swag = SWAG(low_rank=2)
    for w in (1.0, 2.0, 6.0):
        with torch.no_grad():
            model.weight.fill_(w)
        swag.collect(model)
    assert swag.rank == 2 and swag.deviations["weight"].shape == (2, 1)
    assert swag.deviations["weight"].flatten().tolist() == pytest.approx([0.5, 3.0])
    assert swag.deviations["bias"].abs().max() == 0.0
    assert swag.variance()["weight"].item() == pytest.approx(14 / 3, rel=1e-6)  # the diagonal part unchanged
    with pytest.raises(ValueError, match="low_rank"):
        SWAG(low_rank=1)


def test_low_rank_sample_covariance() -> None:
    """Cov(w) = scale * (diag(var) + D D^T / (k - 1)), one z2 for all parameters (cross terms)."""
    torch.manual_seed(0)
    model = nn.Linear(3, 1)  # weight [1, 3], bias [1]: 4 numbers
    swag = SWAG(low_rank=4)
    for _ in range(6):  # one shared latent moves weight and bias together: strong cross terms
        latent = torch.randn(())
        with torch.no_grad():
            model.weight.copy_(latent * torch.tensor([[1.0, -2.0, 0.5]]) + 0.3 * torch.randn(1, 3))
            model.bias.copy_(1.5 * latent + 0.3 * torch.randn(1))
        swag.collect(model)
    var = swag.variance()
    flat_var = torch.cat([var["weight"].flatten(), var["bias"].flatten()])
    d = torch.cat([swag.deviations["weight"], swag.deviations["bias"]], dim=1)  # [k, 4]
    k, scale = swag.rank, 0.5
    expected = scale * (torch.diag(flat_var) + d.t() @ d / (k - 1))
    g = torch.Generator().manual_seed(9)
    n_draws = 8000
    draws = torch.stack(
        [
            torch.cat([s["weight"].flatten(), s["bias"].flatten()])
            for s in (swag.sample(scale, g) for _ in range(n_draws))
        ]
    ).double()
    emp = torch.cov(draws.t())
    se = ((torch.diag(expected)[:, None] * torch.diag(expected)[None, :] + expected**2) / n_draws).sqrt()
    assert ((emp - expected.double()).abs() <= 6 * se.double()).all(), (emp, expected)
    assert (expected - torch.diag(torch.diag(expected))).abs().max() > 10 * se.max()  # cross terms tested
    mean = torch.cat([swag.mean["weight"].flatten(), swag.mean["bias"].flatten()]).double()
    assert torch.allclose(draws.mean(0), mean, atol=float(6 * (expected.diag().max() / n_draws) ** 0.5))


def test_low_rank_state_round_trip_and_resume() -> None:
    torch.manual_seed(1)
    model = nn.Sequential(nn.Linear(4, 8), nn.BatchNorm1d(8), nn.Linear(8, 3))
    swag = SWAG(model, low_rank=3)
    for _ in range(4):
        with torch.no_grad():
            for p in model.parameters():
                p.add_(0.1 * torch.randn_like(p))
        swag.collect(model)
    buf = io.BytesIO()
    torch.save(swag.state_dict(), buf)
    buf.seek(0)
    other = SWAG()
    other.load_state_dict(torch.load(buf, weights_only=True))
    assert other.low_rank == 3 and other.rank == 3 and other.n == 4
    assert all(torch.equal(other.deviations[k], swag.deviations[k]) for k in swag.names)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.1 * torch.randn_like(p))
    swag.collect(model)
    other.collect(model)
    assert other.rank == 3 and all(torch.equal(other.deviations[k], swag.deviations[k]) for k in swag.names)
    a = swag.sample(None, torch.Generator().manual_seed(2))
    b = other.sample(None, torch.Generator().manual_seed(2))
    assert all(torch.equal(a[k], b[k]) for k in swag.names)
    # a state saved before the low-rank option existed loads as diagonal-only
    old = {k: v for k, v in swag.state_dict().items() if k not in ("low_rank", "deviations")}
    legacy = SWAG()
    legacy.load_state_dict(old)
    assert legacy.low_rank == 0 and legacy.rank == 0


def test_swag_config_low_rank_validated() -> None:
    from reid_core.config import ConfigError

    assert SwagConfig(low_rank=20).low_rank == 20
    with pytest.raises(ConfigError, match="swag.low_rank"):
        SwagConfig(low_rank=1)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_swag_on_cuda() -> None:
    model = BNNet().cuda()
    swag = SWAG()
    for w in (1.0, 3.0):
        with torch.no_grad():
            model.fc.weight.copy_(w * torch.eye(3, device="cuda"))
        swag.collect(model)
    assert swag.mean["fc.weight"].device.type == "cuda"
    cpu_gen = swag.sample(0.5, torch.Generator().manual_seed(0))
    cuda_gen = swag.sample(0.5, torch.Generator(device="cuda").manual_seed(0))
    assert cpu_gen["fc.weight"].device.type == "cuda" and cuda_gen["fc.weight"].device.type == "cuda"
    loader = reid_loader()  # CPU batches, moved to the model's device
    emb = bma_embed(model, swag, 2, 0.5, loader, lambda m: m(torch.randn(5, 3, device="cuda") + 5))
    assert emb.device.type == "cuda" and torch.allclose(emb.norm(dim=1), torch.ones(5, device="cuda"), atol=1e-5)
    buf = io.BytesIO()
    torch.save(swag.state_dict(), buf)
    buf.seek(0)
    other = SWAG()
    other.load_state_dict(torch.load(buf, weights_only=True, map_location="cuda"))
    assert torch.equal(other.mean["fc.weight"], swag.mean["fc.weight"])
