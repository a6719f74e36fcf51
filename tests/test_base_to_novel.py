"""Base-to-novel protocol: shipped splits, video lookup, the end-to-end run, SSv2 preparation and .webm decoding."""

import json
import os
import shutil
import subprocess
import sys

import av
import numpy as np
import pytest
import yaml
from helpers import ROOT

from slowfast.cli import base_to_novel as b2n_tool
from slowfast.datasets.synthetic import CLASSES, ZERO_SHOT_CLASSES, SyntheticSpec, make_synthetic_dataset
from slowfast.engine import base_to_novel_protocol as b2n

# (base classes, novel classes, videos per training seed, seeds, base test videos, novel test videos)
SHIPPED_COUNTS = {
    "k400": (200, 200, 3200, [1, 2, 3], 9883, 9933),
    "hmdb51": (26, 25, 416, [1], 780, 750),
    "ucf101": (51, 50, 816, [1], 2088, 1695),
    "ssv2": (87, 87, 1392, [1, 2, 3], 17562, 7215),
}


def _shared_facts():
    """The folder the splits were copied from, when this checkout sits next to it."""
    for candidate in (os.path.join(ROOT, "..", "shared"), os.path.join(ROOT, "..", "..", "shared")):
        path = os.path.join(candidate, "data", "base_to_novel")
        if os.path.isdir(path):
            return path
    return None


# ---- shipped splits -------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", sorted(SHIPPED_COUNTS))
def test_shipped_splits_have_the_protocol_counts_and_16_shots_per_base_class(name):
    base, novel, per_seed, seeds, n_base, n_novel = SHIPPED_COUNTS[name]
    s = b2n.load_splits(name)
    assert (len(s.base_classes), len(s.novel_classes)) == (base, novel)
    assert not set(s.base_classes) & set(s.novel_classes)
    assert sorted(s.train) == seeds
    for entries in s.train.values():
        assert len(entries) == per_seed
        counts = np.bincount([e.label for e in entries], minlength=base)
        assert counts.tolist() == [16] * base
    assert (len(s.test_base), len(s.test_novel)) == (n_base, n_novel)


@pytest.mark.parametrize("name", sorted(SHIPPED_COUNTS))
def test_shipped_splits_match_the_source_lists_line_for_line(name):
    facts = _shared_facts()
    if facts is None:
        pytest.skip("the source lists are not next to this checkout (counts are checked above)")
    folder = b2n.B2N_DATASETS[name].folder
    source = os.path.join(facts, folder)
    files = sorted(f for f in os.listdir(source) if f.endswith((".csv", ".txt")))
    assert files == sorted(f for f in os.listdir(os.path.join(b2n.splits_root(), folder)) if f.endswith((".csv", ".txt")))
    for f in files:
        with open(os.path.join(source, f), encoding="utf-8") as a, \
                open(os.path.join(b2n.splits_root(), folder, f), encoding="utf-8") as b:
            assert a.read().splitlines() == b.read().splitlines(), f


def test_ssv2_templates_read_without_a_person_doing():
    from slowfast.text.templates import load_templates

    templates = load_templates(os.path.join(b2n.splits_root(), "ssv2", "templates.yml"), None)
    assert len(templates) == 8
    prompt = templates[2].format("Pushing something from left to right")
    assert prompt == "a video of a hand Pushing something from left to right."
    assert not any("person doing" in t or "person using" in t for t in templates)


# ---- finding the videos -------------------------------------------------------------------------------
def _touch(root, rel):
    path = os.path.join(root, rel)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    open(path, "wb").close()


def _write_splits(folder, base, novel, lists):
    os.makedirs(folder, exist_ok=True)
    for name, classes in (("base_classes.txt", base), ("novel_classes.txt", novel)):
        with open(os.path.join(folder, name), "w") as f:
            f.write("".join(c + "\n" for c in classes))
    for name, rows in lists.items():
        with open(os.path.join(folder, name), "w") as f:
            f.write("".join(f"{v},{l}\n" for v, l in rows))


