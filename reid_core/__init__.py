"""reid_core: the Compact-ReID library in pure PyTorch (never imports ray, mlflow or optuna)."""

__version__ = "0.1.0"
