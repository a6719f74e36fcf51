"""PyAV decoding of real mp4 files made here, and the spatial transforms."""

import random

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
    from slowfast.datasets import VideoCSVDataset

    h, w = 32, 32
    with av.open(str(tmp_path / "long.mp4"), "w", format="mp4") as c:
        s = c.add_stream("libx264", rate=30)
        s.width, s.height, s.pix_fmt = w, h, "yuv420p"
        for k in range(120):  # frame k has grey level 2k
            c.mux(s.encode(av.VideoFrame.from_ndarray(np.full((h, w, 3), 2 * k, np.uint8), format="rgb24")))
        c.mux(s.encode(None))
    (tmp_path / "test.csv").write_text("long.mp4,0\n")
    common = dict(path_prefix=str(tmp_path), num_frames=8, sampling_rate=16, test_crop_size=32, mean=[0.0] * 3,
                  std=[1.0] * 3, num_views=3)
    for original, expected in [(True, [0, 18, 36, 54, 72, 90, 108, 112]), (False, [0, 16, 32, 48, 64, 80, 96, 112])]:
        ds = VideoCSVDataset(str(tmp_path / "test.csv"), "test", original_sampling=original, **common)
        frames = ds[0]["frames"]  # view 0: [3, T, S, S]
        got = [int(round(frames[:, t].mean().item() * 255 / 2)) for t in range(8)]
        assert got == expected, (original, got)
