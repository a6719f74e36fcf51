"""The training loop: AdamW with the original's groups, per-iteration warmup + cosine, clipping,
mixed precision, CE + the model's distillation term, Open-VCLIP's interpolation regulariser, periodic
checkpoints and validation, and resumable runs.

`train(cfg)` sets up the run, then for each epoch rebuilds and reseeds the train loader and runs
`train_epoch`, a short loop over `train_step` (forward, backward, optimizer step) whose statistics a
`TrainMeter` keeps on the device.

Determinism: every epoch reseeds torch, numpy and `random` from (RNG_SEED, epoch, rank) and sets the
sampler's epoch, so a run resumed from the checkpoint of epoch e continues exactly as the uninterrupted
run did (no RNG state needs saving; a run killed mid-epoch redoes that epoch).
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Optional

import torch
import torch.nn as nn
from yacs.config import CfgNode

from slowfast.datasets.loader import build_loader, reseed_for_epoch
from slowfast.engine.common import amp_settings, check_test_list, seed_everything, start_run
from slowfast.engine.evaluator import evaluate
from slowfast.engine.meters import TrainMeter, device_memory_mb, peak_ram_gb
from slowfast.engine.results import TrainResult
from slowfast.errors import UserError
from slowfast.models import build_model, clip_weights_from_cfg
from slowfast.models.losses import get_loss_func
from slowfast.models.optimizer import construct_optimizer
from slowfast.utils import checkpoint as cu
from slowfast.utils import distributed as du
from slowfast.utils import logging as lu
from slowfast.utils.lr_policy import lr_at_epoch, schedule_from_cfg, set_lr

__all__ = ["train", "train_epoch", "train_step", "StepOutput", "TrainParts", "LinearConnectClimb"]

logger = logging.getLogger(__name__)


class LinearConnectClimb:
    """Open-VCLIP's interpolation regulariser (docs/method.md), applied to the student CLIP only.

    Each call draws lambda ~ U(low, high), moves the trainable student CLIP parameters that also exist in
    the raw CLIP state dict to lambda * raw + (1 - lambda) * current, runs `compute_loss` there, records the
    (scaled) gradient of ratio * loss for every trainable parameter, and restores the parameters. The
    caller adds the recorded gradient to the normal pass's. As in the original, no (1 - lambda) chain-rule
    factor is applied. Keys outside the student CLIP (raw_model teacher, projector_v) are never interpolated,
    which is what makes it usable with STDD's config (the original code asserts and stops there).
    """

    def __init__(self, student_clip: nn.Module, clip_state: dict[str, torch.Tensor], trainable: list[nn.Parameter],
                 low: float, high: float, ratio: float):
        if not 0.0 <= low <= high <= 1.0:
            raise UserError(f"TRAIN.LINEAR_CONNECT_SAMPLE_L/R must satisfy 0 <= L <= R <= 1, got {low}, {high}")
        self.pairs: list[tuple[nn.Parameter, torch.Tensor]] = []
        for name, p in student_clip.named_parameters():
            ref = clip_state.get(name)
            if p.requires_grad and ref is not None and ref.shape == p.shape:
                self.pairs.append((p, ref.detach().to(device=p.device, dtype=p.dtype).clone()))
        if not self.pairs:
            raise UserError("TRAIN.LINEAR_CONNECT_CLIMB: no trainable student CLIP parameter matches the raw CLIP "
                               "state dict (TRAIN.CLIP_ORI_PATH of another architecture?)")
        self.trainable = trainable
        self.low, self.high, self.ratio = float(low), float(high), float(ratio)

    def gradients(self, compute_loss: Callable[[], torch.Tensor], scale: Callable[[torch.Tensor], torch.Tensor]
                  ) -> list[Optional[torch.Tensor]]:
        lam = float(torch.empty(()).uniform_(self.low, self.high))  # CPU RNG: no device sync
        saved = [p.detach().clone() for p, _ in self.pairs]
        try:
            with torch.no_grad():
                for p, ref in self.pairs:
                    p.lerp_(ref, lam)
            loss = self.ratio * compute_loss()
            scale(loss).backward()
            grads = [None if p.grad is None else p.grad.detach().clone() for p in self.trainable]
        finally:
            with torch.no_grad():
                for (p, _), s in zip(self.pairs, saved):
                    p.copy_(s)
            for p in self.trainable:
                p.grad = None
        return grads


def _build_climb(cfg: CfgNode, model: nn.Module, initial_clip: Optional[dict], trainable: list[nn.Parameter]
                 ) -> LinearConnectClimb:
    # TRAIN.CLIP_ORI_PATH takes the forms MODEL.CLIP_WEIGHTS does (a file, an open_clip tag, hf-hub:ORG/NAME).
    clip_state = dict(clip_weights_from_cfg(cfg, cfg.TRAIN.CLIP_ORI_PATH).state_dict) if cfg.TRAIN.CLIP_ORI_PATH else (initial_clip or {})
    return LinearConnectClimb(model.get_submodule("model"), clip_state, trainable, cfg.TRAIN.LINEAR_CONNECT_SAMPLE_L,
                              cfg.TRAIN.LINEAR_CONNECT_SAMPLE_R, cfg.TRAIN.LINEAR_CONNECT_LOSS_RATIO)


def _is_period(epoch: int, period: int, max_epoch: int) -> bool:
    return (epoch + 1) % max(1, period) == 0 or epoch + 1 == max_epoch


def _param_counts(model: nn.Module) -> tuple[int, int]:
    total = sum(p.numel() for p in model.parameters())
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return total, trainable


def _resume(cfg, model, optimizer, scaler) -> tuple[int, Optional[str]]:
    """Start epoch (0-based) and the checkpoint it came from, in the original code's order: TRAIN.AUTO_RESUME, TRAIN.CHECKPOINT_FILE_PATH, TRAIN.CUSTOM_LOAD."""
    if cfg.TRAIN.AUTO_RESUME:
        path = cu.last_checkpoint(cfg.OUTPUT_DIR)
        if path:
            epoch = cu.load_checkpoint(path, model, optimizer, scaler, strict=True, cfg=cfg)
            logger.info("resumed from %s (epoch %d done)", path, epoch + 1)
            return epoch + 1, path
    if cfg.TRAIN.CHECKPOINT_FILE_PATH:
        ckpt = cu.read_checkpoint(cfg.TRAIN.CHECKPOINT_FILE_PATH)
        missing, unexpected = cu.load_model_state(model, ckpt.get("model_state", ckpt), cfg.TRAIN.CHECKPOINT_FILE_PATH,
                                                  strict=False)
        logger.info("initialised from %s (%d model keys missing, %d unexpected)", cfg.TRAIN.CHECKPOINT_FILE_PATH,
                    len(missing), len(unexpected))
        return 0, cfg.TRAIN.CHECKPOINT_FILE_PATH
    if cfg.TRAIN.CUSTOM_LOAD:
        if not cfg.TRAIN.CUSTOM_LOAD_FILE:
            raise UserError("TRAIN.CUSTOM_LOAD True needs TRAIN.CUSTOM_LOAD_FILE")
        ckpt = cu.read_checkpoint(cfg.TRAIN.CUSTOM_LOAD_FILE)
        if "model_state" not in ckpt:
            raise cu.CheckpointError(f"{cfg.TRAIN.CUSTOM_LOAD_FILE} has no 'model_state'")
        missing, unexpected = cu.load_model_state(model, ckpt["model_state"], cfg.TRAIN.CUSTOM_LOAD_FILE, strict=False)
        logger.info("custom-loaded %s (%d keys missing, %d unexpected%s)", cfg.TRAIN.CUSTOM_LOAD_FILE, len(missing),
                    len(unexpected), f", e.g. {', '.join(unexpected[:3])}" if unexpected else "")
        return 0, cfg.TRAIN.CUSTOM_LOAD_FILE
    return 0, None


