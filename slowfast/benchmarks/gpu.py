"""`stdd-gpu-check` (`tools/gpu_check.py`): one prepared run that proves the CUDA path and measures it against
the targets. The parts and their time shares are described in `slowfast.benchmarks.options` (the command's
`--help`); each part is a function here, run by `run_part` under its cap.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import traceback
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, Optional

import torch

from slowfast.benchmarks import environment_line
from slowfast.paths import REPO_ROOT as ROOT
from slowfast.utils.atomic import atomic_write_text


@dataclass(frozen=True)
class Sizes:
    """Everything that differs between the real check and the CPU dry run."""

    arch: str = "vitb16"
    large_arch: str = "vitl14"
    batch: int = 32
    frames: int = 8
    warmup: int = 3
    repeats: int = 10
    loader_workers: tuple[int, ...] = (8, 16)
    loader_videos: int = 16
    loader_clips: int = 640
    loader_video: tuple[int, int, float] = (340, 256, 10.0)
    e2e_per_class: tuple[int, int] = (128, 32)  # train, val videos per class
    e2e_opts: tuple = ()
    precision_steps: int = 5


FULL = Sizes()
TINY = Sizes(arch="custom", large_arch="custom", batch=2, frames=4, warmup=1, repeats=1, loader_workers=(1, 2),
             loader_videos=2, loader_clips=8, loader_video=(170, 128, 5.0), e2e_per_class=(2, 1),
             e2e_opts=("TRAIN.BATCH_SIZE", 8, "TEST.BATCH_SIZE", 8, "MODEL.CUSTOM_CLIP.VISION_LAYERS", 1,
                       "MODEL.CUSTOM_CLIP.TEXT_LAYERS", 1, "DATA_LOADER.NUM_WORKERS", 0),
             precision_steps=2)
# The tiny custom CLIP: 64 px, 16 px patches (a 4x4 grid), width 64.
TINY_CLIP = dict(width=64, layers=2, heads=2, patch=16, resolution=64, embed_dim=32)

# (target, how it is computed, comparison, threshold): the figures of the H100 check.
TARGETS = [
    ("STDD train step with teacher (clips/s)", "stdd_teacher_train_cps", ">=", 150.0),
    ("inference, one view (clips/s)", "stdd_infer_cps", ">=", 300.0),
    ("STDD / None train time", "stdd_over_none_train", "<=", 1.45),
    ("teacher overhead (train time, %)", "teacher_overhead_pct", "<=", 40.0),
    ("loader (re-encoded copies), 16 workers / train-step rate", "loader_over_train", ">=", 1.0),
    ("e2e: val top-1 gap, device vs CPU (points)", "e2e_val_gap", "<=", 2.0),
    ("cuda tests failed", "cuda_tests_failed", "<=", 0.0),
]


class PartTimeout(Exception):
    """A part ran past its time cap (raised from SIGALRM between Python bytecodes)."""


@contextlib.contextmanager
def time_cap(seconds: float) -> Iterator[None]:
    """Raise PartTimeout in this (main) thread after `seconds`; a no-op where SIGALRM does not exist."""
    if not hasattr(signal, "setitimer") or seconds <= 0:
        yield
        return

    def fire(signum, frame):
        raise PartTimeout(f"time cap of {seconds:.0f} s reached")

    old = signal.signal(signal.SIGALRM, fire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


@dataclass
class Report:
    """Results as they come: one Markdown table per part, results.json and summary.md rewritten each time."""

    out: str
    device: str
    command: str
    parts: dict[str, dict] = field(default_factory=dict)
    figures: dict[str, float] = field(default_factory=dict)

    def part(self, name: str, title: str, head: list[str], note: str = "") -> None:
        self.parts[name] = {"title": title, "head": head, "rows": [], "note": note, "status": "running"}
        self.flush(name)

    def row(self, name: str, cells: list[Any]) -> None:
        self.parts[name]["rows"].append(cells)
        self.flush(name)

    def finish(self, name: str, status: str, seconds: float) -> None:
        self.parts[name].update(status=status, seconds=round(seconds, 1))
        self.flush(name)

    def markdown(self, name: str) -> str:
        p = self.parts[name]
        lines = [f"### {p['title']}", "", f"status: {p['status']}" + (f" ({p['seconds']} s)" if "seconds" in p else "")]
        if p["note"]:
            lines += ["", p["note"]]
        lines += ["", "| " + " | ".join(p["head"]) + " |", "|" + "---|" * len(p["head"])]
        lines += ["| " + " | ".join(_fmt(c) for c in r) + " |" for r in p["rows"]]
        return "\n".join(lines) + "\n"

    def flush(self, name: Optional[str] = None) -> None:
        if name is not None:
            atomic_write_text(os.path.join(self.out, f"{name}.md"), self.markdown(name))
        data = {"device": self.device, "command": self.command, "parts": self.parts, "figures": self.figures}
        atomic_write_text(os.path.join(self.out, "results.json"), json.dumps(data, indent=1, default=str))
        atomic_write_text(os.path.join(self.out, "summary.md"), self.summary())

    def summary(self) -> str:
        """Each target with its measured figure (or 'not measured'), then each part's status."""
        lines = ["## GPU check summary", "", f"{environment_line(self.device)}", "", f"Command: `{self.command}`", "",
                 "| target | measured | target value | status |", "|---|---|---|---|"]
        for title, key, op, bound in TARGETS:
            v = self.figures.get(key)
            ok = None if v is None else (v >= bound if op == ">=" else v <= bound)
            status = "not measured" if ok is None else ("met" if ok else "missed")
            lines.append(f"| {title} | {_fmt(v) if v is not None else '-'} | {op} {bound:g} | {status} |")
        lines += ["", "| part | status | seconds |", "|---|---|---|"]
        lines += [f"| {n} | {p['status']} | {_fmt(p.get('seconds', '-'))} |" for n, p in self.parts.items()]
        return "\n".join(lines) + "\n"


