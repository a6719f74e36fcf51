"""The text commands refuse bad input in one line and survive a broken server without losing work.

Each table row: the command line, the exit status, the one line expected on stderr (or in the summary),
and what is left on disk. The LLM is a chat-completions server on 127.0.0.1 answering the real `openai`
client (tests/fakes.py).
"""

from __future__ import annotations

import json
import os
import shlex
import signal
import subprocess
import sys

import pytest
import yaml
from fakes import CLASSES, FAST, KEY, Reply, askg_stuck_on, serve
from helpers import ROOT

from slowfast.cli.text import askg_main, askg_parser, features_main, features_parser, xprompt_main, xprompt_parser
from slowfast.text.llm import RetryPolicy


def exit_status(main):
    """`main` with argparse's exit (a refused flag: usage line, exit 2) turned into a return value."""
    def run(argv):
        try:
            return main(argv)
        except SystemExit as e:
            return e.code

    return run


def read_yaml(path) -> dict:
    with open(path) as f:
        return yaml.safe_load(f)


def snapshot(folder) -> dict[str, bytes]:
    """Every file under `folder` with its bytes (what a refused command must leave as it was)."""
    out = {}
    for dirpath, _, files in os.walk(folder):
        for name in files:
            path = os.path.join(dirpath, name)
            with open(path, "rb") as f:
                out[os.path.relpath(path, folder)] = f.read()
    return out


@pytest.fixture
def askg_file(request, classes_file, llm_env):
    """A complete stage-1 output made by a good server."""
    out = llm_env / "askg.yml"
    assert stage1(serve(request).url, classes_file, str(out)) == 0
    return out


def stage1(url: str, classes: str, out: str, *extra: str) -> int:
    return askg_main(["--classes", classes, "--output", out, "--base-url", url, "--api-key", KEY, *FAST, *extra])


def stage2(url: str, askg: str, out: str, *extra: str) -> int:
    return xprompt_main(["--askg", askg, "--output", out, "--base-url", url, "--api-key", KEY, *FAST, *extra])


# ------------------------------------------------------------------------ flags refused at parsing
LLM_FLAG_ROWS = [
    (["--timeout", "-5"], "argument --timeout: must be > 0 and <= 86400, got -5"),
    (["--timeout", "0"], "argument --timeout: must be > 0 and <= 86400, got 0"),
    (["--timeout", "nan"], "argument --timeout: must be a finite number, got nan"),
    (["--timeout", "inf"], "argument --timeout: must be a finite number, got inf"),
    (["--timeout", "1e300"], "argument --timeout: must be > 0 and <= 86400, got 1e300"),
    (["--timeout", "soon"], "argument --timeout: expected a number, got 'soon'"),
    (["--temperature", "nan"], "argument --temperature: must be a finite number, got nan"),
    (["--temperature", "-0.5"], "argument --temperature: must be >= 0 and <= 2, got -0.5"),
    (["--temperature", "3"], "argument --temperature: must be >= 0 and <= 2, got 3"),
    (["--max-tokens", "0"], "argument --max-tokens: must be >= 1, got 0"),
    (["--max-tokens", "1.5"], "argument --max-tokens: expected a whole number, got '1.5'"),
    (["--max-retries", "-1"], "argument --max-retries: must be >= 0, got -1"),
    (["--backoff-base", "nan"], "argument --backoff-base: must be a finite number, got nan"),
    (["--backoff-base", "-1"], "argument --backoff-base: must be >= 0 and <= 86400, got -1"),
    (["--backoff-max", "1e300"], "argument --backoff-max: must be >= 0 and <= 86400, got 1e300"),
    (["--concurrency", "0"], "argument --concurrency: must be >= 1, got 0"),
    (["--max-reasks", "-1"], "argument --max-reasks: must be >= 0, got -1"),
    (["--limit", "0"], "argument --limit: must be >= 1, got 0"),
    (["--dry-run", "-2"], "argument --dry-run: must be >= 0, got -2"),
]


