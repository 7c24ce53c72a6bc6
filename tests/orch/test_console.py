"""The sweep console (orchestration/sweep/console.py): what a person reads while a sweep runs."""

from __future__ import annotations

import pickle
from types import SimpleNamespace

import pytest

pytest.importorskip("ray")

from orchestration.sweep.console import SweepConsole, sweep_line, trial_view  # noqa: E402
from orchestration.sweep.spec import parse_text  # noqa: E402

SPEC = """
name: tiny
dataset:
  synthetic: {ids: 40, train_ids: 20, cameras: 3, images_per_id: 8}
grid:
  preset: [g, compact-1x]
seeds: [0, 1]
overrides:
  schedule.epochs: 8
  schedule.milestones: [6]
  schedule.warmup_epochs: 2
  swag.cycles: 2
  swag.cycle_epochs: 1
"""


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def _trials():
    spec = parse_text(SPEC, "<tiny>", check_paths=False)
    return [
        SimpleNamespace(trial_id=f"t{i}", status="PENDING", config={"trial": t}, last_result={})
        for i, t in enumerate(spec.trials)
    ]


def _console(total_samples: int | None = 4):
    out: list[str] = []
    clock = Clock()
    c = SweepConsole("tiny", trial_every_s=5, progress_every_s=15, heartbeat_s=60, write=out.append, clock=clock)
    c.setup(start_time=None, total_samples=total_samples)
    return c, out, clock


def _step(c: SweepConsole, trials, done: bool = False) -> list[str]:
    """One step of Ray's loop: the lines it printed."""
    out = c._write.__self__  # the list the console writes to
    n = len(out)
    if c.should_report(trials, done=done):
        c.report(trials, done)
    return "\n".join(out[n:]).splitlines()


def test_planned_epochs_from_the_trial():
    g, _, h, _ = _trials()
    assert trial_view(g).total == 8
    assert trial_view(h).total == 10  # 8 main + 2 one-epoch SWAG cycles


def test_trial_view_shows_name_axes_epoch_and_metrics():
    g = _trials()[0]
    v = trial_view(g)
    assert (v.name, v.axes, v.epoch, v.total, v.rank1) == ("g-seed0", "preset=g", 0, 8, None)
    g.status = "RUNNING"
    g.last_result = {"epoch": 4, "total_epochs": 8, "rank1": 0.165, "mAP": 0.131, "loss": 9.0}
    v = trial_view(g)
    assert (v.epoch, v.total, v.rank1, v.mAP) == (4, 8, 0.165, 0.131)


def test_one_line_per_trial_update_and_a_sweep_line():
    c, _, clock = _console()
    trials = _trials()
    assert _step(c, trials) == []  # all pending: nothing to say yet
    trials[0].status = trials[1].status = "RUNNING"
    clock.t += 2
    lines = _step(c, trials)
    assert len(lines) == 2 and lines[0].startswith("[0:02] g-seed0") and lines[0].endswith("epoch 0/8  started")
    assert "trial/config" not in "\n".join(lines) and "tensorboard" not in "\n".join(lines).lower()

    # a new epoch: one line for that trial (a sweep line once progress_every_s has passed)
    trials[0].last_result = {"epoch": 1, "total_epochs": 8, "rank1": 0.03, "mAP": 0.04}
    clock.t += 1
    assert _step(c, trials) == []  # within trial_every_s of its last line
    clock.t += 5
    lines = _step(c, trials)
    assert len(lines) == 1 and "g-seed0" in lines[0] and "epoch 1/8" in lines[0] and "rank1   3.0%" in lines[0]
    clock.t += 15
    trials[0].last_result = {"epoch": 2, "total_epochs": 8, "rank1": 0.1, "mAP": 0.09}
    lines = _step(c, trials)
    assert "epoch 2/8" in lines[0] and "mAP   9.0%" in lines[0]
    assert lines[-1].endswith("sweep tiny: 0/4 finished, 2 running, 2 pending | epochs 2/36 (6%)")

    # a trial ends: its line (with its last epoch) and a sweep line at once
    trials[0].status = "TERMINATED"
    trials[0].last_result = {"epoch": 8, "total_epochs": 8, "rank1": 0.31, "mAP": 0.25}
    trials[2].status = "RUNNING"
    clock.t += 1
    lines = _step(c, trials)
    assert any("g-seed0" in x and "epoch 8/8" in x and "FINISHED" in x for x in lines)
    assert any("compact-1x-seed0" in x and "epoch  0/10" in x for x in lines)
    assert "1/4 finished, 2 running, 1 pending | epochs 8/36 (22%)" in lines[-1]


