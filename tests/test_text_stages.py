"""Stages 1 and 2 end to end: our CLIs, the real `openai` client, a chat-completions server on 127.0.0.1.

The server answers from the class named in the request (ASKG for stage 1, one clause per triple for
stage 2), counts requests per class, and is scripted per test to misbehave (bad YAML, 429, 5xx,
hanging, 401).
"""

from __future__ import annotations

import os
import signal
import threading

import pytest
import yaml
from fakes import CLASSES, FAST, KEY, FakeLLM, Reply, askg_stuck_on, class_of, serve

from slowfast.cli.text import askg_main, xprompt_main


def stage1(fake: FakeLLM, classes: str, out: str, *extra: str) -> int:
    return askg_main(["--classes", classes, "--output", out, "--base-url", fake.url, "--api-key", KEY,
                      "--model", "fake-model", *FAST, *extra])


def stage2(fake: FakeLLM, askg: str, out: str, *extra: str) -> int:
    return xprompt_main(["--askg", askg, "--output", out, "--base-url", fake.url, "--api-key", KEY,
                         "--model", "fake-model", *FAST, *extra])


def read_yaml(path) -> dict:
    with open(path) as f:
        return yaml.safe_load(f)


# ------------------------------------------------------------------------------------------- tests
def test_clean_run_of_stage_1_then_stage_2_writes_every_class_in_index_order(request, classes_file, llm_env, capsys):
    # The first class answers last, so answers arrive in reverse order.
    rank = {**{c.lower(): i for i, c in enumerate(CLASSES)}, **{c: i for i, c in enumerate(CLASSES)}}
    fake = serve(request, delay=lambda cls: 0.04 * (len(CLASSES) - rank[cls]))
    askg, xp = str(llm_env / "askg.yml"), str(llm_env / "xprompt.yml")
    assert stage1(fake, classes_file, askg, "--concurrency", "4") == 0
    assert stage2(fake, askg, xp, "--concurrency", "4") == 0
    a, x = read_yaml(askg), read_yaml(xp)
    assert list(a) == CLASSES and list(x) == CLASSES
    assert [a[c]["label"] for c in CLASSES] == CLASSES
    assert all(len(x[c]["xprompt_oo"]) == len(a[c]["obj_rel_triples"]) for c in CLASSES)
    assert x["abseiling"]["xprompt_aa"][0] == "where abseiling starts with abseiling step 0"
    assert all(fake.count("askg", c) == 1 and fake.count("xprompt", c) == 1 for c in CLASSES)
    assert fake.auth == {f"Bearer {KEY}"}
    out = capsys.readouterr().out
    assert "requests: 4 (0 retries); tokens: 400 prompt + 80 completion = 480" in out


def test_malformed_answer_is_asked_again_with_the_error_then_accepted(request, classes_file, llm_env):
    def script(stage, cls, n, messages):
        if cls == "abseiling" and n == 1:
            return Reply(content="abseiling: [unclosed")
        if cls == "abseiling" and n == 2:
            return Reply(content="abseiling:\n  label: abseiling\n  obj_en_li: [rope]\n")
        return None

    fake = serve(request, script=script)
    out = str(llm_env / "askg.yml")
    assert stage1(fake, classes_file, out, "--max-reasks", "2") == 0
    assert fake.count("askg", "abseiling") == 3
    reasks = [b["messages"] for b in fake.bodies if class_of(b["messages"])[1] == "abseiling"][1:]
    assert "not valid YAML" in reasks[0][-1]["content"]
    assert "'obj_en_li' must have 5 to 10 items, got 1" in reasks[1][-1]["content"]
    assert list(read_yaml(out)) == CLASSES


def test_class_still_invalid_after_reasks_is_listed_and_not_written(request, classes_file, llm_env, capsys):
    fake = serve(request, script=lambda s, cls, n, m: Reply(content="just prose") if cls == "yo-yo" else None)
    out = str(llm_env / "askg.yml")
    assert stage1(fake, classes_file, out, "--max-reasks", "1") == 1
    assert list(read_yaml(out)) == CLASSES[:3]
    assert fake.count("askg", "yo-yo") == 2
    assert "  - yo-yo: no valid answer after 2 tries" in capsys.readouterr().out


@pytest.mark.parametrize("status", [429, 500, 503])
def test_retryable_http_error_is_retried_then_succeeds(request, classes_file, llm_env, status):
    def script(stage, cls, n, messages):
        if n == 1 and cls == "abseiling":
            return Reply(status=status, headers={"Retry-After": "0.01"})
        return None

    fake = serve(request, script=script)
    out = str(llm_env / "askg.yml")
    assert stage1(fake, classes_file, out, "--max-retries", "2") == 0
    assert fake.count("askg", "abseiling") == 2
    assert list(read_yaml(out)) == CLASSES


def test_run_killed_halfway_resumes_without_asking_finished_classes_again(request, classes_file, llm_env):
    out = llm_env / "askg.yml"
    fake, proc, release = askg_stuck_on(request, classes_file, out, CLASSES[2])
    proc.send_signal(signal.SIGKILL)
    proc.communicate()
    assert not out.exists()
    release.set()
    before = fake.counts.copy()
    assert stage1(fake, classes_file, str(out)) == 0
    asked_again = {cls for key, n in fake.counts.items() if n != before.get(key, 0) for cls in [key[1]]}
    assert asked_again == {CLASSES[2].lower(), CLASSES[3].lower()}
    assert list(read_yaml(out)) == CLASSES


