"""Classifying your own videos: what `VideoClassifier` and `stdd-demo` refuse (one rule for both, checked before
any inference, one line naming the argument or flag and your path), and the documented way to try both with the
embedded model, run as written."""

import ast
import csv
import os
import re
import shlex
import shutil

import pytest
import yaml
from helpers import ROOT, make_tiny_synthetic

from slowfast.cli.demo_net import main as demo_main
from slowfast.engine.video_io import parse_classes
from slowfast.errors import UserError
from slowfast.inference import VideoClassifier

CLASSES = ["moving left", "moving right", "moving up"]
MISSING_CLIP = "no-such-clip.pt"  # a model built after a late check would stop on these weights instead
EMBEDDED = "configs/Synthetic/STDD_custom_8x2.yaml"


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory):
    root = tmp_path_factory.mktemp("synthetic")
    cfg = make_tiny_synthetic(root, tmp_path_factory.mktemp("out"))
    return str(cfg), str(root / "videos" / "test" / "moving_left_0000.mp4")


@pytest.fixture(scope="module")
def classifier(synthetic):
    return VideoClassifier.from_config(synthetic[0])


# ---- the Python API --------------------------------------------------------------------------------------------
API_REFUSALS = [
    pytest.param("predict", lambda v: (v, "abc"), {},
                 "class names must be a list of strings, not one string (the classes argument): 'abc' would be read "
                 "letter by letter; write ['abc', ...]", id="classes-as-one-string"),
    pytest.param("predict_many", lambda v: ("v.mp4", CLASSES), {},
                 "videos must be a list of video paths, not one path ('v.mp4'); write ['v.mp4'] or use predict for "
                 "one video", id="videos-as-one-path"),
    pytest.param("predict", lambda v: ([v], CLASSES), {},
                 "video must be a video path (str), not list; for several videos use predict_many", id="video-as-a-list"),
    pytest.param("predict", lambda v: (v, ["only"]), {},
                 "give at least two class names (the classes argument); got only 'only'", id="one-class"),
    pytest.param("predict", lambda v: (v, ["a", " "]), {},
                 "every class name must be a non-blank string (the classes argument); got ' '", id="blank-class"),
    pytest.param("predict", lambda v: (v, CLASSES), {"top_k": 0}, "top_k must be a positive integer, got 0", id="top-k-0"),
    pytest.param("predict", lambda v: (v, CLASSES), {"top_k": -1}, "top_k must be a positive integer, got -1",
                 id="top-k-negative"),
    pytest.param("predict", lambda v: ("missing.mp4", CLASSES), {}, "video='missing.mp4': file not found",
                 id="missing-video"),
    pytest.param("predict_many", lambda v: ([v, "missing.mp4"], CLASSES), {}, "videos[1]='missing.mp4': file not found",
                 id="missing-video-in-a-list"),
    pytest.param("predict_many", lambda v: ([v, "broken.mp4"], CLASSES), {},
                 "videos[1]='broken.mp4': InvalidDataError: [Errno 1094995529] Invalid data found when processing "
                 "input: 'broken.mp4'", id="undecodable-video-named-as-given"),
]


@pytest.mark.parametrize("method, args, kwargs, line", API_REFUSALS)
def test_the_api_refuses_a_bad_argument_with_one_line_naming_it(classifier, synthetic, tmp_path, monkeypatch,
                                                                 method, args, kwargs, line):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "broken.mp4").write_bytes(b"\x00garbage" * 100)
    with pytest.raises(UserError) as e:
        getattr(classifier, method)(*args(synthetic[1]), **kwargs)
    assert str(e.value) == line


def test_top_k_above_the_number_of_classes_gives_every_class_best_first(classifier, synthetic):
    preds = classifier.predict(synthetic[1], CLASSES, top_k=10)
    assert sorted(n for n, _ in preds) == sorted(CLASSES)
    assert [p for _, p in preds] == sorted((p for _, p in preds), reverse=True)


