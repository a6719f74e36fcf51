"""tools/prepare_dataset.py on small fake annotation files in the official formats."""

import json
import os
import subprocess
import sys

import pytest
from helpers import ROOT

from slowfast.datasets import class_lists, prepare
from slowfast.datasets.video_list import read_video_csv
from slowfast.utils.class_index import read_class_names


def _rows(path):
    return [line.split(",") for line in open(path).read().splitlines()]


def test_ucf101_lists_become_split_csvs_and_readable_class_names(tmp_path):
    ann = tmp_path / "ucfTrainTestlist"
    ann.mkdir()
    (ann / "classInd.txt").write_text("1 ApplyEyeMakeup\n2 HandstandPushups\n3 YoYo\n")
    for n in (1, 2, 3):
        (ann / f"trainlist0{n}.txt").write_text(
            "ApplyEyeMakeup/v_ApplyEyeMakeup_g08_c01.avi 1\nYoYo/v_YoYo_g09_c02.avi 3\n"
        )
        (ann / f"testlist0{n}.txt").write_text(
            "HandstandPushups/v_HandStandPushups_g01_c01.avi\nYoYo/v_YoYo_g01_c01.avi\n"
        )
    prepare.prepare_ucf101(str(ann), str(tmp_path / "out"))
    names = read_class_names(str(tmp_path / "out" / "ucf101-index2cls.json"))
    assert names == ["Apply Eye Makeup", "Handstand Pushups", "Yoyo"]
    split = tmp_path / "out" / "ucf101_split2"
    assert _rows(split / "test.csv") == [["HandstandPushups/v_HandStandPushups_g01_c01.avi", "1"],
                                         ["YoYo/v_YoYo_g01_c01.avi", "2"]]
    assert _rows(split / "val.csv") == _rows(split / "test.csv")
    assert _rows(split / "train.csv")[1] == ["YoYo/v_YoYo_g09_c02.avi", "2"]


def test_ucf101_unknown_class_folder_names_file_and_line(tmp_path):
    (tmp_path / "classInd.txt").write_text("1 ApplyEyeMakeup\n")
    (tmp_path / "trainlist01.txt").write_text("ApplyEyeMakeup/a.avi 1\nBowling/b.avi 2\n")
    with pytest.raises(prepare.PrepareError, match=r"trainlist01\.txt:2: class folder 'Bowling'"):
        prepare.prepare_ucf101(str(tmp_path), str(tmp_path / "out"), splits=(1,))


def test_hmdb51_split_ids_one_train_two_test_zero_unused(tmp_path):
    splits = tmp_path / "splits"
    splits.mkdir()
    for n in (1, 2, 3):
        (splits / f"fall_floor_test_split{n}.txt").write_text("a.avi 1 \nb.avi 2 \nc.avi 0 \n")
        (splits / f"brush_hair_test_split{n}.txt").write_text("d.avi 2 \ne.avi 1 \n")
    prepare.prepare_hmdb51(str(splits), str(tmp_path / "out"))
    assert read_class_names(str(tmp_path / "out" / "hmdb-index2cls.json")) == ["brush hair", "fall floor"]
    out = tmp_path / "out" / "hmdb_split1"
    assert _rows(out / "train.csv") == [["brush_hair/e.avi", "0"], ["fall_floor/a.avi", "1"]]
    assert _rows(out / "test.csv") == [["brush_hair/d.avi", "0"], ["fall_floor/b.avi", "1"]]


def _kinetics_csv(path, rows):
    lines = ["label,youtube_id,time_start,time_end,split"]
    lines += [f"{label},{vid},{s},{s + 10},train" for label, vid, s in rows]
    path.write_text("\n".join(lines) + "\n")
    return str(path)


def test_kinetics_annotations_become_lists_with_alphabetical_classes(tmp_path):
    train = _kinetics_csv(tmp_path / "train.csv", [("zumba", "abc", 5), ("abseiling", "xyz", 120)])
    val = _kinetics_csv(tmp_path / "validate.csv", [("abseiling", "qqq", 0)])
    prepare.prepare_kinetics(str(tmp_path / "k400"), train, val)
    out = tmp_path / "k400"
    assert read_class_names(str(out / "index2cls.json")) == ["abseiling", "zumba"]
    assert _rows(out / "train.csv") == [["train/abc_000005_000015.mp4", "1"], ["train/xyz_000120_000130.mp4", "0"]]
    assert _rows(out / "test.csv") == [["val/qqq_000000_000010.mp4", "0"]]
    entries = read_video_csv(str(out / "val.csv"), ",", "/videos", num_classes=2)
    assert entries[0].path == "/videos/val/qqq_000000_000010.mp4"


