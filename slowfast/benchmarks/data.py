"""`tools/benchmark.py data`: clips per second through the real loader, source files against re-encoded copies.

Makes Kinetics-like videos with the synthetic generator (340x256, 10 s, 30 fps, H.264 with x264's defaults:
B-frames and a keyframe every 250 frames, the shape of the usual Kinetics file) and one 1280x720 source,
re-encodes them with `tools/prepare_dataset.py reencode`'s defaults (`slowfast.datasets.reencode`), then
times `build_loader` on both in train mode (random 8x16 clip, short side 224-256, random 224 crop, flip)
and test mode (3 views x 1 centre crop at 224), for each worker count. Sources and copies are timed in
turn, round after round, and the speed-up is the median of the per-round ratios, so a change in the
machine's load between rounds does not move it. The first batch of every pass (worker start-up, file
cache) is not timed.
"""

from __future__ import annotations

import argparse
import os
import shlex
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass

from slowfast.benchmarks import append_to_benchmarks_md, environment_line
from slowfast.utils.atomic import atomic_write_text

CLIP_MEAN = [0.48145466, 0.4578275, 0.40821073]
CLIP_STD = [0.26862954, 0.26130258, 0.27577711]


def _cfg(folder: str, workers: int, batch: int, multi_thread: bool):
    from slowfast.config import get_cfg

    cfg = get_cfg()
    cfg.merge_from_list([
        "NUM_GPUS", 0, "RNG_SEED", 0,
        "TRAIN.DATASET", "kinetics", "TEST.DATASET", "kinetics",
        "TRAIN.BATCH_SIZE", batch, "TEST.BATCH_SIZE", batch,
        "TEST.NUM_ENSEMBLE_VIEWS", 3, "TEST.NUM_SPATIAL_CROPS", 1,
        "DATA.PATH_TO_DATA_DIR", folder, "DATA.PATH_PREFIX", folder, "DATA.PATH_LABEL_SEPARATOR", ",",
        "DATA.NUM_FRAMES", 8, "DATA.SAMPLING_RATE", 16, "DATA.TARGET_FPS", 30,
        "DATA.TRAIN_JITTER_SCALES", [224, 256], "DATA.TRAIN_CROP_SIZE", 224, "DATA.TEST_CROP_SIZE", 224,
        "DATA.MEAN", CLIP_MEAN, "DATA.STD", CLIP_STD,
        "DATA_LOADER.NUM_WORKERS", workers, "DATA_LOADER.ENABLE_MULTI_THREAD_DECODE", multi_thread,
    ])
    return cfg


def measure(cfg, mode: str, clips: int) -> tuple[float, int]:
    """Clips per second over `clips` clips after the first batch; returns (rate, clips timed)."""
    from slowfast.datasets import build_loader

    loader = build_loader(cfg, mode, shuffle=mode == "train")
    it = iter(loader)
    next(it)  # start-up: workers, imports, first decode
    done, start = 0, time.perf_counter()
    for batch in it:
        done += batch["frames"].shape[0]
        if done >= clips:
            break
    elapsed = time.perf_counter() - start
    del it, loader
    return done / elapsed, done


def write_lists(folder: str, rels: list[str], clips: int, batch: int) -> None:
    """train.csv and test.csv listing `rels` often enough for `clips` timed clips plus the untimed batch (each
    repeat under another label, since a test list reads a repeated row once)."""
    repeats = (clips + 2 * batch) // len(rels) + 1
    lines = "".join(f"{r},{k}\n" for k in range(repeats) for r in rels)
    for split in ("train", "test"):
        atomic_write_text(os.path.join(folder, f"{split}.csv"), lines)


@dataclass
class Source:
    """A folder of generated source videos and its re-encoded copy."""

    name: str
    source: str
    copy: str
    rels: list[str]

    def sizes(self) -> tuple[int, int]:
        before = sum(os.path.getsize(os.path.join(self.source, r)) for r in self.rels)
        return before, sum(os.path.getsize(os.path.join(self.copy, r)) for r in self.rels)


def _prepare(root: str, name: str, num_videos: int, size: tuple[int, int], seconds: float, settings) -> Source:
    from slowfast.datasets.reencode import reencode_tree
    from slowfast.datasets.synthetic import make_kinetics_like

    source = os.path.join(root, name, "source")
    copy = os.path.join(root, name, f"copy_g{settings.gop}_crf{settings.crf}_{settings.preset}_{settings.tune}")
    rels = [f"videos/kinetics_like_{v:03d}.mp4" for v in range(num_videos)]
    if not all(os.path.isfile(os.path.join(source, r)) for r in rels):
        rels = make_kinetics_like(source, num_videos=num_videos, seed=0, width=size[0], height=size[1], seconds=seconds)
    report = reencode_tree(source, copy, settings, workers=os.cpu_count() or 1)  # skips copies already made
    if report.failed:
        raise RuntimeError(f"re-encoding failed: {report.failed}")
    return Source(name, source, copy, rels)


