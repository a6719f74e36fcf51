"""Official annotation formats -> our CSV lists (`path,label`) and class-index JSON files.

Every function reads the official files, validates them (errors name the file and line) and writes the
outputs atomically. Paths in the CSVs are relative to the dataset's video folder: point
`DATA.PATH_PREFIX` at that folder. The separator is always ",".

* `prepare_kinetics`: annotation CSVs (`label,youtube_id,time_start,time_end,split[,...]`, with header)
  -> `train.csv`, `val.csv`, `test.csv`, `index2cls.json` (the classes of `class_index`, or the
  annotations' classes sorted alphabetically);
* `prepare_ucf101`: `classInd.txt`, `trainlist0N.txt`, `testlist0N.txt` -> `ucf101_split{N}/` and
  `ucf101-index2cls.json` (CamelCase split into words, "Yo Yo" -> "Yoyo");
* `prepare_hmdb51`: `<class>_test_split<N>.txt` files (id 1 train, 2 test, 0 unused) -> `hmdb_split{N}/` and
  `hmdb-index2cls.json` (underscores -> spaces, sorted);
* `prepare_k600_zeroshot`: the three Kinetics-600 zero-shot test splits (by default the ER-ZSAR lists
  shipped in `label_db/`, which every published number uses) -> `k600_split{1,2,3}/{test.csv,index2cls.json}`;
  seeded random splits only when asked (`random_splits`);
* `prepare_folder`: one folder per class -> seeded train/val/test split.

With `class_index` (a class-index JSON, e.g. a list shipped in `label_db/`, see
`slowfast.datasets.class_lists`), the official files are checked against it: a class that is missing or
spelled differently stops the preparation with its name, and the written index file is that list.
"""

from __future__ import annotations

import csv
import glob
import json
import os
import random
import re
from collections.abc import Iterable, Sequence

from slowfast.datasets import class_lists as shipped
from slowfast.errors import UserError
from slowfast.utils.atomic import atomic_write_text
from slowfast.utils.class_index import read_class_names, write_class_names

__all__ = [
    "PrepareError",
    "DEFAULT_KINETICS_PATTERN",
    "VIDEO_EXTENSIONS",
    "ucf_class_name",
    "prepare_kinetics",
    "prepare_ucf101",
    "prepare_hmdb51",
    "prepare_k600_zeroshot",
    "prepare_folder",
    "prepare_ssv2",
]

# File name of a clip in the public Kinetics downloads (cvdfoundation / ActivityNet crawler).
DEFAULT_KINETICS_PATTERN = "{split}/{youtube_id}_{time_start:06d}_{time_end:06d}.mp4"
VIDEO_EXTENSIONS = (".mp4", ".avi", ".mkv", ".webm", ".mov", ".m4v")


class PrepareError(UserError, ValueError):
    """A problem with the annotation files; the message names the file (and line)."""

    exit_code = 2


# ---- writing -------------------------------------------------------------------------------------
def _write_csv(path: str, rows: Iterable[tuple[str, int]]) -> int:
    lines = []
    for p, label in rows:
        if "," in p:
            raise PrepareError(f"video path {p!r} contains ',' (the CSV separator); rename the file")
        lines.append(f"{p},{label}\n")
    atomic_write_text(path, "".join(lines))
    return len(lines)


def _read_lines(path: str) -> list[tuple[int, str]]:
    if not os.path.isfile(path):
        raise PrepareError(f"annotation file not found: {path}")
    with open(path, encoding="utf-8") as f:
        return [(n, line.strip()) for n, line in enumerate(f, 1) if line.strip()]


