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
  (`DATA.ORIGINAL_SAMPLING True`), arithmetic included: on a stream with a duration (MP4, AVI) the decoded
  window is `ceil(tau*(T-1)*fps/30)` frames but it is subsampled as if it were `tau*T*fps/30` long, so the
  stride is ~18.1 at 30 fps, the last index is clamped, and the test views start at 0, 1/V, 2/V ... of the
  maximum start and never reach the end; the window's first frame follows from the stream's timestamps
  (floor of the start on AVI, ceil on MP4; shifted when the stream does not start at timestamp 0). On a
  stream without a duration (Matroska, WebM) the original decoded the whole video and placed the clip by
  offset sampling, so its test views do reach the end (see docs/differences.md). `StreamTiming` carries what
  that needs from the file; `decoder.read_clip_as_original` fills it.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from fractions import Fraction

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
    "StreamTiming",
    "original_clip_sizes",
    "original_clip_start",
    "original_subsample",
    "original_window_frames",
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


@dataclass(frozen=True)
class StreamTiming:
    """What the original code's pyav path read from a video stream (for `DATA.ORIGINAL_SAMPLING`).

    `num_frames`: the stream's declared frame count, or, for a stream without a duration, the number of
    frames a whole-video decode gave. `duration`: the stream's duration in `time_base` units; None when the
    container gives none (Matroska and WebM), in which case the original decoded the whole video.
    `start_time`: the timestamp of the stream's first frame, which the original's timestamp window ignored.
    Timestamps are assumed evenly spaced (frame k at `start_time + k / (rate * time_base)`).
    """

    num_frames: int
    rate: Fraction
    duration: int | None = None
    time_base: Fraction = Fraction(1, 1)
    start_time: int = 0

    @property
    def fps(self) -> float:
        return float(self.rate)

    @property
    def whole_video(self) -> bool:
        return self.duration is None


def original_clip_sizes(video_fps: float, num_frames: int, sampling_rate: int, target_fps: float) -> tuple[float, float]:
    """(decoded window, subsampled span) in frames, in the original's order of operations: float rounding
    decides an index where a size is an exact integer."""
    window = max(1.0, float(math.ceil(sampling_rate * (num_frames - 1) / target_fps * video_fps)))
    span = max(1.0, sampling_rate * num_frames / target_fps * video_fps)
    return window, span


def original_clip_start(size: int, clip_size: float, clip_idx: int, num_clips: int, rng: random.Random | None,
                        offset: bool) -> float:
    """The original's start of a clip of `clip_size` frames in `size`: random for `clip_idx` -1, else view
    `clip_idx` of `num_clips`; `offset` is its offset sampling (views at multiples of floor(room / (V - 1)), so
    the last one ends on the last frame), which its shipped config turned on."""
    room = max(size - clip_size, 0)
    if clip_idx == -1:
        return (rng if rng is not None else random.Random()).uniform(0, room)
    if offset:
        return math.floor(room / 2) if num_clips == 1 else clip_idx * math.floor(room / (num_clips - 1))
    return room * clip_idx / num_clips


def original_subsample(start: float, clip_size: float, num_frames: int, count: int) -> list[int]:
    """`num_frames` positions spread over `[start, start + clip_size - 1]` of `count` decoded frames, as the
    original computed them: a float32 linspace, clamped to the last frame and truncated."""
    import torch

    index = torch.linspace(start, start + clip_size - 1, num_frames).clamp(0, max(count - 1, 0)).long()
    return [int(i) for i in index]


def original_window_frames(start: float, end: float, num_video_frames: int, timing: StreamTiming | None
                           ) -> tuple[int, int]:
    """First and last frame the original decoded for the frame window [start, end]: the frames whose timestamp
    lies in the window, plus the first frame after it, clipped to the video.

    The window becomes timestamps `int(frame * duration / frames)`, compared with the frames' raw timestamps:
    where a frame lasts one time-base unit (AVI) the first frame is floor(start); where the time base is much
    finer (MP4) it is ceil(start) but for starts just past a frame. A stream whose first timestamp is not 0
    shifts the window (the original ignored the start time). Without `timing` (frames already in memory) the
    time base is taken as infinitely fine.
    """
    top = max(num_video_frames - 1, 0)
    if timing is None:
        first, last = math.ceil(start), math.floor(end) + 1
    else:
        pts_per_frame = timing.duration / timing.num_frames  # as the original computed it (float)
        start_pts, end_pts = int(start * pts_per_frame), int(end * pts_per_frame)
        step = 1 / (timing.rate * timing.time_base)  # exact distance between two frames' timestamps
        first = max(0, math.ceil((start_pts - timing.start_time) / step))
        last = max(math.floor((end_pts - timing.start_time) / step) + 1, first)
    return min(first, top), min(last, top)


def original_pyav_indices(
    num_video_frames: int,
    video_fps: float,
    num_frames: int,
    sampling_rate: int,
    target_fps: float,
    clip_idx: int,
    num_clips: int,
    rng: random.Random | None = None,
    timing: StreamTiming | None = None,
) -> list[int]:
    """The original pyav sampling (for parity): `clip_idx` -1 is a random clip, else test view `clip_idx`.

    A stream with a duration: the original decodes a window of `clip_dec` frames starting at 0, 1/V, 2/V ...
    of the room left (or at random), keeps the frames `original_window_frames` gives, and picks
    `linspace(0, clip2 - 1, T)` of them, clamped to what it decoded; `clip_dec` and `clip2` differ (see the
    module docstring). A stream without one (`timing.whole_video`): the whole video is decoded and the clip
    of `clip2` frames is placed by offset sampling; the indices are then positions in decoding order.
    """
    clip_dec, clip2 = original_clip_sizes(video_fps, num_frames, sampling_rate, target_fps)
    if timing is not None and timing.whole_video:
        start = original_clip_start(num_video_frames, clip2, clip_idx, num_clips, rng, offset=True)
        return original_subsample(start, clip2, num_frames, num_video_frames)
    start = original_clip_start(num_video_frames, clip_dec, clip_idx, num_clips, rng, offset=False)
    first, last = original_window_frames(start, start + clip_dec - 1, num_video_frames, timing)
    decoded = last - first + 1
    # The second stage sees one clip in the decoded window (offset sampling of one view: its centre).
    inner = original_clip_start(decoded, clip2, 0, 1, None, offset=True)
    return [first + i for i in original_subsample(inner, clip2, num_frames, decoded)]


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
                     rng: random.Random | None = None, timing: StreamTiming | None = None) -> list[int]:
        """Absolute frame numbers of clip `view` (0 unless mode is "views"); "random" draws from `rng`.

        `timing` (read by the original's sampling only) describes the stream; see `original_pyav_indices`."""
        if self.original:
            clip_idx = {"random": -1, "views": view, "centre": 0}[self.mode]
            return original_pyav_indices(num_video_frames, video_fps, self.num_frames, self.sampling_rate,
                                         self.target_fps, clip_idx, self.clips_per_video, rng, timing)
        mode = "view" if self.mode == "views" else self.mode
        return sample_clip_indices(mode, num_video_frames, video_fps, self.num_frames, self.sampling_rate,
                                   self.target_fps, rng=rng, view=view, num_views=self.clips_per_video)

    def video_indices(self, num_video_frames: int, video_fps: float, rng: random.Random | None = None,
                      timing: StreamTiming | None = None) -> list[int]:
        """The frame numbers of every clip of the video, clip after clip (`clips_per_video * num_frames`)."""
        return [i for v in range(self.clips_per_video)
                for i in self.clip_indices(num_video_frames, video_fps, v, rng, timing)]
