"""Reading an extended-prompt (xprompt) YAML for the feature builder and matching its entries to the class list.

Files written by our stage 2 have exactly the class names as keys. Files written by the original
scripts (or by hand) are accepted too, with these rules, applied in order:

1. a key equal to the class name;
2. a key that differs from the class name only in case, spaces or underscores ("hand stand pushups"
   for "Handstand Pushups", "yo yo" for "Yoyo"), when exactly one key and one class share that form;
3. a key that is another name of the class in the shipped alias table `label_db/prompt_aliases.yml`
   ("falling to the floor" for HMDB51's "fall floor"), compared as in rule 2;
4. only with `by_order` (the CLI's `--match-by-order`): the classes still unmatched, in class-index
   order, paired with the entries still unmatched, in file order; the two counts must be equal.

Any class left without an entry is an error naming it, never a silent shift of rows. Clause lists that
are empty are accepted: the class then has only its bare class-name prompt for that kind of clause.
Every rule that fired is logged once and returned in a `MatchReport`, which the feature file records.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field

from slowfast.text.schema import SchemaError, load_entries

logger = logging.getLogger(__name__)

# The shipped alias table (in label_db/): other names of classes in prompt files.
ALIASES_FILE = "prompt_aliases.yml"
# Clause fields each mode reads; `base` reads none.
MODE_FIELDS = {"xmix": ("xprompt_oo", "xprompt_ao", "xprompt_aa"), "xoo": ("xprompt_oo",),
               "xao": ("xprompt_ao",), "xaa": ("xprompt_aa",), "base": ()}


@dataclass
class MatchReport:
    """What matching a prompt file to the class list did, for the user and for the feature file's metadata."""

    exact: int = 0
    loose: list[tuple[str, str]] = field(default_factory=list)  # (class, key) equal up to case and spacing
    aliased: list[tuple[str, str]] = field(default_factory=list)  # (class, key) from the alias table
    by_order: list[tuple[str, str]] = field(default_factory=list)  # (class, key) paired by position
    empty: dict[str, list[str]] = field(default_factory=dict)  # class -> clause fields of the mode with no clause
    ignored: list[str] = field(default_factory=list)  # keys no class uses

    def summary(self) -> str:
        return (f"prompt file: {self.exact} classes matched by name, {len(self.loose)} ignoring case and spacing, "
                f"{len(self.aliased)} by another name, {len(self.by_order)} by order; "
                f"{len(self.empty)} with an empty clause list; "
                f"{len(self.ignored)} entries not in the class list")

    def as_metadata(self) -> dict:
        return asdict(self)


def loose_key(name: str) -> str:
    """The form two spellings of a class name share when they differ only in case, spaces or underscores."""
    return re.sub(r"[\s_]+", "", name).casefold()


def _match_loose(unmatched: list[str], free_keys: list[str]) -> list[tuple[str, str]]:
    """(class, key) pairs whose loose forms are equal and unique on both sides."""
    classes_by_form: dict[str, list[str]] = {}
    keys_by_form: dict[str, list[str]] = {}
    for name in unmatched:
        classes_by_form.setdefault(loose_key(name), []).append(name)
    for key in free_keys:
        keys_by_form.setdefault(loose_key(key), []).append(key)
    pairs = []
    for form, names in classes_by_form.items():
        keys = keys_by_form.get(form, [])
        if len(names) == 1 and len(keys) == 1:
            pairs.append((names[0], keys[0]))
        elif names and keys:
            logger.warning("classes %s and entries %s are spelled alike; none of them is matched by spelling",
                           names, keys)
    return pairs


def load_aliases(path: str | None = None) -> dict[str, list[str]]:
    """Class name -> other names a prompt file may list it under (default: `label_db/prompt_aliases.yml`)."""
    import yaml

    from slowfast.paths import LABEL_DB

    path = path or os.path.join(LABEL_DB, ALIASES_FILE)
    with open(path, encoding="utf-8") as f:
        data = yaml.safe_load(f) or {}
    if not isinstance(data, dict) or not all(isinstance(v, list) and all(isinstance(n, str) for n in v)
                                             for v in data.values()):
        raise SchemaError(f"{path}: expected 'class name: [other name, ...]' lines")
    return {str(k): list(v) for k, v in data.items()}


