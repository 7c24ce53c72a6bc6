"""Verdicts as they resolve: each group against its reference, once both have all their seeds.

The same rule as the tables (orchestration/report/compare.py: Student's t over the seeds,
paired when they match) on each trial's reported `final_rank1`, as soon as every planned
trial of both groups has ended (a failed one is left out, as the tables leave it out). A
spec with adaptive seeds is left to its policy, which says its own verdicts as it adds seeds.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping, Sequence

from ..report.compare import compare, reference_of

__all__ = ["Verdicts", "verdicts_for"]

METRIC = "final_rank1"


@dataclass
class Comparison:
    sweep: str
    other: str
    reference: str
    trials: dict[str, list[tuple[str, int]]]  # group -> [(trial name, seed)]


class Verdicts:
    def __init__(self, comparisons: Sequence[Comparison]) -> None:
        self.comparisons = list(comparisons)
        self.said: set[tuple[str, str]] = set()

    def update(self, views: Sequence[Any]) -> list[str]:
        """Lines for the comparisons whose seeds have all ended since the last call."""
        ended = {(view.sweep, view.name): view for view in views if view.ended}
        lines = []
        for comparison in self.comparisons:
            key = (comparison.sweep, comparison.other)
            if key in self.said:
                continue
            sides = {}
            for group in (comparison.reference, comparison.other):
                planned = comparison.trials[group]
                if any((comparison.sweep, name) not in ended for name, _ in planned):
                    break
                sides[group] = {
                    seed: float(ended[(comparison.sweep, name)].result[METRIC])
                    for name, seed in planned
                    if ended[(comparison.sweep, name)].status == "TERMINATED"
                    and METRIC in ended[(comparison.sweep, name)].result
                }
            else:
                result = compare(
                    sides[comparison.reference],
                    sides[comparison.other],
                    reference_name=comparison.reference,
                    other_name=comparison.other,
                )
                self.said.add(key)
                lines.append(
                    f"verdict {comparison.sweep}: {comparison.other} vs {comparison.reference} on {METRIC}: "
                    f"{result.verdict} (Δ {result.diff_text()}) n={result.n_ref}/{result.n_other}"
                )
        return lines


def verdicts_for(members: Sequence[Any]) -> Verdicts:
    """The comparisons of each spec (its grid points against their references, as the
    tables pair them: by Table 3's switches for preset grids, else `reference` or the first)."""
    comparisons = []
    for spec in members:
        if spec.file.adaptive is not None or spec.search is not None:
            continue
        groups: dict[str, list[tuple[str, int]]] = {}
        for trial in spec.trials:
            groups.setdefault(trial.grid_point, []).append((trial.name, trial.seed))
        presets: Mapping[str, str] | None = (
            {point: next(t.preset for t in spec.trials if t.grid_point == point) for point in groups}
            if "preset" in spec.grid
            else None
        )
        try:
            pairs = reference_of(list(groups), presets, spec.file.reference)
        except ValueError:
            continue
        comparisons += [Comparison(spec.file.name, other, ref, groups) for other, ref in pairs.items()]
    return Verdicts(comparisons)
