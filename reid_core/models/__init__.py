"""Networks: one HA-CNN family covering HA-CNN and Compact-ReID 1x/2x (see network.py)."""

from .network import HACNNFamily, build_model, local_crop_sizes
from .output import ReIDOutput
from .pooling import GeM

__all__ = ["HACNNFamily", "build_model", "local_crop_sizes", "ReIDOutput", "GeM"]
