"""Base-to-novel protocol: fine-tune on 16 videos per base class, test on base and (zero-shot) novel classes.

The splits ship in `label_db/base_to_novel/<folder>/` (see its README): `base_classes.txt`,
`novel_classes.txt`, `train_seed{N}.csv`, `test_base.csv`, `test_novel.csv`. For each seed the model is
trained on that seed's 16-shot list with the base classes as the classifier, then tested on the base test
videos (base classifier) and the novel test videos (novel classifier). The weights tested are the average of
the seed's epochs 2..last (`averaged_checkpoint`, what the original's test scripts tested) or, on request, its
last checkpoint; a test classifier reads the class names, or a class description file per side (FROSTER's
rephrased descriptions, `read_class_descriptions`) in their place. Reported per seed: base top-1 B,
novel top-1 N and their harmonic mean HM = 2·B·N / (B + N); over seeds: mean ± std (population) of each,
and also the HM of the mean B and mean N, which is what the published tables print. See
`docs/base_to_novel.md`.

Before anything trains, every listed video is looked up under the user's video folder (one report of the
missing ones, not one error each), and the lists are rewritten with the paths found there, so copies that
name Kinetics clips `<youtube id>_<start>_<end>.mp4`, or keep UCF101 without class folders, work as they are.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import re
import statistics
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import yaml

from slowfast.datasets.video_list import VideoEntry, read_video_csv
from slowfast.engine.zero_shot_protocol import ProtocolError, Split, split_cfg
from slowfast.paths import LABEL_DB
from slowfast.utils.atomic import atomic_write_text
from slowfast.utils.class_index import read_class_names, write_class_names

__all__ = [
    "B2NDataset", "B2N_DATASETS", "B2NSplits", "VideoCheck", "MissingVideosError", "ProtocolLists",
    "splits_root", "read_class_list", "load_splits", "video_key", "check_videos", "write_missing_report",
    "TEST_CHECKPOINTS", "read_class_descriptions", "write_class_texts", "averaged_checkpoint",
    "write_protocol_lists", "prepare_lists", "train_cfg", "test_cfg", "harmonic_mean", "seed_result", "summarize_b2n",
    "markdown_b2n", "write_b2n_results", "evaluate_base_novel", "run_base_to_novel",
]

logger = logging.getLogger(__name__)

# Which weights a trained seed is tested with: the average of its epochs 2..last (the original's scripts) or
# its last checkpoint.
TEST_CHECKPOINTS = ("average", "last")
VIDEO_EXTENSIONS = (".mp4", ".avi", ".mkv", ".webm", ".mov", ".m4v")
# A Kinetics clip's file stem: the 11-character YouTube id, optionally followed by _<start>_<end>.
_YOUTUBE_STEM = re.compile(r"^(?P<id>[A-Za-z0-9_-]{11})(?:_\d+_\d+)?$")


@dataclass(frozen=True)
class B2NDataset:
    """A benchmark of the protocol: its split folder, seeds, how videos are matched, whether flips are allowed."""

    name: str
    folder: str
    seeds: tuple[int, ...]
    youtube_ids: bool = False  # Kinetics: match files on the YouTube id
    random_flip: bool = True  # False where classes name a direction ("from left to right")


B2N_DATASETS = {
    "k400": B2NDataset("k400", "kinetics400", (1, 2, 3), youtube_ids=True),
    "hmdb51": B2NDataset("hmdb51", "hmdb51", (1,)),
    "ucf101": B2NDataset("ucf101", "ucf101", (1,)),
    "ssv2": B2NDataset("ssv2", "ssv2", (1, 2, 3), random_flip=False),
}


def splits_root() -> str:
    """`label_db/base_to_novel` of this checkout."""
    return os.path.join(LABEL_DB, "base_to_novel")


@dataclass(frozen=True)
class B2NSplits:
    """The lists of one benchmark; `VideoEntry.path` is the name as listed (relative to the video folder)."""

    name: str
    folder: str
    base_classes: list[str]
    novel_classes: list[str]
    train: dict[int, list[VideoEntry]]
    test_base: list[VideoEntry]
    test_novel: list[VideoEntry]

    def lists(self, seeds: Iterable[int]) -> dict[str, list[VideoEntry]]:
        """The lists a run over `seeds` reads, by file name."""
        out = {f"train_seed{s}.csv": self.train[s] for s in seeds}
        out.update({"test_base.csv": self.test_base, "test_novel.csv": self.test_novel})
        return out


def read_class_list(path: str) -> list[str]:
    """Class names, one a line (index = line number - 1); empty or repeated names are refused."""
    if not os.path.isfile(path):
        raise ProtocolError(f"class list not found: {path}")
    with open(path, encoding="utf-8") as f:
        names = [line.rstrip("\r\n") for line in f]
    while names and not names[-1].strip():
        names.pop()
    for i, name in enumerate(names):
        if not name.strip():
            raise ProtocolError(f"{path}:{i + 1}: empty class name")
        if names.index(name) != i:
            raise ProtocolError(f"{path}:{i + 1}: class {name!r} is listed twice")
    if not names:
        raise ProtocolError(f"{path}: no classes listed")
    return names


def load_splits(name: str, folder: str | None = None) -> B2NSplits:
    """Read and check the lists of benchmark `name` from `folder` (default: the shipped splits).

    Every label must index its class list; the training seeds are the `train_seed{N}.csv` files present."""
    folder = folder or os.path.join(splits_root(), B2N_DATASETS[name].folder if name in B2N_DATASETS else name)
    if not os.path.isdir(folder):
        raise ProtocolError(f"base-to-novel splits not found: {folder}")
    base = read_class_list(os.path.join(folder, "base_classes.txt"))
    novel = read_class_list(os.path.join(folder, "novel_classes.txt"))
    seeds = sorted(int(m.group(1)) for f in os.listdir(folder) if (m := re.fullmatch(r"train_seed(\d+)\.csv", f)))
    if not seeds:
        raise ProtocolError(f"{folder}: no train_seed<N>.csv lists")

    def read(file: str, classes: list[str]) -> list[VideoEntry]:
        return read_video_csv(os.path.join(folder, file), ",", "", num_classes=len(classes))

    return B2NSplits(name, folder, base, novel, {s: read(f"train_seed{s}.csv", base) for s in seeds},
                     read("test_base.csv", base), read("test_novel.csv", novel))


# ---- finding the listed videos in the user's folder ---------------------------------------------------
def video_key(path: str, youtube_ids: bool) -> str:
    """What a listed name and a file on disk are matched on: the file stem, or the YouTube id of a Kinetics clip."""
    stem = os.path.splitext(os.path.basename(path))[0]
    if youtube_ids and (m := _YOUTUBE_STEM.match(stem)):
        return m.group("id")
    return stem


def _index_folder(root: str, youtube_ids: bool) -> dict[str, list[str]]:
    """key -> video files (relative to `root`) found anywhere under it; walked once."""
    index: dict[str, list[str]] = {}
    for dirpath, _, files in os.walk(root, followlinks=True):
        for f in files:
            if f.lower().endswith(VIDEO_EXTENSIONS):
                rel = os.path.relpath(os.path.join(dirpath, f), root).replace(os.sep, "/")
                index.setdefault(video_key(f, youtube_ids), []).append(rel)
    return index


def _best_candidate(listed: str, candidates: list[str]) -> str:
    """Of several files with the listed name's key, the one sharing most folder names (train/ vs val/)."""
    wanted = set(os.path.dirname(listed).split("/")) - {""}
    return max(sorted(candidates), key=lambda c: len(wanted & set(os.path.dirname(c).split("/"))))


