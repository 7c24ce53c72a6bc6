"""Statistics of the report: a group's mean with its 95% interval, and the difference of two
groups with its interval, the probability of improvement and a verdict in plain words.

    iv = interval([0.45, 0.47, 0.44])                    # Interval(n=3, mean, lo, hi)
    iv.text()                                            # "45.3 [41.5, 49.2]"
    c = compare({0: 0.40, 1: 0.42}, {0: 0.45, 1: 0.46})  # keys are seeds
    c.verdict, c.diff_text(), c.verdict_text()           # "better" | "worse" | "not resolved" | "n/a"

Rules (docs/BENCHMARKS.md, "2026-12-02: confidence intervals on a few seeds", has the check
that chose them):
- The interval is Student's t (scipy.stats): over the values of one group; over the
  per-seed differences when the two groups have the same seeds (paired: `ttest_rel`'s
  interval, a one-sample t over the differences); and
  Welch's when they do not (unpaired, `ttest_ind(equal_var=False)`). On 3-5 seeds a
  percentile bootstrap under-covers (its A/A check said "resolved" far more often than
  5% of the time); `method="percentile"` / `"bca"` (scipy.stats.bootstrap) stay available
  for that check.
- A difference is resolved when its interval excludes zero: "better" or "worse" by the
  direction of improvement (`higher_is_better`); else "not resolved". With fewer than two
  values on either side (or fewer than two shared seeds when paired) there is no interval:
  verdict "n/a".
- `p_improve` is the probability of improvement of Agarwal et al. (2021, rliable): the
  chance that a run of `other` beats a run of `reference` (ties count half). Paired: the
  share of shared seeds on which `other` is better; unpaired: the Mann-Whitney U statistic
  over n_ref x n_other (scipy.stats.mannwhitneyu). It describes the runs; the verdict
  comes from the interval.
- `seeds_needed` (for "not resolved" only): the smallest number of seeds per group at
  which a t-interval, at the observed spread, would exclude zero for a difference of the
  observed size. About half of repeated experiments of that size would then resolve it; it
  is a size, not a promise. None when the observed difference is exactly zero.

Imports neither ray nor mlflow (the adaptive-seed searcher calls `compare` on each step).
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from typing import Any, Iterable, Mapping, Sequence

import numpy as np

__all__ = [
    "Interval",
    "Comparison",
    "METHODS",
    "VERDICTS",
    "interval",
    "compare",
    "reference_of",
    "TABLE3_REFERENCES",
]

METHODS = ("t", "percentile", "bca")
VERDICTS = ("better", "worse", "not resolved", "n/a")
MAX_SEEDS_NEEDED = 10_000  # past this the answer is "more than 10000"
N_RESAMPLES = 9_999  # bootstrap methods only
_NA = "–"

# Table 3: each column against the full model it switches one thing off from, as the paper
# sets the ablation up: b-g are column i with one component changed (b: the original triplet
# loss instead of the soft weighted one), h and i are Compact-ReID without deeper & wider /
# without SWAG, HA-CNN is column a without the Bag of Tricks. Column a has no one-switch
# parent; it is set against b (a -> b is the step from HA-CNN to the Compact-ReID network).
TABLE3_REFERENCES: dict[str, str] = {
    "hacnn": "a",
    "a": "b",
    "b": "i",
    "c": "i",
    "d": "i",
    "e": "i",
    "f": "i",
    "g": "i",
    "h": "compact",
    "i": "compact",
}


def _finite(values: Iterable[Any]) -> list[float]:
    out = []
    for value in values:
        try:
            number = float(value)
        except (TypeError, ValueError):
            continue
        if math.isfinite(number):
            out.append(number)
    return out


def _seeds(values: Mapping[Any, Any]) -> dict[Any, float]:
    out = {}
    for seed, value in values.items():
        finite = _finite([value])
        if finite:
            out[seed] = finite[0]
    return out


def _check(confidence: float, method: str) -> None:
    if not 0 < confidence < 1:
        raise ValueError(f"confidence {confidence!r}: expected a number between 0 and 1")
    if method not in METHODS:
        raise ValueError(f"method {method!r}: expected one of {', '.join(METHODS)}")


def _fmt(value: float, scale: float, digits: int, sign: bool = False) -> str:
    text = f"{value * scale:{'+' if sign else ''}.{digits}f}"
    if float(text) == 0:  # no "-0.0"
        text = ("+" if sign else "") + f"{0:.{digits}f}"
    return text


# ---------------------------------------------------------------------------------
# One group


@dataclass(frozen=True)
class Interval:
    """Mean and confidence interval of one group's values; lo/hi None with n < 2."""

    n: int
    mean: float | None
    lo: float | None
    hi: float | None
    confidence: float = 0.95

    def text(self, scale: float = 100.0, digits: int = 1) -> str:
        """ "45.2 [41.0, 49.4]"; "45.2, n/a (1 seed)" with one value; "–" with none."""
        if self.n == 0 or self.mean is None:
            return _NA
        mean = _fmt(self.mean, scale, digits)
        if self.lo is None or self.hi is None:
            return f"{mean}, n/a ({self.n} seed{'s' if self.n != 1 else ''})"
        return f"{mean} [{_fmt(self.lo, scale, digits)}, {_fmt(self.hi, scale, digits)}]"


