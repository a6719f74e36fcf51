r"""Turn official dataset annotations into our CSV lists (`path,label`) and class-index JSON files.

    python tools/prepare_dataset.py kinetics --train train.csv --val validate.csv --out datasets/kinetics400
    python tools/prepare_dataset.py ucf101 --annotations ucfTrainTestlist --out datasets/ucf101
    python tools/prepare_dataset.py hmdb51 --splits-dir testTrainMulti_7030_splits --out datasets/hmdb51
    python tools/prepare_dataset.py k600-zeroshot --k600 k600/validate.csv --out datasets/k600_zeroshot
    python tools/prepare_dataset.py folder --root my_videos --out datasets/mine
    python tools/prepare_dataset.py ssv2 --labels something-something-v2-labels.json \
        --train something-something-v2-train.json --validation something-something-v2-validation.json \
        --out datasets/ssv2
    python tools/prepare_dataset.py reencode videos/k400 videos/k400_fast [--short-side 256] [--gop N] [--workers N]

The benchmarks' classes are the lists shipped in label_db/ (K400, K600, UCF101, HMDB51 and the three
ER-ZSAR K600 zero-shot splits): the official annotation files are checked against them and a missing or
renamed class stops the preparation with its name. Paths in the CSVs are relative to the videos' folder:
set DATA.PATH_PREFIX to it, DATA.PATH_TO_DATA_DIR to the folder holding the CSVs, DATA.PATH_LABEL_SEPARATOR
to "," and DATA.INDEX_LABEL_MAPPING_FILE to the JSON.

`reencode` mirrors a folder of videos into fast-loading copies (H.264 with a keyframe every few frames, no
B-frames, short side 256) at the same relative paths with the extension .mp4, and copies the CSV/JSON lists
found there with the paths rewritten; point DATA.PATH_PREFIX at the copy. See docs/data.md.

Annotation files may start with a UTF-8 byte-order mark. Rows repeating an earlier clip are dropped and
counted; warnings (duplicates, classes too small to split) go to stderr, the summary to stdout. Errors in
the arguments or the annotation files exit with status 2 before anything is written.
"""

import argparse
import json
import logging
import math
import sys
from collections.abc import Iterator
from contextlib import contextmanager

from slowfast.datasets import class_lists, prepare, reencode
from slowfast.errors import cli_main


def _class_index(value: str) -> str | None:
    """--classes: a shipped list's name (k400, ...), "annotations" (no check), or a class-index JSON path."""
    if value == "annotations":
        return None
    if value in class_lists.SHIPPED_CLASS_LISTS:
        return class_lists.shipped_path(value)
    return value


