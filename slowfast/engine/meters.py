"""Training statistics (`TrainMeter`), multi-view aggregation and classification metrics over videos,
and top-k counting.

Views are keyed by (video_index, view_index): a view seen twice (a padded distributed sampler, or the
same item gathered from two ranks) is counted once, which the original's TestMeter does not do.
Videos with any unreadable view (`ok=False`) are excluded from the scores and listed.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Optional

import numpy as np
import torch

from slowfast.config import ConfigError
from slowfast.config.choices import ENSEMBLE_METHODS
from slowfast.errors import UserError
from slowfast.utils import distributed as du
from slowfast.utils import logging as lu

__all__ = [
    "topk_correct", "ViewRecords", "VideoResults", "aggregate_views", "classification_metrics", "per_class_top1",
    "TrainMeter",
    "NonFiniteLossError", "device_memory_mb", "peak_ram_gb",
]


def topk_correct(logits: torch.Tensor, labels: torch.Tensor, ks: Sequence[int] = (1, 5)) -> list[torch.Tensor]:
    """Number of rows whose label is among the top-k logits, for each k (0-d tensors, no host sync)."""
    kmax = min(max(ks), logits.shape[1])
    top = logits.topk(kmax, dim=1).indices
    hit = top == labels.view(-1, 1)
    return [hit[:, : min(k, kmax)].any(dim=1).sum() for k in ks]


@dataclass
class ViewRecords:
    """Per-view outputs of one process, accumulated on the CPU during an evaluation pass."""

    video_index: list[torch.Tensor] = field(default_factory=list)
    view_index: list[torch.Tensor] = field(default_factory=list)
    logits: list[torch.Tensor] = field(default_factory=list)
    labels: list[torch.Tensor] = field(default_factory=list)
    ok: list[torch.Tensor] = field(default_factory=list)
    reasons: dict[int, str] = field(default_factory=dict)  # video index -> why it could not be read

    def add(self, video_index, view_index, logits, labels, ok, reasons: Sequence[str] = ()) -> None:
        """One batch; `reasons` (the batch's "reason" strings, "" for a video that was read) is optional."""
        for vi, reason in zip(video_index.tolist(), reasons):
            if reason:
                self.reasons.setdefault(int(vi), reason)
        self.video_index.append(video_index.detach().cpu().long())
        self.view_index.append(view_index.detach().cpu().long())
        self.logits.append(logits.detach().float().cpu())
        self.labels.append(labels.detach().cpu().long())
        self.ok.append(ok.detach().cpu().bool())

    def as_tensors(self) -> dict[str, torch.Tensor]:
        if not self.logits:
            return {"video_index": torch.zeros(0, dtype=torch.long), "view_index": torch.zeros(0, dtype=torch.long),
                    "logits": torch.zeros(0, 0), "labels": torch.zeros(0, dtype=torch.long),
                    "ok": torch.zeros(0, dtype=torch.bool)}
        return {"video_index": torch.cat(self.video_index), "view_index": torch.cat(self.view_index),
                "logits": torch.cat(self.logits), "labels": torch.cat(self.labels), "ok": torch.cat(self.ok)}


@dataclass
class VideoResults:
    """Video-level outputs: scored videos (sorted by video index) and the excluded unreadable ones."""

    video_index: torch.Tensor  # [Nv]
    logits: torch.Tensor  # [Nv, K]
    labels: torch.Tensor  # [Nv]
    num_views: torch.Tensor  # [Nv] distinct views that contributed
    unreadable: list[int]  # video indices excluded because a view could not be decoded


def aggregate_views(parts: Iterable[dict[str, torch.Tensor]], method: str = "sum") -> VideoResults:
    """Combine the view records of all processes into per-video logits ("sum" of logits or element-wise "max")."""
    if method not in ENSEMBLE_METHODS:
        raise ConfigError(f"unknown ensemble method {method!r} (DATA.ENSEMBLE_METHOD: sum or max)")
    parts = [p for p in parts if p["logits"].numel()]
    if not parts:
        return VideoResults(torch.zeros(0, dtype=torch.long), torch.zeros(0, 0), torch.zeros(0, dtype=torch.long),
                            torch.zeros(0, dtype=torch.long), [])
    vid = torch.cat([p["video_index"] for p in parts])
    view = torch.cat([p["view_index"] for p in parts])
    logits = torch.cat([p["logits"] for p in parts])
    labels = torch.cat([p["labels"] for p in parts])
    ok = torch.cat([p["ok"] for p in parts])
    # Dedupe (video, view): keep the first occurrence of each key.
    key = vid * (int(view.max()) + 1) + view
    order = torch.argsort(key, stable=True)
    key_sorted = key[order]
    first = torch.ones_like(key_sorted, dtype=torch.bool)
    first[1:] = key_sorted[1:] != key_sorted[:-1]
    keep = order[first]
    vid, view, logits, labels, ok = vid[keep], view[keep], logits[keep], labels[keep], ok[keep]

    videos, inverse = torch.unique(vid, sorted=True, return_inverse=True)
    nv, k = videos.numel(), logits.shape[1]
    bad = torch.zeros(nv, dtype=torch.bool).index_put_((inverse,), ~ok, accumulate=True)
    if method == "sum":
        agg = torch.zeros(nv, k).index_add_(0, inverse, logits)
    else:
        agg = torch.full((nv, k), float("-inf")).scatter_reduce_(
            0, inverse.view(-1, 1).expand(-1, k), logits, reduce="amax", include_self=True)
    video_labels = torch.zeros(nv, dtype=torch.long).scatter_(0, inverse, labels)
    counts = torch.zeros(nv, dtype=torch.long).index_add_(0, inverse, torch.ones_like(inverse))
    # A video's label must be the same on all its views (the original asserts this too).
    label_max = torch.zeros(nv, dtype=torch.long).scatter_reduce_(0, inverse, labels, reduce="amax", include_self=False)
    label_min = torch.zeros(nv, dtype=torch.long).scatter_reduce_(0, inverse, labels, reduce="amin", include_self=False)
    incons = (label_max != label_min) & ~bad
    if incons.any():
        raise ValueError(f"videos with different labels on different views: {videos[incons][:5].tolist()}")
    good = ~bad
    return VideoResults(videos[good], agg[good], video_labels[good], counts[good], videos[bad].tolist())


def classification_metrics(logits: torch.Tensor, labels: torch.Tensor, num_classes: Optional[int] = None) -> dict:
    """top-1 / top-5 accuracy (%) over videos, mean per-class accuracy (%, over classes present) and the
    confusion matrix (rows = true class, columns = predicted)."""
    n = int(labels.numel())
    k = int(num_classes or (logits.shape[1] if logits.ndim == 2 and logits.shape[1] else 0))
    if n == 0:
        return {"num_videos": 0, "top1_acc": float("nan"), "top5_acc": float("nan"),
                "mean_class_acc": float("nan"), "confusion": np.zeros((k, k), dtype=np.int64)}
    c1, c5 = topk_correct(logits, labels, (1, 5))
    pred = logits.argmax(dim=1)
    conf = torch.zeros(k, k, dtype=torch.long)
    conf.index_put_((labels, pred), torch.ones_like(labels), accumulate=True)
    per_class_total = conf.sum(dim=1)
    present = per_class_total > 0
    per_class_acc = conf.diag()[present].float() / per_class_total[present].float()
    return {
        "num_videos": n,
        "top1_acc": 100.0 * float(c1) / n,
        "top5_acc": 100.0 * float(c5) / n,
        "mean_class_acc": 100.0 * float(per_class_acc.mean()),
        "confusion": conf.numpy(),
    }


def per_class_top1(confusion: np.ndarray, class_names: Optional[Sequence[str]] = None) -> dict[str, dict[str, Any]]:
    """{class name: {"top1_acc": %, "num_videos": n}} for each class with videos, in class order, from the
    confusion matrix (rows = true class). A class `class_names` does not name is called by its index; a
    name listed twice gets its index appended. The counts sum to the videos scored, and the count-weighted
    mean of the accuracies is the overall top-1."""
    out: dict[str, dict[str, Any]] = {}
    for i, (total, correct) in enumerate(zip(confusion.sum(axis=1).tolist(), np.diag(confusion).tolist())):
        if not total:
            continue
        name = str(class_names[i]) if class_names is not None and i < len(class_names) else str(i)
        if name in out:
            name = f"{name} ({i})"
        out[name] = {"top1_acc": 100.0 * correct / total, "num_videos": int(total)}
    return out


def device_memory_mb(device: torch.device) -> float:
    """Peak memory allocated on `device` (MiB); 0 on the CPU."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2 ** 20
    return 0.0


def peak_ram_gb() -> float:
    """Peak resident memory of this process (GiB); 0 where the platform does not report it."""
    try:
        import resource
    except ImportError:  # not on every platform
        return 0.0
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2 ** 20


class NonFiniteLossError(UserError, RuntimeError):
    """The loss became NaN or infinite; the message names the iteration and the last good checkpoint."""


# Sums kept per window (reset at every log) and per epoch; "n" counts samples.
_WINDOW_KEYS = ("loss", "loss_distill", "distill_cos", "n", "top1", "top5")
_EPOCH_KEYS = ("loss", "n", "top1", "top5")


class TrainMeter:
    """Training statistics of one epoch, accumulated on the device so that a step never waits for the host.

    `update` adds a step's loss, accuracy counts and distillation terms to device tensors and records the
    first non-finite loss. Only `log_window` (every LOG_PERIOD iterations) and `epoch_stats` read them:
    one all-reduce and one host read each; both raise `NonFiniteLossError` if a loss was NaN or infinite.
    """

    def __init__(self, epoch: int, max_epoch: int, iters: int, device: torch.device, tb: Any,
                 last_good_checkpoint: Optional[str]):
        self.epoch, self.max_epoch, self.iters, self.device = epoch, max_epoch, iters, device
        self.tb, self.last_good_checkpoint = tb, last_good_checkpoint
        self.window = torch.zeros(len(_WINDOW_KEYS), device=device)
        self.total = torch.zeros(len(_EPOCH_KEYS), device=device)
        self.grad_norm = torch.zeros((), device=device)
        self.nonfinite_at = torch.full((), -1, dtype=torch.long, device=device)
        self.grad_norms: list[float] = []
        self.data_seconds = 0.0
        self.window_start = self.epoch_start = time.perf_counter()
        self.window_iters = 0

    @torch.no_grad()
    def update(self, it: int, loss: torch.Tensor, logits: torch.Tensor, labels: torch.Tensor, aux: dict,
               grad_norm: Optional[torch.Tensor]) -> None:
        """Add iteration `it` (no host sync)."""
        ld = loss.detach().float()
        first_bad = ~torch.isfinite(ld) & (self.nonfinite_at < 0)
        self.nonfinite_at = torch.where(first_bad, torch.full_like(self.nonfinite_at, it), self.nonfinite_at)
        n = float(labels.shape[0])
        c1, c5 = topk_correct(logits.detach().float(), labels, (1, 5))
        zero = ld.new_zeros(())
        distill = aux["loss_distill"].detach().float() if "loss_distill" in aux else zero
        cos = aux["distill_cos"].detach().float() if "distill_cos" in aux else zero
        self.window += torch.stack([ld * n, distill * n, cos * n, ld.new_tensor(n), c1.float(), c5.float()])
        self.total += torch.stack([ld * n, ld.new_tensor(n), c1.float(), c5.float()])
        if grad_norm is not None:
            self.grad_norm = grad_norm.detach().float()
        self.window_iters += 1

    def check_finite(self) -> None:
        """Raise `NonFiniteLossError` if a loss so far was NaN or infinite (one host read)."""
        at = int(self.nonfinite_at)
        if at >= 0:
            raise NonFiniteLossError(
                f"non-finite loss (NaN/inf) at epoch {self.epoch + 1}/{self.max_epoch}, iteration {at + 1}/{self.iters}; "
                f"last good checkpoint: {self.last_good_checkpoint or 'none (no checkpoint saved yet)'}. Lower "
                f"SOLVER.BASE_LR, set SOLVER.CLIP_GRAD_L2NORM, or check the data, then resume with TRAIN.AUTO_RESUME")

    def log_window(self, it: int, lr: float) -> dict:
        """Statistics of the iterations since the last log, over all processes; logged (JSON, TensorBoard)
        on the master. Resets the window."""
        self.check_finite()
        du.all_reduce([self.window])
        s = dict(zip(_WINDOW_KEYS, self.window.tolist()))
        gn = float(self.grad_norm)
        self.grad_norms.append(gn)
        now = time.perf_counter()
        n_it = max(self.window_iters, 1)
        dt = (now - self.window_start) / n_it
        done = it + 1
        n = max(s["n"], 1)
        stats = {
            "_type": "train_iter", "epoch": f"{self.epoch + 1}/{self.max_epoch}", "iter": f"{done}/{self.iters}",
            "dt": dt, "dt_data": self.data_seconds / n_it, "dt_net": dt - self.data_seconds / n_it,
            "eta": lu.format_seconds(dt * (self.iters - done + (self.max_epoch - self.epoch - 1) * self.iters)),
            "loss": s["loss"] / n, "lr": lr, "grad_norm": gn, "gpu_mem": device_memory_mb(self.device),
            "top1_err": 100.0 * (1 - s["top1"] / n), "top5_err": 100.0 * (1 - s["top5"] / n),
            "samples_per_s": s["n"] / max(now - self.window_start, 1e-9),
        }
        if s["loss_distill"]:
            stats["loss_distill"] = s["loss_distill"] / n
        if s["distill_cos"]:
            stats["distill_cos"] = s["distill_cos"] / n
        if du.is_master():
            lu.log_json_stats(stats)
            self.tb.add_scalars({k: v for k, v in stats.items() if not k.startswith("_")},
                                step=self.epoch * self.iters + done, prefix="train/")
        self.window.zero_()
        self.window_iters, self.data_seconds, self.window_start = 0, 0.0, time.perf_counter()
        return stats

    def epoch_stats(self, lr: float) -> dict:
        """Statistics of the whole epoch, over all processes."""
        self.check_finite()
        du.all_reduce([self.total])
        s = dict(zip(_EPOCH_KEYS, self.total.tolist()))
        n = max(s["n"], 1)
        seconds = time.perf_counter() - self.epoch_start
        return {
            "_type": "train_epoch", "epoch": f"{self.epoch + 1}/{self.max_epoch}", "loss": s["loss"] / n,
            "top1_err": 100.0 * (1 - s["top1"] / n), "top5_err": 100.0 * (1 - s["top5"] / n), "lr": lr,
            "grad_norm": float(np.mean(self.grad_norms)) if self.grad_norms else float("nan"),
            "gpu_mem": device_memory_mb(self.device), "RAM": peak_ram_gb(), "seconds": seconds,
            "samples_per_s": s["n"] / max(seconds, 1e-9),
        }
