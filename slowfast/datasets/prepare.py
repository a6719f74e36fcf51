"""Official annotation formats -> our CSV lists (`path,label`) and class-index JSON files.

Every function reads the official files (UTF-8, with or without a byte-order mark), validates them (errors
name the file and line) and only then writes the outputs, each atomically: a refused input leaves no list
written. Paths in the CSVs are relative to the dataset's video folder: point
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
import logging
import os
import random
import re
from collections.abc import Sequence

from slowfast.datasets import class_lists as shipped
from slowfast.errors import UserError
from slowfast.utils.atomic import atomic_write_text
from slowfast.utils.class_index import read_class_names, write_class_names

__all__ = [
    "PrepareError",
    "DEFAULT_KINETICS_PATTERN",
    "KINETICS_PATTERN_FIELDS",
    "check_kinetics_pattern",
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
# The fields of a Kinetics file-name pattern, with the values its check formats.
KINETICS_PATTERN_FIELDS = {"split": "train", "label": "abseiling", "label_underscored": "abseiling",
                           "youtube_id": "0wR5jVB-WPk", "time_start": 417, "time_end": 427}

logger = logging.getLogger(__name__)


class PrepareError(UserError, ValueError):
    """A problem with the annotation files; the message names the file (and line)."""

    exit_code = 2


# ---- reading and writing -------------------------------------------------------------------------
def _write_lists(lists: dict[str, Sequence[tuple[str, int]]]) -> dict[str, int]:
    """Write `{csv path: rows}`, each atomically, after checking every row of every list: a refused path
    leaves no list written. Returns {csv path: rows written}."""
    for rows in lists.values():
        for p, _ in rows:
            if "," in p:
                raise PrepareError(f"video path {p!r} contains ',' (the CSV separator); rename the file")
    for path, rows in lists.items():
        atomic_write_text(path, "".join(f"{p},{label}\n" for p, label in rows))
    return {path: len(rows) for path, rows in lists.items()}


def _not_utf8(path: str, e: UnicodeDecodeError) -> PrepareError:
    return PrepareError(f"{path}: not UTF-8 text (byte offset {e.start}: {e.reason})")


# Every file is read as "utf-8-sig": a byte-order mark (spreadsheet programs' "CSV UTF-8", Windows
# editors) is dropped, as the training reader of the lists drops it, instead of becoming part of the
# first class name, path or column name.
def _read_lines(path: str) -> list[tuple[int, str]]:
    if not os.path.isfile(path):
        raise PrepareError(f"annotation file not found: {path}")
    try:
        with open(path, encoding="utf-8-sig") as f:
            return [(n, line.strip()) for n, line in enumerate(f, 1) if line.strip()]
    except UnicodeDecodeError as e:
        raise _not_utf8(path, e) from None


def _read_json(path: str):
    """The content of a JSON annotation file; a syntax error is named with its line and column."""
    if not os.path.isfile(path):
        raise PrepareError(f"annotation file not found: {path}")
    try:
        with open(path, encoding="utf-8-sig") as f:
            return json.load(f)
    except json.JSONDecodeError as e:
        raise PrepareError(f"{path}:{e.lineno}:{e.colno}: not valid JSON: {e.msg}") from None
    except UnicodeDecodeError as e:
        raise _not_utf8(path, e) from None


def _check_video_root(video_root: str | None) -> None:
    if video_root is not None and not os.path.isdir(video_root):
        raise PrepareError(f"video folder not found: {video_root}")


def _present(rows: list[tuple[str, int]], video_root: str | None, src: str, hint: str) -> tuple[list, int]:
    """(the rows whose video exists under `video_root`, how many were left out); all of them: refused."""
    if video_root is None:
        return rows, 0
    kept = [r for r in rows if os.path.exists(os.path.join(video_root, r[0]))]
    if rows and not kept:
        raise PrepareError(f"none of the {len(rows)} videos of {src} is under {video_root} (the first would be "
                           f"{os.path.join(video_root, rows[0][0])}): check {hint}")
    return kept, len(rows) - len(kept)


# ---- Kinetics ------------------------------------------------------------------------------------
def read_kinetics_annotations(path: str) -> list[dict]:
    """Rows of an official Kinetics annotation CSV, with `time_start`/`time_end` as ints."""
    if not os.path.isfile(path):
        raise PrepareError(f"annotation file not found: {path}")
    try:
        with open(path, encoding="utf-8-sig", newline="") as f:
            rows = _kinetics_rows(csv.DictReader(f), path)
    except UnicodeDecodeError as e:
        raise _not_utf8(path, e) from None
    if not rows:
        raise PrepareError(f"{path}: no clips listed (only the header)")
    return rows


def _kinetics_rows(reader: csv.DictReader, path: str) -> list[dict]:
    need = {"label", "youtube_id", "time_start", "time_end"}
    if reader.fieldnames is None or not need <= set(reader.fieldnames):
        raise PrepareError(f"{path}:1: expected a header with columns {sorted(need)}, got {reader.fieldnames}")
    rows = []
    for lineno, row in enumerate(reader, 2):
        try:
            row["time_start"] = int(float(row["time_start"]))
            row["time_end"] = int(float(row["time_end"]))
        except (TypeError, ValueError, OverflowError):
            raise PrepareError(f"{path}:{lineno}: time_start/time_end are not numbers: {row}") from None
        if not row["label"] or not row["youtube_id"]:
            raise PrepareError(f"{path}:{lineno}: empty label or youtube_id")
        rows.append(row)
    return rows


def _unique_clips(rows: list[dict], path: str) -> tuple[list[dict], int]:
    """(`rows` without the repeats of an earlier row's clip and label, how many were dropped); a warning
    gives the count."""
    seen: set[tuple] = set()
    unique = []
    for r in rows:
        key = (r["label"], r["youtube_id"], r["time_start"], r["time_end"])
        if key not in seen:
            seen.add(key)
            unique.append(r)
    dropped = len(rows) - len(unique)
    if dropped:
        logger.warning("%s: %d duplicate rows (the same label, youtube_id, time_start and time_end as an earlier "
                       "row) dropped", path, dropped)
    return unique, dropped


def check_kinetics_pattern(pattern: str) -> None:
    """Refuse a file-name pattern that names an unknown field or cannot be formatted, before any work."""
    fields = " ".join(f"{{{name}}}" for name in KINETICS_PATTERN_FIELDS)
    try:
        pattern.format(**KINETICS_PATTERN_FIELDS)
    except KeyError as e:
        raise PrepareError(f"video path pattern {pattern!r}: unknown field {{{e.args[0]}}}; "
                           f"the fields are {fields}") from None
    except IndexError:
        raise PrepareError(f"video path pattern {pattern!r}: a field without a name; the fields are {fields}") from None
    except (ValueError, AttributeError, TypeError) as e:
        raise PrepareError(f"video path pattern {pattern!r}: {e}; the fields are {fields}") from None


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
    With `video_root`, clips whose file is missing are left out and counted (none found: refused). Rows
    repeating an earlier clip with the same label are dropped and counted. With `class_index`, labels
    are that file's indices and every annotation label must be one of its classes (the training file
    must hold them all).
    """
    check_kinetics_pattern(pattern)
    _check_video_root(video_root)
    dirs = {"train": "train", "val": "val", "test": "test"}
    dirs.update(split_dirs or {})
    sources = {"train": train, "val": val, "test": test or val}
    read = {p: _unique_clips(read_kinetics_annotations(p), p) for p in dict.fromkeys(sources.values()) if p}
    annotations = {s: read[p][0] for s, p in sources.items() if p}
    classes, index = _kinetics_class_index(annotations, sources, class_index)
    summary: dict = {"classes": len(classes), "missing": {}, "duplicates": {}}
    lists = {}
    found: dict[tuple[str, str], tuple[list, int]] = {}  # (annotation file, folder): test.csv from val is checked once
    for split, rows in annotations.items():
        folder = dirs["val"] if (split == "test" and not test) else dirs[split]
        if (sources[split], folder) not in found:
            out_rows = [(_kinetics_path(pattern, r, folder), index[r["label"]]) for r in rows]
            found[sources[split], folder] = _present(
                out_rows, video_root, f"{sources[split]} ({split})", "the video folder, the file-name pattern and "
                "the split folder names")
        lists[split], summary["missing"][split] = found[sources[split], folder]
        summary["duplicates"][split] = read[sources[split]][1]
    written = _write_lists({os.path.join(out_dir, f"{split}.csv"): rows for split, rows in lists.items()})
    summary.update({split: written[os.path.join(out_dir, f"{split}.csv")] for split in lists})
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

    lists = {}
    for n in splits:
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
                lists[f"split{n}/{name}"] = rows
    written = _write_lists({os.path.join(out_dir, f"ucf101_{key}"): rows for key, rows in lists.items()})
    summary.update({key: written[os.path.join(out_dir, f"ucf101_{key}")] for key in lists})
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
    lists = {}
    for n in splits:
        rows: dict[str, list] = {"train": [], "test": []}
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
        lists.update({f"split{n}/train.csv": rows["train"], f"split{n}/val.csv": rows["test"],
                      f"split{n}/test.csv": rows["test"]})
    written = _write_lists({os.path.join(out_dir, f"hmdb_{key}"): rows for key, rows in lists.items()})
    summary.update({key: written[os.path.join(out_dir, f"hmdb_{key}")] for key in lists})
    write_class_names(os.path.join(out_dir, "hmdb-index2cls.json"), names)
    return summary


# ---- Kinetics-600 zero-shot splits ---------------------------------------------------------------
def _class_set(path: str) -> set[str]:
    """Class names from a class-index JSON ({"0": name}) or a Kinetics annotation CSV."""
    if path.endswith(".json"):
        data = _read_json(path)
        return set(data.values() if isinstance(data, dict) else data)
    return {r["label"] for r in read_kinetics_annotations(path)}


def _read_class_lists(path: str) -> list[list[str]]:
    data = _read_json(path)
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
    check_kinetics_pattern(pattern)
    _check_video_root(video_root)
    rows, duplicates = _unique_clips(read_kinetics_annotations(k600_annotations), k600_annotations)
    labels = {r["label"] for r in rows}
    by_key = {shipped.normalize_class_name(label): label for label in labels}
    lists = _k600_split_lists(labels, k400_classes, class_lists, random_splits, seed, num_classes, num_splits,
                              k600_annotations)
    summary: dict = {"annotated_classes": len(labels), "duplicates": duplicates}
    tests, indexes = {}, {}
    for s, (names, src) in enumerate(lists, 1):
        names = sorted(names)
        absent = [n for n in names if shipped.normalize_class_name(n) not in by_key]
        if absent:
            unused = sorted(labels - {by_key.get(shipped.normalize_class_name(n)) for n in names})
            raise PrepareError(f"{k600_annotations} has no videos of {len(absent)} classes of split {s} ({src}): "
                               f"{shipped.with_rename_hints(absent, unused)}")
        index = {by_key[shipped.normalize_class_name(c)]: i for i, c in enumerate(names)}
        out_rows = [(_kinetics_path(pattern, r, split_dir), index[r["label"]]) for r in rows if r["label"] in index]
        out = os.path.join(out_dir, f"k600_split{s}")
        tests[os.path.join(out, "test.csv")], summary[f"split{s}_missing"] = _present(
            out_rows, video_root, f"{k600_annotations} (split {s})", "the video folder, the file-name pattern and "
            "the split folder name")
        indexes[os.path.join(out, "index2cls.json")] = names
        summary[f"split{s}"] = len(tests[os.path.join(out, "test.csv")])
        summary[f"split{s}_classes"] = src
    _write_lists(tests)
    for path, names in indexes.items():
        write_class_names(path, names)
    return summary


# ---- custom folder-per-class datasets ------------------------------------------------------------
def _split_sizes(n: int, val_fraction: float, test_fraction: float) -> tuple[int, int] | None:
    """(val, test) videos of a class of `n`: the fractions of `n` rounded, at least one for each fraction
    above 0, at least one video left for training; None when `n` is too small for that."""
    if n < 1 + (val_fraction > 0) + (test_fraction > 0):
        return None
    n_val, n_test = (max(int(round(n * f)), 1 if f > 0 else 0) for f in (val_fraction, test_fraction))
    n_test = min(n_test, n - 1 - (val_fraction > 0))
    return min(n_val, n - 1 - n_test), n_test


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
    shuffled with `seed` and split by the fractions, rounded, with at least one training video per class
    and at least one video in each split whose fraction is above 0. A class with fewer videos than that
    (fewer than 3 with both fractions above 0) goes to training whole, and a warning names it.
    """
    if not os.path.isdir(root):
        raise PrepareError(f"dataset folder not found: {root}")
    if not (0 <= val_fraction < 1 and 0 <= test_fraction < 1 and val_fraction + test_fraction < 1):
        raise PrepareError(f"val and test fractions must be >= 0 and sum to < 1 (got {val_fraction}, {test_fraction})")
    exts = tuple(e.lower() for e in extensions)
    folders = sorted(d for d in os.listdir(root) if os.path.isdir(os.path.join(root, d)))
    rows: dict[str, list] = {"train": [], "val": [], "test": []}
    names, too_small = [], []
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
        sizes = _split_sizes(len(videos), val_fraction, test_fraction)
        if sizes is None:
            too_small.append(f"{folder!r} ({len(videos)} video{'s' if len(videos) > 1 else ''})")
        n_val, n_test = sizes or (0, 0)
        rows["test"] += [(v, label) for v in videos[:n_test]]
        rows["val"] += [(v, label) for v in videos[n_test : n_test + n_val]]
        rows["train"] += [(v, label) for v in videos[n_test + n_val :]]
    if not names:
        raise PrepareError(f"no class folders with videos ({', '.join(exts)}) under {root}")
    if too_small:
        splits = ["train"] + [s for s, f in (("val", val_fraction), ("test", test_fraction)) if f > 0]
        logger.warning("%d classes have too few videos to split (one for each of %s needed), all in train.csv: %s",
                       len(too_small), ", ".join(splits), ", ".join(too_small))
    written = _write_lists({os.path.join(out_dir, f"{split}.csv"): sorted(r) for split, r in rows.items()})
    summary: dict = {"classes": len(names)}
    summary.update({split: written[os.path.join(out_dir, f"{split}.csv")] for split in rows})
    if too_small:
        summary["too_small_to_split"] = len(too_small)
    write_class_names(os.path.join(out_dir, "index2cls.json"), names)
    return summary


# ---- Something-Something v2 ----------------------------------------------------------------------
def _ssv2_classes(labels_json: str) -> list[str]:
    """Class names in label-id order from `something-something-v2-labels.json` ({"name": "id", ...})."""
    data = _read_json(labels_json)
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
    entries = _read_json(path)
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
    _check_video_root(video_root)
    classes = _ssv2_classes(labels_json)
    index = {c: i for i, c in enumerate(classes)}
    sources = {"train": train_json, "val": validation_json, "test": validation_json}
    read = {p: _ssv2_rows(p, index, extension) for p in dict.fromkeys(sources.values()) if p}
    summary: dict = {"classes": len(classes), "missing": {}}
    found = {path: _present(rows, video_root, f"{path} ({next(s for s, p in sources.items() if p == path)})",
                            "the video folder and the file extension") for path, rows in read.items()}
    lists = {}
    for split, path in sources.items():
        if path:
            lists[split], missing = found[path]  # val and test: one file, checked once
            if video_root is not None:
                summary["missing"][split] = missing
    written = _write_lists({os.path.join(out_dir, f"{split}.csv"): rows for split, rows in lists.items()})
    summary.update({split: written[os.path.join(out_dir, f"{split}.csv")] for split in lists})
    write_class_names(os.path.join(out_dir, "index2cls.json"), classes)
    return summary