# ---- Kinetics ------------------------------------------------------------------------------------
def read_kinetics_annotations(path: str) -> list[dict]:
    """Rows of an official Kinetics annotation CSV, with `time_start`/`time_end` as ints."""
    if not os.path.isfile(path):
        raise PrepareError(f"annotation file not found: {path}")
    with open(path, encoding="utf-8", newline="") as f:
        reader = csv.DictReader(f)
        need = {"label", "youtube_id", "time_start", "time_end"}
        if reader.fieldnames is None or not need <= set(reader.fieldnames):
            raise PrepareError(f"{path}:1: expected a header with columns {sorted(need)}, got {reader.fieldnames}")
        rows = []
        for lineno, row in enumerate(reader, 2):
            try:
                row["time_start"] = int(float(row["time_start"]))
                row["time_end"] = int(float(row["time_end"]))
            except (TypeError, ValueError):
                raise PrepareError(f"{path}:{lineno}: time_start/time_end are not numbers: {row}") from None
            if not row["label"] or not row["youtube_id"]:
                raise PrepareError(f"{path}:{lineno}: empty label or youtube_id")
            rows.append(row)
    return rows


def _kinetics_path(pattern: str, row: dict, split: str) -> str:
    label = row["label"]
    return pattern.format(
        split=split, label=label, label_underscored=label.replace(" ", "_"), youtube_id=row["youtube_id"],
        time_start=row["time_start"], time_end=row["time_end"],
    )


def _reference_names(class_index: str) -> list[str]:
    try:
        return read_class_names(class_index)
    except ValueError as e:
        raise PrepareError(str(e).replace(" (DATA.INDEX_LABEL_MAPPING_FILE)", "")) from None


def _kinetics_class_index(annotations: dict[str, list[dict]], sources: dict[str, str],
                          class_index: str | None) -> tuple[list[str], dict[str, int]]:
    """(class names, {annotation label: index}): `class_index`'s classes, checked against every
    annotation file, or the annotations' classes sorted alphabetically."""
    if class_index is None:
        classes = sorted({r["label"] for rows in annotations.values() for r in rows})
        return classes, {c: i for i, c in enumerate(classes)}
    reference = _reference_names(class_index)
    index: dict[str, int] = {}
    for split, rows in annotations.items():
        try:
            index.update(shipped.match_labels((r["label"] for r in rows), reference, sources[split], class_index,
                                                  allow_missing=True))
        except ValueError as e:
            raise PrepareError(str(e)) from None
    absent = [name for i, name in enumerate(reference) if i not in set(index.values())]
    if absent:
        files = ", ".join(sorted({p for p in sources.values() if p}))
        raise PrepareError(f"{files}: no videos of {len(absent)} classes of {class_index}: {absent[:8]}")
    return reference, index


def prepare_kinetics(
    out_dir: str,
    train: str | None,
    val: str,
    test: str | None = None,
    pattern: str = DEFAULT_KINETICS_PATTERN,
    split_dirs: dict[str, str] | None = None,
    video_root: str | None = None,
    class_index: str | None = None,
) -> dict:
    """Write `out_dir/{train,val,test}.csv` and `index2cls.json` from Kinetics annotation CSVs.

    `pattern` names a clip's file relative to the video folder; fields: {split} (the folder of the
    split, see `split_dirs`, default train/val/test), {label}, {label_underscored}, {youtube_id},
    {time_start}, {time_end}. Without `test`, test.csv lists the validation videos (the usual protocol).
    With `video_root`, clips whose file is missing are left out and counted. With `class_index`, labels
    are that file's indices and every annotation label must be one of its classes (the training file
    must hold them all).
    """
    dirs = {"train": "train", "val": "val", "test": "test"}
    dirs.update(split_dirs or {})
    sources = {"train": train, "val": val, "test": test or val}
    annotations = {s: read_kinetics_annotations(p) for s, p in sources.items() if p}
    classes, index = _kinetics_class_index(annotations, sources, class_index)
    os.makedirs(out_dir, exist_ok=True)
    summary: dict = {"classes": len(classes), "missing": {}}
    for split, rows in annotations.items():
        folder = dirs["val"] if (split == "test" and not test) else dirs[split]
        out_rows, missing = [], 0
        for r in rows:
            rel = _kinetics_path(pattern, r, folder)
            if video_root is not None and not os.path.exists(os.path.join(video_root, rel)):
                missing += 1
                continue
            out_rows.append((rel, index[r["label"]]))
        summary[split] = _write_csv(os.path.join(out_dir, f"{split}.csv"), out_rows)
        summary["missing"][split] = missing
    write_class_names(os.path.join(out_dir, "index2cls.json"), classes)
    return summary


