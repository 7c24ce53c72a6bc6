"""Shared training's plan (no Ray, no training): who trains what, who starts from whom, the
cost of the paper's reproduction, the live plan's release rules, reuse from the store."""

from __future__ import annotations

from pathlib import Path

import pytest
from sweep_yaml import tiny_sweep_yaml

from orchestration.commands.sweep import format_cost
from orchestration.storage.store import Store
from orchestration.sweep.checkpoints import SharedCheckpoints
from orchestration.sweep.live_plan import LivePlan
from orchestration.sweep.sharing import dataset_fingerprint, keys_of, plan_cost, share_training, sweep_cost
from orchestration.sweep.spec import load_spec, parse_text

REPO = Path(__file__).resolve().parents[2]
REPRODUCTION = ("table3_ablation", "table4_swag", "swag_cycles", "gem_p_init", "width_multiplier")


def _spec(grid: str, seeds: str = "[0, 1]", **kw):
    return parse_text(tiny_sweep_yaml("t", "test", grid=grid, seeds=seeds, **kw))


def _shared(spec, reusable=None):
    """The spec's trials with their starts planned."""
    return share_training(spec.trials, dataset_fingerprint(spec.dataset), reusable)


def _by_name(trials):
    return {t.name: t for t in trials}


def _epochs(start):
    return tuple(epoch for epoch, _key in start.publish)


def _checkpoints(folder):
    return SharedCheckpoints(Store(str(folder)), refresh_s=0.0)


def test_h_starts_from_g_and_compact_1x_is_h():
    spec = _spec("grid:\n  preset: [g, h, compact-1x]", extra_overrides={"swag.cycles": 2})
    shared = _shared(spec)
    trials = _by_name(shared)
    starts = {name: t.start for name, t in trials.items()}
    # g trains its 4 main epochs; h starts after them; compact-1x (= h, switch for switch) trains nothing
    assert (starts["g-seed0"].from_trial, _epochs(starts["g-seed0"])) == (None, (4,))
    # h stores its two cycle ends (6 for compact-1x, which finishes from it; 5 for later sweeps)
    assert (starts["h-seed0"].from_trial, starts["h-seed0"].epoch, _epochs(starts["h-seed0"])) == ("g-seed0", 4, (5, 6))
    assert starts["h-seed0"].checkpoint == dict((e, k) for e, k in starts["g-seed0"].publish)[4]
    assert (starts["compact-1x-seed0"].from_trial, starts["compact-1x-seed0"].epoch) == ("h-seed0", 6)
    assert trials["compact-1x-seed0"].trained_epochs == 0 and not starts["compact-1x-seed0"].reevaluate
    assert starts["h-seed1"].from_trial == "g-seed1"  # never across seeds
    assert plan_cost(shared).naive == 2 * (4 + 6 + 6) and plan_cost(shared).shared == 2 * (4 + 2)
    assert keys_of(spec.trials[2].config, "x").identity == keys_of(spec.trials[4].config, "x").identity


def test_a_cycles_grid_trains_once_to_the_largest_count():
    spec = _spec("base_preset: h\ngrid:\n  swag.cycles: [1, 3, 2]", seeds="[0]")
    shared = _shared(spec)
    trials = _by_name(shared)
    runner = trials["swag.cycles=3-seed0"]
    # its members' ends (5, 6), and for later sweeps its end of main phase (4) and its last epoch (7)
    assert runner.start.from_trial is None and _epochs(runner.start) == (4, 5, 6, 7)
    one_cycle = trials["swag.cycles=1-seed0"].start
    assert (one_cycle.from_trial, one_cycle.epoch) == (runner.name, 5)
    assert plan_cost(shared).shared == 7 and plan_cost(shared).naive == 5 + 7 + 6


def test_an_eval_only_difference_is_re_evaluated_and_a_main_difference_shares_nothing():
    spec = _spec("base_preset: g\ngrid:\n  eval.max_rank: [50, 10]\n  optim.lr: [0.03, 0.01]", seeds="[0]")
    re_eval = [t for t in _shared(spec) if t.start.reevaluate]
    assert len(re_eval) == 2 and all(t.trained_epochs == 0 for t in re_eval)
    assert len({t.start.from_trial for t in re_eval}) == 2  # one producer per learning rate