def test_kinetics_missing_videos_are_left_out_when_a_video_root_is_given(tmp_path):
    train = _kinetics_csv(tmp_path / "train.csv", [("a", "have", 1), ("a", "lost", 2)])
    (tmp_path / "videos" / "train").mkdir(parents=True)
    (tmp_path / "videos" / "train" / "have_000001_000011.mp4").write_bytes(b"x")
    summary = prepare.prepare_kinetics(str(tmp_path / "out"), train, train, video_root=str(tmp_path / "videos"),
                                       split_dirs={"val": "train"})
    assert summary["train"] == 1 and summary["missing"]["train"] == 1


def test_k600_zeroshot_splits_hold_only_novel_classes_and_are_seeded(tmp_path):
    k400 = tmp_path / "k400.json"
    k400.write_text(json.dumps({str(i): f"old {i}" for i in range(5)}))
    rows = [(f"old {i}", f"o{i}", 0) for i in range(5)] + [(f"new {i:02d}", f"n{i}", 0) for i in range(12)]
    k600 = _kinetics_csv(tmp_path / "k600_val.csv", rows)
    prepare.prepare_k600_zeroshot(k600, str(k400), str(tmp_path / "a"), seed=1, num_classes=8, random_splits=True)
    prepare.prepare_k600_zeroshot(k600, str(k400), str(tmp_path / "b"), seed=1, num_classes=8, random_splits=True)
    splits = [read_class_names(str(tmp_path / "a" / f"k600_split{s}" / "index2cls.json")) for s in (1, 2, 3)]
    assert all(len(n) == 8 and n == sorted(n) and all(c.startswith("new") for c in n) for n in splits)
    assert splits[0] != splits[1]
    assert (tmp_path / "a" / "k600_split2" / "test.csv").read_text() == (tmp_path / "b" / "k600_split2" / "test.csv").read_text()
    assert len(_rows(tmp_path / "a" / "k600_split1" / "test.csv")) == 8


def test_k600_zeroshot_uses_given_class_lists(tmp_path):
    k400 = _kinetics_csv(tmp_path / "k400.csv", [("old", "o", 0)])
    k600 = _kinetics_csv(tmp_path / "k600.csv", [("old", "o", 0), ("new b", "b", 0), ("new a", "a", 0)])
    lists = tmp_path / "lists.json"
    lists.write_text(json.dumps([["new b", "new a"], ["new a"], ["new b"]]))
    prepare.prepare_k600_zeroshot(k600, k400, str(tmp_path / "out"), class_lists=str(lists))
    assert read_class_names(str(tmp_path / "out" / "k600_split1" / "index2cls.json")) == ["new a", "new b"]
    assert _rows(tmp_path / "out" / "k600_split3" / "test.csv") == [["val/b_000000_000010.mp4", "0"]]


def test_folder_dataset_is_split_per_class_with_a_seed(tmp_path):
    root = tmp_path / "videos"
    for c in ("jumping_jacks", "waving"):
        (root / c).mkdir(parents=True)
        for i in range(10):
            (root / c / f"{i}.mp4").write_bytes(b"x")
    (root / "waving" / "notes.txt").write_text("not a video")
    summary = prepare.prepare_folder(str(root), str(tmp_path / "out"), 0.2, 0.1, seed=0)
    assert summary == {"classes": 2, "train": 14, "val": 4, "test": 2}
    assert read_class_names(str(tmp_path / "out" / "index2cls.json")) == ["jumping jacks", "waving"]
    all_rows = sum((_rows(tmp_path / "out" / f"{s}.csv") for s in ("train", "val", "test")), [])
    assert len({p for p, _ in all_rows}) == 20


def test_cli_reports_a_bad_annotation_file_without_a_traceback(tmp_path):
    (tmp_path / "classInd.txt").write_text("one ApplyEyeMakeup\n")
    r = subprocess.run([sys.executable, os.path.join(ROOT, "tools", "prepare_dataset.py"), "ucf101",
                        "--annotations", str(tmp_path), "--out", str(tmp_path / "o")], capture_output=True, text=True)
    assert r.returncode == 2 and "classInd.txt:1" in r.stderr and "Traceback" not in r.stderr