# ---- UCF101 --------------------------------------------------------------------------------------
def ucf_class_name(folder: str) -> str:
    """"ApplyEyeMakeup" -> "Apply Eye Makeup"; "YoYo" -> "Yoyo" (as the Open-VCLIP/FROSTER lists)."""
    name = " ".join(re.findall(r"[A-Z][^A-Z]*", folder)) or folder
    return "Yoyo" if name == "Yo Yo" else name


def _check_against(names: list[str], class_index: str | None, src: str) -> list[str]:
    """`class_index`'s names (its spelling) when `names` are its classes in its order, else PrepareError."""
    if class_index is None:
        return names
    reference = _reference_names(class_index)
    problem = shipped.class_list_differences(names, reference, src, class_index)
    if problem:
        raise PrepareError(problem)
    return reference


def prepare_ucf101(annotation_dir: str, out_dir: str, splits: Sequence[int] = (1, 2, 3),
                   class_index: str | None = None) -> dict:
    """`classInd.txt` + `trainlist0N.txt`/`testlist0N.txt` -> `ucf101_split{N}/{train,val,test}.csv`.

    Labels are classInd's index minus 1; val.csv equals test.csv (the official test list). With
    `class_index`, classInd's classes must be that list's, in its order.
    """
    class_ind = os.path.join(annotation_dir, "classInd.txt")
    folders: list[str] = []
    for lineno, line in _read_lines(class_ind):
        parts = line.split()
        if len(parts) != 2 or not parts[0].isdigit():
            raise PrepareError(f"{class_ind}:{lineno}: expected '<index> <ClassName>', got {line!r}")
        if int(parts[0]) != len(folders) + 1:
            raise PrepareError(f"{class_ind}:{lineno}: class index {parts[0]} out of order (expected {len(folders) + 1})")
        folders.append(parts[1])
    names = _check_against([ucf_class_name(f) for f in folders], class_index, class_ind)
    label_of = {f: i for i, f in enumerate(folders)}
    lower = {f.lower(): i for i, f in enumerate(folders)}  # the lists write "HandStandPushups" in places
    summary = {"classes": len(folders)}

    def label_for(path: str, file: str, lineno: int) -> int:
        folder = path.split("/")[0]
        if folder in label_of:
            return label_of[folder]
        if folder.lower() in lower:
            return lower[folder.lower()]
        raise PrepareError(f"{file}:{lineno}: class folder {folder!r} is not in {class_ind}")

    for n in splits:
        split_dir = os.path.join(out_dir, f"ucf101_split{n}")
        for kind, csv_names in (("train", ("train.csv",)), ("test", ("val.csv", "test.csv"))):
            file = os.path.join(annotation_dir, f"{kind}list0{n}.txt")
            rows = []
            for lineno, line in _read_lines(file):
                path = line.split()[0]
                label = label_for(path, file, lineno)
                if kind == "train" and len(line.split()) > 1 and int(line.split()[1]) - 1 != label:
                    raise PrepareError(f"{file}:{lineno}: label {line.split()[1]} disagrees with {class_ind}")
                rows.append((path, label))
            for name in csv_names:
                summary[f"split{n}/{name}"] = _write_csv(os.path.join(split_dir, name), rows)
    write_class_names(os.path.join(out_dir, "ucf101-index2cls.json"), names)
    return summary


# ---- HMDB51 --------------------------------------------------------------------------------------
_HMDB_FILE = re.compile(r"^(?P<cls>.+)_test_split(?P<n>\d)\.txt$")