def _fmt(v: Any) -> str:
    """Three significant digits: the tables compare orders of magnitude and ratios, not noise."""
    if isinstance(v, float):
        return f"{v:.3g}" if abs(v) < 100 else f"{v:.0f}"
    return "-" if v is None else str(v)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _free(device: torch.device) -> None:
    """Release the previous case's memory, so each peak-memory figure is that case's own."""
    import gc

    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()


# ---- parts -----------------------------------------------------------------------------------------
def part_cuda_tests(ctx: Ctx) -> None:
    """`pytest -m cuda` in a subprocess, under the part's cap; one row per test case of the junit XML."""
    rep, cap = ctx.report, ctx.cap
    rep.part("cuda_tests", "CUDA tests (pytest -m cuda tests/test_cuda.py)", ["test", "outcome", "seconds"],
             note="log: cuda_tests.log, junit: cuda_tests.xml")
    xml = os.path.join(ctx.out, "cuda_tests.xml")
    cmd = [sys.executable, "-m", "pytest", "-m", "cuda", "-q", "-p", "no:cacheprovider", f"--junitxml={xml}",
           os.path.join("tests", "test_cuda.py")]
    with open(os.path.join(ctx.out, "cuda_tests.log"), "w", encoding="utf-8") as log:
        try:
            subprocess.run(cmd, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, timeout=max(10.0, cap - 5), check=False)
        except subprocess.TimeoutExpired:
            raise PartTimeout(f"pytest ran past {cap - 5:.0f} s") from None
    failed = 0
    for case in ET.parse(xml).getroot().iter("testcase"):
        outcome = "passed"
        for tag in ("failure", "error", "skipped"):
            el = case.find(tag)
            if el is not None:
                outcome = tag if tag == "skipped" else "failed"
                detail = (el.get("message") or "").splitlines()[0][:80] if el.get("message") else ""
                outcome += f": {detail}" if detail else ""
                break
        failed += outcome.startswith("failed")
        rep.row("cuda_tests", [case.get("name"), outcome, float(case.get("time", 0.0))])
    if ctx.device.type == "cuda":
        rep.figures["cuda_tests_failed"] = float(failed)


@dataclass
class Ctx:
    """What every part needs: the output folder, device, sizes, report, and the part's time cap."""

    out: str
    device: torch.device
    sizes: Sizes
    report: Report
    compile: bool = False
    peak_tflops: Optional[float] = None
    cap: float = 0.0
    model_results: dict = field(default_factory=dict)


