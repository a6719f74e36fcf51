"""The main job on the embedded default (`make demo`): STDD versus the frame-averaging baseline.

1. generates the synthetic dataset if it is missing (`tools/make_synthetic_dataset.py`, fixed seed): squares
   moving left/right/up/down, classes that differ only in the order of the frames;
2. trains `stcross_attend` (STDD) and `None` (per-frame CLIP, logits averaged over frames) with
   `MODEL.ARCH custom` (a small randomly initialised CLIP), same data, schedule and seed
   (configs/Synthetic/STDD_custom_8x2.yaml and Baseline_custom_8x2.yaml);
3. tests both with 3 temporal views per video (logits summed);
4. writes OUT/report.md, OUT/report.json (stdd_top1, baseline_top1, chance_top1, seconds, per-epoch curves)
   and OUT/curves.png, and prints both accuracies.

It first prints what it will do and about how long that takes. Every epoch is checkpointed, so Ctrl-C keeps
the finished epochs and the same command resumes each run from its newest checkpoint (the training's own
auto-resume, which continues exactly as an uninterrupted run). A run starts over when its kept config differs
from this one (other --opts), and both do once a demo has finished in OUT (OUT/report.json exists).
--opts overrides apply to both runs.
"""

import argparse
import json
import os
import shutil
import sys
import time
from dataclasses import dataclass
from typing import Any

from slowfast.errors import Interrupted, cli_main
from slowfast.paths import REPO_ROOT as ROOT
from slowfast.utils.atomic import atomic_savefig, atomic_write_text
from slowfast.utils.checkpoint_files import checkpoint_epochs

# (folder under OUT, label, short name, config)
RUNS = (
    ("stdd", "STDD (stcross_attend)", "STDD", os.path.join("configs", "Synthetic", "STDD_custom_8x2.yaml")),
    ("baseline", "frame-averaging baseline (None)", "baseline",
     os.path.join("configs", "Synthetic", "Baseline_custom_8x2.yaml")),
)
TARGET_MARGIN = 25.0
REPORT_FILES = ("report.json", "report.md", "curves.png")
# Seconds on an idle 2-core x86 CPU at the default sizes (BENCHMARKS.md, "Embedded demo"): one epoch of each
# run (training and validation), generating the dataset, testing one run. The estimate scales them by
# training videos x frames x crop pixels; other model sizes make it rougher.
EPOCH_SECONDS = {"stdd": 28.0, "baseline": 22.0}
DATA_SECONDS = 15.0
TEST_SECONDS = 5.0
DEFAULT_WORK = 512 * 8 * 64 * 64


@dataclass
class DemoRun:
    """One of the two runs: its config, folder, and the epochs already checkpointed there at the start."""

    name: str
    label: str
    short: str
    cfg_file: str
    cfg: Any
    out: str
    kept: int = 0

    @property
    def epochs(self) -> int:
        return int(self.cfg.SOLVER.MAX_EPOCH)


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", default=os.path.join("output", "demo"), help="output folder (default %(default)s)")
    p.add_argument("--data", default=None, help="synthetic dataset folder (default OUT/dataset; generated if missing)")
    p.add_argument("--opts", nargs=argparse.REMAINDER, default=[], help="config overrides for both runs (last)")
    return p.parse_args(argv)


def _data_ready(path: str) -> bool:
    return all(os.path.isfile(os.path.join(path, f)) for f in ("train.csv", "val.csv", "test.csv", "index2cls.json"))


def _config(cfg_file: str, out_dir: str, data_dir: str, opts: list):
    from slowfast.config import assert_and_infer_cfg, get_cfg, merge_from_file, merge_from_list

    cfg = get_cfg()
    merge_from_file(cfg, os.path.join(ROOT, cfg_file))
    cfg.OUTPUT_DIR = out_dir
    cfg.DATA.PATH_TO_DATA_DIR = data_dir
    cfg.DATA.PATH_PREFIX = data_dir
    cfg.DATA.INDEX_LABEL_MAPPING_FILE = os.path.join(data_dir, "index2cls.json")
    merge_from_list(cfg, opts)
    return assert_and_infer_cfg(cfg)


