"""PyAV decoding of the frames a clip needs, and nothing more.

`read_clip(path, choose_indices)` opens the file, reads the stream's frame rate and frame count, asks
`choose_indices(num_frames, fps)` which absolute frame numbers it wants (see `sampling.py`), and decodes
them, converting only the wanted frames to RGB. A frame's number is derived from its timestamp
(`round((pts - start) * fps)`), so a variable-frame-rate file is sampled in time; a wanted number with no
frame of its own gets the frame showing at that time, and numbers past the end of what could be decoded get
the last decoded frame.

How much is decoded depends on where the file's keyframes are (`plan_runs`). A decoder can only start at
a keyframe, so reading frame 100 of a file with keyframes every 250 frames decodes frames 0..100. The
wanted frames are split into *runs*: a run starts with a seek to the keyframe before its first frame and
decodes forward to its last frame; a new run starts whenever the keyframe before the next wanted frame lies
beyond the frames the current run has decoded, because seeking there decodes fewer frames than going on.
On a file with long keyframe intervals (x264's default of 250, the usual Kinetics file) that is one run, the
forward pass over the clip's window; on a re-encoded copy with a keyframe every few frames
(`tools/prepare_dataset.py reencode`) it is one short run per wanted frame. The keyframe positions come
from the container's index, which the demuxer reads when it opens the file (MP4 and MOV keyframe tables,
AVI and Matroska indices): nothing is decoded to learn them. Files without an index, and streams with
B-frames (whose decode order differs from display order), are read in one run. Both strategies return the
same frames for the same indices.

`read_clip_as_original(path, choose_indices)` is the path of the original code's sampling
(`DATA.ORIGINAL_SAMPLING`): `choose_indices(timing)` gets the stream's timestamps facts (`StreamTiming`), and a
stream without a duration (Matroska, WebM) is decoded whole, as the original did, so that its frame count is
the number of frames decoded and the indices are positions in decoding order.

Every failure (missing file, undecodable bytes, no video stream, no frames) is raised as
`VideoDecodeError` carrying the path and a one-line reason, which the dataset reports.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from fractions import Fraction

import av
import numpy as np
from av.video.reformatter import VideoReformatter

from slowfast.datasets.sampling import StreamTiming
from slowfast.errors import UserError

__all__ = ["VideoDecodeError", "VideoInfo", "STRATEGIES", "probe", "keyframe_before", "plan_runs", "decoding_runs",
           "decode_indices", "read_clip", "read_clip_as_original"]

# "auto": runs planned from the keyframe index; "forward": always one run (the whole window); "seek": one
# run per wanted frame, whatever the keyframe spacing (for measurements and tests).
STRATEGIES = ("auto", "forward", "seek")


class VideoDecodeError(UserError, RuntimeError):
    """A video that cannot be read; `path` and `reason` are kept for the failure report."""

    def __init__(self, path: str, reason: str):
        super().__init__(f"cannot decode video {path}: {reason}")
        self.path = path
        self.reason = reason


@dataclass(frozen=True)
class VideoInfo:
    """What sampling needs to know about a stream. `num_frames` is from the container's metadata."""

    num_frames: int
    fps: float
    width: int
    height: int


def _stream_fps(stream) -> float:
    for rate in (stream.average_rate, stream.guessed_rate, stream.base_rate):
        if rate is not None and float(rate) > 0:
            return float(rate)
    return 0.0


def probe(container, stream) -> VideoInfo | None:
    """Frame rate and frame count from the metadata; None when the count is unknown (decode to count)."""
    fps = _stream_fps(stream)
    if fps <= 0:
        raise ValueError("the video stream has no frame rate")
    n = int(stream.frames or 0)
    if n <= 0 and stream.duration is not None and stream.time_base is not None:
        n = int(math.floor(float(stream.duration * stream.time_base) * fps + 0.5))
    if n <= 0 and container.duration is not None:
        n = int(math.floor(container.duration / av.time_base * fps + 0.5))
    if n <= 0:
        return None
    return VideoInfo(num_frames=n, fps=fps, width=stream.codec_context.width, height=stream.codec_context.height)


def _count_frames(container, stream) -> int:
    count = sum(1 for _ in container.decode(stream))
    container.seek(0, stream=stream, backward=True, any_frame=False)
    return count


class _Timeline:
    """Frame numbers <-> stream timestamps for one stream."""

    def __init__(self, stream, fps: float):
        self.tb = stream.time_base or Fraction(1, 1)
        self.t0 = stream.start_time or 0
        self.fps = fps

    def frame_number(self, ts: int) -> int:
        return int(math.floor(float((ts - self.t0) * self.tb) * self.fps + 0.5))

    def timestamp(self, frame: float) -> int:
        return self.t0 + int(math.floor(frame / self.fps / self.tb))