@pytest.mark.parametrize("flags, line", LLM_FLAG_ROWS)
@pytest.mark.parametrize("command", ["askg", "xprompt"])
def test_llm_command_refuses_a_number_out_of_range_before_any_request(request, run_cli, classes_file, llm_env,
                                                                     command, flags, line):
    fake = serve(request)
    (llm_env / "in.yml").write_text("kept: as it was\n")
    inputs = ["--classes", classes_file] if command == "askg" else ["--askg", str(llm_env / "in.yml")]
    main, prog = (askg_main, "stdd-askg") if command == "askg" else (xprompt_main, "stdd-xprompt")
    before = snapshot(llm_env)
    code, err = run_cli(exit_status(main), [*inputs, "--output", str(llm_env / "out.yml"), "--base-url", fake.url,
                                            *flags])
    assert code == 2
    assert err.splitlines()[0].startswith(f"usage: {prog} ")
    assert err.splitlines()[-1] == f"{prog}: error: {line}"
    assert snapshot(llm_env) == before  # inputs untouched, no output, no progress folder
    assert sum(fake.counts.values()) == 0


@pytest.mark.parametrize(
    "flags, line",
    [
        (["--num-templates", "0"], "argument --num-templates: must be >= 1, got 0"),
        (["--num-templates", "two"], "argument --num-templates: expected a whole number, got 'two'"),
        (["--batch-size", "-1"], "argument --batch-size: must be >= 1, got -1"),
        (["--batch-size", "nan"], "argument --batch-size: expected a whole number, got 'nan'"),
    ],
)
def test_feature_command_refuses_a_number_out_of_range(run_cli, classes_file, llm_env, flags, line):
    before = snapshot(llm_env)
    code, err = run_cli(exit_status(features_main), ["--mode", "base", "--classes", classes_file, "--clip-weights",
                                                     "ViT-B/16", "--output", "feats.pt", *flags])
    assert code == 2
    assert err.splitlines()[-1] == f"stdd-text-features: error: {line}"
    assert snapshot(llm_env) == before


def test_late_retry_waits_at_most_the_longest_wait_instead_of_overflowing():
    assert 0 <= RetryPolicy(max_retries=5000, base_delay=1.0, max_delay=2.0).delay(1100) <= 2.0


# ------------------------------------------------------------------------ input files named by flag
@pytest.mark.parametrize(
    "command, argv, line",
    [
        ("askg", ["--classes", "missing.json"], "error: --classes missing.json: no such file"),
        ("askg", ["--classes", "folder"], "error: --classes folder: is a folder, not a file"),
        ("askg", ["--classes", ""], "error: --classes is empty: give the path of a file"),
        ("askg", ["--classes", "binary.json"], "error: --classes: class-index file binary.json is not valid JSON: "
                                               "'utf-8' codec can't decode byte 0xff in position 0: invalid start byte"),
        ("xprompt", ["--askg", "missing.yml"], "error: --askg missing.yml: no such file"),
        ("xprompt", ["--askg", "binary.json"], "error: binary.json: not UTF-8 text (byte 0): is it the right file?"),
        ("xprompt", ["--askg", "index2cls.json", "--classes", "missing.json"],
         "error: --classes missing.json: no such file"),
        ("features", ["--classes", "missing.json", "--mode", "base"], "error: --classes missing.json: no such file"),
        ("features", ["--classes", "index2cls.json", "--xprompt", "missing.yml"],
         "error: --xprompt missing.yml: no such file"),
        ("features", ["--classes", "index2cls.json", "--mode", "base", "--templates-file", "folder"],
         "error: --templates-file folder: is a folder, not a file"),
        ("features", ["--classes", "index2cls.json", "--mode", "base", "--templates-file", "binary.json"],
         "error: binary.json: not UTF-8 text (byte 0): is it the right file?"),
    ],
)
def test_missing_or_unreadable_input_is_named_by_its_flag(request, run_cli, classes_file, llm_env, command, argv,
                                                          line):
    fake = serve(request)
    (llm_env / "folder").mkdir()
    (llm_env / "binary.json").write_bytes(b"\xff\xfe\x00\x01 not text")
    before = snapshot(llm_env)
    if command == "features":
        main, tail = features_main, ["--clip-weights", "ViT-B/16", "--output", "feats.pt"]
    else:
        main, tail = (askg_main if command == "askg" else xprompt_main), ["--output", "out.yml", "--base-url", fake.url]
    code, err = run_cli(main, [*argv, *tail])
    assert (code, err) == (2, line)
    assert snapshot(llm_env) == before
    assert sum(fake.counts.values()) == 0


