"""Stages 1 and 2 when things go wrong: nothing already made is lost, a dead server fails fast, the
key goes only where the user sent it and is never printed.

End to end: our CLIs, the real `openai` client, a chat-completions server on 127.0.0.1 (tests/fakes.py).
"""

from __future__ import annotations

import re
import shutil
import socket

import pytest
import yaml
from fakes import CLASSES, FAST, KEY, Reply, serve

from slowfast.cli.text import askg_main, xprompt_main
from slowfast.text.llm import CONNECT_MAX_DELAY, resolve_settings


def closed_port_url() -> str:
    with socket.socket() as s:  # a port that nothing listens on once the socket is closed
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/v1"


def stage1(url: str, classes: str, out: str, *extra: str) -> int:
    return askg_main(["--classes", classes, "--output", out, "--base-url", url, "--api-key", KEY,
                      "--model", "fake-model", *FAST, *extra])


def read_yaml(path) -> dict:
    with open(path) as f:
        return yaml.safe_load(f)


@pytest.fixture
def complete_askg(request, classes_file, llm_env):
    """A complete stage-1 output made by a good server: (path, its bytes)."""
    out = llm_env / "askg.yml"
    assert stage1(serve(request).url, classes_file, str(out)) == 0
    assert list(read_yaml(out)) == CLASSES
    return out, out.read_bytes()


# ---------------------------------------------------------------------------- nothing made is lost
@pytest.mark.parametrize("failure", ["401", "server down"])
@pytest.mark.parametrize("how", ["--fresh", "progress folder deleted"])
def test_failed_run_never_replaces_a_complete_output(request, classes_file, complete_askg, failure, how, capsys):
    out, before = complete_askg
    if failure == "401":
        url = serve(request, script=lambda s, cls, n, m: Reply(status=401, error="bad key")).url
    else:
        url = closed_port_url()
    extra = ["--fresh"] if how == "--fresh" else []
    if how == "progress folder deleted":
        shutil.rmtree(str(out) + ".parts")
    assert stage1(url, classes_file, str(out), *extra) == 2
    assert out.read_bytes() == before
    assert f"kept {out} (4 classes)" in capsys.readouterr().out


def test_fresh_run_that_fails_keeps_the_saved_answers_for_the_next_run(request, classes_file, complete_askg):
    out, before = complete_askg
    assert stage1(closed_port_url(), classes_file, str(out), "--fresh") == 2
    out.unlink()
    fake = serve(request)
    assert stage1(fake.url, classes_file, str(out)) == 0
    assert sum(fake.counts.values()) == 0
    assert out.read_bytes() == before


def test_partial_result_does_not_replace_a_complete_output(request, classes_file, complete_askg, capsys):
    out, before = complete_askg
    fake = serve(request, script=lambda s, cls, n, m: Reply(status=500) if cls == "yo-yo" else None)
    assert stage1(fake.url, classes_file, str(out), "--fresh", "--max-retries", "0") == 1
    assert out.read_bytes() == before
    text = capsys.readouterr().out
    assert f"kept {out} (4 classes): the new result has 3 of 4 classes" in text


def test_trial_run_with_limit_does_not_shrink_a_complete_output(request, classes_file, complete_askg):
    out, before = complete_askg
    assert stage1(serve(request).url, classes_file, str(out), "--fresh", "--limit", "2") == 0
    assert out.read_bytes() == before


def test_strictly_larger_partial_result_replaces_a_smaller_output(request, classes_file, llm_env):
    out = llm_env / "askg.yml"
    assert stage1(serve(request).url, classes_file, str(out), "--limit", "2") == 0
    assert list(read_yaml(out)) == CLASSES[:2]
    fake = serve(request, script=lambda s, cls, n, m: Reply(status=500) if cls == "yo-yo" else None)
    assert stage1(fake.url, classes_file, str(out), "--max-retries", "0") == 1
    assert list(read_yaml(out)) == CLASSES[:3]


def test_stage_2_failure_keeps_its_complete_output(request, complete_askg, llm_env):
    askg, _ = complete_askg
    xp = llm_env / "xprompt.yml"
    args = ["--askg", str(askg), "--output", str(xp), "--api-key", KEY, *FAST]
    assert xprompt_main([*args, "--base-url", serve(request).url]) == 0
    before = xp.read_bytes()
    assert xprompt_main([*args, "--base-url", closed_port_url(), "--fresh"]) == 2
    assert xp.read_bytes() == before


# --------------------------------------------------------------------------------- dead server
def test_closed_port_stops_the_run_within_seconds_naming_host_and_port(classes_file, llm_env, capsys):
    url = closed_port_url()
    port = url.split(":")[2].split("/")[0]
    out = llm_env / "askg.yml"
    # Default retry settings (8 retries, up to 60 s apart): connection errors must not use them. The waits
    # the client announces are checked, not the wall time, which depends on the machine.
    code = askg_main(["--classes", classes_file, "--output", str(out), "--base-url", url, "--concurrency", "1",
                      "--quiet"])
    said = capsys.readouterr()
    text = said.out
    waits = [float(w) for w in re.findall(r"retry \d+/\d+ in ([0-9.]+)s", said.err)]
    assert code == 2
    assert len(waits) == 2 and max(waits) <= CONNECT_MAX_DELAY
    assert f"cannot connect to 127.0.0.1:{port}" in text
    assert "requests: 3 (2 retries)" in text  # one class tried three times, then the run stopped
    assert "yo-yo: not asked (run stopped)" in text
    assert not out.exists()


