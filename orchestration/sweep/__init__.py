"""Sweeps: YAML specs expanded to trials, run by Ray Tune one trial per grid point x seed; a
campaign runs several specs as one plan.

The path of a trial, module by module (docs/ARCHITECTURE.md draws it):
- `spec_models`: the YAML's keys as pydantic models (per-key checks, `sweep schema`);
- `spec`: `load_spec` -> `SweepSpec`: keys checked together, expanded to trials;
- `campaign`: several specs as one plan (`sweep run A.yaml B.yaml`), what they may not share;
- `rehearsal`: the same plan at tiny scale on generated data (`--rehearse`), and its check;
- `trial`: `Trial`, the frozen record of one trial (its TrainConfig, what it starts from),
  its only serialiser, and its name;
- `sharing`: what training trials share (identity keys, each trial's `Start`), and the
  trial-epochs that saves (`sweep show --cost`);
- `checkpoints`: training checkpoints kept in the storage by identity (`_shared/`);
- `live_plan`: `LivePlan` and its Ray Tune Searcher: trials released as their inputs appear;
  `plan_campaign` builds it;
- `adaptive_seeds`: more seeds where a comparison is still open (a live-plan policy);
- `ray_tune`: Ray start/join, the per-trial resources rule, max_concurrent, param space,
  Tune and Run configs;
- `trainable`: `run_trial`, the Ray Tune trainable around reid_core's Trainer;
- `trial_log`: each trial's own output in a log file of its own;
- `runner`: `run_sweep(specs, SweepOptions)`, `resume_sweep`;
- `finish`: after the fit: runs settled, trial-epochs trained against planned, summary, a
  rehearsal's tables;
- `sweep_folder`: where a sweep's files live, its saved state `sweep.json` (`SweepState`),
  what every trial shares (`TrialContext`);
- `sweep_data`: each spec's dataset: checked, generated once per recipe, staged per node;
- `storage_check`: every Ray node can use the storage and the data;
- `trial_status`: what each trial did (Ray's state and MLflow), `sweep status`;
- `console`: the live console of a running sweep; `verdicts`: comparisons as they resolve;
- `errors`: `SweepError`; `testing`: the test-only fault injection.
`spec`, `spec_models`, `trial`, `sharing`, `campaign` and `rehearsal` import neither Ray nor
MLflow (`sweep validate` and `show` stay fast). The resource probe (`resources: auto`) is its
own package, orchestration/probe/.
"""
