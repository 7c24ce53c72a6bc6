"""Read a sweep from the tracking store: `load_sweep(experiment, uri) -> SweepData`.

Reads ONLY the tracking store, by the names of `orchestration.mlflow_log.names`: the
experiment of the sweep, its parent run (tag ROLE = ROLE_SWEEP, artifact TRIALS_ARTIFACT =
the planned trials) and its child runs (tag ROLE = ROLE_TRIAL: tags, metrics, metric
histories, and the typed CONFIG_ARTIFACT each trial logged, read back with reid_core's
`from_dict`). Params are logged for the MLflow UI and never parsed back (DATA_NAME_PARAM
aside: where the data came from is no config field). Runs of an older config schema (tag
SCHEMA_VERSION_TAG != SCHEMA_VERSION, or a config.json without the fields the switches are
read from) are excluded and listed.
"""

from __future__ import annotations

import dataclasses
import re
from typing import Any

import pandas as pd

from reid_core.config import SCHEMA_VERSION, ConfigError, TrainConfig, flatten, from_dict
from reid_core.metric_keys import SWAG_PREFIX
from reid_core.presets import SWITCHES, switches_from_flat

from ..mlflow_log import names
from ..mlflow_log.store import client_for, read_json_artifact, search_all, sqlite_path
from ..sweep.trial import SEED_SUFFIX
from .sweep_data import CONFIG_PREFIX, FINISHED, SWITCH_PARAMS, SweepData, TablesError, metric, num

HISTORY_KEYS = ("rank1", "mAP", SWAG_PREFIX + "rank1", SWAG_PREFIX + "mAP")  # Figure 6
_NO_CONFIG = f"no {names.CONFIG_ARTIFACT} recorded"  # a trial that has not logged it (yet)


def _client(tracking_uri: str) -> Any:
    path = sqlite_path(tracking_uri)
    if path is not None and not path.exists():  # a read-only command must not create a store
        raise TablesError(
            f"no MLflow store at {path} (--tracking-uri {tracking_uri}); pass the store the sweep logged to"
        )
    return client_for(tracking_uri)


def _read_trials(client: Any, run_id: str, warnings: list[str]) -> list[dict[str, Any]] | None:
    try:
        if names.TRIALS_ARTIFACT not in {a.path for a in client.list_artifacts(run_id)}:
            warnings.append(
                f"the sweep's parent run has no {names.TRIALS_ARTIFACT}: planned seeds unknown (cells show n=...)"
            )
            return None
        planned = read_json_artifact(client, run_id, names.TRIALS_ARTIFACT)
    except Exception as err:  # noqa: BLE001 - any store/JSON problem becomes a visible warning
        warnings.append(f"{names.TRIALS_ARTIFACT} of the parent run could not be read ({err}): planned seeds unknown")
        return None
    if not isinstance(planned, list) or not all(isinstance(t, dict) for t in planned):
        warnings.append(f"{names.TRIALS_ARTIFACT} is not a list of trials: planned seeds unknown")
        return None
    return planned


def _read_reference(client: Any, run_id: str, warnings: list[str]) -> str | None:
    """The top-level `reference:` of the sweep's spec.yaml (stored on the parent run), if any."""
    import tempfile
    from pathlib import Path

    import yaml

    try:
        if names.SPEC_ARTIFACT not in {a.path for a in client.list_artifacts(run_id)}:
            return None
        with tempfile.TemporaryDirectory() as tmp:
            spec = yaml.safe_load(Path(client.download_artifacts(run_id, names.SPEC_ARTIFACT, tmp)).read_text())
    except Exception as err:  # noqa: BLE001 - any store/YAML problem becomes a visible warning
        warnings.append(
            f"{names.SPEC_ARTIFACT} of the parent run could not be read ({err}): references are the defaults"
        )
        return None
    ref = spec.get("reference") if isinstance(spec, dict) else None
    return None if ref is None else str(ref)


