"""The clip pipeline (list, sampler, transform, dataset), broken videos, the loader and the no-padding
distributed sampler, on files made here."""

import inspect
import json
import logging
import os

import av
import numpy as np
import pytest
import torch
from helpers import config_from

from slowfast.config import get_cfg
from slowfast.datasets import (
    ContiguousSplitSampler,
    DatasetFileError,
    TestTransform,
    TrainTransform,
    ValTransform,
    VideoDataset,
    VideoEntry,
    build_dataset,
    build_loader,
    build_sampler,
    build_transform,
    load_clip,
    make_loader,
    read_video_csv,
)
from slowfast.datasets.sampling import ClipSampler


def _video(path, num_frames=12, fps=30, size=(40, 56), seed=0):
    rng = np.random.default_rng(seed)
    h, w = size
    with av.open(str(path), "w", format="mp4") as c:
        s = c.add_stream("libx264", rate=fps)
        s.width, s.height, s.pix_fmt = w, h, "yuv420p"
        for _ in range(num_frames):
            img = rng.integers(0, 255, (h, w, 3), dtype=np.uint8)
            c.mux(s.encode(av.VideoFrame.from_ndarray(img, format="rgb24")))
        c.mux(s.encode(None))
    return str(path)


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    """4 good videos (2 classes), train/val/test lists, a class-index file."""
    d = tmp_path_factory.mktemp("data")
    os.makedirs(d / "videos")
    for i in range(4):
        _video(d / "videos" / f"v{i}.mp4", seed=i)
    lines = "".join(f"videos/v{i}.mp4,{i % 2}\n" for i in range(4))
    for split in ("train", "val", "test"):
        (d / f"{split}.csv").write_text(lines)
    (d / "index2cls.json").write_text(json.dumps({"0": "a", "1": "b"}))
    return d


def _cfg(data_dir, **over):
    return config_from({
        "NUM_GPUS": 0, "DATA.PATH_TO_DATA_DIR": str(data_dir), "DATA.PATH_LABEL_SEPARATOR": ",",
        "DATA.INDEX_LABEL_MAPPING_FILE": str(data_dir / "index2cls.json"), "DATA.NUM_FRAMES": 4,
        "DATA.SAMPLING_RATE": 2, "DATA.TRAIN_JITTER_SCALES": [32, 40], "DATA.TRAIN_CROP_SIZE": 32,
        "DATA.TEST_CROP_SIZE": 32, "TRAIN.BATCH_SIZE": 2, "TEST.BATCH_SIZE": 3, "DATA_LOADER.NUM_WORKERS": 0, **over,
    })