# ------------------------------------------------------------------------ command names in --help
@pytest.mark.parametrize("parser, command, script", [
    (askg_parser, "stdd-askg", "ASKG_text_prompt.py"),
    (xprompt_parser, "stdd-xprompt", "extended_text_prompt.py"),
    (features_parser, "stdd-text-features", "text_prompts.py"),
])
@pytest.mark.parametrize("ran_as", ["command", "script"])
def test_help_names_the_command_as_it_was_run_and_its_examples_parse(monkeypatch, parser, command, script, ran_as):
    typed = f"/usr/local/bin/{command}" if ran_as == "command" else f"utils/{script}"
    monkeypatch.setattr(sys, "argv", [typed, "--help"])
    prog = command if ran_as == "command" else f"python utils/{script}"
    text = parser().format_help()
    assert text.startswith(f"usage: {prog} [-h]")
    examples = text.split("examples:\n", 1)[1].replace("\\\n", " ").split("\n\n")[0].splitlines()
    assert examples and all(line.strip().startswith(f"{prog} --") for line in examples)
    for line in examples:
        parser().parse_args(shlex.split(line.strip()[len(prog):]))
    other_names = {"ASKG_text_prompt.py", "extended_text_prompt.py", "text_prompts.py"} - {script}
    assert not any(name in text for name in other_names)  # no old name of another stage either