def _read_config(client: Any, run: Any) -> tuple[TrainConfig | None, str]:
    """(the run's config.json as a TrainConfig, "" or why it is excluded)."""
    try:
        recorded = read_json_artifact(client, run.info.run_id, names.CONFIG_ARTIFACT)
    except Exception:  # noqa: BLE001 - no such artifact: stores raise several types
        return None, _NO_CONFIG + (" yet" if run.info.status == "RUNNING" else "")
    missing = [k for k in SWITCH_PARAMS if k not in flatten(recorded if isinstance(recorded, dict) else {})]
    if missing:
        return None, f"{names.CONFIG_ARTIFACT}: params missing: {', '.join(missing)}"
    try:
        return from_dict(TrainConfig, recorded), ""
    except ConfigError as err:
        return None, f"{names.CONFIG_ARTIFACT} does not fit the current schema ({err})"


def _dataset_label(name: str) -> str:
    low = re.sub(r"[^a-z0-9]", "", name.lower())
    if "market" in low:
        return "Market1501"
    if "duke" in low:
        return "DukeMTMC"
    return name or "unknown"


def _run_row(client: Any, run: Any) -> dict[str, Any]:
    tags, metrics = run.data.tags, run.data.metrics
    trial_name = tags.get(names.TRIAL_NAME) or run.info.run_name or run.info.run_id
    grid_point = tags.get(names.GRID_POINT) or SEED_SUFFIX.sub("", trial_name)
    schema = tags.get(names.SCHEMA_VERSION_TAG)
    cfg, excluded = None, ""
    if schema is None:
        excluded = f"no {names.SCHEMA_VERSION_TAG} tag (current schema is {SCHEMA_VERSION})"
    elif str(schema).strip() != str(SCHEMA_VERSION):
        excluded = f"config schema {schema}, current is {SCHEMA_VERSION}"
    else:
        cfg, excluded = _read_config(client, run)
    flat = flatten(cfg) if cfg is not None else {}
    seed = tags.get(names.SEED, flat.get("seed", ""))
    row: dict[str, Any] = {
        "run_id": run.info.run_id,
        "run_name": run.info.run_name,
        "trial_name": trial_name,
        "status": run.info.status,
        "start_time": run.info.start_time or 0,
        "preset": tags.get(names.PRESET) or flat.get("preset") or grid_point,
        "grid_point": grid_point,
        "seed": int(seed) if str(seed).isdigit() else seed,
        # the data's name is a plain string param (where the data came from), not part of the config
        "dataset": _dataset_label(run.data.params.get(names.DATA_NAME_PARAM, "")),
        "schema_version": schema if schema is not None else "",
        "error": tags.get(names.ERROR_TAG, ""),
        "stopped": tags.get(names.STOPPED, ""),
        "excluded": excluded,
        "triplet": flat.get("loss.triplet", ""),
        "_config": cfg,
    }
    switches = switches_from_flat(flat) if cfg is not None else {}
    row.update({f"sw.{name}": bool(switches.get(name, False)) for name in SWITCHES})
    row.update({CONFIG_PREFIX + k: v for k, v in flat.items()})
    row.update({f"metric.{k}": num(v) for k, v in metrics.items()})
    return row


