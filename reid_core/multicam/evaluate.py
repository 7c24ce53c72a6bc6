"""Table 5 on the synthetic LAB-like scene: multicam identities with no ReID, with a model, and the oracle.

Variants differ only in the global identity each within-room track gets at its entry:
- `no_reid`: a new identity at every entry (the tracker alone);
- `reid`: the ReID step (`reid_step.run_sequence`) with the model's embeddings and a
  threshold calibrated on a SEPARATE sequence (`calibration_seed`: other people, other
  trajectories, same room and cameras);
- `oracle`: the true identity at every entry (upper bound: only the tracker's misses
  and ghosts remain).
The global identity applies to the whole track (the decision, taken on crops from about
a second after the entry, labels the track from its start: an offline evaluation); the
candidates are the identities outside when the track started.
Metrics: motmetrics on ground-plane positions (`metrics.compute_mot_metrics`) and the
fraction of entries given the right identity (`reid_step.entry_correctness`).
"""

from __future__ import annotations

import time
from dataclasses import asdict
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from ..errors import CheckpointError, DataError
from .metrics import compute_mot_metrics
from .reid_step import Entry, Exit, calibrate_threshold, entry_correctness, run_sequence
from .scene import Scene, SceneConfig, build_scene

__all__ = [
    "ModelEmbedder",
    "LoadedModel",
    "load_model",
    "scene_events",
    "evaluate_identities",
    "run_multicam_eval",
    "run_multicam_eval_many",
    "GHOST_ID_BASE",
]

GHOST_ID_BASE = 1_000_000  # hypothesis ids of ghost tracks (never a global identity)
Embedder = Callable[[Sequence[Image.Image]], np.ndarray]


class ModelEmbedder:
    """PIL crops of any size -> L2-normalised [n, D] embeddings (resized to the model's input)."""

    def __init__(
        self,
        model: torch.nn.Module,
        device: torch.device | str = "cpu",
        batch_size: int = 64,
        input_size: tuple[int, int] | None = None,
    ) -> None:
        from ..data.transforms import build_test_transform

        self.device = torch.device(device)
        self.model = model.to(self.device).eval()
        cfg = getattr(model, "cfg", None)
        h, w = input_size or ((cfg.input_height, cfg.input_width) if cfg is not None else (160, 64))
        self.transform = build_test_transform(h, w)
        self.batch_size = batch_size

    @torch.inference_mode()
    def __call__(self, images: Sequence[Image.Image]) -> np.ndarray:
        for i, im in enumerate(images):
            if im.width < 1 or im.height < 1:
                raise DataError(f"crop {i} has zero size ({im.width}x{im.height}); it cannot be embedded")
        out: list[np.ndarray] = []
        for s in range(0, len(images), self.batch_size):
            batch = torch.stack([self.transform(im.convert("RGB")) for im in images[s : s + self.batch_size]])
            feats = self.model(batch.to(self.device))
            if not isinstance(feats, torch.Tensor) or feats.dim() != 2:
                raise CheckpointError("the model in eval mode must return an [N, D] embedding tensor")
            out.append(F.normalize(feats.float(), dim=1).cpu().numpy())
        return np.concatenate(out) if out else np.zeros((0, 0), np.float32)


class LoadedModel:
    """An embedder with what the tables say about it."""

    def __init__(self, embed: Embedder, info: dict[str, Any]) -> None:
        self.embed = embed
        self.info = info

    @property
    def label(self) -> str:
        return str(self.info.get("label", "model"))


def _run_name(path: Path) -> str:
    """runs/compact-w05/weights/final.pt -> compact-w05 (the file name alone says nothing)."""
    if path.parent.name == "weights" and path.parent.parent.name:
        return path.parent.parent.name
    return path.stem


