"""stdd-prepare on mistaken input: a refusal is one line and exit status 2 with nothing written; files with a
byte-order mark are read like any other; repeated rows and classes too small to split are warned about.

Each command runs in this process through its `main` (the `run_cli` fixture)."""

import json
import logging
import os
import re

import pytest
from helpers import ROOT

from slowfast.cli.prepare_dataset import main
from slowfast.datasets.video_list import read_video_csv
from slowfast.utils.class_index import read_class_names

BOM = "\ufeff"
HEADER = "label,youtube_id,time_start,time_end,split\n"


def _status(argv):
    """`main`'s exit status, argparse's own refusals (SystemExit 2) included."""
    try:
        return main(argv)
    except SystemExit as e:
        return e.code


def _write(path, text, bom=False):
    """`text` in UTF-8 (after a byte-order mark with `bom`); a lone surrogate such as "\\udcff" writes that byte
    as it is, which is not UTF-8."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes((BOM if bom else "").encode() + text.encode("utf-8", "surrogateescape"))
    return str(path)


def _kinetics_csv(path, rows, bom=False):
    """An official-format annotation CSV of `(label, youtube_id, time_start)` clips, 10 s long."""
    return _write(path, HEADER + "".join(f"{label},{vid},{s},{s + 10},train\n" for label, vid, s in rows), bom)


def _lists(folder):
    """The files left in `folder` (none when it does not exist)."""
    return sorted(os.listdir(folder)) if os.path.isdir(folder) else []


def _rows(path):
    return [line.split(",") for line in open(path, encoding="utf-8").read().splitlines()]


# ---- refusals: (argv, exit status, the one line on stderr), nothing written ------------------------------
def _kinetics_files(tmp):
    train = _kinetics_csv(tmp / "train.csv", [("abseiling", "a1", 0), ("zumba", "z1", 0)])
    val = _kinetics_csv(tmp / "validate.csv", [("abseiling", "a2", 0)])
    return ["kinetics", "--train", train, "--val", val, "--classes", "annotations", "--out", str(tmp / "out")]


def _only_train_videos(tmp):
    """A video folder holding the training clips but none of the validation clips."""
    for name in ("a1", "z1"):
        _write(tmp / "videos" / "train" / f"{name}_000000_000010.mp4", "x")
    return str(tmp / "videos")


KINETICS_REFUSALS = {
    "video root missing": (
        lambda t: _kinetics_files(t) + ["--video-root", str(t / "nonexistent")],
        r"video folder not found: \S*nonexistent"),
    "no clip of a split under the video root": (
        lambda t: _kinetics_files(t) + ["--video-root", _only_train_videos(t)],
        r"none of the 1 videos of \S*validate\.csv \(val\) is under \S*videos \(the first would be "
        r"\S*videos/val/a2_000000_000010\.mp4\): check the video folder, the file-name pattern and the split "
        r"folder names"),
    "unknown pattern field": (
        lambda t: _kinetics_files(t) + ["--pattern", "{nosuchfield}.mp4"],
        r"video path pattern '\{nosuchfield\}\.mp4': unknown field \{nosuchfield\}; the fields are \{split\} "
        r"\{label\} \{label_underscored\} \{youtube_id\} \{time_start\} \{time_end\}"),
    "pattern checked before the annotations are read": (
        lambda t: ["kinetics", "--val", str(t / "absent.csv"), "--pattern", "{nosuchfield}.mp4", "--out",
                   str(t / "out")],
        r"video path pattern '\{nosuchfield\}\.mp4': unknown field \{nosuchfield\}; the fields are .*"),
    "pattern field without a name": (
        lambda t: _kinetics_files(t) + ["--pattern", "{}.mp4"],
        r"video path pattern '\{\}\.mp4': a field without a name; the fields are .*"),
    "pattern with a bad format": (
        lambda t: _kinetics_files(t) + ["--pattern", "{youtube_id}_{time_start:q}.mp4"],
        r"video path pattern '\{youtube_id\}_\{time_start:q\}\.mp4': Unknown format code 'q' .*; the fields "
        r"are .*"),
    "annotation file with only a header": (
        lambda t: _kinetics_files(t)[:4] + [_write(t / "empty.csv", HEADER)] + _kinetics_files(t)[5:],
        r"\S*empty\.csv: no clips listed \(only the header\)"),
    "k600-zeroshot video root missing": (
        lambda t: ["k600-zeroshot", "--k600", _kinetics_csv(t / "k600.csv", [("a", "b", 0)]), "--video-root",
                   str(t / "nonexistent"), "--out", str(t / "out")],
        r"video folder not found: \S*nonexistent"),
    "k600-zeroshot unknown pattern field": (
        lambda t: ["k600-zeroshot", "--k600", _kinetics_csv(t / "k600.csv", [("a", "b", 0)]), "--pattern",
                   "{video}.mp4", "--out", str(t / "out")],
        r"video path pattern '\{video\}\.mp4': unknown field \{video\}; the fields are .*"),
}


def _ssv2_files(tmp, labels='{"Pushing something": "0", "Pulling something": "1"}',
                validation='[{"id": "7", "template": "Pulling [something]"}]'):
    paths = {"--labels": _write(tmp / "labels.json", labels),
             "--train": _write(tmp / "train.json", '[{"id": "3", "template": "Pushing [something]"}]'),
             "--validation": _write(tmp / "validation.json", validation)}
    return ["ssv2"] + [x for flag, path in paths.items() for x in (flag, path)] + ["--out", str(tmp / "out")]


SSV2_REFUSALS = {
    "labels not JSON": (
        lambda t: _ssv2_files(t, labels='{"Pushing something": "0",\n "Pulling something" "1"}'),
        r"\S*labels\.json:2:22: not valid JSON: Expecting ':' delimiter"),
    "validation JSON cut short, after a good training file": (
        lambda t: _ssv2_files(t, validation='[{"id": "7", "template": "Pulling [something]"}'),
        r"\S*validation\.json:1:48: not valid JSON: Expecting ',' delimiter"),
    "validation not UTF-8": (
        lambda t: _ssv2_files(t, validation='[{"id": "\udcff"}]'),
        r"\S*validation\.json: not UTF-8 text \(byte offset 9: invalid start byte\)"),
    "video root missing": (
        lambda t: _ssv2_files(t) + ["--video-root", str(t / "nonexistent")],
        r"video folder not found: \S*nonexistent"),
    "no video of a split under the video root": (
        lambda t: _ssv2_files(t) + ["--video-root", os.path.dirname(_write(t / "videos" / "3.webm", "x"))],
        r"none of the 1 videos of \S*validation\.json \(val\) is under \S*videos \(the first would be "
        r"\S*videos/7\.webm\): check the video folder and the file extension"),
}


@pytest.mark.parametrize("case", sorted(KINETICS_REFUSALS) + [f"ssv2: {c}" for c in sorted(SSV2_REFUSALS)])
def test_refused_annotations_give_one_line_and_write_nothing(case, tmp_path, run_cli):
    argv_of, expected = SSV2_REFUSALS[case[6:]] if case.startswith("ssv2: ") else KINETICS_REFUSALS[case]
    argv = argv_of(tmp_path)
    code, err = run_cli(_status, argv)
    assert code == 2
    assert re.fullmatch("error: " + expected, err), err
    assert _lists(tmp_path / "out") == []


def _folder_root(tmp, counts):
    for name, n in counts.items():
        for i in range(n):
            _write(tmp / "videos" / name / f"{i}.mp4", "x")
    return str(tmp / "videos")


FOLDER_REFUSALS = [
    (["--val-fraction", "nan"], r"argument --val-fraction: expected a fraction in \[0, 1\), got 'nan'"),
    (["--val-fraction", "inf"], r"argument --val-fraction: expected a fraction in \[0, 1\), got 'inf'"),
    (["--val-fraction", "-0.1"], r"argument --val-fraction: expected a fraction in \[0, 1\), got '-0.1'"),
    (["--val-fraction", "1"], r"argument --val-fraction: expected a fraction in \[0, 1\), got '1'"),
    (["--test-fraction", "1.5"], r"argument --test-fraction: expected a fraction in \[0, 1\), got '1.5'"),
    (["--test-fraction", "a tenth"], r"argument --test-fraction: expected a fraction in \[0, 1\), got 'a tenth'"),
    (["--test-fraction", "NaN"], r"argument --test-fraction: expected a fraction in \[0, 1\), got 'NaN'"),
    (["--val-fraction", "0.6", "--test-fraction", "0.5"],
     r"error: val and test fractions must be >= 0 and sum to < 1 \(got 0.6, 0.5\)"),
]


@pytest.mark.parametrize("flags, expected", FOLDER_REFUSALS, ids=[" ".join(f) for f, _ in FOLDER_REFUSALS])
def test_folder_refuses_a_fraction_outside_zero_to_one_at_parsing(flags, expected, tmp_path, run_cli):
    argv = ["folder", "--root", _folder_root(tmp_path, {"a": 4}), "--out", str(tmp_path / "out")] + flags
    code, err = run_cli(_status, argv)
    assert code == 2
    assert re.fullmatch(r"(prepare_dataset\.py folder: |.*: )?" + expected, err.splitlines()[-1]), err
    assert "Traceback" not in err
    assert _lists(tmp_path / "out") == []


# ---- a UTF-8 byte-order mark is read past in every file ---------------------------------------------------
def test_kinetics_reads_an_annotation_csv_that_starts_with_a_byte_order_mark(tmp_path, run_cli):
    train = _kinetics_csv(tmp_path / "train.csv", [("abseiling", "a1", 5), ("zumba", "z1", 0)], bom=True)
    code, err = run_cli(_status, ["kinetics", "--train", train, "--val", train, "--classes", "annotations",
                                  "--out", str(tmp_path / "out")])
    assert (code, err) == (0, "")
    assert _rows(tmp_path / "out" / "train.csv") == [["train/a1_000005_000015.mp4", "0"],
                                                     ["train/z1_000000_000010.mp4", "1"]]
    assert read_class_names(str(tmp_path / "out" / "index2cls.json")) == ["abseiling", "zumba"]


def test_ucf101_and_hmdb51_text_files_with_a_byte_order_mark(tmp_path, run_cli):
    ann = tmp_path / "ucf"
    _write(ann / "classInd.txt", "1 ApplyEyeMakeup\n2 YoYo\n", bom=True)
    _write(ann / "trainlist01.txt", "ApplyEyeMakeup/v_a.avi 1\n", bom=True)
    _write(ann / "testlist01.txt", "YoYo/v_b.avi\n", bom=True)
    for n in (2, 3):
        _write(ann / f"trainlist0{n}.txt", "ApplyEyeMakeup/v_a.avi 1\n")
        _write(ann / f"testlist0{n}.txt", "YoYo/v_b.avi\n")
    code, err = run_cli(_status, ["ucf101", "--annotations", str(ann), "--classes", "annotations",
                                  "--out", str(tmp_path / "u")])
    assert (code, err) == (0, "")
    assert read_class_names(str(tmp_path / "u" / "ucf101-index2cls.json")) == ["Apply Eye Makeup", "Yoyo"]
    assert _rows(tmp_path / "u" / "ucf101_split1" / "train.csv") == [["ApplyEyeMakeup/v_a.avi", "0"]]
    for name in ("brush_hair", "wave"):
        for n in (1, 2, 3):
            _write(tmp_path / "hmdb" / f"{name}_test_split{n}.txt", "x.avi 1\ny.avi 2\n", bom=True)
    code, err = run_cli(_status, ["hmdb51", "--splits-dir", str(tmp_path / "hmdb"), "--classes", "annotations",
                                  "--out", str(tmp_path / "h")])
    assert (code, err) == (0, "")
    assert _rows(tmp_path / "h" / "hmdb_split1" / "train.csv") == [["brush_hair/x.avi", "0"], ["wave/x.avi", "1"]]


def test_ssv2_and_k600_json_files_with_a_byte_order_mark(tmp_path, run_cli):
    argv = _ssv2_files(tmp_path)
    for flag in ("--labels", "--train", "--validation"):
        path = argv[argv.index(flag) + 1]
        _write(tmp_path / os.path.basename(path), open(path, encoding="utf-8").read(), bom=True)
    code, err = run_cli(_status, argv)
    assert code == 0 and "warning" not in err
    assert _rows(tmp_path / "out" / "test.csv") == [["7.webm", "1"]]
    k600 = _kinetics_csv(tmp_path / "k600.csv", [("new a", "a", 0), ("new b", "b", 0)], bom=True)
    lists = _write(tmp_path / "lists.json", json.dumps([["new b", "new a"], ["new a"], ["new b"]]), bom=True)
    code, err = run_cli(_status, ["k600-zeroshot", "--k600", k600, "--class-lists", lists,
                                  "--out", str(tmp_path / "k")])
    assert (code, err) == (0, "")
    assert _rows(tmp_path / "k" / "k600_split3" / "test.csv") == [["val/b_000000_000010.mp4", "0"]]


# ---- repeated rows ------------------------------------------------------------------------------------
def test_a_video_list_with_repeated_rows_reads_each_video_once_and_warns_once(tmp_path, caplog):
    csv_path = _write(tmp_path / "test.csv", "a.mp4,0\nb.mp4,1\na.mp4,0\n\na.mp4,0\na.mp4,1\n")
    with caplog.at_level(logging.WARNING, logger="slowfast.datasets"):
        entries = read_video_csv(csv_path, ",", "videos", num_classes=2)
    assert [(os.path.basename(e.path), e.label) for e in entries] == [("a.mp4", 0), ("b.mp4", 1), ("a.mp4", 1)]
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert warnings[0].startswith(f"{csv_path}: 2 duplicate rows (the same path and label as an earlier row; "
                                  "the first at line 3) left out")


def test_a_training_list_keeps_its_repeated_rows_and_warns_once(tmp_path, caplog):
    csv_path = _write(tmp_path / "train.csv", "a.mp4,0\nb.mp4,1\na.mp4,0\na.mp4,0\n")
    with caplog.at_level(logging.WARNING, logger="slowfast.datasets"):
        entries = read_video_csv(csv_path, ",", "videos", num_classes=2, keep_repeats=True)
    assert [(os.path.basename(e.path), e.label) for e in entries] == [("a.mp4", 0), ("b.mp4", 1), ("a.mp4", 0), ("a.mp4", 0)]
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "2 duplicate rows" in warnings[0] and "kept" in warnings[0]


def test_kinetics_drops_repeated_annotation_rows_and_says_how_many(tmp_path, run_cli, capsys):
    train = _kinetics_csv(tmp_path / "train.csv", [("abseiling", "a1", 0), ("abseiling", "a1", 0),
                                                   ("zumba", "z1", 0), ("abseiling", "a1", 0), ("zumba", "a1", 0)])
    val = _kinetics_csv(tmp_path / "validate.csv", [("zumba", "z2", 0), ("zumba", "z2", 0)])
    code, err = run_cli(_status, ["kinetics", "--train", train, "--val", val, "--classes", "annotations",
                                  "--out", str(tmp_path / "out")])
    assert code == 0
    assert err.splitlines() == [
        f"warning: {train}: 2 duplicate rows (the same label, youtube_id, time_start and time_end as an earlier "
        "row) dropped",
        f"warning: {val}: 1 duplicate rows (the same label, youtube_id, time_start and time_end as an earlier "
        "row) dropped"]
    summary = json.loads(capsys.readouterr().out)
    assert summary["duplicates"] == {"train": 2, "val": 1, "test": 1}
    assert _rows(tmp_path / "out" / "train.csv") == [["train/a1_000000_000010.mp4", "0"],
                                                     ["train/z1_000000_000010.mp4", "1"],
                                                     ["train/a1_000000_000010.mp4", "1"]]
    assert _rows(tmp_path / "out" / "test.csv") == [["val/z2_000000_000010.mp4", "1"]]


# ---- small classes in a folder dataset ------------------------------------------------------------------
def test_folder_puts_a_video_in_each_split_of_a_class_of_three_and_names_the_smaller_ones(tmp_path, run_cli):
    root = _folder_root(tmp_path, {"three": 3, "five": 5, "two": 2, "one": 1})
    code, err = run_cli(_status, ["folder", "--root", root, "--out", str(tmp_path / "out")])
    assert code == 0
    assert err == ("warning: 2 classes have too few videos to split (one for each of train, val, test needed), "
                   "all in train.csv: 'one' (1 video), 'two' (2 videos)")
    labels = {name: i for i, name in enumerate(read_class_names(str(tmp_path / "out" / "index2cls.json")))}
    count = {s: [int(label) for _, label in _rows(tmp_path / "out" / f"{s}.csv")] for s in ("train", "val", "test")}
    for split in ("val", "test"):
        assert sorted(count[split]) == sorted([labels["three"], labels["five"]])
    assert sorted(count["train"]) == sorted([labels["three"]] + [labels["five"]] * 3 + [labels["two"]] * 2
                                            + [labels["one"]])


def test_folder_without_a_test_split_needs_two_videos_per_class(tmp_path, run_cli):
    root = _folder_root(tmp_path, {"two": 2, "one": 1})
    code, err = run_cli(_status, ["folder", "--root", root, "--out", str(tmp_path / "out"), "--test-fraction", "0"])
    assert code == 0
    assert err == ("warning: 1 classes have too few videos to split (one for each of train, val needed), all in "
                   "train.csv: 'one' (1 video)")
    assert [r[0].split("/")[0] for r in _rows(tmp_path / "out" / "val.csv")] == ["two"]
    assert _rows(tmp_path / "out" / "test.csv") == []


# ---- --help ------------------------------------------------------------------------------------------------
def _outputs(text):
    """{command: its --out} of the example command lines in `text` (continued lines joined)."""
    text = re.sub(r"\\\n\s+", " ", text)
    return dict(re.findall(r"prepare_dataset\.py ([a-z0-9-]+) [^`\n]*?--out ([^`\s\]]+)", text))


def test_help_examples_agree_with_the_docs_and_have_no_runs_of_spaces(capsys):
    with pytest.raises(SystemExit):
        main(["--help"])
    help_text = capsys.readouterr().out
    with open(os.path.join(ROOT, "docs", "data.md"), encoding="utf-8") as f:
        docs = _outputs(f.read())
    shown = _outputs(help_text)
    assert set(shown) >= {"kinetics", "ucf101", "hmdb51", "k600-zeroshot", "folder", "ssv2"}
    assert {c: docs.get(c) for c in shown} == shown
    examples = [line.strip() for line in help_text.splitlines() if "prepare_dataset.py " in line]
    assert examples and not [line for line in examples if "  " in line]
