"""The training loop: main phase (eq. 5), optional cyclic SWAG phase, evaluation, resume.

`Trainer.run()` is a generator that yields one metrics dict per finished epoch, so the
plain CLI (console + metrics.json) and orchestration (Ray report + MLflow) plug in
without this module importing them. Contract: docs/CONTRACTS.md.

Exact resume: every epoch re-seeds torch, numpy and random from (seed, epoch) and the PK
sampler is positioned with set_epoch, so an epoch's batches and augmentations depend
only on the seed and the epoch number; a checkpoint holds the model, optimiser,
scheduler, SWAG moments and history, and a resumed run reaches the same weights as an
uninterrupted one (on CPU; GPU kernels may be non-deterministic). Checkpoint state, resume
and shared training (starting from another run's checkpoint): run_state.py.

The input pipeline (`data.pipeline`: torchvision or device) gives the training batches
and the evaluation embeddings through one interface: reid_core/data/pipeline.py.
`runtime.compile` wraps the training forward in torch.compile (off by default).
"""

from __future__ import annotations

import copy
import functools
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterator

import numpy as np
import torch

from ..checkpoint import WEIGHTS_FORMAT
from ..config import TrainConfig, to_dict, with_overrides
from ..errors import TrainingError
from ..losses import ReIDLoss
from ..metric_keys import EVAL_KEYS, LOSS_KEYS, SWA_PREFIX, SWAG_PREFIX, final_metrics
from ..models import HACNNFamily, build_model
from ..seeding import epoch_seed, seed_all
from . import run_state
from .schedules import EpochSchedule, build_epoch_schedule, build_optimizer, build_scheduler
from .swag import SWAG, bma_embed, recompute_bn

if TYPE_CHECKING:
    from ..data.pipeline import InputPipeline

__all__ = ["Trainer", "pick_device"]