# ---- the benchmarks' class lists shipped in label_db/ ----------------------------------------------
SHARED_LISTS = os.path.join(os.path.dirname(ROOT), "shared", "data", "class_lists")
# (source file beside the clone, classes, first, last): checked even on a clone without that folder.
SHIPPED = {
    "k400": ("kinetics400.txt", 400, "abseiling", "zumba"),
    "k600": ("kinetics600.txt", 600, "abseiling", "zumba"),
    "ucf101": ("ucf101.txt", 101, "Apply Eye Makeup", "Yoyo"),
    "hmdb51": ("hmdb51.txt", 51, "brush hair", "wave"),
    "k600_split1": ("kinetics600_zeroshot_split1.txt", 160, "acting in play", "yarn spinning"),
    "k600_split2": ("kinetics600_zeroshot_split2.txt", 160, None, None),
    "k600_split3": ("kinetics600_zeroshot_split3.txt", 160, None, None),
}


@pytest.mark.parametrize("name", sorted(SHIPPED))
def test_shipped_class_list_has_the_benchmark_classes_in_class_index_order(name):
    source, count, first, last = SHIPPED[name]
    names = class_lists.shipped_classes(name)
    assert len(names) == count == len(set(names))
    if first is not None:
        assert (names[0], names[-1]) == (first, last)
    reference = os.path.join(SHARED_LISTS, source)
    if os.path.isfile(reference):
        assert names == open(reference, encoding="utf-8").read().splitlines()


def test_shipped_k600_splits_hold_only_kinetics600_classes_absent_from_kinetics400():
    k400, k600 = set(class_lists.shipped_classes("k400")), set(class_lists.shipped_classes("k600"))
    splits = [class_lists.shipped_classes(f"k600_split{s}") for s in (1, 2, 3)]
    assert all(set(s) <= k600 and not set(s) & k400 and s == sorted(s) for s in splits)
    assert len({tuple(s) for s in splits}) == 3


def _ucf_annotations(path, folders):
    path.mkdir()
    (path / "classInd.txt").write_text("".join(f"{i} {f}\n" for i, f in enumerate(folders, 1)))
    for n in (1, 2, 3):
        (path / f"trainlist0{n}.txt").write_text(f"{folders[0]}/v_a.avi 1\n")
        (path / f"testlist0{n}.txt").write_text(f"{folders[-1]}/v_b.avi\n")
    return str(path)


def _ucf_folders():
    return ["".join(w[:1].upper() + w[1:] for w in n.split()) for n in class_lists.shipped_classes("ucf101")]


def test_ucf101_official_lists_match_the_shipped_class_list(tmp_path):
    folders = _ucf_folders()
    folders[folders.index("Yoyo")] = "YoYo"  # "Yo Yo", spelled "Yoyo" in the shipped list
    folders[folders.index("HandstandPushups")] = "HandStandPushups"  # the spelling of the video files
    ann = _ucf_annotations(tmp_path / "ann", folders)
    prepare.prepare_ucf101(ann, str(tmp_path / "out"), class_index=class_lists.shipped_path("ucf101"))
    assert read_class_names(str(tmp_path / "out" / "ucf101-index2cls.json")) == class_lists.shipped_classes("ucf101")


def test_ucf101_renamed_class_is_named_against_the_shipped_list(tmp_path):
    folders = _ucf_folders()
    folders[folders.index("Archery")] = "Archer"
    ann = _ucf_annotations(tmp_path / "ann", folders)
    with pytest.raises(prepare.PrepareError, match=r"missing: 'Archery'.*not in ucf101-index2cls\.json: 'Archer' \(renamed 'Archery'\?\)"):
        prepare.prepare_ucf101(ann, str(tmp_path / "out"), class_index=class_lists.shipped_path("ucf101"))


def test_hmdb51_missing_class_is_named_against_the_shipped_list(tmp_path):
    splits = tmp_path / "splits"
    splits.mkdir()
    for name in class_lists.shipped_classes("hmdb51"):
        if name != "kiss":
            for n in (1, 2, 3):
                (splits / f"{name.replace(' ', '_')}_test_split{n}.txt").write_text("a.avi 2\n")
    with pytest.raises(prepare.PrepareError, match=r"50 classes.*missing: 'kiss'"):
        prepare.prepare_hmdb51(str(splits), str(tmp_path / "out"), class_index=class_lists.shipped_path("hmdb51"))


def test_kinetics_labels_follow_the_shipped_list_and_spelling_variants_are_accepted(tmp_path):
    k400 = class_lists.shipped_classes("k400")
    rows = [(name.replace(" ", "_") if i % 2 else name, f"v{i}", 0) for i, name in enumerate(k400)]
    train = _kinetics_csv(tmp_path / "train.csv", rows)
    val = _kinetics_csv(tmp_path / "validate.csv", rows[:3])
    prepare.prepare_kinetics(str(tmp_path / "out"), train, val, class_index=class_lists.shipped_path("k400"))
    assert read_class_names(str(tmp_path / "out" / "index2cls.json")) == k400
    assert [int(r[1]) for r in _rows(tmp_path / "out" / "train.csv")] == list(range(400))


