"""Temporal sampling: pure functions of the frame count, frame rates and view index."""

import random

import pytest

from slowfast.datasets import sampling


def test_train_clips_stay_inside_the_video():
    rng = random.Random(0)
    for _ in range(200):
        idx = sampling.sample_clip_indices("random", 300, 30.0, 8, 16, 30.0, rng=rng)
        assert idx[0] >= 0 and idx[-1] <= 299
        assert [b - a for a, b in zip(idx, idx[1:])] == [16] * 7


def test_train_clip_start_covers_the_whole_allowed_range():
    rng = random.Random(0)
    starts = [sampling.sample_clip_indices("random", 300, 30.0, 8, 16, 30.0, rng=rng)[0] for _ in range(500)]
    assert min(starts) <= 5 and max(starts) >= 300 - 1 - 112 - 5


def test_test_views_span_the_video_from_first_to_last_frame():
    views = [sampling.sample_clip_indices("view", 300, 30.0, 8, 16, 30.0, view=v, num_views=3) for v in range(3)]
    assert views[0][0] == 0
    assert views[-1][-1] == 299
    assert views[0][0] < views[1][0] < views[2][0]


def test_single_view_and_validation_take_the_centre_clip():
    view = sampling.sample_clip_indices("view", 301, 30.0, 8, 16, 30.0, view=0, num_views=1)
    centre = sampling.sample_clip_indices("centre", 301, 30.0, 8, 16, 30.0)
    assert view == centre
    assert view[0] == 300 - view[-1]  # as far from the start as from the end


def test_short_video_repeats_its_last_frame():
    idx = sampling.sample_clip_indices("view", 20, 30.0, 8, 4, 30.0, view=2, num_views=3)
    assert idx == [0, 4, 8, 12, 16, 19, 19, 19]


def test_sampling_rate_is_in_frames_at_the_target_fps():
    # A 15 fps video sampled "every 16 frames at 30 fps" takes every 8th source frame (same seconds).
    idx = sampling.sample_clip_indices("view", 150, 15.0, 8, 16, 30.0, view=0, num_views=1)
    assert [b - a for a, b in zip(idx, idx[1:])] == [8] * 7
    idx60 = sampling.sample_clip_indices("view", 600, 60.0, 8, 16, 30.0, view=0, num_views=2)
    assert [b - a for a, b in zip(idx60, idx60[1:])] == [32] * 7


def test_original_sampling_reproduces_the_pyav_stride_of_about_18():
    idx = sampling.original_pyav_indices(300, 30.0, 8, 16, 30.0, clip_idx=0, num_clips=3)
    assert idx == [0, 18, 36, 54, 72, 90, 108, 112]


def test_original_sampling_test_views_never_reach_the_end():
    starts = [sampling.original_pyav_indices(300, 30.0, 8, 16, 30.0, clip_idx=v, num_clips=3)[0] for v in range(3)]
    assert starts == [0, 63, 126]  # 0, 1/3 and 2/3 of max_start = 300 - 112
    last = sampling.original_pyav_indices(300, 30.0, 8, 16, 30.0, clip_idx=2, num_clips=3)[-1]
    assert last < 299


def test_unknown_sampling_mode_is_refused():
    with pytest.raises(ValueError, match="unknown sampling mode"):
        sampling.sample_clip_indices("middle", 10, 30.0, 4, 2, 30.0)