def prepare_hmdb51(split_dir: str, out_dir: str, splits: Sequence[int] = (1, 2, 3),
                   class_index: str | None = None) -> dict:
    """`<class>_test_split<N>.txt` files -> `hmdb_split{N}/{train,val,test}.csv` + `hmdb-index2cls.json`.

    Id 1 is train, 2 is test (val.csv = test.csv), 0 is unused. Paths are `<class>/<video>.avi`. With
    `class_index`, the split files' classes must be that list's.
    """
    files: dict[tuple[str, int], str] = {}
    for path in sorted(glob.glob(os.path.join(split_dir, "*_test_split*.txt"))):
        m = _HMDB_FILE.match(os.path.basename(path))
        if m:
            files[(m["cls"], int(m["n"]))] = path
    folders = sorted({c for c, _ in files}, key=lambda c: c.replace("_", " "))
    if not folders:
        raise PrepareError(f"no HMDB51 split files (<class>_test_split<N>.txt) in {split_dir}")
    names = _check_against([c.replace("_", " ") for c in folders], class_index, f"the split files in {split_dir}")
    summary = {"classes": len(folders)}
    for n in splits:
        rows = {"train": [], "test": []}
        for label, c in enumerate(folders):
            file = files.get((c, n))
            if file is None:
                raise PrepareError(f"missing {c}_test_split{n}.txt in {split_dir}")
            for lineno, line in _read_lines(file):
                parts = line.split()
                if len(parts) != 2 or parts[1] not in ("0", "1", "2"):
                    raise PrepareError(f"{file}:{lineno}: expected '<video> <0|1|2>', got {line!r}")
                if parts[1] == "1":
                    rows["train"].append((f"{c}/{parts[0]}", label))
                elif parts[1] == "2":
                    rows["test"].append((f"{c}/{parts[0]}", label))
        out = os.path.join(out_dir, f"hmdb_split{n}")
        summary[f"split{n}/train.csv"] = _write_csv(os.path.join(out, "train.csv"), rows["train"])
        for name in ("val.csv", "test.csv"):
            summary[f"split{n}/{name}"] = _write_csv(os.path.join(out, name), rows["test"])
    write_class_names(os.path.join(out_dir, "hmdb-index2cls.json"), names)
    return summary


# ---- Kinetics-600 zero-shot splits ---------------------------------------------------------------
def _class_set(path: str) -> set[str]:
    """Class names from a class-index JSON ({"0": name}) or a Kinetics annotation CSV."""
    if path.endswith(".json"):
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
        return set(data.values() if isinstance(data, dict) else data)
    return {r["label"] for r in read_kinetics_annotations(path)}


def _read_class_lists(path: str) -> list[list[str]]:
    with open(path, encoding="utf-8") as f:
        data = json.load(f)
    if isinstance(data, dict):
        data = [data[k] for k in sorted(data, key=str)]
    if not isinstance(data, list) or not all(isinstance(x, list) for x in data):
        raise PrepareError(f"{path}: expected a JSON list of class-name lists, one per split")
    return data


def _k600_split_lists(labels: set[str], k400_classes: str | None, class_lists: str | None, random_splits: bool,
                      seed: int, num_classes: int, num_splits: int, src: str) -> list[tuple[list[str], str]]:
    """[(class names, where they come from)] of each split: the shipped ER-ZSAR lists, `class_lists`, or
    (only with `random_splits`) seeded draws from the classes that are not Kinetics-400 classes."""
    if random_splits and class_lists:
        raise PrepareError("give either class lists or random splits, not both")
    if random_splits:
        k400_src = k400_classes or shipped.shipped_path("k400")
        k400 = {shipped.normalize_class_name(c) for c in _class_set(k400_src)}
        novel = sorted(c for c in labels if shipped.normalize_class_name(c) not in k400)
        if len(novel) < num_classes:
            raise PrepareError(f"{src}: only {len(novel)} classes are not in {k400_src}; need {num_classes}")
        return [(random.Random(seed + s).sample(novel, num_classes), f"random split {s} (seed {seed + s})")
                for s in range(1, num_splits + 1)]
    if class_lists:
        return [(names, f"{class_lists} list {s}") for s, names in enumerate(_read_class_lists(class_lists), 1)]
    return [(shipped.shipped_classes(f"k600_split{s}"), shipped.shipped_path(f"k600_split{s}")) for s in (1, 2, 3)]


