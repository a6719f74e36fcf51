"""`stdd-benchmark model` (`tools/benchmark.py model`): speed and memory of the video model per temporal operator.

For each operator type and batch size: inference forward (eval, no_grad) and a full train step
(forward + backward + AdamW step, teacher included with --distill), median of --repeats after
--warmup runs; peak memory (CUDA: max_memory_allocated; CPU: peak RSS growth); the ratio to the `None`
baseline on the same input; clips/s; and on CUDA the model FLOPs utilisation against the device's
dense bf16 peak (FLOPs of one train step counted by `torch.utils.flop_counter.FlopCounterMode`).

Weights are random (no download): `--arch vitb16|vitl14` use the real sizes, `custom` the flags.
"""

from __future__ import annotations

import argparse
import gc
import os
import resource
import shlex
import statistics
import sys
import time
from collections.abc import Callable
from typing import Optional

import torch
import torch.nn.functional as F

from slowfast.benchmarks import append_to_benchmarks_md, environment_line
from slowfast.clip import custom_clip_config, random_clip_state_dict
from slowfast.config.choices import TEMPORAL_TYPES, normalize_temporal_type
from slowfast.models.temporal_ops import TemporalOpConfig
from slowfast.models.video_model import TeacherConfig, TemporalClipVideo

ARCHS = {
    "vitb16": dict(embed_dim=512, image_resolution=224, vision_patch=16, vision_width=768, vision_layers=12,
                   vision_heads=12, text_width=512, text_layers=12, text_heads=8),
    "vitl14": dict(embed_dim=768, image_resolution=224, vision_patch=14, vision_width=1024, vision_layers=24,
                   vision_heads=16, text_width=768, text_layers=12, text_heads=12),
}
# Dense bf16 tensor-core peaks (TFLOP/s) by device-name substring; --peak-tflops overrides.
BF16_PEAK_TFLOPS = {"H100": 989.0, "H200": 989.0, "H800": 989.0, "A100": 312.0, "A800": 312.0, "L40S": 362.0,
                    "A10G": 70.0, "L4": 121.0, "4090": 165.0, "3090": 71.0}


def parse_args(argv: Optional[list[str]]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog=f"{os.path.basename(sys.argv[0])} model", description=__doc__.split("\n\n")[0])
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
    return p.parse_args(argv)


def clip_config(args: argparse.Namespace):
    if args.arch != "custom":
        return custom_clip_config(**ARCHS[args.arch])
    return custom_clip_config(
        embed_dim=args.embed_dim, image_resolution=args.resolution, vision_patch=args.patch, vision_width=args.width,
        vision_layers=args.layers, vision_heads=args.heads, text_width=64, text_layers=1, text_heads=1,
    )


def build(args: argparse.Namespace, sd: dict, op_type: Optional[str], device: torch.device) -> TemporalClipVideo:
    op = TemporalOpConfig(
        type=op_type, num_frames=args.frames, channel_fold=args.channel_fold,
        temporal_scale=tuple(args.temporal_scale), deterministic_test_masks=False,
    )
    teacher = TeacherConfig(keep_raw_model=args.distill, distillation=args.distill, distillation_ratio=2.0)
    return TemporalClipVideo(
        sd, [f"class {i}" for i in range(args.num_classes)], op=op, teacher=teacher, use_checkpoint=args.checkpoint,
        compile_visual=args.compile,
    ).to(device)


