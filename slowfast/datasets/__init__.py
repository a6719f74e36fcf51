"""Video datasets: lists of videos decoded with PyAV, sampled, transformed and batched as dicts.

The pipeline has three parts, each built once from the config: the video list (`read_video_csv`), the clip
sampler (`build_sampler`) and the transform (`build_transform`); `VideoDataset` joins them and
`load_clip(video, sampler, transform)` runs them on one video (a path or decoded frames).
`build_dataset(cfg, split)` and `build_loader(cfg, split, shuffle=None)` are the entry points; batches
are `{"frames": [B, 3, T, S, S], "label": [B], "video_index": [B], "view_index": [B], "ok": [B],
"reason": [B strings, "" where the video was read]}`.

Names are imported lazily so that the dataset tools (`prepare`, `synthetic`) start without torch.
"""

import importlib

_EXPORTS = {
    "DatasetFileError": "video_list",
    "VideoEntry": "video_list",
    "read_video_csv": "video_list",
    "VideoDataset": "dataset",
    "UnreadableVideosError": "dataset",
    "ClipSampler": "sampling",
    "TrainTransform": "transforms",
    "ValTransform": "transforms",
    "TestTransform": "transforms",
    "load_clip": "clips",
    "VideoDecodeError": "decoder",
    "read_clip": "decoder",
    "ContiguousSplitSampler": "loader",
    "build_dataset": "loader",
    "build_sampler": "loader",
    "build_transform": "loader",
    "make_loader": "loader",
    "build_loader": "loader",
    "reseed_for_epoch": "loader",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name):
    if name in _EXPORTS:
        return getattr(importlib.import_module(f"{__name__}.{_EXPORTS[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
