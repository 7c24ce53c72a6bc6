"""The live plan: trials released to Ray Tune as their inputs appear, or as a policy adds them.

`LivePlan` holds a sweep's planned trials (the grid's `Trial`s, each with its `Start` from
sharing.py) and releases each when it can start: at once, or, for a trial that starts
from another trial's checkpoint, once that checkpoint is in the sweep's storage
(checkpoints.py).
A waiting trial is not a Ray trial yet, so it holds no GPU. A producer that ends in ERROR
(its retries spent) releases its consumers to train alone, saying why. A `policy` (adaptive
seeds) may add trials while the sweep runs.

`LivePlanSearcher` is the Ray Tune Searcher around it: Tune asks `suggest` whenever it can
queue a trial; None means "nothing now, ask again", FINISHED ends the sweep. Its state is
saved with Tune's experiment state, so `sweep resume` continues the plan, releasing
nothing twice.
"""

from __future__ import annotations

import pickle
from typing import Any, Callable, Mapping, Protocol, Sequence

from .checkpoints import SharedCheckpoints
from .trial import Trial

__all__ = ["LivePlan", "LivePlanSearcher", "PlanPolicy"]


class PlanPolicy(Protocol):
    """Adds trials while a sweep runs (adaptive seeds): called after each trial ends."""

    def more(self, plan: "LivePlan") -> list[Trial]:
        """New trials to plan now (may be empty)."""
        ...

    def settled(self, plan: "LivePlan") -> bool:
        """True when no finished or running trial could still make it add trials."""
        ...


class LivePlan:
    def __init__(
        self,
        trials: Sequence[Trial],
        checkpoints: SharedCheckpoints,
        policy: PlanPolicy | Sequence[PlanPolicy] | None = None,
        log: Callable[[str], None] | None = None,
    ) -> None:
        self.trials: dict[str, Trial] = {t.name: t for t in trials}
        self.checkpoints = checkpoints
        # one policy per spec that asks for one (adaptive seeds); a campaign may have several
        self.policies: list[PlanPolicy] = (
            [] if policy is None else list(policy) if isinstance(policy, Sequence) else [policy]
        )
        self._log = log  # None: print (Ray pickles the plan; a patched builtins.print would not pickle)
        self.released: list[str] = []
        self.ended: dict[str, str] = {}  # trial name -> "ok" | "error"
        self.results: dict[str, dict[str, float]] = {}  # last reported numbers of each ended trial

    # What Tune asks -------------------------------------------------------------------
    def next_ready(self) -> Trial | None:
        """The next trial that can start now (marked released), or None."""
        for name in list(self.trials):
            if name not in self.released and self._ready(name):
                self.released.append(name)
                return self.trials[name]
        return None

    def done(self) -> bool:
        """Every trial released and, with a policy, nothing more to add."""
        if len(self.released) < len(self.trials):
            return False
        if not self.policies:
            return True
        return all(n in self.ended for n in self.released) and all(p.settled(self) for p in self.policies)

    def waiting(self) -> list[str]:
        return [name for name in self.trials if name not in self.released]

    def _ready(self, name: str) -> bool:
        start = self.trials[name].start
        producer = start.from_trial
        if not producer:
            return True
        if self.checkpoints.has(start.checkpoint, start.epoch):
            return True
        state = self.ended.get(producer)
        if state is None and producer in self.trials:
            return False  # still to run or running: wait for it
        if (start.checkpoint, start.epoch) in self.checkpoints.available(fresh=True):  # stored just before it ended
            return True
        why = (
            f"its producer {producer} failed"
            if state == "error"
            else f"the checkpoint of {producer} at epoch {start.epoch} is missing"
        )
        self.log(f"[{name}] trains alone: {why}")
        self.trials[name] = self.trials[name].with_start(start.alone(why))
        return True

    def log(self, msg: str) -> None:
        (self._log or _say)(msg)

    # What Tune tells ------------------------------------------------------------------
    def on_complete(self, name: str, result: Mapping[str, Any] | None, error: bool) -> None:
        self.ended[name] = "error" if error else "ok"
        if result:
            self.results[name] = {k: float(v) for k, v in result.items() if isinstance(v, (int, float))}
        for policy in self.policies:  # after a failure too: the comparison may need a seed in its place
            for trial in policy.more(self):
                self.trials.setdefault(trial.name, trial)

    # Saved with Tune's state ----------------------------------------------------------
    def state(self) -> dict[str, Any]:
        return {
            "trials": self.trials,
            "released": self.released,
            "ended": self.ended,
            "results": self.results,
            "policies": self.policies,
        }

    def set_state(self, state: Mapping[str, Any]) -> None:
        self.trials = dict(state["trials"])
        self.released = list(state["released"])
        self.ended = dict(state["ended"])
        self.results = dict(state.get("results", {}))
        self.policies = list(state.get("policies", self.policies))


def _say(msg: str) -> None:
    print(msg, flush=True)


def _searcher_base() -> type:
    from ray.tune.search import Searcher

    return Searcher