@dataclass
class TrainParts:
    """What a training step needs besides the batch."""

    model: nn.Module
    optimizer: torch.optim.Optimizer
    scaler: Any  # torch.amp.GradScaler (disabled: a pass-through)
    loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
    trainable: list[nn.Parameter]
    clip_norm: Optional[float]
    autocast: bool
    amp_dtype: torch.dtype
    climb: Optional[LinearConnectClimb] = None


@dataclass
class StepOutput:
    """One step's results, still on the device: the total loss, the logits, the model's auxiliary terms
    (e.g. `loss_distill`, `distill_cos`) and the gradient norm when it was computed."""

    loss: torch.Tensor
    logits: torch.Tensor
    aux: dict
    grad_norm: Optional[torch.Tensor]


def _forward(parts: TrainParts, frames: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, dict]:
    """(logits, classification loss + distillation term, aux) under the run's autocast setting."""
    with torch.autocast(device_type=frames.device.type, dtype=parts.amp_dtype, enabled=parts.autocast):
        logits, aux = parts.model(frames, return_aux=True)
        loss = parts.loss_fn(logits, labels)
        if "loss_distill" in aux:
            loss = loss + aux["loss_distill"].float()
    return logits, loss, aux


def _grad_norm(trainable: list[nn.Parameter]) -> torch.Tensor:
    """Global L2 norm of the gradients (on the device), as clip_grad_norm_ reports it."""
    grads = [torch.linalg.vector_norm(p.grad.float()) for p in trainable if p.grad is not None]
    return torch.linalg.vector_norm(torch.stack(grads)) if grads else torch.zeros(())


