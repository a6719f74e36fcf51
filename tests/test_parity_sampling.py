"""`DATA.ORIGINAL_SAMPLING` gives the original code's frames on AVI, MP4, Matroska and WebM files.

Each file is written here; frame k shows its own number (two grey blocks, k % 16 and k // 16), so a decoded
frame tells which source frame it is. The expected frames come from `original_reference`, a slow
re-statement of what the original's pyav path does with a file, one step after the other: it decodes every
frame with its raw timestamp, turns the frame window into timestamps with the original's float arithmetic,
keeps the frames inside the window plus the next one (or every frame, for a stream without a duration),
places the clip (offset sampling, as its shipped config) and subsamples with a float32 linspace. It reads
real timestamps, where the implementation computes them from the stream's metadata.
"""

import functools
import math
import random
from fractions import Fraction

import av
import numpy as np
import pytest
import torch

from slowfast.datasets import sampling
from slowfast.datasets.clips import decode_clips
from slowfast.datasets.sampling import ClipSampler, StreamTiming

W, H = 64, 32
T, TAU, TARGET_FPS = 8, 16, 30


def write_numbered(path, fmt, codec, num_frames, rate=30, first_pts=0):
    """Frame k: left half grey 20 + 13 * (k % 16), right half 20 + 13 * (k // 16); timestamps from `first_pts`
    in steps of one frame (time base 1 / rate)."""
    with av.open(str(path), "w", format=fmt) as out:
        stream = out.add_stream(codec, rate=rate)
        stream.width, stream.height, stream.pix_fmt = W, H, "yuv420p"
        if codec == "mpeg4":
            stream.codec_context.options = {"qscale": "2"}
        for k in range(num_frames):
            img = np.empty((H, W, 3), np.uint8)
            img[:, : W // 2] = 20 + 13 * (k % 16)
            img[:, W // 2:] = 20 + 13 * (k // 16)
            frame = av.VideoFrame.from_ndarray(img, format="rgb24")
            frame.pts, frame.time_base = first_pts + k, Fraction(1) / Fraction(rate)
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    return str(path)


def frame_number(img):
    low = int(round((img[4:-4, 4: W // 2 - 4].astype(float).mean() - 20) / 13))
    high = int(round((img[4:-4, W // 2 + 4: -4].astype(float).mean() - 20) / 13))
    return 16 * high + low


@functools.cache
def every_frame(path):
    """(average rate, declared frame count, stream duration, [(raw timestamp, frame number)] of every frame)."""
    with av.open(path) as container:
        stream = container.streams.video[0]
        decoded = [(f.pts, frame_number(f.to_ndarray(format="rgb24"))) for f in container.decode(stream)]
        return float(stream.average_rate), stream.frames, stream.duration, decoded


def original_reference(path, clip_idx, num_clips, rng=None, num_frames=T, rate_=TAU):
    """The source frame numbers the original's pyav decoding (with its shipped config) gives for one clip."""
    fps, frames_length, duration, decoded = every_frame(path)
    decode_all_video = duration is None
    if decode_all_video:
        # start 0 and end infinity: every frame from timestamp 0 on, one per timestamp
        kept = [n for _, n in sorted({pts: n for pts, n in decoded if pts >= 0}.items())]
    else:
        clip_size = max(1.0, float(np.ceil(rate_ * (num_frames - 1) / TARGET_FPS * fps)))
        delta = max(frames_length - clip_size, 0)
        start_idx = rng.uniform(0, delta) if clip_idx == -1 else delta * clip_idx / num_clips
        end_idx = start_idx + clip_size - 1
        timebase = duration / frames_length
        video_start_pts, video_end_pts = int(start_idx * timebase), int(end_idx * timebase)
        kept = []
        for pts, n in sorted(decoded):
            if pts < video_start_pts:
                continue
            kept.append(n)
            if pts > video_end_pts:  # the first frame past the window is kept, then decoding stops
                break
    clip_size = max(1.0, rate_ * num_frames / TARGET_FPS * fps)
    # the second stage sees the clip index only when the whole video was decoded
    idx, clips = (clip_idx, num_clips) if decode_all_video else (0, 1)
    max_start = max(len(kept) - clip_size, 0)
    if idx == -1:
        start = rng.uniform(0, max_start)
    elif clips == 1:
        start = math.floor(max_start / 2)
    else:
        start = idx * math.floor(max_start / (clips - 1))
    index = torch.clamp(torch.linspace(start, start + clip_size - 1, num_frames), 0, len(kept) - 1).long()
    return [kept[i] for i in index]


def ours(path, mode, num_views=1, rng=None, num_frames=T, rate_=TAU):
    sampler = ClipSampler(num_frames=num_frames, sampling_rate=rate_, target_fps=TARGET_FPS, mode=mode,
                          num_views=num_views, original=True)
    return [[frame_number(f) for f in clip] for clip in decode_clips(path, sampler, rng=rng)]


def _check_views_and_random_clips(path, num_views=3, num_random=4, **kw):
    views = ours(path, "views", num_views, **kw)
    assert views == [original_reference(path, v, num_views, **kw) for v in range(num_views)]
    for seed in range(num_random):
        got = ours(path, "random", rng=random.Random(seed), **kw)[0]
        assert got == original_reference(path, -1, 1, rng=random.Random(seed), **kw), seed
    return views


@pytest.mark.parametrize("rate", [30, 25, Fraction(30000, 1001)])
def test_avi_views_and_random_clips_are_the_originals(tmp_path, rate):
    path = write_numbered(tmp_path / "v.avi", "avi", "mpeg4", 200, rate)
    _check_views_and_random_clips(path)


def test_avi_window_starts_on_the_floor_of_the_start(tmp_path):
    # 200 frames at 30 fps: window 112 frames, view 1 of 3 starts at 88 / 3 = 29.33: the original's first
    # frame is 29 on AVI (a time base of one frame), where the finer MP4 time base gives 30.
    avi = write_numbered(tmp_path / "v.avi", "avi", "mpeg4", 200)
    mp4 = write_numbered(tmp_path / "v.mp4", "mp4", "mpeg4", 200)
    assert ours(avi, "views", 3)[1][0] == 29
    assert ours(mp4, "views", 3)[1][0] == 30
    assert ours(mp4, "views", 3) == [original_reference(mp4, v, 3) for v in range(3)]


@pytest.mark.parametrize("fmt, codec, name", [("matroska", "mpeg4", "v.mkv"), ("webm", "libvpx", "v.webm")])
def test_streams_without_a_duration_are_decoded_whole_and_offset_sampled(tmp_path, fmt, codec, name):
    path = write_numbered(tmp_path / name, fmt, codec, 160)
    with av.open(path) as c:
        assert c.streams.video[0].duration is None  # the case under test
    views = _check_views_and_random_clips(path, num_random=2)
    # 160 frames, span 128: offset views start at 0, 16 and 32, and the last one ends on the last frame.
    assert [v[0] for v in views] == [0, 16, 32] and views[2][-1] == 159


def test_webm_at_the_ssv2_rate_gives_the_originals_frames(tmp_path):
    # Something-Something v2: 12 fps WebM of a few seconds; the clip spans 51.2 frames.
    path = write_numbered(tmp_path / "ssv2.webm", "webm", "libvpx", 80, rate=12)
    views = _check_views_and_random_clips(path)
    assert [v[0] for v in views] == [0, 14, 28]  # offset views: floor(28.8 / 2) apart
    short = write_numbered(tmp_path / "short.webm", "webm", "libvpx", 30, rate=12)
    assert _check_views_and_random_clips(short, num_random=1)[0][-1] == 29  # shorter than a clip: clamped


def test_stream_starting_at_a_later_timestamp_shifts_the_window_as_in_the_original(tmp_path):
    shifted = write_numbered(tmp_path / "late.mp4", "mp4", "mpeg4", 200, first_pts=10)
    plain = write_numbered(tmp_path / "plain.mp4", "mp4", "mpeg4", 200)
    with av.open(shifted) as c:
        assert c.streams.video[0].start_time > 0  # the file really starts later
    views = _check_views_and_random_clips(shifted)
    # The original compared raw timestamps with a window counted from 0: its window ends about 10 frames
    # early, so fewer frames are decoded and more indices clamp to the last one.
    assert views != ours(plain, "views", 3)
    assert views[0][-2:] == [102, 102]
    # Our own sampling counts from the stream's first timestamp: both files give the same frames.
    default = ClipSampler(num_frames=T, sampling_rate=TAU, mode="views", num_views=3)
    assert ([[frame_number(f) for f in c] for c in decode_clips(shifted, default)]
            == [[frame_number(f) for f in c] for c in decode_clips(plain, default)])


def test_window_arithmetic_follows_the_timestamps():
    # MP4 at 30 fps: 512 ticks per frame. A start just past frame 5 truncates to frame 5's timestamp.
    mp4 = StreamTiming(300, Fraction(30), duration=300 * 512, time_base=Fraction(1, 15360))
    assert sampling.original_window_frames(5.001, 116.001, 300, mp4) == (5, 117)
    assert sampling.original_window_frames(5.5, 116.5, 300, mp4) == (6, 117)
    avi = StreamTiming(300, Fraction(30), duration=300, time_base=Fraction(1, 30))
    assert sampling.original_window_frames(5.5, 116.5, 300, avi) == (5, 117)
    late = StreamTiming(300, Fraction(30), duration=300 * 512, time_base=Fraction(1, 15360), start_time=10 * 512)
    assert sampling.original_window_frames(0.0, 111.0, 300, late) == (0, 102)
    assert sampling.original_window_frames(250.0, 299.0, 300, mp4) == (250, 299)  # clipped to the video


def test_clip_sizes_keep_the_originals_order_of_operations():
    # 16 * 7 / 30 * 29.97...: the window is rounded up from the float the original computed.
    window, span = sampling.original_clip_sizes(30000 / 1001, 8, 16, 30)
    assert window == math.ceil(16 * 7 / 30 * (30000 / 1001)) == 112
    assert span == 16 * 8 / 30 * (30000 / 1001)
