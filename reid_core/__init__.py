"""reid_core: the Compact-ReID library in pure PyTorch (never imports ray, mlflow or optuna).

- `config` (TrainConfig), `presets` (the paper's columns as data), `errors`, `metric_keys`,
  `synth_options` (the synthetic-data options' value rules);
- `models`, `losses`, `complexity` (parameters, MACs);
- `data`: datasets, PK sampling, transforms and the two input pipelines (`data.pipeline`);
- `training`: the Trainer, learning-rate plan, SWA/SWAG; `seeding`: seeds per epoch;
- `checkpoint`: checkpoint and weights files; `evaluation`: features and CMC / mAP;
- `multicam` (multi-camera person identities with ReID at entries, Table 5), `deploy` (export, embed, search).
"""

__version__ = "0.1.0"