def test_script_under_utils_shows_how_it_was_run():
    out = subprocess.run([sys.executable, os.path.join("utils", "text_prompts.py"), "--help"], cwd=ROOT,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith(f"usage: python {os.path.join('utils', 'text_prompts.py')} [-h]")


# ------------------------------------------------------------------------ a body that is not JSON
BROKEN_BODIES = {
    "not JSON": (Reply(body=b"upstream busy, try again"), "was not JSON in 2 attempts (HTTP 200)"),
    "cut-off JSON": (Reply(body=b'{"id": "chatcmpl-1", "choices": [{"index": 0, "mess'), "was not JSON in 2 attempts (HTTP 200)"),
    "not UTF-8": (Reply(body=b"\xff\xfe\x00\xd8"), "was not JSON in 2 attempts (HTTP 200)"),
    "JSON of another shape": (Reply(body=b'{"choices": "none"}'), "empty answer for class"),
    "JSON without a text": (Reply(body=b'{"choices": [{"message": {"content": 5}}]}'), "empty answer for class"),
    "HTML page": (Reply(body=b"<html>502 Bad Gateway</html>", content_type="text/html"), "empty answer for class"),
}


@pytest.mark.parametrize("body", list(BROKEN_BODIES))
@pytest.mark.parametrize("stage", ["askg", "xprompt"])
def test_answer_whose_body_is_not_json_fails_that_class_and_a_rerun_finishes(request, classes_file, askg_file,
                                                                             llm_env, capsys, stage, body):
    reply, reason = BROKEN_BODIES[body]
    broken = serve(request, script=lambda s, cls, n, m: reply if cls.lower() in ("yo-yo", CLASSES[1].lower()) else None)
    out = llm_env / f"{stage}-out.yml"
    run = stage1 if stage == "askg" else stage2
    source = classes_file if stage == "askg" else str(askg_file)
    capsys.readouterr()
    assert run(broken.url, source, str(out), "--max-retries", "1") == 1
    summary = capsys.readouterr().out
    assert "yo-yo: " in summary and reason in summary
    assert f"{CLASSES[1]}: " in summary
    assert list(read_yaml(out)) == [CLASSES[0], CLASSES[2]]
    assert broken.count(stage, "yo-yo") == 2  # retried once, then counted as a failed class
    good = serve(request)
    assert run(good.url, source, str(out)) == 0  # the rerun asks only the two failed classes
    assert sum(good.counts.values()) == 2
    assert list(read_yaml(out)) == CLASSES


@pytest.mark.parametrize("stage", ["askg", "xprompt"])
def test_fresh_run_against_a_server_answering_no_json_keeps_the_complete_output(request, classes_file, askg_file,
                                                                               llm_env, stage):
    out = askg_file if stage == "askg" else llm_env / "xprompt.yml"
    if stage == "xprompt":
        assert stage2(serve(request).url, str(askg_file), str(out)) == 0
    before = snapshot(llm_env)
    broken = serve(request, script=lambda s, cls, n, m: Reply(body=b"Service Unavailable"))
    run = stage1 if stage == "askg" else stage2
    source = classes_file if stage == "askg" else str(askg_file)
    assert run(broken.url, source, str(out), "--fresh", "--max-retries", "0") == 1
    assert sum(broken.counts.values()) == len(CLASSES)
    assert snapshot(llm_env) == before  # the output YAML and every saved answer as they were


# ------------------------------------------------------------------------ a huge answer
@pytest.mark.parametrize(
    "size, reason",
    [
        (1_000_000, "the answer has 1000000 characters, more than the 16384 allowed (16 per token of max_tokens 1024)"),
        (10_000, "the answer must be a YAML mapping, got str"),  # within the limit: parsed, rejected, cut when quoted
    ],
)
def test_huge_answer_is_rejected_and_never_sent_back_whole(request, classes_file, llm_env, capsys, size, reason):
    huge = "x" * size
    fake = serve(request, script=lambda s, cls, n, m: Reply(content=huge) if cls == "abseiling" else None)
    out = llm_env / "askg.yml"
    assert stage1(fake.url, classes_file, str(out), "--max-reasks", "2") == 1
    printed = capsys.readouterr()
    assert f"abseiling: no valid answer after 3 tries; last error: {reason}" in printed.out
    assert len(printed.out) + len(printed.err) < 20_000
    asked = [b for b in fake.bodies if "[abseiling]" in b["messages"][3]["content"]]
    assert len(asked) == 3
    assert max(len(json.dumps(b)) for b in fake.bodies) < 12_000  # base request ~3 kB, plus a short quote
    reask = asked[1]["messages"]
    assert reask[4]["content"].startswith("x" * 1000)
    assert reask[4]["content"].endswith(f"[... {size - 4000} more characters not shown]")
    assert list(read_yaml(out)) == CLASSES[1:]


def test_answer_longer_than_the_token_limit_allows_is_rejected(request, classes_file, llm_env, capsys):
    fake = serve(request)  # good answers of about 1.8 kB: over 50 tokens x 16 characters
    assert stage1(fake.url, classes_file, str(llm_env / "askg.yml"), "--max-tokens", "50", "--max-reasks", "0") == 1
    assert "more than the 800 allowed (16 per token of max_tokens 50)" in capsys.readouterr().out


# ------------------------------------------------------------------------ Ctrl-C
def test_ctrl_c_exits_130_and_keeps_the_finished_classes(request, classes_file, llm_env):
    out = llm_env / "askg.yml"
    parts = llm_env / "askg.yml.parts"
    _, proc, release = askg_stuck_on(request, classes_file, out, CLASSES[2])
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=600)  # a hang guard only
    release.set()
    assert proc.returncode == 130
    assert err.strip().splitlines()[-1] == (f"interrupted: finished classes are kept in {out}.parts/; "
                                            "run the same command to go on")
    assert not out.exists() and len(list(parts.glob("*.yml"))) == 2