def compare(src: Source, mode: str, workers: int, args, clips: int) -> tuple[list[float], list[float]]:
    """Rates (clips/s) of the sources and of the copies, one of each per round, timed in turn."""
    rates: dict[str, list[float]] = {src.source: [], src.copy: []}
    for folder in rates:
        write_lists(folder, src.rels, clips, args.batch_size)
    for _ in range(args.rounds):
        for folder in rates:
            rate, _ = measure(_cfg(folder, workers, args.batch_size, not args.no_multi_thread_decode), mode, clips)
            rates[folder].append(rate)
    a, b = rates[src.source], rates[src.copy]
    print(f"{src.name} {mode} workers={workers}: source {statistics.median(a):.2f} clips/s, "
          f"copy {statistics.median(b):.2f} clips/s", file=sys.stderr, flush=True)
    return a, b


def _rows(src: Source, mode: str, workers: int, a: list[float], b: list[float]) -> list[str]:
    before, after = src.sizes()
    ra, rb = statistics.median(a), statistics.median(b)
    speedup = statistics.median(y / x for x, y in zip(a, b))
    return [
        f"| {src.name}, source | {mode} | {workers} | {ra:.2f} | {1000 / ra:.0f} | {before / 1e6:.2f} | 1.00 | 1.00 |",
        f"| {src.name}, re-encoded | {mode} | {workers} | {rb:.2f} | {1000 / rb:.0f} | {after / 1e6:.2f} | "
        f"**{speedup:.2f}** | {after / before:.2f} |",
    ]


def run(args: argparse.Namespace, argv: list[str]) -> int:
    """Time the loader as `args` (parsed by `stdd-benchmark data`) asks; `argv` is quoted in BENCHMARKS.md."""
    from dataclasses import replace

    from slowfast.datasets.reencode import EncodeSettings

    tmp = None if args.video_dir else tempfile.TemporaryDirectory(prefix="stdd_data_bench_")
    root = args.video_dir or tmp.name
    settings = EncodeSettings()
    chosen = (("gop", args.gop), ("crf", args.crf), ("tune", args.tune))
    settings = replace(settings, **{k: v for k, v in chosen if v is not None})
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    t0 = time.perf_counter()
    sources = [_prepare(root, "340x256", args.num_videos, (340, 256), args.seconds, settings)]
    if args.hd_clips > 0:
        sources.append(_prepare(root, "1280x720", 1, (1280, 720), args.seconds, settings))
    made = time.perf_counter() - t0
    rows = []
    for mode in args.modes:
        for w in args.workers:
            rows += _rows(sources[0], mode, w, *compare(sources[0], mode, w, args, args.clips))
    if args.hd_clips > 0:
        rows += _rows(sources[1], "train", 1, *compare(sources[1], "train", 1, args, args.hd_clips))
    text = "\n".join([
        environment_line("cpu"),
        "",
        f"Sources: {args.num_videos} Kinetics-like videos 340x256 and one 1280x720, {args.seconds:g} s, 30 fps, H.264 with x264's "
        f"defaults (B-frames, keyframe every 250 frames); copies: `prepare_dataset.py reencode` with short side "
        f"{settings.short_side}, keyframe every {settings.gop} frame(s), no B-frames, crf {settings.crf}, preset "
        f"{settings.preset}, tune {settings.tune} (videos made and converted in {made:.0f} s). 8x16 sampling at 224, batch {args.batch_size}, "
        f"PyAV multi-thread decode {'off' if args.no_multi_thread_decode else 'on'}; train = random clip + jitter "
        "224-256 + crop + flip, test = 3 views x 1 centre crop (one decoding pass per video). Medians of "
        f"{args.rounds} rounds, sources and copies timed in turn; speed-up = median of the per-round ratios. First "
        f"batch of each pass not timed. Load average when started: {load:.1f}.",
        "",
        "| videos | mode | workers | clips/s | ms/clip | MB on disk | speed-up | size ratio |",
        "|---|---|---|---|---|---|---|---|",
        *rows,
    ])
    print(text)
    if args.append:
        command = "python tools/benchmark.py data " + " ".join(shlex.quote(a) for a in argv)
        append_to_benchmarks_md("Data loader: source files vs re-encoded copies", text, command.strip())
    if tmp is not None:
        tmp.cleanup()
    return 0