def prepare_k600_zeroshot(
    k600_annotations: str,
    k400_classes: str | None,
    out_dir: str,
    seed: int = 0,
    num_classes: int = 160,
    num_splits: int = 3,
    class_lists: str | None = None,
    pattern: str = DEFAULT_KINETICS_PATTERN,
    split_dir: str = "val",
    video_root: str | None = None,
    random_splits: bool = False,
) -> dict:
    """Kinetics-600 zero-shot test splits -> `k600_split{s}/{test.csv,index2cls.json}`.

    By default the splits are the three ER-ZSAR lists shipped in `label_db/` (160 classes each, the ones
    every published number uses); `class_lists` (a JSON list of lists of class names) replaces them, and
    `random_splits` draws `num_classes` classes absent from `k400_classes` (default: the shipped K400
    list) with `random.Random(seed + s)` instead, which is not comparable with published numbers. Every
    class of a split must have videos in `k600_annotations` (names compared ignoring case and '_');
    labels follow the alphabetical order of the split's classes.
    """
    rows = read_kinetics_annotations(k600_annotations)
    labels = {r["label"] for r in rows}
    by_key = {shipped.normalize_class_name(label): label for label in labels}
    lists = _k600_split_lists(labels, k400_classes, class_lists, random_splits, seed, num_classes, num_splits,
                              k600_annotations)
    summary: dict = {"annotated_classes": len(labels)}
    for s, (names, src) in enumerate(lists, 1):
        names = sorted(names)
        absent = [n for n in names if shipped.normalize_class_name(n) not in by_key]
        if absent:
            unused = sorted(labels - {by_key.get(shipped.normalize_class_name(n)) for n in names})
            raise PrepareError(f"{k600_annotations} has no videos of {len(absent)} classes of split {s} ({src}): "
                               f"{shipped.with_rename_hints(absent, unused)}")
        index = {by_key[shipped.normalize_class_name(c)]: i for i, c in enumerate(names)}
        out_rows, missing = [], 0
        for r in rows:
            if r["label"] in index:
                rel = _kinetics_path(pattern, r, split_dir)
                if video_root is not None and not os.path.exists(os.path.join(video_root, rel)):
                    missing += 1
                    continue
                out_rows.append((rel, index[r["label"]]))
        out = os.path.join(out_dir, f"k600_split{s}")
        summary[f"split{s}"] = _write_csv(os.path.join(out, "test.csv"), out_rows)
        summary[f"split{s}_missing"] = missing
        summary[f"split{s}_classes"] = src
        write_class_names(os.path.join(out, "index2cls.json"), names)
    return summary


# ---- custom folder-per-class datasets ------------------------------------------------------------
def prepare_folder(
    root: str,
    out_dir: str,
    val_fraction: float = 0.1,
    test_fraction: float = 0.1,
    seed: int = 0,
    extensions: Sequence[str] = VIDEO_EXTENSIONS,
) -> dict:
    """`root/<class>/<video>` -> `out_dir/{train,val,test}.csv` + `index2cls.json`.

    Classes are the sub-folders in sorted order (names: underscores -> spaces); each class's videos are
    shuffled with `seed` and split by the fractions (at least one training video per class).
    """
    if not os.path.isdir(root):
        raise PrepareError(f"dataset folder not found: {root}")
    if val_fraction < 0 or test_fraction < 0 or val_fraction + test_fraction >= 1:
        raise PrepareError(f"val and test fractions must be >= 0 and sum to < 1 (got {val_fraction}, {test_fraction})")
    exts = tuple(e.lower() for e in extensions)
    folders = sorted(d for d in os.listdir(root) if os.path.isdir(os.path.join(root, d)))
    rows: dict[str, list] = {"train": [], "val": [], "test": []}
    names = []
    rng = random.Random(seed)
    for folder in folders:
        videos = sorted(
            os.path.relpath(os.path.join(dp, f), root).replace(os.sep, "/")
            for dp, _, fs in os.walk(os.path.join(root, folder)) for f in fs if f.lower().endswith(exts)
        )
        if not videos:
            continue
        label = len(names)
        names.append(folder.replace("_", " "))
        rng.shuffle(videos)
        n_test = int(round(len(videos) * test_fraction))
        n_val = int(round(len(videos) * val_fraction))
        n_test = min(n_test, len(videos) - 1)
        n_val = min(n_val, len(videos) - 1 - n_test)
        rows["test"] += [(v, label) for v in videos[:n_test]]
        rows["val"] += [(v, label) for v in videos[n_test : n_test + n_val]]
        rows["train"] += [(v, label) for v in videos[n_test + n_val :]]
    if not names:
        raise PrepareError(f"no class folders with videos ({', '.join(exts)}) under {root}")
    summary = {"classes": len(names)}
    for split, r in rows.items():
        summary[split] = _write_csv(os.path.join(out_dir, f"{split}.csv"), sorted(r))
    write_class_names(os.path.join(out_dir, "index2cls.json"), names)
    return summary


