"""A chat-completions client for any OpenAI-compatible server, with our own bounded retries.

The `openai` package does the HTTP; its built-in retries are switched off (`max_retries=0`) so that
one policy, ours, decides: exponential backoff with full jitter (honouring `Retry-After`) on rate
limits, timeouts, connection errors and 5xx; immediate failure on other 4xx. Authentication,
permission and not-found errors are fatal (every class would fail the same way).

The API key is held in a `Secret` and never appears in logs, errors or reprs: every message that
leaves this module goes through `redact`.
"""

from __future__ import annotations

import json
import logging
import math
import os
import random
import threading
import urllib.parse
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Optional

from slowfast.errors import UserError

logger = logging.getLogger(__name__)

OPENAI_BASE_URL = "https://api.openai.com/v1"
DEFAULT_MODEL = "gpt-4o-mini"
# Local servers (vLLM, Ollama) ignore the key, but the openai client insists on one.
PLACEHOLDER_KEY = "not-needed"
# A refused or unresolvable connection is retried only this often, this briefly: a server that is not
# there now will not be there in a minute either, and every class would wait the same way.
CONNECT_RETRIES = 2
CONNECT_MAX_DELAY = 1.0


class LLMError(UserError, RuntimeError):
    """A request failed after the allowed retries, or could not be made (message already redacted)."""


class LLMFatalError(LLMError):
    """A failure that every further request would repeat (bad key, unknown model or URL): stop the run."""


class LLMUnreachableError(LLMFatalError):
    """The server could not be reached at all (connection refused, unknown host): stop the run."""


class Secret:
    """A string that does not print itself."""

    __slots__ = ("_value",)

    def __init__(self, value: str):
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret('***')"

    __str__ = __repr__

    def __reduce__(self):  # no pickling the raw value into logs or caches by accident
        raise TypeError("Secret cannot be pickled")


def redact(text: str, secrets: Sequence[Optional[str]]) -> str:
    """`text` with every secret (and a visible prefix/suffix pair of it, as servers echo) replaced by ***."""
    out = str(text)
    for s in secrets:
        if not s or s == PLACEHOLDER_KEY:
            continue
        out = out.replace(s, "***")
        # Servers often echo a masked form like "sk-abc...wxyz"; strip long visible fragments too.
        if len(s) >= 16:
            for frag in (s[:12], s[-8:]):
                out = out.replace(frag, "***")
    return out


def read_env_file(path: Optional[str]) -> dict[str, str]:
    """Values of a `.env` file (python-dotenv syntax) without touching `os.environ`; {} when absent."""
    if not path or not os.path.isfile(path):
        return {}
    from dotenv import dotenv_values

    return {k: v for k, v in dotenv_values(path).items() if v is not None}


@dataclass(frozen=True)
class LLMSettings:
    """Where to send requests. The key is a `Secret`; `repr` shows only whether one is set."""

    model: str
    base_url: str
    api_key: Secret = field(repr=False)
    key_source: str = "none"

    def __repr__(self) -> str:
        return f"LLMSettings(model={self.model!r}, base_url={self.base_url!r}, api_key=<from {self.key_source}>)"