def _t_interval(vals: np.ndarray, confidence: float) -> tuple[float, float]:
    from scipy import stats

    if np.ptp(vals) == 0:  # no spread: the t interval is the point itself
        return float(vals[0]), float(vals[0])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        ci = stats.ttest_1samp(vals, 0.0).confidence_interval(confidence)
    return float(ci.low), float(ci.high)


def _bootstrap(data: tuple[np.ndarray, ...], statistic: Any, confidence: float, method: str) -> tuple[float, float]:
    from scipy import stats

    if all(np.ptp(d) == 0 for d in data):
        point = float(statistic(*(d[None, :] for d in data), axis=-1)[0])
        return point, point
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # BCa on a few values warns about degenerate distributions
        res = stats.bootstrap(
            data,
            statistic,
            confidence_level=confidence,
            n_resamples=N_RESAMPLES,
            method="BCa" if method == "bca" else "percentile",
            vectorized=True,
            paired=False,
            rng=np.random.default_rng(0),
        )
    lo, hi = float(res.confidence_interval.low), float(res.confidence_interval.high)
    if not (math.isfinite(lo) and math.isfinite(hi)):  # BCa failed (e.g. all resamples equal): percentile
        return _bootstrap(data, statistic, confidence, "percentile")
    return lo, hi


def _mean_stat(x: np.ndarray, axis: int = -1) -> np.ndarray:
    return np.mean(x, axis=axis)


def _diff_stat(ref: np.ndarray, other: np.ndarray, axis: int = -1) -> np.ndarray:
    return np.mean(other, axis=axis) - np.mean(ref, axis=axis)


def interval(values: Sequence[float], confidence: float = 0.95, method: str = "t") -> Interval:
    """Mean and `confidence` interval of the finite values (None/NaN are dropped)."""
    _check(confidence, method)
    vals = np.asarray(_finite(values), dtype=float)
    n = len(vals)
    if n == 0:
        return Interval(0, None, None, None, confidence)
    mean = float(np.mean(vals))
    if n < 2:
        return Interval(n, mean, None, None, confidence)
    lo, hi = _t_interval(vals, confidence) if method == "t" else _bootstrap((vals,), _mean_stat, confidence, method)
    return Interval(n, mean, lo, hi, confidence)


# ---------------------------------------------------------------------------------
# Two groups