def _match_aliases(unmatched: list[str], free_keys: list[str], aliases: dict[str, list[str]]) -> list[tuple[str, str]]:
    """(class, key) where the key is, up to case and spacing, the one free key naming one of the class's aliases."""
    by_form: dict[str, list[str]] = {}
    for key in free_keys:
        by_form.setdefault(loose_key(key), []).append(key)
    by_class = {loose_key(c): names for c, names in aliases.items()}
    pairs = []
    for name in unmatched:
        keys = [k for alias in by_class.get(loose_key(name), []) for k in by_form.get(loose_key(alias), [])]
        if len(keys) == 1:
            pairs.append((name, keys[0]))
    return pairs


def _match_by_order(path: str, unmatched: list[str], free_keys: list[str]) -> list[tuple[str, str]]:
    if len(unmatched) != len(free_keys):
        raise SchemaError(
            f"{path}: --match-by-order needs as many unmatched entries as unmatched classes, got "
            f"{len(free_keys)} entries {free_keys[:5]} for {len(unmatched)} classes {unmatched[:5]}"
        )
    return list(zip(unmatched, free_keys))


def _empty_fields(entries: dict[str, dict], mode: str) -> dict[str, list[str]]:
    return {name: empty for name, entry in entries.items()
            if (empty := [f for f in MODE_FIELDS[mode] if not entry.get(f)])}


def _log(path: str, report: MatchReport) -> None:
    """One warning per rule that fired, naming every class concerned."""
    if report.loose:
        logger.warning("%s: %d classes matched to a key differing only in case or spacing: %s", path,
                       len(report.loose), "; ".join(f"{c!r} <- {k!r}" for c, k in report.loose))
    if report.aliased:
        logger.info("%s: %d classes matched under another name (%s): %s", path, len(report.aliased), ALIASES_FILE,
                    "; ".join(f"{c!r} <- {k!r}" for c, k in report.aliased))
    if report.by_order:
        logger.warning("%s: %d classes matched by order (--match-by-order), check each pair: %s", path,
                       len(report.by_order), "; ".join(f"{c!r} <- {k!r}" for c, k in report.by_order))
    if report.empty:
        logger.warning("%s: %d classes have an empty clause list and use only their bare class-name prompt for "
                       "it: %s", path, len(report.empty),
                       "; ".join(f"{c!r} ({', '.join(f)})" for c, f in report.empty.items()))
    if report.ignored:
        logger.info("%s: %d entries are not in the class list and are ignored", path, len(report.ignored))


def match_xprompts(
    path: str, class_names: Sequence[str], mode: str, by_order: bool = False
) -> tuple[dict[str, dict], MatchReport]:
    """`(entries keyed by our class names, report)`; `base` mode needs no file and returns `({}, report)`."""
    report = MatchReport()
    if mode == "base" and not path:
        return {}, report
    entries = load_entries(path, "xprompt", allow_empty=True)
    chosen = {name: name for name in class_names if name in entries}
    report.exact = len(chosen)

    def free() -> list[str]:
        used = set(chosen.values())
        return [k for k in entries if k not in used]

    report.loose = _match_loose([n for n in class_names if n not in chosen], free())
    chosen.update(report.loose)
    report.aliased = _match_aliases([n for n in class_names if n not in chosen], free(), load_aliases())
    chosen.update(report.aliased)
    unmatched = [n for n in class_names if n not in chosen]
    if unmatched and by_order:
        report.by_order = _match_by_order(path, unmatched, free())
        chosen.update(report.by_order)
        unmatched = []
    if unmatched:
        hint = (f"; entries no class matched: {free()[:5]} (if they are these classes in this order, pass "
                "--match-by-order)") if free() else ""
        raise SchemaError(
            f"{path} has no entry for {len(unmatched)} of {len(class_names)} classes, e.g. {unmatched[:5]}"
            f"{hint}; run stage 2 (stdd-xprompt) for them"
        )
    report.ignored = free()
    out = {name: entries[chosen[name]] for name in class_names}
    report.empty = _empty_fields(out, mode)
    _log(path, report)
    return out, report