class LivePlanSearcher(_searcher_base()):  # type: ignore[misc]
    """Ray Tune's view of a LivePlan (module docstring)."""

    def __init__(self, plan: LivePlan) -> None:
        super().__init__(metric=None, mode=None)
        self.plan = plan
        self.trial_names: dict[str, str] = {}  # Ray trial id -> trial name

    def set_search_properties(self, metric: str | None, mode: str | None, config: dict, **spec: Any) -> bool:
        return True

    def suggest(self, trial_id: str) -> dict[str, Any] | str | None:
        trial = self.plan.next_ready()
        if trial is None:
            return self.FINISHED if self.plan.done() else None
        self.trial_names[trial_id] = trial.name
        return {"trial": trial}

    def on_trial_complete(self, trial_id: str, result: dict | None = None, error: bool = False) -> None:
        name = self.trial_names.get(trial_id)
        if name is not None:
            self.plan.on_complete(name, result, error)

    def get_state(self) -> dict[str, Any]:
        return {"plan": self.plan.state(), "trial_names": dict(self.trial_names)}

    def set_state(self, state: dict[str, Any]) -> None:
        self.plan.set_state(state["plan"])
        self.trial_names = dict(state["trial_names"])

    def save(self, checkpoint_path: str) -> None:
        with open(checkpoint_path, "wb") as f:
            pickle.dump(self.get_state(), f)

    def restore(self, checkpoint_path: str) -> None:
        with open(checkpoint_path, "rb") as f:
            self.set_state(pickle.load(f))


def plan_campaign(
    campaign: Any, data: Mapping[str, Any], uri: str, store: Any, reuse: bool, share: bool, log: Callable[[str], None]
) -> tuple[LivePlan | None, dict[str, Any]]:
    """(the live plan, what sharing saves) of a campaign's grids, planned together: each
    dataset's trials share training across every spec (sharing.py), trials identical to
    FINISHED runs are copied (`reuse`), checkpoints the storage holds are started from. A
    search samples its trials and ASHA stops them early: those run every trial alone, as Ray
    plans them (None). `data`: each spec's DataSource (sweep_data.py)."""
    from ..storage.store import Store
    from .sharing import dataset_fingerprint, keys_of, plan_cost, share_training

    first = campaign.members[0]
    if first.search is not None or first.scheduler is not None:
        return None, {}
    fingerprints = {
        spec.file.name: dataset_fingerprint(spec.dataset, data[spec.file.name].root) for spec in campaign.members
    }
    groups: dict[str, list[Trial]] = {}
    for spec in campaign.members:
        groups.setdefault(fingerprints[spec.file.name], []).extend(spec.trials)
    reusable: dict[str, str] = {}
    if reuse:
        from ..mlflow_log.reuse import find_reusable

        wanted = {keys_of(t.config, fp).identity for fp, trials in groups.items() for t in trials}
        try:
            reusable = find_reusable(uri, wanted)
        except Exception as e:
            from .errors import SweepError

            raise SweepError(
                f"cannot look up runs to reuse in the tracking store {uri} ({type(e).__name__}: {e}); "
                "fix the store or pass --no-reuse"
            ) from None
    # the driver asks often: a store that fails fast, so its own retries say when storage is away
    checkpoints = SharedCheckpoints(Store(store.uri, log=log, attempts=2))
    stored = checkpoints.available(fresh=True) if share else set()
    planned: list[Trial] = []
    alone: list[Trial] = []
    for fingerprint, trials in groups.items():
        planned += share_training(trials, fingerprint, reusable, share=share, stored=stored)
        alone += share_training(trials, fingerprint)
    cost = plan_cost(alone, planned)
    sharing = {
        "trial_epochs_alone": cost.naive,
        "trial_epochs_shared": cost.shared,
        "trial_epochs_after_reuse": cost.after_reuse,
        "reused_trials": cost.reused_trials,
        "starts": {t.name: t.start.to_dict() for t in planned},
    }
    stored_starts = sum(1 for t in planned if t.start.epoch and not t.start.from_trial)
    log(
        f"shared training{'' if share else ' OFF (--no-sharing)'}: {cost.naive} trial-epochs if every trial trained "
        f"alone, {cost.shared} after sharing, {cost.after_reuse} to train"
        + (f"; {cost.reused_trials} trial(s) reused from the tracking store" if reuse else " (--no-reuse)")
        + (f"; {stored_starts} start(s) from checkpoints in the storage" if stored_starts else "")
    )
    waiting = sum(1 for t in planned if t.start.from_trial)
    if waiting:
        log(
            f"  {waiting} trial(s) start from a checkpoint another trial of this sweep stores (`sweep status`: WAITING)"
        )
    policies = []
    for spec in campaign.members:
        if spec.file.adaptive is None:
            continue
        from .adaptive_seeds import AdaptiveSeedsPolicy

        adaptive = spec.file.adaptive
        mine = [t for t in planned if t.sweep == spec.file.name]
        policy = AdaptiveSeedsPolicy(
            mine,
            adaptive.metric,
            adaptive.max,
            spec.file.reference,
            "preset" in spec.grid,
            fingerprints[spec.file.name],
            (store, spec.file.name),
        )
        policies.append(policy)
        log(
            f"adaptive seeds ({spec.file.name}): {adaptive.initial} seed(s) each, up to {adaptive.max} where a "
            f"comparison is not resolved on {adaptive.metric}: "
            + ", ".join(f"{o} vs {r}" for o, r in policy.pairs.items())
        )
    return LivePlan(planned, checkpoints, policies), sharing