def keyframe_before(stream, timeline: _Timeline, frame: int) -> int | None:
    """Frame number of the last keyframe at or before `frame`, from the container's index; None when the
    file has no index or the index has no keyframe there."""
    entries = stream.index_entries
    if len(entries) == 0:
        return None
    # The middle of the frame's display interval: robust to timestamps rounded to the time base.
    i = entries.search_timestamp(timeline.timestamp(frame + 0.5), backward=True, any_frame=False)
    if i < 0:
        return None
    return timeline.frame_number(entries[i].timestamp)


def plan_runs(wanted: Sequence[int], keyframe: Callable[[int], int | None]) -> list[list[int]]:
    """Split sorted distinct frame numbers into runs decoded from one seek each (see the module docstring).

    `keyframe(f)` is the frame number of the keyframe at or before `f` (None: unknown). A new run starts
    when that keyframe lies after the last frame of the current run: seeking to it skips the frames between.
    """
    runs: list[list[int]] = []
    for f in wanted:
        k = keyframe(f) if runs else None
        if runs and (k is None or k <= runs[-1][-1]):
            runs[-1].append(f)
        else:
            runs.append([f])
    return runs


class _SeekMissed(Exception):
    """A seek landed after the frame it was meant to reach (an index that does not match the frames)."""


def _frames_from(container, stream, timeline: _Timeline, seek_ts: int | None) -> Iterator[tuple[int, object]]:
    """(frame number, frame) from `seek_ts` (None: from where the demuxer stands) onwards."""
    if seek_ts is not None:
        container.seek(seek_ts, stream=stream, backward=True, any_frame=False)
    counter = 0
    for frame in container.decode(stream):
        if frame.pts is not None:
            yield timeline.frame_number(frame.pts), frame
        elif seek_ts is None:  # no timestamps: count frames, valid only when decoding from the start
            yield counter, frame
        else:
            raise ValueError("frames carry no timestamps; cannot seek")
        counter += 1


def _decode_run(frames: Iterator, run: Sequence[int], to_rgb, picked: dict, first_run: bool):
    """Decode until the last frame of `run`; returns the last frame decoded (None if none) and whether
    the stream ended before the run did."""
    prev = None
    w = 0
    for idx, frame in frames:
        if prev is None and idx > run[0] and not first_run:
            raise _SeekMissed
        while w < len(run) and run[w] <= idx:
            # The wanted time lies before this frame: the previous frame is the one on screen then.
            src = frame if (run[w] == idx or prev is None) else prev
            picked[run[w]] = to_rgb(src)
            w += 1
        if w == len(run):
            return frame, False
        prev = frame
    return prev, True


def decoding_runs(strategy: str, stream, fps: float, wanted: list[int]) -> list[list[int]]:
    """The runs `decode_indices` reads `wanted` (sorted, distinct) in: see the module docstring."""
    timeline = _Timeline(stream, fps)
    if strategy == "forward" or (strategy == "auto" and stream.codec_context.has_b_frames):
        return [wanted]
    if strategy == "seek":
        return [[f] for f in wanted]

    return plan_runs(wanted, lambda f: keyframe_before(stream, timeline, f))


def decode_indices(container, stream, indices: Sequence[int], fps: float, strategy: str = "auto",
                   multi_thread: bool = False) -> np.ndarray:
    """RGB uint8 frames `[len(indices), H, W, 3]` for the absolute frame numbers `indices`.

    `multi_thread` lets FFmpeg decode with several threads when the frames are read in one run (a long
    forward pass); runs of a few frames each are decoded on one thread, since every seek flushes the
    threads' pipeline (measured on an all-intra file: 1.7x slower with threads, and 1.25x slower with
    FFmpeg's default slice threads than with one thread)."""
    if strategy not in STRATEGIES:
        raise ValueError(f"unknown decoding strategy {strategy!r} ({', '.join(STRATEGIES)})")
    wanted = sorted(set(int(i) for i in indices))
    if not wanted:
        raise ValueError("no frame indices requested")
    timeline = _Timeline(stream, fps)
    runs = decoding_runs(strategy, stream, fps, wanted)
    if not stream.codec_context.is_open:
        if multi_thread and len(runs) == 1:
            stream.thread_type = "AUTO"
        else:  # one thread: FFmpeg's default starts a pool of slice threads, which costs more than it saves here
            stream.codec_context.thread_count = 1
    try:
        picked = _decode_runs(container, stream, timeline, runs, wanted)
    except _SeekMissed:  # fall back to the single run, which needs no index
        picked = _decode_runs(container, stream, timeline, [wanted], wanted)
    return np.stack([picked[int(i)] for i in indices])


