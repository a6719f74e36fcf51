"""`stdd-benchmark` and `stdd-gpu-check` usage lines name the command the user ran, not an old script path."""

import os
import subprocess
import sys

import pytest

from slowfast.cli import benchmark, gpu_check


def help_text(monkeypatch, capsys, main, argv0: str, argv: list[str]) -> tuple[int, str]:
    """(exit status, stdout) of `main(argv)` run as a console script or script named `argv0` runs it."""
    monkeypatch.setattr(sys, "argv", [argv0, *argv])
    try:
        code = main(argv)
    except SystemExit as e:  # argparse's --help
        code = e.code
    return code, capsys.readouterr().out


@pytest.mark.parametrize("main, argv0, argv, usage", [
    (benchmark.main, "/venv/bin/stdd-benchmark", ["--help"], "usage: stdd-benchmark {model,data,averaging} [options]"),
    (benchmark.main, "/venv/bin/stdd-benchmark", ["model", "--help"], "usage: stdd-benchmark model [-h]"),
    (benchmark.main, "/venv/bin/stdd-benchmark", ["data", "--help"], "usage: stdd-benchmark data [-h]"),
    (benchmark.main, "/venv/bin/stdd-benchmark", ["averaging", "--help"], "usage: stdd-benchmark averaging [-h]"),
    (benchmark.main, "tools/benchmark.py", ["model", "--help"], "usage: benchmark.py model [-h]"),
    (gpu_check.main, "/venv/bin/stdd-gpu-check", ["--help"], "usage: stdd-gpu-check [-h]"),
])
def test_usage_line_names_the_command_that_was_run(monkeypatch, capsys, main, argv0, argv, usage):
    code, out = help_text(monkeypatch, capsys, main, argv0, argv)
    assert code == 0
    assert out.splitlines()[0].startswith(usage)


def test_unknown_benchmark_is_refused_with_the_usage_line(monkeypatch, capsys):
    code, out = help_text(monkeypatch, capsys, benchmark.main, "/venv/bin/stdd-benchmark", ["speed"])
    assert code == 2
    assert out.splitlines()[0].startswith("usage: stdd-benchmark {model,data,averaging}")


@pytest.mark.skipif(not os.path.exists(os.path.join(os.path.dirname(sys.executable), "stdd-benchmark")),
                    reason="the console commands are not installed (pip install -e .)")
def test_installed_console_command_shows_its_own_name():
    exe = os.path.join(os.path.dirname(sys.executable), "stdd-benchmark")
    r = subprocess.run([exe, "--help"], capture_output=True, text=True, timeout=600)
    assert r.returncode == 0 and r.stdout.startswith("usage: stdd-benchmark {model,data,averaging}"), r.stderr
