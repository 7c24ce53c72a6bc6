"""Eq. 5, the cyclic SWAG schedule, scaling, LambdaLR resume and the optimizer groups."""

from __future__ import annotations

import io
import math

import pytest
import torch
import torch.nn as nn

from reid_core.config import OptimConfig, ScheduleConfig, SwagConfig, TrainConfig
from reid_core.training.epochs import EpochCounts, epoch_counts, scaled_epochs
from reid_core.training.schedules import (
    EpochSchedule,
    build_epoch_schedule,
    build_optimizer,
    build_scheduler,
    gem_parameter_names,
)


def paper_schedule(swag: bool = False, scale: float = 1.0) -> EpochSchedule:
    return EpochSchedule.from_configs(ScheduleConfig(scale=scale), SwagConfig(enabled=swag), OptimConfig())


def lr_at_t(schedule: EpochSchedule, t: int) -> float:
    """The paper counts epochs from 1; the schedule from 0."""
    return schedule.lr(t - 1)


@pytest.mark.parametrize(
    "t, expected",
    [(1, 3e-3), (5, 1.5e-2), (10, 3e-2), (11, 3e-2), (150, 3e-2), (151, 3e-3), (225, 3e-3), (226, 3e-4), (350, 3e-4)],
)
def test_eq5_at_milestones(t: int, expected: float) -> None:
    # 3e-2 * t/10 for t <= 10; 3e-2 until 150; 3e-3 until 225; 3e-4 until 350.
    assert lr_at_t(paper_schedule(), t) == pytest.approx(expected, rel=1e-12)


def test_eq5_sizes_and_phases() -> None:
    p = paper_schedule()
    assert (p.main_epochs, p.warmup_epochs, p.milestones, p.cycles, p.total_epochs) == (350, 10, (150, 225), 0, 350)
    assert p.phase(0) == "main" and p.phase(349) == "main"
    assert not any(p.is_cycle_end(e) for e in range(350))
    assert p.cycle_end_epochs == ()


def test_no_warmup() -> None:
    p = EpochSchedule.from_configs(ScheduleConfig(warmup_epochs=0), SwagConfig(), OptimConfig())
    assert p.warmup_epochs == 0
    assert p.lr(0) == pytest.approx(3e-2)


def test_scaled_epochs() -> None:
    assert scaled_epochs(350, 1.0) == 350
    assert scaled_epochs(350, 1 / 50) == 7
    assert scaled_epochs(225, 1 / 50) == 5  # 4.5 rounds half up
    assert scaled_epochs(35, 1 / 50) == 1  # 0.7 -> 1
    assert scaled_epochs(10, 1 / 100) == 1  # at least one epoch
    assert scaled_epochs(3, 0.5) == 2


@pytest.mark.parametrize("scale", [1 / 50, 1 / 100, 1 / 350, 0.1, 0.5, 2.0])
def test_scaling_keeps_milestones_ordered_and_in_range(scale: float) -> None:
    p = EpochSchedule.from_configs(ScheduleConfig(scale=scale), SwagConfig(enabled=True), OptimConfig())
    assert list(p.milestones) == sorted(set(p.milestones))
    assert all(0 < m < p.main_epochs for m in p.milestones)
    assert p.warmup_epochs <= p.main_epochs
    assert p.cycle_epochs >= 1 and p.cycles == 15
    assert p.total_epochs == p.main_epochs + 15 * p.cycle_epochs
    lrs = [p.lr(e) for e in range(p.total_epochs)]
    assert all(math.isfinite(v) and v > 0 for v in lrs)


def test_scale_one_fiftieth() -> None:
    p = EpochSchedule.from_configs(ScheduleConfig(scale=1 / 50), SwagConfig(enabled=True), OptimConfig())
    assert (p.main_epochs, p.warmup_epochs, p.milestones, p.cycle_epochs) == (7, 1, (3, 5), 1)
    # epochs 1..7 (1-based): 3e-2 up to 3, 3e-3 for 4..5, 3e-4 for 6..7
    assert [lr_at_t(p, t) for t in range(1, 8)] == pytest.approx([3e-2] * 3 + [3e-3] * 2 + [3e-4] * 2)
    # one-epoch cycles: every cyclic epoch is a cycle end at the decayed peak
    assert p.cycle_end_epochs == tuple(range(7, 22))
    assert p.lr(7) == pytest.approx(3e-3) and p.lr(8) == pytest.approx(3e-3 * 0.7)