def _decode_runs(container, stream, timeline: _Timeline, runs: list[list[int]], wanted: list[int]) -> dict:
    # One reformatter per clip reuses its colour-conversion context across frames (5x faster than
    # frame.to_ndarray(format="rgb24"), which sets one up per frame).
    rgb = VideoReformatter()

    def to_rgb(frame) -> np.ndarray:
        return rgb.reformat(frame, format="rgb24").to_ndarray()

    picked: dict[int, np.ndarray] = {}
    last = None
    for n, run in enumerate(runs):
        # Seek by timestamp to the keyframe at or before the run's first frame (none for frame 0 at the start).
        seek_ts = timeline.timestamp(run[0]) if (n > 0 or run[0] > 0) else None
        frame, ended = _decode_run(_frames_from(container, stream, timeline, seek_ts), run, to_rgb, picked, n == 0)
        last = frame if frame is not None else last
        if ended:
            break
    if last is None and not picked:
        raise ValueError("no frames could be decoded")
    missing = [i for i in wanted if i not in picked]
    if missing:  # ran out of frames: repeat the last one
        tail = to_rgb(last) if last is not None else picked[max(picked)]
        for i in missing:
            picked[i] = tail
    return picked


@contextmanager
def _open_video(path: str):
    """(container, its first video stream), closed afterwards; every failure is a VideoDecodeError."""
    try:
        container = av.open(path)
    except Exception as e:  # FileNotFoundError, InvalidDataError, PermissionError, ...
        raise VideoDecodeError(path, _reason(e)) from None
    try:
        if not container.streams.video:
            raise VideoDecodeError(path, "no video stream")
        yield container, container.streams.video[0]
    except VideoDecodeError:
        raise
    except Exception as e:
        raise VideoDecodeError(path, _reason(e)) from None
    finally:
        container.close()


def read_clip(
    path: str,
    choose_indices: Callable[[int, float], Sequence[int]],
    multi_thread: bool = True,
    strategy: str = "auto",
) -> tuple[np.ndarray, VideoInfo]:
    """Open `path`, pick the indices from its metadata and decode them; raises VideoDecodeError."""
    with _open_video(path) as (container, stream):
        info = probe(container, stream)
        if info is None:
            if multi_thread:
                stream.thread_type = "AUTO"
            n = _count_frames(container, stream)
            if n == 0:
                raise VideoDecodeError(path, "the video has no frames")
            info = VideoInfo(n, _stream_fps(stream), stream.codec_context.width, stream.codec_context.height)
        indices = list(choose_indices(info.num_frames, info.fps))
        return decode_indices(container, stream, indices, info.fps, strategy, multi_thread), info


def _stream_rate(stream) -> Fraction:
    for rate in (stream.average_rate, stream.guessed_rate, stream.base_rate):
        if rate is not None and rate > 0:
            return Fraction(rate)
    raise ValueError("the video stream has no frame rate")


def _whole_video(container, stream) -> list:
    """Every frame in timestamp order, as the original's whole-video decode kept them: frames before
    timestamp 0 dropped, one frame per timestamp (the later one)."""
    by_pts: dict[int, object] = {}
    untimed = []
    for frame in container.decode(stream):
        if frame.pts is None:
            untimed.append(frame)
        elif frame.pts >= 0:
            by_pts[frame.pts] = frame
    return [by_pts[p] for p in sorted(by_pts)] if by_pts else untimed


def read_clip_as_original(
    path: str,
    choose_indices: Callable[[StreamTiming], Sequence[int]],
    multi_thread: bool = True,
    strategy: str = "auto",
) -> tuple[np.ndarray, VideoInfo]:
    """`read_clip` for the original code's sampling (`DATA.ORIGINAL_SAMPLING`): `choose_indices` gets the
    stream's `StreamTiming`. A stream without a duration (Matroska, WebM) is decoded whole, as the original
    did, and the indices are positions in that decoded list (its length is the frame count `choose_indices`
    sees); otherwise they are frame numbers, decoded as `read_clip` does."""
    with _open_video(path) as (container, stream):
        rate = _stream_rate(stream)
        size = stream.codec_context.width, stream.codec_context.height
        if stream.duration is None:
            if multi_thread:
                stream.thread_type = "AUTO"
            frames = _whole_video(container, stream)
            if not frames:
                raise VideoDecodeError(path, "the video has no frames")
            timing = StreamTiming(len(frames), rate)
            rgb = VideoReformatter()
            picked = [rgb.reformat(frames[i], format="rgb24").to_ndarray() for i in choose_indices(timing)]
            return np.stack(picked), VideoInfo(len(frames), float(rate), *size)
        info = probe(container, stream)
        if info is None:
            raise VideoDecodeError(path, "the stream declares no frame count")
        timing = StreamTiming(info.num_frames, rate, int(stream.duration), stream.time_base or Fraction(1, 1),
                              stream.start_time or 0)
        indices = list(choose_indices(timing))
        return decode_indices(container, stream, indices, info.fps, strategy, multi_thread), info


def _reason(e: BaseException) -> str:
    text = str(e).strip() or type(e).__name__
    return f"{type(e).__name__}: {text}" if type(e).__name__ not in text else text
