"""The training loop (§4): AdamW with the original's groups, per-iteration warmup + cosine, clipping,
mixed precision, CE + the model's distillation term, Open-VCLIP's interpolation regulariser, periodic
checkpoints and validation, and resumable runs.

Determinism: every epoch reseeds torch, numpy and `random` from (RNG_SEED, epoch, rank) and sets the
sampler's epoch, so a run resumed from the checkpoint of epoch e continues exactly as the uninterrupted
run did (no RNG state needs saving; a run killed mid-epoch redoes that epoch).
"""

from __future__ import annotations

import logging
import math
import os
import random
import time
from typing import Any, Optional
from collections.abc import Callable

import numpy as np
import torch
import torch.nn as nn

from slowfast.engine.meters import topk_correct
from slowfast.models.losses import get_loss_func
from slowfast.models.optimizer import construct_optimizer
from slowfast.utils import checkpoint as cu
from slowfast.utils import distributed as du
from slowfast.utils import logging as lu
from slowfast.utils.lr_policy import schedule_from_cfg, lr_at_epoch, set_lr

__all__ = ["train", "NonFiniteLossError", "LinearConnectClimb", "seed_everything", "amp_settings", "autocast_dtype"]

logger = logging.getLogger(__name__)


class NonFiniteLossError(du.UserError):
    """The loss became NaN or infinite; the message names the iteration and the last good checkpoint."""


def seed_everything(seed: int, *extra: int) -> None:
    """Seed torch (all devices), numpy and `random` from `seed` and optional extra integers (epoch, rank)."""
    s = int(np.random.SeedSequence([int(seed), *map(int, extra)]).generate_state(1)[0]) if extra else int(seed)
    random.seed(s)
    np.random.seed(s % (2 ** 32))
    torch.manual_seed(s)


MIXED_PRECISION_DTYPES = ("auto", "float16", "bfloat16")


def autocast_dtype(choice: str, device_type: str, bf16_supported: bool) -> tuple[torch.dtype, bool]:
    """(autocast dtype, grad scaler on) for TRAIN.MIXED_PRECISION_DTYPE on a device type.

    fp16 overflows without loss scaling, so float16 on CUDA comes with a grad scaler; bf16 keeps fp32's
    exponent range and needs none. The CPU autocasts to bf16 only. Pure, so it is tested without a GPU.
    """
    if choice not in MIXED_PRECISION_DTYPES:
        raise du.UserError(f"TRAIN.MIXED_PRECISION_DTYPE must be one of {', '.join(MIXED_PRECISION_DTYPES)}, got {choice!r}")
    if device_type != "cuda":
        return torch.bfloat16, False
    if choice == "bfloat16" or (choice == "auto" and bf16_supported):
        return torch.bfloat16, False
    return torch.float16, True


def amp_settings(enabled: bool, device: torch.device, dtype: str = "auto") -> tuple[bool, torch.dtype, bool]:
    """(autocast on, autocast dtype, grad scaler on) for TRAIN.MIXED_PRECISION and MIXED_PRECISION_DTYPE."""
    if not enabled:
        return False, torch.float32, False
    supported = device.type == "cuda" and torch.cuda.is_bf16_supported()
    amp_dtype, scaler_on = autocast_dtype(dtype, device.type, supported)
    return True, amp_dtype, scaler_on


