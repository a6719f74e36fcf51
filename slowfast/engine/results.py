"""What the training and test entry points return: typed dictionaries (they are also written as JSON)."""

from __future__ import annotations

from typing import Any, Optional, TypedDict

from torch import nn

from slowfast.engine.meters import VideoResults

__all__ = ["EvalOutput", "LoadedWeights", "TestSummary", "TrainResult"]


class EvalOutput(TypedDict):
    """`evaluate`: per-video results, the metrics, and (video index, path, reason) of each unreadable video."""

    results: VideoResults
    metrics: dict[str, Any]
    unreadable: list[tuple[int, str, str]]


class LoadedWeights(TypedDict):
    """`load_test_weights`: the file tested (None: the initial weights), how it was chosen, what did not fit."""

    file: Optional[str]
    how: str
    missing: list[str]
    unexpected: list[str]
    patched: bool


class TestSummary(TypedDict):
    """`test`: accuracies in %, counts, the weights tested and where the results were written."""

    top1_acc: float
    top5_acc: float
    mean_class_acc: float
    num_videos: int
    per_class: dict[str, dict[str, Any]]  # class name -> {"top1_acc": %, "num_videos": n}, classes with videos
    num_unreadable: int
    unreadable: list[str]
    checkpoint: Optional[str]
    checkpoint_source: str
    patched: bool
    views: int
    ensemble_method: str
    seconds: float
    results_path: str
    metrics_path: str


class TrainResult(TypedDict):
    """`train`: one record per epoch, the best validation accuracies, the newest checkpoint, the model."""

    epochs: list[dict[str, Any]]
    best_val_top1: float
    best_val_top5: float
    last_checkpoint: Optional[str]
    seconds: float
    model: nn.Module
