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
        policy: PlanPolicy | None = None,
        log: Callable[[str], None] | None = None,
    ) -> None:
        self.trials: dict[str, Trial] = {t.name: t for t in trials}
        self.checkpoints = checkpoints
        self.policy = policy
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
        if self.policy is None:
            return True
        return all(n in self.ended for n in self.released) and self.policy.settled(self)

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
        if self.policy is not None:  # after a failure too: the comparison may need a seed in its place
            for trial in self.policy.more(self):
                self.trials.setdefault(trial.name, trial)

    # Saved with Tune's state ----------------------------------------------------------
    def state(self) -> dict[str, Any]:
        return {
            "trials": self.trials,
            "released": self.released,
            "ended": self.ended,
            "results": self.results,
            "policy": self.policy,
        }

    def set_state(self, state: Mapping[str, Any]) -> None:
        self.trials = dict(state["trials"])
        self.released = list(state["released"])
        self.ended = dict(state["ended"])
        self.results = dict(state.get("results", {}))
        self.policy = state.get("policy", self.policy)


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