@pytest.fixture
def kinetics_like(tmp_path):
    """Lists naming Kinetics clips by YouTube id; the folder names the files <id>_<start>_<end>.mp4 and lacks 3."""
    ids = [f"vid{i:03d}-_abc" for i in range(8)]  # 11 characters, with - and _ as YouTube ids have
    assert all(len(i) == 11 for i in ids)
    splits = tmp_path / "splits"
    _write_splits(str(splits), ["a", "b"], ["c"], {
        "train_seed1.csv": [(f"train/{ids[0]}.mp4", 0), (f"train/{ids[1]}.mp4", 1)],
        "test_base.csv": [(f"val/{ids[2]}.mp4", 0), (f"val/{ids[3]}.mp4", 1), (f"val/{ids[4]}.mp4", 1)],
        "test_novel.csv": [(f"val/{ids[5]}.mp4", 0), (f"val/{ids[6]}.mp4", 0), (f"val/{ids[7]}.mp4", 0)],
    })
    videos = tmp_path / "videos"
    for i in (0, 1, 2, 5):
        _touch(str(videos), f"{'train' if i < 2 else 'val'}/{ids[i]}_000010_000020.mp4")
    _touch(str(videos), f"val/{ids[3]}.mp4")  # a copy that keeps the plain name
    missing = {f"val/{ids[4]}.mp4", f"val/{ids[6]}.mp4", f"val/{ids[7]}.mp4"}
    return splits, videos, ids, missing


def test_kinetics_files_with_start_and_end_times_match_on_the_youtube_id(kinetics_like):
    splits, videos, ids, missing = kinetics_like
    s = b2n.load_splits("k400", str(splits))
    check = b2n.check_videos(s.lists([1]), str(videos), youtube_ids=True)
    assert check.found[f"train/{ids[0]}.mp4"] == f"train/{ids[0]}_000010_000020.mp4"
    assert check.found[f"val/{ids[3]}.mp4"] == f"val/{ids[3]}.mp4"
    assert set(check.missing) == missing


def test_missing_videos_are_named_in_one_report_and_nothing_runs(kinetics_like, tmp_path, run_cli):
    splits, videos, ids, missing = kinetics_like
    out = tmp_path / "out"
    code, message = run_cli(b2n_tool.main, ["--dataset", "k400", "--splits", str(splits), "--video-root", str(videos),
                                            "--check-only", "--output-dir", str(out)])
    assert code == 1
    assert message.startswith("error: 3 of 8 listed videos are not under") and "missing_videos.txt" in message
    report = (out / "missing_videos.txt").read_text().splitlines()
    assert sorted(line.split("\t")[0] for line in report) == sorted(missing)
    assert f"val/{ids[4]}.mp4\ttest_base.csv" in report
    assert not (out / "lists").exists()


def test_allow_missing_writes_lists_without_the_missing_videos(kinetics_like, tmp_path):
    splits, videos, ids, _ = kinetics_like
    out = tmp_path / "out"
    assert b2n_tool.main(["--dataset", "k400", "--splits", str(splits), "--video-root", str(videos),
                          "--check-only", "--allow-missing", "--output-dir", str(out)]) == 0
    assert (out / "lists" / "base" / "test.csv").read_text().splitlines() == [
        f"val/{ids[2]}_000010_000020.mp4,0", f"val/{ids[3]}.mp4,1"]
    assert json.loads((out / "lists" / "novel_index2cls.json").read_text()) == {"0": "c"}


def test_harmonic_mean_of_base_and_novel():
    assert b2n.harmonic_mean(80.0, 60.0) == pytest.approx(2 * 80 * 60 / 140)
    assert b2n.harmonic_mean(0.0, 0.0) == 0.0


# ---- the protocol end to end ------------------------------------------------------------------------------
TINY_YAML = """
_BASE_: {root}/tests/configs/tiny_synthetic.yaml
TRAIN:
  BATCH_SIZE: 4
TEST:
  BATCH_SIZE: 8
  NUM_ENSEMBLE_VIEWS: 1
SOLVER:
  MAX_EPOCH: 1
  WARMUP_EPOCHS: 0.0
MODEL:
  CHANNEL_FOLD: 8
  DETERMINISTIC_TEST_MASKS: True
"""