def test_collapsed_milestones_are_deduplicated() -> None:
    p = EpochSchedule.from_configs(
        ScheduleConfig(epochs=350, milestones=(150, 151, 300), scale=0.01), SwagConfig(), OptimConfig()
    )
    # 150, 151 -> 2, 2 (dedup); 300 -> 3, and main = 4
    assert p.main_epochs == 4 and p.milestones == (2, 3)


def test_cyclic_schedule() -> None:
    p = paper_schedule(swag=True)
    assert (p.cycles, p.cycle_epochs, p.total_epochs) == (15, 35, 350 + 525)
    m = p.main_epochs
    for c in range(15):
        start = m + 35 * c
        end = start + 34
        peak = 3e-3 * 0.7**c
        assert p.phase(start) == "cyclic" and p.cycle_index(start) == c
        assert p.lr(start) == pytest.approx(peak, rel=1e-12)  # cycle start = decayed peak
        assert p.lr(end) == pytest.approx(peak * 0.5 * (1 + math.cos(math.pi * 34 / 35)), rel=1e-12)
        assert p.lr(start + 17) == pytest.approx(peak * 0.5 * (1 + math.cos(math.pi * 17 / 35)), rel=1e-12)
        assert p.is_cycle_end(end) and not p.is_cycle_end(start) and not p.is_cycle_end(end - 1)
    assert p.lr(m + 35) / p.lr(m) == pytest.approx(0.7)  # per-cycle peak decay
    assert p.cycle_end_epochs == tuple(m + 35 * (c + 1) - 1 for c in range(15))
    assert [e for e in range(p.total_epochs) if p.is_cycle_end(e)] == list(p.cycle_end_epochs)
    assert p.phase(m - 1) == "main" and p.lr(m - 1) == pytest.approx(3e-4)


def test_cyclic_min_lr_floor() -> None:
    p = EpochSchedule.from_configs(ScheduleConfig(), SwagConfig(enabled=True, min_lr=1e-5), OptimConfig())
    m = p.main_epochs
    assert p.lr(m) == pytest.approx(3e-3)
    assert p.lr(m + 35 + 17) == pytest.approx(1e-5 + (3e-3 * 0.7 - 1e-5) * 0.5 * (1 + math.cos(math.pi * 17 / 35)))


def test_build_epoch_schedule_from_trainconfig() -> None:
    cfg = TrainConfig(optim=OptimConfig(lr=0.1), swag=SwagConfig(enabled=True, cycles=2, cycle_epochs=3))
    p = build_epoch_schedule(cfg)
    assert p.base_lr == 0.1 and p.total_epochs == 350 + 6


@pytest.mark.parametrize("scale", [1.0, 0.2, 1 / 50, 0.01])
def test_epoch_counts_are_the_schedules(scale: float) -> None:
    """The torch-free counts (what the sweep spec and the report use) are the schedule's."""
    cfg = TrainConfig(schedule=ScheduleConfig(scale=scale), swag=SwagConfig(enabled=True, cycles=3))
    counts, schedule = epoch_counts(cfg), build_epoch_schedule(cfg)
    assert counts == EpochCounts(**{k: getattr(schedule, k) for k in vars(counts)})
    assert counts.total_epochs == schedule.total_epochs and counts.cycle_end_epochs == schedule.cycle_end_epochs


def test_epoch_counts_import_no_torch() -> None:
    import subprocess
    import sys
    from pathlib import Path

    code = "import sys, reid_core.training.epochs; print('torch' in sys.modules)"
    r = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=Path(__file__).resolve().parents[2],
    )
    assert r.returncode == 0 and r.stdout.strip() == "False", r.stderr


