"""`sweep show --cost`: what one or more specs would train, alone, shared, and after reuse.

The specs are planned TOGETHER, as if they were one sweep: a trial two specs both plan (e.g.
Table 4's setup 2 and Table 3's column h) is counted once, which is what running them one
after the other with reuse from the tracking store gives.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any, Sequence

from .shared_plan import dataset_fingerprint, keys_of, plan_cost, plan_sharing
from .trial_plan import SweepSpec

# Training images of the public datasets (bounding_box_train), used when the folder is not here.
KNOWN_TRAIN_IMAGES = {"market1501": 12936, "dukemtmcreid": 16522}


def train_images(spec: SweepSpec) -> int | None:
    """Training images an epoch goes through (about: the PK sampler drops a partial batch)."""
    ds = spec.dataset
    if ds.is_synthetic:
        syn = ds.synthetic or {}
        ids = int(syn.get("num_ids", 0))
        return int(syn.get("num_train_ids", ids // 2)) * int(syn.get("images_per_id", 8))
    train = Path(ds.path or "") / "bounding_box_train"
    if train.is_dir():
        return sum(1 for p in train.iterdir() if p.suffix.lower() in (".jpg", ".jpeg", ".png"))
    return KNOWN_TRAIN_IMAGES.get(ds.name)


def sweep_cost(
    specs: Sequence[SweepSpec], tracking_uri: str | None = None, images_per_second: float | None = None
) -> dict[str, Any]:
    """Per spec and in all: trial-epochs alone / shared / after reuse, and GPU-hours."""
    trials, fps, images = [], {}, {}
    rows = []
    searched = 0
    for spec in specs:
        if spec.search is not None:  # sampled trials: each trains alone, nothing to plan together
            from reid_core.training.epochs import epoch_counts

            n = spec.num_trials * epoch_counts(spec.trials[0].config()).total_epochs
            rows.append({"spec": spec.file.name, "trials": spec.num_trials, "alone": n, "shared": n, "images": None})
            searched += n
            continue
        fp = dataset_fingerprint(spec.dataset)
        alone = plan_sharing(spec.trials, fp)
        c = plan_cost(alone)
        n_img = train_images(spec)
        rows.append({"spec": spec.file.name, "trials": c.trials, "alone": c.naive, "shared": c.shared, "images": n_img})
        for t in spec.trials:
            name = f"{spec.file.name}/{t.name}"
            trials.append(replace(t, name=name))
            fps[name], images[name] = fp, n_img
    # Each spec's trials carry their own dataset's fingerprint: plan per fingerprint.
    total_alone: dict[str, Any] = {}
    total_reuse: dict[str, Any] = {}
    reusable: dict[str, str] = {}
    if tracking_uri:
        from ..mlflow_log.reuse import find_reusable

        reusable = find_reusable(tracking_uri, {keys_of(t.config_dict, fps[t.name]).identity for t in trials})
    for fp in dict.fromkeys(fps.values()):
        group = [t for t in trials if fps[t.name] == fp]
        total_alone.update(plan_sharing(group, fp))
        total_reuse.update(plan_sharing(group, fp, reusable))
    c = plan_cost(total_alone, total_reuse)
    img_epochs = {
        "alone": _image_epochs(total_alone, images, lambda s: s.keys.total_epochs),
        "shared": _image_epochs(total_alone, images, lambda s: s.trained_epochs),
        "after_reuse": _image_epochs(total_reuse, images, lambda s: s.trained_epochs),
    }
    hours = None
    if images_per_second and all(v is not None for v in img_epochs.values()):
        hours = {k: v / images_per_second / 3600.0 for k, v in img_epochs.items()}  # type: ignore[operator]
    return {
        "specs": rows,
        "trials": c.trials + sum(s.num_trials for s in specs if s.search is not None),
        "alone": c.naive + searched,
        "shared": c.shared + searched,
        "after_reuse": c.after_reuse + searched,
        "reused_trials": c.reused_trials,
        "store": tracking_uri,
        "images_per_second": images_per_second,
        "gpu_hours": hours,
    }


def _image_epochs(steps: dict[str, Any], images: dict[str, int | None], epochs: Any) -> float | None:
    total = 0.0
    for name, s in steps.items():
        if images.get(name) is None:
            return None
        total += epochs(s) * images[name]  # type: ignore[operator]
    return total


def format_cost(c: dict[str, Any]) -> str:
    lines = [f"{'spec':<20} {'trials':>6} {'alone':>9} {'shared':>9}  (trial-epochs; each spec on its own)"]
    for r in c["specs"]:
        lines.append(f"{r['spec']:<20} {r['trials']:>6} {r['alone']:>9} {r['shared']:>9}")
    pct = lambda v: f"{100.0 * v / c['alone']:.0f}%" if c["alone"] else "-"  # noqa: E731
    lines += [
        "",
        f"all {len(c['specs'])} spec(s) together, {c['trials']} trials:",
        f"  trial-epochs alone:        {c['alone']:>9}",
        f"  after sharing:             {c['shared']:>9}  ({pct(c['shared'])} of alone)",
    ]
    if c["store"]:
        lines.append(
            f"  after reuse from the store: {c['after_reuse']:>8}  ({pct(c['after_reuse'])}; "
            f"{c['reused_trials']} trial(s) FINISHED in {c['store']})"
        )
    else:
        lines.append("  after reuse: pass --tracking-uri to look up FINISHED runs")
    if c["gpu_hours"]:
        h = c["gpu_hours"]
        lines.append(
            f"  GPU-hours at {c['images_per_second']:g} images/s: alone {h['alone']:.1f}, shared {h['shared']:.1f}, "
            f"after reuse {h['after_reuse']:.1f}"
        )
    else:
        lines.append("  GPU-hours: pass --images-per-second (a bench_gpu.py figure) to convert")
    return "\n".join(lines)