def _train_set(obj: Mapping[str, Any]) -> str | None:
    """Training set recorded in a weights file, if any (several spellings accepted)."""
    for key in ("data_name", "dataset", "train_set"):
        if isinstance(obj.get(key), str):
            return obj[key]
    data = obj.get("data")
    if isinstance(data, Mapping):
        for key in ("name", "root"):
            if isinstance(data.get(key), str):
                return Path(data[key]).name if key == "root" else data[key]
    return None


def load_model(
    model_or_checkpoint: Any,
    device: str | torch.device | None = None,
    batch_size: int = 64,
    label: str | None = None,
    train_set: str | None = None,
) -> LoadedModel:
    """A checkpoint / weights path, a weights dict, an nn.Module, an embedding function, or
    a spec {"checkpoint": path, "label": ..., "train_set": ...} (loaded when used).

    Files are read by `checkpoint.load_weights` (CheckpointError for anything that is not a
    compact-reid checkpoint or weights file, or that does not fit its recorded config).
    """
    from ..checkpoint import build_model_from_weights, load_weights
    from ..training.trainer import pick_device

    if isinstance(model_or_checkpoint, LoadedModel):
        return model_or_checkpoint
    if (
        isinstance(model_or_checkpoint, Mapping)
        and "checkpoint" in model_or_checkpoint
        and "kind" not in model_or_checkpoint
    ):  # a spec: {"checkpoint", "label", "train_set"}
        spec = model_or_checkpoint
        return load_model(
            spec["checkpoint"],
            device,
            batch_size,
            label=spec.get("label") or label,
            train_set=spec.get("train_set") or train_set,
        )
    dev = pick_device(None if device is None else str(device))
    info: dict[str, Any] = {}
    if isinstance(model_or_checkpoint, (str, Path)):
        path = Path(model_or_checkpoint)
        obj = load_weights(path)
        info.update(checkpoint=str(path), label=label or _run_name(path))
        model_or_checkpoint = obj
    if isinstance(model_or_checkpoint, Mapping):
        obj = model_or_checkpoint
        model = build_model_from_weights(obj)  # CheckpointError for any other dict
        cfg = obj["config"]
        info.setdefault("label", label or str(cfg.get("preset", "model")))
        info.update(
            preset=cfg.get("preset"),
            train_set=train_set or _train_set(obj),
            epoch=obj.get("epoch"),
            which=obj.get("which"),
        )
        model_or_checkpoint = model
    if isinstance(model_or_checkpoint, torch.nn.Module):
        model = model_or_checkpoint
        info.setdefault("label", label or type(model).__name__)
        info.setdefault("train_set", train_set)
        info["params"] = int(sum(p.numel() for p in model.parameters()))
        cfg = getattr(model, "cfg", None)
        if cfg is not None and hasattr(cfg, "embedding_dim"):
            info["embedding_dim"] = int(cfg.embedding_dim)
        info["device"] = str(dev)
        return LoadedModel(ModelEmbedder(model, dev, batch_size), info)
    if callable(model_or_checkpoint):
        info.update(label=label or getattr(model_or_checkpoint, "__name__", "embedder"), train_set=train_set)
        return LoadedModel(model_or_checkpoint, info)
    raise CheckpointError(
        f"expected a checkpoint path, a weights dict, a model or an embedding function, "
        f"got {type(model_or_checkpoint).__name__}"
    )


# ---------------------------------------------------------------------------------
# Scene -> embeddings -> entry / exit events


def _embed_scene(scene: Scene, embed: Embedder, batch: int = 256) -> dict[tuple[int, int, int], np.ndarray]:
    """Embedding of every crop the ReID step uses. Zero-size crops are skipped (an entry
    left without any crop then opens a new identity, see ReIDStep.enter)."""
    keys = sorted({(v.index, f, c) for v in scene.visits for f, c in v.query + v.gallery})
    out: dict[tuple[int, int, int], np.ndarray] = {}
    for s in range(0, len(keys), batch):
        chunk = keys[s : s + batch]
        imgs = [scene.crop(*k) for k in chunk]
        ok = [i for i, im in enumerate(imgs) if im.width > 0 and im.height > 0]
        if not ok:
            continue
        embedded = np.asarray(embed([imgs[i] for i in ok]), dtype=np.float32)
        if embedded.ndim != 2 or len(embedded) != len(ok):
            raise DataError(f"the embedder returned shape {embedded.shape} for {len(ok)} crops")
        for i, row in zip(ok, embedded):
            out[chunk[i]] = row
    return out


