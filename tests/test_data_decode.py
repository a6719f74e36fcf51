"""PyAV decoding of real mp4 files made here, and the spatial transforms."""

import random
from fractions import Fraction

import av
import numpy as np
import pytest
import torch

from slowfast.datasets import transforms
from slowfast.datasets.decoder import VideoDecodeError, read_clip
from slowfast.datasets.sampling import sample_clip_indices


def _numbered_video(path, num_frames, fps, size=(32, 48), gop=5):
    """Frame k is a flat grey of level 8 + 6k, so a decoded frame tells its own number."""
    h, w = size
    with av.open(str(path), "w", format="mp4") as c:
        s = c.add_stream("libx264", rate=fps)
        s.width, s.height, s.pix_fmt = w, h, "yuv420p"
        s.codec_context.gop_size = gop  # several keyframes, so seeking matters
        for k in range(num_frames):
            img = np.full((h, w, 3), 8 + 6 * k, np.uint8)
            c.mux(s.encode(av.VideoFrame.from_ndarray(img, format="rgb24")))
        c.mux(s.encode(None))
    return str(path)


def _numbers(frames):
    return [int(round((f.astype(float).mean() - 8) / 6)) for f in frames]


def test_decodes_exactly_the_requested_frames_after_seeking(tmp_path):
    path = _numbered_video(tmp_path / "v.mp4", 40, 30)
    frames, info = read_clip(path, lambda n, fps: [12, 17, 23, 38])
    assert info.num_frames == 40 and info.fps == 30
    assert frames.shape == (4, 32, 48, 3) and frames.dtype == np.uint8
    assert _numbers(frames) == [12, 17, 23, 38]


def test_video_at_another_fps_is_sampled_in_time(tmp_path):
    path = _numbered_video(tmp_path / "v15.mp4", 30, 15)
    # 4 frames every 4 frames at 30 fps = every 2 frames at 15 fps; the single view is centred.
    frames, info = read_clip(path, lambda n, fps: sample_clip_indices("centre", n, fps, 4, 4, 30.0))
    assert info.fps == 15
    got = _numbers(frames)
    assert [b - a for a, b in zip(got, got[1:])] == [2, 2, 2]
    assert got[0] == 29 - got[-1] or abs(got[0] - (29 - got[-1])) <= 1


def test_indices_past_the_last_decodable_frame_repeat_it(tmp_path):
    path = _numbered_video(tmp_path / "short.mp4", 6, 30)
    frames, _ = read_clip(path, lambda n, fps: [4, 5, 7, 9])
    assert _numbers(frames) == [4, 5, 5, 5]


def test_garbage_bytes_raise_a_decode_error_naming_the_file(tmp_path):
    path = tmp_path / "garbage.mp4"
    path.write_bytes(bytes(random.Random(0).getrandbits(8) for _ in range(4096)))
    with pytest.raises(VideoDecodeError, match="garbage.mp4"):
        read_clip(str(path), lambda n, fps: [0])


def _ramp_clip(t=4, h=48, w=96):
    """Frames whose red channel grows with x, so crops can be located."""
    x = np.linspace(0, 255, w).astype(np.uint8)
    frames = np.zeros((t, h, w, 3), np.uint8)
    frames[..., 0] = x[None, None, :]
    return frames


def test_train_transform_gives_normalised_float_clip_of_crop_size():
    out = transforms.train_transform(_ramp_clip(), [32, 40], 32, True, [0.5] * 3, [0.25] * 3, random.Random(0))
    assert out.shape == (3, 4, 32, 32) and out.dtype == torch.float32
    assert out[1].abs().max() == pytest.approx(2.0)  # green is 0 -> (0 - 0.5) / 0.25


def test_test_transform_three_crops_are_left_centre_right():
    frames = _ramp_clip()
    crops = [transforms.test_transform(frames, 32, i, 3, [0.0] * 3, [1.0] * 3) for i in range(3)]
    assert all(c.shape == (3, 4, 32, 32) for c in crops)
    means = [c[0].mean().item() for c in crops]
    assert means[0] < means[1] < means[2]
    assert crops[0][0, 0, 0, 0].item() == pytest.approx(0.0, abs=0.02)  # starts at the left edge
    assert crops[2][0, 0, 0, -1].item() == pytest.approx(1.0, abs=0.02)  # ends at the right edge


def test_test_transform_three_crops_of_portrait_video_are_top_centre_bottom():
    frames = _ramp_clip(h=48, w=96).transpose(0, 2, 1, 3).copy()  # red now grows with y
    crops = [transforms.test_transform(frames, 32, i, 3, [0.0] * 3, [1.0] * 3) for i in range(3)]
    means = [c[0].mean().item() for c in crops]
    assert means[0] < means[1] < means[2]


def test_val_transform_is_deterministic_centre_crop():
    frames = _ramp_clip()
    a = transforms.val_transform(frames, [32, 40], 32, [0.0] * 3, [1.0] * 3)
    b = transforms.val_transform(frames, [32, 40], 32, [0.0] * 3, [1.0] * 3)
    assert torch.equal(a, b)
    assert a[0].mean().item() == pytest.approx(0.5, abs=0.03)  # centred on the ramp


