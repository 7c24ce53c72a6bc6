"""SWA and SWAG-diagonal (Maddox et al. 2019), BatchNorm recomputation and Bayesian model averaging.

`torch.optim.swa_utils.AveragedModel` keeps a deep copy of the model and only the first
moment; SWAG also needs the second moment to fit its diagonal Gaussian, so `SWAG` keeps
both moments itself (its mean is exactly AveragedModel's default running average, i.e.
the SWA weights) and does not duplicate the model. swa_utils has no SWAG at all.

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
    """Running first and second moments of the weights, collected at the end of each cycle.

    mean <- (n*mean + w)/(n+1), sq_mean <- (n*sq_mean + w^2)/(n+1);
    variance = clamp(sq_mean - mean^2, min=var_clamp) (diagonal SWAG, no low-rank part:
    the paper uses the diagonal covariance).

    Tensors are created lazily at the first `collect` (or given a model at construction)
    on the device of each parameter.
    """

    def __init__(self, model: nn.Module | None = None, var_clamp: float = 1e-30) -> None:
        self.var_clamp = float(var_clamp)
        self.n = 0
        self.mean: dict[str, torch.Tensor] = {}
        self.sq_mean: dict[str, torch.Tensor] = {}
        if model is not None:
            self._init_from(model)

    @staticmethod
    def _params(model: nn.Module) -> Iterable[tuple[str, nn.Parameter]]:
        return ((n, p) for n, p in model.named_parameters() if p.dtype.is_floating_point)

    def _init_from(self, model: nn.Module) -> None:
        for name, p in self._params(model):
            self.mean[name] = torch.zeros_like(p, dtype=torch.float32, memory_format=torch.contiguous_format)
            self.sq_mean[name] = torch.zeros_like(p, dtype=torch.float32, memory_format=torch.contiguous_format)

    @property
    def names(self) -> list[str]:
        return list(self.mean)

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

    @torch.no_grad()
    def sample(self, scale: float = 0.5, generator: torch.Generator | None = None) -> dict[str, torch.Tensor]:
        """w = mean + sqrt(scale) * sqrt(var) * z, z ~ N(0, I). scale 0 gives the SWA mean exactly.

        With a `generator`, z is drawn on the generator's device and moved to the moments'
        device, so a CPU generator gives the same draws for CPU and CUDA moments.
        """
        self._require_collected()
        if scale < 0:
            raise ValueError(f"scale must be >= 0, got {scale}")
        if scale == 0:
            return {k: m.clone() for k, m in self.mean.items()}
        var = self.variance()
        out: dict[str, torch.Tensor] = {}
        for k, m in self.mean.items():
            z_device = generator.device if generator is not None else m.device
            z = torch.randn(m.shape, generator=generator, device=z_device, dtype=torch.float32).to(m.device)
            out[k] = m + (scale**0.5) * var[k].sqrt() * z
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
            "mean": {k: v.clone() for k, v in self.mean.items()},
            "sq_mean": {k: v.clone() for k, v in self.sq_mean.items()},
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore from `state_dict()`; tensors keep the device they were loaded on (use
        torch.load's map_location, or `.to(device)`)."""
        if set(state["mean"]) != set(state["sq_mean"]):
            raise KeyError("SWAG state: mean and sq_mean name different parameters")
        self.n = int(state["n"])
        self.var_clamp = float(state["var_clamp"])
        self.mean = {k: v.to(torch.float32).clone() for k, v in state["mean"].items()}
        self.sq_mean = {k: state["sq_mean"][k].to(torch.float32).clone() for k in self.mean}

    def to(self, device: torch.device | str) -> "SWAG":
        self.mean = {k: v.to(device) for k, v in self.mean.items()}
        self.sq_mean = {k: v.to(device) for k, v in self.sq_mean.items()}
        return self


def _model_device(model: nn.Module) -> torch.device:
    for p in model.parameters():
        return p.device
    for b in model.buffers():
        return b.device
    return torch.device("cpu")


@torch.no_grad()
def recompute_bn(
    model: nn.Module,
    loader: Iterable[Any],
    forward_fn: Callable[[nn.Module, Any], Any] | None = None,
    device: torch.device | str | None = None,
    max_batches: int = 0,
) -> None:
    """Recompute every BatchNorm's running statistics with one pass over `loader`.

    Reset the running stats, momentum=None (cumulative average over the pass), forward in
    train mode under no_grad, then restore the momenta and the model's train/eval mode.

    Our own loop rather than torch.optim.swa_utils.update_bn: update_bn calls model(batch[0])
    with autograd on, over the whole loader; here `forward_fn(model, batch)` serves models
    whose forward needs more than the images (ReID loaders yield (img, pid, camid, idx)),
    `max_batches` (> 0) caps the pass (SwagConfig.bn_batches) and no graph is built.
    By default images = batch[0] (or the batch itself if it is a tensor), moved to
    `device` (default: the model's device).
    """
    bns = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.track_running_stats]
    if not bns:
        return
    device = torch.device(device) if device is not None else _model_device(model)
    momenta = {bn: bn.momentum for bn in bns}
    was_training = model.training
    for bn in bns:
        bn.reset_running_stats()
        bn.momentum = None
    model.train()
    seen = 0
    try:
        for i, batch in enumerate(loader):
            if max_batches and i >= max_batches:
                break
            if forward_fn is not None:
                forward_fn(model, batch)
            else:
                x = batch[0] if isinstance(batch, (list, tuple)) else batch
                model(x.to(device, non_blocking=True))
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
    scale: float,
    bn_loader: Iterable[Any],
    embed_fn: Callable[[nn.Module], torch.Tensor],
    generator: torch.Generator | None = None,
    forward_fn: Callable[[nn.Module, Any], Any] | None = None,
    device: torch.device | str | None = None,
    max_bn_batches: int = 0,
) -> torch.Tensor:
    """Bayesian model averaging of embeddings over `n_samples` SWAG weight samples.

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
