"""The synthetic default dataset: real H.264 files, deterministic, classes that differ only in order."""

import json
import os

import numpy as np
import pytest

from slowfast.datasets.decoder import read_clip
from slowfast.datasets.synthetic import (
    CLASSES,
    ZERO_SHOT_CLASSES,
    SyntheticSpec,
    make_synthetic_dataset,
    render_clip,
    sample_clip_params,
)
from slowfast.datasets.video_list import read_video_csv
from slowfast.errors import UserError
from slowfast.utils.class_index import read_class_names

TINY = SyntheticSpec(seed=3, train_per_class=2, val_per_class=1, test_per_class=1, zero_shot_per_class=1)


@pytest.fixture(scope="module")
def tiny_dataset(tmp_path_factory):
    out = tmp_path_factory.mktemp("syn")
    summary = make_synthetic_dataset(str(out), TINY)
    return out, summary


def test_an_odd_frame_size_is_a_user_error_before_anything_is_written(tmp_path):
    with pytest.raises(UserError, match="size must be even for H.264 .*got 33"):
        make_synthetic_dataset(str(tmp_path / "out"), SyntheticSpec(size=33))
    assert not (tmp_path / "out").exists()


def test_writes_lists_class_index_and_zero_shot_split(tiny_dataset):
    out, summary = tiny_dataset
    assert summary == {"train": 8, "val": 4, "test": 4, "zero_shot": 4}
    assert read_class_names(str(out / "index2cls.json")) == list(CLASSES)
    zs = read_class_names(str(out / "zero_shot" / "index2cls.json"))
    assert zs == list(ZERO_SHOT_CLASSES) and not set(zs) & set(CLASSES)
    entries = read_video_csv(str(out / "zero_shot" / "test.csv"), ",", str(out), num_classes=4)
    assert all(os.path.isfile(e.path) for e in entries)


def test_videos_are_h264_with_the_requested_size_and_frames(tiny_dataset):
    out, _ = tiny_dataset
    path = read_video_csv(str(out / "train.csv"), ",", str(out))[0].path
    frames, info = read_clip(path, lambda n, fps: range(n))
    assert (info.num_frames, info.fps, frames.shape) == (TINY.frames, TINY.fps, (TINY.frames, 64, 64, 3))
    import av

    with av.open(path) as c:
        assert c.streams.video[0].codec_context.name == "h264"


def test_same_seed_gives_identical_files(tiny_dataset, tmp_path):
    out, _ = tiny_dataset
    spec = SyntheticSpec(seed=3, train_per_class=2, val_per_class=0, test_per_class=0, zero_shot_per_class=0)
    make_synthetic_dataset(str(tmp_path), spec, workers=2)
    rel = "videos/train/moving_up_0001.mp4"
    assert (tmp_path / rel).read_bytes() == (out / rel).read_bytes()
    assert (tmp_path / "train.csv").read_text() == (out / "train.csv").read_text()


def test_opposite_classes_are_the_same_clip_played_backwards():
    rng = np.random.default_rng(0)
    for fwd, back, family in [
        ("moving right", "moving left", "translate_x"),
        ("moving down", "moving up", "translate_y"),
        ("square growing", "square shrinking", "scale"),
        ("bar rotating clockwise", "bar rotating anticlockwise", "rotate"),
    ]:
        params = sample_clip_params(rng, family, TINY)
        a, b = render_clip(fwd, params, TINY), render_clip(back, params, TINY)
        assert np.array_equal(a[::-1], b)
        assert not np.array_equal(a, b)


def test_single_frames_carry_no_class_information():
    """The square's position in a random frame has the same distribution for every class."""
    spec = SyntheticSpec(noise=0.0)
    stats = {}
    for c, name in enumerate(CLASSES):
        xs, ys = [], []
        for i in range(300):
            rng = np.random.default_rng([1, c, i])
            params = sample_clip_params(rng, "translate_x" if c < 2 else "translate_y", spec)
            frame = render_clip(name, params, spec)[rng.integers(spec.frames)]
            mask = (frame - params["bg"]).sum(-1) / (params["fg"] - params["bg"]).sum()
            ys.append((mask.sum(1) * np.arange(64)).sum() / mask.sum())
            xs.append((mask.sum(0) * np.arange(64)).sum() / mask.sum())
        stats[name] = (np.mean(xs), np.std(xs), np.mean(ys), np.std(ys))
    ref = stats["moving left"]
    for name, s in stats.items():
        # 300 samples: the standard error of the mean is ~0.5 px; the moments agree within ~4 of it.
        assert np.allclose(s, ref, atol=2.0), (name, s, ref)


def test_default_clips_move_three_to_four_pixels_per_sampled_frame():
    spec = SyntheticSpec(noise=0.0)
    params = sample_clip_params(np.random.default_rng(5), "translate_x", spec)
    assert 14 <= params["side"] <= 19
    assert 3.0 <= 2 * params["speed"] <= 4.0  # DATA.SAMPLING_RATE 2 on 30 fps files


def test_class_index_json_is_contiguous(tiny_dataset):
    out, _ = tiny_dataset
    data = json.loads((out / "index2cls.json").read_text())
    assert list(data) == ["0", "1", "2", "3"]