def test_a_missing_checkpoint_is_named_before_the_clip_weights_are_looked_up(synthetic, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(UserError) as e:
        VideoClassifier.from_config(synthetic[0], checkpoint="missing.pyth", opts=["MODEL.CLIP_WEIGHTS", MISSING_CLIP])
    assert str(e.value) == "checkpoint='missing.pyth': file not found"


def test_a_crop_size_the_clip_cannot_take_is_refused_when_the_model_is_built():
    from slowfast.config import get_cfg

    path = os.path.join(ROOT, "configs", "Kinetics", "STDD_vitb16_8x16_k400.yaml")
    crop = yaml.safe_load(open(path, encoding="utf-8"))["DATA"]["TEST_CROP_SIZE"]
    size = get_cfg().MODEL.CUSTOM_CLIP.IMAGE_RESOLUTION
    assert crop != size
    with pytest.raises(UserError) as e:
        VideoClassifier.from_config(path, opts=["MODEL.ARCH", "custom"])
    assert str(e.value) == (f"DATA.TEST_CROP_SIZE is {crop} but the model's CLIP (MODEL.ARCH custom) takes {size}x{size} "
                            f"images; set DATA.TEST_CROP_SIZE {size} (or MODEL.CUSTOM_CLIP.IMAGE_RESOLUTION {crop})")


def test_a_classes_file_with_a_byte_order_mark_gives_clean_names(tmp_path):
    path = tmp_path / "classes.txt"
    path.write_bytes("# my classes\nmoving left\nmoving right\n".encode("utf-8-sig"))
    assert parse_classes(classes_file=str(path)) == ["moving left", "moving right"]


# ---- the command line ------------------------------------------------------------------------------------------
def _lit(text: str) -> str:
    return re.escape(text)


ON_PROC = pytest.mark.skipif(not os.path.isdir("/proc"), reason="needs /proc, where nobody, root included, can create a file")
# (flags before --opts, exit status, the one line as a regex, the path that must not exist afterwards); {tmp} is the
# test's folder (the working directory), {video} a readable video. Every run ends in --opts MODEL.CLIP_WEIGHTS
# <missing file>: a refusal that came after the model was built would be that file's line instead.
CLI_REFUSALS = [
    pytest.param(["--classes", "a,b"], 1, _lit(f"error: CLIP weights file not found: {MISSING_CLIP}"), None,
                 id="control-the-model-is-built-last"),
    pytest.param(["--classes", "a,b", "--checkpoint", "missing.pyth"], 1,
                 _lit("error: --checkpoint missing.pyth: file not found"), None, id="missing-checkpoint"),
    pytest.param(["--classes", "a,b", "--output", "/proc/annot.mp4"], 1,
                 _lit("error: --output /proc/annot.mp4: folder /proc is not writable (") + r".+\)", "/proc/annot.mp4",
                 marks=ON_PROC, id="output-where-nothing-can-be-written"),
    pytest.param(["--classes", "a,b", "--csv", "/proc/predictions.csv"], 1,
                 _lit("error: --csv /proc/predictions.csv: folder /proc is not writable (") + r".+\)",
                 "/proc/predictions.csv", marks=ON_PROC, id="csv-where-nothing-can-be-written"),
    pytest.param(["--classes", "a,b", "--output", "notes.txt/annot.mp4"], 1,
                 _lit("error: --output notes.txt/annot.mp4: {tmp}/notes.txt is a file, not a folder"),
                 "notes.txt/annot.mp4", id="output-under-a-file"),
    pytest.param(["--classes", "a,b", "--csv", "notes.txt/p.csv"], 1,
                 _lit("error: --csv notes.txt/p.csv: {tmp}/notes.txt is a file, not a folder"), "notes.txt/p.csv",
                 id="csv-under-a-file"),
    pytest.param(["--classes-file", "bom.txt"], 1,
                 _lit("error: give at least two class names (--classes \"a,b,c\" or --classes-file FILE); got only 'only'"),
                 None, id="byte-order-mark-not-in-the-name"),
    pytest.param(["--classes", "only"], 1,
                 _lit("error: give at least two class names (--classes \"a,b,c\" or --classes-file FILE); got only 'only'"),
                 None, id="one-class"),
    pytest.param(["--classes", "a,b", "--top-k", "0"], 1, _lit("error: --top-k must be a positive integer, got 0"), None,
                 id="top-k-0"),
    pytest.param(["--classes", "a,b", "--top-k", "-1"], 1, _lit("error: --top-k must be a positive integer, got -1"),
                 None, id="top-k-negative"),
]


def _tree(folder) -> list[str]:
    return sorted(os.path.relpath(os.path.join(d, f), folder) for d, _, files in os.walk(folder) for f in files)


@pytest.mark.parametrize("flags, code, line, absent", CLI_REFUSALS)
def test_stdd_demo_refuses_before_building_the_model(synthetic, tmp_path, monkeypatch, run_cli, flags, code, line, absent):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "notes.txt").write_text("not a folder\n")
    (tmp_path / "bom.txt").write_bytes("only\n".encode("utf-8-sig"))
    before = _tree(tmp_path)
    got, err = run_cli(demo_main, ["--cfg", synthetic[0], "--video", synthetic[1], *flags,
                                   "--opts", "MODEL.CLIP_WEIGHTS", MISSING_CLIP])
    assert got == code and "Traceback" not in err
    assert re.fullmatch(line.replace(re.escape("{tmp}"), re.escape(str(tmp_path))), err.splitlines()[-1]), err
    assert _tree(tmp_path) == before  # no probe file or partial output left behind
    assert absent is None or not os.path.exists(absent)


