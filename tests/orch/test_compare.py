"""orchestration.report.compare: intervals, comparisons, verdicts and the pairs to compare."""

from __future__ import annotations

import math
import subprocess
import sys

import numpy as np
import pytest
from scipy import stats

from orchestration.report.compare import (
    TABLE3_REFERENCES,
    Comparison,
    Interval,
    compare,
    interval,
    reference_of,
)

# ---------------------------------------------------------------------------------
# interval


def test_interval_is_students_t():
    vals = [0.40, 0.45, 0.47, 0.42]
    iv = interval(vals)
    m, se = np.mean(vals), stats.sem(vals)
    lo, hi = stats.t.interval(0.95, len(vals) - 1, loc=m, scale=se)
    assert iv.n == 4 and iv.mean == pytest.approx(m)
    assert (iv.lo, iv.hi) == (pytest.approx(lo), pytest.approx(hi))
    assert iv.text() == f"{100 * m:.1f} [{100 * lo:.1f}, {100 * hi:.1f}]"


def test_interval_one_seed_is_na_and_none_is_dash():
    iv = interval([0.452])
    assert (iv.n, iv.lo, iv.hi) == (1, None, None)
    assert iv.text() == "45.2, n/a (1 seed)"
    assert interval([]).text() == "–"
    assert interval([None, float("nan")]).n == 0


def test_interval_no_spread_and_nonfinite_dropped():
    iv = interval([0.5, 0.5, None, float("inf"), 0.5])
    assert (iv.n, iv.mean, iv.lo, iv.hi) == (3, 0.5, 0.5, 0.5)


@pytest.mark.parametrize("method", ["percentile", "bca"])
def test_interval_bootstrap_methods_contain_the_mean(method):
    iv = interval([0.40, 0.45, 0.47, 0.42, 0.44], method=method)
    assert iv.lo < iv.mean < iv.hi
    # deterministic (fixed generator): the same table twice
    assert interval([0.40, 0.45, 0.47, 0.42, 0.44], method=method) == iv


def test_bad_arguments():
    with pytest.raises(ValueError, match="method"):
        interval([1, 2], method="magic")
    with pytest.raises(ValueError, match="confidence"):
        compare({0: 1}, {0: 2}, confidence=95)


# ---------------------------------------------------------------------------------
# compare


def test_paired_when_seeds_match_and_interval_is_ttest_rel():
    ref = {0: 0.50, 1: 0.52, 2: 0.49, 3: 0.51}
    oth = {0: 0.53, 1: 0.54, 2: 0.52, 3: 0.55}
    result = compare(ref, oth, reference_name="i", other_name="g")
    ci = stats.ttest_rel([oth[k] for k in ref], [ref[k] for k in ref]).confidence_interval(0.95)
    assert result.paired and (result.n_ref, result.n_other) == (4, 4)
    assert (result.lo, result.hi) == (pytest.approx(ci.low), pytest.approx(ci.high))
    assert result.diff == pytest.approx(0.03)
    assert result.verdict == "better" and result.resolved and result.seeds_needed is None
    assert result.p_improve == 1.0
    assert result.diff_text().startswith("+3.0 [")
    assert (result.reference, result.other) == ("i", "g")


def test_lower_is_better_flips_the_verdict():
    ref = {0: 0.50, 1: 0.52, 2: 0.49}
    oth = {0: 0.55, 1: 0.58, 2: 0.56}
    assert compare(ref, oth).verdict == "better"
    result = compare(ref, oth, higher_is_better=False)
    assert result.verdict == "worse" and result.p_improve == 0.0 and result.diff > 0


def test_unpaired_welch_when_seeds_differ():
    ref = {0: 0.50, 1: 0.52, 2: 0.49}
    oth = {3: 0.53, 4: 0.50, 5: 0.55, 6: 0.51}
    result = compare(ref, oth)
    ci = stats.ttest_ind(list(oth.values()), list(ref.values()), equal_var=False).confidence_interval(0.95)
    assert not result.paired and (result.n_ref, result.n_other) == (3, 4)
    assert (result.lo, result.hi) == (pytest.approx(ci.low), pytest.approx(ci.high))
    u = stats.mannwhitneyu(list(oth.values()), list(ref.values())).statistic
    assert result.p_improve == pytest.approx(u / 12)
    assert "unpaired" in result.pairing_text()


def test_not_resolved_says_how_many_seeds_would_resolve():
    rng = np.random.default_rng(1)
    ref = {s: 0.5 + 0.02 * rng.standard_normal() for s in range(4)}
    oth = {s: v + 0.004 + 0.01 * rng.standard_normal() for s, v in ref.items()}
    result = compare(ref, oth)
    assert result.verdict == "not resolved" and not result.resolved
    assert result.seeds_needed is not None and result.seeds_needed > 4
    # at that many seeds, the same spread and difference give an interval that excludes zero
    d = np.array([oth[k] - ref[k] for k in ref])
    sd, n = d.std(ddof=1), result.seeds_needed
    assert stats.t.ppf(0.975, n - 1) * sd / math.sqrt(n) < abs(result.diff)
    assert stats.t.ppf(0.975, n - 2) * sd / math.sqrt(n - 1) >= abs(result.diff)
    assert "not resolved at 4 seeds" in result.verdict_text() and str(n) in result.verdict_text()