def scene_events(scene: Scene, embeddings: Mapping[tuple[int, int, int], np.ndarray]) -> list[Entry | Exit]:
    """Entries (first frame inside) and exits (last frame inside) in time order; at the
    same frame entries come first (someone leaving at frame t is still inside at t).

    An entry is placed at the track's FIRST frame although its query crops come a moment
    later: the candidates are the identities that were outside when the person came in
    (someone still inside then cannot be them), and since the decision labels the whole
    track, two tracks that overlap in time never share an identity."""
    dim = next((len(v) for v in embeddings.values()), 0)

    def stack(keys: list[tuple[int, int, int]]) -> np.ndarray:
        rows = [embeddings[k] for k in keys if k in embeddings]
        return np.stack(rows) if rows else np.zeros((0, dim), np.float32)

    items: list[tuple[int, int, int, Entry | Exit]] = []
    for v in scene.visits:
        query = stack([(v.index, f, c) for f, c in v.query])
        gallery = stack([(v.index, f, c) for f, c in v.gallery])
        items.append((v.start, 0, v.index, Entry(v.index, query, v.person)))
        items.append((v.end, 1, v.index, Exit(v.index, gallery)))
    items.sort(key=lambda t: t[:3])
    return [t[3] for t in items]


def _oracle_events(scene: Scene) -> list[Entry | Exit]:
    """Entry/exit order without embeddings (for the no-ReID and oracle variants)."""
    empty = np.zeros((0, 1), np.float32)
    items = []
    for v in scene.visits:
        items.append((v.start, 0, v.index, Entry(v.index, empty, v.person)))
        items.append((v.end, 1, v.index, Exit(v.index, empty)))
    items.sort(key=lambda t: t[:3])
    return [t[3] for t in items]


def evaluate_identities(scene: Scene, identities: Mapping[int, int], max_distance: float = 0.5) -> dict[str, Any]:
    """MOT metrics of the tracker's output with track (visit) -> global identity, plus the
    entry accuracy."""

    def frames():
        for _f, gt, gt_xy, tracks, ghost, det_xy in scene.frames():
            hyp = [GHOST_ID_BASE + int(t) if g else int(identities[int(t)]) for t, g in zip(tracks, ghost)]
            yield gt, gt_xy, hyp, det_xy

    out: dict[str, Any] = compute_mot_metrics(frames(), max_distance=max_distance)
    correct = entry_correctness(_oracle_events(scene), identities)
    out["entries"] = len(correct)
    out["entries_correct"] = int(sum(correct))
    out["entry_accuracy"] = float(np.mean(correct)) if correct else float("nan")
    out["num_identities"] = len(set(identities.values()))
    return out


# ---------------------------------------------------------------------------------
# The evaluation


def _scene_config(seed: int, minutes: float, scene_config: SceneConfig | Mapping[str, Any] | None) -> SceneConfig:
    base = asdict(scene_config) if isinstance(scene_config, SceneConfig) else dict(scene_config or {})
    base.update(seed=seed, minutes=minutes)
    return SceneConfig(**base)