class _GeM(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.p = nn.Parameter(torch.tensor(3.0))


class GeM(nn.Module):  # matched by class name, whatever its parameter is called
    def __init__(self) -> None:
        super().__init__()
        self.exponent = nn.Parameter(torch.tensor(3.0))


class Toy(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3)
        self.bn = nn.BatchNorm2d(4)
        self.pool_global = _GeM()
        self.pool_local = GeM()
        self.fc = nn.Linear(4, 2, bias=False)
        self.frozen = nn.Parameter(torch.zeros(1), requires_grad=False)


def test_optimizer_groups() -> None:
    model = Toy()
    assert gem_parameter_names(model) == {"pool_global.p", "pool_local.exponent"}
    opt = build_optimizer(model, OptimConfig(lr=0.03, weight_decay=5e-4, gem_p_lr_mult=10.0, nesterov=True))
    assert [g["name"] for g in opt.param_groups] == ["default", "gem_p"]
    default, gem = opt.param_groups
    assert {id(p) for p in gem["params"]} == {id(model.pool_global.p), id(model.pool_local.exponent)}
    assert gem["weight_decay"] == 0.0 and gem["lr"] == pytest.approx(0.3)
    assert default["weight_decay"] == 5e-4 and default["lr"] == pytest.approx(0.03)
    # BN and bias keep weight decay; frozen parameters are not optimised
    ids = {id(p) for p in default["params"]}
    assert id(model.bn.weight) in ids and id(model.bn.bias) in ids and id(model.conv.bias) in ids
    assert id(model.frozen) not in ids and id(model.frozen) not in {id(p) for p in gem["params"]}
    assert default["nesterov"] and default["momentum"] == 0.9


def test_optimizer_without_gem_has_one_group() -> None:
    opt = build_optimizer(nn.Linear(3, 2), OptimConfig())
    assert len(opt.param_groups) == 1


def _lrs(opt: torch.optim.Optimizer) -> list[float]:
    return [g["lr"] for g in opt.param_groups]


def test_lambdalr_follows_the_schedule_and_keeps_group_multiplier() -> None:
    schedule = EpochSchedule.from_configs(
        ScheduleConfig(scale=1 / 50), SwagConfig(enabled=True, cycles=3), OptimConfig()
    )
    model = Toy()
    opt = build_optimizer(model, OptimConfig(gem_p_lr_mult=10.0))
    sched = build_scheduler(opt, schedule)
    for e in range(schedule.total_epochs):
        assert _lrs(opt) == pytest.approx([schedule.lr(e), 10 * schedule.lr(e)], rel=1e-9)
        opt.step()
        sched.step()
    assert sched.last_epoch == schedule.total_epochs  # evaluating one past the end is fine


def test_lambdalr_resume_exact() -> None:
    schedule = EpochSchedule.from_configs(ScheduleConfig(scale=0.1), SwagConfig(enabled=True, cycles=3), OptimConfig())
    cfg = OptimConfig(gem_p_lr_mult=5.0)

    torch.manual_seed(0)
    model = Toy()
    opt = build_optimizer(model, cfg)
    sched = build_scheduler(opt, schedule)
    stop = schedule.main_epochs + 2  # stop inside the cyclic phase
    for _ in range(stop):
        opt.step()
        sched.step()
    buf = io.BytesIO()
    torch.save({"opt": opt.state_dict(), "sched": sched.state_dict()}, buf)
    reference = []
    for _ in range(stop, schedule.total_epochs):
        reference.append(_lrs(opt))
        opt.step()
        sched.step()

    buf.seek(0)
    state = torch.load(buf, weights_only=True)
    model2 = Toy()
    opt2 = build_optimizer(model2, cfg)
    sched2 = build_scheduler(opt2, schedule)
    opt2.load_state_dict(state["opt"])
    sched2.load_state_dict(state["sched"])
    assert sched2.last_epoch == stop
    resumed = []
    for _ in range(stop, schedule.total_epochs):
        resumed.append(_lrs(opt2))
        opt2.step()
        sched2.step()
    assert resumed == reference  # exactly equal floats
