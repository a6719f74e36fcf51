"""Validation during training and the multi-view test, on 1..N processes.

Every process runs the model on its share of the items and keeps (video_index, view_index, logits,
label, ok) per item; the records of all processes are gathered and deduplicated by (video, view), so each
video counts exactly once whatever the sampler did. Unreadable videos (`ok=False`) are excluded from the
scores, listed in `OUTPUT_DIR/unreadable_videos.txt` and counted in the summary. Scores that are NaN or
infinite stop the evaluation (`NonFiniteLogitsError`): no accuracy is computed from them.

`test(cfg)` can be called from Python (the zero-shot protocols do, once per split) and returns the metrics.
"""

from __future__ import annotations

import json
import logging
import math
import os
import time
from typing import Any, Optional

import torch
import torch.nn as nn
from yacs.config import CfgNode

from slowfast.datasets.loader import build_loader
from slowfast.engine.common import amp_settings, seed_everything, start_run
from slowfast.engine.meters import ViewRecords, aggregate_views, classification_metrics, per_class_top1
from slowfast.engine.results import EvalOutput, LoadedWeights, TestSummary
from slowfast.engine.test_weights import load_test_weights
from slowfast.errors import UserError
from slowfast.models import build_model
from slowfast.utils import checkpoint as cu
from slowfast.utils import distributed as du
from slowfast.utils import logging as lu
from slowfast.utils.atomic import atomic_savefig, atomic_torch_save, atomic_write_text
from slowfast.utils.class_index import read_class_names

__all__ = ["evaluate", "test", "save_confusion_png", "NoVideoEvaluatedError", "NonFiniteLogitsError",
           "finite_or_null"]

logger = logging.getLogger(__name__)


class NoVideoEvaluatedError(UserError, RuntimeError):
    """A test in which no video could be read: there is no accuracy to report."""


class NonFiniteLogitsError(UserError, RuntimeError):
    """The model's scores were NaN or infinite: an accuracy computed from them would mean nothing. The
    message names the split, how many videos, one of them, and the likely cause."""


def _refuse_nonfinite_logits(parts: list[dict[str, torch.Tensor]], model: nn.Module, split: str,
                            video_path: Any = None, weights: str = "the weights evaluated") -> None:
    """Raise `NonFiniteLogitsError` when a readable view of `parts` (the gathered view records) has a NaN or
    infinite score. The cause named is the first non-finite tensor of the model's weights when there is one
    (`weights` says whose they are), else the input normalisation or half precision."""
    bad: set[int] = set()
    videos: set[int] = set()
    for p in parts:
        videos.update(p["video_index"].tolist())
        if p["logits"].numel():
            rows = ~torch.isfinite(p["logits"]).all(dim=1) & p["ok"]
            bad.update(p["video_index"][rows].tolist())
    if not bad:
        return
    first = min(bad)
    example = video_path(first) if video_path is not None else f"video {first}"
    tensor = cu.first_nonfinite(cu.unwrap(model).state_dict())
    cause = (f"{weights} hold NaN or inf (first in {tensor})" if tensor else
             "the weights are finite: check DATA.MEAN and DATA.STD, or set TEST.MIXED_PRECISION False")
    raise NonFiniteLogitsError(f"{split}: the model's scores are NaN or infinite for {len(bad)} of {len(videos)} "
                               f"videos (e.g. {example}), so no accuracy is reported; {cause}")