def test_stdd_demo_reads_a_classes_file_with_a_byte_order_mark(synthetic, tmp_path, run_cli):
    classes = tmp_path / "classes.txt"
    classes.write_bytes("moving left\nmoving right\n".encode("utf-8-sig"))
    out = tmp_path / "p.csv"
    code, err = run_cli(demo_main, ["--cfg", synthetic[0], "--video", synthetic[1], "--classes-file", str(classes),
                                    "--top-k", "2", "--csv", str(out)])
    assert code == 0, err
    row = next(csv.DictReader(open(out, encoding="utf-8")))
    assert sorted(pair.rsplit(":", 1)[0] for pair in row["topk"].split("; ")) == ["moving left", "moving right"]


# ---- the documented first try: the embedded config, then the checkpoint `make demo` writes ---------------------
DOCS = ["README.md", os.path.join("docs", "inference.md")]


def _blocks(doc: str, language: str) -> list[str]:
    """The `language` code blocks of `doc` that use the embedded config."""
    text = open(os.path.join(ROOT, doc), encoding="utf-8").read()
    return [b for b in re.findall(rf"```{language}\n(.*?)```", text, re.S) if EMBEDDED in b]


@pytest.fixture(scope="module")
def demo_root(tmp_path_factory):
    """A folder standing in for the repository's root after `make demo`: configs/, the synthetic test videos and the
    last STDD checkpoint where `make demo` (tools/run_demo.py) writes them, and v.mp4; returns it and that
    checkpoint's relative path. The checkpoint holds the untrained model (training is not what is tested)."""
    from slowfast.cli import run_demo
    from slowfast.datasets.synthetic import SyntheticSpec, make_synthetic_dataset
    from slowfast.models import build_model
    from slowfast.utils.checkpoint import save_checkpoint

    root = tmp_path_factory.mktemp("repo")
    os.symlink(os.path.join(ROOT, "configs"), root / "configs")
    out = run_demo.parse_args([]).out
    data = os.path.join(out, "dataset")  # run_demo's default --data
    make_synthetic_dataset(str(root / data), SyntheticSpec(train_per_class=1, val_per_class=1, test_per_class=1,
                                                           zero_shot_per_class=1))
    shutil.copy(root / data / "videos" / "test" / "moving_right_0000.mp4", root / "v.mp4")
    name, *_, cfg_file = run_demo.RUNS[0]
    cfg = run_demo._config(cfg_file, os.path.join(out, name), data, [])
    model = build_model(cfg, class_names=["moving left", "moving right"])
    saved = save_checkpoint(str(root / cfg.OUTPUT_DIR), model, None, cfg.SOLVER.MAX_EPOCH - 1, cfg)
    return root, os.path.relpath(saved, root)


@pytest.mark.parametrize("doc", DOCS)
def test_the_documented_demo_checkpoint_is_the_one_make_demo_writes(demo_root, doc):
    text = open(os.path.join(ROOT, doc), encoding="utf-8").read()
    named = set(re.findall(r"output/demo/\S*?\.pyth", text))
    assert named == {demo_root[1].replace(os.sep, "/")}


@pytest.mark.parametrize("doc", DOCS)
def test_the_documented_python_api_runs_as_written(demo_root, doc, monkeypatch, capsys):
    blocks = _blocks(doc, "python")
    assert blocks, f"{doc} shows no Python example with {EMBEDDED}"
    monkeypatch.chdir(demo_root[0])
    for block in blocks:
        exec(compile(block, doc, "exec"), {"__name__": "__doc_example__"})
    printed = [ast.literal_eval(line) for line in capsys.readouterr().out.splitlines() if line.startswith("[(")]
    assert printed and all(len(p) == 2 and p[0][1] >= p[1][1] and all(n.startswith("moving ") for n, _ in p)
                           for p in printed)


@pytest.mark.parametrize("doc", DOCS)
def test_the_documented_stdd_demo_commands_run_as_written(demo_root, doc, monkeypatch, run_cli, capsys):
    commands = [shlex.split(line, comments=True) for block in _blocks(doc, "bash")
                for line in block.replace("\\\n", " ").splitlines() if line.strip()]
    assert commands and {c[0] for c in commands} <= {"stdd-demo", "make"}, commands
    assert all(c == ["make", "demo"] for c in commands if c[0] == "make")  # what the fixture stands in for
    monkeypatch.chdir(demo_root[0])
    for command in (c for c in commands if c[0] == "stdd-demo"):
        code, err = run_cli(demo_main, command[1:])
        assert code == 0, (command, err)
        ranks = [line.split()[0] for line in capsys.readouterr().out.splitlines() if re.match(r"\s+\d\. moving ", line)]
        assert ranks[:2] == ["1.", "2."], command