def kept_epochs(run_dir: str) -> int:
    """The newest epoch checkpointed in `run_dir` (0: none)."""
    found = checkpoint_epochs(run_dir)
    return found[-1][0] if found else 0


def _resumable(run_dir: str, cfg, label: str) -> int:
    """Epochs a run can resume from: those kept in `run_dir` when it was made with this very config."""
    kept = kept_epochs(run_dir)
    if not kept or not cfg.TRAIN.AUTO_RESUME:
        return 0
    try:
        with open(os.path.join(run_dir, "config.yaml"), encoding="utf-8") as f:
            same = f.read() == cfg.dump()
    except OSError:
        same = False
    if not same:
        print(f"{label}: the {kept} epochs kept in {run_dir} were trained with other settings: starting over",
              flush=True)
    return kept if same else 0


def prepare_runs(out: str, data: str, opts: list) -> list[DemoRun]:
    """Both runs, each resuming from its kept epochs or started over (its folder removed); after a finished
    demo (OUT/report.json) both start over and the old report is removed."""
    finished = os.path.isfile(os.path.join(out, "report.json"))
    runs = []
    for name, label, short, cfg_file in RUNS:
        run_dir = os.path.join(out, name)
        cfg = _config(cfg_file, run_dir, data, opts)
        kept = 0 if finished else _resumable(run_dir, cfg, label)
        if not kept and os.path.isdir(run_dir):
            shutil.rmtree(run_dir)
        runs.append(DemoRun(name, label, short, cfg_file, cfg, run_dir, kept))
    if finished:
        for name in REPORT_FILES:
            if os.path.exists(os.path.join(out, name)):
                os.remove(os.path.join(out, name))
    return runs


def _count_lines(path: str) -> int:
    with open(path, encoding="utf-8") as f:
        return sum(1 for line in f if line.strip())


def _video_counts(data: str, ready: bool) -> tuple[int, int]:
    """(training, test) videos: in the lists when the dataset exists, else what will be generated."""
    if ready:
        return _count_lines(os.path.join(data, "train.csv")), _count_lines(os.path.join(data, "test.csv"))
    from slowfast.datasets.synthetic import CLASSES, SyntheticSpec

    spec = SyntheticSpec()
    return spec.train_per_class * len(CLASSES), spec.test_per_class * len(CLASSES)


def estimate_seconds(runs: list[DemoRun], n_train: int, generate: bool) -> float:
    """Rough wall time on an idle 2-core machine of what is left to do (see EPOCH_SECONDS)."""
    total = DATA_SECONDS if generate else 0.0
    for r in runs:
        scale = n_train * r.cfg.DATA.NUM_FRAMES * r.cfg.DATA.TRAIN_CROP_SIZE ** 2 / DEFAULT_WORK
        total += scale * (max(0, r.epochs - r.kept) * EPOCH_SECONDS[r.name] + TEST_SECONDS)
    return total


def _about(seconds: float) -> str:
    return "under a minute" if seconds < 60 else f"about {round(seconds / 60)} min"


def plan_lines(runs: list[DemoRun], data: str, ready: bool) -> list[str]:
    """What the demo will do and about how long it takes, printed before it starts."""
    n_train, n_test = _video_counts(data, ready)
    c = runs[0].cfg
    epochs = "/".join(sorted({str(r.epochs) for r in runs}))
    lines = [f"demo: STDD and the frame-averaging baseline, {epochs} epochs each on {n_train} synthetic videos "
             f"({c.DATA.NUM_FRAMES} frames of {c.DATA.TRAIN_CROP_SIZE} px, a small random-init CLIP, on the CPU), "
             f"then a test on {n_test} videos"
             + ("" if ready else f" (the dataset is generated first, in {data})")
             + f": {_about(estimate_seconds(runs, n_train, not ready))} on an idle 2-core machine, "
               "longer on a busy one"]
    if any(r.kept for r in runs):
        lines.append("resuming from the kept checkpoints: "
                     + ", ".join(f"{r.short} {min(r.kept, r.epochs)}/{r.epochs} epochs done" for r in runs))
    period = c.TRAIN.CHECKPOINT_PERIOD
    lines.append("Ctrl-C keeps " + ("the checkpoint of every finished epoch" if period == 1 else
                                    f"the checkpoints written so far (one every {period} epochs)")
                 + "; the same command then resumes from there")
    return lines