def _fraction(text: str) -> float:
    """--val-fraction/--test-fraction: a number in [0, 1)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a fraction in [0, 1), got {text!r}") from None
    if not (math.isfinite(value) and 0 <= value < 1):
        raise argparse.ArgumentTypeError(f"expected a fraction in [0, 1), got {text!r}")
    return value


def _classes_flag(parser: argparse.ArgumentParser, default: str, what: str) -> None:
    parser.add_argument(
        "--classes", default=default,
        help=f"class list the {what} must match: a list shipped in label_db/ "
             f"({', '.join(class_lists.SHIPPED_CLASS_LISTS)}), a class-index JSON, or 'annotations' to take the "
             "classes from the annotation files unchecked (default %(default)s)")


def _kinetics_parser(sub) -> None:
    k = sub.add_parser("kinetics", help="Kinetics-400/600/700 annotation CSVs -> train/val/test.csv + index2cls.json")
    k.add_argument("--train", help="official train annotation CSV (label,youtube_id,time_start,time_end,split)")
    k.add_argument("--val", required=True, help="official validation annotation CSV")
    k.add_argument("--test", help="official test annotation CSV with labels (default: test.csv = the val list)")
    k.add_argument("--out", required=True, help="output folder")
    k.add_argument("--pattern", default=prepare.DEFAULT_KINETICS_PATTERN,
                   help="video path relative to the video folder; fields {split} {label} {label_underscored} "
                        "{youtube_id} {time_start} {time_end} (default %(default)s)")
    k.add_argument("--train-dir", default="train", help="{split} value for training videos")
    k.add_argument("--val-dir", default="val", help="{split} value for validation videos")
    k.add_argument("--test-dir", default="test", help="{split} value for test videos")
    k.add_argument("--video-root", help="if given, leave out (and count) clips whose file is missing there")
    _classes_flag(k, "k400", "annotation labels")


def _ucf_hmdb_parsers(sub) -> None:
    u = sub.add_parser("ucf101", help="classInd.txt + trainlist0N/testlist0N -> ucf101_split{N}/ + ucf101-index2cls.json")
    u.add_argument("--annotations", required=True, help="folder with classInd.txt, trainlist0N.txt, testlist0N.txt")
    u.add_argument("--out", required=True, help="output folder")
    _classes_flag(u, "ucf101", "classes of classInd.txt")

    h = sub.add_parser("hmdb51", help="<class>_test_split<N>.txt files -> hmdb_split{N}/ + hmdb-index2cls.json")
    h.add_argument("--splits-dir", required=True, help="folder with the official split files")
    h.add_argument("--out", required=True, help="output folder")
    _classes_flag(h, "hmdb51", "classes of the split files")


def _k600_parser(sub) -> None:
    z = sub.add_parser("k600-zeroshot", help="the 3 ER-ZSAR K600 zero-shot splits (160 classes each, shipped in "
                                              "label_db/) -> k600_split{1,2,3}/")
    z.add_argument("--k600", required=True, help="K600 annotation CSV whose videos are tested (e.g. validate.csv)")
    z.add_argument("--out", required=True, help="output folder")
    z.add_argument("--class-lists", help="JSON list of lists of class names used instead of the shipped splits")
    z.add_argument("--random-splits", action="store_true",
                   help="draw seeded random splits from the K600 classes absent from K400 instead of the shipped "
                        "ER-ZSAR splits (NOT comparable with published numbers)")
    z.add_argument("--k400-classes", help="with --random-splits: the K400 classes to exclude, a class-index JSON or "
                                          "a K400 annotation CSV (default: label_db/k400-index2cls.json)")
    z.add_argument("--seed", type=int, default=0, help="with --random-splits: split s uses seed + s")
    z.add_argument("--num-classes", type=int, default=160, help="with --random-splits: classes per split")
    z.add_argument("--pattern", default=prepare.DEFAULT_KINETICS_PATTERN, help="video path pattern (see kinetics)")
    z.add_argument("--split-dir", default="val", help="{split} value for the videos (default %(default)s)")
    z.add_argument("--video-root", help="if given, leave out (and count) clips whose file is missing there")


def _folder_ssv2_parsers(sub) -> None:
    f = sub.add_parser("folder", help="one folder per class -> seeded train/val/test.csv + index2cls.json")
    f.add_argument("--root", required=True, help="folder with one sub-folder of videos per class")
    f.add_argument("--out", required=True, help="output folder")
    f.add_argument("--val-fraction", type=_fraction, default=0.1,
                   help="share of each class's videos in val.csv, in [0, 1): at least one video when above 0 and "
                        "the class has a video for each split (default %(default)s)")
    f.add_argument("--test-fraction", type=_fraction, default=0.1,
                   help="share of each class's videos in test.csv, as --val-fraction (default %(default)s)")
    f.add_argument("--seed", type=int, default=0)
    f.add_argument("--extensions", default=",".join(prepare.VIDEO_EXTENSIONS), help="comma-separated")

    s = sub.add_parser("ssv2", help="Something-Something v2 label/train/validation JSONs -> train/val/test.csv + "
                                    "index2cls.json (test = validation; train with DATA.RANDOM_FLIP False)")
    s.add_argument("--labels", required=True, help="something-something-v2-labels.json")
    s.add_argument("--train", help="something-something-v2-train.json")
    s.add_argument("--validation", required=True, help="something-something-v2-validation.json")
    s.add_argument("--out", required=True, help="output folder")
    s.add_argument("--extension", default=".webm", help="video file extension (default %(default)s)")
    s.add_argument("--video-root", help="if given, leave out (and count) videos whose file is missing there")


def _reencode_parser(sub) -> None:
    r = sub.add_parser(
        "reencode", help="mirror SRC_DIR's videos into DST_DIR as fast-loading .mp4 copies (resumable)",
        description="Re-encode every video under SRC_DIR to the same relative path under DST_DIR, extension .mp4: "
                    "H.264 (yuv420p, no audio, no B-frames, a keyframe every --gop frames), frame timestamps kept. "
                    "Outputs appear under their final name only when complete: rerun the same command to resume. "
                    "The CSV/JSON files under SRC_DIR are copied with their video paths rewritten to .mp4. Files "
                    f"that cannot be converted are listed in DST_DIR/{reencode.FAILURES_FILE}. Exit status 1 when "
                    "every video failed (or any, with --strict), 2 on an error that stops the run.")
    r.add_argument("src_dir", metavar="SRC_DIR", help="folder of videos (read only)")
    r.add_argument("dst_dir", metavar="DST_DIR", help="output folder, outside SRC_DIR")
    r.add_argument("--short-side", type=int, default=reencode.DEFAULT_SHORT_SIDE,
                   help="scale the short side down to this many pixels, keeping the aspect ratio (never up; "
                        "0 keeps the size) (default %(default)s)")
    r.add_argument("--gop", type=int, default=reencode.DEFAULT_GOP,
                   help="keyframe interval in frames: 1 (every frame a keyframe) decodes clips fastest, larger "
                        "intervals make smaller files at the same --crf (default %(default)s)")
    r.add_argument("--crf", type=int, default=reencode.DEFAULT_CRF,
                   help="x264 quality, 0-51: lower keeps more detail in bigger files, each +6 roughly halves "
                        "the size (default %(default)s: with every frame a keyframe, about the quality of the "
                        "P-frames of x264's default encode, crf 23)")
    r.add_argument("--preset", default=reencode.DEFAULT_PRESET, choices=reencode.X264_PRESETS,
                   help="x264 speed preset (default %(default)s, x264's own: 15%% smaller all-intra files than "
                        "veryfast for twice the encoding time; ultrafast and superfast make much larger files)")
    r.add_argument("--tune", default="none", choices=reencode.X264_TUNES,
                   help="x264 tuning (default %(default)s); fastdecode (no CABAC, no deblocking) reads about 1.25x "
                        "faster and makes 1.35x larger, blockier files at the same --crf")
    r.add_argument("--workers", type=int, default=reencode.available_cores(),
                   help="videos converted in parallel, one process each (default: the CPU cores, %(default)s)")
    r.add_argument("--strict", action="store_true", help="exit with status 1 when any video failed")
    r.add_argument("--no-progress", action="store_true", help="no progress bar")


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="command", required=True)
    for add in (_kinetics_parser, _ucf_hmdb_parsers, _k600_parser, _folder_ssv2_parsers, _reencode_parser):
        add(sub)
    return p.parse_args(argv)


def run_reencode(a: argparse.Namespace) -> int:
    """The `reencode` command: convert, print the report; 1 when every video failed (any, with --strict)."""
    settings = reencode.EncodeSettings(short_side=a.short_side, gop=a.gop, crf=a.crf, preset=a.preset, tune=a.tune)
    report = reencode.reencode_tree(a.src_dir, a.dst_dir, settings, workers=a.workers, progress=not a.no_progress)
    print(reencode.format_report(report))
    failed = len(report.failed)
    return 1 if failed and (failed == report.total or a.strict) else 0


@contextmanager
def _warnings_to_stderr() -> Iterator[None]:
    """The preparation's warnings as `warning: ...` lines on the current stderr, for one command."""
    logger = logging.getLogger("slowfast.datasets")
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("warning: %(message)s"))
    propagate = logger.propagate
    logger.addHandler(handler)
    logger.propagate = False
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.propagate = propagate


