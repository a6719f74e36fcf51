"""Temporal sampling as pure functions: which source frames make up a clip.

A clip is `num_frames` frames taken `sampling_rate` frames apart *at `target_fps`*. A video stored at
another frame rate is sampled in time, not in frames: the step in source frames is
`sampling_rate * video_fps / target_fps`. Indices are absolute frame numbers of the source video and are
clamped to its last frame, so a video shorter than a clip repeats its last frame.

Two families live here:

* the default, correct sampling: the clip spans exactly `(num_frames - 1)` steps; training draws a
  random start, validation takes the centre clip, and the test views are spaced evenly from the first
  frame to the last (the first view starts at frame 0, the last one ends on the last frame);
* `original_pyav_indices`, which reproduces the original code's pyav path for parity
  (`DATA.ORIGINAL_SAMPLING True`): the decoded window is `ceil(tau*(T-1)*fps/30)` frames but it is
  subsampled as if it were `tau*T*fps/30` long, so the stride is ~18.1 at 30 fps, the last index is clamped,
  and the test views start at 0, 1/V, 2/V ... of the maximum start and never reach the end
  (see docs/differences.md).
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass

__all__ = [
    "SAMPLING_MODES",
    "ClipSampler",
    "frame_step",
    "max_clip_start",
    "train_clip_start",
    "centre_clip_start",
    "test_clip_starts",
    "clip_frame_indices",
    "sample_clip_indices",
    "original_pyav_indices",
]


def frame_step(sampling_rate: int, video_fps: float, target_fps: float) -> float:
    """Distance between two sampled frames, in source frames (fractional when the frame rates differ)."""
    if video_fps <= 0 or target_fps <= 0:
        raise ValueError(f"frame rates must be positive (video {video_fps}, target {target_fps})")
    return sampling_rate * video_fps / target_fps


def max_clip_start(num_video_frames: int, span: float) -> float:
    """Latest start such that the clip's last frame is still the video's last frame (0 when too short)."""
    return max(num_video_frames - 1 - span, 0.0)


def train_clip_start(num_video_frames: int, span: float, rng: random.Random) -> float:
    """A uniformly random start in [0, max start]."""
    return rng.uniform(0.0, max_clip_start(num_video_frames, span))


def centre_clip_start(num_video_frames: int, span: float) -> float:
    """Start of the clip centred in the video (deterministic validation)."""
    return max_clip_start(num_video_frames, span) / 2.0


def test_clip_starts(num_video_frames: int, span: float, num_views: int) -> list[float]:
    """Starts of `num_views` evenly spaced views: the first at frame 0, the last ending on the last frame.

    A single view is the centre clip.
    """
    if num_views < 1:
        raise ValueError(f"num_views must be >= 1, got {num_views}")
    top = max_clip_start(num_video_frames, span)
    if num_views == 1:
        return [top / 2.0]
    return [top * v / (num_views - 1) for v in range(num_views)]


def clip_frame_indices(start: float, num_frames: int, step: float, num_video_frames: int) -> list[int]:
    """Absolute frame indices `round(start + k*step)`, clamped to the last frame (short videos repeat it)."""
    last = max(num_video_frames - 1, 0)
    # floor(x + 0.5) rather than round(): Python's round() is banker's rounding, which would make
    # the stride alternate on exact halves.
    return [min(int(math.floor(start + k * step + 0.5)), last) for k in range(num_frames)]


def sample_clip_indices(
    mode: str,
    num_video_frames: int,
    video_fps: float,
    num_frames: int,
    sampling_rate: int,
    target_fps: float,
    rng: random.Random | None = None,
    view: int = 0,
    num_views: int = 1,
) -> list[int]:
    """Frame indices of one clip. `mode`: "random" (train), "centre" (val) or "view" (test view `view`)."""
    step = frame_step(sampling_rate, video_fps, target_fps)
    span = (num_frames - 1) * step
    if mode == "random":
        start = train_clip_start(num_video_frames, span, rng if rng is not None else random.Random())
    elif mode == "centre":
        start = centre_clip_start(num_video_frames, span)
    elif mode == "view":
        if not 0 <= view < num_views:
            raise ValueError(f"view {view} out of range for {num_views} views")
        start = test_clip_starts(num_video_frames, span, num_views)[view]
    else:
        raise ValueError(f"unknown sampling mode {mode!r} (random, centre, view)")
    return clip_frame_indices(start, num_frames, step, num_video_frames)


def original_pyav_indices(
    num_video_frames: int,
    video_fps: float,
    num_frames: int,
    sampling_rate: int,
    target_fps: float,
    clip_idx: int,
    num_clips: int,
    rng: random.Random | None = None,
) -> list[int]:
    """The original pyav sampling (for parity): `clip_idx` -1 is a random clip, else test view `clip_idx`.

    The original decodes the source frames whose timestamps fall in [start, start + clip_dec - 1] plus the
    first frame after that window, then picks `linspace(0, clip2 - 1, T)` of them with the index clamped
    to the decoded count; `clip_dec` and `clip2` differ (see the module docstring).
    """
    n = num_video_frames
    clip_dec = max(1, math.ceil(sampling_rate * (num_frames - 1) * video_fps / target_fps))
    clip2 = max(1.0, sampling_rate * num_frames * video_fps / target_fps)
    max_start = max(n - clip_dec, 0)
    if clip_idx == -1:
        start = (rng if rng is not None else random.Random()).uniform(0, max_start)
    else:
        start = max_start * clip_idx / num_clips
    end = start + clip_dec - 1
    first = min(int(math.ceil(start)), max(n - 1, 0))
    last = min(int(math.floor(end)) + 1, max(n - 1, 0))  # the first frame beyond the window
    decoded = last - first + 1
    out = []
    for k in range(num_frames):
        pos = 0.0 if num_frames == 1 else k * (clip2 - 1) / (num_frames - 1)
        out.append(first + min(int(pos), decoded - 1))  # torch .long() truncates
    return out



# "random": one clip at a random start (training); "centre": the centre clip (validation); "views": the
# `num_views` evenly spaced test views.
SAMPLING_MODES = ("random", "centre", "views")


@dataclass(frozen=True)
class ClipSampler:
    """Which frames make up the clip(s) of one video: the temporal half of the clip pipeline.

    `original` selects the original code's pyav sampling (`original_pyav_indices`, for parity).
    """

    num_frames: int = 8
    sampling_rate: int = 8
    target_fps: float = 30.0
    mode: str = "views"
    num_views: int = 1
    original: bool = False

    def __post_init__(self):
        if self.mode not in SAMPLING_MODES:
            raise ValueError(f"unknown sampling mode {self.mode!r} ({', '.join(SAMPLING_MODES)})")
        if self.num_frames < 1 or self.sampling_rate < 1 or self.num_views < 1:
            raise ValueError(f"num_frames, sampling_rate and num_views must be >= 1: {self}")

    @property
    def clips_per_video(self) -> int:
        return self.num_views if self.mode == "views" else 1

    def clip_indices(self, num_video_frames: int, video_fps: float, view: int = 0,
                     rng: random.Random | None = None) -> list[int]:
        """Absolute frame numbers of clip `view` (0 unless mode is "views"); "random" draws from `rng`."""
        if self.original:
            clip_idx = {"random": -1, "views": view, "centre": 0}[self.mode]
            return original_pyav_indices(num_video_frames, video_fps, self.num_frames, self.sampling_rate,
                                         self.target_fps, clip_idx, self.clips_per_video, rng)
        mode = "view" if self.mode == "views" else self.mode
        return sample_clip_indices(mode, num_video_frames, video_fps, self.num_frames, self.sampling_rate,
                                   self.target_fps, rng=rng, view=view, num_views=self.clips_per_video)

    def video_indices(self, num_video_frames: int, video_fps: float, rng: random.Random | None = None) -> list[int]:
        """The frame numbers of every clip of the video, clip after clip (`clips_per_video * num_frames`)."""
        return [i for v in range(self.clips_per_video) for i in self.clip_indices(num_video_frames, video_fps, v, rng)]
