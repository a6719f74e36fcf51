"""Where a run ran: the machine, the packages, the code version and the command, for reports and bug reports.

Every run writes `env.json` (for `stdd-env --diff`) and `env.txt` (for reading) beside its `config.yaml`;
checkpoints and averaged files store `provenance()` (commit and package versions) next to their config, and
loading one warns, naming what differs, when it was made under other code or packages.

A field that cannot be read (no git, an unreadable `/proc/cpuinfo`, a package that is not installed) says
"unknown" and the run goes on. Only the variables listed in `RESULT_VARIABLES` are read from the
environment: never the whole environment, so no API key or `.env` value ends up in a report.
"""

from __future__ import annotations

import datetime
import json
import os
import platform
import re
import shlex
import subprocess
import sys
from collections.abc import Mapping, Sequence
from importlib import metadata
from typing import Any, Optional

from slowfast.errors import UserError
from slowfast.paths import REPO_ROOT
from slowfast.utils.atomic import atomic_write_text

__all__ = [
    "UNKNOWN", "NOT_A_GIT_CHECKOUT", "ENV_JSON", "ENV_TXT", "RESULT_VARIABLES", "EnvFileError", "git_state",
    "cpu_model", "requirement_names", "package_versions", "torch_versions", "gpu_list", "result_variables",
    "command_line", "collect_env", "format_env", "summary_lines", "write_env_files", "read_env", "flatten",
    "env_differences", "format_differences", "provenance", "provenance_differences", "describe_provenance_differences",
]

UNKNOWN = "unknown"
NOT_A_GIT_CHECKOUT = "not a git checkout"
ABSENT = "absent"
ENV_JSON, ENV_TXT = "env.json", "env.txt"
FORMAT_VERSION = 1
# The checkout whose commit is recorded, and its pinned packages: this package's own folder.
PROJECT_ROOT = REPO_ROOT
REQUIREMENTS = os.path.join(REPO_ROOT, "requirements.txt")
CPUINFO = "/proc/cpuinfo"
# torch and torchvision are installed before requirements.txt (their build depends on the CUDA version).
CORE_PACKAGES = ("torch", "torchvision")
# The environment variables that change numbers or the process layout; nothing else is read.
RESULT_VARIABLES = (
    "CUDA_VISIBLE_DEVICES", "OMP_NUM_THREADS", "MKL_NUM_THREADS", "CUBLAS_WORKSPACE_CONFIG", "PYTHONHASHSEED",
    "NVIDIA_TF32_OVERRIDE", "TORCH_ALLOW_TF32_CUBLAS_OVERRIDE", "CUDA_LAUNCH_BLOCKING", "NCCL_ALGO", "NCCL_PROTO",
    "WORLD_SIZE", "RANK", "LOCAL_RANK", "LOCAL_WORLD_SIZE",
)
# Command-line flags whose value is a credential: the value is replaced in the recorded command.
_SECRET_FLAG = re.compile(r"^--?[\w-]*(api[-_]?key|token|secret|password)[\w-]*$", re.IGNORECASE)
_REDACTED = "***"
# Fields that differ between any two runs and say nothing about why their numbers differ.
_NOT_COMPARED = ("created",)


class EnvFileError(UserError, ValueError):
    """An env.json that cannot be read; the message names the file."""


# ----------------------------------------------------------------------------------------------------
# Collecting
# ----------------------------------------------------------------------------------------------------


def _git(root: str, *args: str) -> subprocess.CompletedProcess:
    # GIT_DIR and friends would point git at another repository; C locale for a stable error text.
    env = {k: v for k, v in os.environ.items() if not k.startswith("GIT_")}
    env["LC_ALL"] = "C"
    return subprocess.run(["git", "-C", root, *args], capture_output=True, text=True, timeout=20, env=env)