def model_args(ctx: Ctx, arch: str, distill: bool, checkpoint: bool = False, compile: bool = False,
               dtype: str = "bf16") -> argparse.Namespace:
    """The namespace `slowfast.benchmarks.model` reads (its Case, clip_config and peak_tflops)."""
    from slowfast.benchmarks.options import model_parser

    tiny = [] if arch != "custom" else ["--width", str(TINY_CLIP["width"]), "--layers", str(TINY_CLIP["layers"]),
                                        "--heads", str(TINY_CLIP["heads"]), "--patch", str(TINY_CLIP["patch"]),
                                        "--resolution", str(TINY_CLIP["resolution"]),
                                        "--embed-dim", str(TINY_CLIP["embed_dim"]), "--channel-fold", "8"]
    argv = ["--device", ctx.device.type, "--arch", arch, "--frames", str(ctx.sizes.frames), "--dtype", dtype,
            "--temporal-scale", "1", "2", *tiny]
    argv += ["--distill"] * distill + ["--checkpoint"] * checkpoint + ["--compile"] * compile
    if ctx.peak_tflops:
        argv += ["--peak-tflops", str(ctx.peak_tflops)]
    return model_parser().parse_args(argv)


def measure_case(ctx: Ctx, args: argparse.Namespace, sd: dict, op_type: Optional[str], flops: Optional[float] = None) -> dict:
    """Train and inference clips/s, peak memory (MiB) and FLOPs/MFU of one operator at the check's batch."""
    from slowfast.benchmarks.model import Case, Meter, peak_tflops, timed

    s, dev = ctx.sizes, ctx.device
    _free(dev)
    meter = Meter(dev)
    meter.start()
    case = Case(args, sd, op_type, s.batch, dev)
    tt = timed(case.train_step, dev, s.warmup, s.repeats)
    mem = meter.peak_mib()
    ti = timed(case.infer, dev, s.warmup, s.repeats)
    if flops is None:
        from torch.utils.flop_counter import FlopCounterMode

        try:
            counter = FlopCounterMode(display=False)
            with counter:
                case.train_step()
            flops = float(counter.get_total_flops())
        except Exception:  # a counting failure must not lose the timings
            flops = float("nan")
    peak = peak_tflops(args, dev)
    del case
    _free(dev)
    return {"train_cps": s.batch / tt, "infer_cps": s.batch / ti, "train_ms": 1e3 * tt, "mem_mib": mem,
            "tflop_step": flops / 1e12, "mfu_pct": 100 * flops / tt / (peak * 1e12) if peak else None}


MODEL_HEAD = ["arch", "type", "teacher", "batch", "train clips/s", "infer clips/s", "train ms", "peak MiB",
              "TFLOP/step", "MFU %"]


def _model_row(arch: str, op: Optional[str], teacher: bool, batch: int, r: dict) -> list:
    return [arch, str(op), "yes" if teacher else "no", batch, r["train_cps"], r["infer_cps"], r["train_ms"],
            r["mem_mib"], r["tflop_step"], r["mfu_pct"]]


def part_model(ctx: Ctx) -> None:
    """The three operators without and with the teacher; fills the figures the targets compare."""
    from slowfast.benchmarks.model import clip_config
    from slowfast.clip import random_clip_state_dict

    s, rep = ctx.sizes, ctx.report
    rep.part("model", f"Model throughput: {s.arch}, {s.frames} frames, batch {s.batch}, bf16 autocast", MODEL_HEAD,
             note=f"median of {s.repeats} after {s.warmup} warm-up; peak memory of the train step; "
                  "MFU against the device's dense bf16 peak")
    sd = random_clip_state_dict(clip_config(model_args(ctx, s.arch, False)), seed=0)
    res: dict[tuple, dict] = {}
    for teacher in (False, True):
        args = model_args(ctx, s.arch, teacher)
        for op in (None, "stcross_attend", "stadapt_zeroinit"):
            res[op, teacher] = r = measure_case(ctx, args, sd, op)
            rep.row("model", _model_row(s.arch, op, teacher, s.batch, r))
            _model_figures(rep.figures, res)
    ctx.model_results = res  # reused by the compile part (FLOPs)


def _model_figures(fig: dict, res: dict) -> None:
    """The target figures from the rows measured so far (updated after each row: a killed run keeps them)."""
    if ("stcross_attend", False) in res:
        fig["stdd_infer_cps"] = res["stcross_attend", False]["infer_cps"]
        fig["stdd_over_none_train"] = res["stcross_attend", False]["train_ms"] / res[None, False]["train_ms"]
    if ("stcross_attend", True) in res:
        fig["stdd_teacher_train_cps"] = res["stcross_attend", True]["train_cps"]
        fig["teacher_overhead_pct"] = 100 * (res["stcross_attend", True]["train_ms"] / res["stcross_attend", False]["train_ms"] - 1)