# ---- Something-Something v2 ----------------------------------------------------------------------
def _ssv2_classes(labels_json: str) -> list[str]:
    """Class names in label-id order from `something-something-v2-labels.json` ({"name": "id", ...})."""
    if not os.path.isfile(labels_json):
        raise PrepareError(f"annotation file not found: {labels_json}")
    with open(labels_json, encoding="utf-8") as f:
        data = json.load(f)
    if not isinstance(data, dict) or not data:
        raise PrepareError(f"{labels_json}: expected a mapping {{\"class name\": \"id\", ...}}")
    try:
        by_id = {int(i): name for name, i in data.items()}
    except (TypeError, ValueError):
        raise PrepareError(f"{labels_json}: label ids must be integers") from None
    if sorted(by_id) != list(range(len(data))):
        raise PrepareError(f"{labels_json}: label ids must be 0..{len(data) - 1}, each once")
    return [by_id[i] for i in range(len(data))]


def _ssv2_rows(path: str, index: dict[str, int], extension: str) -> list[tuple[str, int]]:
    """`(<id><extension>, label)` of an SSv2 train/validation JSON; the class is the entry's template
    without its brackets ("Pushing [something] from left to right")."""
    if not os.path.isfile(path):
        raise PrepareError(f"annotation file not found: {path}")
    with open(path, encoding="utf-8") as f:
        entries = json.load(f)
    if not isinstance(entries, list):
        raise PrepareError(f"{path}: expected a JSON list of {{\"id\", \"template\", ...}} entries")
    lower = {k.lower(): v for k, v in index.items()}
    rows = []
    for n, e in enumerate(entries):
        if not isinstance(e, dict) or "id" not in e or "template" not in e:
            raise PrepareError(f"{path}: entry {n} has no 'id' or 'template': {str(e)[:200]}")
        name = str(e["template"]).replace("[", "").replace("]", "")
        label = index.get(name, lower.get(name.lower()))
        if label is None:
            raise PrepareError(f"{path}: entry {n} (id {e['id']}): class {name!r} is not in the labels file")
        rows.append((f"{e['id']}{extension}", label))
    return rows


def prepare_ssv2(
    labels_json: str, train_json: str | None, validation_json: str, out_dir: str, extension: str = ".webm",
    video_root: str | None = None,
) -> dict:
    """Something-Something v2 annotation JSONs -> `out_dir/{train,val,test}.csv` + `index2cls.json`.

    Labels are the official ids of the labels file; test.csv lists the validation videos (the official test
    set has no labels). Paths are `<id><extension>` (`.webm` as distributed). With `video_root`, videos
    whose file is missing are left out and counted. Its classes name directions: train with
    DATA.RANDOM_FLIP False.
    """
    classes = _ssv2_classes(labels_json)
    index = {c: i for i, c in enumerate(classes)}
    sources = {"train": train_json, "val": validation_json, "test": validation_json}
    summary: dict = {"classes": len(classes), "missing": {}}
    for split, path in sources.items():
        if not path:
            continue
        rows = _ssv2_rows(path, index, extension)
        if video_root is not None:
            kept = [r for r in rows if os.path.exists(os.path.join(video_root, r[0]))]
            summary["missing"][split] = len(rows) - len(kept)
            rows = kept
        summary[split] = _write_csv(os.path.join(out_dir, f"{split}.csv"), rows)
    write_class_names(os.path.join(out_dir, "index2cls.json"), classes)
    return summary
