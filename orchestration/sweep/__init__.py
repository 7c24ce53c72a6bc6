"""Sweeps: a YAML spec expanded to trials, run by Ray Tune one trial per grid point x seed.

The path of a trial, module by module (docs/ARCHITECTURE.md draws it):
- `spec_models`: the YAML's keys as pydantic models (per-key checks, `sweep schema`);
- `spec`: `load_spec` -> `SweepSpec`: keys checked together, expanded to trials;
- `trial`: `Trial`, the frozen record of one trial (its TrainConfig, what it starts from),
  its only serialiser, and its name;
- `sharing`: what training trials share (identity keys, each trial's `Start`), and the
  trial-epochs that saves (`sweep show --cost`);
- `live_plan`: `LivePlan` and its Ray Tune Searcher: trials released as their inputs appear;
  where producers publish the checkpoints consumers start from;
- `adaptive_seeds`: more seeds where a comparison is still open (a live-plan policy);
- `ray_tune`: Ray start/join, the per-trial resources rule, max_concurrent, param space,
  Tune and Run configs;
- `trainable`: `run_trial`, the Ray Tune trainable around reid_core's Trainer;
- `runner`: `run_sweep(spec, SweepOptions)`, `resume_sweep`;
- `sweep_folder`: the saved state `sweep.json` (`SweepState`), the folder, its synthetic data,
  what every trial shares (`TrialContext`);
- `storage_check`: every Ray node sees the sweep's local folders;
- `trial_status`: what each trial did (Ray's state and MLflow), `sweep status`;
- `console`: the live console of a running sweep;
- `errors`: `SweepError`; `testing`: the test-only fault injection.
`spec`, `spec_models`, `trial` and `sharing` import neither Ray nor MLflow (`sweep validate`
and `show` stay fast). The resource probe (`resources: auto`) is its own package,
orchestration/probe/.
"""