def test_persistent_server_error_fails_one_class_and_rerun_asks_only_that_class(request, classes_file, llm_env):
    broken = {"on": True}
    fake = serve(request, script=lambda s, cls, n, m:
                 Reply(status=500) if broken["on"] and cls == "abseiling" else None)
    out = str(llm_env / "askg.yml")
    assert stage1(fake, classes_file, out, "--max-retries", "1") == 1
    assert fake.count("askg", "abseiling") == 2
    assert list(read_yaml(out)) == CLASSES[1:]
    broken["on"] = False
    assert stage1(fake, classes_file, out) == 0
    assert fake.count("askg", "abseiling") == 3
    assert all(fake.count("askg", c) == 1 for c in CLASSES[1:])
    assert list(read_yaml(out)) == CLASSES


def test_stage_2_asks_again_only_for_a_class_whose_askg_entry_changed(request, classes_file, llm_env):
    fake = serve(request)
    askg, xp = str(llm_env / "askg.yml"), str(llm_env / "xprompt.yml")
    assert stage1(fake, classes_file, askg) == 0
    assert stage2(fake, askg, xp, "--classes", classes_file) == 0
    data = read_yaml(askg)
    data["yo-yo"]["obj_rel_triples"].append("<string, is tied to, finger>")
    with open(askg, "w") as f:
        yaml.safe_dump(data, f, sort_keys=False)
    assert stage2(fake, askg, xp, "--classes", classes_file) == 0
    assert fake.count("xprompt", "yo-yo") == 2
    assert all(fake.count("xprompt", c) == 1 for c in CLASSES[:3])
    assert read_yaml(xp)["yo-yo"]["xprompt_oo"][-1] == "where string is tied to finger"


def test_api_key_never_appears_in_output_or_logs_even_when_the_server_echoes_it(
    request, classes_file, llm_env, capsys, caplog, monkeypatch
):
    caplog.set_level("DEBUG")
    fake = serve(request, script=lambda s, cls, n, m: Reply(status=401, error=f"Incorrect API key provided: {KEY}"))
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    out = str(llm_env / "askg.yml")
    code = askg_main(["--classes", classes_file, "--output", out, "--base-url", fake.url, "--trust-base-url",
                      "--backoff-base", "0.01", "--timeout", "300"])
    captured = capsys.readouterr()
    assert code == 2
    assert "AuthenticationError (HTTP 401)" in captured.out
    assert fake.auth == {f"Bearer {KEY}"}
    for text in (captured.out, captured.err, caplog.text):
        assert KEY not in text and KEY[:12] not in text and KEY[-8:] not in text


def test_dry_run_prints_the_prompts_and_sends_no_request(request, classes_file, llm_env, capsys):
    fake = serve(request)
    out = llm_env / "askg.yml"
    # No key anywhere and the official URL: a real run would refuse, a dry run needs none.
    assert askg_main(["--classes", classes_file, "--output", str(out), "--dry-run", "2"]) == 0
    text = capsys.readouterr().out
    assert "action entity: [abseiling]" in text and "action entity: [apply eye makeup]" in text
    assert "action entity: [yo-yo]" not in text
    assert "--- system ---" in text
    assert sum(fake.counts.values()) == 0
    assert not out.exists() and not (llm_env / "askg.yml.parts").exists()


def test_key_and_base_url_are_read_from_the_env_file(request, classes_file, llm_env):
    fake = serve(request)
    (llm_env / ".env").write_text(f"OPENAI_API_KEY={KEY}\nOPENAI_BASE_URL={fake.url}\nOPENAI_MODEL=env-model\n")
    out = str(llm_env / "askg.yml")
    assert askg_main(["--classes", classes_file, "--output", out, "--limit", "1", *FAST]) == 0
    assert fake.auth == {f"Bearer {KEY}"}
    assert fake.bodies[0]["model"] == "env-model"
    assert list(read_yaml(out)) == CLASSES[:1]


def test_request_timeout_is_retried_then_succeeds(request, classes_file, llm_env):
    release = threading.Event()
    request.addfinalizer(release.set)

    def script(stage, cls, n, messages):
        if n == 1:
            release.wait()  # the first request is never answered: it always times out, however fast the machine
        return None

    fake = serve(request, script=script)
    out = str(llm_env / "askg.yml")
    assert askg_main(["--classes", classes_file, "--output", out, "--base-url", fake.url, "--api-key", KEY,
                      "--backoff-base", "0.01", "--timeout", "2", "--max-retries", "4", "--limit", "1",
                      "--quiet"]) == 0
    assert fake.count("askg", "abseiling") >= 2  # the hung request, then a retry that was answered
    assert list(read_yaml(out)) == CLASSES[:1]


def test_unreachable_server_stops_the_run_after_bounded_retries_of_the_first_class(classes_file, llm_env, capsys):
    import socket

    with socket.socket() as s:  # a port that nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    out = str(llm_env / "askg.yml")
    code = askg_main(["--classes", classes_file, "--output", out, "--base-url", f"http://127.0.0.1:{port}/v1",
                      "--max-retries", "1", "--limit", "2", "--concurrency", "1", *FAST])
    text = capsys.readouterr().out
    assert code == 2
    assert "requests: 2 (1 retries)" in text
    assert f"cannot connect to 127.0.0.1:{port}" in text and "gave up after 2 attempts" in text
    assert "not asked (run stopped)" in text
    assert not os.path.exists(out)


def test_out_of_quota_429_stops_the_run_instead_of_retrying(request, classes_file, llm_env, capsys):
    fake = serve(request, script=lambda s, cls, n, m: Reply(status=429, code="insufficient_quota", error="no credit"))
    out = str(llm_env / "askg.yml")
    assert stage1(fake, classes_file, out, "--concurrency", "1", "--max-retries", "5") == 2
    assert sum(fake.counts.values()) == 1
    text = capsys.readouterr().out
    assert "stopped: request for class 0 'abseiling' refused: RateLimitError (HTTP 429)" in text and "no credit" in text
    assert "yo-yo: not asked (run stopped)" in text