def prepare_lists(a: argparse.Namespace) -> dict:
    """Every command but `reencode`: the lists written, their summary."""
    if a.command == "kinetics":
        summary = prepare.prepare_kinetics(
            a.out, a.train, a.val, a.test, pattern=a.pattern,
            split_dirs={"train": a.train_dir, "val": a.val_dir, "test": a.test_dir}, video_root=a.video_root,
            class_index=_class_index(a.classes),
        )
    elif a.command == "ucf101":
        summary = prepare.prepare_ucf101(a.annotations, a.out, class_index=_class_index(a.classes))
    elif a.command == "hmdb51":
        summary = prepare.prepare_hmdb51(a.splits_dir, a.out, class_index=_class_index(a.classes))
    elif a.command == "ssv2":
        summary = prepare.prepare_ssv2(a.labels, a.train, a.validation, a.out, a.extension, a.video_root)
        print("note: Something-Something classes name directions; train with DATA.RANDOM_FLIP False")
    elif a.command == "k600-zeroshot":
        summary = prepare.prepare_k600_zeroshot(
            a.k600, a.k400_classes, a.out, seed=a.seed, num_classes=a.num_classes, class_lists=a.class_lists,
            pattern=a.pattern, split_dir=a.split_dir, video_root=a.video_root, random_splits=a.random_splits,
        )
        if a.random_splits:
            print("note: random splits are not the ER-ZSAR splits of the published results", file=sys.stderr)
    else:
        summary = prepare.prepare_folder(
            a.root, a.out, a.val_fraction, a.test_fraction, a.seed,
            tuple(e if e.startswith(".") else "." + e for e in a.extensions.split(",") if e),
        )
    return summary


@cli_main("interrupted: the same command resumes (finished copies are kept)")
def main(argv=None) -> int:
    a = parse_args(argv)
    if a.command == "reencode":
        return run_reencode(a)
    with _warnings_to_stderr():
        summary = prepare_lists(a)
    print(json.dumps(summary, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
