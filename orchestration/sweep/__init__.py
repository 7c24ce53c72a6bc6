"""Sweeps: spec (YAML -> validated, expanded trials), Ray Tune runner, the trial trainable.

- `spec_models`: the YAML as pydantic models (per-key checks, `sweep schema`'s JSON Schema);
- `spec`: `load_spec` -> `SweepSpec` (trial_plan.py) whose `trials` carry their resolved configs;
- `trial_plan`: `SweepSpec`, `TrialSpec` (the trial record Ray carries), `describe`;
- `names`: trial names and grid points, Ray's trial names and folders;
- `errors`: `SweepError`;
- `sweep_folder`: the saved state `sweep.json` (`SweepState`), where the folder is, its
  synthetic data, and what every trial shares (`TrialContext`);
- `ray_tune`: cluster, resources, param space (one record per trial), Tune/Run configs;
- `trial`: `run_trial`, the function trainable around reid_core's Trainer;
- `runner`: `run_sweep`, `resume_sweep`; `trial_status`: what each trial did, `sweep_status`;
- `storage_check`: every node sees the local folders; `testing`: the test-only fault injection.
`spec`, `spec_models`, `trial_plan` and `names` import neither Ray nor MLflow (`sweep validate`/`show` stay fast).
"""