@dataclass
class VideoCheck:
    """Result of looking the listed videos up: listed name -> file found (relative to `root`), and the missing
    names with the lists naming them."""

    root: str
    youtube_ids: bool = False
    found: dict[str, str] = field(default_factory=dict)
    missing: dict[str, list[str]] = field(default_factory=dict)

    @property
    def total(self) -> int:
        return len(self.found) + len(self.missing)


class MissingVideosError(ProtocolError):
    """Some listed videos are not in the video folder; `report` is the file naming all of them."""

    def __init__(self, message: str, report: str, count: int):
        super().__init__(message)
        self.report = report
        self.count = count


def check_videos(lists: dict[str, list[VideoEntry]], video_root: str, youtube_ids: bool = False) -> VideoCheck:
    """Look every listed video up under `video_root`: first at its listed path, then (walking the folder once)
    by `video_key` anywhere below it, with any video extension."""
    if not os.path.isdir(video_root):
        raise ProtocolError(f"video folder not found: {video_root}")
    named_in: dict[str, list[str]] = {}
    for list_name, entries in lists.items():
        for e in entries:
            named_in.setdefault(e.path, []).append(list_name)
    check = VideoCheck(video_root, youtube_ids)
    unresolved = []
    for name in named_in:
        if os.path.isfile(os.path.join(video_root, name)):
            check.found[name] = name
        else:
            unresolved.append(name)
    if unresolved:
        index = _index_folder(video_root, youtube_ids)
        for name in unresolved:
            candidates = index.get(video_key(name, youtube_ids))
            if candidates:
                check.found[name] = _best_candidate(name, candidates)
            else:
                check.missing[name] = sorted(set(named_in[name]))
    return check


