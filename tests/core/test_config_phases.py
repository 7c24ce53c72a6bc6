"""When each config field acts (reid_core/config_phases.py), checked by training on CPU, and
shared training: a run started from another run's checkpoint ends exactly as it would alone."""

from __future__ import annotations

import pytest
import torch

from reid_core.config import TrainConfig, flatten
from reid_core.config_phases import FIELD_PHASES, PHASES, fields_of
from reid_core.errors import CheckpointError
from reid_core.presets import preset_config
from reid_core.training.trainer import Trainer

TINY = {
    "model.width_multiplier": 0.25,
    "model.depth_multiplier": 0.3,
    "data.p": 4,
    "data.k": 2,
    "data.num_workers": 0,
    "schedule.epochs": 3,
    "schedule.warmup_epochs": 1,
    "schedule.milestones": [2],
    "swag.cycles": 2,
    "swag.cycle_epochs": 1,
    "swag.samples": 2,
    "swag.bn_batches": 1,
    "eval.every": 1,
    "eval.batch_size": 64,
}
MAIN = 3  # main-phase epochs of TINY


@pytest.fixture(scope="module")
def data(make_tiny_market):
    return make_tiny_market("synth", seed=3)


def cfg(preset: str = "h", **extra) -> TrainConfig:
    return preset_config(preset, {**TINY, **extra})


def train(c: TrainConfig, data, tmp_path, name: str) -> Trainer:
    t = Trainer(c, data, tmp_path / name, log=None)
    for _ in t.run():
        pass
    return t


def same_weights(a: Trainer, b: Trainer) -> bool:
    sa, sb = a.model.state_dict(), b.model.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


TIMING = ("epoch_seconds", "images_per_second", "eval_seconds", "train_seconds")


def results(history: list[dict]) -> list[dict]:
    """Every metric of every epoch but the timings."""
    return [{k: v for k, v in h.items() if k not in TIMING} for h in history]


def losses(t: Trainer) -> list[tuple[float, ...]]:
    return [(h["loss"], h["loss_ce"], h["loss_triplet"], h["lr"]) for h in t.history]


def test_every_field_has_exactly_one_class():
    assert set(FIELD_PHASES) == set(flatten(TrainConfig()))
    assert set(FIELD_PHASES.values()) <= set(PHASES)
    # a run without SWAG is the same run whatever its unused SWAG settings say
    assert fields_of(cfg("g"), "swag") == {} and fields_of(cfg("g", **{"swag.decay": 0.5}), "main", "swag", "eval")


@pytest.fixture(scope="module")
def reference(data, tmp_path_factory):
    """Column h alone: 3 main epochs + 2 SWAG cycles, evaluated every epoch."""
    return train(cfg(), data, tmp_path_factory.mktemp("ref"), "h")


def test_a_swag_field_changes_nothing_before_the_swag_phase(reference, data, tmp_path):
    other = train(cfg(**{"swag.decay": 0.3, "swag.peak_lr": 0.01}), data, tmp_path, "decay")
    assert losses(other)[:MAIN] == losses(reference)[:MAIN]
    assert [h.get("rank1") for h in other.history[:MAIN]] == [h.get("rank1") for h in reference.history[:MAIN]]
    assert losses(other)[MAIN:] != losses(reference)[MAIN:]  # and it does act afterwards


def test_an_eval_field_changes_no_training(reference, data, tmp_path):
    other = train(cfg(**{"eval.max_rank": 5, "swag.samples": 3}), data, tmp_path, "eval")
    assert losses(other) == losses(reference)
    assert same_weights(other, reference)
    assert other.history[-1]["swag_mAP"] != reference.history[-1]["swag_mAP"]  # it does change the measure


def test_a_none_field_changes_nothing(reference, data, tmp_path):
    other = train(cfg(**{"data.num_workers": 1}), data, tmp_path, "workers")
    assert losses(other) == losses(reference)
    assert [h.get("mAP") for h in other.history] == [h.get("mAP") for h in reference.history]
    assert same_weights(other, reference)