@pytest.fixture(scope="module")
def synthetic_b2n(tmp_path_factory):
    """The synthetic dataset as a base-to-novel benchmark: training classes are base, zero-shot classes novel;
    two seeds of 2 clips per base class."""
    root = tmp_path_factory.mktemp("synthetic")
    make_synthetic_dataset(str(root), SyntheticSpec(train_per_class=4, val_per_class=1, test_per_class=2,
                                                    zero_shot_per_class=2, frames=8))

    def rows(csv):
        return [tuple(line.split(",")) for line in (root / csv).read_text().split()]

    train = rows("train.csv")  # classes interleaved: every 4 rows hold one clip of each class
    # Uneven test lists of 6 base and 5 novel videos: B and N differ (unless both are 0 or 100), so HM
    # is not also their arithmetic mean.
    test_base = rows("test.csv")[:6]
    test_novel = rows(os.path.join("zero_shot", "test.csv"))[:5]
    splits = root / "b2n_splits"
    _write_splits(str(splits), CLASSES, ZERO_SHOT_CLASSES, {
        "train_seed1.csv": train[:8], "train_seed2.csv": train[8:16],
        "test_base.csv": test_base, "test_novel.csv": test_novel,
    })
    cfg = root / "tiny.yaml"
    cfg.write_text(TINY_YAML.format(root=ROOT))
    out = root / "out"
    code = b2n_tool.main(["--dataset", "synthetic", "--splits", str(splits), "--video-root", str(root),
                          "--seeds", "1", "2", "--cfg", str(cfg), "--output-dir", str(out)])
    assert code == 0
    return root, splits, cfg, out


@pytest.mark.slow
def test_protocol_writes_base_novel_and_hm_per_seed_and_their_mean(synthetic_b2n):
    _, _, _, out = synthetic_b2n
    summary = json.loads((out / "b2n_synthetic.json").read_text())
    assert list(summary["seeds"]) == ["seed1", "seed2"] and summary["tested"] == "average of epochs 2..last"
    hms = []
    for name, r in summary["seeds"].items():
        base = json.loads((out / name / "base" / "test_metrics.json").read_text())
        novel = json.loads((out / name / "novel" / "test_metrics.json").read_text())
        assert (base["num_videos"], novel["num_videos"]) == (6, 5)
        # The seed's epochs 2..last averaged, which with one epoch is epoch 1 alone.
        assert base["checkpoint"] == novel["checkpoint"] == str(out / name / "wa_checkpoints" / "swa_1_1.pth")
        b, n = base["top1_acc"], novel["top1_acc"]
        assert (r["base"], r["novel"]) == (b, n) and b != n
        hand = 0.0 if b + n == 0 else 2 * b * n / (b + n)
        assert r["hm"] == pytest.approx(hand)
        hms.append(hand)
    assert summary["hm"]["mean"] == pytest.approx(sum(hms) / 2)
    assert summary["hm"]["std"] == pytest.approx(abs(hms[0] - hms[1]) / 2)
    bases = [r["base"] for r in summary["seeds"].values()]
    assert summary["base"]["mean"] == pytest.approx(sum(bases) / 2)
    mb, mn = summary["base"]["mean"], summary["novel"]["mean"]
    assert summary["hm_of_means"] == pytest.approx(0.0 if mb + mn == 0 else 2 * mb * mn / (mb + mn))
    assert "mean ± std" in (out / "b2n_synthetic.md").read_text()


@pytest.mark.slow
def test_rerunning_a_finished_protocol_trains_and_tests_nothing_again(synthetic_b2n):
    root, splits, cfg, out = synthetic_b2n
    ckpt = out / "seed1" / "checkpoints" / "checkpoint_epoch_00001.pyth"
    metrics = out / "seed2" / "novel" / "test_metrics.json"
    stamps = (ckpt.stat().st_mtime_ns, metrics.stat().st_mtime_ns)
    before = json.loads((out / "b2n_synthetic.json").read_text())
    assert b2n_tool.main(["--dataset", "synthetic", "--splits", str(splits), "--video-root", str(root),
                          "--seeds", "1", "2", "--cfg", str(cfg), "--output-dir", str(out)]) == 0
    assert (ckpt.stat().st_mtime_ns, metrics.stat().st_mtime_ns) == stamps
    assert json.loads((out / "b2n_synthetic.json").read_text())["seeds"] == before["seeds"]


