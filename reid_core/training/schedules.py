"""The epoch schedule of a run (eq. 5, then the SWAG cyclic phase) and the optimizer.

Epochs are counted with one 0-based global index `epoch` across both phases:
`0 .. main_epochs-1` is the main phase (eq. 5), `main_epochs .. total_epochs-1` the cyclic
phase (only when SWAG is enabled). The scheduler is one `LambdaLR` over the whole run,
stepped once per epoch AFTER the epoch, so during epoch `e` every group has
`initial_lr * schedule.lr_multiplier(e)`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields
from typing import Literal

import torch
import torch.nn as nn
from torch.optim.lr_scheduler import LambdaLR

from ..config import ConfigError, OptimConfig, ScheduleConfig, SwagConfig, TrainConfig
from .epochs import EpochCounts

__all__ = [
    "Phase",
    "EpochSchedule",
    "build_epoch_schedule",
    "build_scheduler",
    "build_optimizer",
    "gem_parameter_names",
]

Phase = Literal["main", "cyclic"]


@dataclass(frozen=True)
class EpochSchedule(EpochCounts):
    """The epoch schedule of a run: its epoch counts (epochs.py) and the lr of each epoch.

    Built by `build_epoch_schedule` / `EpochSchedule.from_configs`; all lrs are absolute
    (the optimizer's base lr is `base_lr`), `lr_multiplier` is relative to it.
    """

    base_lr: float
    gamma: float
    peak_lr: float
    decay: float
    min_lr: float = 0.0

    @classmethod
    def from_configs(cls, schedule: ScheduleConfig, swag: SwagConfig, optim: OptimConfig) -> "EpochSchedule":
        """The scaled epoch counts (`EpochCounts.scaled`) and the lr settings."""
        counts = EpochCounts.scaled(schedule, swag)
        return cls(
            **{f.name: getattr(counts, f.name) for f in fields(EpochCounts)},
            base_lr=optim.lr,
            gamma=schedule.gamma,
            peak_lr=swag.peak_lr,
            decay=swag.decay,
            min_lr=swag.min_lr,
        )

    # Per epoch -----------------------------------------------------------------------
    @staticmethod
    def _check_epoch(epoch: int) -> None:
        if epoch < 0:
            raise ValueError(f"epoch must be >= 0, got {epoch}")

    def phase(self, epoch: int) -> Phase:
        """'main' for the eq. 5 phase, 'cyclic' afterwards (epochs past the end count as cyclic
        when there is a cyclic phase, else as main)."""
        self._check_epoch(epoch)
        return "cyclic" if self.cycles > 0 and epoch >= self.main_epochs else "main"

    def cycle_index(self, epoch: int) -> int | None:
        """0-based cycle of a cyclic-phase epoch, None in the main phase."""
        if self.phase(epoch) != "cyclic":
            return None
        return (epoch - self.main_epochs) // self.cycle_epochs

    def is_cycle_end(self, epoch: int) -> bool:
        """True for the last epoch of each cycle: SWAG collects after this epoch."""
        if self.phase(epoch) != "cyclic" or epoch >= self.total_epochs:
            return False
        return (epoch - self.main_epochs) % self.cycle_epochs == self.cycle_epochs - 1

    def lr(self, epoch: int) -> float:
        """Absolute lr during global epoch `epoch` (0-based). Defined past the end too
        (LambdaLR evaluates it once after the last epoch)."""
        if self.phase(epoch) == "main":
            return self._main_lr(epoch + 1)
        return self._cyclic_lr(epoch - self.main_epochs)

    def lr_multiplier(self, epoch: int) -> float:
        """lr(epoch) / base_lr: what LambdaLR multiplies each group's initial lr with."""
        return self.lr(epoch) / self.base_lr

    def _main_lr(self, t: int) -> float:
        # Eq. 5 with t the 1-based epoch: base*t/warmup for t <= warmup, then base times
        # gamma^(number of milestones already passed): 3e-2 up to t=150, 3e-3 from 151.
        if self.warmup_epochs > 0 and t <= self.warmup_epochs:
            warm = t / self.warmup_epochs
        else:
            warm = 1.0
        passed = sum(1 for m in self.milestones if t > m)
        return self.base_lr * warm * self.gamma**passed

    def _cyclic_lr(self, t: int) -> float:
        # Cosine annealing with restarts and a per-cycle peak decay, t 0-based within the
        # cyclic phase. PyTorch's CosineAnnealingWarmRestarts has no peak decay, hence the
        # formula here (one LambdaLR for the whole run).
        cycle, offset = divmod(t, self.cycle_epochs)
        peak = self.peak_lr * self.decay**cycle
        return self.min_lr + (peak - self.min_lr) * 0.5 * (1.0 + math.cos(math.pi * offset / self.cycle_epochs))


def build_epoch_schedule(cfg: TrainConfig) -> EpochSchedule:
    """The epoch schedule of a whole run from a TrainConfig (schedule + swag + optim.lr)."""
    return EpochSchedule.from_configs(cfg.schedule, cfg.swag, cfg.optim)


def build_scheduler(optimizer: torch.optim.Optimizer, schedule: EpochSchedule) -> LambdaLR:
    """One LambdaLR over both phases; call `.step()` once after every epoch.

    Each group gets initial_lr * schedule.lr_multiplier(epoch), so a group created with
    lr * gem_p_lr_mult keeps its multiplier in both phases.

    The lambdas are plain closures (not callable objects), so `state_dict()` holds only
    numbers (`lr_lambdas` is saved as None) and loads with torch.load(weights_only=True).
    Resume: build the optimizer and this scheduler afresh, then
    `optimizer.load_state_dict(...)` and `scheduler.load_state_dict(...)`: the lrs of the
    next epoch then equal those of the uninterrupted run.
    """

    def multiplier(epoch: int) -> float:
        return schedule.lr_multiplier(epoch)

    return LambdaLR(optimizer, lr_lambda=[multiplier] * len(optimizer.param_groups))


def gem_parameter_names(model: nn.Module) -> set[str]:
    """Names of the GeM exponents: parameters named `p` / `*.p`, or owned by a module whose
    class is called GeM (matched by name so training/ does not depend on models/)."""
    names = {n for n, _ in model.named_parameters() if n == "p" or n.endswith(".p")}
    for mod_name, mod in model.named_modules():
        if type(mod).__name__ == "GeM":
            prefix = f"{mod_name}." if mod_name else ""
            names.update(prefix + n for n, _ in mod.named_parameters(recurse=False))
    return names


def build_optimizer(model: nn.Module, optim_cfg: OptimConfig) -> torch.optim.SGD:
    """SGD with two parameter groups (group 0 always the main one):

    - 'default': every trainable parameter except GeM's p, lr = optim.lr, weight decay.
      BatchNorm weights/biases and other biases KEEP the weight decay, as Bag of Tricks
      (reid-strong-baseline: WEIGHT_DECAY_BIAS = WEIGHT_DECAY, BIAS_LR_FACTOR = 1) does;
      the paper gives no reason to deviate.
    - 'gem_p' (only if the model has trainable GeM exponents): no weight decay (it would
      pull p towards 0, i.e. away from the pooling it learns) and lr * gem_p_lr_mult.

    Frozen parameters (requires_grad=False, e.g. gem_trainable=False) are not optimised.
    Each group carries a 'name' key (saved in the optimizer's state_dict).
    """
    if optim_cfg.nesterov and optim_cfg.momentum <= 0:
        raise ConfigError("optim.nesterov: needs momentum > 0")
    gem = gem_parameter_names(model)
    default, gem_p = [], []
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        (gem_p if name in gem else default).append(p)
    groups: list[dict] = [
        {"params": default, "lr": optim_cfg.lr, "weight_decay": optim_cfg.weight_decay, "name": "default"}
    ]
    if gem_p:
        groups.append(
            {"params": gem_p, "lr": optim_cfg.lr * optim_cfg.gem_p_lr_mult, "weight_decay": 0.0, "name": "gem_p"}
        )
    return torch.optim.SGD(
        groups,
        lr=optim_cfg.lr,
        momentum=optim_cfg.momentum,
        weight_decay=optim_cfg.weight_decay,
        nesterov=optim_cfg.nesterov,
    )
