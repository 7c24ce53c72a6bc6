"""Features files: the embeddings of a set of crops with their file names and the model's
identity (fingerprint, feature size), as NumPy `.npz` or Parquet (when pyarrow is installed).

.npz keys: `features` [N, D] float32, `paths` [N] str, `info` (ModelInfo JSON),
`kind` = "compact-reid-features". Parquet: columns `path` (string) and `feature`
(fixed-size list of float32), the same `info`/`kind` in the schema metadata.
Written under a temporary name and renamed, so a failed run leaves nothing half written.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import DataError
from .model import ModelInfo
from .optional import require

__all__ = [
    "FeatureSet",
    "save_features",
    "load_features",
    "check_writable_suffix",
    "check_compatible",
    "FEATURES_KIND",
    "FEATURE_SUFFIXES",
]

FEATURES_KIND = "compact-reid-features"
FEATURE_SUFFIXES = (".npz", ".parquet")


@dataclass
class FeatureSet:
    features: np.ndarray  # [N, D] float32
    paths: list[str]
    info: ModelInfo

    def __post_init__(self) -> None:
        self.features = np.require(self.features, np.float32, ["C", "W"])  # Parquet gives read-only views
        if self.features.ndim != 2 or len(self.features) != len(self.paths):
            raise DataError(f"features {self.features.shape} do not match {len(self.paths)} file names")

    @property
    def dim(self) -> int:
        return int(self.features.shape[1])


def _suffix(path: Path) -> str:
    suffix = path.suffix.lower()
    if suffix not in FEATURE_SUFFIXES:
        raise DataError(f"{path}: features file suffix {suffix or '(none)'!r}; allowed: {', '.join(FEATURE_SUFFIXES)}")
    return suffix


def check_writable_suffix(path: str | Path) -> None:
    """Before any work: the suffix is known and, for Parquet, pyarrow is importable."""
    if _suffix(Path(path)) == ".parquet":
        require("pyarrow", f"writing {path} (Parquet)")


def save_features(fs: FeatureSet, path: str | Path) -> Path:
    path = Path(path)
    suffix = _suffix(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        if suffix == ".npz":
            with open(tmp, "wb") as f:  # a file object: np.savez would otherwise append ".npz"
                np.savez(
                    f,
                    features=fs.features,
                    paths=np.asarray(fs.paths, dtype=str),
                    info=np.asarray(fs.info.to_json()),
                    kind=np.asarray(FEATURES_KIND),
                )
        else:
            pa = require("pyarrow", f"writing {path} (Parquet)")
            pq = require("pyarrow.parquet", f"writing {path} (Parquet)")
            feats = pa.FixedSizeListArray.from_arrays(pa.array(fs.features.reshape(-1), pa.float32()), fs.dim)
            table = pa.table(
                {"path": pa.array(fs.paths, pa.string()), "feature": feats},
                metadata={"kind": FEATURES_KIND, "info": fs.info.to_json()},
            )
            pq.write_table(table, tmp)
        tmp.replace(path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def load_features(path: str | Path) -> FeatureSet:
    """Read a features file written by `save_features`; DataError naming the file otherwise."""
    path = Path(path)
    suffix = _suffix(path)
    if not path.is_file():
        raise DataError(f"{path}: no such features file")
    try:
        if suffix == ".npz":
            with np.load(path, allow_pickle=False) as z:
                if "kind" not in z or str(z["kind"]) != FEATURES_KIND:
                    raise DataError(f"{path}: not a compact-reid features file (no kind={FEATURES_KIND!r})")
                return FeatureSet(
                    z["features"], [str(p) for p in z["paths"]], ModelInfo.from_json(str(z["info"]), str(path))
                )
        pq = require("pyarrow.parquet", f"reading {path} (Parquet)")
        table = pq.read_table(path)
        meta = {k.decode(): v.decode() for k, v in (table.schema.metadata or {}).items()}
        if meta.get("kind") != FEATURES_KIND:
            raise DataError(f"{path}: not a compact-reid features file (no kind={FEATURES_KIND!r})")
        col = table.column("feature").combine_chunks()
        feats = col.flatten().to_numpy(zero_copy_only=False).reshape(len(table), col.type.list_size)
        return FeatureSet(feats, table.column("path").to_pylist(), ModelInfo.from_json(meta["info"], str(path)))
    except DataError:
        raise
    except Exception as e:  # zip/pyarrow errors: truncated or foreign files
        raise DataError(f"{path}: not a readable compact-reid features file ({type(e).__name__}: {e})") from e


def check_compatible(a: ModelInfo, b: ModelInfo, what_a: str, what_b: str) -> None:
    """Features of two sources are comparable only if they come from the same network."""
    if a.embedding_dim != b.embedding_dim:
        raise DataError(
            f"feature dimension mismatch: {what_a} has {a.embedding_dim}-d features "
            f"(model {a.fingerprint}), {what_b} {b.embedding_dim}-d (model {b.fingerprint}); "
            "embed both with the same model"
        )
    if a.fingerprint != b.fingerprint:
        raise DataError(
            f"model mismatch: {what_a} comes from model {a.fingerprint} ({a.source}), "
            f"{what_b} from model {b.fingerprint} ({b.source}); their features are not comparable; "
            "embed both with the same model"
        )
