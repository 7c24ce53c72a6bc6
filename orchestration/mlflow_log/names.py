"""Every MLflow name compact-reid writes or reads (docs/CONTRACTS.md), defined once.

Writers (`sweep_run`, `trial_run`, `outage`, `orchestration.sweep.trial` / `.runner`,
`orchestration.multicam_eval`) and readers (`orchestration.report`,
`orchestration.sweep.status`) import these instead of
spelling the strings.
"""

from __future__ import annotations

TAG = "compact_reid."

# Experiment tags (MLflow's own keys: the UI opens a training experiment with them).
EXPERIMENT_KIND = "mlflow.experimentKind"
EXPERIMENT_KIND_VALUE = "custom_model_development"
NOTE = "mlflow.note.content"
PARENT = "mlflow.parentRunId"

# Run tags.
ROLE, SWEEP, TRIAL_NAME = f"{TAG}role", f"{TAG}sweep", f"{TAG}trial_name"
ROLE_SWEEP, ROLE_TRIAL = "sweep", "trial"
PRESET, COLUMN, SEED = f"{TAG}preset", f"{TAG}column", f"{TAG}seed"
TRIAL_ID, GRID_POINT = f"{TAG}trial_id", f"{TAG}grid_point"
SCHEMA_VERSION_TAG = f"{TAG}schema_version"
ERROR_TAG, STOPPED = f"{TAG}error", f"{TAG}stopped"
ATTEMPT, RESUMED_FROM, TOTAL_EPOCHS = f"{TAG}attempt", f"{TAG}resumed_from_epoch", f"{TAG}total_epochs"
STORAGE, TRIALS_FAILED, TRIALS_TOTAL = f"{TAG}storage", f"{TAG}trials_failed", f"{TAG}trials_total"
TRACK_EVAL = f"{TAG}track_eval"
REPLAYED_EPOCHS, OUTAGE_SECONDS = f"{TAG}replayed_epochs", f"{TAG}tracking_outage_s"  # outage.py
NODE_IP, NODE_ID = f"{TAG}node_ip", f"{TAG}node_id"  # where the trial's current attempt runs
# Shared training (orchestration/sweep/sharing.py): what decides a run's results, and
# where a run's inherited epochs come from ("<run id>@<epoch>"; reused runs: every epoch).
IDENTITY, SEMANTICS_VERSION = f"{TAG}identity", f"{TAG}training_semantics_version"
SHARED_FROM, INHERITED_EPOCHS = f"{TAG}shared_from", f"{TAG}inherited_epochs"
REUSED_FROM, TRAINED_ALONE = f"{TAG}reused_from", f"{TAG}trained_alone_because"
SEED_ADDED = f"{TAG}seed_added_because"  # adaptive seeds (orchestration/sweep/adaptive_seeds.py)

# Artifacts.
SPEC_ARTIFACT, TRIALS_ARTIFACT, SWEEP_SUMMARY_ARTIFACT = "spec.yaml", "trials.json", "sweep_summary.json"
CONFIG_ARTIFACT, HISTORY_ARTIFACT, SUMMARY_ARTIFACT = "config.json", "metrics_history.json", "summary.json"
WEIGHTS_DIR, TABLES_DIR = "weights", "tables"
FINAL_WEIGHTS = f"{WEIGHTS_DIR}/final.pt"

# Metrics: `epoch` is logged every epoch, so its history tells which steps a run has.
STEP_KEY = "epoch"

# --- Report and tracking evaluation (orchestration/report, orchestration/multicam_eval) ---
# Params a trial logs beside its flattened config: where its data came from (no config
# field; the report labels the dataset with it, the tracking evaluation its train set).
DATA_NAME_PARAM, DATA_ROOT_PARAM = "data.name", "data.root"
# --- end of the report's names ---

# --- Resource probe (orchestration/probe/choice.py): what `resources: auto` chose, on the parent run ---
RESOURCE_CHOICE_ARTIFACT = "resource_choice.json"  # the whole table, the choice and why
RESOURCES_TAG = f"{TAG}resources."  # + source | choice | reason
PROBE_TAG = f"{TAG}probe."  # + <pipeline>.<compile>.<trials>x<threads>: one probed figure
# --- end of the resource probe's names ---