def finite_or_null(value: Any) -> Any:
    """`value` with every NaN or infinite float replaced by None, so that it is valid JSON (null)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: finite_or_null(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [finite_or_null(v) for v in value]
    return value


@torch.no_grad()
def evaluate(cfg, model: nn.Module, loader, split: str = "test", desc: Optional[str] = None,
             weights: str = "the weights evaluated") -> EvalOutput:
    """Run `model` over `loader` on every process; returns {"results": VideoResults, "metrics": dict,
    "unreadable": [(video_index, path, reason)]} identical on all processes. NaN or infinite scores raise
    `NonFiniteLogitsError` on every process (`weights` names the weights in its message)."""
    model.eval()
    device = next(model.parameters()).device
    autocast_on, amp_dtype, _ = amp_settings(cfg.TRAIN.MIXED_PRECISION and cfg.TEST.MIXED_PRECISION, device,
                                             cfg.TRAIN.MIXED_PRECISION_DTYPE)
    records = ViewRecords()
    bar = lu.progress_bar(loader, total=len(loader), desc=desc or split, enabled=du.is_master())
    for batch in bar:
        frames = batch["frames"].to(device, non_blocking=True)
        with torch.autocast(device_type=device.type, dtype=amp_dtype, enabled=autocast_on):
            logits = model(frames)
        n = frames.shape[0]
        ok = batch.get("ok", torch.ones(n, dtype=torch.bool))
        view = batch.get("view_index", torch.zeros(n, dtype=torch.long))
        records.add(batch["video_index"], view, logits, batch["label"], ok, batch.get("reason", ()))
    gathered = du.all_gather_object((records.as_tensors(), records.reasons))
    video_path = getattr(getattr(loader, "dataset", None), "video_path", None)
    _refuse_nonfinite_logits([g[0] for g in gathered], model, split, video_path, weights)
    results = aggregate_views([g[0] for g in gathered], cfg.DATA.ENSEMBLE_METHOD)
    num_classes = results.logits.shape[1] if results.logits.numel() else getattr(cu.unwrap(model), "num_classes", 0)
    metrics = classification_metrics(results.logits, results.labels, num_classes)
    reasons: dict[int, str] = {}
    for _, part in gathered:
        for vi, reason in part.items():
            reasons.setdefault(vi, reason)
    unreadable = []
    for vi in results.unreadable:
        path = video_path(vi) if video_path is not None else str(vi)
        unreadable.append((vi, path, reasons.get(vi, "could not be decoded")))
    return {"results": results, "metrics": metrics, "unreadable": unreadable}


def save_confusion_png(conf, class_names: Optional[list[str]], path: str, title: str) -> None:
    """A confusion-matrix heat map (rows: true class, columns: predicted), written atomically."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    k = conf.shape[0]
    size = min(20.0, 3.0 + 0.25 * k)
    fig, ax = plt.subplots(figsize=(size, size))
    ax.imshow(conf, cmap="Blues")
    ax.set_xlabel("predicted class")
    ax.set_ylabel("true class")
    ax.set_title(title)
    if class_names and k <= 40:
        ax.set_xticks(range(k))
        ax.set_yticks(range(k))
        ax.set_xticklabels(class_names, rotation=90, fontsize=7)
        ax.set_yticklabels(class_names, fontsize=7)
        if k <= 15:
            for i in range(k):
                for j in range(k):
                    if conf[i, j]:
                        ax.text(j, i, str(int(conf[i, j])), ha="center", va="center", fontsize=8)
    fig.tight_layout()
    atomic_savefig(fig, path, dpi=100)
    plt.close(fig)


def _summary(cfg: CfgNode, out: EvalOutput, info: LoadedWeights, seconds: float,
             class_names: Optional[list[str]]) -> TestSummary:
    """The returned and saved test summary (accuracies in %)."""
    m = out["metrics"]
    results_name = cfg.TEST.SAVE_RESULTS_PATH or "test_results.pt"
    return {
        "top1_acc": m["top1_acc"],
        "top5_acc": m["top5_acc"],
        "mean_class_acc": m["mean_class_acc"],
        "num_videos": m["num_videos"],
        "per_class": per_class_top1(m["confusion"], class_names),
        "num_unreadable": len(out["unreadable"]),
        "unreadable": [p for _, p, _ in out["unreadable"]],
        "checkpoint": info["file"],
        "checkpoint_source": info["how"],
        "patched": info["patched"],
        "views": cfg.TEST.NUM_ENSEMBLE_VIEWS * cfg.TEST.NUM_SPATIAL_CROPS,
        "ensemble_method": cfg.DATA.ENSEMBLE_METHOD,
        "seconds": seconds,
        "results_path": results_name if os.path.isabs(results_name) else os.path.join(cfg.OUTPUT_DIR, results_name),
        "metrics_path": os.path.join(cfg.OUTPUT_DIR, "test_metrics.json"),
    }


def _write_test_outputs(cfg: CfgNode, out: EvalOutput, summary: TestSummary, dataset: Any,
                        class_names: Optional[list[str]]) -> None:
    """Per-video results (.pt), metrics (JSON), the unreadable list and the confusion matrix, atomically."""
    m, res = out["metrics"], out["results"]
    os.makedirs(cfg.OUTPUT_DIR, exist_ok=True)
    video_paths = [dataset.video_path(int(v)) for v in res.video_index] if hasattr(dataset, "video_path") else None
    atomic_torch_save({
        "video_index": res.video_index, "logits": res.logits, "labels": res.labels, "num_views": res.num_views,
        "class_names": class_names, "video_paths": video_paths, "unreadable": summary["unreadable"],
        "confusion": torch.from_numpy(m["confusion"]), "metrics": dict(summary),
    }, summary["results_path"])
    atomic_write_text(summary["metrics_path"], json.dumps(finite_or_null(summary), indent=2, allow_nan=False) + "\n")
    atomic_write_text(os.path.join(cfg.OUTPUT_DIR, "unreadable_videos.txt"),
                      "".join(f"{p}\t{r}\n" for _, p, r in out["unreadable"]))
    if m["num_videos"]:
        save_confusion_png(m["confusion"], class_names, os.path.join(cfg.OUTPUT_DIR, "confusion_matrix.png"),
                           f"top-1 {m['top1_acc']:.2f} % over {m['num_videos']} videos")