class LinearConnectClimb:
    """Open-VCLIP's interpolation regulariser (§4.4), applied to the student CLIP only.

    Each call draws lambda ~ U(low, high), moves the trainable student CLIP parameters that also exist in
    the raw CLIP state dict to lambda * raw + (1 - lambda) * current, runs `compute_loss` there, records the
    (scaled) gradient of ratio * loss for every trainable parameter, and restores the parameters. The
    caller adds the recorded gradient to the normal pass's. As in the original, no (1 - lambda) chain-rule
    factor is applied. Keys outside the student CLIP (raw_model teacher, projector_v) are never interpolated,
    which is what makes it usable with STDD's config (the original asserts and crashes, §10.2 item 6).
    """

    def __init__(self, student_clip: nn.Module, clip_state: dict[str, torch.Tensor], trainable: list[nn.Parameter],
                 low: float, high: float, ratio: float):
        if not 0.0 <= low <= high <= 1.0:
            raise du.UserError(f"TRAIN.LINEAR_CONNECT_SAMPLE_L/R must satisfy 0 <= L <= R <= 1, got {low}, {high}")
        self.pairs: list[tuple[nn.Parameter, torch.Tensor]] = []
        for name, p in student_clip.named_parameters():
            ref = clip_state.get(name)
            if p.requires_grad and ref is not None and ref.shape == p.shape:
                self.pairs.append((p, ref.detach().to(device=p.device, dtype=p.dtype).clone()))
        if not self.pairs:
            raise du.UserError("TRAIN.LINEAR_CONNECT_CLIMB: no trainable student CLIP parameter matches the raw CLIP "
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


def _build_climb(cfg, model: nn.Module, initial_clip: Optional[dict], trainable: list[nn.Parameter]) -> LinearConnectClimb:
    if cfg.TRAIN.CLIP_ORI_PATH:
        from slowfast.models.clip import read_state_dict

        clip_state = read_state_dict(cfg.TRAIN.CLIP_ORI_PATH)
    else:
        clip_state = initial_clip or {}
    return LinearConnectClimb(model.model, clip_state, trainable, cfg.TRAIN.LINEAR_CONNECT_SAMPLE_L,
                              cfg.TRAIN.LINEAR_CONNECT_SAMPLE_R, cfg.TRAIN.LINEAR_CONNECT_LOSS_RATIO)


def _is_period(epoch: int, period: int, max_epoch: int) -> bool:
    return (epoch + 1) % max(1, period) == 0 or epoch + 1 == max_epoch


def _find_unused_parameters(cfg, model: nn.Module) -> bool:
    """DDP must be told when a trainable parameter gets no gradient: projector_v is used with gradient
    only when distillation is on and carries gradient (MODEL.DISTILLATION_GRAD)."""
    proj = getattr(model, "projector_v", None)
    proj_trainable = proj is not None and any(p.requires_grad for p in proj.parameters())
    distill_with_grad = bool(cfg.MODEL.RAW_MODEL_DISTILLATION and cfg.MODEL.DISTILLATION_GRAD and cfg.MODEL.KEEP_RAW_MODEL)
    return proj_trainable and not distill_with_grad


def _param_counts(model: nn.Module) -> tuple[int, int]:
    total = sum(p.numel() for p in model.parameters())
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return total, trainable


def _resume(cfg, model, optimizer, scaler) -> tuple[int, Optional[str]]:
    """Start epoch (0-based) and the checkpoint it came from, following §4.1 step 6 (+ TRAIN.CUSTOM_LOAD)."""
    if cfg.TRAIN.AUTO_RESUME:
        path = cu.last_checkpoint(cfg.OUTPUT_DIR)
        if path:
            epoch = cu.load_checkpoint(path, model, optimizer, scaler, strict=True)
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
            raise du.UserError("TRAIN.CUSTOM_LOAD True needs TRAIN.CUSTOM_LOAD_FILE")
        ckpt = cu.read_checkpoint(cfg.TRAIN.CUSTOM_LOAD_FILE)
        if "model_state" not in ckpt:
            raise cu.CheckpointError(f"{cfg.TRAIN.CUSTOM_LOAD_FILE} has no 'model_state'")
        missing, unexpected = cu.load_model_state(model, ckpt["model_state"], cfg.TRAIN.CUSTOM_LOAD_FILE, strict=False)
        logger.info("custom-loaded %s (%d keys missing, %d unexpected%s)", cfg.TRAIN.CUSTOM_LOAD_FILE, len(missing),
                    len(unexpected), f", e.g. {', '.join(unexpected[:3])}" if unexpected else "")
        return 0, cfg.TRAIN.CUSTOM_LOAD_FILE
    return 0, None


def _memory_mb(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2 ** 20
    return 0.0


def _ram_gb() -> float:
    try:
        import resource

        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2 ** 20
    except Exception:  # not on every platform
        return 0.0


def train_epoch(
    cfg,
    model: nn.Module,
    loader,
    optimizer: torch.optim.Optimizer,
    scaler: Any,
    epoch: int,
    device: torch.device,
    climb: Optional[LinearConnectClimb],
    last_good_checkpoint: Optional[str],
    tb: lu.TensorboardWriter,
) -> dict:
    """One epoch; returns the epoch's statistics (all-reduced over processes)."""
    inner = cu.unwrap(model)
    inner.train()
    schedule = schedule_from_cfg(cfg)
    loss_fn = get_loss_func(cfg.MODEL.LOSS_FUNC)
    autocast_on, amp_dtype, _ = amp_settings(cfg.TRAIN.MIXED_PRECISION, device, cfg.TRAIN.MIXED_PRECISION_DTYPE)
    trainable = [p for g in optimizer.param_groups for p in g["params"]]
    clip_norm = cfg.SOLVER.CLIP_GRAD_L2NORM
    iters = len(loader)
    if iters == 0:
        raise du.UserError(f"the train split has fewer videos than one batch (TRAIN.BATCH_SIZE {cfg.TRAIN.BATCH_SIZE}) "
                           f"in {cfg.DATA.PATH_TO_DATA_DIR}")
    log_period = max(1, cfg.LOG_PERIOD)
    zero = lambda: torch.zeros((), device=device)  # noqa: E731
    # Device-side accumulators: read (one sync) only every LOG_PERIOD iterations and at the epoch's end.
    ep_loss, ep_n, ep_c1, ep_c5 = zero(), zero(), zero(), zero()
    win_loss, win_distill, win_cos, win_n, win_c1, win_c5, win_gn = zero(), zero(), zero(), zero(), zero(), zero(), zero()
    nonfinite_at = torch.full((), -1, dtype=torch.long, device=device)
    grad_norms: list[float] = []
    lr = lr_at_epoch(schedule, epoch)
    show_bar = du.is_master()
    bar = lu.progress_bar(range(iters), total=iters, desc=f"train {epoch + 1}/{cfg.SOLVER.MAX_EPOCH}", enabled=show_bar)
    t_epoch = time.perf_counter()
    t_win = time.perf_counter()
    dt_data = 0.0
    it_iter = iter(loader)
    last_stats: dict = {}

    def forward(frames, labels):
        with torch.autocast(device_type=device.type, dtype=amp_dtype, enabled=autocast_on):
            logits, aux = model(frames, return_aux=True)
            loss = loss_fn(logits, labels)
            distill = aux.get("loss_distill") if isinstance(aux, dict) else None
            total = loss + distill.float() if distill is not None else loss
        return logits, total, aux

    def check_finite(cur_iter: int) -> None:
        at = int(nonfinite_at)
        if at >= 0:
            raise NonFiniteLossError(
                f"non-finite loss (NaN/inf) at epoch {epoch + 1}/{cfg.SOLVER.MAX_EPOCH}, iteration {at + 1}/{iters}; "
                f"last good checkpoint: {last_good_checkpoint or 'none (no checkpoint saved yet)'}. Lower SOLVER.BASE_LR, "
                f"set SOLVER.CLIP_GRAD_L2NORM, or check the data, then resume with TRAIN.AUTO_RESUME")

    for it in bar:
        t0 = time.perf_counter()
        batch = next(it_iter)
        frames = batch["frames"].to(device, non_blocking=True)
        labels = batch["label"].to(device, non_blocking=True)
        dt_data += time.perf_counter() - t0

        lr = lr_at_epoch(schedule, epoch + it / iters)
        set_lr(optimizer, lr)
        optimizer.zero_grad(set_to_none=True)
        mix_grads = None
        if climb is not None:
            mix_grads = climb.gradients(lambda: forward(frames, labels)[1], scaler.scale)
        logits, loss, aux = forward(frames, labels)
        scaler.scale(loss).backward()
        if mix_grads is not None:
            for p, g in zip(trainable, mix_grads):
                if g is not None:
                    p.grad = g if p.grad is None else p.grad.add_(g)
        scaler.unscale_(optimizer)
        log_now = (it + 1) % log_period == 0 or it + 1 == iters
        grad_norm = None
        if clip_norm is not None and clip_norm > 0:
            grad_norm = torch.nn.utils.clip_grad_norm_(trainable, float(clip_norm))
        elif log_now:
            grads = [p.grad for p in trainable if p.grad is not None]
            grad_norm = torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g.float()) for g in grads])) if grads else zero()
        scaler.step(optimizer)
        scaler.update()

        with torch.no_grad():
            ld = loss.detach()
            bad = ~torch.isfinite(ld)
            nonfinite_at = torch.where(bad & (nonfinite_at < 0), torch.full_like(nonfinite_at, it), nonfinite_at)
            n = torch.full((), float(labels.shape[0]), device=device)
            c1, c5 = topk_correct(logits.detach().float(), labels, (1, 5))
            ep_loss += ld * n
            ep_n += n
            ep_c1 += c1
            ep_c5 += c5
            win_loss += ld * n
            win_n += n
            win_c1 += c1
            win_c5 += c5
            if isinstance(aux, dict):
                if "loss_distill" in aux:
                    win_distill += aux["loss_distill"].detach().float() * n
                if "distill_cos" in aux:
                    win_cos += aux["distill_cos"].detach().float() * n
            if grad_norm is not None:
                win_gn = grad_norm.detach().float()

        if log_now:
            check_finite(it)
            vals = torch.stack([win_loss, win_distill, win_cos, win_n, win_c1, win_c5])
            du.all_reduce([vals])
            s_loss, s_dist, s_cos, s_n, s_c1, s_c5 = vals.tolist()
            gn = float(win_gn)
            grad_norms.append(gn)
            now = time.perf_counter()
            n_it = (it % log_period) + 1
            dt = (now - t_win) / n_it
            done = it + 1
            eta = dt * (iters - done + (cfg.SOLVER.MAX_EPOCH - epoch - 1) * iters)
            last_stats = {
                "_type": "train_iter",
                "epoch": f"{epoch + 1}/{cfg.SOLVER.MAX_EPOCH}",
                "iter": f"{done}/{iters}",
                "dt": dt,
                "dt_data": dt_data / n_it,
                "dt_net": dt - dt_data / n_it,
                "eta": lu.format_seconds(eta),
                "loss": s_loss / max(s_n, 1),
                "lr": lr,
                "grad_norm": gn,
                "gpu_mem": _memory_mb(device),
                "top1_err": 100.0 * (1 - s_c1 / max(s_n, 1)),
                "top5_err": 100.0 * (1 - s_c5 / max(s_n, 1)),
                "samples_per_s": s_n / max(now - t_win, 1e-9),
            }
            if s_dist:
                last_stats["loss_distill"] = s_dist / max(s_n, 1)
            if s_cos:
                last_stats["distill_cos"] = s_cos / max(s_n, 1)
            if du.is_master():
                lu.log_json_stats(last_stats)
                tb.add_scalars({k: v for k, v in last_stats.items() if not k.startswith("_")},
                               step=epoch * iters + done, prefix="train/")
                if hasattr(bar, "set_postfix"):
                    bar.set_postfix(loss=f"{last_stats['loss']:.4f}", lr=f"{lr:.2e}")
            for t in (win_loss, win_distill, win_cos, win_n, win_c1, win_c5):
                t.zero_()
            t_win = time.perf_counter()
            dt_data = 0.0

    check_finite(iters - 1)
    tot = torch.stack([ep_loss, ep_n, ep_c1, ep_c5])
    du.all_reduce([tot])
    s_loss, s_n, s_c1, s_c5 = tot.tolist()
    seconds = time.perf_counter() - t_epoch
    return {
        "_type": "train_epoch",
        "epoch": f"{epoch + 1}/{cfg.SOLVER.MAX_EPOCH}",
        "loss": s_loss / max(s_n, 1),
        "top1_err": 100.0 * (1 - s_c1 / max(s_n, 1)),
        "top5_err": 100.0 * (1 - s_c5 / max(s_n, 1)),
        "lr": lr,
        "grad_norm": float(np.mean(grad_norms)) if grad_norms else float("nan"),
        "gpu_mem": _memory_mb(device),
        "RAM": _ram_gb(),
        "seconds": seconds,
        "samples_per_s": s_n / max(seconds, 1e-9),
    }


