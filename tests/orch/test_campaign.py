"""Campaigns (several specs as one plan) and rehearsals (the same plan at tiny scale), without
Ray: what a campaign refuses, that a rehearsal differs from the real run in scale only (and
that the check would say so if it did not), and that the campaign plans what
`sweep show --cost` plans."""

from __future__ import annotations

from pathlib import Path

import pytest
from sweep_yaml import tiny_sweep_yaml

from orchestration.sweep.campaign import campaign_name, load_campaign
from orchestration.sweep.rehearsal import REHEARSAL_SCALE, plan_differences, rehearsal_specs
from orchestration.sweep.sharing import dataset_fingerprint, plan_cost, share_training, sweep_cost
from orchestration.sweep.spec import load_spec
from reid_core.config import ConfigError, flatten

REPO = Path(__file__).resolve().parents[2]
REPRODUCTION = [
    REPO / "sweeps" / f"{n}.yaml"
    for n in ("table3_ablation", "table4_swag", "swag_cycles", "gem_p_init", "width_multiplier")
]


def test_the_rehearsal_of_the_reproduction_is_its_plan_at_tiny_scale(monkeypatch):
    monkeypatch.delenv("MARKET1501_ROOT", raising=False)
    rehearsal = rehearsal_specs(REPRODUCTION)  # no dataset needed: generated data stands in
    monkeypatch.setenv("MARKET1501_ROOT", "/nonexistent/market")
    real = [load_spec(path, check_paths=False) for path in REPRODUCTION]
    assert plan_differences(real, rehearsal) == []
    assert [s.file.name for s in rehearsal] == [f"{s.file.name}-rehearsal" for s in real]
    assert all(s.dataset.is_synthetic for s in rehearsal)
    for spec in rehearsal:
        for trial in spec.trials:
            values = flatten(trial.config)
            assert all(values[key] == value for key, value in REHEARSAL_SCALE.items() if key not in trial.axes)
    # the rehearsal shares across specs what the real run shares: 115 trials, 61% of the epochs
    real_cost, rehearsal_cost = sweep_cost(real), sweep_cost(rehearsal)
    assert real_cost["trials"] == rehearsal_cost["trials"] == 115
    assert 0.55 < rehearsal_cost["shared"] / rehearsal_cost["alone"] < 0.65


def test_the_plan_check_notices_what_is_not_scale(tmp_path):
    spec = tmp_path / "p.yaml"
    spec.write_text(tiny_sweep_yaml("p", "plan", grid="grid:\n  preset: [g, h]", seeds="[0]"))
    real = [load_spec(spec)]
    rehearsal = rehearsal_specs([spec])
    assert plan_differences(real, rehearsal) == []
    changed = rehearsal[0].with_trials([t.with_overrides({"optim.lr": 0.5}) for t in rehearsal[0].trials])
    assert any("optim.lr" in line for line in plan_differences(real, [changed]))
    fewer_cycles = rehearsal[0].with_trials([t.with_overrides({"swag.cycles": 1}) for t in rehearsal[0].trials])
    assert any("cycles" in line for line in plan_differences(real, [fewer_cycles]))


def test_a_grid_over_a_scale_field_keeps_its_values(tmp_path):
    spec = tmp_path / "batch.yaml"
    text = tiny_sweep_yaml("batch", "a grid over the batch", grid="base_preset: g\ngrid:\n  data.k: [2, 4]")
    spec.write_text(text.replace("  data.k: 4\n", ""))
    (rehearsed,) = rehearsal_specs([spec])
    assert sorted(t.config.data.k for t in rehearsed.trials) == [2, 2, 4, 4]  # kept
    assert all(t.config.data.p == REHEARSAL_SCALE["data.p"] for t in rehearsed.trials)  # scaled


def _write(tmp_path: Path, name: str, grid: str, seeds: str = "[0]") -> Path:
    path = tmp_path / f"{name}.yaml"
    path.write_text(tiny_sweep_yaml(name, name, grid=grid, seeds=seeds))
    return path


def test_a_campaign_refuses_what_one_plan_cannot_hold(tmp_path):
    first = _write(tmp_path, "first", "grid:\n  preset: [g, h]")
    with pytest.raises(ConfigError, match="given twice"):
        load_campaign([first, tmp_path / "." / "first.yaml"])
    same_name = tmp_path / "other.yaml"
    same_name.write_text(first.read_text())  # another file, the same experiment
    with pytest.raises(ConfigError, match=r"both name the experiment 'first'"):
        load_campaign([first, same_name])
    lr = tmp_path / "lr.yaml"
    lr.write_text(
        tiny_sweep_yaml("lr", "lr", grid="grid:\n  preset: [g]", seeds="[0]", extra_overrides={"optim.lr": 0.5})
    )
    with pytest.raises(ConfigError, match=r"both define trial 'g-seed0', differently \(optim.lr"):
        load_campaign([first, lr])
    twin = _write(tmp_path, "twin", "grid:\n  preset: [g]")
    with pytest.raises(ConfigError, match="both define trial 'g-seed0' \\(the same training\\)"):
        load_campaign([first, twin])


def test_a_campaign_plans_what_sweep_show_cost_plans(tmp_path):
    """Spec b's compact-1x is spec a's h, switch for switch: planned together, it trains nothing."""
    a = _write(tmp_path, "a", "grid:\n  preset: [g, h]", seeds="[0, 1]")
    b = _write(tmp_path, "b", "grid:\n  preset: [compact-1x]", seeds="[0, 1]")
    campaign = load_campaign([a, b])
    assert campaign.name == campaign_name(campaign.members) and campaign.name.startswith("campaign-")
    fingerprint = dataset_fingerprint(campaign.members[0].dataset)
    planned = share_training(campaign.trials, fingerprint)
    compact = [t for t in planned if t.sweep == "b"]
    assert {t.start.from_trial for t in compact} == {"h-seed0", "h-seed1"} and all(
        t.trained_epochs == 0 for t in compact
    )
    assert plan_cost(planned).shared == sweep_cost(list(campaign.members))["shared"]


def test_the_reproduction_run_spec_after_spec_realizes_the_joint_plan(monkeypatch):
    """Run one after another with one storage (each spec finding the checkpoints the ones before
    stored, and reusing their identical FINISHED runs), the five specs train what planning
    them together does: 40,600 trial-epochs, in any order. Reuse alone gives 43,225."""
    import itertools

    monkeypatch.setenv("MARKET1501_ROOT", "/nonexistent/market")
    specs = [load_spec(path, check_paths=False) for path in REPRODUCTION]
    fingerprint = dataset_fingerprint(specs[0].dataset)

    def one_after_another(order, with_storage: bool) -> int:
        finished: dict[str, str] = {}
        stored: set[tuple[str, int]] = set()
        trained = 0
        for spec in order:
            trials = share_training(spec.trials, fingerprint, finished, stored=stored if with_storage else ())
            trained += sum(t.trained_epochs for t in trials)
            finished.update({t.start.identity: "run" for t in trials})
            stored |= {(key, epoch) for t in trials for epoch, key in t.start.publish}
        return trained

    assert sweep_cost(specs)["shared"] == 40600
    assert one_after_another(specs, with_storage=False) == 43225
    assert {one_after_another(order, with_storage=True) for order in itertools.permutations(specs)} == {40600}
