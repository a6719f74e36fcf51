"""The command-line options of the benchmarks (`stdd-benchmark model|data|averaging`) and of the GPU check
(`stdd-gpu-check`), kept apart from the
benchmarks themselves so that they are parsed before torch is imported: `--help` and a mistyped flag answer at
once. The GPU check builds its model-benchmark arguments with `model_parser` too."""

from __future__ import annotations

import argparse
import os
import sys

from slowfast.config.choices import TEMPORAL_TYPES


def command_name() -> str:
    """The command as the user typed it (`stdd-benchmark`, or `benchmark.py` for tools/benchmark.py): the usage
    lines start with it, as argparse's do."""
    return os.path.basename(sys.argv[0]) or "stdd-benchmark"


def model_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog=f"{command_name()} model",
        description="Speed and memory of the video model per temporal operator: inference forward and a full "
                    "train step per operator and batch size, the ratio to per-frame CLIP, and on CUDA the model "
                    "FLOPs utilisation. Random weights (no download).")
    p.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    p.add_argument("--arch", choices=("custom", "vitb16", "vitl14"), default="custom")
    p.add_argument("--width", type=int, default=256, help="custom: vision width")
    p.add_argument("--layers", type=int, default=4, help="custom: vision layers")
    p.add_argument("--heads", type=int, default=4, help="custom: vision heads")
    p.add_argument("--patch", type=int, default=16, help="custom: patch size")
    p.add_argument("--resolution", type=int, default=224, help="custom: image side (a multiple of --patch whose grid the 2x2 mask window divides)")
    p.add_argument("--embed-dim", type=int, default=256, help="custom: joint embedding size")
    p.add_argument("--types", nargs="+", default=["None", "stcross_attend", "stadapt_zeroinit"],
                   choices=[str(t) for t in TEMPORAL_TYPES] + ["none"], metavar="TYPE",
                   help=f"temporal operators to time: {', '.join(map(str, TEMPORAL_TYPES))} (None = per-frame CLIP)")
    p.add_argument("--batch-sizes", nargs="+", type=int, default=[4])
    p.add_argument("--frames", type=int, default=8)
    p.add_argument("--num-classes", type=int, default=32, help="classes of the (template) classifier")
    p.add_argument("--channel-fold", type=int, default=32)
    p.add_argument("--temporal-scale", nargs="+", type=int, default=[1, 2])
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--distill", action="store_true", help="keep the frozen teacher and train with distillation")
    p.add_argument("--dtype", choices=("fp32", "bf16"), default="fp32", help="bf16 = autocast")
    p.add_argument("--compile", action="store_true", help="torch.compile the image tower (MODEL.COMPILE)")
    p.add_argument("--checkpoint", action="store_true", help="activation checkpointing (MODEL.USE_CHECKPOINT)")
    p.add_argument("--peak-tflops", type=float, default=None, help="device bf16 peak for MFU (default: by name)")
    p.add_argument("--threads", type=int, default=None, help="CPU threads (torch.set_num_threads)")
    p.add_argument("--append", action="store_true", help="append the table to BENCHMARKS.md")
    p.add_argument("--benchmarks-md", default="BENCHMARKS.md")
    return p


def data_parser() -> argparse.ArgumentParser:
    cores = os.cpu_count() or 1
    p = argparse.ArgumentParser(
        prog=f"{command_name()} data",
        description="Clips per second through the real loader: generated Kinetics-like source videos against "
                    "their re-encoded copies (prepare_dataset.py reencode), in train and test mode, timed in turn.")
    p.add_argument("--workers", type=int, nargs="+", default=sorted({1, cores}),
                   help="DATA_LOADER.NUM_WORKERS values (default: 1 and one per core, %(default)s)")
    p.add_argument("--modes", nargs="+", default=["train", "test"], choices=["train", "test"])
    p.add_argument("--num-videos", type=int, default=4, help="distinct 340x256 videos to generate (default %(default)s)")
    p.add_argument("--clips", type=int, default=48, help="clips timed per pass (default %(default)s)")
    p.add_argument("--rounds", type=int, default=3, help="passes over sources and copies, in turn (default %(default)s)")
    p.add_argument("--hd-clips", type=int, default=8,
                   help="clips timed per pass on the 1280x720 source and its copy; 0 leaves that row out (default %(default)s)")
    p.add_argument("--batch-size", type=int, default=8, help="loader batch size (default %(default)s)")
    p.add_argument("--seconds", type=float, default=10.0, help="length of the generated videos (default %(default)s)")
    p.add_argument("--gop", type=int, help="keyframe interval of the copies (default: reencode's)")
    p.add_argument("--crf", type=int, help="x264 crf of the copies (default: reencode's)")
    p.add_argument("--tune", help="x264 tuning of the copies, e.g. fastdecode (default: reencode's)")
    p.add_argument("--video-dir", help="reuse/keep the generated videos and copies here (default: a temporary folder)")
    p.add_argument("--no-multi-thread-decode", action="store_true",
                   help="DATA_LOADER.ENABLE_MULTI_THREAD_DECODE False")
    p.add_argument("--append", action="store_true", help="append the table to BENCHMARKS.md")
    return p