def pick_device(device: str | None = None) -> torch.device:
    """`None`/'auto' = cuda when available, else cpu; an explicit 'cuda' without a GPU is an error."""
    if device in (None, "", "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise TrainingError("--device cuda: no CUDA device is available here; use --device cpu or auto")
    return dev


class Trainer:
    """One training run of a TrainConfig on a dataset folder (see module docstring)."""

    def __init__(
        self,
        cfg: TrainConfig,
        data_root: str | Path,
        out_dir: str | Path,
        device: str | None = None,
        dataset_name: str = "auto",
        log: Callable[[str], None] | None = print,
    ) -> None:
        from ..data import PKSampler, load_dataset
        from ..data.pipeline import build_pipeline

        self.log = log or (lambda _msg: None)
        self.device = pick_device(device)
        self.out_dir = Path(out_dir)
        self.dataset = load_dataset(data_root, dataset_name)
        self.data_root = str(data_root)
        # The classifier size is the dataset's, whatever the preset said.
        cfg = with_overrides(cfg, {"model.num_classes": self.dataset.num_train_pids})
        self.cfg = cfg
        self.plan: EpochSchedule = build_epoch_schedule(cfg)
        self.total_epochs = self.plan.total_epochs

        seed_all(cfg.seed)
        self.model: HACNNFamily = build_model(cfg.model).to(self.device)
        self.cuda = self.device.type == "cuda"
        if self.cuda:
            self.model = self.model.to(memory_format=torch.channels_last)
        self.loss_fn = ReIDLoss(cfg.loss)
        self.optimizer = build_optimizer(self.model, cfg.optim)
        self.scheduler = build_scheduler(self.optimizer, self.plan)
        self.swag = (
            SWAG(self.model, var_clamp=cfg.swag.var_clamp, low_rank=cfg.swag.low_rank) if cfg.swag.enabled else None
        )

        pids = [pid for _, pid, _ in self.dataset.train]
        self.sampler = PKSampler(pids, p=cfg.data.p, k=cfg.data.k, seed=cfg.seed)
        self.pipeline: InputPipeline = build_pipeline(
            self.dataset, data_root, cfg, self.device, self.sampler, log=self.log, progress=log is not None
        )
        self.step_model = self._compiled(self.model)

        self.epoch = 0  # epochs finished
        self.history: list[dict[str, Any]] = []
        self.summary: dict[str, Any] = {}
        self.best: dict[str, Any] = {"rank1": -1.0, "epoch": 0, "state": None}
        self.train_seconds = 0.0  # in training epochs, summed over resumes

    def _compiled(self, model: torch.nn.Module) -> Any:
        mode = self.cfg.runtime.compile
        if mode == "off":
            return model
        # Training forward only: its batch shape is fixed (P x K, drop_last), so one graph;
        # evaluation (ragged last batch) stays eager. The weights are shared with self.model.
        return torch.compile(model, mode=mode, dynamic=False)

    def _bn_batches(self) -> _EpochBatches:
        """An epoch of training batches for BatchNorm recomputation (SWA/SWAG; callers cap it at swag.bn_batches)."""
        return _EpochBatches(self.pipeline, 10_000_000 + self.epoch)

    # Evaluation -----------------------------------------------------------------------
    @functools.cached_property
    def _eval_labels(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Query pids, query cams, gallery pids, gallery cams (built once, used by every evaluation)."""
        query, gallery = self.dataset.query, self.dataset.gallery
        return (
            np.array([p for _, p, _ in query]),
            np.array([c for _, _, c in query]),
            np.array([p for _, p, _ in gallery]),
            np.array([c for _, _, c in gallery]),
        )

    def _score(self, embeddings: torch.Tensor) -> dict[str, float]:
        from ..evaluation import compute_distance, evaluate, evaluate_features

        nq = len(self.dataset.query)
        qf, gf = embeddings[:nq], embeddings[nq:]
        q_pids, q_cams, g_pids, g_cams = self._eval_labels
        if embeddings.device.type == "cuda":  # distances and ranking on the GPU (same numbers)
            res = evaluate_features(qf, gf, q_pids, g_pids, q_cams, g_cams, max_rank=self.cfg.eval.max_rank)
        else:  # on a CPU the packed numpy ranking is the faster one
            res = evaluate(compute_distance(qf, gf), q_pids, g_pids, q_cams, g_cams, max_rank=self.cfg.eval.max_rank)
        return {k: float(res[k]) for k in EVAL_KEYS}

    @torch.no_grad()
    def evaluate_current(self) -> dict[str, float]:
        was = self.model.training
        self.model.eval()
        try:
            with self._autocast():
                return self._score(self.pipeline.embed(self.model))
        finally:
            self.model.train(was)

    def _evaluate_swa_swag(self) -> dict[str, float]:
        assert self.swag is not None
        swag_cfg = self.cfg.swag
        model = copy.deepcopy(self.model)
        out: dict[str, float] = {}
        # SWA: the running mean with recomputed BatchNorm statistics (= SWAG at scale 0).
        self.swag.load_mean(model)
        with self._autocast():
            recompute_bn(model, self._bn_batches(), device=self.device, max_batches=swag_cfg.bn_batches)
            model.eval()
            with torch.no_grad():
                out.update({SWA_PREFIX + k: v for k, v in self._score(self.pipeline.embed(model)).items()})
            generator = torch.Generator(device="cpu").manual_seed(epoch_seed(self.cfg.seed, 5_000_000 + self.epoch))
            embeddings = bma_embed(
                model,
                self.swag,
                swag_cfg.samples,
                swag_cfg.scale,
                self._bn_batches(),
                self.pipeline.embed,
                generator=generator,
                device=self.device,
                max_bn_batches=swag_cfg.bn_batches,
            )
        out.update({SWAG_PREFIX + k: v for k, v in self._score(embeddings).items()})
        return out

    def evaluate_epoch(self, epoch: int) -> dict[str, float]:
        """The evaluation after `epoch` (0-based): the current weights, SWA and SWAG at a cycle's
        end, its seconds; the main phase's last one is also the summary's plain_*."""
        t0 = time.perf_counter()
        metrics = self.evaluate_current()
        if self.swag is not None and epoch in self.plan.cycle_end_epochs:
            metrics.update(self._evaluate_swa_swag())
        metrics["eval_seconds"] = time.perf_counter() - t0
        if epoch + 1 == self.plan.main_epochs:
            self.summary["plain_rank1"], self.summary["plain_mAP"] = metrics["rank1"], metrics["mAP"]
        return metrics

    def _autocast(self) -> Any:
        return torch.autocast(device_type=self.device.type, dtype=torch.bfloat16, enabled=self.cuda)

    # Training -------------------------------------------------------------------------
    def train_step(self, imgs: torch.Tensor, pids: torch.Tensor, epoch: int = 0, step: int = 0) -> torch.Tensor:
        """One SGD step on a batch already on the device.

        Returns [loss, loss_ce, loss_triplet] as a detached device tensor. On a CPU a
        non-finite loss raises before the backward pass (NaN weights can crash kernels such
        as grid_sample's backward); on a GPU there is no host sync here: `_train_epoch`
        checks the losses in groups.
        """
        if self.cuda:
            imgs = imgs.contiguous(memory_format=torch.channels_last)
        if self.cfg.runtime.compile == "reduce-overhead" and self.cuda:
            torch.compiler.cudagraph_mark_step_begin()  # a new iteration for CUDA graph trees
        with self._autocast():
            out = self.step_model(imgs)
        loss, parts = self.loss_fn(out, pids)
        losses = torch.stack([loss.detach(), parts["loss_ce"].detach(), parts["loss_triplet"].detach()]).float()
        if not self.cuda:
            self._check_finite([losses], step, epoch, self.optimizer.param_groups[0]["lr"])
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        return losses

    def _check_finite(self, losses: list[torch.Tensor], first_step: int, epoch: int, lr: float) -> torch.Tensor:
        stacked = torch.stack(losses)  # [steps, len(LOSS_KEYS)]
        bad = ~torch.isfinite(stacked[:, 0])
        if bool(bad.any()):
            first_bad = int(bad.nonzero()[0, 0])
            row = stacked[first_bad]
            raise TrainingError(
                f"non-finite loss ({row[0].item()}) at epoch {epoch + 1}, step {first_step + first_bad + 1} "
                f"(loss_ce={row[1].item():.4g}, loss_triplet={row[2].item():.4g}, lr={lr:.3g}); "
                "lower optim.lr or check the data"
            )
        return stacked.sum(dim=0)

    def _train_epoch(self, epoch: int) -> dict[str, float]:
        seed_all(epoch_seed(self.cfg.seed, epoch))
        self.model.train()
        steps, images = 0, 0
        lr = self.optimizer.param_groups[0]["lr"]
        # On a GPU, reading the loss every step would stall the queue (a host sync per
        # step); the losses are checked every `group` steps instead (the error still
        # names the first bad step). On a CPU train_step checks every step itself.
        group = 50
        pending: list[torch.Tensor] = []
        sums = torch.zeros(len(LOSS_KEYS), device=self.device)
        t0 = time.perf_counter()
        for imgs, pids in self.pipeline.batches(epoch):
            losses = self.train_step(imgs, pids, epoch, steps)
            steps += 1
            images += imgs.shape[0]
            if not self.cuda:
                sums += losses  # already checked by train_step
                continue
            pending.append(losses)
            if len(pending) >= group:
                sums += self._check_finite(pending, steps - len(pending), epoch, lr)
                pending = []
        if pending:
            sums += self._check_finite(pending, steps - len(pending), epoch, lr)
        if steps == 0:
            raise TrainingError("the training loader yielded no batch: too few images for one P x K batch")
        means = (sums / steps).tolist()
        seconds = time.perf_counter() - t0
        self.train_seconds += seconds
        self.scheduler.step()
        return {
            **dict(zip(LOSS_KEYS, means)),
            "lr": lr,
            "epoch_seconds": seconds,
            "images_per_second": images / max(seconds, 1e-9),
        }

    def _is_eval_epoch(self, epoch: int) -> bool:
        epochs_done = epoch + 1
        return (
            epochs_done % self.cfg.eval.every == 0
            or epochs_done == self.plan.main_epochs
            or epochs_done == self.total_epochs
            or (self.swag is not None and epoch in self.plan.cycle_end_epochs)
        )

    def run(self) -> Iterator[dict[str, Any]]:
        """Train the remaining epochs, yielding each epoch's metrics; fills `summary`."""
        if self.epoch == 0 and "untrained_rank1" not in self.summary:
            untrained = self.evaluate_current()
            self.summary["untrained_rank1"] = untrained["rank1"]
            self.summary["untrained_mAP"] = untrained["mAP"]
            self.log(f"untrained: rank1 {100 * untrained['rank1']:.1f}%  mAP {100 * untrained['mAP']:.1f}%")
        while self.epoch < self.total_epochs:
            epoch = self.epoch
            phase = self.plan.phase(epoch)
            metrics: dict[str, Any] = {"epoch": epoch + 1, "phase": phase, **self._train_epoch(epoch)}
            self.epoch = epoch + 1
            if self.swag is not None and epoch in self.plan.cycle_end_epochs:
                self.swag.collect(self.model)
            if self._is_eval_epoch(epoch):
                metrics.update(self.evaluate_epoch(epoch))
                if metrics["rank1"] > self.best["rank1"]:
                    self.best = {
                        "rank1": metrics["rank1"],
                        "epoch": epoch + 1,
                        "state": {k: v.detach().cpu().clone() for k, v in self.model.state_dict().items()},
                    }
            self.history.append(metrics)
            self.log(self._format(metrics))
            if self.epoch == self.total_epochs:
                self.write_summary(metrics)
            yield metrics

    def write_summary(self, last: dict[str, Any]) -> None:
        """Complete `summary` from the last epoch's metrics (at the end of a run)."""
        from ..complexity import count_macs, count_parameters

        summary = self.summary
        if self.swag is not None:
            summary["cyclic_rank1"], summary["cyclic_mAP"] = last["rank1"], last["mAP"]
            for k in ("rank1", "mAP"):
                summary[f"swa_{k}"], summary[f"swag_{k}"] = last[f"swa_{k}"], last[f"swag_{k}"]
        summary.update(final_metrics(last))  # the one final_* rule (reid_core.metric_keys)
        summary["best_rank1"], summary["best_epoch"] = self.best["rank1"], self.best["epoch"]
        summary["params"] = count_parameters(self.model, include_classifiers=False)
        summary["params_with_classifiers"] = count_parameters(self.model, include_classifiers=True)
        summary["macs"] = count_macs(self.model, self.cfg.model.input_height, self.cfg.model.input_width)["macs"]
        summary["train_seconds"] = self.train_seconds
        summary["epochs"] = self.total_epochs

    def _format(self, metrics: dict[str, Any]) -> str:
        line = (
            f"epoch {metrics['epoch']:>4}/{self.total_epochs} [{metrics['phase']:<6}] lr {metrics['lr']:.2e} "
            f"loss {metrics['loss']:.4f} (ce {metrics['loss_ce']:.4f}, tri {metrics['loss_triplet']:.4f}) "
            f"{metrics['images_per_second']:.0f} img/s {metrics['epoch_seconds']:.1f}s"
        )
        if "rank1" in metrics:
            line += f" | rank1 {100 * metrics['rank1']:.1f}% mAP {100 * metrics['mAP']:.1f}%"
        if "swag_rank1" in metrics:
            line += (
                f" | SWA {100 * metrics['swa_rank1']:.1f}%/{100 * metrics['swa_mAP']:.1f}%"
                f" SWAG {100 * metrics['swag_rank1']:.1f}%/{100 * metrics['swag_mAP']:.1f}%"
            )
        return line

    # Persistence: reid_core/training/run_state.py ---------------------------------------
    def checkpoint_state(self) -> dict[str, Any]:
        """The training checkpoint's dict of this run now (valid between epochs)."""
        return run_state.checkpoint_state(self)

    def save_checkpoint(self, path: str | Path) -> Path:
        """Write the training checkpoint atomically (temp file + rename)."""
        return run_state.save_checkpoint(self, path)

    def resume_from(self, path: str | Path) -> None:
        """Load this run's own checkpoint; refuses one made for another architecture or recipe."""
        run_state.resume(self, path)

    def start_from(self, path: str | Path, epoch: int) -> None:
        """Continue from ANOTHER run's checkpoint at `epoch` (shared training; refuses one that
        is not a prefix of this run), so this run reaches exactly what it would alone."""
        run_state.start_from(self, path, epoch)

    def finish_inherited(self, reevaluate: bool) -> dict[str, Any]:
        """Complete a run that inherited all its epochs (re-evaluated when `reevaluate`); its last metrics."""
        return run_state.finish_inherited(self, reevaluate)

    def weight_kinds(self) -> tuple[str, ...]:
        """What `save_weights` can write now: 'final' (last weights), 'best' (best rank-1
        evaluation) and, once SWAG has collected, 'swa' (SWA mean, BatchNorm recomputed)."""
        return ("final", "best") + (("swa",) if self.swag is not None and self.swag.n > 0 else ())

    def save_weights(self, path: str | Path, which: str = "final") -> Path:
        if which not in self.weight_kinds():
            raise ValueError(f"which: one of {', '.join(self.weight_kinds())} for this run, got {which!r}")
        if which == "swa":
            state = self.final_model().state_dict()
        else:
            state = self.model.state_dict() if which == "final" or self.best["state"] is None else self.best["state"]
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        torch.save(
            {
                "kind": WEIGHTS_FORMAT,
                "config": to_dict(self.cfg),
                "model": state,
                "which": which,
                "epoch": self.best["epoch"] if which == "best" else self.epoch,
            },
            path,
        )
        return path

    def final_model(self) -> HACNNFamily:
        """The model the run reports: the SWA mean (BN recomputed) when SWAG ran, else the last weights.

        SWAG's Bayesian average is an ensemble of embeddings, not one set of weights;
        its single-network stand-in is the SWA mean.
        """
        if self.swag is None or self.swag.n == 0:
            return self.model
        model = copy.deepcopy(self.model)
        self.swag.load_mean(model)
        recompute_bn(model, self._bn_batches(), device=self.device, max_batches=self.cfg.swag.bn_batches)
        return model


class _EpochBatches:
    """One epoch's batches, re-iterable: BatchNorm recomputation passes over them once per SWAG sample."""

    def __init__(self, pipeline: InputPipeline, epoch: int) -> None:
        self.pipeline, self.epoch = pipeline, epoch

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        return self.pipeline.batches(self.epoch)