def write_missing_report(check: VideoCheck, path: str) -> str:
    """Write one line per missing video (`name<TAB>lists naming it`) and return the one-line summary."""
    atomic_write_text(path, "".join(f"{n}\t{' '.join(ls)}\n" for n, ls in sorted(check.missing.items())))
    return (f"{len(check.missing)} of {check.total} listed videos are not under {check.root} "
            f"(looked up by path, then by {'YouTube id' if check.youtube_ids else 'file name'} anywhere below it); "
            f"they are listed in {path}")


# ---- the lists the engine reads ------------------------------------------------------------------------
@dataclass(frozen=True)
class ProtocolLists:
    """Folders in the engine's layout (`train.csv` / `test.csv`, paths relative to the video folder)."""

    train_dirs: dict[int, str]
    base: Split
    novel: Split
    missing: int = 0  # listed videos not found (left out)
    # side ("base", "novel") -> class-index file of the descriptions its test classifier reads (default: names)
    class_text: dict[str, str] = field(default_factory=dict)

    def test_split(self, side: Split) -> Split:
        """`side` as tested: with its class descriptions as the classifier's text when there are any."""
        return dataclasses.replace(side, index_file=self.class_text.get(side.name, side.index_file))


def _write_list(path: str, entries: list[VideoEntry], found: dict[str, str]) -> int:
    rows = [f"{found[e.path]},{e.label}\n" for e in entries if e.path in found]
    if not rows:
        raise ProtocolError(f"none of the videos of {path} were found; nothing to run")
    atomic_write_text(path, "".join(rows))
    return len(rows)


def _description_name(text: str) -> str | None:
    """The class name a description starts with ("Pour: A person is pouring ..."), or None without one."""
    head, colon, _ = text.partition(":")
    return head if colon and head.strip() else None


