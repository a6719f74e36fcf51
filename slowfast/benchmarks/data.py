"""`tools/benchmark.py data`: clips per second through the real loader on Kinetics-like videos.

Makes a handful of Kinetics-sized videos with the synthetic generator (340x256, 10 s, 30 fps, H.264),
then times `build_loader` in train mode (random 8x16 clip, short side 224-256, random 224 crop, flip)
and test mode (3 views x 1 centre crop at 224) for each worker count. The first batch (worker start-up,
file cache) is not timed.
"""

from __future__ import annotations

import argparse
import os
import shlex
import sys
import tempfile
import time

from slowfast.benchmarks import append_to_benchmarks_md, environment_line
from slowfast.utils.atomic import atomic_write_text

CLIP_MEAN = [0.48145466, 0.4578275, 0.40821073]
CLIP_STD = [0.26862954, 0.26130258, 0.27577711]


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="tools/benchmark.py data", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--workers", type=int, nargs="+", default=[0, 1, 2], help="DATA_LOADER.NUM_WORKERS values")
    p.add_argument("--modes", nargs="+", default=["train", "test"], choices=["train", "test"])
    p.add_argument("--num-videos", type=int, default=4, help="distinct videos to generate (default %(default)s)")
    p.add_argument("--clips", type=int, default=48, help="clips timed per configuration (default %(default)s)")
    p.add_argument("--batch-size", type=int, default=8, help="loader batch size (default %(default)s)")
    p.add_argument("--video-dir", help="reuse/keep the generated videos here (default: a temporary folder)")
    p.add_argument("--no-multi-thread-decode", action="store_true",
                   help="DATA_LOADER.ENABLE_MULTI_THREAD_DECODE False")
    p.add_argument("--append", action="store_true", help="append the table to BENCHMARKS.md")
    return p.parse_args(argv)


def _ensure_videos(folder: str, num_videos: int) -> list[str]:
    from slowfast.datasets.synthetic import make_kinetics_like

    rels = [f"videos/kinetics_like_{v:03d}.mp4" for v in range(num_videos)]
    if not all(os.path.isfile(os.path.join(folder, r)) for r in rels):
        rels = make_kinetics_like(folder, num_videos=num_videos, seed=0)
    return rels


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


def main(argv=None) -> int:
    args = parse_args(argv)
    tmp = None
    folder = args.video_dir
    if folder is None:
        tmp = tempfile.TemporaryDirectory(prefix="stdd_data_bench_")
        folder = tmp.name
    t0 = time.perf_counter()
    rels = _ensure_videos(folder, args.num_videos)
    made = time.perf_counter() - t0
    origin = "reused from --video-dir" if made < 1.0 else f"made in {made:.0f} s"
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    # Enough list entries for the timed clips plus the untimed first batch, in every mode.
    repeats = (args.clips + 2 * args.batch_size) // len(rels) + 1
    lines = "".join(f"{r},0\n" for _ in range(repeats) for r in rels)
    for split in ("train", "test"):
        atomic_write_text(os.path.join(folder, f"{split}.csv"), lines)
    rows = []
    for mode in args.modes:
        for w in args.workers:
            cfg = _cfg(folder, w, args.batch_size, not args.no_multi_thread_decode)
            rate, n = measure(cfg, mode, args.clips)
            rows.append((mode, w, rate, n))
            print(f"{mode:5s} workers={w}: {rate:6.2f} clips/s over {n} clips", file=sys.stderr, flush=True)
    table = [
        environment_line("cpu"),
        "",
        f"Kinetics-like videos: {len(rels)} x 340x256, 10 s, 30 fps, H.264 ({origin}); "
        f"8x16 sampling at 224, batch {args.batch_size}, PyAV multi-thread decode "
        f"{'off' if args.no_multi_thread_decode else 'on'}; train = random clip + jitter 224-256 + crop + flip, "
        "test = 3 views x 1 centre crop (one decoding pass per video). First batch not timed. "
        f"Load average when started: {load:.1f}.",
        "",
        "| mode | workers | clips/s | ms/clip | clips timed |",
        "|---|---|---|---|---|",
    ]
    table += [f"| {m} | {w} | {r:.2f} | {1000 / r:.0f} | {n} |" for m, w, r, n in rows]
    text = "\n".join(table)
    print(text)
    if args.append:
        command = "python tools/benchmark.py data " + " ".join(shlex.quote(a) for a in (argv or sys.argv[2:]))
        append_to_benchmarks_md("Data loader throughput", text, command.strip())
    if tmp is not None:
        tmp.cleanup()
    return 0