def _val_csv_exists(cfg) -> bool:
    return os.path.isfile(os.path.join(cfg.DATA.PATH_TO_DATA_DIR, "val.csv"))


def train(cfg) -> dict:
    """Train as configured; returns {"epochs": [per-epoch stats], "best_val_top1", "last_checkpoint", ...}.

    Runs on one process or, inside `launch_job`, on each process of a distributed group.
    """
    from slowfast.datasets import build_loader
    from slowfast.engine.evaluator import evaluate

    lu.setup_logging(cfg.OUTPUT_DIR, du.is_master())
    os.makedirs(cu.checkpoint_dir(cfg.OUTPUT_DIR), exist_ok=True)
    rank = du.get_rank()
    seed_everything(cfg.RNG_SEED)  # the same initial weights on every rank
    model = _user_errors(_build_model, cfg)
    device = next(model.parameters()).device
    initial_clip = None
    if cfg.TRAIN.LINEAR_CONNECT_CLIMB and not cfg.TRAIN.CLIP_ORI_PATH:
        initial_clip = {k: v.detach().clone() for k, v in model.model.state_dict().items()}
    total, trainable_n = _param_counts(model)
    if cfg.LOG_MODEL_INFO:
        logger.info("model: %.2f M parameters, %.2f M trainable", total / 1e6, trainable_n / 1e6)
    optimizer = construct_optimizer(model, cfg)
    if cfg.LOG_MODEL_INFO:
        for g in optimizer.param_groups:
            logger.info("optimizer group %s: %d tensors, weight decay %g", g.get("name"), len(g["params"]), g["weight_decay"])
    autocast_on, amp_dtype, scaler_on = amp_settings(cfg.TRAIN.MIXED_PRECISION, device, cfg.TRAIN.MIXED_PRECISION_DTYPE)
    scaler = torch.amp.GradScaler("cuda", enabled=scaler_on)
    start_epoch, last_ckpt = _resume(cfg, model, optimizer, scaler)
    trainable = [p for g in optimizer.param_groups for p in g["params"]]
    climb = _build_climb(cfg, model, initial_clip, trainable) if cfg.TRAIN.LINEAR_CONNECT_CLIMB else None
    if du.get_world_size() > 1:
        model = nn.parallel.DistributedDataParallel(
            model,
            device_ids=[device.index] if device.type == "cuda" else None,
            find_unused_parameters=_find_unused_parameters(cfg, model),
            static_graph=cfg.MODEL.STATIC_GRAPH,
        )
    train_loader = _user_errors(build_loader, cfg, "train")
    val_loader = _user_errors(build_loader, cfg, "val") if _val_csv_exists(cfg) else None
    if val_loader is None:
        logger.warning("no val.csv in %s: validation during training is skipped", cfg.DATA.PATH_TO_DATA_DIR)
    tb = lu.TensorboardWriter(cfg.TENSORBOARD.LOG_DIR or os.path.join(cfg.OUTPUT_DIR, "runs"),
                              enabled=cfg.TENSORBOARD.ENABLE and du.is_master())
    history: list[dict] = []
    best = {"top1_acc": float("nan"), "top5_acc": float("nan")}
    t_start = time.perf_counter()
    last_ckpt_written = last_ckpt if start_epoch > 0 else None
    if start_epoch >= cfg.SOLVER.MAX_EPOCH:
        logger.info("nothing to train: the checkpoint of epoch %d is the last one (SOLVER.MAX_EPOCH %d)",
                    start_epoch, cfg.SOLVER.MAX_EPOCH)
    for epoch in range(start_epoch, cfg.SOLVER.MAX_EPOCH):
        seed_everything(cfg.RNG_SEED, epoch, rank)
        if epoch > start_epoch:
            train_loader = _user_errors(build_loader, cfg, "train")
        _seed_loader(train_loader, cfg.RNG_SEED, epoch, rank)
        stats = train_epoch(cfg, model, train_loader, optimizer, scaler, epoch, device, climb, last_ckpt_written, tb)
        if du.is_master():
            lu.log_json_stats(stats)
            tb.add_scalars({k: v for k, v in stats.items() if not k.startswith("_")}, step=epoch + 1, prefix="epoch/")
        record = {"epoch": epoch + 1, "train_loss": stats["loss"], "train_top1_acc": 100.0 - stats["top1_err"],
                  "lr": stats["lr"], "seconds": stats["seconds"]}
        if _is_period(epoch, cfg.TRAIN.CHECKPOINT_PERIOD, cfg.SOLVER.MAX_EPOCH):
            path = cu.save_checkpoint(cfg.OUTPUT_DIR, model, optimizer, epoch, cfg, scaler)
            du.barrier()
            last_ckpt_written = cu.checkpoint_path(cfg.OUTPUT_DIR, epoch)
            if path:
                logger.info("saved %s", path)
        if val_loader is not None and _is_period(epoch, cfg.TRAIN.EVAL_PERIOD, cfg.SOLVER.MAX_EPOCH):
            val = evaluate(cfg, cu.unwrap(model), val_loader, split="val", desc=f"val {epoch + 1}")
            m = val["metrics"]
            if not math.isnan(m["top1_acc"]) and not (m["top1_acc"] <= best["top1_acc"]):
                best = {"top1_acc": m["top1_acc"], "top5_acc": m["top5_acc"]}
            vstats = {"_type": "val_epoch", "epoch": f"{epoch + 1}/{cfg.SOLVER.MAX_EPOCH}",
                      "top1_err": 100.0 - m["top1_acc"], "top5_err": 100.0 - m["top5_acc"],
                      "min_top1_err": 100.0 - best["top1_acc"], "min_top5_err": 100.0 - best["top5_acc"],
                      "mean_class_acc": m["mean_class_acc"], "gpu_mem": _memory_mb(device), "RAM": _ram_gb()}
            if du.is_master():
                lu.log_json_stats(vstats)
                tb.add_scalars({"top1_acc": m["top1_acc"], "top5_acc": m["top5_acc"]}, step=epoch + 1, prefix="val/")
            record["val_top1_acc"] = m["top1_acc"]
        history.append(record)
    tb.close()
    elapsed = time.perf_counter() - t_start
    if du.is_master():
        logger.info("training done: %.2f M params (%.2f M trainable), %d epochs in %s, best val top-1 %.2f %%, top-5 %.2f %%",
                    total / 1e6, trainable_n / 1e6, len(history), lu.format_seconds(elapsed), best["top1_acc"],
                    best["top5_acc"])
    return {"epochs": history, "best_val_top1": best["top1_acc"], "best_val_top5": best["top5_acc"],
            "last_checkpoint": last_ckpt_written, "seconds": elapsed, "model": cu.unwrap(model)}