def read_class_descriptions(path: str, classes: Sequence[str]) -> list[str]:
    """The texts of `classes` from a class description file (`{"0": "Name: description", ...}`, index -> text,
    as FROSTER's `train_rephrased.json` / `test_rephrased.json`), in class order.

    Entry k is class k, as the original read it. When every entry starts with a class name ("Pour: ..."),
    the names are checked against the class list ignoring case, spaces and underscores: entries that name
    every class once but in another order are put in class order; a name that is not a class is an error
    naming it. Entries without a name part are taken by index."""
    from slowfast.text.prompt_file import loose_key

    texts = read_class_names(path)
    if len(texts) != len(classes):
        raise ProtocolError(f"{path} describes {len(texts)} classes but the list has {len(classes)}")
    names = [_description_name(t) for t in texts]
    if any(n is None for n in names):
        logger.info("%s: entries without a 'Name:' part, taken by index", path)
        return texts
    named = [n for n in names if n is not None]  # all of them, checked above
    by_name = {loose_key(n): t for n, t in zip(named, texts)}
    unknown = [n for n in named if loose_key(n) not in {loose_key(c) for c in classes}]
    if unknown or len(by_name) != len(classes):
        raise ProtocolError(f"{path}: descriptions of {unknown[:5] or 'a class named twice'} do not match the class "
                            f"list {list(classes)[:5]}...")
    ordered = [by_name[loose_key(c)] for c in classes]
    if ordered != texts:
        logger.warning("%s: descriptions put in the class list's order (matched on their names)", path)
    return ordered


def write_class_texts(class_text: dict[str, str], splits: B2NSplits, out_dir: str) -> dict[str, str]:
    """side -> the class-index file of that side's descriptions, written in `out_dir`, checked against the class
    list (`read_class_descriptions`). `class_text` maps side ("base", "novel") -> description file."""
    out = {}
    for side, path in class_text.items():
        if not path:
            continue
        classes = splits.base_classes if side == "base" else splits.novel_classes
        out[side] = os.path.join(out_dir, f"{side}_class_text.json")
        write_class_names(out[side], read_class_descriptions(path, classes))
    return out


def write_protocol_lists(splits: B2NSplits, check: VideoCheck, out_dir: str, seeds: Sequence[int]
                         ) -> ProtocolLists:
    """`out_dir/seed<N>/train.csv`, `out_dir/{base,novel}/test.csv` and the two class-index files, with the
    paths found by `check_videos` (videos it did not find are left out)."""
    base_index, novel_index = os.path.join(out_dir, "base_index2cls.json"), os.path.join(out_dir, "novel_index2cls.json")
    write_class_names(base_index, splits.base_classes)
    write_class_names(novel_index, splits.novel_classes)
    train_dirs = {}
    for s in seeds:
        train_dirs[s] = os.path.join(out_dir, f"seed{s}")
        _write_list(os.path.join(train_dirs[s], "train.csv"), splits.train[s], check.found)
    splits_out = []
    for which, entries, index, classes in (("base", splits.test_base, base_index, splits.base_classes),
                                           ("novel", splits.test_novel, novel_index, splits.novel_classes)):
        n = _write_list(os.path.join(out_dir, which, "test.csv"), entries, check.found)
        splits_out.append(Split(which, os.path.join(out_dir, which), index, len(classes), n))
    return ProtocolLists(train_dirs, splits_out[0], splits_out[1], missing=len(check.missing))


# ---- configurations --------------------------------------------------------------------------------------
def _text_aug(c, text_aug_file: str, which: str) -> None:
    if text_aug_file:
        c.DATA.TEXT_AUG = True
        c.DATA.TEXT_AUG_FEATURE_FILE = text_aug_file.replace("{split}", which)


def train_cfg(cfg, lists: ProtocolLists, seed: int, output_dir: str, text_aug_file: str = ""):
    """Training on seed `seed`'s 16-shot list, base classes as the classifier, resumable in `output_dir`.

    RNG_SEED is the split's seed, so seeds differ in their data and in their training randomness."""
    c = cfg.clone()
    c.defrost()
    c.DATA.PATH_TO_DATA_DIR = lists.train_dirs[seed]
    c.DATA.INDEX_LABEL_MAPPING_FILE = lists.base.index_file
    c.DATA.PATH_LABEL_SEPARATOR = ","
    c.MODEL.NUM_CLASSES = lists.base.num_classes
    c.TRAIN.ENABLE, c.TEST.ENABLE, c.TRAIN.AUTO_RESUME = True, False, True
    c.RNG_SEED = int(seed)
    c.OUTPUT_DIR = output_dir
    _text_aug(c, text_aug_file, "base")
    c.freeze()
    return c


