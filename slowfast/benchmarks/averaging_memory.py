"""`stdd-benchmark averaging` (`tools/benchmark.py averaging`): peak memory of `weight_average_tool.py` over N checkpoints.

Writes N synthetic checkpoints of a given size into a temp folder, runs the averaging in a fresh
subprocess and reports the rise of its peak resident set size (VmHWM, reset just before the run) over
its RSS after torch is imported and the same code path has run once on a tiny checkpoint. Torch tensors live outside
Python's allocator (tracemalloc does not see them) and memory-mapped checkpoint pages count once read,
so RSS is the honest measure. Stacking all checkpoints, as the original tool did, costs N checkpoints;
the streaming pass should stay near 2 (one checkpoint being read + one fp32 running sum per method).
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
import tempfile

import torch

from slowfast.benchmarks import append_to_benchmarks_md, environment_line

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

# Runs in the child: warm up, take the baseline, run the tool, report both peaks (ru_maxrss is in KiB on Linux).
_CHILD = r"""
import json, os, resource, sys, tempfile
import torch
sys.path.insert(0, {root!r})
from weight_average_tool import main
argv = json.loads({argv!r})
methods = []
if "--methods" in argv:
    for a in argv[argv.index("--methods") + 1:]:
        if a.startswith("--"):
            break
        methods.append(a)
methods = methods or ["swa"]
def status_mb(field):
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024.0
def reset_peak():
    # Linux: writing 5 to clear_refs resets the high-water mark (VmHWM) to the current RSS, so the
    # baseline is not hidden under the import-time peak. Elsewhere fall back to ru_maxrss (KiB).
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return status_mb("VmRSS"), lambda: status_mb("VmHWM")
    except OSError:
        peak = lambda: resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
        return peak(), peak
with tempfile.TemporaryDirectory() as warm:
    src = os.path.join(warm, "ck"); os.makedirs(src)
    for e in (1, 2):
        torch.save({{"epoch": e - 1, "model_state": {{"model.w": torch.randn(64, 64), "raw_model.w": torch.randn(64, 64)}}}},
                   os.path.join(src, "checkpoint_epoch_%05d.pyth" % e))
    import io, contextlib
    with contextlib.redirect_stdout(io.StringIO()):
        main(["--source-dir", src, "--output-dir", os.path.join(warm, "out"), "--methods", *methods])
def stack_all(argv):
    # The original tool's approach, for comparison: every checkpoint in memory at once, then the mean.
    src = argv[argv.index("--source-dir") + 1]
    names = sorted(n for n in os.listdir(src) if n.endswith(".pyth"))
    states = [torch.load(os.path.join(src, n), map_location="cpu", weights_only=True)["model_state"] for n in names]
    avg = {{k: sum(s[k].float() for s in states) / len(states) for k in states[0]}}
    return 0 if avg else 1