def part_vitl14(ctx: Ctx) -> None:
    """ViT-L/14, STDD with the teacher, activation checkpointing: does batch 32 fit, and how fast."""
    from slowfast.benchmarks.model import clip_config
    from slowfast.clip import random_clip_state_dict

    s, rep = ctx.sizes, ctx.report
    rep.part("vitl14", f"{s.large_arch}: STDD + teacher, batch {s.batch}, bf16, activation checkpointing", MODEL_HEAD)
    args = model_args(ctx, s.large_arch, True, checkpoint=True)
    sd = random_clip_state_dict(clip_config(args), seed=0)
    r = measure_case(ctx, args, sd, "stcross_attend")
    rep.row("vitl14", _model_row(s.large_arch, "stcross_attend", True, s.batch, r))


def part_compile(ctx: Ctx) -> None:
    """The model rows again with the image tower compiled (FLOPs taken from the eager rows)."""
    from slowfast.benchmarks.model import clip_config
    from slowfast.clip import random_clip_state_dict

    s, rep = ctx.sizes, ctx.report
    rep.part("compile", f"torch.compile: {s.arch}, batch {s.batch}, bf16, with the teacher", MODEL_HEAD,
             note="compilation happens in the warm-up steps (not timed)")
    args = model_args(ctx, s.arch, True, compile=True)
    sd = random_clip_state_dict(clip_config(args), seed=0)
    eager = getattr(ctx, "model_results", {})
    for op in ("stcross_attend", None, "stadapt_zeroinit"):
        flops = eager.get((op, True), {}).get("tflop_step")
        r = measure_case(ctx, args, sd, op, flops=None if flops is None else flops * 1e12)
        rep.row("compile", _model_row(s.arch, op, True, s.batch, r))


def _make_loader_videos(folder: str, s: Sizes) -> list[str]:
    """Kinetics-like videos, one per process (each its own seed and subfolder); paths relative to `folder`."""
    from concurrent.futures import ProcessPoolExecutor

    from slowfast.datasets.synthetic import make_kinetics_like

    w, h, sec = s.loader_video
    subs = [f"part{k:02d}" for k in range(s.loader_videos)]
    todo = [k for k, sub in enumerate(subs) if not os.path.isfile(os.path.join(folder, sub, "videos", "kinetics_like_000.mp4"))]
    with ProcessPoolExecutor(max_workers=max(1, min(len(todo), os.cpu_count() or 1))) as pool:
        futures = [pool.submit(make_kinetics_like, os.path.join(folder, subs[k]), 1, k, w, h, sec, 30, 1) for k in todo]
        for f in futures:
            f.result()
    return [f"{sub}/videos/kinetics_like_000.mp4" for sub in subs]


def part_loader(ctx: Ctx) -> None:
    """Train-mode clips/s of `build_loader` per worker count on the source videos and on their re-encoded
    copies (`prepare_dataset.py reencode` defaults), against the STDD + teacher train-step rate."""
    from slowfast.benchmarks.data import _cfg, measure, write_lists
    from slowfast.datasets.reencode import reencode_tree

    s, rep = ctx.sizes, ctx.report
    folder = os.path.join(ctx.out, "loader_videos")
    copies = os.path.join(ctx.out, "loader_videos_reencoded")
    t0 = time.perf_counter()
    rels = _make_loader_videos(folder, s)
    made = time.perf_counter() - t0
    reencode_tree(folder, copies, workers=os.cpu_count() or 1)
    w, h, sec = s.loader_video
    rep.part("loader", "Loader: train mode (8x16 clip, jitter 224-256, crop 224, flip), PyAV",
             ["files", "workers", "batch", "clips/s", "ms/clip", "clips timed", "vs train step"],
             note=f"{len(rels)} Kinetics-like videos {w}x{h}, {sec:g} s, 30 fps, H.264 (x264 defaults), made in "
                  f"{made:.0f} s, and their re-encoded copies (tools/prepare_dataset.py reencode defaults), made in "
                  f"{time.perf_counter() - t0 - made:.0f} s; first batch not timed; {os.cpu_count()} CPU cores")
    step_rate = rep.figures.get("stdd_teacher_train_cps")
    for name, path in (("source", folder), ("re-encoded", copies)):
        write_lists(path, rels, s.loader_clips, s.batch)
        for workers in s.loader_workers:
            rate, n = measure(_cfg(path, workers, s.batch, True), "train", s.loader_clips)
            ratio = rate / step_rate if step_rate else None
            rep.row("loader", [name, workers, s.batch, rate, 1e3 / rate, n, ratio])
            if name == "re-encoded" and workers == max(s.loader_workers) and ratio is not None:
                rep.figures["loader_over_train"] = ratio