def _broken_files(d):
    """A truncated mp4, garbage bytes, an empty file and a missing path."""
    good = _video(d / "whole.mp4", num_frames=30)
    data = open(good, "rb").read()
    (d / "truncated.mp4").write_bytes(data[: len(data) // 2])
    (d / "garbage.mp4").write_bytes(np.random.default_rng(0).integers(0, 256, 5000, dtype=np.uint8).tobytes())
    (d / "empty.mp4").write_bytes(b"")
    return ["truncated.mp4", "garbage.mp4", "empty.mp4", "missing.mp4"]


# ---- CSV validation ---------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "bad_line, message",
    [("a.mp4,1,2", "expected 2 fields"), ("a.mp4,one", "not an integer"), ("a.mp4,2", "outside 0..1")],
)
def test_malformed_csv_line_is_reported_with_file_and_line(tmp_path, bad_line, message):
    csv_path = tmp_path / "train.csv"
    csv_path.write_text(f"ok.mp4,0\n\n{bad_line}\n")
    with pytest.raises(DatasetFileError, match=rf"train\.csv:3: .*{message}"):
        read_video_csv(str(csv_path), ",", "", num_classes=2)


def test_relative_paths_are_relative_to_the_data_dir_without_prefix(data_dir):
    ds = build_dataset(_cfg(data_dir), "val")
    assert ds.video_path(1) == os.path.join(str(data_dir), "videos/v1.mp4")
    assert ds.num_videos == 4 and ds.labels() == [0, 1, 0, 1]


# ---- the three parts ----------------------------------------------------------------------------------
def test_each_split_gets_its_sampler_and_transform_from_the_config(data_dir):
    cfg = _cfg(data_dir, **{"TEST.NUM_ENSEMBLE_VIEWS": 3, "TEST.NUM_SPATIAL_CROPS": 3})
    assert build_sampler(cfg, "train") == ClipSampler(4, 2, 30.0, "random", 1, False)
    assert build_sampler(cfg, "val").mode == "centre" and build_sampler(cfg, "test").num_views == 3
    assert build_sampler(_cfg(data_dir, **{"DATA.RANDOM_VAL": True}), "val").mode == "random"
    assert isinstance(build_transform(cfg, "train"), TrainTransform)
    assert isinstance(build_transform(cfg, "val"), ValTransform)
    test = build_transform(cfg, "test")
    assert isinstance(test, TestTransform) and test.num_crops == 3 and test.crop_size == 32


def test_the_dataset_takes_its_parts_in_a_short_constructor():
    assert len(inspect.signature(VideoDataset.__init__).parameters) - 1 <= 10


def test_load_clip_gives_the_test_items_of_a_video_in_view_order(data_dir):
    cfg = _cfg(data_dir, **{"TEST.NUM_ENSEMBLE_VIEWS": 2, "TEST.NUM_SPATIAL_CROPS": 3})
    ds = build_dataset(cfg, "test")
    clips = load_clip(ds.video_path(1), build_sampler(cfg, "test"), build_transform(cfg, "test"))
    assert clips.shape == (6, 3, 4, 32, 32)
    for view in range(6):
        item = ds[6 + view]
        assert item["view_index"] == view and torch.equal(item["frames"], clips[view])


def test_load_clip_on_decoded_frames_equals_load_clip_on_the_file(data_dir):
    path = str(data_dir / "videos" / "v2.mp4")
    with av.open(path) as c:
        frames = np.stack([f.to_ndarray(format="rgb24") for f in c.decode(video=0)])
    sampler = ClipSampler(num_frames=4, sampling_rate=2, mode="views", num_views=2)
    transform = TestTransform(crop_size=32, mean=(0.5,) * 3, std=(0.25,) * 3)
    from_file = load_clip(path, sampler, transform)
    assert torch.equal(load_clip(frames, sampler, transform, fps=30), from_file)
    with pytest.raises(ValueError, match=r"\[N, H, W, 3\]"):
        load_clip(frames[..., 0], sampler, transform)


# ---- items and batches ------------------------------------------------------------------------------
def test_train_batches_are_dicts_of_the_documented_shapes(data_dir):
    batch = next(iter(build_loader(_cfg(data_dir), "train")))
    assert batch["frames"].shape == (2, 3, 4, 32, 32) and batch["frames"].dtype == torch.float32
    assert batch["label"].dtype == torch.long and batch["ok"].dtype == torch.bool
    assert batch["view_index"].tolist() == [0, 0] and batch["ok"].all()


def test_test_split_has_views_times_crops_items_per_video(data_dir):
    cfg = _cfg(data_dir, **{"TEST.NUM_ENSEMBLE_VIEWS": 2, "TEST.NUM_SPATIAL_CROPS": 3})
    items = [b for b in build_loader(cfg, "test")]
    video = torch.cat([b["video_index"] for b in items])
    view = torch.cat([b["view_index"] for b in items])
    assert len(video) == 4 * 6
    assert video.tolist() == [v for v in range(4) for _ in range(6)]
    assert view.tolist() == list(range(6)) * 4


def test_workers_with_the_same_seed_give_the_same_training_batches(data_dir):
    cfg = _cfg(data_dir, **{"DATA_LOADER.NUM_WORKERS": 1})
    a = next(iter(build_loader(cfg, "train")))
    b = next(iter(build_loader(cfg, "train")))
    assert torch.equal(a["video_index"], b["video_index"]) and torch.equal(a["frames"], b["frames"])


def test_validation_is_deterministic_by_default(data_dir):
    ds = build_dataset(_cfg(data_dir), "val")
    assert torch.equal(ds[0]["frames"], ds[0]["frames"])


# ---- broken videos ----------------------------------------------------------------------------------
def test_broken_training_video_is_replaced_and_logged_once(tmp_path, caplog):
    _video(tmp_path / "good.mp4")
    broken = _broken_files(tmp_path)
    (tmp_path / "train.csv").write_text("".join(f"{b},1\n" for b in broken) + "good.mp4,0\n")
    ds = VideoDataset(read_video_csv(str(tmp_path / "train.csv"), ",", str(tmp_path)),
                      ClipSampler(num_frames=4, sampling_rate=2, mode="random"),
                      TrainTransform(crop_size=32, jitter_scales=(32, 32)), num_retries=200)
    with caplog.at_level(logging.WARNING):
        for _ in range(3):
            for i in range(4):
                item = ds[i]
                assert item["ok"] and item["video_index"] == 4 and item["label"] == 0
    for name in broken:
        hits = [r for r in caplog.records if name in r.getMessage()]
        assert len(hits) == 1, name


def test_training_gives_up_after_num_retries_naming_the_paths(tmp_path):
    _broken_files(tmp_path)
    (tmp_path / "train.csv").write_text("garbage.mp4,0\nempty.mp4,0\n")
    ds = VideoDataset(read_video_csv(str(tmp_path / "train.csv"), ",", str(tmp_path)), ClipSampler(mode="random"),
                      TrainTransform(), num_retries=3)
    with pytest.raises(RuntimeError, match=r"4 videos in a row.*NUM_RETRIES = 3.*(garbage|empty)\.mp4"):
        ds[0]


def test_broken_test_videos_yield_not_ok_items_and_are_listed(tmp_path):
    _video(tmp_path / "good.mp4")
    broken = _broken_files(tmp_path)
    names = ["good.mp4"] + broken
    (tmp_path / "test.csv").write_text("".join(f"{n},0\n" for n in names))
    ds = VideoDataset(read_video_csv(str(tmp_path / "test.csv"), ",", str(tmp_path)),
                      ClipSampler(num_frames=4, sampling_rate=2, mode="views", num_views=2), TestTransform(crop_size=32))
    items = [ds[i] for i in range(len(ds))]
    assert [bool(it["ok"]) for it in items] == [True, True] + [False] * 8
    assert all(it["frames"].shape == (3, 4, 32, 32) for it in items)
    assert float(items[2]["frames"].abs().sum()) == 0.0
    assert [it["reason"] for it in items[:2]] == ["", ""]
    reasons = [items[i]["reason"] for i in range(2, 10, 2)]
    assert all(r and "\n" not in r for r in reasons)
    assert "No such file" in reasons[3]  # missing.mp4


# ---- distributed sampling without padding -----------------------------------------------------------
@pytest.mark.parametrize("num_items, world", [(10, 3), (7, 4), (2, 3), (12, 2)])
def test_split_sampler_covers_every_item_exactly_once(num_items, world):
    seen = [i for r in range(world) for i in ContiguousSplitSampler(num_items, r, world)]
    assert sorted(seen) == list(range(num_items))
    assert sum(len(ContiguousSplitSampler(num_items, r, world)) for r in range(world)) == num_items


def test_unreadable_video_reasons_travel_in_the_batch_from_loader_workers(tmp_path):
    _video(tmp_path / "good.mp4")
    (tmp_path / "empty.mp4").write_bytes(b"")
    (tmp_path / "test.csv").write_text("good.mp4,0\nmissing.mp4,0\nempty.mp4,0\n")
    cfg = _cfg(tmp_path, **{"DATA_LOADER.NUM_WORKERS": 1, "DATA.INDEX_LABEL_MAPPING_FILE": "", "TEST.NUM_ENSEMBLE_VIEWS": 1})
    batches = list(build_loader(cfg, "test"))
    ok = torch.cat([b["ok"] for b in batches])
    reasons = [r for b in batches for r in b["reason"]]
    assert ok.tolist() == [True, False, False]
    assert reasons[0] == "" and "No such file" in reasons[1] and reasons[2]


def test_a_dataset_of_your_own_paths_needs_no_list_file(data_dir, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    cfg = _cfg(data_dir)
    entries = [VideoEntry(str(data_dir / "videos" / "v0.mp4"), 0)]
    ds = VideoDataset(entries, build_sampler(cfg, "test"), build_transform(cfg, "test"))
    batch = next(iter(make_loader(cfg, ds, "test")))
    assert batch["ok"].all() and batch["frames"].shape[0] == ds.items_per_video == 3
    assert os.listdir(tmp_path) == []


def test_config_refuses_a_crop_larger_than_the_smallest_training_scale():
    from slowfast.config import ConfigError, assert_and_infer_cfg

    cfg = get_cfg()
    cfg.merge_from_list(["DATA.TRAIN_JITTER_SCALES", [200, 256], "DATA.TRAIN_CROP_SIZE", 224])
    with pytest.raises(ConfigError, match="DATA.TRAIN_JITTER_SCALES"):
        assert_and_infer_cfg(cfg)
