"""PyAV decoding of the frames a clip needs, and nothing more.

`read_clip(path, choose_indices)` opens the file, reads the stream's frame rate and frame count, asks
`choose_indices(num_frames, fps)` which absolute frame numbers it wants (see `sampling.py`), seeks to the
keyframe at or before the first of them, and decodes forward until the last one, converting only the
wanted frames to RGB. A frame's number is derived from its timestamp (`round((pts - start) * fps)`), so a
variable-frame-rate file is sampled in time; a wanted number with no frame of its own gets the frame
showing at that time, and numbers past the end of what could be decoded get the last decoded frame.

Every failure (missing file, undecodable bytes, no video stream, no frames) is raised as
`VideoDecodeError` carrying the path and a one-line reason, which the dataset logs and acts on.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction
from collections.abc import Callable, Sequence

import av
import numpy as np
from av.video.reformatter import VideoReformatter

from slowfast.errors import UserError

__all__ = ["VideoDecodeError", "VideoInfo", "probe", "decode_indices", "read_clip"]


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


def decode_indices(container, stream, indices: Sequence[int], fps: float) -> np.ndarray:
    """RGB uint8 frames `[len(indices), H, W, 3]` for the absolute frame numbers `indices`."""
    wanted = sorted(set(int(i) for i in indices))
    if not wanted:
        raise ValueError("no frame indices requested")
    tb = stream.time_base or Fraction(1, 1)
    t0 = stream.start_time or 0
    if wanted[0] > 0:
        # Seek by timestamp to the keyframe at or before the first wanted frame (backward=True).
        target = t0 + int(math.floor(wanted[0] / fps / tb))
        container.seek(target, stream=stream, backward=True, any_frame=False)
    # One reformatter per clip reuses its colour-conversion context across frames (5x faster than
    # frame.to_ndarray(format="rgb24"), which sets one up per frame).
    rgb = VideoReformatter()

    def to_rgb(frame) -> np.ndarray:
        return rgb.reformat(frame, format="rgb24").to_ndarray()

    picked: dict[int, np.ndarray] = {}
    prev = None
    w = 0  # position in `wanted`
    counter = 0
    for frame in container.decode(stream):
        if frame.pts is not None:
            idx = int(math.floor(float((frame.pts - t0) * tb) * fps + 0.5))
        elif wanted[0] == 0:  # no timestamps: count frames, valid only when decoding from the start
            idx = counter
        else:
            raise ValueError("frames carry no timestamps; cannot seek")
        counter += 1
        while w < len(wanted) and wanted[w] <= idx:
            # The wanted time lies before this frame: the previous frame is the one on screen then.
            src = frame if (wanted[w] == idx or prev is None) else prev
            picked[wanted[w]] = to_rgb(src)
            w += 1
        if w == len(wanted):
            break
        prev = frame
    if prev is None and not picked:
        raise ValueError("no frames could be decoded")
    if w < len(wanted):  # ran out of frames: repeat the last one
        last = to_rgb(prev) if prev is not None else picked[max(picked)]
        for i in wanted[w:]:
            picked[i] = last
    return np.stack([picked[int(i)] for i in indices])


def read_clip(
    path: str,
    choose_indices: Callable[[int, float], Sequence[int]],
    multi_thread: bool = True,
) -> tuple[np.ndarray, VideoInfo]:
    """Open `path`, pick the indices from its metadata and decode them; raises VideoDecodeError."""
    try:
        container = av.open(path)
    except Exception as e:  # FileNotFoundError, InvalidDataError, PermissionError, ...
        raise VideoDecodeError(path, _reason(e)) from None
    try:
        if not container.streams.video:
            raise VideoDecodeError(path, "no video stream")
        stream = container.streams.video[0]
        if multi_thread:
            stream.thread_type = "AUTO"
        info = probe(container, stream)
        if info is None:
            n = _count_frames(container, stream)
            if n == 0:
                raise VideoDecodeError(path, "the video has no frames")
            info = VideoInfo(n, _stream_fps(stream), stream.codec_context.width, stream.codec_context.height)
        indices = list(choose_indices(info.num_frames, info.fps))
        frames = decode_indices(container, stream, indices, info.fps)
        return frames, info
    except VideoDecodeError:
        raise
    except Exception as e:
        raise VideoDecodeError(path, _reason(e)) from None
    finally:
        container.close()


def _reason(e: BaseException) -> str:
    text = str(e).strip() or type(e).__name__
    return f"{type(e).__name__}: {text}" if type(e).__name__ not in text else text