@contextlib.contextmanager
def _no_tf32() -> Iterator[None]:
    """Plain fp32 matmuls and convolutions inside the block (the benchmark parts run with TF32 on)."""
    old = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    try:
        yield
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = old


def _e2e_cfg(ctx: Ctx, data: str, name: str, on_device: bool, precision: Optional[str]):
    """The embedded synthetic recipe, shortened to 1 epoch, on the device or the CPU, in one precision."""
    from slowfast.config import assert_and_infer_cfg, get_cfg, merge_from_file, merge_from_list

    cfg = get_cfg()
    merge_from_file(cfg, os.path.join(ROOT, "configs", "Synthetic", "STDD_custom_8x2.yaml"))
    opts = ["NUM_GPUS", 1 if on_device and ctx.device.type == "cuda" else 0, "OUTPUT_DIR", os.path.join(ctx.out, "e2e", name),
            "DATA.PATH_TO_DATA_DIR", data, "DATA.PATH_PREFIX", data,
            "DATA.INDEX_LABEL_MAPPING_FILE", os.path.join(data, "index2cls.json"),
            "SOLVER.MAX_EPOCH", 1, "TRAIN.AUTO_RESUME", False, "TENSORBOARD.ENABLE", False, "TEST.ENABLE", False,
            "DATA_LOADER.NUM_WORKERS", min(8, os.cpu_count() or 1), *ctx.sizes.e2e_opts]
    if precision:
        opts += ["TRAIN.MIXED_PRECISION", True, "TRAIN.MIXED_PRECISION_DTYPE", precision]
    merge_from_list(cfg, [str(o) for o in opts])
    return assert_and_infer_cfg(cfg)


def part_e2e(ctx: Ctx) -> None:
    """1 epoch of the embedded synthetic training on the device and on the CPU, same seed; then bf16 / fp16."""
    from slowfast.datasets.synthetic import SyntheticSpec, make_synthetic_dataset
    from slowfast.engine import train

    s, rep = ctx.sizes, ctx.report
    data = os.path.join(ctx.out, "e2e", "dataset")
    if not os.path.isfile(os.path.join(data, "val.csv")):
        spec = SyntheticSpec(train_per_class=s.e2e_per_class[0], val_per_class=s.e2e_per_class[1], test_per_class=0,
                             zero_shot_per_class=0)
        make_synthetic_dataset(data, spec, workers=os.cpu_count() or 1)
    rep.part("e2e", "End to end: 1 epoch of configs/Synthetic/STDD_custom_8x2.yaml (seed 0)",
             ["run", "device", "precision", "train top-1 %", "val top-1 %", "train s"],
             note=f"{4 * s.e2e_per_class[0]} train / {4 * s.e2e_per_class[1]} val synthetic videos; logs under e2e/<run>/")
    runs = [("device_fp32", True, None), ("cpu_fp32", False, None),
            ("device_bf16", True, "bfloat16"), ("device_fp16", True, "float16")]
    acc: dict[str, float] = {}
    for name, on_device, precision in runs:
        cfg = _e2e_cfg(ctx, data, name, on_device, precision)
        with _no_tf32():  # fp32 on the GPU as on the CPU: TF32 matmuls would widen the gap being checked
            result = train(cfg)
        ep = result["epochs"][-1]
        acc[name] = ep.get("val_top1_acc", float("nan"))
        dev = torch.device("cuda") if cfg.NUM_GPUS else torch.device("cpu")
        rep.row("e2e", [name, dev.type, _precision_label(dev, precision), ep["train_top1_acc"], acc[name], ep["seconds"]])
        if "device_fp32" in acc and "cpu_fp32" in acc:
            rep.figures["e2e_val_gap"] = abs(acc["device_fp32"] - acc["cpu_fp32"])
        del result
        _free(ctx.device)


def _precision_label(device: torch.device, precision: Optional[str]) -> str:
    """What TRAIN.MIXED_PRECISION_DTYPE `precision` really gives on `device` (the CPU only has bf16)."""
    from slowfast.engine.common import amp_settings

    if precision is None:
        return "float32"
    _, dtype, scaler = amp_settings(True, device, precision)
    return str(dtype).replace("torch.", "") + (" + grad scaler" if scaler else "")