def averaging_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog=f"{command_name()} averaging",
        description="Peak memory of weight_average_tool.py over N synthetic checkpoints, in a fresh subprocess.")
    p.add_argument("--num-checkpoints", type=int, default=20, help="number of checkpoints averaged (default 20)")
    p.add_argument("--size-mb", type=float, default=50.0, help="size of one checkpoint in MiB (default 50)")
    p.add_argument("--methods", nargs="+", default=["swa"], choices=["swa", "gwa", "bwa", "ewa"],
                   help="schemes computed in the one pass (default swa); memory grows by one model state per scheme")
    p.add_argument("--teacher-fraction", type=float, default=0.0,
                   help="share of each checkpoint in raw_model.* keys, carried over rather than averaged (default 0: all averaged)")
    p.add_argument("--workdir", default=None, help="folder for the synthetic checkpoints (default: a temp folder, removed)")
    p.add_argument("--compare-stacking", action="store_true",
                   help="also measure loading every checkpoint at once, as the original tool did (needs N checkpoints of memory)")
    p.add_argument("--append", action="store_true", help="append the table to BENCHMARKS.md")
    return p


GPU_CHECK_HELP = """One prepared run that proves the CUDA path and measures it against the targets.

Parts, in order, each under its own time cap inside a global budget (`--max-seconds`):

- `cuda_tests`: `pytest -m cuda tests/test_cuda.py` in a subprocess (junit XML and log kept);
- `model`: ViT-B/16 8x224^2 (random weights), operators None / stcross_attend (scales [1, 2]) /
  stadapt_zeroinit, batch 32, bf16 autocast, without and with the distillation teacher: train and
  inference clips/s, peak memory, FLOPs per train step (torch.utils.flop_counter) and MFU;
- `vitl14`: ViT-L/14, STDD with the teacher, batch 32, activation checkpointing;
- `loader`: train-mode clips/s of the real loader with 8 and 16 workers on Kinetics-like videos and on
  their re-encoded copies;
- `e2e`: a 1-epoch synthetic training (configs/Synthetic/STDD_custom_8x2.yaml) on the device and on the
  CPU with the same seed, then the same on the device with bf16 and fp16 autocast;
- `precision`: the ViT-B/16 STDD train step in fp32, bf16 and fp16 (+ grad scaler): clips/s, memory and
  the loss after a few steps from the same weights and batch;
- `compile` (with `--compile`, when time is left): the model rows with torch.compile.

Every row is written as soon as it is measured (OUT/<part>.md, OUT/results.json, OUT/summary.md), so a
run killed at any point still leaves its tables. `--device cpu --tiny` runs every part with tiny sizes.
"""

# Each part's share of the global budget (fractions of --max-seconds; they add up to < 1).
PART_SHARES = {"cuda_tests": 0.16, "model": 0.29, "vitl14": 0.09, "loader": 0.13, "e2e": 0.19, "precision": 0.12,
               "compile": 1.0}
PARTS = tuple(PART_SHARES)


def gpu_check_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=GPU_CHECK_HELP, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", required=True, help="folder for the tables (*.md, results.json, summary.md) and logs")
    p.add_argument("--device", choices=("cuda", "cpu"), default="cuda")
    p.add_argument("--tiny", action="store_true", help="tiny sizes and few iterations (the CPU dry run)")
    p.add_argument("--max-seconds", type=float, default=None,
                   help="global time budget, shared by the parts (default 480, 170 with --tiny)")
    p.add_argument("--parts", nargs="+", choices=PARTS, default=[p for p in PARTS if p != "compile"],
                   help="parts to run, in this order (default: all but compile)")
    p.add_argument("--compile", action="store_true", help="also run the compile part, with the time that is left")
    p.add_argument("--peak-tflops", type=float, default=None, help="device bf16 peak for MFU (default: by GPU name)")
    return p
