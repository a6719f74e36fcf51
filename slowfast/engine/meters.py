"""Multi-view aggregation and classification metrics over videos, and top-k counting.

Views are keyed by (video_index, view_index): a view seen twice (a padded distributed sampler, or the
same item gathered from two ranks) is counted once, which the original's TestMeter does not do. Videos with any unreadable view (`ok=False`) are excluded from the scores and listed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional
from collections.abc import Iterable, Sequence

import numpy as np
import torch

__all__ = ["topk_correct", "ViewRecords", "VideoResults", "aggregate_views", "classification_metrics"]


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

    def add(self, video_index, view_index, logits, labels, ok) -> None:
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
    if method not in ("sum", "max"):
        raise ValueError(f"unknown ensemble method {method!r} (DATA.ENSEMBLE_METHOD: sum or max)")
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