@pytest.mark.slow
def test_test_only_evaluates_the_given_checkpoint_on_base_and_novel(synthetic_b2n, tmp_path):
    root, splits, cfg, out = synthetic_b2n
    ckpt = out / "seed1" / "checkpoints" / "checkpoint_epoch_00001.pyth"
    assert b2n_tool.main(["--dataset", "synthetic", "--splits", str(splits), "--video-root", str(root),
                          "--cfg", str(cfg), "--output-dir", str(tmp_path), "--test-only", "--checkpoint", str(ckpt)]) == 0
    summary = json.loads((tmp_path / "b2n_synthetic.json").read_text())
    trained = json.loads((out / "b2n_synthetic.json").read_text())["seeds"]["seed1"]
    assert list(summary["seeds"]) == ["checkpoint"] and summary["checkpoint"] == str(ckpt)
    assert (summary["seeds"]["checkpoint"]["base"], summary["seeds"]["checkpoint"]["novel"]) == (
        trained["base"], trained["novel"])
    assert not (tmp_path / "seed1").exists()


@pytest.mark.slow
def test_last_epoch_and_class_descriptions_on_request(synthetic_b2n, tmp_path):
    root, splits, cfg, out = synthetic_b2n
    run = tmp_path / "run"
    shutil.copytree(out / "seed1", run / "seed1")  # the trained seed: nothing trains again
    texts = {str(i): f"{name}: a video where someone does {name}" for i, name in enumerate(CLASSES)}
    shuffled = {str(i): texts[k] for i, k in enumerate(reversed(list(texts)))}
    (tmp_path / "train_rephrased.json").write_text(json.dumps(shuffled))
    assert b2n_tool.main(["--dataset", "synthetic", "--splits", str(splits), "--video-root", str(root),
                          "--seeds", "1", "--cfg", str(cfg), "--output-dir", str(run), "--test-checkpoint", "last",
                          "--base-class-text", str(tmp_path / "train_rephrased.json")]) == 0
    summary = json.loads((run / "b2n_synthetic.json").read_text())
    assert summary["tested"] == "last epoch"
    base = json.loads((run / "seed1" / "base" / "test_metrics.json").read_text())
    assert base["checkpoint"] == str(run / "seed1" / "checkpoints" / "checkpoint_epoch_00001.pyth")
    tested = {side: yaml.safe_load((run / "seed1" / side / "config.yaml").read_text())["DATA"]["INDEX_LABEL_MAPPING_FILE"]
              for side in ("base", "novel")}
    assert tested == {"base": str(run / "lists" / "base_class_text.json"),
                      "novel": str(run / "lists" / "novel_index2cls.json")}
    assert json.loads((run / "lists" / "base_class_text.json").read_text()) == texts  # in class order


# The scripts under script/base_to_novel/ are checked with bash -n and shellcheck by tests/test_recipes.py.