def git_state(root: Optional[str] = None) -> dict[str, Any]:
    """{"commit": hash, "not a git checkout" or "unknown"; "dirty": bool or "unknown"} of the checkout at
    `root` (default: this project's). Dirty means tracked files differ from the commit (untracked files do
    not count)."""
    root = root or PROJECT_ROOT
    unknown = {"commit": UNKNOWN, "dirty": UNKNOWN}
    try:
        top = _git(root, "rev-parse", "--show-toplevel")
        if top.returncode != 0:
            return {**unknown, "commit": NOT_A_GIT_CHECKOUT} if "not a git repository" in top.stderr else unknown
        if os.path.realpath(top.stdout.strip()) != os.path.realpath(root):
            return {**unknown, "commit": NOT_A_GIT_CHECKOUT}  # installed inside another project's checkout
        head = _git(root, "rev-parse", "--verify", "HEAD")
        status = _git(root, "status", "--porcelain", "--untracked-files=no")
    except (OSError, subprocess.SubprocessError):  # no git program, or it hangs
        return unknown
    return {"commit": head.stdout.strip() if head.returncode == 0 else UNKNOWN,
            "dirty": bool(status.stdout.strip()) if status.returncode == 0 else UNKNOWN}


def cpu_model(cpuinfo: str = CPUINFO) -> str:
    """The CPU's model name from `/proc/cpuinfo`; "unknown" when the file is unreadable or names none."""
    try:
        with open(cpuinfo, encoding="utf-8", errors="replace") as f:
            for line in f:
                key, sep, value = line.partition(":")
                if sep and key.strip() == "model name" and value.strip():
                    return value.strip()
    except OSError:
        pass
    return UNKNOWN


def _usable_cpus() -> Any:
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not on Linux
        return UNKNOWN


def requirement_names(requirements: Optional[str] = None) -> list[str]:
    """The package names pinned in a requirements file (default: the project's requirements.txt; comments
    and pip options skipped); [] if unreadable."""
    try:
        with open(requirements or REQUIREMENTS, encoding="utf-8") as f:
            lines = f.read().splitlines()
    except OSError:
        return []
    names = []
    for line in lines:
        spec = line.split("#", 1)[0].strip()
        match = re.match(r"[A-Za-z0-9][A-Za-z0-9._-]*", spec) if not spec.startswith("-") else None
        if match:
            names.append(match.group(0))
    return names


def _package_version(name: str) -> str:
    try:
        return metadata.version(name)
    except (metadata.PackageNotFoundError, ValueError):
        return UNKNOWN


def package_versions(requirements: Optional[str] = None) -> dict[str, str]:
    """{name: installed version or "unknown"} of torch, torchvision and every package of `requirements`."""
    names = dict.fromkeys([*CORE_PACKAGES, *requirement_names(requirements)])
    return {name: _package_version(name) for name in names}


def torch_versions() -> dict[str, Any]:
    """torch's build: its version, CUDA, cuDNN and NCCL versions and its CPU thread count."""
    out: dict[str, Any] = {"version": UNKNOWN, "cuda": UNKNOWN, "cudnn": UNKNOWN, "nccl": UNKNOWN, "threads": UNKNOWN}
    try:
        import torch
    except ImportError:
        return out
    out.update(version=torch.__version__, cuda=torch.version.cuda or "none (CPU build)", threads=torch.get_num_threads())
    try:
        out["cudnn"] = str(torch.backends.cudnn.version() or UNKNOWN)
    except Exception:  # a broken cuDNN install raises here, not at import
        pass
    try:
        nccl = torch.cuda.nccl.version()
        out["nccl"] = ".".join(map(str, nccl)) if isinstance(nccl, tuple) else str(nccl)
    except Exception:  # CPU builds have no NCCL
        pass
    return out


def gpu_list() -> Any:
    """[{"index", "name", "memory_gib"}] of the visible GPUs ([] when CUDA is not available), or "unknown"."""
    try:
        import torch

        if not torch.cuda.is_available():
            return []
        return [{"index": i, "name": torch.cuda.get_device_name(i),
                 "memory_gib": round(torch.cuda.get_device_properties(i).total_memory / 2**30, 1)}
                for i in range(torch.cuda.device_count())]
    except Exception:  # a driver that fails on query: the run still goes on
        return UNKNOWN


def result_variables() -> dict[str, Optional[str]]:
    """{name: value or None when unset} for exactly the names in `RESULT_VARIABLES`."""
    return {name: os.environ.get(name) for name in RESULT_VARIABLES}


def command_line(argv: Optional[Sequence[str]] = None) -> str:
    """The command that started this process (`sys.orig_argv`), with the values of credential flags hidden."""
    args = list(argv if argv is not None else getattr(sys, "orig_argv", None) or sys.argv)
    for i, arg in enumerate(args):
        flag, eq, _ = arg.partition("=")
        if _SECRET_FLAG.match(flag):
            if eq:
                args[i] = f"{flag}={_REDACTED}"
            elif i + 1 < len(args):
                args[i + 1] = _REDACTED
    return shlex.join(args)