def test_the_paper_reproduction_cost():
    """The five reproduction specs together: 66,605 trial-epochs alone, 40,600 shared (61%)."""
    import os

    os.environ.setdefault("MARKET1501_ROOT", "/nonexistent/market")
    specs = [load_spec(REPO / "sweeps" / f"{n}.yaml", check_paths=False) for n in REPRODUCTION]
    cost = sweep_cost(specs, images_per_second=1000.0)
    assert (cost["trials"], cost["alone"], cost["shared"]) == (115, 66605, 40600)
    by_spec = {row["spec"]: row for row in cost["specs"]}
    assert by_spec["table3_ablation"]["shared"] == 24500 - 2 * 5 * 350  # h inherits g's main phase, compact i's
    assert by_spec["swag_cycles"]["shared"] == 3 * (350 + 20 * 35)  # one 20-cycle run per seed
    assert cost["gpu_hours"]["alone"] == pytest.approx(66605 * 12936 / 1000 / 3600)
    assert "40600" in format_cost(cost)


def test_live_plan_releases_a_consumer_when_its_checkpoint_appears(tmp_path):
    spec = _spec("grid:\n  preset: [g, h]", seeds="[0]")
    trials = _shared(spec)
    plan = LivePlan(trials, _checkpoints(tmp_path), log=lambda _m: None)
    assert plan.next_ready().name == "g-seed0"
    assert plan.next_ready() is None and not plan.done()  # h waits, holding nothing
    h = _by_name(trials)["h-seed0"].start
    stored = tmp_path / SharedCheckpoints.rel(h.checkpoint, 4)
    stored.parent.mkdir(parents=True)
    stored.write_bytes(b"x")
    assert plan.next_ready().name == "h-seed0"
    assert plan.done()


def test_live_plan_releases_consumers_of_a_failed_producer_alone(tmp_path):
    spec = _spec("grid:\n  preset: [g, h]", seeds="[0]")
    plan = LivePlan(_shared(spec), _checkpoints(tmp_path), log=print)
    plan.next_ready()
    plan.on_complete("g-seed0", None, error=True)
    released = plan.next_ready()
    assert released.name == "h-seed0" and released.start.from_trial is None and released.start.epoch == 0
    assert "g-seed0 failed" in released.start.alone_because
    # the state round-trips (saved with Tune's experiment state)
    again = LivePlan([], _checkpoints(tmp_path))
    again.set_state(plan.state())
    assert again.released == ["g-seed0", "h-seed0"] and again.done()


def test_reusable_trials_train_nothing_and_leave_the_plan():
    spec = _spec("grid:\n  preset: [g, h]", seeds="[0]", extra_overrides={"swag.cycles": 2})
    fp = dataset_fingerprint(spec.dataset)
    g_id = keys_of(spec.trials[0].config, fp).identity
    with_reuse = share_training(spec.trials, fp, {g_id: "RUN"})
    trials = _by_name(with_reuse)
    assert trials["g-seed0"].start.reuse_run == "RUN" and trials["g-seed0"].trained_epochs == 0
    assert trials["h-seed0"].start.from_trial is None  # a store run has no main-phase checkpoint
    assert plan_cost(share_training(spec.trials, fp), with_reuse).after_reuse == 6


def test_find_reusable_takes_finished_runs_only_and_copy_refuses_lost_artifacts(tmp_path):
    from mlflow.tracking import MlflowClient

    from orchestration.mlflow_log import names
    from orchestration.mlflow_log.reuse import ReuseError, copy_run, find_reusable

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = MlflowClient(uri)
    exp = client.create_experiment("e", artifact_location=str(tmp_path / "art"))
    failed = client.create_run(exp, tags={names.IDENTITY: "A"}).info.run_id
    client.set_terminated(failed, "FAILED")
    assert find_reusable(uri, {"A"}) == {}  # a FAILED run is never reused
    done = client.create_run(exp, tags={names.IDENTITY: "A"}).info.run_id
    client.log_metric(done, "loss", 1.0, step=1)
    client.set_terminated(done, "FINISHED")
    assert find_reusable(uri, {"A", "B"}) == {"A": done}
    target = client.create_run(exp).info.run_id
    with pytest.raises(ReuseError, match="artifacts are gone"):
        copy_run(client, done, target)
    for name in (names.HISTORY_ARTIFACT, names.SUMMARY_ARTIFACT, "weights/final.pt"):
        client.log_text(done, "{}", name)
    copy_run(client, done, target)
    assert [m.step for m in client.get_metric_history(target, "loss")] == [1]
    assert {a.path for a in client.list_artifacts(target)} >= {names.HISTORY_ARTIFACT, "weights"}