def test_cfg(cfg, split: Split, checkpoint: str, output_dir: str, text_aug_file: str = ""):
    """Test of `checkpoint` ("" = the initial weights) on one side (`split.name` base or novel) in
    `output_dir/<side>`. The frozen distillation teacher is not built: testing never uses it."""
    c = split_cfg(cfg, split, output_dir, text_aug_file).clone()
    c.defrost()
    c.TEST.CUSTOM_LOAD = bool(checkpoint)
    c.TEST.CUSTOM_LOAD_FILE = checkpoint
    c.MODEL.KEEP_RAW_MODEL = False
    c.MODEL.RAW_MODEL_DISTILLATION = False
    c.freeze()
    return c


# ---- results ------------------------------------------------------------------------------------------
def harmonic_mean(base: float, novel: float) -> float:
    """HM = 2·B·N / (B + N); 0 when both are 0."""
    return 0.0 if base + novel == 0 else 2.0 * base * novel / (base + novel)


def seed_result(base_metrics: dict, novel_metrics: dict) -> dict:
    """One run's B, N and HM (top-1, %) with the full test metrics of each side."""
    b, n = float(base_metrics["top1_acc"]), float(novel_metrics["top1_acc"])
    return {"base": b, "novel": n, "hm": harmonic_mean(b, n), "base_metrics": base_metrics,
            "novel_metrics": novel_metrics}


def _mean_std(values: list[float]) -> dict:
    return {"mean": statistics.fmean(values), "std": statistics.pstdev(values) if len(values) > 1 else 0.0}


def summarize_b2n(dataset: str, per_seed: dict[str, dict]) -> dict:
    """Mean ± std (population, over runs) of B, N and HM, plus the HM of the mean B and mean N."""
    out: dict = {"dataset": dataset, "seeds": per_seed}
    for key in ("base", "novel", "hm"):
        out[key] = _mean_std([float(r[key]) for r in per_seed.values()])
    out["hm_of_means"] = harmonic_mean(out["base"]["mean"], out["novel"]["mean"])
    return out


def markdown_b2n(summary: dict) -> str:
    rows = ["| run | base top-1 | novel top-1 | HM | base videos | novel videos |", "|---|---|---|---|---|---|"]
    for name, r in summary["seeds"].items():
        rows.append(f"| {name} | {r['base']:.2f} | {r['novel']:.2f} | {r['hm']:.2f} | "
                    f"{r['base_metrics']['num_videos']} | {r['novel_metrics']['num_videos']} |")
    b, n, h = summary["base"], summary["novel"], summary["hm"]
    rows.append(f"| **mean ± std** | **{b['mean']:.2f} ± {b['std']:.2f}** | **{n['mean']:.2f} ± {n['std']:.2f}** | "
                f"**{h['mean']:.2f} ± {h['std']:.2f}** | | |")
    rows.append(f"| HM of the means | | | {summary['hm_of_means']:.2f} | | |")
    return "\n".join(rows)


def write_b2n_results(summary: dict, output_dir: str) -> tuple[str, str]:
    """`b2n_<dataset>.json` and `.md` under `output_dir`, each written atomically; returns their paths."""
    stem = os.path.join(output_dir, f"b2n_{summary['dataset']}")
    atomic_write_text(stem + ".json", json.dumps(summary, indent=2) + "\n")
    atomic_write_text(stem + ".md", f"# Base-to-novel {summary['dataset']}\n\n{markdown_b2n(summary)}\n")
    return stem + ".json", stem + ".md"


# ---- running ------------------------------------------------------------------------------------------
def _cached_metrics(output_dir: str, checkpoint: str, index_file: str) -> dict | None:
    """The metrics of an earlier test of the same checkpoint file with the same class text (`index_file`) in
    `output_dir`, if newer than the checkpoint."""
    path, run_cfg = os.path.join(output_dir, "test_metrics.json"), os.path.join(output_dir, "config.yaml")
    if not checkpoint or not os.path.isfile(path) or os.path.getmtime(path) < os.path.getmtime(checkpoint):
        return None
    if not os.path.isfile(run_cfg):
        return None
    with open(run_cfg, encoding="utf-8") as f:
        tested = ((yaml.safe_load(f) or {}).get("DATA") or {}).get("INDEX_LABEL_MAPPING_FILE")
    with open(path, encoding="utf-8") as f:
        metrics = json.load(f)
    return metrics if metrics.get("checkpoint") == checkpoint and tested == index_file else None