class Meter:
    """Peak memory of a region: growth of the CUDA allocator's peak, or of the process's peak RSS on CPU.

    On Linux the RSS high-water mark is reset through /proc/self/clear_refs, so each region is measured
    on its own; elsewhere `resource.getrusage` gives a monotonic peak (growth beyond earlier regions only).
    """

    def __init__(self, device: torch.device):
        self.device = device

    def _rss_kb(self, field: str) -> Optional[int]:
        try:
            with open("/proc/self/status") as f:
                for line in f:
                    if line.startswith(field + ":"):
                        return int(line.split()[1])
        except OSError:
            return None
        return None

    def start(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
            self.base = torch.cuda.memory_allocated(self.device)
            return
        gc.collect()
        try:
            with open("/proc/self/clear_refs", "w") as f:
                f.write("5")  # reset VmHWM to the current RSS
            self.base = self._rss_kb("VmRSS")
            self.peak_fn = lambda: self._rss_kb("VmHWM")
        except OSError:
            self.base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
            self.peak_fn = lambda: resource.getrusage(resource.RUSAGE_SELF).ru_maxrss

    def peak_mib(self) -> float:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            return (torch.cuda.max_memory_allocated(self.device) - self.base) / 2**20
        return max(0, (self.peak_fn() or 0) - (self.base or 0)) / 1024.0


def timed(fn: Callable[[], None], device: torch.device, warmup: int, repeats: int) -> float:
    """Median seconds of `fn` after warm-up; synchronises only around each timed call."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        t0 = time.perf_counter()
        fn()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def peak_tflops(args: argparse.Namespace, device: torch.device) -> Optional[float]:
    if args.peak_tflops:
        return args.peak_tflops
    if device.type != "cuda":
        return None
    name = torch.cuda.get_device_name(device)
    return next((v for k, v in BF16_PEAK_TFLOPS.items() if k in name), None)


class Case:
    """One operator type at one batch size: the model, its optimizer and its two timed closures."""

    def __init__(self, args: argparse.Namespace, sd: dict, op_type: Optional[str], batch: int, device: torch.device):
        torch.manual_seed(0)
        self.op_type, self.batch, self.device = op_type, batch, device
        self.model = model = build(args, sd, op_type, device)
        res = model.image_resolution
        self.x = torch.randn(batch, 3, args.frames, res, res, device=device)
        self.y = torch.randint(model.num_classes, (batch,), device=device)
        self.opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-6, weight_decay=0.01)
        self.bf16 = args.dtype == "bf16"

    def amp(self):
        return torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.bf16)

    def train_step(self) -> None:
        self.model.train()
        self.opt.zero_grad(set_to_none=True)
        with self.amp():
            logits, aux = self.model(self.x, return_aux=True)
            loss = F.cross_entropy(logits, self.y)
            if "loss_distill" in aux:
                loss = loss + aux["loss_distill"]
        loss.backward()
        self.opt.step()

    @torch.no_grad()
    def infer(self) -> None:
        self.model.eval()
        with self.amp():
            self.model(self.x)


def _trim_heap() -> None:
    """Give freed heap memory back to the OS so that the next RSS peak measures that region alone."""
    gc.collect()
    try:
        import ctypes

        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


def interleaved_medians(fns: list[Callable[[], None]], device: torch.device, repeats: int) -> list[float]:
    """Median seconds of each fn, timed round-robin so that a load change on a shared machine hits all alike."""
    times: list[list[float]] = [[] for _ in fns]
    for r in range(repeats):
        for j in range(len(fns)):  # each round starts with another type: no type is always first
            i = (r + j) % len(fns)
            times[i].append(timed(fns[i], device, warmup=0, repeats=1))
    return [statistics.median(t) for t in times]


def measure_batch(args: argparse.Namespace, sd: dict, types: list, batch: int, device: torch.device) -> list[dict]:
    """All operator types at one batch size.

    CUDA (a dedicated device): one case at a time, so the peak is that case's alone (weights, teacher,
    optimizer state, activations). CPU (often a shared machine): all cases stay built and are timed
    round-robin; the memory column is the RSS growth over the first train steps (activations,
    gradients, optimizer state; not the weights).
    """
    rows: list[dict] = []
    peak = peak_tflops(args, device)

    def row(case: Case, mem: float, tt: float, ti: float) -> dict:
        r = dict(type=str(case.op_type), batch=batch, fwd_ms=1e3 * ti, train_ms=1e3 * tt, mem_mib=mem,
                 train_cps=batch / tt, infer_cps=batch / ti, mfu=None)
        if peak:
            from torch.utils.flop_counter import FlopCounterMode

            counter = FlopCounterMode(display=False)
            with counter:
                case.train_step()
            r["tflop_step"] = counter.get_total_flops() / 1e12
            r["mfu"] = r["tflop_step"] / tt / peak
        print(f"  {r['type']:<22} batch {batch:>3}: fwd {r['fwd_ms']:.1f} ms, train {r['train_ms']:.1f} ms, "
              f"peak {r['mem_mib']:.0f} MiB", file=sys.stderr, flush=True)
        return r

    if device.type == "cuda":
        for op_type in types:
            torch.cuda.empty_cache()
            meter = Meter(device)
            meter.start()
            case = Case(args, sd, op_type, batch, device)
            tt = timed(case.train_step, device, args.warmup, args.repeats)
            mem = meter.peak_mib()
            ti = timed(case.infer, device, args.warmup, args.repeats)
            rows.append(row(case, mem, tt, ti))
            del case
        return rows
    cases, mems = [], []
    for op_type in types:
        case = Case(args, sd, op_type, batch, device)
        _trim_heap()
        meter = Meter(device)
        meter.start()
        for _ in range(max(1, args.warmup)):
            case.train_step()
        mems.append(meter.peak_mib())
        for _ in range(max(1, args.warmup)):
            case.infer()
        cases.append(case)
    t_train = interleaved_medians([c.train_step for c in cases], device, args.repeats)
    t_infer = interleaved_medians([c.infer for c in cases], device, args.repeats)
    rows = [row(c, m, tt, ti) for c, m, tt, ti in zip(cases, mems, t_train, t_infer)]
    del cases
    _trim_heap()
    return rows


def table(rows: list[dict]) -> str:
    base = {(r["batch"]): r for r in rows if r["type"] == "None"}
    has_mfu = any(r["mfu"] is not None for r in rows)
    head = ["type", "batch", "fwd ms", "fwd+bwd+step ms", "fwd ratio", "train ratio", "train clips/s",
            "infer clips/s", "peak mem MiB"] + (["GFLOP/step", "MFU"] if has_mfu else [])
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        b = base.get(r["batch"])
        fr = f"{r['fwd_ms'] / b['fwd_ms']:.2f}" if b else "-"
        tr = f"{r['train_ms'] / b['train_ms']:.2f}" if b else "-"
        cells = [r["type"], str(r["batch"]), f"{r['fwd_ms']:.1f}", f"{r['train_ms']:.1f}", fr, tr,
                 f"{r['train_cps']:.1f}", f"{r['infer_cps']:.1f}", f"{r['mem_mib']:.0f}"]
        if has_mfu:
            cells += [f"{1e3 * r.get('tflop_step', 0):.4g}", f"{100 * r['mfu']:.1f} %" if r["mfu"] is not None else "-"]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: Optional[list[str]] = None) -> int:
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.device == "cuda" and not torch.cuda.is_available():
        print("--device cuda: CUDA is not available", file=sys.stderr)
        return 2
    device = torch.device("cuda", torch.cuda.current_device()) if args.device == "cuda" else torch.device("cpu")
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    config = clip_config(args)
    sd = random_clip_state_dict(config, seed=0)
    load = f"; load average when started: {os.getloadavg()[0]:.1f}" if hasattr(os, "getloadavg") else ""
    types = [normalize_temporal_type(t) for t in args.types]
    rows = []
    for batch in args.batch_sizes:
        rows.extend(measure_batch(args, sd, types, batch, device))
    g = config
    desc = (f"{args.arch} (width {g.vision_width}, {g.vision_layers} layers, patch {g.vision_patch_size}, "
            f"{g.image_resolution} px), T = {args.frames}, {args.dtype}"
            + (", teacher + distillation" if args.distill else "") + (", compiled" if args.compile else "")
            + (", activation checkpointing" if args.checkpoint else "")
            + f"; STDD: CHANNEL_FOLD {args.channel_fold}, TEMPORAL_SCALE {args.temporal_scale}; "
            f"median of {args.repeats} after {args.warmup} warm-up"
            + ("" if device.type == "cuda" else
               " (types timed round-robin); peak mem = RSS growth over the first train steps (weights excluded)")
            + (f"; MFU vs {peak_tflops(args, device):.0f} TFLOP/s dense bf16" if peak_tflops(args, device) else "")
            + load)
    body = f"{environment_line(str(device))}\n\n{desc}\n\n{table(rows)}\n"
    print(body)
    if args.append:
        cmd = "python tools/benchmark.py model " + " ".join(shlex.quote(a) for a in (argv if argv is not None else sys.argv[2:]))
        append_to_benchmarks_md(f"Model speed: {args.arch} on {device.type}", body, cmd, path=args.benchmarks_md)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