def train_step(parts: TrainParts, frames: torch.Tensor, labels: torch.Tensor, want_grad_norm: bool) -> StepOutput:
    """Forward, backward (plus the interpolation regulariser's gradient), clipping and one optimizer step.

    The gradient norm is computed when clipping needs it, or when `want_grad_norm` (a logging step).
    """
    parts.optimizer.zero_grad(set_to_none=True)
    mix_grads = None
    if parts.climb is not None:
        mix_grads = parts.climb.gradients(lambda: _forward(parts, frames, labels)[1], parts.scaler.scale)
    logits, loss, aux = _forward(parts, frames, labels)
    parts.scaler.scale(loss).backward()
    if mix_grads is not None:
        for p, g in zip(parts.trainable, mix_grads):
            if g is not None:
                p.grad = g if p.grad is None else p.grad.add_(g)
    parts.scaler.unscale_(parts.optimizer)
    grad_norm = None
    if parts.clip_norm is not None and parts.clip_norm > 0:
        grad_norm = torch.nn.utils.clip_grad_norm_(parts.trainable, float(parts.clip_norm))
    elif want_grad_norm:
        grad_norm = _grad_norm(parts.trainable)
    parts.scaler.step(parts.optimizer)
    parts.scaler.update()
    return StepOutput(loss.detach(), logits.detach(), aux, grad_norm)


def train_epoch(cfg: CfgNode, parts: TrainParts, loader: Any, epoch: int, last_good_checkpoint: Optional[str],
                tb: lu.TensorboardWriter) -> dict:
    """One epoch; returns the epoch's statistics (all-reduced over processes)."""
    cu.unwrap(parts.model).train()
    device = next(parts.model.parameters()).device
    schedule = schedule_from_cfg(cfg)
    iters = len(loader)
    if iters == 0:
        raise UserError(f"the train split has fewer videos than one batch (TRAIN.BATCH_SIZE {cfg.TRAIN.BATCH_SIZE}) "
                        f"in {cfg.DATA.PATH_TO_DATA_DIR}")
    log_period = max(1, cfg.LOG_PERIOD)
    meter = TrainMeter(epoch, cfg.SOLVER.MAX_EPOCH, iters, device, tb, last_good_checkpoint)
    bar = lu.progress_bar(range(iters), total=iters, desc=f"train {epoch + 1}/{cfg.SOLVER.MAX_EPOCH}",
                          enabled=du.is_master())
    batches = iter(loader)
    lr = lr_at_epoch(schedule, epoch)
    for it in bar:
        t0 = time.perf_counter()
        batch = next(batches)
        frames = batch["frames"].to(device, non_blocking=True)
        labels = batch["label"].to(device, non_blocking=True)
        meter.data_seconds += time.perf_counter() - t0
        lr = lr_at_epoch(schedule, epoch + it / iters)
        set_lr(parts.optimizer, lr)
        log_now = (it + 1) % log_period == 0 or it + 1 == iters
        out = train_step(parts, frames, labels, want_grad_norm=log_now)
        meter.update(it, out.loss, out.logits, labels, out.aux, out.grad_norm)
        if log_now:
            stats = meter.log_window(it, lr)
            if du.is_master() and hasattr(bar, "set_postfix"):
                bar.set_postfix(loss=f"{stats['loss']:.4f}", lr=f"{lr:.2e}")
    return meter.epoch_stats(lr)


