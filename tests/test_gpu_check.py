"""The GPU check's CPU dry run (`tools/gpu_check.py --device cpu --tiny`) and the autocast-dtype choice."""

import json
import os
import re
import subprocess
import sys
import threading

import pytest
import torch
from helpers import ROOT

from slowfast.benchmarks import gpu
from slowfast.benchmarks.gpu import TARGETS
from slowfast.benchmarks.options import PARTS
from slowfast.config import get_cfg
from slowfast.engine.common import amp_settings, autocast_dtype
from slowfast.errors import UserError

NUMBER = re.compile(r"^-?\d+(\.\d+)?(e-?\d+)?$")


def test_mixed_precision_dtype_defaults_to_auto():
    assert get_cfg().TRAIN.MIXED_PRECISION_DTYPE == "auto"


@pytest.mark.parametrize("choice, bf16_supported, expected", [
    ("auto", True, (torch.bfloat16, False)),
    ("auto", False, (torch.float16, True)),
    ("float16", True, (torch.float16, True)),
    ("bfloat16", False, (torch.bfloat16, False)),
])
def test_autocast_dtype_on_cuda_uses_a_grad_scaler_only_with_float16(choice, bf16_supported, expected):
    assert autocast_dtype(choice, "cuda", bf16_supported) == expected


@pytest.mark.parametrize("choice", ["auto", "float16", "bfloat16"])
def test_autocast_dtype_on_cpu_is_always_bfloat16_without_scaler(choice):
    assert autocast_dtype(choice, "cpu", False) == (torch.bfloat16, False)


def test_autocast_dtype_refuses_an_unknown_choice_naming_the_key():
    with pytest.raises(UserError, match="TRAIN.MIXED_PRECISION_DTYPE.*'fp8'"):
        autocast_dtype("fp8", "cuda", True)


def test_amp_settings_off_is_fp32_without_scaler_whatever_the_dtype_key():
    assert amp_settings(False, torch.device("cpu"), "float16") == (False, torch.float32, False)


def _numbers(markdown: str) -> list[float]:
    """Numeric cells of the Markdown table rows (not the header or separator)."""
    cells = []
    for line in markdown.splitlines():
        if line.startswith("|") and not line.startswith("|---"):
            cells += [c.strip() for c in line.strip("|").split("|")]
    return [float(c) for c in cells if NUMBER.match(c)]


# The dry run's parts get caps no machine reaches (the default --tiny budget, 170 s, was reached on a busy one):
# these tests check what the parts measure and write, not how fast this machine is. The caps themselves are
# tested below with a part that never finishes.
UNREACHABLE_BUDGET_S = "1000000"


@pytest.fixture(scope="module")
def dry_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("gpu_check")
    proc = subprocess.run([sys.executable, os.path.join("tools", "gpu_check.py"), "--device", "cpu", "--tiny",
                           "--max-seconds", UNREACHABLE_BUDGET_S, "--out", str(out)],
                          cwd=ROOT, capture_output=True, text=True, timeout=3600)  # only a hang gets near this
    assert proc.returncode == 0, proc.stderr[-3000:]
    return out


def test_a_part_past_its_cap_is_recorded_as_timed_out_and_the_run_goes_on(tmp_path, monkeypatch):
    def never_finishes(ctx):
        threading.Event().wait(600)  # interrupted by the cap; 600 s only if the cap never fires

    monkeypatch.setitem(gpu.PART_FUNCS, "model", never_finishes)
    report = gpu.Report(str(tmp_path), "cpu", "test")
    ctx = gpu.Ctx(str(tmp_path), torch.device("cpu"), gpu.TINY, report)
    with open(tmp_path / "gpu_check.log", "w", encoding="utf-8") as log:
        gpu.run_part(ctx, "model", 1.0, log)
    assert report.parts["model"]["status"] == "timed out (time cap of 1 s reached)"
    assert json.loads((tmp_path / "results.json").read_text())["parts"]["model"]["status"].startswith("timed out")


@pytest.mark.slow
def test_dry_run_completes_every_part(dry_run):
    results = json.loads((dry_run / "results.json").read_text())
    default_parts = [p for p in PARTS if p != "compile"]
    assert {n: p["status"] for n, p in results["parts"].items()} == {n: "done" for n in default_parts}


@pytest.mark.slow
def test_dry_run_writes_every_table_with_numbers(dry_run):
    for part in [p for p in PARTS if p != "compile"]:
        table = (dry_run / f"{part}.md").read_text()
        assert _numbers(table), f"{part}.md has no numbers:\n{table}"


@pytest.mark.slow
def test_dry_run_reports_the_cuda_tests_as_skipped_on_cpu(dry_run):
    table = (dry_run / "cuda_tests.md").read_text()
    rows = [line for line in table.splitlines() if line.startswith("| test_")]
    assert len(rows) == 4 and all("skipped" in r for r in rows)


@pytest.mark.slow
def test_dry_run_summary_names_each_target_with_a_measurement(dry_run):
    summary = (dry_run / "summary.md").read_text()
    figures = json.loads((dry_run / "results.json").read_text())["figures"]
    for title, key, _, _ in TARGETS:
        assert title in summary
        if key != "cuda_tests_failed":  # only counted on CUDA, where the tests run
            assert isinstance(figures.get(key), float), key


@pytest.mark.slow
def test_dry_run_compares_bf16_and_fp16_training_end_to_end(dry_run):
    e2e = (dry_run / "e2e.md").read_text()
    for run in ("device_fp32", "cpu_fp32", "device_bf16", "device_fp16"):
        assert f"| {run} |" in e2e
