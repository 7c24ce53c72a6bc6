"""The sweep console (orchestration/sweep/console.py): what a person reads while a sweep runs."""

from __future__ import annotations

import pickle
from types import SimpleNamespace

import pytest

pytest.importorskip("ray")

from orchestration.sweep.console import ConsolePlan, SweepConsole, sweep_line, trial_view  # noqa: E402
from orchestration.sweep.spec import parse_text  # noqa: E402
from orchestration.sweep.verdicts import verdicts_for  # noqa: E402

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


def _console(total_samples: int | None = 4, plan: ConsolePlan | str = "tiny", verbose: int = 1, live: bool = False):
    out: list[str] = []
    clock = Clock()
    c = SweepConsole(
        plan, verbose, trial_every_s=5, progress_every_s=15, heartbeat_s=60, write=out.append, clock=clock, live=live
    )
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


def test_one_line_when_a_trial_starts_and_one_when_it_ends():
    c, _, clock = _console()
    trials = _trials()
    assert _step(c, trials) == []  # all pending: nothing to say yet
    trials[0].status = trials[1].status = "RUNNING"
    clock.t += 2
    lines = _step(c, trials)
    assert lines == ["[0:02] g-seed0               preset=g            started", lines[1]] and "g-seed1" in lines[1]
    assert "trial/config" not in "\n".join(lines) and "tensorboard" not in "\n".join(lines).lower()

    # epochs go by: no trial line (verbose 1); the progress line once progress_every_s has passed
    trials[0].last_result = {"epoch": 1, "total_epochs": 8, "rank1": 0.03, "mAP": 0.04}
    clock.t += 6
    assert _step(c, trials) == []
    clock.t += 10
    trials[0].last_result = {"epoch": 2, "total_epochs": 8, "rank1": 0.1, "mAP": 0.09}
    lines = _step(c, trials)
    assert lines == ["[0:18] sweep tiny: 0/4 finished, 2 running, 2 to start | 2/36 epochs (6%) | ETA 5:06"]

    # a trial ends: one line, with its reported model's figures
    trials[0].status = "TERMINATED"
    trials[0].last_result = {"epoch": 8, "total_epochs": 8, "rank1": 0.31, "mAP": 0.25}
    trials[2].status = "RUNNING"
    clock.t += 1
    lines = _step(c, trials)
    assert lines[0] == "[0:19] g-seed0               preset=g            8/8  rank1  31.0%  mAP  25.0%  FINISHED"
    assert lines[1].startswith("[0:19] compact-1x-seed0") and lines[1].endswith("started")
    assert len(lines) == 2  # the progress line waits for progress_every_s


def test_verbose_adds_a_line_per_epoch_at_most_every_trial_every_s():
    c, _, clock = _console(verbose=2)
    trials = _trials()
    trials[0].status = "RUNNING"
    _step(c, trials)
    for epoch in (1, 2):
        clock.t += 1 if epoch == 1 else 5
        trials[0].last_result = {"epoch": epoch, "total_epochs": 8, "rank1": 0.03, "mAP": 0.04}
        lines = _step(c, trials)
        assert (lines == []) if epoch == 1 else (lines[0].endswith("2/8  rank1   3.0%  mAP   4.0%"))


def test_a_failed_trial_names_its_log_file_and_heartbeats():
    plan = ConsolePlan("tiny", trials=4, logs="s3://bucket/reid")
    c, _, clock = _console(plan=plan)
    trials = _trials()
    trials[0].status = "RUNNING"
    _step(c, trials)
    clock.t += 61
    lines = _step(c, trials)  # nothing new: the progress line alone, as a heartbeat
    assert lines == ["[1:01] sweep tiny: 0/4 finished, 1 running, 3 to start | 0/36 epochs (0%)"]
    trials[0].status = "ERROR"
    trials[0].last_result = {"epoch": 3, "total_epochs": 8}
    clock.t += 1
    lines = _step(c, trials)
    assert lines[0].endswith("3/8  ERROR  log s3://bucket/reid/tiny/logs/g-seed0.log")


def test_a_trial_that_starts_from_shared_epochs():
    from orchestration.sweep.trial import Start

    h = _trials()[2]
    h.config = {"trial": h.config["trial"].with_start(Start(from_trial="g-seed0", epoch=8))}
    h.status = "RUNNING"
    h.last_result = {"epoch": 8, "total_epochs": 10}
    view = trial_view(h)
    assert view.start_epoch == 8 and view.trained == 0
    assert "started from epoch 8" in _step(_console()[0], [h])[0]
    h.status = "TERMINATED"
    assert trial_view(h).trained == 2  # the two SWAG epochs; the 8 main ones were g-seed0's