def evaluate_base_novel(cfg, lists: ProtocolLists, checkpoint: str, output_dir: str,
                        init_method: str = "tcp://localhost:9999", text_aug_file: str = "") -> dict:
    """Test `checkpoint` on the base and the novel test lists (results in `output_dir/{base,novel}/`); a side
    already tested with the same checkpoint file is not tested again (an interrupted run goes on)."""
    from slowfast.engine import test
    from slowfast.utils.distributed import launch_job

    metrics = {}
    for split in (lists.test_split(lists.base), lists.test_split(lists.novel)):
        c = test_cfg(cfg, split, checkpoint, output_dir, text_aug_file)
        cached = _cached_metrics(c.OUTPUT_DIR, checkpoint, split.index_file)
        if cached is None:
            launch_job(c, init_method, test)
            with open(os.path.join(c.OUTPUT_DIR, "test_metrics.json"), encoding="utf-8") as f:
                cached = json.load(f)
        metrics[split.name] = cached
        logger.info("%s: top-1 %.2f %% on %d videos", split.name, cached["top1_acc"], cached["num_videos"])
    return seed_result(metrics["base"], metrics["novel"])


def averaged_checkpoint(output_dir: str) -> str:
    """The uniform average of a run's epoch checkpoints 2..last (epoch 1 alone when it is the only one), as
    the original's base-to-novel test scripts tested (`swa_2_<last>`); written to
    `output_dir/wa_checkpoints/` and reused while it is newer than every checkpoint averaged."""
    from slowfast.averaging import find_checkpoints, plan_averaging, run_averaging
    from slowfast.utils.checkpoint import checkpoint_dir

    source = checkpoint_dir(output_dir)
    found = find_checkpoints(source)[0] if os.path.isdir(source) else []
    if not found:
        raise ProtocolError(f"no checkpoint to average in {source}")
    plan = plan_averaging(source, ["swa"], start=min(2, found[-1].id))
    path = os.path.join(output_dir, "wa_checkpoints", plan.output_name("swa"))
    if os.path.isfile(path) and all(os.path.getmtime(path) >= os.path.getmtime(c.path) for c in plan.checkpoints):
        return path
    return run_averaging(plan, os.path.dirname(path))[0]


def _train_seed(cfg, lists: ProtocolLists, seed: int, output_dir: str, init_method: str, text_aug_file: str) -> str:
    """Train (or resume) one seed and return its newest checkpoint."""
    from slowfast.engine import train
    from slowfast.utils.checkpoint import last_checkpoint
    from slowfast.utils.distributed import launch_job

    launch_job(train_cfg(cfg, lists, seed, output_dir, text_aug_file), init_method, train)
    checkpoint = last_checkpoint(output_dir)
    if checkpoint is None:
        raise ProtocolError(f"seed {seed}: training wrote no checkpoint in {output_dir}/checkpoints")
    return checkpoint


