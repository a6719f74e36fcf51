"""`slowfast.inference.VideoClassifier` (the Python API behind tools/demo_net.py), and an open_clip
backbone run end to end by tools/run_net.py, on synthetic videos."""

import csv
import json
import os
import subprocess
import sys

import open_clip
import pytest
import torch
from helpers import ROOT, make_tiny_synthetic

from slowfast.inference import VideoClassifier

CLASSES = ["moving left", "moving right", "moving up"]


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory):
    root = tmp_path_factory.mktemp("synthetic")
    return root, make_tiny_synthetic(root, tmp_path_factory.mktemp("out"), train_per_class=2,
                                     extra_yaml="SOLVER:\n  MAX_EPOCH: 1\n")


@pytest.fixture(scope="module")
def classifier(synthetic):
    return VideoClassifier.from_config(str(synthetic[1]))


def test_predict_returns_top_k_classes_sorted_by_probability(synthetic, classifier):
    video = str(synthetic[0] / "videos" / "test" / "moving_left_0000.mp4")
    preds = classifier.predict(video, CLASSES, top_k=2)
    assert len(preds) == 2 and {n for n, _ in preds} <= set(CLASSES)
    assert preds[0][1] >= preds[1][1]
    full = classifier.predict(video, CLASSES, top_k=3)
    assert sum(p for _, p in full) == pytest.approx(1.0, abs=1e-5)


def test_predict_many_equals_predict_one_by_one_and_caches_the_classifier(synthetic, classifier):
    videos = [str(synthetic[0] / "videos" / "test" / f"{c.replace(' ', '_')}_0000.mp4") for c in CLASSES]
    many = classifier.predict_many(videos, CLASSES, top_k=3)
    cached = classifier._classifiers[tuple(CLASSES)]
    for video, got in zip(videos, many):
        want = classifier.predict(video, CLASSES, top_k=3)
        assert [n for n, _ in got] == [n for n, _ in want]
        assert torch.allclose(torch.tensor([p for _, p in got]), torch.tensor([p for _, p in want]), atol=1e-5)
    assert classifier._classifiers[tuple(CLASSES)] is cached


def test_the_text_classifier_cache_keeps_the_most_recently_used_class_lists(classifier):
    from slowfast.inference import _CACHED_CLASS_LISTS

    first = ["class a", "class b"]
    classifier._use_classes(first)
    for i in range(_CACHED_CLASS_LISTS - 1):
        classifier._use_classes([f"x {i}", f"y {i}"])
        classifier._use_classes(first)  # used again: stays
    classifier._use_classes(["new a", "new b"])  # one list too many: the least recently used goes
    assert len(classifier._classifiers) == _CACHED_CLASS_LISTS
    assert tuple(first) in classifier._classifiers and ("x 0", "y 0") not in classifier._classifiers


_WRITES: list = []  # (event, path) of file-system writes while _RECORDING[0] is set
_RECORDING = [False]


def _record_writes(event, args):
    if not _RECORDING[0]:
        return
    if event == "open" and len(args) >= 3:
        mode, flags = args[1], args[2]
        writing = (isinstance(mode, str) and any(c in mode for c in "wax+")) or (
            isinstance(flags, int) and flags > 0 and flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT))
        if writing:
            _WRITES.append((event, args[0]))
    elif event in ("os.mkdir", "os.rename", "os.remove", "os.symlink", "shutil.copyfile"):
        _WRITES.append((event, args[0]))


sys.addaudithook(_record_writes)  # inert unless a test sets _RECORDING[0]


def test_classifying_writes_no_file(synthetic, classifier, tmp_path):
    import shutil

    videos = tmp_path / "videos"
    videos.mkdir()
    comma = videos / "left, then right.mp4"  # a name no CSV list could hold
    shutil.copy(synthetic[0] / "videos" / "test" / "moving_left_0000.mp4", comma)
    (videos / "empty.mp4").write_bytes(b"")
    _WRITES.clear()
    _RECORDING[0] = True
    try:
        preds = classifier.classify([str(comma), str(videos / "empty.mp4")], CLASSES, top_k=2)
    finally:
        _RECORDING[0] = False
    assert [p.ok for p in preds] == [True, False] and len(preds[0].topk) == 2
    assert "empty.mp4" in preds[1].path and preds[1].reason and preds[1].reason != "could not be decoded"
    assert _WRITES == []


@pytest.mark.slow
def test_api_predict_equals_the_cli_probabilities(synthetic, classifier, tmp_path):
    video = str(synthetic[0] / "videos" / "test" / "moving_up_0000.mp4")
    out = tmp_path / "pred.csv"
    proc = subprocess.run([sys.executable, os.path.join(ROOT, "tools", "demo_net.py"), "--cfg", str(synthetic[1]),
                           "--video", video, "--classes", ",".join(CLASSES), "--top-k", "3", "--csv", str(out)],
                          cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    row = next(csv.DictReader(open(out)))
    cli = {n: float(q) for n, q in (pair.rsplit(":", 1) for pair in row["topk"].split("; "))}
    api = dict(classifier.predict(video, CLASSES, top_k=3))
    assert set(cli) == set(api) and all(abs(cli[n] - api[n]) < 1e-4 for n in CLASSES)


@pytest.mark.slow
def test_an_open_clip_model_name_with_an_open_clip_state_dict_trains_and_tests_end_to_end(synthetic, tmp_path):
    """`MODEL.ARCH <open_clip name> MODEL.CLIP_WEIGHTS <open_clip state dict>`. ViT-B-32 itself is too slow
    for a CPU test, so a tiny GELU ViT given as an open_clip model-config file stands in for the name."""
    arch = tmp_path / "tiny-ViT-B-32.json"
    arch.write_text(json.dumps({"embed_dim": 32, "vision_cfg": {"image_size": 32, "layers": 1, "width": 64,
                                                                 "patch_size": 8, "head_width": 32},
                                "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 32, "heads": 2,
                                             "layers": 1}}))
    torch.manual_seed(0)
    from slowfast.clip.towers import new_clip

    weights = tmp_path / "tiny_open_clip.pt"
    torch.save(new_clip(json.loads(arch.read_text())).state_dict(), weights)
    assert "ViT-B-32" in open_clip.list_models()
    proc = subprocess.run([sys.executable, os.path.join(ROOT, "tools", "run_net.py"), "--cfg", str(synthetic[1]),
                           "--opts", "MODEL.ARCH", str(arch), "MODEL.CLIP_WEIGHTS", str(weights), "MODEL.CHANNEL_FOLD", "8",
                           "OUTPUT_DIR", str(tmp_path / "run")], cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert "top-1" in proc.stdout + proc.stderr
