"""Tracking evaluation (Table 5) of a sweep's trials, logged back onto their MLflow runs.

For every FINISHED trial run of the experiment (role `trial`, or untagged runs; the
sweep's parent run is skipped) that has a `weights/final.pt` artifact: download it, run
`reid_core.multicam.evaluate` on one shared scored scene and one shared calibration
scene, and log onto the trial's run (at its last step):
  track_mota, track_idf1, track_idsw, track_entry_accuracy, track_threshold,
  track_calibration_accuracy, track_idf1_noreid, track_idf1_oracle,
  track_mota_noreid, track_mota_oracle
plus the tag `compact_reid.track_eval` (JSON: seed, calibration seed, minutes, ... so a
figure says which scene it came from). Runs that already have `track_idf1` are skipped
unless `force`.
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

TRACK_METRICS = (
    "track_mota",
    "track_idf1",
    "track_idsw",
    "track_entry_accuracy",
    "track_threshold",
    "track_calibration_accuracy",
    "track_idf1_noreid",
    "track_idf1_oracle",
    "track_mota_noreid",
    "track_mota_oracle",
)
WEIGHTS_ARTIFACT = names.FINAL_WEIGHTS


def run_metrics(result: dict[str, Any], model_result: dict[str, Any]) -> dict[str, float]:
    """The metrics logged on a trial's run, from run_multicam_eval_many's output."""
    r = model_result["reid"]
    return {
        "track_mota": float(r["mota"]),
        "track_idf1": float(r["idf1"]),
        "track_idsw": float(r["num_switches"]),
        "track_entry_accuracy": float(r["entry_accuracy"]),
        "track_threshold": float(model_result["threshold"]),
        "track_calibration_accuracy": float(model_result["calibration"].get("entry_accuracy", float("nan"))),
        "track_idf1_noreid": float(result["no_reid"]["idf1"]),
        "track_idf1_oracle": float(result["oracle"]["idf1"]),
        "track_mota_noreid": float(result["no_reid"]["mota"]),
        "track_mota_oracle": float(result["oracle"]["mota"]),
    }


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
        if "track_idf1" in run.data.metrics and not force:
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
            except Exception as e:  # noqa: BLE001 - mlflow raises several types for a missing artifact
                skipped.append(
                    {
                        "run_id": run.info.run_id,
                        "run_name": name,
                        "reason": f"no {WEIGHTS_ARTIFACT} artifact ({type(e).__name__})",
                    }
                )
                continue
            # Models are loaded one at a time by the evaluation (a spec, not a model).
            specs.append({"checkpoint": path, "label": name, "train_set": run.data.params.get("data.name")})
            runs.append(run)
        for s in skipped:
            say(f"skip {s['run_name']}: {s['reason']}")
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
    for run, m in zip(runs, result["models"]):
        rid = run.info.run_id
        step = last_step(client, rid, names.STEP_KEY)  # the run's last epoch: summary-like keys go there
        ts = now_ms()
        metrics = run_metrics(result, m)
        client.log_batch(
            rid, metrics=[Metric(k, v, ts, step) for k, v in metrics.items()], tags=[RunTag(names.TRACK_EVAL, tag)]
        )
        m["run_id"], m["run_name"] = rid, run.info.run_name
        m["model"].pop("checkpoint", None)  # a temporary path, gone now
        say(f"{run.info.run_name}: logged {', '.join(f'{k}={v:.4g}' for k, v in metrics.items())}")
    result.update(experiment=experiment, tracking_uri=uri, skipped=skipped)
    return result
