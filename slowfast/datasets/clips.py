"""One video -> its clip tensors: the sampler picks frames, the decoder reads them, the transform crops.

    from slowfast.datasets import build_sampler, build_transform, load_clip
    clips = load_clip("v.mp4", build_sampler(cfg, "test"), build_transform(cfg, "test"))  # [V*C, 3, T, S, S]

`load_clip` is the whole per-video path of the data pipeline: the dataset calls it for every item and
`slowfast.inference.VideoClassifier` calls it (through the dataset) for your own videos, so both see the
test loop's exact preprocessing. A video is a path or frames already decoded (`[N, H, W, 3]` uint8 with
their frame rate). All clips of a video come from one decoding pass.
"""

from __future__ import annotations

import random
from collections.abc import Sequence

import numpy as np
import torch

from slowfast.datasets.decoder import read_clip, read_clip_as_original
from slowfast.datasets.sampling import ClipSampler
from slowfast.datasets.transforms import ClipTransform

__all__ = ["decode_clips", "load_clip"]


def decode_clips(
    video: str | np.ndarray | torch.Tensor,
    sampler: ClipSampler,
    rng: random.Random | None = None,
    fps: float | None = None,
    multi_thread: bool = True,
    strategy: str = "auto",
) -> list[np.ndarray]:
    """The frames `[T, H, W, 3]` of each of the sampler's clips of `video` (a path, or decoded frames at
    `fps`, by default the sampler's target rate); raises `VideoDecodeError` for an unreadable path."""
    def choose(num_video_frames: int, video_fps: float) -> Sequence[int]:
        return sampler.video_indices(num_video_frames, video_fps, rng)

    if isinstance(video, (np.ndarray, torch.Tensor)):
        if video.ndim != 4 or video.shape[-1] != 3 or video.shape[0] == 0:
            raise ValueError(f"decoded frames must be [N, H, W, 3] with N >= 1, got {tuple(video.shape)}")
        frames = video[list(choose(int(video.shape[0]), float(fps or sampler.target_fps)))]
    elif sampler.original:  # the original's arithmetic needs the stream's timestamps (and a whole-video decode)
        frames, _ = read_clip_as_original(
            video, lambda timing: sampler.video_indices(timing.num_frames, timing.fps, rng, timing), multi_thread,
            strategy)
    else:
        frames, _ = read_clip(video, choose, multi_thread, strategy)
    t = sampler.num_frames
    return [frames[v * t : (v + 1) * t] for v in range(sampler.clips_per_video)]


def load_clip(
    video: str | np.ndarray | torch.Tensor,
    sampler: ClipSampler,
    transform: ClipTransform,
    rng: random.Random | None = None,
    fps: float | None = None,
    multi_thread: bool = True,
) -> torch.Tensor:
    """Every clip of `video` ready for the model: `[clips * crops, 3, T, S, S]`, ordered clip-major
    (item `v * crops + c` is temporal clip v, spatial crop c), as the test loop reads them."""
    rng = rng if rng is not None else random.Random()
    clips = decode_clips(video, sampler, rng, fps, multi_thread)
    return torch.stack([transform(frames, c, rng) for frames in clips for c in range(transform.num_crops)])