def interrupted_line(runs: list[DemoRun], out: str) -> str:
    """The one line of a Ctrl-C: what was kept, and that the same command resumes from there."""
    kept = [(r, kept_epochs(r.out)) for r in runs]
    if not any(k for _, k in kept):
        return "interrupted before the first epoch was checkpointed: nothing trained was kept; run the same " \
               "command again to start"
    done = ", ".join(f"{r.short} {k}/{r.epochs} epochs" for r, k in kept)
    return f"interrupted: kept {done} (checkpoints under {out}); run the same command again to resume from there"


def epoch_curves(run_dir: str) -> list[dict]:
    """Per-epoch training loss, accuracy, LR and seconds and validation top-1, from the run's json_stats.log:
    every epoch, also those trained before an interruption (an epoch redone after one: its last record)."""
    def acc(err):
        return float("nan") if err is None else 100.0 - err

    epochs: dict[int, dict] = {}
    path = os.path.join(run_dir, "json_stats.log")
    lines = []
    if os.path.isfile(path):
        with open(path, encoding="utf-8") as f:
            lines = f.read().splitlines()
    for line in lines:
        try:
            s = json.loads(line)
        except ValueError:
            continue  # a line cut short by a killed process
        if s.get("_type") not in ("train_epoch", "val_epoch"):
            continue
        rec = epochs.setdefault(int(str(s["epoch"]).split("/")[0]), {})
        if s["_type"] == "train_epoch":
            rec.update(train_loss=s["loss"], train_top1_acc=acc(s["top1_err"]), lr=s["lr"], seconds=s["seconds"])
        else:
            rec["val_top1_acc"] = acc(s["top1_err"])
    return [{"epoch": e, **epochs[e]} for e in sorted(epochs)]


def _plot(curves: dict, labels: dict, path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 4))
    for name, epochs in curves.items():
        x = [e["epoch"] for e in epochs]
        ax1.plot(x, [e["train_loss"] for e in epochs], marker="o", label=labels[name])
        ax2.plot(x, [e.get("val_top1_acc", float("nan")) for e in epochs], marker="o", label=labels[name])
    ax1.set_xlabel("epoch")
    ax1.set_ylabel("training loss")
    ax2.set_xlabel("epoch")
    ax2.set_ylabel("val top-1 (%)")
    ax2.set_ylim(0, 100)
    for ax in (ax1, ax2):
        ax.grid(alpha=0.3)
        ax.legend()
    fig.suptitle("Synthetic frame-order task: STDD vs frame averaging (random-init CLIP)")
    fig.tight_layout()
    atomic_savefig(fig, path, dpi=100)
    plt.close(fig)


def _report_md(rep: dict) -> str:
    lines = [
        "# Demo: STDD on the synthetic frame-order task",
        "",
        "Squares moving left, right, up or down: a single frame of any class looks the same, so only a model "
        "of frame order can tell the classes apart. Both models are the same small CLIP (random init, "
        "`MODEL.ARCH custom`), trained with the same data, schedule and seed, and tested with "
        f"{rep['views']} temporal views per video (logits summed).",
        "",
        "| model | test top-1 (%) | test top-5 (%) | mean class (%) | train s |",
        "|---|---|---|---|---|",
    ]
    for name in ("stdd", "baseline"):
        r = rep[name]
        resumed = f" (resumed after epoch {r['resumed_after_epoch']})" if r["resumed_after_epoch"] else ""
        lines.append(f"| {r['label']} | {r['top1_acc']:.2f} | {r['top5_acc']:.2f} | {r['mean_class_acc']:.2f} | "
                     f"{r['train_seconds']:.0f}{resumed} |")
    lines += [
        f"| chance | {rep['chance_top1']:.2f} | | | |",
        "",
        f"STDD - baseline: **{rep['margin']:+.2f} points** (target >= {TARGET_MARGIN:.0f}: "
        f"{'met' if rep['margin_met'] else 'NOT met'}). Total time {rep['seconds']:.0f} s"
        f"{' (since the resume)' if any(rep[n]['resumed_after_epoch'] for n in ('stdd', 'baseline')) else ''}; "
        f"{rep['environment']}.",
        "",
        "![training curves](curves.png)",
        "",
        f"Command: `{rep['command']}`",
        "",
    ]
    return "\n".join(lines)