@dataclass(frozen=True)
class Comparison:
    """`other` against `reference`: diff = mean(other) - mean(reference) with its interval."""

    reference: str
    other: str
    n_ref: int
    n_other: int
    paired: bool
    diff: float | None
    lo: float | None
    hi: float | None
    p_improve: float | None
    verdict: str
    seeds_needed: int | None
    method: str = "t"
    confidence: float = 0.95
    higher_is_better: bool = True

    @property
    def resolved(self) -> bool:
        return self.verdict in ("better", "worse")

    @property
    def n(self) -> int:
        """Seeds behind the comparison: the shared seeds when paired, else the smaller group."""
        return min(self.n_ref, self.n_other)

    def diff_text(self, scale: float = 100.0, digits: int = 1) -> str:
        """ "+2.1 [0.4, 3.8]"; "+2.1, n/a (1 seed)"; "–" when a side has no value."""
        if self.diff is None:
            return _NA
        diff = _fmt(self.diff, scale, digits, sign=True)
        if self.lo is None or self.hi is None:
            return f"{diff}, n/a ({self.n} seed{'s' if self.n != 1 else ''})"
        return f"{diff} [{_fmt(self.lo, scale, digits, sign=True)}, {_fmt(self.hi, scale, digits, sign=True)}]"

    def p_text(self) -> str:
        return _NA if self.p_improve is None else f"{self.p_improve:.2f}"

    def pairing_text(self) -> str:
        if self.paired:
            return f"paired, {self.n_ref} seeds"
        return f"unpaired ({self.other}: {self.n_other} seeds, {self.reference}: {self.n_ref}; the seeds differ)"

    def verdict_text(self) -> str:
        """ "better", "worse", "not resolved at 3 seeds (about 12 would resolve ±1.5)" or "n/a (1 seed)"."""
        if self.verdict == "n/a":
            if self.diff is None:
                return "n/a (no values)"
            return f"n/a ({self.n} seed{'s' if self.n != 1 else ''})"
        if self.verdict != "not resolved":
            return self.verdict
        seeds = f"{self.n} seeds" if self.paired or self.n_ref == self.n_other else f"{self.n_other}/{self.n_ref} seeds"
        if self.seeds_needed is None:
            return f"not resolved at {seeds}"
        more = f"more than {MAX_SEEDS_NEEDED}" if self.seeds_needed > MAX_SEEDS_NEEDED else f"about {self.seeds_needed}"
        return f"not resolved at {seeds} ({more} per group would resolve a difference of this size)"


def _seeds_needed(diff: float, var_terms: tuple[float, float] | float, confidence: float) -> int | None:
    """Smallest n with t_{crit}(df) * se(n) < |diff|; var_terms = sd of the paired differences,
    or (sd_ref, sd_other) for Welch with n seeds per group."""
    from scipy import stats

    if diff == 0:
        return None
    n = np.arange(2, MAX_SEEDS_NEEDED + 1, dtype=float)
    q = 1 - (1 - confidence) / 2
    if isinstance(var_terms, tuple):
        v1, v2 = var_terms[0] ** 2, var_terms[1] ** 2
        if v1 + v2 == 0:
            return 2
        df = (v1 + v2) ** 2 * (n - 1) / (v1**2 + v2**2)
        half = stats.t.ppf(q, df) * np.sqrt((v1 + v2) / n)
    else:
        if var_terms == 0:
            return 2
        half = stats.t.ppf(q, n - 1) * var_terms / np.sqrt(n)
    ok = np.nonzero(half < abs(diff))[0]
    return int(n[ok[0]]) if len(ok) else MAX_SEEDS_NEEDED + 1


def compare(
    reference: Mapping[Any, float],
    other: Mapping[Any, float],
    *,
    reference_name: str = "reference",
    other_name: str = "other",
    higher_is_better: bool = True,
    confidence: float = 0.95,
    method: str = "t",
) -> Comparison:
    """`other` - `reference`; the keys are seeds. Paired when both have the same seeds (two
    or more), else unpaired (Welch). Non-finite values are dropped first."""
    from scipy import stats

    _check(confidence, method)
    ref, oth = _seeds(reference), _seeds(other)
    n_ref, n_oth = len(ref), len(oth)
    paired = n_ref >= 2 and set(ref) == set(oth)
    base = dict(
        reference=reference_name,
        other=other_name,
        n_ref=n_ref,
        n_other=n_oth,
        paired=paired,
        method=method,
        confidence=confidence,
        higher_is_better=higher_is_better,
    )
    if not ref or not oth:
        return Comparison(diff=None, lo=None, hi=None, p_improve=None, verdict="n/a", seeds_needed=None, **base)
    ref_vals = np.asarray(list(ref.values()), dtype=float)
    oth_vals = np.asarray(list(oth.values()), dtype=float)
    diff = float(np.mean(oth_vals) - np.mean(ref_vals))
    sign = 1.0 if higher_is_better else -1.0
    if paired:
        keys = sorted(ref, key=str)
        d = np.asarray([oth[k] - ref[k] for k in keys], dtype=float)
        p_improve = float(np.mean(np.where(sign * d > 0, 1.0, np.where(d == 0, 0.5, 0.0))))
    else:
        u = stats.mannwhitneyu(oth_vals * sign, ref_vals * sign, alternative="two-sided").statistic
        p_improve = float(u) / (n_ref * n_oth)
    if n_ref < 2 or n_oth < 2:  # one seed on a side: no spread, no interval
        return Comparison(diff=diff, lo=None, hi=None, p_improve=p_improve, verdict="n/a", seeds_needed=None, **base)
    if paired:
        if method == "t":
            lo, hi = _t_interval(d, confidence)
        else:
            lo, hi = _bootstrap((d,), _mean_stat, confidence, method)
        spread: tuple[float, float] | float = float(np.std(d, ddof=1))
    else:
        if method == "t":
            if np.ptp(ref_vals) == 0 and np.ptp(oth_vals) == 0:
                lo = hi = diff
            else:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", RuntimeWarning)
                    ci = stats.ttest_ind(oth_vals, ref_vals, equal_var=False).confidence_interval(confidence)
                lo, hi = float(ci.low), float(ci.high)
        else:
            lo, hi = _bootstrap((ref_vals, oth_vals), _diff_stat, confidence, method)
        spread = (float(np.std(ref_vals, ddof=1)), float(np.std(oth_vals, ddof=1)))
    if lo > 0 or hi < 0:
        verdict = "better" if (lo > 0) == higher_is_better else "worse"
        needed = None
    else:
        verdict = "not resolved"
        needed = _seeds_needed(diff, spread, confidence)
    return Comparison(diff=diff, lo=lo, hi=hi, p_improve=p_improve, verdict=verdict, seeds_needed=needed, **base)


