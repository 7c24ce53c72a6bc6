"""Adaptive seeds: more seeds only where a comparison is still open (SMAC's intensification,
irace's racing), added live through the sweep's LivePlan (live_plan.py).

`seeds: {initial: 3, max: 10, until: resolved}`: every grid point starts with seeds
0..initial-1. Each grid point is compared with its reference (the spec's `reference`, the
paper's Table 3 reference for preset grids, else the first grid value) by
orchestration/report/compare.py, the same rule the tables use. When every planned seed of
both sides of a comparison has ended and the comparison is not resolved, the next seed is
added to both sides (paired), until it is resolved or a side has `max` seeds. Each added
trial carries why it was added (tag `SEED_ADDED` of mlflow_log/names.py). The policy is saved
with the plan, so `sweep resume` continues it.
"""

from __future__ import annotations

import json
from typing import Any, Callable, Sequence

from ..report.compare import compare, reference_of
from .sharing import share_training
from .trial import Trial

__all__ = ["AdaptiveSeedsPolicy", "ADDED_FILE"]

ADDED_FILE = "added_trials.json"  # in the sweep folder: what the policy added, for trials.json


class AdaptiveSeedsPolicy:
    def __init__(
        self,
        trials: Sequence[Trial],
        metric: str,
        max_seeds: int,
        reference: str | None,
        grid_has_preset: bool,
        dataset_fingerprint: str,
        journal: Any,
        log: Callable[[str], None] | None = None,
    ) -> None:
        """`journal`: the sweep's Store and folder name, (store, name): where `added_trials.json` goes."""
        self.metric, self.max_seeds, self.fp = metric, max_seeds, dataset_fingerprint
        self.journal, self._log = journal, log  # None: print (see LivePlan)
        self.grid_has_preset = grid_has_preset
        points = list(dict.fromkeys(t.grid_point for t in trials))
        self.templates = {p: next(t for t in trials if t.grid_point == p) for p in points}
        self.sweep = trials[0].sweep if trials else ""  # its spec's trials only (a campaign holds others)
        presets = {p: self.templates[p].preset for p in points} if grid_has_preset else None
        self.pairs: dict[str, str] = reference_of(points, presets, reference)  # other -> its reference
        self.status: dict[str, str] = {p: "open" for p in self.pairs}  # open | resolved | max
        self.verdicts: dict[str, str] = {}
        self.added: list[Trial] = []

    def log(self, msg: str) -> None:
        (self._log or _say)(msg)

    # PlanPolicy -----------------------------------------------------------------------
    def settled(self, plan: Any) -> bool:
        return all(s != "open" for s in self.status.values())

    def more(self, plan: Any) -> list[Trial]:
        new: dict[str, Trial] = {}
        for other, ref in self.pairs.items():
            if self.status[other] != "open":
                continue
            names = {
                p: [n for n, t in plan.trials.items() if t.grid_point == p and t.sweep == self.sweep]
                for p in (ref, other)
            }
            if any(n not in plan.ended for p in names for n in names[p]):
                continue  # a seed of this comparison is still running (or waiting)
            values = {p: self._values(plan, names[p]) for p in (ref, other)}
            comparison = compare(values[ref], values[other], reference_name=ref, other_name=other)
            text = (
                f"{other} vs {ref} on {self.metric}: {comparison.verdict} at "
                f"n={comparison.n_ref}/{comparison.n_other} (Δ {comparison.diff_text()})"
            )
            if comparison.resolved:
                self.status[other], self.verdicts[other] = "resolved", text
                self.log(f"adaptive seeds: {text}")
                continue
            planned = {p: {plan.trials[n].seed for n in names[p]} for p in (ref, other)}
            if max(len(planned[ref]), len(planned[other])) >= self.max_seeds:
                self.status[other], self.verdicts[other] = "max", f"{text}; max {self.max_seeds} seeds reached"
                self.log(f"adaptive seeds: {self.verdicts[other]}")
                continue
            seed = min(s for s in range(10**6) if s not in planned[ref] or s not in planned[other])
            why = f"{text}: seed {seed} added"
            for p in (ref, other):
                if seed not in planned[p]:
                    added = self._reseeded(p, seed, len(plan.trials) + len(new), why)
                    new.setdefault(added.name, added)
            self.log(f"adaptive seeds: {why} to {ref} and {other}")
        # the added trials share training among themselves as the initial ones do
        trials = list(share_training(list(new.values()), self.fp))
        self.added += trials
        self._journal()
        return trials

    # Helpers -------------------------------------------------------------------------
    def _values(self, plan: Any, names: list[str]) -> dict[int, float]:
        out = {}
        for n in names:
            if plan.ended.get(n) == "ok" and self.metric in plan.results.get(n, {}):
                out[plan.trials[n].seed] = plan.results[n][self.metric]
        return out

    def _reseeded(self, point: str, seed: int, index: int, why: str) -> Trial:
        template = self.templates[point]
        return template.reseeded(seed, index, why, preset_in_name=self.grid_has_preset or not template.axes)

    def _journal(self) -> None:
        from ..storage import StorageError

        store, name = self.journal
        text = json.dumps([t.to_dict(with_config=False) for t in self.added], indent=2) + "\n"
        try:
            store.write_bytes(f"{name}/{ADDED_FILE}", text.encode())
        except StorageError as e:  # the sweep goes on; trials.json then lists the initial seeds only
            self.log(f"adaptive seeds: could not write {ADDED_FILE}: {e}")


def _say(msg: str) -> None:
    print(msg, flush=True)


def read_added(store: Any, name: str) -> list[dict[str, Any]]:
    try:
        return list(json.loads(store.read_bytes(f"{name}/{ADDED_FILE}") or b"[]"))
    except ValueError:
        return []