def test_kinetics_renamed_class_is_named_with_its_likely_original(tmp_path):
    k400 = class_lists.shipped_classes("k400")
    rows = [("dyeing hair" if n == "dying hair" else n, f"v{i}", 0) for i, n in enumerate(k400)]
    train = _kinetics_csv(tmp_path / "train.csv", rows)
    with pytest.raises(prepare.PrepareError, match=r"'dyeing hair' \(renamed 'dying hair'\?\)"):
        prepare.prepare_kinetics(str(tmp_path / "out"), train, train, class_index=class_lists.shipped_path("k400"))


def _k600_annotations(tmp_path, drop=None):
    names = sorted({n for s in (1, 2, 3) for n in class_lists.shipped_classes(f"k600_split{s}")} | {"abseiling"})
    rows = [(n, f"y{i}", 0) for i, n in enumerate(names) if n != drop]
    return _kinetics_csv(tmp_path / "k600_validate.csv", rows)


def test_k600_zeroshot_uses_the_shipped_er_zsar_splits_by_default(tmp_path):
    prepare.prepare_k600_zeroshot(_k600_annotations(tmp_path), None, str(tmp_path / "out"))
    for s in (1, 2, 3):
        names = read_class_names(str(tmp_path / "out" / f"k600_split{s}" / "index2cls.json"))
        assert names == class_lists.shipped_classes(f"k600_split{s}")
        assert len(_rows(tmp_path / "out" / f"k600_split{s}" / "test.csv")) == 160


def test_k600_zeroshot_names_a_split_class_without_videos(tmp_path):
    missing = class_lists.shipped_classes("k600_split2")[5]
    with pytest.raises(prepare.PrepareError, match=rf"no videos of 1 classes of split \d.*{missing!r}"):
        prepare.prepare_k600_zeroshot(_k600_annotations(tmp_path, drop=missing), None, str(tmp_path / "out"))


def test_cli_k600_random_splits_only_with_the_flag(tmp_path):
    k600 = _k600_annotations(tmp_path)
    tool = os.path.join(ROOT, "tools", "prepare_dataset.py")
    shipped = subprocess.run([sys.executable, tool, "k600-zeroshot", "--k600", k600, "--out", str(tmp_path / "a")],
                             capture_output=True, text=True)
    assert shipped.returncode == 0, shipped.stderr
    assert read_class_names(str(tmp_path / "a" / "k600_split3" / "index2cls.json")) == class_lists.shipped_classes("k600_split3")
    drawn = subprocess.run([sys.executable, tool, "k600-zeroshot", "--k600", k600, "--out", str(tmp_path / "b"),
                            "--random-splits", "--seed", "3"], capture_output=True, text=True)
    assert drawn.returncode == 0 and "not comparable" not in drawn.stdout and "random splits" in drawn.stderr
    assert read_class_names(str(tmp_path / "b" / "k600_split3" / "index2cls.json")) != class_lists.shipped_classes("k600_split3")


def test_cli_checks_kinetics_annotations_against_the_shipped_k400_list_by_default(tmp_path):
    train = _kinetics_csv(tmp_path / "train.csv", [("abseiling", "a", 0), ("not a kinetics class", "b", 0)])
    r = subprocess.run([sys.executable, os.path.join(ROOT, "tools", "prepare_dataset.py"), "kinetics",
                        "--train", train, "--val", train, "--out", str(tmp_path / "o")], capture_output=True, text=True)
    assert r.returncode == 2 and "'not a kinetics class'" in r.stderr and "k400-index2cls.json" in r.stderr
    r = subprocess.run([sys.executable, os.path.join(ROOT, "tools", "prepare_dataset.py"), "kinetics",
                        "--train", train, "--val", train, "--out", str(tmp_path / "o"), "--classes", "annotations"],
                       capture_output=True, text=True)
    assert r.returncode == 0 and read_class_names(str(tmp_path / "o" / "index2cls.json"))[1] == "not a kinetics class"


def test_the_class_index_writer_and_reader_round_trip(tmp_path):
    from slowfast.utils.class_index import write_class_names

    names = ["Apply Eye Makeup", "yo-yo", "café", "moving left"]
    write_class_names(str(tmp_path / "index2cls.json"), names)
    assert read_class_names(str(tmp_path / "index2cls.json")) == names