def resolve_settings(
    api_key: Optional[str] = None,
    base_url: Optional[str] = None,
    model: Optional[str] = None,
    env_file: Optional[str] = ".env",
    environ: Optional[Mapping[str, str]] = None,
    trust_base_url: bool = False,
) -> LLMSettings:
    """Flag, then environment (`OPENAI_API_KEY`, `OPENAI_BASE_URL`, `OPENAI_MODEL`), then `.env`.

    `OPENAI_API_BASE` (the old SDK's name, used by the original scripts' .env) is read when
    `OPENAI_BASE_URL` is not set anywhere.

    The official endpoint without a key is an error that says where to put one; any other base URL
    (a local vLLM or Ollama) gets a placeholder key, since those servers do not check it. A key is
    sent to a base URL other than the official one only when both come from the same place (see
    `_withhold_key`).
    """
    env = os.environ if environ is None else environ
    dot = read_env_file(env_file)

    def pick(flag: Optional[str], name: str) -> tuple[Optional[str], str]:
        if flag:
            return flag, "flag"
        if env.get(name):
            return env[name], "environment"
        if dot.get(name):
            return dot[name], env_file or ".env"
        return None, "none"

    key, key_source = pick(api_key, "OPENAI_API_KEY")
    url, url_source = pick(base_url, "OPENAI_BASE_URL")
    if not url:  # the name the original scripts (openai < 1.0) read from their .env
        url, url_source = pick(None, "OPENAI_API_BASE")
    name, _ = pick(model, "OPENAI_MODEL")
    url = (url or OPENAI_BASE_URL).rstrip("/")
    if key and not trust_base_url and _withhold_key(url, url_source, key_source):
        logger.warning(
            "%s is not sent to %s (%s): a key goes to a base URL other than %s only when both are given in "
            "the same place (both flags, both environment variables, or both in %s); requests go without it. "
            "Pass --trust-base-url to send it anyway",
            _describe("--api-key", "OPENAI_API_KEY", key_source), url,
            _describe("--base-url", "the base URL", url_source), OPENAI_BASE_URL, env_file or ".env",
        )
        key = None
    if not key:
        if url == OPENAI_BASE_URL:
            raise LLMFatalError(
                "no API key: pass --api-key, export OPENAI_API_KEY, or put OPENAI_API_KEY=... in "
                f"{env_file or '.env'} (see .env.example); a local server needs --base-url instead"
            )
        key, key_source = PLACEHOLDER_KEY, "placeholder (local server)"
    return LLMSettings(model=name or DEFAULT_MODEL, base_url=url, api_key=Secret(key), key_source=key_source)


def _withhold_key(url: str, url_source: str, key_source: str) -> bool:
    """Whether a key must not go to `url`: a base URL set in one place (say a `.env` that came with a
    cloned folder) must not collect a key the user keeps somewhere else (say their shell profile)."""
    return url != OPENAI_BASE_URL and url_source != key_source


def _describe(flag: str, name: str, source: str) -> str:
    if source == "flag":
        return flag
    return f"{name} from the environment" if source == "environment" else f"{name} from {source}"


@dataclass(frozen=True)
class RetryPolicy:
    """Bounded retries: attempt i (0-based) waits uniform(0, min(max_delay, base * 2**i)) seconds,
    or the server's Retry-After when it gives one (capped at max_delay)."""

    max_retries: int = 8
    base_delay: float = 1.0
    max_delay: float = 60.0

    def delay(self, attempt: int, retry_after: Optional[float] = None, rng: Optional[random.Random] = None) -> float:
        if retry_after is not None and retry_after >= 0:
            return min(retry_after, self.max_delay)
        cap = min(self.max_delay, self.base_delay * 2.0 ** min(attempt, 64))  # 2**1024 overflows a float
        return (rng or random).uniform(0.0, cap)


@dataclass
class ChatResult:
    text: str
    prompt_tokens: int = 0
    completion_tokens: int = 0


@dataclass
class UsageCounter:
    """Totals over a run, updated from worker threads."""

    requests: int = 0
    retries: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def add(self, **kw: int) -> None:
        with self._lock:
            for k, v in kw.items():
                setattr(self, k, getattr(self, k) + int(v))

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


def _retry_after_seconds(headers: Any) -> Optional[float]:
    if headers is None:
        return None
    for name, scale in (("retry-after-ms", 1e-3), ("retry-after", 1.0)):
        value = headers.get(name)
        if value is None:
            continue
        try:
            return float(value) * scale
        except (TypeError, ValueError):
            return None  # an HTTP date: fall back to our own backoff
    return None


