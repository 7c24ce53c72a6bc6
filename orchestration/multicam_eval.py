"""Tracking evaluation (Table 5) of a sweep's trials, logged back onto their MLflow runs.

For every FINISHED trial run of the experiment (role `trial`, or untagged runs; the
sweep's parent run is skipped) that has a `weights/final.pt` artifact: download it, run
`reid_core.multicam.evaluate` on one shared scored scene and one shared calibration
scene, and log onto the trial's run (at its last step):
  track_mota, track_idf1, track_idsw, track_entry_accuracy, track_threshold,
  track_calibration_accuracy, track_idf1_noreid, track_idf1_oracle,
  track_mota_noreid, track_mota_oracle
plus the tag `names.TRACK_EVAL` (JSON: seed, calibration seed, minutes, ... so a figure
says which scene it came from). Runs that already have `track_idf1` are skipped unless
`force`. Every MLflow name comes from `orchestration.mlflow_log.names`; the metrics'
names are `TRACK_METRICS`, defined once below with where each value comes from.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any, Callable

from .mlflow_log import names
from .mlflow_log.store import (
    TrackingError,
    check_tracking_uri,
    client_for,
    last_step,
    now_ms,
    resolve_tracking_uri,
    search_all,
)

__all__ = ["evaluate_experiment", "TRACK_METRICS"]

# Each metric logged on a trial's run, with its value in run_multicam_eval_many's output
# (`result`: the whole output, `model`: this model's entry).
_TRACK_VALUES: dict[str, Callable[[dict[str, Any], dict[str, Any]], Any]] = {
    "track_mota": lambda result, model: model["reid"]["mota"],
    "track_idf1": lambda result, model: model["reid"]["idf1"],
    "track_idsw": lambda result, model: model["reid"]["num_switches"],
    "track_entry_accuracy": lambda result, model: model["reid"]["entry_accuracy"],
    "track_threshold": lambda result, model: model["threshold"],
    "track_calibration_accuracy": lambda result, model: model["calibration"].get("entry_accuracy", float("nan")),
    "track_idf1_noreid": lambda result, model: result["no_reid"]["idf1"],
    "track_idf1_oracle": lambda result, model: result["oracle"]["idf1"],
    "track_mota_noreid": lambda result, model: result["no_reid"]["mota"],
    "track_mota_oracle": lambda result, model: result["oracle"]["mota"],
}
TRACK_METRICS = tuple(_TRACK_VALUES)
EVALUATED_METRIC = "track_idf1"  # a run that has it was evaluated already
WEIGHTS_ARTIFACT = names.FINAL_WEIGHTS


def run_metrics(result: dict[str, Any], model_result: dict[str, Any]) -> dict[str, float]:
    """The metrics logged on a trial's run, from run_multicam_eval_many's output."""
    return {key: float(value_of(result, model_result)) for key, value_of in _TRACK_VALUES.items()}


def evaluate_experiment(
    experiment: str,
    tracking_uri: str | None = None,
    seed: int = 0,
    calibration_seed: int = 1,
    minutes: float = 4.0,
    device: str | None = None,
    force: bool = False,
    log: Callable[[str], None] | None = print,
    **eval_kwargs: Any,
) -> dict[str, Any]:
    """Evaluate every finished trial of `experiment` and log the track_* metrics on its run.

    Returns run_multicam_eval_many's dict with, per model, `run_id` and `run_name`, plus
    `skipped`: [{"run_id", "run_name", "reason"}].
    """
    from mlflow.entities import Metric, RunTag

    from reid_core.multicam.evaluate import run_multicam_eval_many

    say = log or (lambda _m: None)
    uri = resolve_tracking_uri(tracking_uri)
    check_tracking_uri(uri)
    client = client_for(uri)
    exp = client.get_experiment_by_name(experiment)
    if exp is None:
        raise TrackingError(f"experiment {experiment!r} not found in {uri}")
    skipped: list[dict[str, str]] = []
    todo: list[Any] = []
    for run in search_all(client, exp.experiment_id, "attributes.status = 'FINISHED'"):
        name = run.info.run_name or run.info.run_id
        if run.data.tags.get(names.ROLE) == names.ROLE_SWEEP:
            continue
        if EVALUATED_METRIC in run.data.metrics and not force:
            skipped.append({"run_id": run.info.run_id, "run_name": name, "reason": "already evaluated (use force)"})
            continue
        todo.append(run)
    settings = {"seed": seed, "calibration_seed": calibration_seed, "minutes": minutes, **eval_kwargs}
    with tempfile.TemporaryDirectory(prefix="multicam-eval-") as tmp:
        specs, runs = [], []
        for run in todo:
            name = run.info.run_name or run.info.run_id
            dst = Path(tmp) / run.info.run_id
            dst.mkdir()
            try:
                path = client.download_artifacts(run.info.run_id, WEIGHTS_ARTIFACT, str(dst))
            except Exception as err:  # noqa: BLE001 - mlflow raises several types for a missing artifact
                skipped.append(
                    {
                        "run_id": run.info.run_id,
                        "run_name": name,
                        "reason": f"no {WEIGHTS_ARTIFACT} artifact ({type(err).__name__})",
                    }
                )
                continue
            # Models are loaded one at a time by the evaluation (a spec, not a model).
            train_set = run.data.params.get(names.DATA_NAME_PARAM)
            specs.append({"checkpoint": path, "label": name, "train_set": train_set})
            runs.append(run)
        for skip in skipped:
            say(f"skip {skip['run_name']}: {skip['reason']}")
        if not specs:
            say(f"experiment {experiment!r}: no finished trial to evaluate")
            return {
                "experiment": experiment,
                "tracking_uri": uri,
                "models": [],
                "skipped": skipped,
                "settings": settings,
            }
        result = run_multicam_eval_many(
            specs, seed=seed, calibration_seed=calibration_seed, minutes=minutes, device=device, log=say, **eval_kwargs
        )
    tag = json.dumps(settings, sort_keys=True)
    for run, model_result in zip(runs, result["models"]):
        rid = run.info.run_id
        step = last_step(client, rid, names.STEP_KEY)  # the run's last epoch: summary-like keys go there
        ts = now_ms()
        metrics = run_metrics(result, model_result)
        client.log_batch(
            rid, metrics=[Metric(k, v, ts, step) for k, v in metrics.items()], tags=[RunTag(names.TRACK_EVAL, tag)]
        )
        model_result["run_id"], model_result["run_name"] = rid, run.info.run_name
        model_result["model"].pop("checkpoint", None)  # a temporary path, gone now
        say(f"{run.info.run_name}: logged {', '.join(f'{k}={v:.4g}' for k, v in metrics.items())}")
    result.update(experiment=experiment, tracking_uri=uri, skipped=skipped)
    return result