def _val_csv_exists(cfg: CfgNode) -> bool:
    return os.path.isfile(os.path.join(cfg.DATA.PATH_TO_DATA_DIR, "val.csv"))


def _log_model(cfg: CfgNode, model: nn.Module, optimizer: torch.optim.Optimizer) -> None:
    if not cfg.LOG_MODEL_INFO:
        return
    total, trainable = _param_counts(model)
    logger.info("model: %.2f M parameters, %.2f M trainable", total / 1e6, trainable / 1e6)
    for g in optimizer.param_groups:
        logger.info("optimizer group %s: %d tensors, weight decay %g", g.get("name"), len(g["params"]), g["weight_decay"])


def _setup(cfg: CfgNode) -> tuple[TrainParts, int, Optional[str]]:
    """Model, optimizer, scaler and regulariser of the run, resumed as configured; DDP-wrapped with
    several processes. Returns (parts, start epoch, checkpoint resumed from)."""
    seed_everything(cfg.RNG_SEED)  # the same initial weights on every rank
    model = build_model(cfg)
    device = next(model.parameters()).device
    initial_clip = None
    if cfg.TRAIN.LINEAR_CONNECT_CLIMB and not cfg.TRAIN.CLIP_ORI_PATH:
        initial_clip = {k: v.detach().clone() for k, v in model.get_submodule("model").state_dict().items()}
    optimizer = construct_optimizer(model, cfg)
    _log_model(cfg, model, optimizer)
    autocast, amp_dtype, scaler_on = amp_settings(cfg.TRAIN.MIXED_PRECISION, device, cfg.TRAIN.MIXED_PRECISION_DTYPE)
    scaler = torch.amp.GradScaler("cuda", enabled=scaler_on)
    start_epoch, resumed_from = _resume(cfg, model, optimizer, scaler)
    trainable = [p for g in optimizer.param_groups for p in g["params"]]
    climb = _build_climb(cfg, model, initial_clip, trainable) if cfg.TRAIN.LINEAR_CONNECT_CLIMB else None
    if du.get_world_size() > 1:
        # Every trainable parameter gets a gradient in every step (projector_v is trainable only when the
        # distillation term uses it), so DDP need not search for unused parameters.
        model = nn.parallel.DistributedDataParallel(
            model, device_ids=[device.index] if device.type == "cuda" else None, static_graph=cfg.MODEL.STATIC_GRAPH)
    parts = TrainParts(model, optimizer, scaler, get_loss_func(cfg.MODEL.LOSS_FUNC), trainable,
                       cfg.SOLVER.CLIP_GRAD_L2NORM, autocast, amp_dtype, climb)
    return parts, start_epoch, resumed_from


def _validate(cfg: CfgNode, model: nn.Module, loader: Any, epoch: int, best: Optional[dict],
              tb: lu.TensorboardWriter) -> tuple[dict, Optional[dict]]:
    """Validation metrics of `epoch` and the best (top-1, top-5) so far; logged on the master."""
    m = evaluate(cfg, cu.unwrap(model), loader, split="val", desc=f"val {epoch + 1}")["metrics"]
    if m["num_videos"] and (best is None or m["top1_acc"] > best["top1_acc"]):
        best = {"top1_acc": m["top1_acc"], "top5_acc": m["top5_acc"]}
    shown = best or {"top1_acc": float("nan"), "top5_acc": float("nan")}
    if du.is_master():
        lu.log_json_stats({"_type": "val_epoch", "epoch": f"{epoch + 1}/{cfg.SOLVER.MAX_EPOCH}",
                           "top1_err": 100.0 - m["top1_acc"], "top5_err": 100.0 - m["top5_acc"],
                           "min_top1_err": 100.0 - shown["top1_acc"], "min_top5_err": 100.0 - shown["top5_acc"],
                           "mean_class_acc": m["mean_class_acc"],
                           "gpu_mem": device_memory_mb(next(model.parameters()).device), "RAM": peak_ram_gb()})
        tb.add_scalars({"top1_acc": m["top1_acc"], "top5_acc": m["top5_acc"]}, step=epoch + 1, prefix="val/")
    return m, best