# ---------------------------------------------------------------------------------
# Which pairs to compare


def _switch_key(preset: str | None) -> frozenset[str] | None:
    """The preset's switches (with the triplet loss) as a set; None for a name that is no preset."""
    from reid_core.presets import PRESETS, SWITCHES

    if preset is None or preset not in PRESETS:
        return None
    sw = PRESETS[preset]["switches"]
    return frozenset([s for s in SWITCHES if sw.get(s)] + (["triplet"] if sw.get("triplet", True) else []))


def _paper_column(preset: str | None) -> str | None:
    """The Table 3 column with the same switches as this preset (names are labels: h = compact-1x)."""
    from reid_core.presets import TABLE3_COLUMNS

    key = _switch_key(preset)
    if key is None:
        return None
    return next((c for c in TABLE3_COLUMNS if _switch_key(c) == key), None)


def reference_of(
    groups: Sequence[str], presets: Mapping[str, str] | None = None, reference: str | None = None
) -> dict[str, str]:
    """group -> the group it is compared against (the reference itself has no entry).

    - `reference` named (a spec's top-level `reference:`): every other group against it
      (ValueError when no group has that name).
    - else, when `presets` (group -> preset name) gives every group a preset whose switches
      are a column of the paper's Table 3: the Table 3 references (TABLE3_REFERENCES), found
      by switches, not names (h and compact-1x are one configuration). A group whose paper
      reference is not in the sweep is set against the present group whose switches are the
      smallest strict superset of its own (g -> h in a sweep of g and h); a group with no
      such group (the full model) has no entry.
    - else: every group against the first.
    """
    groups = list(dict.fromkeys(groups))
    if reference is not None:
        if reference not in groups:
            raise ValueError(
                f"reference {reference!r} is none of the groups ({', '.join(groups) if groups else 'none'})"
            )
        return {g: reference for g in groups if g != reference}
    if not groups:
        return {}
    if presets is not None and all(_paper_column(presets.get(g)) is not None for g in groups):
        col = {g: _paper_column(presets[g]) for g in groups}
        keys = {g: _switch_key(presets[g]) for g in groups}
        first_with = {}
        for g in groups:
            first_with.setdefault(col[g], g)
        out: dict[str, str] = {}
        for g in groups:
            target = TABLE3_REFERENCES.get(col[g] or "")
            if target is not None and target in first_with:
                out[g] = first_with[target]
                continue
            supersets = [h for h in groups if keys[h] > keys[g]]  # type: ignore[operator]
            if supersets:
                out[g] = min(supersets, key=lambda h: (len(keys[h]), groups.index(h)))  # type: ignore[arg-type]
        return out
    return {g: groups[0] for g in groups[1:]}