def _build_model(cfg) -> nn.Module:
    from slowfast.models import build_model

    return build_model(cfg)


def _user_errors(fn: Callable, *args):
    """Call a builder; its ValueErrors and KeyErrors describe the configuration or the files (a class list
    that does not match NUM_CLASSES, a malformed CSV), so they become UserErrors printed on one line."""
    try:
        return fn(*args)
    except du.user_error_types():
        raise
    except (ValueError, KeyError) as e:
        raise du.UserError(str(e.args[0]) if isinstance(e, KeyError) and e.args else str(e)) from e


def _seed_loader(loader, seed: int, epoch: int, rank: int) -> None:
    """Make the epoch's data order and augmentation a function of (seed, epoch, rank) only.

    The loader is rebuilt every epoch (so worker processes restart); here its shuffling generator (which
    also draws the workers' base seed), the in-process dataset RNG and the distributed sampler's epoch are
    set. A resumed run therefore sees exactly the batches the uninterrupted run saw.
    """
    s = int(np.random.SeedSequence([int(seed), int(epoch), int(rank), 1]).generate_state(1)[0])
    gen = getattr(loader, "generator", None)
    if gen is not None:
        gen.manual_seed(s)
    dataset = getattr(loader, "dataset", None)
    if hasattr(dataset, "reseed"):
        dataset.reseed(s)
    sampler = getattr(loader, "sampler", None)
    if hasattr(sampler, "set_epoch"):
        sampler.set_epoch(epoch)