def collect_env(seed: Optional[int] = None, argv: Optional[Sequence[str]] = None, root: Optional[str] = None,
                requirements: Optional[str] = None, cpuinfo: str = CPUINFO) -> dict[str, Any]:
    """The whole report as a JSON-ready dict (what env.json holds); `seed` is the run's RNG_SEED."""
    return {
        "format": FORMAT_VERSION,
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "command": command_line(argv),
        "seed": seed,
        "git": git_state(root),
        "python": f"{platform.python_version()} ({platform.python_implementation()})",
        "platform": platform.platform(),
        "cpu": {"model": cpu_model(cpuinfo), "count": os.cpu_count() or UNKNOWN, "usable": _usable_cpus()},
        "torch": torch_versions(),
        "gpus": gpu_list(),
        "packages": package_versions(requirements),
        "variables": result_variables(),
    }


# ----------------------------------------------------------------------------------------------------
# Showing and storing
# ----------------------------------------------------------------------------------------------------


def _commit_text(git: Mapping[str, Any]) -> str:
    commit, dirty = git.get("commit", UNKNOWN), git.get("dirty")
    if commit in (UNKNOWN, NOT_A_GIT_CHECKOUT):
        return str(commit)
    return commit + (" (uncommitted changes)" if dirty is True else " (uncommitted changes: unknown)" if dirty == UNKNOWN else "")


def _gpus_text(gpus: Any) -> str:
    if not isinstance(gpus, list):
        return str(gpus)
    if not gpus:
        return "none (CUDA not available)"
    return "; ".join(f"{g.get('index')}: {g.get('name')} ({g.get('memory_gib')} GiB)" for g in gpus)


def summary_lines(info: Mapping[str, Any]) -> list[str]:
    """Three lines for the head of a run's log: the commit, torch/CUDA, the GPUs."""
    t = info.get("torch", {})
    tv = info.get("packages", {}).get("torchvision", UNKNOWN)
    return [f"commit: {_commit_text(info.get('git', {}))}",
            f"torch {t.get('version')} (CUDA {t.get('cuda')}, cuDNN {t.get('cudnn')}, NCCL {t.get('nccl')}), "
            f"torchvision {tv}, Python {info.get('python')}",
            f"GPUs: {_gpus_text(info.get('gpus'))}"]


def format_env(info: Mapping[str, Any]) -> str:
    """The readable report (env.txt, and what `stdd-env` prints)."""
    cpu, t = info.get("cpu", {}), info.get("torch", {})
    seed = info.get("seed")
    rows = [
        ("command", info.get("command")), ("seed", "not a run" if seed is None else seed),
        ("commit", _commit_text(info.get("git", {}))), ("python", info.get("python")),
        ("platform", info.get("platform")),
        ("CPU", f"{cpu.get('model')}, {cpu.get('count')} cores ({cpu.get('usable')} usable), "
                f"torch threads {t.get('threads')}"),
        ("torch", t.get("version")), ("CUDA", t.get("cuda")), ("cuDNN", t.get("cudnn")), ("NCCL", t.get("nccl")),
        ("GPUs", _gpus_text(info.get("gpus"))),
    ]
    lines = [f"STDD environment, {info.get('created', UNKNOWN)}", ""]
    lines += [f"{name + ':':<10} {value}" for name, value in rows]
    lines += ["", "packages:"] + [f"  {k:<18} {v}" for k, v in info.get("packages", {}).items()]
    lines += ["", "environment variables (only these are recorded):"]
    lines += [f"  {k:<34} {'unset' if v is None else v}" for k, v in info.get("variables", {}).items()]
    return "\n".join(lines) + "\n"


def write_env_files(output_dir: str, info: Mapping[str, Any]) -> tuple[str, str]:
    """Write `output_dir/env.json` and `output_dir/env.txt` atomically; returns their paths."""
    json_path, txt_path = os.path.join(output_dir, ENV_JSON), os.path.join(output_dir, ENV_TXT)
    atomic_write_text(json_path, json.dumps(info, indent=2) + "\n")
    atomic_write_text(txt_path, format_env(info))
    return json_path, txt_path


