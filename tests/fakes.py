"""Test doubles shared by the text tests: a chat-completions server on 127.0.0.1 that plays the LLM.

The server answers from the class named in the request (ASKG for stage 1, one clause per triple for
stage 2), counts requests per class, and can be scripted per test to misbehave (bad YAML, 429, 5xx,
hanging, 401, a body that is not JSON).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Optional

import yaml
from helpers import ROOT, ctrl_c_as_in_a_terminal


@dataclass
class Reply:
    status: int = 200
    content: str = ""
    headers: dict = field(default_factory=dict)
    error: str = "scripted error"
    code: Optional[str] = None
    body: Optional[bytes] = None  # sent as it is instead of the chat-completions JSON (a broken server)
    content_type: str = "application/json"


def askg_answer(name: str) -> str:
    """A valid ASKG answer for an action (lower-cased, as the request shows it), inside a code fence."""
    objs = [f"{name} tool {i}" for i in range(5)]
    steps = [f"{name} step {i}" for i in range(3)]
    entry = {
        "label": name,
        "obj_en_li": objs,
        "obj_rel_triples": [f"<{objs[i]}, is next to, {objs[i + 1]}>" for i in range(4)],
        "act_obj_triples": [f"<{name}, uses, {o}>" for o in objs],
        "sub_act_en_li": steps,
        "act_rel_triples": [f"<{name}, starts with, {steps[0]}>"]
        + [f"<{steps[i]}, precedes, {steps[i + 1]}>" for i in range(2)],
    }
    return "```yaml\n" + yaml.safe_dump({name: entry}, sort_keys=False) + "```"


def xprompt_answer(user_message: str) -> str:
    """One clause per numbered triple of the stage-2 request."""
    blocks = user_message.split("\n\n")
    label = blocks[0].split(": ", 1)[1]
    out = {"label": label}
    for block, key in zip(blocks[1:], ("xprompt_oo", "xprompt_ao", "xprompt_aa"), strict=True):
        triples = [re.match(r"\d+ - <(.*)>$", line).group(1).split(", ") for line in block.splitlines()[1:]]
        out[key] = [f"where {a} {b} {c}" for a, b, c in triples]
    return yaml.safe_dump({label: out}, sort_keys=False)


def class_of(messages: list[dict]) -> tuple[str, str]:
    """(stage, class as shown to the model) from the real user message (the 4th)."""
    text = messages[3]["content"]
    m = re.match(r"action entity: \[(.*)\]$", text)
    if m:
        return "askg", m.group(1)
    return "xprompt", text.split("\n", 1)[0].split(": ", 1)[1]


class _ChatHandler(BaseHTTPRequestHandler):
    """Serves POST /v1/chat/completions for the FakeLLM stored on its server."""

    def log_message(self, *args):  # keep test output clean
        pass

    def do_POST(self):
        fake: FakeLLM = self.server.fake
        if self.path != "/v1/chat/completions":
            self.send_error(404)
            return
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        n = fake.record(body, self.headers.get("Authorization"))
        stage, cls = class_of(body["messages"])
        time.sleep(fake.delay(cls))
        reply = fake.script(stage, cls, n, body["messages"])
        if reply is None:
            text = askg_answer(cls) if stage == "askg" else xprompt_answer(body["messages"][3]["content"])
            reply = Reply(content=text)
        self._send(reply, _payload(reply, n, body["model"]))

    def _send(self, reply: Reply, payload: dict) -> None:
        data = json.dumps(payload).encode() if reply.body is None else reply.body
        try:
            self.send_response(reply.status)
            self.send_header("Content-Type", reply.content_type)
            self.send_header("Content-Length", str(len(data)))
            for k, v in reply.headers.items():
                self.send_header(k, v)
            self.end_headers()
            self.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):
            pass


def _payload(reply: Reply, n: int, model: str) -> dict:
    """The chat-completions JSON body for a scripted reply (an answer, or an error object)."""
    if reply.status != 200:
        return {"error": {"message": reply.error, "type": "scripted", "code": reply.code}}
    return {
        "id": f"chatcmpl-{n}", "object": "chat.completion", "created": 0, "model": model,
        "choices": [{"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": reply.content}}],
        "usage": {"prompt_tokens": 100, "completion_tokens": 20, "total_tokens": 120},
    }


class FakeLLM:
    """Chat-completions server; `script(stage, cls, n, messages)` returns a Reply or None (= a good answer)."""

    def __init__(self, script: Optional[Callable] = None, delay: Optional[Callable[[str], float]] = None):
        self.script = script or (lambda stage, cls, n, messages: None)
        self.delay = delay or (lambda cls: 0.0)
        self.counts: Counter = Counter()
        self.auth: set = set()
        self.bodies: list = []
        self.lock = threading.Lock()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), _ChatHandler)
        self.server.fake = self
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v1"

    def record(self, body: dict, authorization: Optional[str]) -> int:
        """Count a request; returns how many times its (stage, class) has been asked, this one included."""
        stage, cls = class_of(body["messages"])
        with self.lock:
            self.counts[(stage, cls)] += 1
            self.auth.add(authorization)
            self.bodies.append(body)
            return self.counts[(stage, cls)]

    def count(self, stage: str, cls: str) -> int:
        return self.counts[(stage, cls.lower() if stage == "askg" else cls)]

    def close(self):
        self.server.shutdown()
        self.server.server_close()


# What the stage tests share: a key that must never be printed, a class list, fast retries.
KEY = "sk-test-Q7s9XkLmN2pR4tV6wY8zA1bC3dE5fG"
CLASSES = ["abseiling", "Apply Eye Makeup", "passing American football (in game)", "yo-yo"]
FAST = ["--backoff-base", "0.01", "--backoff-max", "0.05", "--timeout", "300", "--quiet"]  # the timeout: a hang guard


def serve(request, **kw) -> FakeLLM:
    """A FakeLLM server closed when the test ends."""
    fake = FakeLLM(**kw)
    request.addfinalizer(fake.close)
    return fake


def askg_stuck_on(request, classes_file: str, out, cls: str):
    """Starts `stdd-askg` in a child process against a server that does not answer for `cls` until the
    returned event is set, and returns (fake, proc, release) once every class before `cls` is written to
    `out`.parts/ and `cls` has been asked once: the moment a test kills or interrupts the run."""
    release = threading.Event()
    request.addfinalizer(release.set)

    def script(stage, asked, n, messages):
        if asked == cls.lower() and not release.is_set():
            release.wait(600)  # a hang guard only: the test sets it
        return None

    fake = serve(request, script=script)
    cmd = [sys.executable, os.path.join(ROOT, "utils", "ASKG_text_prompt.py"), "--classes", classes_file,
           "--output", str(out), "--base-url", fake.url, "--concurrency", "1", *FAST]
    env = {**os.environ, "OPENAI_API_KEY": KEY, "PYTHONPATH": ROOT}
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=ctrl_c_as_in_a_terminal)
    request.addfinalizer(lambda: proc.poll() is None and proc.kill())
    parts = f"{out}.parts"
    done_before = CLASSES.index(cls)
    deadline = time.monotonic() + 600  # a hang guard only
    while not (fake.count("askg", cls) == 1 and _count_parts(parts) == done_before):
        assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
        time.sleep(0.05)
    return fake, proc, release


def _count_parts(folder) -> int:
    return len([n for n in os.listdir(folder) if n.endswith(".yml")]) if os.path.isdir(folder) else 0
