"""Stage runners for the LLM prompting: ask once per class, keep every answer, resume where it stopped.

Each validated class result is written, as soon as it arrives, to its own file in `<output>.parts/`,
named by the SHA-1 of the class name (atomic: temp file + fsync + rename). A part records a SHA-256 of
the exact messages that produced it, so a restarted run asks only for classes that have no part or
whose input changed (for stage 2: a different ASKG entry). The final YAML is rebuilt from the parts at the end of every run, in class-index
order, with keys exactly the class names; classes that still failed are listed and left out, never
written as bad entries, and never over a file holding classes the new result lacks. `--fresh` asks
every class again, replacing the parts one by one.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import queue
import threading
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Optional, TypeVar

import yaml

from slowfast.text import llm_instructions
from slowfast.text.llm import LLMClient, LLMError, LLMFatalError, UsageCounter
from slowfast.text.schema import (
    SchemaError,
    check_answer_length,
    load_yaml_file,
    parse_yaml_answer,
    validate_askg,
    validate_xprompt,
)
from slowfast.utils.atomic import atomic_write_text
from slowfast.utils.class_index import ClassIndexError, read_class_names

logger = logging.getLogger(__name__)


# ----------------------------------------------------------------------------------------------- files
def dump_yaml(data: Any) -> str:
    return yaml.safe_dump(data, sort_keys=False, allow_unicode=True, default_flow_style=False, width=4096)


def read_class_index(path: str, flag: str = "--classes") -> list[str]:
    """Class names in index order (the project's one reader), with errors as SchemaError naming `flag`."""
    if not os.path.isfile(path):
        raise SchemaError(f"{flag} {path}: no such class-index file")
    try:
        return read_class_names(path)
    except ClassIndexError as e:
        raise SchemaError(f"{flag}: {e}") from None


# -------------------------------------------------------------------------------------------- progress
def messages_fingerprint(messages: list[dict]) -> str:
    return hashlib.sha256(json.dumps(messages, sort_keys=True, ensure_ascii=False).encode("utf-8")).hexdigest()


class ProgressStore:
    """One YAML per finished class under `<output>.parts/`, named by a hash of the class name (names may
    hold any character, and a class keeps its part when the class list around it changes)."""

    def __init__(self, output_path: str):
        self.folder = os.path.abspath(output_path) + ".parts"

    def part_path(self, name: str) -> str:
        return os.path.join(self.folder, hashlib.sha1(name.encode("utf-8")).hexdigest()[:20] + ".yml")

    def save(self, index: int, name: str, fingerprint: str, entry: dict, model: str) -> None:
        record = {"class": name, "index": index, "input_sha256": fingerprint, "model": model, "entry": entry}
        atomic_write_text(self.part_path(name), dump_yaml(record))

    def load(self, name: str, fingerprint: str) -> Optional[dict]:
        """The stored entry for class `name` when it exists and was made from the same input, else None."""
        path = self.part_path(name)
        if not os.path.isfile(path):
            return None
        try:
            record = load_yaml_file(path)
        except SchemaError as e:
            logger.warning("ignoring unreadable progress part (%s); class %r will be asked again", e, name)
            return None
        if not isinstance(record, dict) or record.get("class") != name:
            logger.warning("ignoring progress part %s: it does not hold class %r", path, name)
            return None
        if record.get("input_sha256") != fingerprint:
            logger.info("class %r: input or prompt changed since it was saved; asking again", name)
            return None
        return record.get("entry")


# --------------------------------------------------------------------------------------------- stages
@dataclass(frozen=True)
class StageItem:
    index: int
    name: str
    source: Optional[Mapping] = None  # stage 2: the class's ASKG entry


@dataclass(frozen=True)
class StageSpec:
    """What one stage asks and how it checks the answer."""

    title: str
    build_messages: Callable[[StageItem], list[dict]]
    validate: Callable[[Any, StageItem], dict]
    default_temperature: float


ASKG_STAGE = StageSpec(
    title="ASKG",
    build_messages=lambda item: llm_instructions.askg_messages(item.name),
    validate=lambda obj, item: validate_askg(obj, item.name),
    default_temperature=llm_instructions.ASKG_TEMPERATURE,
)
XPROMPT_STAGE = StageSpec(
    title="xprompt",
    build_messages=lambda item: llm_instructions.xprompt_messages(item.source),
    validate=lambda obj, item: validate_xprompt(obj, item.name, item.source),
    default_temperature=llm_instructions.XPROMPT_TEMPERATURE,
)


@dataclass
class StageReport:
    total: int = 0
    reused: int = 0
    asked: int = 0
    succeeded: int = 0
    failures: dict[str, str] = field(default_factory=dict)  # class name -> reason
    usage: UsageCounter = field(default_factory=UsageCounter)
    fatal: Optional[str] = None
    written: int = 0
    output: str = ""
    kept: str = ""  # why the existing output file was left as it is

    def summary(self) -> str:
        u = self.usage
        lines = [
            f"classes: {self.total} ({self.reused} from earlier runs, {self.asked} asked now, "
            f"{self.succeeded} answered, {len(self.failures)} failed)",
            f"requests: {u.requests} ({u.retries} retries); tokens: {u.prompt_tokens} prompt + "
            f"{u.completion_tokens} completion = {u.total_tokens}",
            f"wrote {self.written} classes to {self.output}" if self.output else (self.kept or "nothing written"),
        ]
        if self.failures:
            lines.append(f"failed classes ({len(self.failures)}; not written, run again to retry them):")
            shown = list(self.failures.items())[:20]
            lines += [f"  - {name}: {reason}" for name, reason in shown]
            if len(self.failures) > len(shown):
                lines.append(f"  ... and {len(self.failures) - len(shown)} more")
        if self.fatal:
            lines.append(f"stopped: {self.fatal}")
        return "\n".join(lines)


def ask_one(
    item: StageItem, messages: list[dict], spec: StageSpec, client: LLMClient, temperature: float, max_reasks: int
) -> dict:
    """A validated entry for one class, re-asking with the error up to `max_reasks` times."""
    context = f"class {item.index} {item.name!r}"
    convo = messages
    error = ""
    for attempt in range(max_reasks + 1):
        result = client.chat(convo, temperature=temperature, context=context)
        try:
            check_answer_length(result.text, client.max_tokens)
            return spec.validate(parse_yaml_answer(result.text), item)
        except SchemaError as e:
            # It may quote the answer, and the answer may quote the key: redacted, then cut short.
            error = llm_instructions.shorten(client.redact(str(e)), llm_instructions.REASK_ERROR_CHARS)
        # Logged outside the except block: a logging handler that fails prints the exception in flight, whose
        # unredacted message may quote the key.
        logger.warning("%s: answer %d rejected: %s", context, attempt + 1, error)
        convo = llm_instructions.reask_messages(messages, result.text, error)
    raise SchemaError(f"no valid answer after {max_reasks + 1} tries; last error: {error}")


def format_messages(item: StageItem, messages: list[dict]) -> str:
    parts = [f"===== class {item.index}: {item.name} ====="]
    for m in messages:
        parts.append(f"--- {m['role']} ---\n{m['content']}")
    return "\n".join(parts)


J = TypeVar("J")
R = TypeVar("R")


def run_parallel(
    jobs: list[J], fn: Callable[[J], R], concurrency: int, stop: threading.Event
) -> Iterator[tuple[J, Optional[R], Optional[BaseException]]]:
    """`(job, result, exception)` for each job as it finishes, at most `concurrency` at a time.

    Daemon threads, not a ThreadPoolExecutor: after Ctrl-C the process must exit at once instead of
    waiting at interpreter exit for requests still in flight (their classes are simply asked next run).
    Once `stop` is set no new job starts; jobs never started are not yielded.
    """
    todo: queue.Queue = queue.Queue()
    for job in jobs:
        todo.put(job)
    done: queue.Queue = queue.Queue()

    def worker() -> None:
        while not stop.is_set():
            try:
                job = todo.get_nowait()
            except queue.Empty:
                return
            try:
                done.put((job, fn(job), None))
            except BaseException as e:  # handed to the caller
                done.put((job, None, e))

    threads = [threading.Thread(target=worker, daemon=True, name=f"llm-worker-{i}")
               for i in range(max(1, min(concurrency, len(jobs))))]
    for t in threads:
        t.start()
    received = 0
    while received < len(jobs):
        try:
            item = done.get(timeout=0.1)  # a short timeout keeps Ctrl-C responsive
        except queue.Empty:
            if not any(t.is_alive() for t in threads) and done.empty():
                return
            continue
        received += 1
        yield item


def run_stage(
    items: list[StageItem],
    spec: StageSpec,
    output: str,
    make_client: Callable[[], LLMClient],
    concurrency: int = 4,
    temperature: Optional[float] = None,
    max_reasks: int = 2,
    dry_run: int = 0,
    fresh: bool = False,
    echo: Callable[[str], None] = print,
    subset: bool = False,
) -> StageReport:
    """Ask for every class of `items` that has no valid stored answer, then write `output`.

    `make_client` is called only when something must be asked (a finished run needs no key).
    `dry_run` > 0 prints the messages of that many pending classes and asks nothing.
    `fresh` asks every class again; the stored answers are replaced one by one as new ones arrive, not
    deleted first, so a fresh run that fails loses nothing. `subset` (a `--limit` trial) means that even
    a full answer set is not the whole class list (see `_keep_existing`).
    """
    temperature = spec.default_temperature if temperature is None else temperature
    store = ProgressStore(output)
    report = StageReport(total=len(items))
    entries, pending = _partition(items, spec, store, fresh)
    report.reused = len(entries)
    if dry_run:
        echo(f"dry run ({spec.title}): {len(entries)} classes already done, {len(pending)} to ask; "
             f"messages of the first {min(dry_run, len(pending))} (temperature {temperature}):")
        for item, messages, _ in pending[:dry_run]:
            echo(format_messages(item, messages))
        return report
    if pending:
        client = make_client()
        report.usage = client.usage
        logger.info("%s: %d classes done earlier, asking %d (model %s at %s, concurrency %d)", spec.title,
                    len(entries), len(pending), client.settings.model, client.settings.base_url, concurrency)
        _ask_pending(pending, spec, store, client, temperature, max_reasks, concurrency, entries, report, len(items))
    _write_output(items, entries, spec, output, report, subset)
    return report


_Pending = tuple[StageItem, list[dict], str]  # (item, messages, fingerprint of the messages)


def _partition(
    items: list[StageItem], spec: StageSpec, store: ProgressStore, fresh: bool
) -> tuple[dict[int, dict], list[_Pending]]:
    """`(entries done earlier by class index, classes still to ask)`; a stored answer is re-validated."""
    entries: dict[int, dict] = {}
    pending: list[_Pending] = []
    for item in items:
        messages = spec.build_messages(item)
        fp = messages_fingerprint(messages)
        stored = None if fresh else store.load(item.name, fp)
        if stored is not None:
            try:
                entries[item.index] = spec.validate(stored, item)
                continue
            except SchemaError as e:
                logger.warning("stored answer for class %d %r is invalid (%s); asking again", item.index, item.name, e)
        pending.append((item, messages, fp))
    return entries, pending


def _ask_pending(
    pending: list[_Pending],
    spec: StageSpec,
    store: ProgressStore,
    client: LLMClient,
    temperature: float,
    max_reasks: int,
    concurrency: int,
    entries: dict[int, dict],
    report: StageReport,
    total: int,
) -> None:
    """Ask every pending class in parallel, saving each answer as it arrives; fills `entries` and `report`."""

    def work(job: _Pending) -> dict:
        item, messages, fp = job
        try:
            entry = ask_one(item, messages, spec, client, temperature, max_reasks)
        except LLMFatalError:
            client.stop_event.set()  # here, so that this worker takes no further class either
            raise
        store.save(item.index, item.name, fp, entry, client.settings.model)
        return entry

    report.asked = len(pending)
    answered: set[int] = set()
    try:
        for (item, _, _), entry, exc in run_parallel(pending, work, concurrency, client.stop_event):
            answered.add(item.index)
            if exc is None:
                entries[item.index] = entry
                report.succeeded += 1
                logger.info("[%d/%d] class %d %r saved", len(entries), total, item.index, item.name)
            else:
                _record_failure(item, exc, report, client)
    except BaseException:
        client.stop_event.set()
        raise
    for item, _, _ in pending:
        if item.index not in answered:
            report.failures[item.name] = "not asked (run stopped)"


def _record_failure(item: StageItem, exc: BaseException, report: StageReport, client: LLMClient) -> None:
    """Note a failed class; a fatal error stops the run, an unexpected exception (a bug) is re-raised."""
    if isinstance(exc, LLMFatalError):
        report.failures[item.name] = str(exc)
        if report.fatal is None:
            report.fatal = str(exc)
            client.stop_event.set()  # no new class starts; pending retry waits end
    elif isinstance(exc, (LLMError, SchemaError)):
        report.failures[item.name] = str(exc)
        logger.error("class %d %r failed: %s", item.index, item.name, exc)
    else:
        raise exc


def _write_output(
    items: list[StageItem], entries: dict[int, dict], spec: StageSpec, output: str, report: StageReport,
    subset: bool = False,
) -> None:
    """Write the answered classes to `output` in class-index order, unless that would lose classes the
    file already holds (`_keep_existing`); order the failures by class index."""
    ordered = {item.name: entries[item.index] for item in items if item.index in entries}
    order = {item.name: item.index for item in items}
    report.failures = dict(sorted(report.failures.items(), key=lambda kv: order.get(kv[0], 0)))
    complete = not subset and len(ordered) == len(items)
    report.kept = _keep_existing(output, ordered, complete, len(items))
    if report.kept:
        return
    header = (
        f"# {spec.title} entries for {len(ordered)} of {len(items)} classes, in class-index order; "
        f"keys are the class names. Written by slowfast.text.stages.\n"
    )
    atomic_write_text(output, header + dump_yaml(ordered))
    report.written = len(ordered)
    report.output = output


def _keep_existing(output: str, new: Mapping[str, dict], complete: bool, total: int) -> str:
    """Why `output` must stay as it is ("" when it may be replaced).

    A result replaces the file when it answers the whole class list, or when it holds every class of
    the file and more. So a run that failed (bad key, server down, `--fresh` cut short) or a `--limit`
    trial never shrinks a finished file; the new answers are in `<output>.parts/` either way.
    """
    if not os.path.exists(output):
        return "" if new else "nothing written: no class was answered"
    if new and complete:
        return ""
    old = _existing_classes(output)
    if new and old is not None and set(old) < set(new):
        return ""
    return _kept_message(output, old, len(new), total)


def _existing_classes(output: str) -> Optional[list[str]]:
    """The class names of an existing output file; None when it is not a YAML mapping we can read."""
    try:
        data = load_yaml_file(output)
    except (SchemaError, OSError):
        return None
    return list(data) if isinstance(data, dict) else ([] if data is None else None)


def _kept_message(output: str, old: Optional[list[str]], new: int, total: int) -> str:
    held = "is not a YAML mapping" if old is None else f"{len(old)} classes"
    if not new:
        return f"kept {output} ({held}): no class was answered"
    return (f"kept {output} ({held}): the new result has {new} of {total} classes and does not hold every class "
            f"of the file and more; the answers are saved in {output}.parts/, run again to finish")


def askg_items(class_names: list[str], limit: Optional[int] = None) -> list[StageItem]:
    names = class_names if limit is None else class_names[:limit]
    return [StageItem(i, n) for i, n in enumerate(names)]


def xprompt_items(
    askg: Mapping[str, dict], class_names: Optional[list[str]] = None, limit: Optional[int] = None, source: str = "ASKG"
) -> list[StageItem]:
    """Stage-2 items in class-index order (`class_names`) or the ASKG file's order; missing classes are an error."""
    names = list(askg) if class_names is None else list(class_names)
    if limit is not None:
        names = names[:limit]
    missing = [n for n in names if n not in askg]
    if missing:
        raise SchemaError(
            f"{source} has no entry for {len(missing)} classes of the class list, e.g. {missing[:5]}; "
            "finish stage 1 for them first"
        )
    return [StageItem(i, n, askg[n]) for i, n in enumerate(names)]
