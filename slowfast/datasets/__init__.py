"""Video datasets: CSV lists of videos decoded with PyAV, sampled, transformed and batched as dicts.

`build_dataset(cfg, split)` and `build_loader(cfg, split, shuffle=None)` are the entry points; batches
are `{"frames": [B, 3, T, S, S], "label": [B], "video_index": [B], "view_index": [B], "ok": [B]}`.

Names are imported lazily so that the dataset tools (`prepare`, `synthetic`) start without torch.
"""

import importlib

_EXPORTS = {
    "DatasetFileError": "csv_dataset",
    "VideoCSVDataset": "csv_dataset",
    "read_class_names": "csv_dataset",
    "read_video_csv": "csv_dataset",
    "VideoDecodeError": "decoder",
    "read_clip": "decoder",
    "DATASET_NAMES": "loader",
    "ContiguousSplitSampler": "loader",
    "build_dataset": "loader",
    "build_loader": "loader",
    "reseed_for_epoch": "loader",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name):
    if name in _EXPORTS:
        return getattr(importlib.import_module(f"{__name__}.{_EXPORTS[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