def test_the_progress_line_at_the_end_and_hours():
    c, _, clock = _console()
    trials = _trials()
    for t in trials:
        t.status = "TERMINATED"
        t.last_result = {"epoch": 8, "total_epochs": t.config["trial"].total_epochs}
    _step(c, trials)
    clock.t += 3 * 3600 + 65
    lines = _step(c, trials, done=True)
    assert lines[-1] == "[3:01:05] sweep tiny: 4/4 finished, 0 running, 0 to start | 36/36 epochs (100%)"
    assert _step(c, trials, done=True) == []  # said once


def test_the_plan_counts_trials_tune_has_not_created_yet():
    plan = ConsolePlan("tiny", trials=115, epochs_to_train=938)
    trials = _trials()[:2]
    trials[0].status = "RUNNING"
    trials[0].last_result = {"epoch": 4, "total_epochs": 8}
    line = sweep_line(plan, [trial_view(t) for t in trials], elapsed=40.0)
    assert line == "sweep tiny: 0/115 finished, 1 running, 114 to start | 4/938 epochs (0%) | ETA 2:35:40"


def test_verdicts_as_their_seeds_end():
    spec = parse_text(SPEC, "<tiny>", check_paths=False)
    c, _, clock = _console(plan=ConsolePlan("tiny", trials=4, verdicts=verdicts_for([spec])))
    trials = _trials()
    for t, rank1 in zip(trials, (0.20, 0.22, 0.30, 0.33)):
        t.status = "TERMINATED"
        t.last_result = {"epoch": 8, "total_epochs": 8, "final_rank1": rank1}
        clock.t += 1
        lines = [x for x in _step(c, trials[: trials.index(t) + 1]) if "verdict" in x]
        if t is trials[-1]:
            assert len(lines) == 1 and "verdict tiny: g vs compact-1x on final_rank1: worse" in lines[0]
            assert lines[0].endswith("n=2/2")
        else:
            assert lines == []


def test_a_live_table_of_the_running_trials_on_a_terminal():
    c, out, clock = _console(live=True)
    trials = _trials()
    trials[0].status = trials[1].status = "RUNNING"
    trials[0].last_result = {"epoch": 3, "total_epochs": 8, "rank1": 0.125, "mAP": 0.25}
    lines = _step(c, trials)
    assert lines == []  # the table says who runs: no start lines
    table = c._table()
    assert [cell for cell in table.columns[0].cells] == ["g-seed0", "g-seed1"]
    assert list(table.columns[2].cells) == ["3/8", "0/8"] and list(table.columns[3].cells) == ["12.5%", "-"]
    trials[0].status = "TERMINATED"
    clock.t += 1
    lines = _step(c, trials, done=True)
    assert any(x.endswith("FINISHED") for x in lines) and c._live is None  # stopped at the end


def test_the_console_pickles_with_the_run_config():
    c, _, _ = _console()
    c.should_report(_trials())
    back = pickle.loads(pickle.dumps(c))
    assert back.plan.sweep == "tiny" and back._write is None


def test_unknown_totals_and_search_names():
    template = (
        parse_text(SPEC, "<tiny>", check_paths=False)
        .trials[0]
        .with_overrides({"schedule.epochs": 4, "schedule.milestones": [3]})
    )
    config = {"trial": template, "sampled": {"optim.lr": 0.0213456}}
    t = SimpleNamespace(trial_id="a", status="RUNNING", config=config, last_result={"epoch": 1})
    v = trial_view(t)
    assert v.axes == "preset=g lr=0.02135" and v.total == 4
    bare = SimpleNamespace(trial_id="b", status="PENDING", config={}, last_result=None)
    assert trial_view(bare).name == "b" and trial_view(bare).total is None


def test_a_finished_trial_shows_its_reported_model():
    h = _trials()[2]
    h.status = "TERMINATED"
    h.last_result = {"epoch": 10, "total_epochs": 10, "rank1": 0.04, "mAP": 0.06, "final_rank1": 0.1, "final_mAP": 0.09}
    v = trial_view(h)
    assert (v.rank1, v.mAP) == (0.1, 0.09)  # the SWAG model's, not the last weights'