def _token_counts(resp: Any) -> tuple[int, int]:
    """(prompt, completion) tokens the server reports; 0 for what it leaves out or gives as a non-number."""
    usage = getattr(resp, "usage", None)
    counts = []
    for name in ("prompt_tokens", "completion_tokens"):
        value = getattr(usage, name, 0)
        counts.append(int(value) if isinstance(value, (int, float)) and math.isfinite(value) else 0)
    return counts[0], counts[1]


def _answer_text(resp: Any) -> Optional[str]:
    """The first choice's message text; None when the body has no such string (an HTML page, a JSON
    body of another shape: the client hands those back unchecked)."""
    choices = getattr(resp, "choices", None)
    if not isinstance(choices, list) or not choices:
        return None
    message = getattr(choices[0], "message", None)
    text = getattr(message, "content", None)
    return text if isinstance(text, str) else None


class _Retryable(Exception):
    """A failed request worth another try: `message` is logged; `give_up(attempts)` is the final error."""

    def __init__(
        self,
        message: str,
        give_up: Callable[[int], str],
        retry_after: Optional[float] = None,
        unreachable: bool = False,
    ):
        super().__init__(message)
        self.message = message
        self.give_up = give_up
        self.retry_after = retry_after
        self.unreachable = unreachable  # no connection at all: few, short retries, then stop the run