def _save(cfg: CfgNode, parts: TrainParts, epoch: int) -> str:
    """Write the epoch's checkpoint (rank 0) and wait for it; returns its path."""
    path = cu.save_checkpoint(cfg.OUTPUT_DIR, parts.model, parts.optimizer, epoch, cfg, parts.scaler)
    du.barrier()
    if path:
        logger.info("saved %s", path)
    return cu.checkpoint_path(cfg.OUTPUT_DIR, epoch)


def train(cfg: CfgNode) -> TrainResult:
    """Train as configured; returns {"epochs": [per-epoch stats], "best_val_top1", "last_checkpoint", ...}.

    Runs on one process or, inside `launch_job`, on each process of a distributed group. With
    TEST.ENABLE (a test follows, as in `tools/run_net.py`) the test list is read once the model is built,
    before the first epoch, so that an empty or malformed list does not stop the run only after training.
    """
    start_run(cfg, training=True)
    cu.remove_stale_temps(cfg.OUTPUT_DIR)
    parts, start_epoch, resumed_from = _setup(cfg)
    if cfg.TEST.ENABLE:
        check_test_list(cfg)
    val_loader = build_loader(cfg, "val") if _val_csv_exists(cfg) else None
    if val_loader is None:
        logger.warning("no val.csv in %s: validation during training is skipped", cfg.DATA.PATH_TO_DATA_DIR)
    tb = lu.TensorboardWriter(cfg.TENSORBOARD.LOG_DIR or os.path.join(cfg.OUTPUT_DIR, "runs"),
                              enabled=cfg.TENSORBOARD.ENABLE and du.is_master())
    history: list[dict] = []
    best: Optional[dict] = None
    t_start = time.perf_counter()
    last_ckpt = resumed_from if start_epoch > 0 else None
    if start_epoch >= cfg.SOLVER.MAX_EPOCH:
        logger.info("nothing to train: the checkpoint of epoch %d is the last one (SOLVER.MAX_EPOCH %d)",
                    start_epoch, cfg.SOLVER.MAX_EPOCH)
    for epoch in range(start_epoch, cfg.SOLVER.MAX_EPOCH):
        seed_everything(cfg.RNG_SEED, epoch, du.get_rank())
        train_loader = build_loader(cfg, "train")
        reseed_for_epoch(train_loader, cfg.RNG_SEED, epoch, du.get_rank())
        stats = train_epoch(cfg, parts, train_loader, epoch, last_ckpt, tb)
        if du.is_master():
            lu.log_json_stats(stats)
            tb.add_scalars({k: v for k, v in stats.items() if not k.startswith("_")}, step=epoch + 1, prefix="epoch/")
        record = {"epoch": epoch + 1, "train_loss": stats["loss"], "train_top1_acc": 100.0 - stats["top1_err"],
                  "lr": stats["lr"], "seconds": stats["seconds"]}
        if _is_period(epoch, cfg.TRAIN.CHECKPOINT_PERIOD, cfg.SOLVER.MAX_EPOCH):
            last_ckpt = _save(cfg, parts, epoch)
        if val_loader is not None and _is_period(epoch, cfg.TRAIN.EVAL_PERIOD, cfg.SOLVER.MAX_EPOCH):
            m, best = _validate(cfg, parts.model, val_loader, epoch, best, tb)
            record["val_top1_acc"] = m["top1_acc"]
        history.append(record)
    tb.close()
    return _summary(parts.model, history, best, last_ckpt, time.perf_counter() - t_start)


def _summary(model: nn.Module, history: list[dict], best: Optional[dict], last_ckpt: Optional[str],
             elapsed: float) -> TrainResult:
    best = best or {"top1_acc": float("nan"), "top5_acc": float("nan")}
    total, trainable = _param_counts(model)
    if du.is_master():
        logger.info("training done: %.2f M params (%.2f M trainable), %d epochs in %s, best val top-1 %.2f %%, "
                    "top-5 %.2f %%", total / 1e6, trainable / 1e6, len(history), lu.format_seconds(elapsed),
                    best["top1_acc"], best["top5_acc"])
    return {"epochs": history, "best_val_top1": best["top1_acc"], "best_val_top5": best["top5_acc"],
            "last_checkpoint": last_ckpt, "seconds": elapsed, "model": cu.unwrap(model)}