def load_sweep(experiment: str, tracking_uri: str, histories: bool = True) -> SweepData:
    """Everything the tables need from the store; TablesError for unusable input."""
    from mlflow.entities import ViewType
    from mlflow.exceptions import MlflowException

    client = _client(tracking_uri)
    try:
        exp = client.get_experiment_by_name(experiment)
        if exp is None or exp.lifecycle_stage != "active":
            experiment_names = sorted(
                e.name for e in client.search_experiments(view_type=ViewType.ACTIVE_ONLY, max_results=1000)
            )
            state = "is deleted" if exp is not None else "does not exist"
            raise TablesError(
                f"experiment {experiment!r} {state} in {tracking_uri}; "
                f"experiments there: {', '.join(experiment_names) if experiment_names else '(none)'}"
            )
        runs = search_all(client, exp.experiment_id)
    except MlflowException as err:
        raise TablesError(f"cannot read {tracking_uri}: {err.message}") from None
    if not runs:
        raise TablesError(f"experiment {experiment!r} has no runs yet (nothing to tabulate); start the sweep first")
    warnings: list[str] = []
    parents = sorted(
        (r for r in runs if r.data.tags.get(names.ROLE) == names.ROLE_SWEEP), key=lambda r: r.info.start_time or 0
    )
    trials = [r for r in runs if r.data.tags.get(names.ROLE) == names.ROLE_TRIAL]
    parent = parents[-1] if parents else None
    if len(parents) > 1:
        warnings.append(
            f"{len(parents)} sweep (parent) runs; {names.TRIALS_ARTIFACT} and artifacts use the latest, "
            f"{parent.info.run_id}"
        )
    if parent is None:
        warnings.append(
            f"no sweep (parent) run with tag {names.ROLE}={names.ROLE_SWEEP}: planned seeds unknown, "
            "nothing is logged back to MLflow"
        )
    planned = _read_trials(client, parent.info.run_id, warnings) if parent is not None else None
    reference = _read_reference(client, parent.info.run_id, warnings) if parent is not None else None
    if not trials:
        planned_n = f" ({len(planned)} trials planned)" if planned else ""
        raise TablesError(
            f"experiment {experiment!r} has no trial runs yet{planned_n}; "
            f"tables need runs tagged {names.ROLE}={names.ROLE_TRIAL}"
        )
    frame, superseded = _latest_per_trial(pd.DataFrame([_run_row(client, r) for r in trials]))
    if superseded:
        warnings.append(f"{superseded} earlier attempt(s) of re-run trials were replaced by their latest run")
    data = SweepData(
        experiment,
        exp.experiment_id,
        tracking_uri,
        parent.info.run_id if parent else None,
        planned,
        frame,
        warnings=warnings,
        superseded=superseded,
        reference=reference,
    )
    _refuse_if_nothing_usable(frame, experiment)
    if not histories:
        return data
    loaded, problems = _read_histories(client, data.finished)
    return dataclasses.replace(data, histories=loaded, warnings=warnings + problems)


def _latest_per_trial(frame: pd.DataFrame) -> tuple[pd.DataFrame, int]:
    """One run per trial name: the latest FINISHED one, else the latest (a resumed trial may
    have opened a new run)."""
    ordered = frame.assign(_fin=frame["status"] == FINISHED).sort_values(["trial_name", "_fin", "start_time"])
    kept = ordered.groupby("trial_name", sort=False).tail(1)
    return kept.drop(columns="_fin").sort_values("start_time").reset_index(drop=True), len(ordered) - len(kept)


def _refuse_if_nothing_usable(df: pd.DataFrame, experiment: str) -> None:
    if not (df["excluded"] != "").all():
        return
    counts = df.groupby("excluded").size()
    reasons = "; ".join(f"{k} run{'s' if k > 1 else ''}: {r}" for r, k in counts.items())
    hint = (
        "runs of an older config schema need the compact-reid version that recorded them (or a re-run of the sweep)"
        if any(not r.startswith(_NO_CONFIG) for r in counts.index)
        else "wait until the trials have logged their configs"
    )
    raise TablesError(
        f"experiment {experiment!r}: none of its {len(df)} trial runs can be tabulated ({reasons}); {hint}"
    )


def _read_histories(
    client: Any, finished: pd.DataFrame
) -> tuple[dict[str, dict[str, list[tuple[int, float]]]], list[str]]:
    """(run id -> Figure 6's metric histories, warnings) for the finished runs with SWAG."""
    from mlflow.exceptions import MlflowException

    want = finished[finished["sw.swag"].astype(bool) | metric(finished, "swag_rank1").notna()]
    histories: dict[str, dict[str, list[tuple[int, float]]]] = {}
    try:
        for run_id in want["run_id"]:
            per_key: dict[str, list[tuple[int, float]]] = {}
            for key in HISTORY_KEYS:
                points = client.get_metric_history(run_id, key)
                per_key[key] = sorted((int(p.step), float(p.value)) for p in points if num(p.value) is not None)
            histories[run_id] = per_key
    except MlflowException as err:
        return {}, [f"metric histories could not be read ({err.message}): Figure 6 is skipped"]
    return histories, []
