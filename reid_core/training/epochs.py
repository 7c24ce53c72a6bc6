"""How many epochs a run has, phase by phase, after `schedule.scale`: plain arithmetic.

Kept apart from `schedules.py` (which needs torch) so that the sweep spec and the report
count epochs with the same rule without importing torch.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from ..config import ScheduleConfig, SwagConfig, TrainConfig

__all__ = ["scaled_epochs", "EpochCounts", "epoch_counts"]


def scaled_epochs(n: int, scale: float) -> int:
    """max(1, round(n * scale)), rounding halves UP (Python's round() would send 4.5 to 4).

    The 1e-9 absorbs float error in the product (e.g. 35 * 0.02 = 0.7000000000000001).
    """
    return max(1, int(math.floor(n * scale + 0.5 + 1e-9)))


@dataclass(frozen=True)
class EpochCounts:
    """Every epoch count of a run after scaling; epochs are 0-based global indices:
    `0 .. main_epochs-1` the main phase, then `cycles` SWAG cycles of `cycle_epochs`."""

    main_epochs: int
    warmup_epochs: int
    milestones: tuple[int, ...]
    cycles: int  # 0 when SWAG is disabled (no cyclic phase)
    cycle_epochs: int

    @classmethod
    def scaled(cls, schedule: ScheduleConfig, swag: SwagConfig) -> "EpochCounts":
        """Apply `schedule.scale` to every epoch count (main phase AND cycle length).

        The NUMBER of SWAG cycles is not scaled: it is the number of SWAG collections,
        which a shortened run still needs. Scaled milestones are deduplicated and those
        that fall at or after the end of the main phase are dropped (each lost milestone
        is one gamma decay fewer); warmup_epochs=0 stays 0 (no warm-up) and the warm-up
        never exceeds the main phase.
        """
        scale = schedule.scale
        main = scaled_epochs(schedule.epochs, scale)
        warmup = 0 if schedule.warmup_epochs == 0 else min(main, scaled_epochs(schedule.warmup_epochs, scale))
        ms = sorted({scaled_epochs(m, scale) for m in schedule.milestones})
        return cls(
            main_epochs=main,
            warmup_epochs=warmup,
            milestones=tuple(m for m in ms if 0 < m < main),
            cycles=swag.cycles if swag.enabled else 0,
            cycle_epochs=scaled_epochs(swag.cycle_epochs, scale),
        )

    @property
    def cyclic_epochs(self) -> int:
        return self.cycles * self.cycle_epochs

    @property
    def total_epochs(self) -> int:
        return self.main_epochs + self.cyclic_epochs

    @property
    def cycle_end_epochs(self) -> tuple[int, ...]:
        """Global epoch indices after which SWAG collects (one per cycle)."""
        return tuple(self.main_epochs + (c + 1) * self.cycle_epochs - 1 for c in range(self.cycles))


def epoch_counts(cfg: TrainConfig) -> EpochCounts:
    """The epoch counts of a whole run from a TrainConfig (schedule + swag)."""
    return EpochCounts.scaled(cfg.schedule, cfg.swag)