# --------------------------------------------------------------------------------- where the key goes
def test_base_url_from_env_file_does_not_get_the_key_from_the_environment(request, classes_file, llm_env,
                                                                         monkeypatch, capsys):
    fake = serve(request)
    (llm_env / ".env").write_text(f"OPENAI_BASE_URL={fake.url}\n")
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    out = llm_env / "askg.yml"
    assert askg_main(["--classes", classes_file, "--output", str(out), "--limit", "1", *FAST]) == 0
    assert fake.auth == {"Bearer not-needed"}
    err = capsys.readouterr().err
    assert "OPENAI_API_KEY from the environment is not sent to" in err and "--trust-base-url" in err
    assert KEY not in err


def test_trust_base_url_sends_the_key_from_the_environment(request, classes_file, llm_env, monkeypatch):
    fake = serve(request)
    (llm_env / ".env").write_text(f"OPENAI_BASE_URL={fake.url}\n")
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    out = llm_env / "askg.yml"
    assert askg_main(["--classes", classes_file, "--output", str(out), "--limit", "1", "--trust-base-url",
                      *FAST]) == 0
    assert fake.auth == {f"Bearer {KEY}"}


@pytest.mark.parametrize(
    "flags, environ, dotenv, sent",
    [
        ({"base_url": "http://h:1/v1"}, {"OPENAI_API_KEY": KEY}, "", False),  # URL flag, key environment
        ({"api_key": KEY}, {}, "OPENAI_BASE_URL=http://h:1/v1", False),  # key flag, URL .env
        ({}, {"OPENAI_API_BASE": "http://h:1/v1"}, f"OPENAI_API_KEY={KEY}", False),  # old name, other place
        ({"base_url": "http://h:1/v1", "api_key": KEY}, {}, "", True),  # both flags
        ({}, {"OPENAI_BASE_URL": "http://h:1/v1", "OPENAI_API_KEY": KEY}, "", True),  # both environment
        ({}, {}, f"OPENAI_BASE_URL=http://h:1/v1\nOPENAI_API_KEY={KEY}", True),  # both .env
        ({}, {"OPENAI_API_KEY": KEY}, "", True),  # the official endpoint
        ({"base_url": "http://h:1/v1", "trust_base_url": True}, {"OPENAI_API_KEY": KEY}, "", True),
    ],
)
def test_key_goes_to_a_base_url_only_from_the_same_place_or_when_trusted(tmp_path, flags, environ, dotenv, sent):
    env_file = tmp_path / ".env"
    env_file.write_text(dotenv)
    settings = resolve_settings(**flags, env_file=str(env_file), environ=environ)
    assert (settings.api_key.reveal() == KEY) is sent
    assert KEY not in repr(settings)


# --------------------------------------------------------------------------------- key never printed
def test_key_echoed_inside_a_malformed_answer_is_never_printed(request, classes_file, llm_env, monkeypatch,
                                                               capsys, caplog):
    caplog.set_level("DEBUG")
    bad = f"abseiling:\n  label: abseiling\n  obj_en_li: [a, b, c, d, e]\n  obj_rel_triples: ['{KEY}']\n"
    fake = serve(request, script=lambda s, cls, n, m: Reply(content=bad) if cls == "abseiling" else None)
    monkeypatch.setenv("OPENAI_API_KEY", KEY)  # the key is in the environment, not on the command line
    monkeypatch.setenv("OPENAI_BASE_URL", fake.url)
    out = llm_env / "askg.yml"
    code = askg_main(["--classes", classes_file, "--output", str(out), "--max-reasks", "1",
                      "--backoff-base", "0.01", "--timeout", "300"])
    captured = capsys.readouterr()
    assert code == 1
    assert fake.auth == {f"Bearer {KEY}"}
    assert "abseiling: no valid answer after 2 tries" in captured.out and "angle brackets" in captured.out
    for text in (captured.out, captured.err, caplog.text):
        assert KEY not in text and KEY[:12] not in text and KEY[-8:] not in text


def test_a_failing_log_handler_prints_no_key_either(request, classes_file, llm_env, monkeypatch, capsys):
    """A handler that cannot write (here: on a closed stream) makes logging print the exception in flight."""
    import io
    import logging

    bad = f"abseiling:\n  label: abseiling\n  obj_en_li: [a, b, c, d, e]\n  obj_rel_triples: ['{KEY}']\n"
    fake = serve(request, script=lambda s, cls, n, m: Reply(content=bad) if cls == "abseiling" else None)
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    monkeypatch.setenv("OPENAI_BASE_URL", fake.url)
    closed = io.StringIO()
    closed.close()
    broken = logging.StreamHandler(closed)
    stage_logger = logging.getLogger("slowfast.text.stages")
    stage_logger.addHandler(broken)
    request.addfinalizer(lambda: stage_logger.removeHandler(broken))
    code = askg_main(["--classes", classes_file, "--output", str(llm_env / "askg.yml"), "--max-reasks", "1",
                      "--backoff-base", "0.01", "--timeout", "300"])
    captured = capsys.readouterr()
    assert code == 1 and "--- Logging error ---" in captured.err  # the handler did fail
    for text in (captured.out, captured.err):
        assert KEY not in text and KEY[:12] not in text and KEY[-8:] not in text