def prepare_lists(splits: B2NSplits, video_root: str, output_dir: str, seeds: Sequence[int],
                  youtube_ids: bool, allow_missing: bool = False, class_text: dict[str, str] | None = None
                  ) -> ProtocolLists:
    """Check the videos of `seeds`' runs (one report of the missing ones) and write the lists in
    `output_dir/lists`, with the class descriptions of `class_text` (side -> file) for the test classifiers."""
    texts = write_class_texts(class_text or {}, splits, os.path.join(output_dir, "lists"))
    unknown = [s for s in seeds if s not in splits.train]
    if unknown:
        raise ProtocolError(f"{splits.name}: no training list for seed(s) {unknown} in {splits.folder} "
                            f"(available: {sorted(splits.train)})")
    check = check_videos(splits.lists(seeds), video_root, youtube_ids)
    report = os.path.join(output_dir, "missing_videos.txt")
    if check.missing:
        message = write_missing_report(check, report)
        if not allow_missing:
            raise MissingVideosError(message + " (allow_missing runs without them)", report, len(check.missing))
        logger.warning("%s; running without them", message)
    elif os.path.isfile(report):
        os.remove(report)  # a report from an earlier run whose videos are all there now
    lists = write_protocol_lists(splits, check, os.path.join(output_dir, "lists"), seeds)
    return dataclasses.replace(lists, class_text=texts)


def run_base_to_novel(cfg, splits: B2NSplits, video_root: str, output_dir: str, seeds: Sequence[int] | None = None,
                      *, checkpoint: str | None = None, youtube_ids: bool = False, allow_missing: bool = False,
                      init_method: str = "tcp://localhost:9999", text_aug_file: str = "",
                      test_checkpoint: str = "average", class_text: dict[str, str] | None = None) -> dict:
    """The whole protocol; writes `output_dir/b2n_<name>.{json,md}` and returns the summary.

    `cfg.DATA.PATH_PREFIX` must be `video_root`. With `checkpoint` (a file, or "" for the initial weights)
    nothing trains: that model is tested on base and novel once. Otherwise each seed trains in
    `output_dir/seed<N>` (resuming what an interrupted run left there) and is then tested: the average of its
    epochs 2..last (`test_checkpoint` "average", as the original's scripts) or its last epoch ("last").
    `class_text` (side -> class description file) replaces that side's class names in its test classifier."""
    if test_checkpoint not in TEST_CHECKPOINTS:
        raise ProtocolError(f"test_checkpoint must be one of {', '.join(TEST_CHECKPOINTS)}, got {test_checkpoint!r}")
    seeds = list(seeds if seeds is not None else sorted(splits.train))
    os.makedirs(output_dir, exist_ok=True)
    if cfg.DATA.RANDOM_FLIP and splits.name in B2N_DATASETS and not B2N_DATASETS[splits.name].random_flip:
        logger.warning("%s classes name directions but DATA.RANDOM_FLIP is True: flips change the label", splits.name)
    lists = prepare_lists(splits, video_root, output_dir, [] if checkpoint is not None else seeds, youtube_ids,
                          allow_missing, class_text)
    per_seed: dict[str, dict] = {}
    if checkpoint is not None:
        per_seed["checkpoint"] = evaluate_base_novel(cfg, lists, checkpoint, os.path.join(output_dir, "test_only"),
                                                     init_method, text_aug_file)
    for seed in seeds if checkpoint is None else []:
        seed_dir = os.path.join(output_dir, f"seed{seed}")
        ckpt = _train_seed(cfg, lists, seed, seed_dir, init_method, text_aug_file)
        if test_checkpoint == "average":
            ckpt = averaged_checkpoint(seed_dir)
        per_seed[f"seed{seed}"] = evaluate_base_novel(cfg, lists, ckpt, seed_dir, init_method, text_aug_file)
        r = per_seed[f"seed{seed}"]
        logger.info("seed %d: base %.2f, novel %.2f, HM %.2f", seed, r["base"], r["novel"], r["hm"])
    summary = summarize_b2n(splits.name, per_seed)
    summary["checkpoint"] = checkpoint or None
    summary["tested"] = "given checkpoint" if checkpoint is not None else (
        "average of epochs 2..last" if test_checkpoint == "average" else "last epoch")
    summary["class_text"] = {side: path for side, path in (class_text or {}).items() if path}
    summary["views"] = f"{cfg.TEST.NUM_ENSEMBLE_VIEWS} temporal x {cfg.TEST.NUM_SPATIAL_CROPS} spatial"
    summary["missing_videos"] = lists.missing
    write_b2n_results(summary, output_dir)
    return summary
