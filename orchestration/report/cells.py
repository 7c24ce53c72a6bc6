"""Statistics over seeds and the text of a table cell (means, intervals, differences)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Iterable

from .compare import Interval
from .sweep_data import MISSING, num

# The metrics every accuracy table reports, with their labels.
METRICS = (("rank1", "Rank-1"), ("mAP", "mAP"))


@dataclass(frozen=True)
class Stat:
    mean: float | None
    std: float | None
    n: int


def stat(values: Iterable[Any], scale: float = 100.0) -> Stat:
    """Mean and sample std (ddof=1; None for one value) of the finite values, x scale."""
    vals = [value * scale for value in (num(x) for x in values) if value is not None]
    n = len(vals)
    if n == 0:
        return Stat(None, None, 0)
    mean = sum(vals) / n
    std = math.sqrt(sum((v - mean) ** 2 for v in vals) / (n - 1)) if n > 1 else None
    return Stat(mean, std, n)


def _seed_count(count: int, planned: int | None) -> str:
    """ " (n=3)" without a plan, " (2/3)" when fewer seeds than planned were averaged."""
    if planned is None:
        return f" (n={count})"
    return f" ({count}/{planned})" if count != planned else ""


def fmt_stat(summary: Stat, planned: int | None, show_n: bool = True) -> str:
    if summary.n == 0 or summary.mean is None:
        return MISSING
    text = f"{summary.mean:.1f}" + (f" ± {summary.std:.1f}" if summary.std is not None else "")
    return text + _seed_count(summary.n, planned) if show_n else text


def ci_cell(iv: Interval, planned: int | None, show_n: bool = True) -> str:
    """ "45.2 [41.0, 49.4]" (mean and 95% interval in %), "45.2, n/a (1 seed)", with (n/N)."""
    if iv.n == 0 or iv.mean is None:
        return MISSING
    return iv.text() + _seed_count(iv.n, planned) if show_n else iv.text()


def pct(value: float | None) -> float | None:
    """A fraction as points (x 100); None stays None."""
    return None if value is None else 100.0 * value


def fmt_num(value: float | None, digits: int = 1) -> str:
    return MISSING if value is None else f"{value:.{digits}f}"


def fmt_diff(mean: float | None, paper: float | None) -> str:
    if mean is None or paper is None:
        return MISSING
    return f"{mean - paper:+.1f}"


def diff_or_none(mean: float | None, paper: float | None) -> float | None:
    """The difference to the paper in points, for the CSV (None when either is unknown)."""
    return None if mean is None or paper is None else mean - paper
