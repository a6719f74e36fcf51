"""Documentation that must stay true: the README's commands and its generated configuration reference."""

import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_readme_opens_with_the_two_setup_commands():
    head = open(os.path.join(ROOT, "README.md"), encoding="utf-8").read().splitlines()[:8]
    commands = [line.split("#")[0].strip() for line in head if line.startswith("make ")]
    assert commands == ["make demo", "make test"]


def test_ci_runs_the_readme_test_command():
    ci = open(os.path.join(ROOT, ".ci", "run"), encoding="utf-8").read()
    assert "make test" in ci


def test_configuration_reference_in_the_readme_is_current():
    sys.path.insert(0, os.path.join(ROOT, "tools"))
    import config_reference

    readme = open(os.path.join(ROOT, "README.md"), encoding="utf-8").read()
    section = readme.split(config_reference.START, 1)[1].split(config_reference.END, 1)[0]
    assert section.strip() == config_reference.reference_markdown().strip(), (
        "run: python tools/config_reference.py --update-readme"
    )


TOOLS = ["tools/run_net.py", "tools/demo_net.py", "tools/zero_shot.py", "tools/make_synthetic_dataset.py",
         "tools/prepare_dataset.py", "tools/benchmark.py", "tools/config_reference.py", "tools/run_demo.py",
         "weight_average_tool.py", "utils/ASKG_text_prompt.py", "utils/extended_text_prompt.py", "utils/text_prompts.py"]


@pytest.mark.parametrize("tool", TOOLS)
def test_every_tool_answers_help(tool):
    out = subprocess.run([sys.executable, os.path.join(ROOT, tool), "--help"], capture_output=True, text=True,
                         cwd=ROOT, timeout=120)
    assert out.returncode == 0 and "usage" in out.stdout.lower(), out.stdout + out.stderr