def read_env(path: str) -> dict[str, Any]:
    """An env.json (or a run folder holding one); EnvFileError names the file when it is unusable."""
    if os.path.isdir(path):
        path = os.path.join(path, ENV_JSON)
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except OSError as e:
        raise EnvFileError(f"cannot read {path}: {e.strerror or type(e).__name__}") from None
    except ValueError as e:
        raise EnvFileError(f"{path} is not JSON ({e})") from None
    if not isinstance(data, dict):
        raise EnvFileError(f"{path} is not an env.json report (a JSON object), got {type(data).__name__}")
    return data


# ----------------------------------------------------------------------------------------------------
# Comparing
# ----------------------------------------------------------------------------------------------------


def flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    """Nested dicts and lists as {"a.b.0.c": leaf}; a leaf at the top is returned under its prefix."""
    if isinstance(value, Mapping):
        items = [(str(k), v) for k, v in value.items()]
    elif isinstance(value, list):
        items = [(str(i), v) for i, v in enumerate(value)]
    else:
        return {prefix: value}
    out: dict[str, Any] = {}
    for key, v in items:
        out.update(flatten(v, f"{prefix}.{key}" if prefix else key))
    return out


def env_differences(a: Mapping[str, Any], b: Mapping[str, Any]) -> list[tuple[str, Any, Any]]:
    """(field, value in a, value in b) for every field that differs ("absent" where one lacks it); the
    creation time is not compared."""
    fa, fb = flatten(a), flatten(b)
    keys = list(dict.fromkeys([*fa, *fb]))
    return [(k, fa.get(k, ABSENT), fb.get(k, ABSENT)) for k in keys
            if k.split(".")[0] not in _NOT_COMPARED and fa.get(k, ABSENT) != fb.get(k, ABSENT)]


def format_differences(diffs: Sequence[tuple[str, Any, Any]], name_a: str, name_b: str) -> str:
    """The lines `stdd-env --diff` prints: one field per line, A's value then B's."""
    if not diffs:
        return f"no differences between {name_a} and {name_b} (creation time aside)\n"
    width = max(len(k) for k, _, _ in diffs)
    lines = [f"{len(diffs)} fields differ (A = {name_a}, B = {name_b}):"]
    lines += [f"  {k:<{width}}  A: {va}  B: {vb}" for k, va, vb in diffs]
    return "\n".join(lines) + "\n"


def provenance(root: Optional[str] = None, requirements: Optional[str] = None) -> dict[str, Any]:
    """What a checkpoint or averaged file stores next to its config: the commit, whether the tree was
    dirty, and the versions of Python, CUDA and the packages (torch, torchvision, requirements.txt)."""
    git = git_state(root)
    versions = {"python": platform.python_version(), "cuda": torch_versions()["cuda"], **package_versions(requirements)}
    return {"commit": git["commit"], "dirty": git["dirty"], "versions": versions}


def provenance_differences(stored: Any, current: Mapping[str, Any]) -> list[tuple[str, Any, Any]]:
    """(field, stored value, current value) for the fields a file's provenance records that differ from
    `current`; [] for a file without one (older versions)."""
    if not isinstance(stored, Mapping):
        return []
    fs, fc = flatten(stored), flatten(current)
    return [(k, v, fc.get(k, ABSENT)) for k, v in fs.items() if fc.get(k, ABSENT) != v]


def describe_provenance_differences(source: str, diffs: Sequence[tuple[str, Any, Any]]) -> str:
    """One line naming each difference, both values: the text of the loading warning."""
    label = {"commit": "commit", "dirty": "uncommitted changes"}
    parts = [f"{label.get(k, k.removeprefix('versions.'))} {v!s} in the file, {c!s} here" for k, v, c in diffs]
    return (f"{source} was made with other code or packages than this run: {'; '.join(parts)}. Numbers may "
            "differ from its run's; compare the two runs' env.json with `stdd-env --diff`")


if __name__ == "__main__":
    # `python -m slowfast.utils.env` is `stdd-env`. Run as a script, this file is `__main__`, not the
    # `slowfast.utils.env` module that the layers above import, so handing over to the command line's
    # module (by name, at run time) adds no upward import to the utils layer.
    import importlib

    raise SystemExit(importlib.import_module("slowfast.cli.env").main())
