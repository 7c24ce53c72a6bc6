"""Sweeps: spec (YAML -> validated, expanded trials), Ray Tune runner, the trial trainable.

- `spec_models`: the YAML as pydantic models (per-key checks, `sweep schema`'s JSON Schema);
- `spec`: `load_spec` -> `SweepSpec` (plan.py) whose `trials` carry their resolved configs;
- `names`: trial names and grid points;
- `state`: `sweep.json` (`SweepState`) and what every trial shares (`TrialContext`);
- `ray_tune`: cluster, resources, param space (one record per trial), Tune/Run configs;
- `trial`: `run_trial`, the function trainable around reid_core's Trainer;
- `runner`: `run_sweep`, `resume_sweep`; `status`: outcomes, `sweep_status`;
- `testing`: the test-only fault-injecting wrapper trainable.
`spec`, `spec_models`, `plan` and `names` import neither Ray nor MLflow (`sweep validate`/`show` stay fast).
"""