def _log_test(cfg: CfgNode, summary: TestSummary) -> None:
    s = summary
    lu.log_json_stats({"split": "test_final", "top1_acc": s["top1_acc"], "top5_acc": s["top5_acc"],
                       "mean_class_acc": s["mean_class_acc"], "num_videos": s["num_videos"],
                       "num_unreadable": s["num_unreadable"], "views": s["views"]})
    unreadable_file = os.path.join(cfg.OUTPUT_DIR, "unreadable_videos.txt")
    extra = f"; {s['num_unreadable']} unreadable videos excluded (see {unreadable_file})" if s["num_unreadable"] else ""
    logger.info("test done: top-1 %.2f %%, top-5 %.2f %%, mean class %.2f %% over %d videos x %d views (%s)%s",
                s["top1_acc"], s["top5_acc"], s["mean_class_acc"], s["num_videos"], s["views"],
                s["checkpoint"] or "initial weights", extra)
    _log_per_class(s["per_class"], s["metrics_path"])


# Up to this many classes the log lists every class; above, the lowest ones (all are in test_metrics.json).
_LOGGED_CLASSES = 30


def _log_per_class(per_class: dict[str, dict[str, Any]], metrics_path: str) -> None:
    rows = list(per_class.items())
    if len(rows) > _LOGGED_CLASSES:
        rows = sorted(rows, key=lambda kv: kv[1]["top1_acc"])[:10]
        logger.info("per-class top-1, the 10 lowest of %d classes (all in %s):", len(per_class), metrics_path)
    else:
        logger.info("per-class top-1:")
    width = max((len(name) for name, _ in rows), default=0)
    for name, c in rows:
        n = c["num_videos"]
        logger.info("  %s  %6.2f %% of %d video%s", name.ljust(width), c["top1_acc"], n, "" if n == 1 else "s")


def _remove_earlier_metrics(cfg: CfgNode) -> None:
    """Remove the metrics of an earlier test in OUTPUT_DIR (rank 0): they would pass for this test's result."""
    path = os.path.join(cfg.OUTPUT_DIR, "test_metrics.json")
    if du.is_master() and os.path.isfile(path):
        os.remove(path)
        logger.info("removed %s: it held an earlier test's result", path)


def test(cfg: CfgNode, model: Optional[nn.Module] = None) -> TestSummary:
    """Multi-view test of the configured weights; writes the results under OUTPUT_DIR (rank 0) and returns
    {"top1_acc", "top5_acc", "mean_class_acc", "num_videos", "num_unreadable", "unreadable", "checkpoint",
    "views", "results_path", ...} (accuracies in %)."""
    start_run(cfg, training=False)
    seed_everything(cfg.RNG_SEED)
    if model is None:
        model = build_model(cfg)
    initial_clip = None
    if cfg.TEST.PATCHING_MODEL and not cfg.TEST.CLIP_ORI_PATH:
        initial_clip = {k: v.detach().cpu().clone() for k, v in model.get_submodule("model").state_dict().items()}
    info = load_test_weights(cfg, model, initial_clip)
    loader = build_loader(cfg, "test")
    index_file = cfg.DATA.INDEX_LABEL_MAPPING_FILE
    class_names = read_class_names(index_file) if index_file else None  # the test list's classes
    t0 = time.perf_counter()
    try:
        out = evaluate(cfg, model, loader, split="test", desc="test",
                       weights=f"the weights of {info['file']}" if info["file"] else "the initial weights")
    except NonFiniteLogitsError:
        _remove_earlier_metrics(cfg)
        raise
    summary = _summary(cfg, out, info, time.perf_counter() - t0, class_names)
    if du.is_master():
        _write_test_outputs(cfg, out, summary, getattr(loader, "dataset", None), class_names)
        if summary["num_videos"]:
            _log_test(cfg, summary)
    du.barrier()
    if not summary["num_videos"]:
        raise NoVideoEvaluatedError(
            f"the test evaluated no video: all {summary['num_unreadable']} videos of "
            f"{getattr(loader.dataset, 'source', 'the test list')} are unreadable (reasons in "
            f"{os.path.join(cfg.OUTPUT_DIR, 'unreadable_videos.txt')}); no accuracy was computed")
    return summary