def run_multicam_eval_many(
    models: Sequence[Any],
    seed: int = 0,
    calibration_seed: int = 1,
    device: str | torch.device | None = None,
    minutes: float = 4.0,
    scene_config: SceneConfig | Mapping[str, Any] | None = None,
    max_images_per_id: int = 10,
    policy: str = "recent",
    threshold: float | None = None,
    max_distance: float = 0.5,
    log: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """No ReID, each model, oracle on one scored scene; one shared calibration scene.

    Returns {"scene", "calibration_scene", "no_reid", "oracle", "models": [{"model",
    "threshold", "calibration", "reid", "seconds"}]}. `threshold` skips the calibration.
    """
    say = log or (lambda _m: None)
    if seed == calibration_seed and threshold is None:
        raise ValueError(
            f"calibration_seed must differ from seed ({seed}): the threshold is never chosen on the scored sequence"
        )
    for m in models:  # fail fast on a missing file, before minutes of simulation
        path = m.get("checkpoint") if isinstance(m, Mapping) and "kind" not in m else m
        if isinstance(path, (str, Path)) and not Path(path).is_file():
            raise CheckpointError(f"{path}: no such checkpoint file")
    t0 = time.perf_counter()
    scene = build_scene(_scene_config(seed, minutes, scene_config))
    calib = build_scene(_scene_config(calibration_seed, minutes, scene_config)) if threshold is None else None
    say(
        f"scene seed {seed}: {len(scene.visits)} entries, {scene.summary()['re_entries']} re-entries, "
        f"{scene.num_frames} frames ({time.perf_counter() - t0:.1f} s)"
    )
    no_reid = evaluate_identities(scene, {v.index: v.index for v in scene.visits}, max_distance)
    oracle = evaluate_identities(scene, {v.index: v.person for v in scene.visits}, max_distance)
    results = []
    for m in models:
        t1 = time.perf_counter()
        lm = load_model(m, device)
        if calib is not None:
            cal_events = scene_events(calib, _embed_scene(calib, lm.embed))
            cal = calibrate_threshold(cal_events, max_images_per_id=max_images_per_id, policy=policy)  # type: ignore[arg-type]
            thr = cal.threshold
            calibration = {
                "seed": calibration_seed,
                "entry_accuracy": cal.accuracy,
                "entries": sum(isinstance(e, Entry) for e in cal_events),
            }
        else:
            thr = float(threshold)  # type: ignore[arg-type]
            calibration = {"seed": None, "given": True}
        events = scene_events(scene, _embed_scene(scene, lm.embed))
        seq = run_sequence(events, thr, max_images_per_id, policy)  # type: ignore[arg-type]
        reid = evaluate_identities(scene, seq.identities, max_distance)
        secs = time.perf_counter() - t1
        say(
            f"{lm.label}: threshold {thr:.2f}, IDF1 {100 * reid['idf1']:.1f}, entries "
            f"{reid['entries_correct']}/{reid['entries']} ({secs:.1f} s)"
        )
        results.append(
            {"model": lm.info, "threshold": thr, "calibration": calibration, "reid": reid, "seconds": round(secs, 2)}
        )
    return {
        "scene": scene.summary(),
        "calibration_scene": calib.summary() if calib is not None else None,
        "settings": {"max_images_per_id": max_images_per_id, "policy": policy, "max_distance": max_distance},
        "no_reid": no_reid,
        "oracle": oracle,
        "models": results,
        "seconds": round(time.perf_counter() - t0, 2),
    }


def run_multicam_eval(
    model_or_checkpoint: Any,
    seed: int = 0,
    calibration_seed: int = 1,
    device: str | torch.device | None = None,
    minutes: float = 4.0,
    **kwargs: Any,
) -> dict[str, Any]:
    """One model: {"variants": {"no_reid", "reid", "oracle"} (metrics + entry accuracy),
    "threshold", "calibration", "model", "scene", "calibration_scene", "settings"}."""
    results = run_multicam_eval_many([model_or_checkpoint], seed, calibration_seed, device, minutes, **kwargs)
    model_result = results["models"][0]
    return {
        "variants": {"no_reid": results["no_reid"], "reid": model_result["reid"], "oracle": results["oracle"]},
        "threshold": model_result["threshold"],
        "calibration": model_result["calibration"],
        "entry_accuracy": model_result["reid"]["entry_accuracy"],
        "model": model_result["model"],
        "scene": results["scene"],
        "calibration_scene": results["calibration_scene"],
        "settings": results["settings"],
        "seconds": results["seconds"],
    }