baseline, peak_mb = reset_peak()
rc = stack_all(argv) if {stack!r} else main(argv)
peak = peak_mb()
print("@@RSS@@" + json.dumps({{"rc": rc, "baseline_mb": baseline, "peak_mb": peak}}))
"""


def peak_rss_of_averaging(tool_argv: list[str], timeout: float = 600.0, stack_all: bool = False) -> dict:
    """Run `weight_average_tool.py` with `tool_argv` in a fresh process: {rc, baseline_mb, peak_mb, delta_mb, output}.

    `stack_all`: instead, load every checkpoint of `--source-dir` at once and average (the original
    tool's approach), to measure what streaming saves.
    """
    code = _CHILD.format(root=ROOT, argv=json.dumps(tool_argv), stack=bool(stack_all))
    env = dict(os.environ, OMP_NUM_THREADS=os.environ.get("OMP_NUM_THREADS", "1"))
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=timeout, env=env, cwd=ROOT)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("@@RSS@@")]
    if proc.returncode != 0 or not lines:
        raise RuntimeError(f"averaging subprocess failed (rc {proc.returncode}):\n{proc.stdout[-2000:]}\n{proc.stderr[-4000:]}")
    result = json.loads(lines[-1][len("@@RSS@@"):])
    result["delta_mb"] = result["peak_mb"] - result["baseline_mb"]
    result["output"] = proc.stdout
    return result


def write_synthetic_checkpoints(directory: str, num: int, size_mb: float, teacher_fraction: float = 0.0, seed: int = 0) -> int:
    """`num` engine-style checkpoints of about `size_mb` MB (fp32 model_state); returns one file's bytes.

    `teacher_fraction` of the bytes go to `raw_model.*` keys (carried over, not averaged); the rest are
    `model.*` keys of 1 MiB each plus a small `projector_v`.
    """
    os.makedirs(directory, exist_ok=True)
    gen = torch.Generator().manual_seed(seed)
    total = int(size_mb * 2**20) // 4  # fp32 elements
    n_teacher = int(total * teacher_fraction)
    n_model = total - n_teacher
    chunk = 2**18  # 1 MiB of fp32
    def layout(n: int, prefix: str) -> list[tuple[str, int]]:
        keys = [(f"{prefix}visual.transformer.resblocks.{i}.mlp.c_fc.weight", chunk) for i in range(n // chunk)]
        if n % chunk:
            keys.append((f"{prefix}visual.proj", n % chunk))
        return keys
    base = {k: torch.randn(n, generator=gen) for k, n in layout(n_model, "model.") + layout(n_teacher, "raw_model.")}
    base["projector_v.0.weight"] = torch.randn(16, 16, generator=gen)
    size = 0
    for e in range(1, num + 1):
        state = {k: (v + 0.01 * e if not k.startswith("raw_model.") else v) for k, v in base.items()}
        path = os.path.join(directory, f"checkpoint_epoch_{e:05d}.pyth")
        torch.save({"epoch": e - 1, "model_state": state, "cfg": ""}, path)
        size = os.path.getsize(path)
        del state
    return size


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog=f"{os.path.basename(sys.argv[0])} averaging", description=__doc__.split("\n\n")[0])
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
    args = p.parse_args(argv)

    rows = []
    with tempfile.TemporaryDirectory(dir=args.workdir) as tmp:
        src, out = os.path.join(tmp, "checkpoints"), os.path.join(tmp, "averaged")
        size = write_synthetic_checkpoints(src, args.num_checkpoints, args.size_mb, args.teacher_fraction)
        size_mb = size / 2**20
        for methods in ([args.methods] if len(args.methods) == 1 else [[args.methods[0]], args.methods]):
            r = peak_rss_of_averaging(["--source-dir", src, "--output-dir", out, "--methods", *methods])
            if r["rc"] != 0:
                raise RuntimeError(f"weight_average_tool.py failed:\n{r['output'][-2000:]}")
            rows.append((args.num_checkpoints, size_mb, f"streaming, {' '.join(methods)}", r["delta_mb"], r["delta_mb"] / size_mb))
        if args.compare_stacking:
            r = peak_rss_of_averaging(["--source-dir", src], stack_all=True)
            rows.append((args.num_checkpoints, size_mb, "stacking all (original tool), swa", r["delta_mb"], r["delta_mb"] / size_mb))
    lines = [
        environment_line("cpu"),
        "",
        "Synthetic fp32 checkpoints; " + (
            "every key averaged (worst case)." if args.teacher_fraction == 0 else
            f"{100 * args.teacher_fraction:.0f} % of each in raw_model.* keys (carried over, not averaged), as with STDD's frozen teacher."
        ),
        "",
        "| checkpoints | checkpoint size (MiB) | how | peak RSS over baseline (MiB) | in checkpoints' sizes |",
        "|---:|---:|---|---:|---:|",
    ]
    for n, s, m, d, ratio in rows:
        lines.append(f"| {n} | {s:.1f} | {m} | {d:.1f} | {ratio:.2f} |")
    table = "\n".join(lines)
    print(table)
    if args.append:
        cmd = "python tools/benchmark.py averaging " + " ".join(shlex.quote(a) for a in (argv if argv is not None else sys.argv[2:]))
        append_to_benchmarks_md("Checkpoint averaging: peak memory", table, cmd, path=os.path.join(ROOT, "BENCHMARKS.md"))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