def test_unpaired_seeds_needed_welch():
    result = compare({0: 0.50, 1: 0.54}, {2: 0.53, 3: 0.55})
    assert result.verdict == "not resolved" and result.seeds_needed is not None and result.seeds_needed > 2


def test_one_seed_is_na_and_does_not_crash():
    result = compare({0: 0.5}, {0: 0.6})
    assert result.verdict == "n/a" and result.lo is None and result.hi is None and result.diff == pytest.approx(0.1)
    assert result.diff_text() == "+10.0, n/a (1 seed)" and result.verdict_text() == "n/a (1 seed)"
    result = compare({0: 0.5, 1: 0.6}, {2: 0.6})
    assert result.verdict == "n/a" and not result.paired
    result = compare({}, {0: 0.6})
    assert result.verdict == "n/a" and result.diff is None and result.diff_text() == "–"


def test_nan_values_are_dropped_before_pairing():
    ref = {0: 0.50, 1: 0.52, 2: float("nan")}
    oth = {0: 0.53, 1: 0.54, 2: 0.55}
    result = compare(ref, oth)
    assert not result.paired and (result.n_ref, result.n_other) == (2, 3)


def test_identical_groups_are_not_resolved():
    ref = {0: 0.50, 1: 0.52, 2: 0.49}
    result = compare(ref, dict(ref))
    assert result.diff == 0 and result.verdict == "not resolved" and result.seeds_needed is None
    assert result.p_improve == 0.5


def test_no_spread_resolves_a_constant_shift():
    result = compare({0: 0.5, 1: 0.6}, {0: 0.55, 1: 0.65})
    assert result.verdict == "better" and result.lo == pytest.approx(0.05)


@pytest.mark.parametrize("method", ["percentile", "bca"])
def test_bootstrap_comparisons(method):
    ref = {s: 0.50 + 0.01 * s for s in range(5)}
    far = {s: v + 0.10 for s, v in ref.items()}
    assert compare(ref, far, method=method).verdict == "better"
    unp = {s + 10: v + 0.10 for s, v in ref.items()}
    result = compare(ref, unp, method=method)
    assert not result.paired and result.verdict == "better"


def test_comparison_is_frozen_and_typed():
    result = compare({0: 0.5, 1: 0.6}, {0: 0.55, 1: 0.6})
    assert isinstance(result, Comparison)
    with pytest.raises(AttributeError):
        result.verdict = "better"  # type: ignore[misc]
    assert isinstance(interval([0.1, 0.2]), Interval)


# ---------------------------------------------------------------------------------
# reference_of


def test_reference_of_paper_columns():
    cols = ["hacnn", "a", "b", "c", "d", "e", "f", "g", "h", "i", "compact"]
    ref = reference_of(cols, {c: c for c in cols}, None)
    assert ref == TABLE3_REFERENCES
    assert "compact" not in ref


def test_reference_of_goes_by_switches_not_names():
    # compact-1x has column h's switches, compact-2x those of compact
    groups = ["g", "compact-1x", "i", "compact-2x"]
    ref = reference_of(groups, {g: g for g in groups}, None)
    assert ref == {"g": "i", "compact-1x": "compact-2x", "i": "compact-2x"}


def test_reference_of_falls_back_to_the_smallest_superset():
    # the smoke sweep: g and compact-1x (= h = g + SWAG); column i is absent
    assert reference_of(["g", "compact-1x"], {"g": "g", "compact-1x": "compact-1x"}, None) == {"g": "compact-1x"}


def test_reference_of_generic_grid_and_named_reference():
    groups = ["scale=0.01", "scale=0.02", "scale=0.04"]
    assert reference_of(groups, None, None) == {"scale=0.02": "scale=0.01", "scale=0.04": "scale=0.01"}
    assert reference_of(groups, None, "scale=0.04") == {"scale=0.01": "scale=0.04", "scale=0.02": "scale=0.04"}
    # grid points that are no preset: the first group, even when presets are passed
    assert reference_of(groups, {g: "h" if g.endswith("1") else "" for g in groups}, None) == {
        "scale=0.02": "scale=0.01",
        "scale=0.04": "scale=0.01",
    }
    with pytest.raises(ValueError, match="none of the groups"):
        reference_of(groups, None, "scale=9")
    assert reference_of([], None, None) == {}


def test_compare_imports_neither_ray_nor_mlflow():
    code = (
        "import sys; import orchestration.report.compare as c; "
        "c.compare({0: 1.0, 1: 2.0}, {0: 1.5, 1: 2.5}); c.reference_of(['h', 'g'], {'h': 'h', 'g': 'g'}, None); "
        "bad = [m for m in ('ray', 'mlflow', 'optuna') if m in sys.modules]; assert not bad, bad"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