def _train_and_test(run: DemoRun) -> tuple[dict, int]:
    """Train (or resume) and test one run; its row of the report and the number of test views."""
    from slowfast.engine import test, train

    if run.kept >= run.epochs:
        print(f"== {run.label}: all {run.epochs} epochs are kept; testing ==", flush=True)
    elif run.kept:
        print(f"== {run.label}: resuming after epoch {run.kept} of {run.epochs} ({run.cfg_file}) ==", flush=True)
    else:
        print(f"== {run.label}: training {run.epochs} epochs ({run.cfg_file}) ==", flush=True)
    t0 = time.time()
    train(run.cfg)
    train_s = time.time() - t0
    metrics = test(run.cfg)
    row = {"label": run.label, "config": run.cfg_file, "output_dir": run.out, "train_seconds": train_s,
           "resumed_after_epoch": run.kept, "test_seconds": metrics["seconds"], "top1_acc": metrics["top1_acc"],
           "top5_acc": metrics["top5_acc"], "mean_class_acc": metrics["mean_class_acc"],
           "num_videos": metrics["num_videos"], "epochs": epoch_curves(run.out)}
    return row, metrics["views"]


def _run(args: argparse.Namespace, runs: list[DemoRun]) -> int:
    start = time.time()
    out = args.out
    data = args.data or os.path.join(out, "dataset")
    os.makedirs(out, exist_ok=True)
    ready = _data_ready(data)
    runs.extend(prepare_runs(out, data, args.opts))
    for line in plan_lines(runs, data, ready):
        print(line, flush=True)
    import torch

    torch.set_num_threads(os.cpu_count() or 1)
    from slowfast.benchmarks import environment_line

    if not ready:
        from slowfast.datasets.synthetic import SyntheticSpec, make_synthetic_dataset

        print(f"generating the synthetic dataset in {data} ...", flush=True)
        make_synthetic_dataset(data, SyntheticSpec(), workers=min(4, os.cpu_count() or 1))
    rep: dict = {}
    for run in runs:
        rep[run.name], rep["views"] = _train_and_test(run)
    rep["stdd_top1"] = rep["stdd"]["top1_acc"]
    rep["baseline_top1"] = rep["baseline"]["top1_acc"]
    rep["chance_top1"] = 100.0 / runs[0].cfg.MODEL.NUM_CLASSES
    rep["margin"] = rep["stdd_top1"] - rep["baseline_top1"]
    rep["margin_met"] = rep["margin"] >= TARGET_MARGIN
    rep["seconds"] = time.time() - start
    rep["environment"] = environment_line("cpu")
    rep["command"] = "python tools/run_demo.py" + (f" --opts {' '.join(args.opts)}" if args.opts else "")
    _plot({r.name: rep[r.name]["epochs"] for r in runs}, {r.name: r.label for r in runs},
          os.path.join(out, "curves.png"))
    atomic_write_text(os.path.join(out, "report.md"), _report_md(rep))
    atomic_write_text(os.path.join(out, "report.json"), json.dumps(rep, indent=2) + "\n")  # last: the demo is done
    print(f"STDD test top-1: {rep['stdd_top1']:.2f} %   baseline test top-1: {rep['baseline_top1']:.2f} %   "
          f"chance: {rep['chance_top1']:.2f} %   ({rep['margin']:+.2f} points, {rep['seconds']:.0f} s)")
    print(f"report: {os.path.join(out, 'report.md')}")
    if not rep["margin_met"]:
        print(f"warning: STDD is ahead by less than {TARGET_MARGIN:.0f} points on this machine", file=sys.stderr)
    return 0


@cli_main("interrupted before anything was kept: run the same command again")
def main(argv=None) -> int:
    args = parse_args(argv)
    runs: list[DemoRun] = []
    try:
        return _run(args, runs)
    except KeyboardInterrupt:
        raise Interrupted(interrupted_line(runs, args.out)) from None


if __name__ == "__main__":
    raise SystemExit(main())