@pytest.mark.slow
def test_b2n_test_script_tests_a_checkpoint_on_base_and_novel(synthetic_b2n, tmp_path):
    root, splits, cfg, out = synthetic_b2n
    ckpt = out / "seed2" / "checkpoints" / "checkpoint_epoch_00001.pyth"
    env = {**os.environ, "PYTHON": sys.executable, "DATASET": "synthetic", "SPLITS": str(splits),
           "VIDEO_ROOT": str(root), "CHECKPOINT": str(ckpt), "CFG": str(cfg), "NUM_GPUS": "0", "WORKERS": "0",
           "OUTPUT_DIR": str(tmp_path)}
    result = subprocess.run(["bash", "script/base_to_novel/test_b2n_vitb16.sh"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    got = json.loads((tmp_path / "b2n_synthetic.json").read_text())["seeds"]["checkpoint"]
    trained = json.loads((out / "b2n_synthetic.json").read_text())["seeds"]["seed2"]
    assert (got["base"], got["novel"], got["hm"]) == (trained["base"], trained["novel"], trained["hm"])


# ---- Something-Something v2 --------------------------------------------------------------------------------
def test_ssv2_annotations_become_lists_with_the_official_label_ids(tmp_path):
    from slowfast.datasets.prepare import PrepareError, prepare_ssv2

    labels = {"Pushing something from left to right": "1", "Pushing something from right to left": "0"}
    train = [{"id": "10", "template": "Pushing [something] from left to right", "label": "pushing cup"},
             {"id": "11", "template": "Pushing [something] from right to left", "label": "pushing pen"}]
    val = [{"id": "20", "template": "Pushing [Something] from right to left", "label": "pushing box"}]
    for name, data in (("labels.json", labels), ("train.json", train), ("val.json", val)):
        (tmp_path / name).write_text(json.dumps(data))
    out = tmp_path / "ssv2"
    summary = prepare_ssv2(str(tmp_path / "labels.json"), str(tmp_path / "train.json"), str(tmp_path / "val.json"),
                           str(out))
    assert summary["classes"] == 2 and summary["train"] == 2
    assert (out / "train.csv").read_text() == "10.webm,1\n11.webm,0\n"
    assert (out / "val.csv").read_text() == (out / "test.csv").read_text() == "20.webm,0\n"
    assert json.loads((out / "index2cls.json").read_text()) == {
        "0": "Pushing something from right to left", "1": "Pushing something from left to right"}
    (tmp_path / "bad.json").write_text(json.dumps([{"id": "30", "template": "Spinning [something]"}]))
    with pytest.raises(PrepareError, match=r"bad.json: entry 0 \(id 30\): class 'Spinning something'"):
        prepare_ssv2(str(tmp_path / "labels.json"), None, str(tmp_path / "bad.json"), str(out))


def test_prepare_dataset_cli_has_an_ssv2_command(tmp_path, capsys):
    sys.path.insert(0, os.path.join(ROOT, "tools"))
    import prepare_dataset

    (tmp_path / "labels.json").write_text(json.dumps({"Folding something": "0"}))
    (tmp_path / "val.json").write_text(json.dumps([{"id": "7", "template": "Folding [something]"}]))
    assert prepare_dataset.main(["ssv2", "--labels", str(tmp_path / "labels.json"), "--validation",
                                 str(tmp_path / "val.json"), "--out", str(tmp_path / "out")]) == 0
    assert (tmp_path / "out" / "test.csv").read_text() == "7.webm,0\n"
    assert "RANDOM_FLIP False" in capsys.readouterr().out


def test_base_to_novel_tool_answers_help():
    out = subprocess.run([sys.executable, os.path.join(ROOT, "tools", "base_to_novel.py"), "--help"],
                         capture_output=True, text=True, cwd=ROOT, timeout=600)
    assert out.returncode == 0 and "--test-only" in out.stdout, out.stderr


def test_ssv2_recipe_and_protocol_turn_horizontal_flips_off(tmp_path):
    from slowfast.config import get_cfg, merge_from_file

    cfg = get_cfg()
    merge_from_file(cfg, os.path.join(ROOT, "configs", "BaseToNovel", "STDD_vitb16_8x16_b2n_ssv2.yaml"))
    assert cfg.DATA.RANDOM_FLIP is False
    args = b2n_tool.build_parser().parse_args(["--dataset", "ssv2", "--video-root", str(tmp_path)])
    assert b2n_tool._config(args, b2n.B2N_DATASETS["ssv2"].random_flip).DATA.RANDOM_FLIP is False
    assert b2n_tool._config(args, b2n.B2N_DATASETS["k400"].random_flip).DATA.RANDOM_FLIP is True


def _write_webm(path, codec, frames):
    with av.open(str(path), "w", format="webm") as out:
        stream = out.add_stream(codec, rate=12)
        stream.width, stream.height, stream.pix_fmt = frames.shape[2], frames.shape[1], "yuv420p"
        for img in frames:
            out.mux(stream.encode(av.VideoFrame.from_ndarray(img, format="rgb24")))
        out.mux(stream.encode(None))


def test_webm_video_decodes_through_the_dataset_decoder(tmp_path):
    from slowfast.datasets.decoder import read_clip

    codec = "libvpx-vp9" if "libvpx-vp9" in av.codecs_available else "libvpx"  # VP9 as SSv2 ships; else VP8
    if codec not in av.codecs_available:
        pytest.skip("this PyAV build has no VP9 or VP8 encoder")
    levels = np.arange(12) * 20 + 10
    frames = np.stack([np.full((48, 64, 3), v, np.uint8) for v in levels])
    path = tmp_path / "12345.webm"
    _write_webm(path, codec, frames)
    clip, info = read_clip(str(path), lambda n, fps: [0, 5, 11])
    assert (info.num_frames, info.fps, info.width, info.height) == (12, 12.0, 64, 48)
    assert clip.shape == (3, 48, 64, 3)
    assert np.abs(clip.reshape(3, -1).mean(axis=1) - levels[[0, 5, 11]]).max() < 4