def test_dataset_with_original_sampling_reads_the_original_frames(tmp_path):
    from slowfast.datasets import TestTransform, VideoDataset, read_video_csv
    from slowfast.datasets.sampling import ClipSampler

    h, w = 32, 32
    with av.open(str(tmp_path / "long.mp4"), "w", format="mp4") as c:
        s = c.add_stream("libx264", rate=30)
        s.width, s.height, s.pix_fmt = w, h, "yuv420p"
        for k in range(120):  # frame k has grey level 2k
            c.mux(s.encode(av.VideoFrame.from_ndarray(np.full((h, w, 3), 2 * k, np.uint8), format="rgb24")))
        c.mux(s.encode(None))
    (tmp_path / "test.csv").write_text("long.mp4,0\n")
    entries = read_video_csv(str(tmp_path / "test.csv"), ",", str(tmp_path))
    transform = TestTransform(crop_size=32, mean=(0.0,) * 3, std=(1.0,) * 3)
    for original, expected in [(True, [0, 18, 36, 54, 72, 90, 108, 112]), (False, [0, 16, 32, 48, 64, 80, 96, 112])]:
        sampler = ClipSampler(num_frames=8, sampling_rate=16, mode="views", num_views=3, original=original)
        ds = VideoDataset(entries, sampler, transform)
        frames = ds[0]["frames"]  # view 0: [3, T, S, S]
        got = [int(round(frames[:, t].mean().item() * 255 / 2)) for t in range(8)]
        assert got == expected, (original, got)


# ---- per-frame seeking on files with dense keyframes ----------------------------------------------------
def _textured_video(path, num_frames, gop, bframes=0, fps=30, size=(48, 64), pts=None):
    """Random frames (every frame differs everywhere), keyframes exactly every `gop` frames."""
    rng = np.random.default_rng(gop)
    h, w = size
    with av.open(str(path), "w", format="mp4") as c:
        s = c.add_stream("libx264", rate=fps)
        s.width, s.height, s.pix_fmt = w, h, "yuv420p"
        s.codec_context.options = {"x264-params": f"keyint={gop}:min-keyint={gop}:scenecut=0:bframes={bframes}"}
        for k in range(num_frames):
            frame = av.VideoFrame.from_ndarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8), format="rgb24")
            if pts is not None:
                frame.pts, frame.time_base = pts[k], Fraction(1, fps)
            c.mux(s.encode(frame))
        c.mux(s.encode(None))
    return str(path)


CLIPS = [[0, 16, 32, 48, 64, 80, 96, 112], [5, 9, 9, 13, 2], [50, 51, 52, 53], [117, 118, 119, 140, 150], [3]]


@pytest.mark.parametrize("gop, bframes", [(1, 0), (3, 0), (8, 0), (250, 0), (250, 3)])
def test_seeking_per_frame_and_the_forward_pass_give_identical_frames(tmp_path, gop, bframes):
    path = _textured_video(tmp_path / "v.mp4", 120, gop, bframes)
    for clip in CLIPS:
        forward, _ = read_clip(path, lambda n, fps, clip=clip: clip, strategy="forward")
        for strategy in ("seek", "auto"):
            frames, _ = read_clip(path, lambda n, fps, clip=clip: clip, strategy=strategy)
            assert np.array_equal(frames, forward), (strategy, clip)


def test_variable_frame_rate_files_give_identical_frames_with_either_strategy(tmp_path):
    pts = np.cumsum(np.random.default_rng(1).integers(1, 4, 90)).tolist()  # 1-3 ticks of 1/30 s apart
    path = _textured_video(tmp_path / "vfr.mp4", 90, 4, pts=pts)
    for clip in CLIPS[:3] + [[7, 8, 30, 31, 100]]:
        forward, _ = read_clip(path, lambda n, fps, clip=clip: clip, strategy="forward")
        assert np.array_equal(read_clip(path, lambda n, fps, clip=clip: clip, strategy="auto")[0], forward), clip


def test_keyframes_are_read_from_the_container_index(tmp_path):
    from slowfast.datasets.decoder import _Timeline, keyframe_before

    path = _textured_video(tmp_path / "g4.mp4", 40, 4)
    with av.open(path) as c:
        s = c.streams.video[0]
        timeline = _Timeline(s, 30.0)
        assert [keyframe_before(s, timeline, f) for f in (0, 3, 4, 7, 9, 39)] == [0, 0, 4, 4, 8, 36]
        assert not c.streams.video[0].codec_context.has_b_frames


def test_runs_start_where_a_seek_decodes_fewer_frames():
    from slowfast.datasets.decoder import plan_runs

    every = lambda gop: (lambda f: f - f % gop)
    clip = [0, 16, 32, 48]
    assert plan_runs(clip, every(250)) == [clip]  # long GOP: one forward pass
    assert plan_runs(clip, every(1)) == [[0], [16], [32], [48]]  # all-intra: one seek per frame
    assert plan_runs(clip, every(16)) == [[0], [16], [32], [48]]
    assert plan_runs([0, 2, 4, 6, 9, 11], every(8)) == [[0, 2, 4, 6], [9, 11]]
    assert plan_runs(clip, lambda f: None) == [clip]  # no index


def test_files_with_b_frames_or_without_an_index_are_read_in_one_run(tmp_path):
    from slowfast.datasets.decoder import decoding_runs

    wanted = [0, 16, 32, 48]
    with av.open(_textured_video(tmp_path / "b.mp4", 60, 4, bframes=2)) as c:
        assert decoding_runs("auto", c.streams.video[0], 30.0, wanted) == [wanted]
    with av.open(_textured_video(tmp_path / "p.mp4", 60, 4)) as c:
        assert decoding_runs("auto", c.streams.video[0], 30.0, wanted) == [[0], [16], [32], [48]]
        assert decoding_runs("forward", c.streams.video[0], 30.0, wanted) == [wanted]


def test_an_unknown_decoding_strategy_is_refused(tmp_path):
    path = _textured_video(tmp_path / "v.mp4", 10, 4)
    with pytest.raises(VideoDecodeError, match="unknown decoding strategy 'fast'"):
        read_clip(path, lambda n, fps: [1], strategy="fast")