def test_heartbeat_failures_and_trials_added_later():
    c, _, clock = _console(total_samples=None)  # a searcher that does not say how many
    trials = _trials()[:2]
    trials[0].status = "RUNNING"
    _step(c, trials)
    clock.t += 61
    lines = _step(c, trials)  # nothing new: the sweep line alone, as a heartbeat
    assert len(lines) == 1 and "0/2 finished, 1 running, 1 pending" in lines[0] and lines[0].startswith("[1:01]")
    trials[0].status = "ERROR"
    trials[0].last_result = {"epoch": 3, "total_epochs": 8}
    trials += _trials()[2:3]  # a searcher hands Tune another trial
    clock.t += 1
    lines = _step(c, trials)
    assert any("g-seed0" in x and x.endswith("ERROR") for x in lines)
    assert "0/3 finished, 1 failed, 0 running, 2 pending | epochs 3/26 (12%)" in lines[-1]


def test_done_prints_the_sweep_line_and_hours_are_shown():
    c, _, clock = _console()
    trials = _trials()
    for t in trials:
        t.status = "TERMINATED"
        t.last_result = {"epoch": 8, "total_epochs": t.config["trial"].total_epochs}
    _step(c, trials)
    clock.t += 3 * 3600 + 65
    lines = _step(c, trials, done=True)
    assert lines[-1] == "[3:01:05] sweep tiny: 4/4 finished, 0 running, 0 pending | epochs 36/36 (100%)"
    assert _step(c, trials, done=True) == []  # said once


def test_trials_tune_has_not_created_yet_count_as_pending():
    c, _, clock = _console(total_samples=4)
    trials = _trials()[:2]  # Tune's grid generator creates trials a few at a time
    trials[0].status = "RUNNING"
    clock.t += 61
    lines = _step(c, trials)
    assert lines[-1].endswith("sweep tiny: 0/4 finished, 1 running, 3 pending | epochs 0/~32 (0%)")
    c.setup(total_samples=2**63)  # unbounded: the trials seen so far
    clock.t += 61
    assert _step(c, trials)[-1].endswith("0/2 finished, 1 running, 1 pending | epochs 0/16 (0%)")


def test_unknown_totals_and_search_names():
    template = (
        parse_text(SPEC, "<tiny>", check_paths=False)
        .trials[0]
        .with_overrides({"schedule.epochs": 4, "schedule.milestones": [3]})
    )
    config = {"trial": template, "sampled": {"optim.lr": 0.0213456}}
    t = SimpleNamespace(trial_id="a", status="RUNNING", config=config, last_result={"epoch": 1})
    v = trial_view(t)
    assert v.name == "lr=0.0213-seed0" and v.axes == "preset=g lr=0.02135" and v.total == 4
    bare = SimpleNamespace(trial_id="b", status="PENDING", config={}, last_result=None)
    assert trial_view(bare).name == "b" and trial_view(bare).total is None
    assert sweep_line("s", [v, trial_view(bare)]).endswith("epochs 1/4+ (25%)")


def test_the_console_pickles_with_the_run_config():
    c, _, _ = _console()
    c.should_report(_trials())
    back = pickle.loads(pickle.dumps(c))
    assert back.sweep_name == "tiny" and back._write is None


def test_a_trial_end_is_one_line_and_columns_only_widen():
    c, _, clock = _console()
    trials = _trials()
    trials[0].status = "RUNNING"
    first = _step(c, trials)[0]
    trials[0].last_result = {"epoch": 8, "total_epochs": 8, "rank1": 0.3, "mAP": 0.2}
    clock.t += 30  # the last epoch waits for the trial's end, even when a line is due
    assert not [x for x in _step(c, trials) if "g-seed0" in x]
    trials[0].status = "TERMINATED"
    lines = [x for x in _step(c, trials) if "g-seed0" in x]
    assert len(lines) == 1 and "epoch 8/8" in lines[0] and lines[0].endswith("FINISHED")
    assert lines[0].index("epoch") == first.index("epoch")  # same columns as before


def test_a_finished_trial_shows_its_reported_model():
    h = _trials()[2]
    h.status = "TERMINATED"
    h.last_result = {"epoch": 10, "total_epochs": 10, "rank1": 0.04, "mAP": 0.06, "final_rank1": 0.1, "final_mAP": 0.09}
    v = trial_view(h)
    assert (v.rank1, v.mAP) == (0.1, 0.09)  # the SWAG model's, not the last weights'