def test_adaptive_seeds_add_a_seed_to_both_sides_of_an_open_comparison(tmp_path):
    from orchestration.sweep.adaptive_seeds import AdaptiveSeedsPolicy, read_added

    spec = _spec("grid:\n  preset: [g, h]\n  optim.lr: [0.03]", seeds="{initial: 2, max: 3}")
    assert spec.file.adaptive is not None and [t.seed for t in spec.trials] == [0, 1, 0, 1]
    store = Store(str(tmp_path))
    policy = AdaptiveSeedsPolicy(spec.trials, "final_rank1", 3, None, True, "fp", (store, "t"), log=lambda _m: None)
    assert policy.pairs == {"g-optim.lr=0.03": "h-optim.lr=0.03"}  # Table 3: g against h, found by switches
    plan = LivePlan(_shared(spec), _checkpoints(tmp_path), policy)
    for name in list(plan.trials):
        plan.released.append(name)
    # g better by 0.1 and 0.0: not resolved at 2 seeds -> seed 2 for both, h's starting from g's
    for name, v in [("g-optim.lr=0.03-seed0", 0.5), ("h-optim.lr=0.03-seed0", 0.4), ("g-optim.lr=0.03-seed1", 0.45)]:
        plan.on_complete(name, {"final_rank1": v}, False)
        assert len(plan.trials) == 4  # h-seed1 still running: nothing decided yet
    plan.on_complete("h-optim.lr=0.03-seed1", {"final_rank1": 0.45}, False)
    added = {name: t for name, t in plan.trials.items() if t.added_because}
    assert set(added) == {"g-optim.lr=0.03-seed2", "h-optim.lr=0.03-seed2"}
    assert "not resolved at n=2/2" in added["h-optim.lr=0.03-seed2"].added_because
    assert added["h-optim.lr=0.03-seed2"].start.from_trial == "g-optim.lr=0.03-seed2"
    assert added["g-optim.lr=0.03-seed2"].config.seed == 2 and added["g-optim.lr=0.03-seed2"].seed == 2
    assert sorted(t["trial_name"] for t in read_added(store, "t")) == sorted(added)
    assert not plan.done()
    plan.released += sorted(added)
    plan.on_complete("g-optim.lr=0.03-seed2", {"final_rank1": 0.5}, False)
    plan.on_complete("h-optim.lr=0.03-seed2", {"final_rank1": 0.5}, error=True)  # failed: counts as planned
    assert policy.status == {"g-optim.lr=0.03": "max"} and plan.done()  # 3 seeds planned = max


def test_adaptive_seeds_without_anything_to_compare_are_refused():
    from reid_core.config import ConfigError

    with pytest.raises(ConfigError, match="reference: adaptive seeds compare grid points"):
        _spec("base_preset: g", seeds="{initial: 2, max: 4}")
    with pytest.raises(ConfigError, match="seeds.max: must be >= seeds.initial"):
        _spec("grid:\n  preset: [g, h]", seeds="{initial: 4, max: 3}")


def test_a_later_sweep_starts_from_what_the_storage_holds():
    """Checkpoints stored by an earlier sweep (same storage) are found by key: h starts after
    g's stored main phase, and a longer SWAG run from a shorter one's last cycle."""
    spec = _spec("grid:\n  preset: [g, h]", seeds="[0]", extra_overrides={"swag.cycles": 3})
    fingerprint = dataset_fingerprint(spec.dataset)
    g, h = spec.trials
    g_keys, h_keys = keys_of(g.config, fingerprint), keys_of(h.config, fingerprint)
    main_key = g_keys.checkpoint_key(4)
    assert main_key == h_keys.checkpoint_key(4)  # g and h are equal through their main phase
    assert h_keys.checkpoint_key(3) is None and h_keys.checkpoint_key(6).startswith("swag-")
    alone = _by_name(share_training(spec.trials, fingerprint))
    assert alone["h-seed0"].start.from_trial == "g-seed0"  # nothing stored: h waits for g
    stored = _by_name(share_training(spec.trials, fingerprint, stored={(main_key, 4)}))
    assert stored["g-seed0"].trained_epochs == 0  # g's whole run is stored (its main phase is all of it)
    assert (stored["h-seed0"].start.from_trial, stored["h-seed0"].start.epoch) == (None, 4)
    later = {(main_key, 4), (h_keys.checkpoint_key(6), 6)}  # a 2-cycle h of an earlier sweep
    start = _by_name(share_training(spec.trials, fingerprint, stored=later))["h-seed0"].start
    assert (start.epoch, start.checkpoint, start.from_trial) == (6, h_keys.checkpoint_key(6), None)
    assert [epoch for epoch, _ in start.publish] == [7]  # its own last epoch, for the next sweep
    cost = plan_cost(share_training(spec.trials, fingerprint, stored=later))
    assert (cost.naive, cost.shared) == (4 + 7, 0 + 1)