def _precision_run(model, state: dict, x: torch.Tensor, y: torch.Tensor, precision: Optional[str], steps: int,
                   device: torch.device) -> tuple[float, float]:
    """(loss after `steps` AdamW steps from `state`, seconds per step over the last steps) in one precision."""
    import torch.nn.functional as F

    from slowfast.engine.common import amp_settings

    on, dtype, scaler_on = amp_settings(precision is not None, device, precision or "auto")
    model.load_state_dict(state)
    model.train()
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-5, weight_decay=0.01)
    scaler = torch.amp.GradScaler("cuda", enabled=scaler_on)
    times, loss = [], torch.zeros(())
    for step in range(steps):
        torch.manual_seed(step)  # the same masks in every precision
        _sync(device)
        t0 = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        with torch.autocast(device.type, dtype=dtype, enabled=on):
            logits, aux = model(x, return_aux=True)
            loss = F.cross_entropy(logits.float(), y) + aux["loss_distill"].float()
        scaler.scale(loss).backward()
        scaler.step(opt)
        scaler.update()
        _sync(device)
        times.append(time.perf_counter() - t0)
    tail = times[1:] or times
    return float(loss.detach()), sum(tail) / len(tail)


def part_precision(ctx: Ctx) -> None:
    """fp32 / bf16 / fp16 + scaler on the STDD + teacher train step: speed, memory and loss drift from fp32."""
    from slowfast.benchmarks.model import Case, clip_config
    from slowfast.clip import random_clip_state_dict

    s, rep, dev = ctx.sizes, ctx.report, ctx.device
    steps = s.precision_steps + 1
    rep.part("precision", f"Training precision: {s.arch} STDD + teacher, batch {s.batch}",
             ["TRAIN.MIXED_PRECISION_DTYPE", "autocast", "train clips/s", "peak MiB", f"loss after {steps} steps",
              "vs fp32 %"], note="same initial weights, batch and masks; the first step is not timed")
    args = model_args(ctx, s.arch, True, dtype="fp32")
    case = Case(args, random_clip_state_dict(clip_config(args), seed=0), "stcross_attend", s.batch, dev)
    state = {k: v.detach().clone() for k, v in case.model.state_dict().items()}
    ref = None
    for precision in (None, "bfloat16", "float16"):
        _free(dev)
        if dev.type == "cuda":
            torch.cuda.reset_peak_memory_stats(dev)
        try:
            loss, sec = _precision_run(case.model, state, case.x, case.y, precision, steps, dev)
        except torch.OutOfMemoryError:  # fp32 may not fit where bf16 does: keep the other rows
            rep.row("precision", [precision or "(off)", _precision_label(dev, precision), "out of memory", None, None, None])
            continue
        mem = torch.cuda.max_memory_allocated(dev) / 2**20 if dev.type == "cuda" else None
        ref = loss if precision is None else ref
        drift = 100 * (loss - ref) / abs(ref) if ref else None
        rep.row("precision", [precision or "(off)", _precision_label(dev, precision), s.batch / sec, mem, loss, drift])


PART_FUNCS: dict[str, Callable[[Ctx], None]] = {
    "cuda_tests": part_cuda_tests, "model": part_model, "vitl14": part_vitl14, "loader": part_loader,
    "e2e": part_e2e, "precision": part_precision, "compile": part_compile,
}


def run_part(ctx: Ctx, name: str, cap: float, log) -> None:
    """One part under its cap: a timeout or an error is recorded in the part's status, never raised."""
    print(f"[gpu_check] {name}: cap {cap:.0f} s", file=log, flush=True)
    t0 = time.perf_counter()
    ctx.cap = cap
    status = "done"
    try:
        with time_cap(cap):
            PART_FUNCS[name](ctx)
    except PartTimeout as e:
        status = f"timed out ({e})"
    except Exception as e:  # one failing part must not stop the others
        status = "failed: " + " ".join(f"{type(e).__name__}: {e}".split())[:200]
        traceback.print_exc(file=log)
    seconds = time.perf_counter() - t0
    if name not in ctx.report.parts:
        ctx.report.part(name, name, ["-"])
    ctx.report.finish(name, status, seconds)
    print(f"[gpu_check] {name}: {status} in {seconds:.1f} s", file=log, flush=True)