def test_a_main_field_acts_from_the_first_epoch(reference, data, tmp_path):
    c = cfg(**{"optim.lr": 0.01})
    t = Trainer(c, data, tmp_path / "lr", log=None)
    first = next(iter(t.run()))
    assert first["loss"] != reference.history[0]["loss"]


def test_h_started_from_g_main_phase_ends_as_h_alone(reference, data, tmp_path):
    g = train(cfg("g"), data, tmp_path, "g")
    g.save_checkpoint(tmp_path / "g.pt")
    h = Trainer(cfg(), data, tmp_path / "h2", log=None)
    h.start_from(tmp_path / "g.pt", MAIN)
    for _ in h.run():
        pass
    assert results(h.history) == results(reference.history)  # every epoch's metrics, bitwise
    assert same_weights(h, reference)
    assert {k: v for k, v in h.summary.items() if k != "train_seconds"} == {
        k: v for k, v in reference.summary.items() if k != "train_seconds"
    }


def test_fewer_cycles_finish_from_the_longer_run(reference, data, tmp_path):
    one = train(cfg(**{"swag.cycles": 1}), data, tmp_path, "one")
    # the 2-cycle reference's state after its first cycle, as its producer would publish it
    part = Trainer(cfg(), data, tmp_path / "part", log=None)
    for m in part.run():
        if m["epoch"] == MAIN + 1:
            part.save_checkpoint(tmp_path / "c1.pt")
            break
    short = Trainer(cfg(**{"swag.cycles": 1}), data, tmp_path / "short", log=None)
    short.start_from(tmp_path / "c1.pt", MAIN + 1)
    last = short.finish_inherited(reevaluate=False)
    assert results(short.history) == results(one.history) and results([last]) == results(one.history[-1:])
    assert same_weights(short, one)
    assert short.summary["final_mAP"] == one.summary["final_mAP"]


def test_a_checkpoint_of_another_main_phase_is_refused(data, tmp_path):
    g = Trainer(cfg("g"), data, tmp_path / "g", log=None)
    g.save_checkpoint(tmp_path / "g0.pt")
    other = Trainer(cfg("h", **{"optim.lr": 0.01}), data, tmp_path / "h", log=None)
    with pytest.raises(CheckpointError, match="optim.lr"):
        other.start_from(tmp_path / "g0.pt", 0)


@pytest.mark.parametrize("preset, epoch", [("h", MAIN + 1), ("g", MAIN)])
def test_an_inherited_run_reevaluated_ends_as_alone(data, tmp_path, preset, epoch):
    """finish_inherited(reevaluate=True): the last epoch measured with this run's evaluation
    settings (h: after its only SWAG cycle; g, no SWAG: the main phase's end, plain_*)."""
    extra = {"swag.cycles": 1, "eval.flip": True}
    alone = train(cfg(preset, **extra), data, tmp_path, "alone")
    producer = Trainer(cfg(preset), data, tmp_path / "producer", log=None)
    for m in producer.run():
        if m["epoch"] == epoch:
            producer.save_checkpoint(tmp_path / "producer.pt")
            break
    inherited = Trainer(cfg(preset, **extra), data, tmp_path / "inherited", log=None)
    inherited.start_from(tmp_path / "producer.pt", epoch)
    last = inherited.finish_inherited(reevaluate=True)
    assert results([last]) == results(alone.history[-1:]) and inherited.history[-1] == last
    assert results(inherited.history[:-1]) == results(producer.history[: epoch - 1])  # the producer's measures
    assert last["mAP"] != producer.history[epoch - 1]["mAP"]  # measured again, with flip
    assert inherited.summary["final_mAP"] == alone.summary["final_mAP"]
    if preset == "g":
        assert (inherited.summary["plain_rank1"], inherited.summary["plain_mAP"]) == (
            alone.summary["plain_rank1"],
            alone.summary["plain_mAP"],
        )
