"""SWA and SWAG (Maddox et al. 2019), BatchNorm recomputation and Bayesian model averaging.

`torch.optim.swa_utils.AveragedModel` keeps a deep copy of the model and only the first
moment; SWAG also needs the second moment (and, for its low-rank part, the last K
deviations), so `SWAG` keeps them itself (its mean is exactly AveragedModel's default
running average, i.e. the SWA weights) and does not duplicate the model. swa_utils has no
SWAG at all.

Moments are float32 tensors on the model's device, one per floating-point PARAMETER.
BatchNorm running statistics are buffers, not parameters: they are not averaged but
recomputed for every weight set (`recompute_bn`), as SWA/SWAG prescribe.
"""

from __future__ import annotations

from typing import Any, Callable, Iterable, Mapping

import torch
import torch.nn as nn
import torch.nn.functional as F

__all__ = ["SWAG", "recompute_bn", "swa_model", "bma_embed"]


class SWAG:
    """Running first and second moments of the weights, collected at the end of each cycle,
    and optionally the last `low_rank` deviations (SWAG's low-rank covariance part).

    mean <- (n*mean + w)/(n+1), sq_mean <- (n*sq_mean + w^2)/(n+1);
    variance = clamp(sq_mean - mean^2, min=var_clamp) (the diagonal part).
    With low_rank = K > 0, each collection also stores the deviation w - mean (the mean
    updated with w, as swa_gaussian's collect_model) and keeps the last K of them: the
    rows of D^T, per parameter.

    Tensors are created lazily at the first `collect` (or given a model at construction)
    on the device of each parameter.
    """

    def __init__(self, model: nn.Module | None = None, var_clamp: float = 1e-30, low_rank: int = 0) -> None:
        if low_rank < 0 or low_rank == 1:
            raise ValueError(f"low_rank must be 0 (diagonal only) or >= 2, got {low_rank}")
        self.var_clamp = float(var_clamp)
        self.low_rank = int(low_rank)
        self.n = 0
        self.mean: dict[str, torch.Tensor] = {}
        self.sq_mean: dict[str, torch.Tensor] = {}
        self.deviations: dict[str, torch.Tensor] = {}  # [k, numel] per parameter, k <= low_rank
        if model is not None:
            self._init_from(model)

    @staticmethod
    def _params(model: nn.Module) -> Iterable[tuple[str, nn.Parameter]]:
        return ((n, p) for n, p in model.named_parameters() if p.dtype.is_floating_point)

    def _init_from(self, model: nn.Module) -> None:
        for name, p in self._params(model):
            self.mean[name] = torch.zeros_like(p, dtype=torch.float32, memory_format=torch.contiguous_format)
            self.sq_mean[name] = torch.zeros_like(p, dtype=torch.float32, memory_format=torch.contiguous_format)
            if self.low_rank:
                self.deviations[name] = torch.zeros((0, p.numel()), dtype=torch.float32, device=p.device)

    @property
    def names(self) -> list[str]:
        return list(self.mean)

    @property
    def rank(self) -> int:
        """Deviation columns held now: min(n, low_rank)."""
        return next(iter(self.deviations.values())).shape[0] if self.deviations else 0

    @torch.no_grad()
    def collect(self, model: nn.Module) -> None:
        """Add the model's current weights to the running moments (n += 1)."""
        if not self.mean:
            self._init_from(model)
        params = dict(self._params(model))
        missing = set(self.mean) - set(params)
        if missing:
            raise KeyError(f"SWAG: the model lacks parameter(s) {sorted(missing)[:5]}")
        n = float(self.n)
        for name, mean in self.mean.items():
            w = params[name].detach().to(device=mean.device, dtype=torch.float32)
            mean.mul_(n).add_(w).div_(n + 1.0)
            self.sq_mean[name].mul_(n).add_(w * w).div_(n + 1.0)
            if self.low_rank:
                dev = (w - mean).reshape(1, -1)
                self.deviations[name] = torch.cat([self.deviations[name], dev])[-self.low_rank :].clone()
        self.n += 1

    def _require_collected(self) -> None:
        if self.n == 0:
            raise RuntimeError("SWAG: no weights collected yet")

    @torch.no_grad()
    def variance(self) -> dict[str, torch.Tensor]:
        """clamp(sq_mean - mean^2, min=var_clamp) per parameter (float32 cancellation can make
        the difference slightly negative; the clamp also absorbs that)."""
        self._require_collected()
        return {k: (self.sq_mean[k] - m * m).clamp(min=self.var_clamp) for k, m in self.mean.items()}

    @property
    def default_scale(self) -> float:
        """The SWAG authors' scale: 0.5 with the low-rank part, 1.0 for SWAG-diagonal."""
        return 0.5 if self.low_rank else 1.0

    @torch.no_grad()
    def sample(self, scale: float | None = None, generator: torch.Generator | None = None) -> dict[str, torch.Tensor]:
        """w = mean + sqrt(scale) * (sqrt(var) * z1 + D z2 / sqrt(k - 1)), z1 ~ N(0, I), z2 ~ N(0, I_k).

        Maddox et al.'s sample_fullrank: z2 is ONE draw of k numbers for the whole network;
        the low-rank term is present only with low_rank > 0 and k >= 2 deviations held
        (k = min(n, low_rank); swa_gaussian divides by sqrt(low_rank - 1) even while
        k < low_rank, which under-scales that term until K models are collected).
        scale None = `default_scale`; scale 0 gives the SWA mean exactly.

        With a `generator`, z is drawn on the generator's device and moved to the moments'
        device, so a CPU generator gives the same draws for CPU and CUDA moments.
        """
        self._require_collected()
        scale = self.default_scale if scale is None else float(scale)
        if scale < 0:
            raise ValueError(f"scale must be >= 0, got {scale}")
        if scale == 0:
            return {k: m.clone() for k, m in self.mean.items()}
        var = self.variance()
        k = self.rank
        first = next(iter(self.mean.values()))
        z2 = None
        if k >= 2:
            z2 = torch.randn(k, generator=generator, device=generator.device if generator is not None else first.device)
        out: dict[str, torch.Tensor] = {}
        for name, m in self.mean.items():
            z_device = generator.device if generator is not None else m.device
            z = torch.randn(m.shape, generator=generator, device=z_device, dtype=torch.float32).to(m.device)
            noise = var[name].sqrt() * z
            if z2 is not None:
                d = self.deviations[name]
                noise = noise + (d.t() @ z2.to(d.device)).view_as(m) / (k - 1) ** 0.5
            out[name] = m + (scale**0.5) * noise
        return out

    @staticmethod
    @torch.no_grad()
    def apply(model: nn.Module, weights: Mapping[str, torch.Tensor]) -> None:
        """Copy `weights` into the model's parameters in place (dtype/device of the model)."""
        params = dict(model.named_parameters())
        unknown = set(weights) - set(params)
        if unknown:
            raise KeyError(f"SWAG: weights for unknown parameter(s) {sorted(unknown)[:5]}")
        for name, w in weights.items():
            params[name].copy_(w.to(device=params[name].device, dtype=params[name].dtype))

    def load_mean(self, model: nn.Module) -> None:
        """Put the SWA weights (the running mean) into the model; BN still needs `recompute_bn`."""
        self._require_collected()
        self.apply(model, self.mean)

    # Checkpointing ----------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """Tensors (and dicts of tensors) only: loads with torch.load(weights_only=True)."""
        return {
            "n": torch.tensor(self.n, dtype=torch.int64),
            "var_clamp": torch.tensor(self.var_clamp, dtype=torch.float64),
            "low_rank": torch.tensor(self.low_rank, dtype=torch.int64),
            "mean": {k: v.clone() for k, v in self.mean.items()},
            "sq_mean": {k: v.clone() for k, v in self.sq_mean.items()},
            "deviations": {k: v.clone() for k, v in self.deviations.items()},
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore from `state_dict()` (a state without the low-rank keys is diagonal-only);
        tensors keep the device they were loaded on (use torch.load's map_location, or `.to(device)`)."""
        if set(state["mean"]) != set(state["sq_mean"]):
            raise KeyError("SWAG state: mean and sq_mean name different parameters")
        low_rank = int(state.get("low_rank", 0))
        deviations = state.get("deviations") or {}
        if low_rank and set(deviations) != set(state["mean"]):
            raise KeyError(f"SWAG state: low_rank={low_rank} but the deviations do not name the mean's parameters")
        self.n = int(state["n"])
        self.var_clamp = float(state["var_clamp"])
        self.low_rank = low_rank
        self.mean = {k: v.to(torch.float32).clone() for k, v in state["mean"].items()}
        self.sq_mean = {k: state["sq_mean"][k].to(torch.float32).clone() for k in self.mean}
        self.deviations = {k: deviations[k].to(torch.float32).clone() for k in self.mean} if low_rank else {}

    def to(self, device: torch.device | str) -> "SWAG":
        self.mean = {k: v.to(device) for k, v in self.mean.items()}
        self.sq_mean = {k: v.to(device) for k, v in self.sq_mean.items()}
        self.deviations = {k: v.to(device) for k, v in self.deviations.items()}
        return self


def _model_device(model: nn.Module) -> torch.device:
    for p in model.parameters():
        return p.device
    for b in model.buffers():
        return b.device
    return torch.device("cpu")


def _batch_size(batch: Any) -> int:
    images = batch[0] if isinstance(batch, (list, tuple)) else batch
    if not isinstance(images, torch.Tensor) or images.dim() == 0:
        raise TypeError(
            f"recompute_bn: cannot tell the batch size of a {type(images).__name__} (expected a tensor [B, ...])"
        )
    return int(images.shape[0])


@torch.no_grad()
def recompute_bn(
    model: nn.Module,
    loader: Iterable[Any],
    forward_fn: Callable[[nn.Module, Any], Any] | None = None,
    device: torch.device | str | None = None,
    max_batches: int = 0,
) -> None:
    """Recompute every BatchNorm's running statistics with one pass over `loader`.

    Reset the running stats, forward in train mode under no_grad with momentum
    b / (n + b) for a batch of b after n samples (swa_gaussian's bn_update): the running
    mean / var become the SAMPLE-weighted averages of the batch statistics, so a short last
    batch counts for its size (PyTorch's momentum=None would weight every batch equally).
    Then restore the momenta and the model's train/eval mode.

    Our own loop rather than torch.optim.swa_utils.update_bn: update_bn calls model(batch[0])
    with autograd on, over the whole loader, with equal batch weights; here
    `forward_fn(model, batch)` serves models whose forward needs more than the images (ReID
    loaders yield (img, pid, camid, idx)), `max_batches` (> 0) caps the pass
    (SwagConfig.bn_batches) and no graph is built. By default images = batch[0] (or the
    batch itself if it is a tensor), moved to `device` (default: the model's device). The
    batch size is the length of that first tensor, with or without `forward_fn`.
    """
    bns = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.track_running_stats]
    if not bns:
        return
    device = torch.device(device) if device is not None else _model_device(model)
    momenta = {bn: bn.momentum for bn in bns}
    was_training = model.training
    for bn in bns:
        bn.reset_running_stats()
    model.train()
    seen = 0
    samples = 0
    try:
        for i, batch in enumerate(loader):
            if max_batches and i >= max_batches:
                break
            b = _batch_size(batch)
            for bn in bns:
                bn.momentum = b / (samples + b)
            samples += b
            if forward_fn is not None:
                forward_fn(model, batch)
            else:
                images = batch[0] if isinstance(batch, (list, tuple)) else batch
                model(images.to(device, non_blocking=True))
            seen += 1
    finally:
        for bn, m in momenta.items():
            bn.momentum = m
        model.train(was_training)
    if seen == 0:
        raise ValueError("recompute_bn: the loader yielded no batch; BatchNorm statistics are reset")


def swa_model(
    model: nn.Module,
    swag: SWAG,
    bn_loader: Iterable[Any],
    forward_fn: Callable[[nn.Module, Any], Any] | None = None,
    device: torch.device | str | None = None,
    max_batches: int = 0,
) -> nn.Module:
    """SWA: load the running mean into `model` IN PLACE, recompute BN, return the model.

    The original weights are not kept: copy the model (or its state_dict) first if the
    training must continue.
    """
    swag.load_mean(model)
    recompute_bn(model, bn_loader, forward_fn=forward_fn, device=device, max_batches=max_batches)
    return model


@torch.no_grad()
def bma_embed(
    model: nn.Module,
    swag: SWAG,
    n_samples: int,
    scale: float | None,
    bn_loader: Iterable[Any],
    embed_fn: Callable[[nn.Module], torch.Tensor],
    generator: torch.Generator | None = None,
    forward_fn: Callable[[nn.Module, Any], Any] | None = None,
    device: torch.device | str | None = None,
    max_bn_batches: int = 0,
) -> torch.Tensor:
    """Bayesian model averaging of embeddings over `n_samples` SWAG weight samples
    (`scale` as in `SWAG.sample`; None = the SWAG authors' value for the covariance).

    For each sample: apply the sampled weights, recompute BN over `bn_loader`, put the model
    in eval mode and call `embed_fn(model)` -> [N, D] (the model's eval-mode embeddings,
    L2-normalised by the model); average them (float32) and return the mean re-L2-normalised
    over the whole row (so Euclidean distances rank like cosine ones).

    The model's original parameters AND buffers (BN statistics) and its train/eval mode
    are restored at the end, even on error.
    """
    if n_samples < 1:
        raise ValueError(f"n_samples must be >= 1, got {n_samples}")
    original = {k: v.detach().clone() for k, v in model.state_dict().items()}
    was_training = model.training
    total: torch.Tensor | None = None
    try:
        for _ in range(n_samples):
            swag.apply(model, swag.sample(scale, generator))
            recompute_bn(model, bn_loader, forward_fn=forward_fn, device=device, max_batches=max_bn_batches)
            model.eval()
            emb = embed_fn(model).detach().float()
            total = emb.clone() if total is None else total.add_(emb.to(total.device))
    finally:
        model.load_state_dict(original)
        model.train(was_training)
    assert total is not None
    return F.normalize(total / n_samples, p=2, dim=1)