class LLMClient:
    """Thread-safe chat client: `chat(messages, temperature)` -> `ChatResult`, counting usage."""

    def __init__(
        self,
        settings: LLMSettings,
        timeout: float = 120.0,
        retry: RetryPolicy = RetryPolicy(),
        max_tokens: int = 1024,
        stop_event: Optional[threading.Event] = None,
    ):
        from openai import OpenAI

        self.settings = settings
        self.retry = retry
        self.max_tokens = max_tokens
        self.usage = UsageCounter()
        self.stop_event = stop_event or threading.Event()
        self._client = OpenAI(
            base_url=settings.base_url, api_key=settings.api_key.reveal(), timeout=timeout, max_retries=0
        )

    def __repr__(self) -> str:
        return f"LLMClient(model={self.settings.model!r}, base_url={self.settings.base_url!r})"

    def redact(self, text: str) -> str:
        """`text` without the key (for anything that may echo a server's or model's words)."""
        return redact(text, [self.settings.api_key.reveal()])

    def chat(self, messages: list[dict], temperature: float, context: str = "") -> ChatResult:
        """One completion, retried per the policy. Raises LLMError / LLMFatalError (redacted) on failure."""
        where = f" for {context}" if context else ""
        attempt = 0
        while True:
            if self.stop_event.is_set():
                raise LLMError(f"run stopped before the request{where}")
            self.usage.add(requests=1)
            try:
                return self._request_once(messages, temperature, where)
            except _Retryable as failure:
                self._backoff_or_raise(attempt, failure, where)
                attempt += 1

    def _request_once(self, messages: list[dict], temperature: float, where: str) -> ChatResult:
        """One HTTP request: the answer, `_Retryable` for a failure worth another try, else LLMError."""
        import openai

        try:
            resp = self._client.chat.completions.create(
                model=self.settings.model,
                messages=messages,
                temperature=temperature,
                max_tokens=self.max_tokens,
                top_p=1,
                frequency_penalty=0,
                presence_penalty=0,
            )
        except (openai.AuthenticationError, openai.PermissionDeniedError, openai.NotFoundError) as e:
            raise LLMFatalError(
                self.redact(f"{type(e).__name__} (HTTP {e.status_code}) from {self.settings.base_url}"
                             f"{where}: {e.message}")
            ) from None
        except openai.APITimeoutError as e:
            raise self._retryable(e, where) from None
        except openai.APIConnectionError as e:
            raise self._unreachable(e, where) from None
        except openai.APIStatusError as e:
            status = getattr(e, "status_code", None)
            msg = self.redact(f"{type(e).__name__}" + (f" (HTTP {status})" if status else "") + f": {e.message}")
            if status == 429 and getattr(e, "code", None) == "insufficient_quota":
                # OpenAI's "out of credit" is a 429 that no amount of waiting fixes.
                raise LLMFatalError(f"request{where} refused: {msg}") from None
            if status is not None and status not in (408, 409, 429) and status < 500:
                raise LLMError(f"request{where} refused: {msg}") from None
            raise self._retryable(e, where) from None
        except openai.OpenAIError as e:
            raise LLMError(self.redact(f"request{where} failed: {type(e).__name__}: {e}")) from None
        except (json.JSONDecodeError, UnicodeDecodeError):
            # A proxy or an overloaded server answering HTTP 200 with a body that is not JSON (or a cut-off
            # one): a hiccup like an empty answer, not a reason to stop the run.
            raise _Retryable("answer (HTTP 200) is not JSON",
                             lambda n: f"answer{where} was not JSON in {n} attempts (HTTP 200)") from None
        pt, ct = _token_counts(resp)
        self.usage.add(prompt_tokens=pt, completion_tokens=ct)
        text = _answer_text(resp)
        if not text:
            # An empty answer (or an HTML page, or JSON without a chat message) is a (cheap) server hiccup:
            # treat it like a retryable error.
            raise _Retryable("empty answer (no message text)",
                             lambda n: f"empty answer{where} after {n} attempts (no message text)")
        return ChatResult(text=text, prompt_tokens=pt, completion_tokens=ct)

    def _retryable(self, e: Exception, where: str) -> _Retryable:
        """A timeout, 408/409/429 or 5xx as a `_Retryable` (honouring the server's Retry-After)."""
        status = getattr(e, "status_code", None)
        msg = self.redact(f"{type(e).__name__}" + (f" (HTTP {status})" if status else "") + f": {e.message}")
        headers = getattr(getattr(e, "response", None), "headers", None)
        return _Retryable(msg, lambda n: f"request{where} failed after {n} attempts: {msg}",
                          _retry_after_seconds(headers))

    def _unreachable(self, e: Exception, where: str) -> _Retryable:
        """No connection (refused, unknown host, TLS failure): the message names host and port."""
        url = urllib.parse.urlsplit(self.settings.base_url)
        default_port = 443 if url.scheme == "https" else 80
        target = f"{url.hostname}:{url.port or default_port}"
        cause = e.__cause__ or e.__context__
        detail = self.redact(f"{type(cause).__name__}: {cause}" if cause else f"{type(e).__name__}: {e.message}")
        msg = f"cannot connect to {target} (base URL {self.settings.base_url}){where}: {detail}"
        return _Retryable(
            msg, lambda n: f"{msg}; gave up after {n} attempts. Is the server running, and are --base-url, "
                           "OPENAI_BASE_URL and the .env right?", unreachable=True)

    def _backoff_or_raise(self, attempt: int, failure: _Retryable, where: str) -> None:
        """Wait before retry `attempt + 1`, or raise LLMError when the retries are spent or the run stops.

        An unreachable server gets at most CONNECT_RETRIES short retries, then stops the whole run
        (LLMUnreachableError): with minutes of backoff per class, a typo in the URL would cost hours.
        """
        unreachable = failure.unreachable
        limit = min(self.retry.max_retries, CONNECT_RETRIES) if unreachable else self.retry.max_retries
        if attempt >= limit:
            raise (LLMUnreachableError if unreachable else LLMError)(failure.give_up(attempt + 1)) from None
        wait = self.retry.delay(attempt, failure.retry_after)
        if unreachable:
            wait = min(wait, CONNECT_MAX_DELAY)
        logger.warning("%s%s; retry %d/%d in %.2fs", failure.message, "" if unreachable else where,
                       attempt + 1, limit, wait)
        self.usage.add(retries=1)
        if self.stop_event.wait(wait):
            raise LLMError(f"run stopped while waiting to retry{where}") from None
