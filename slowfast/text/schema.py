"""Parsing and schema checks for LLM answers (ASKG and xprompt entries) and for the YAML files they form.

The original pasted answers into the output unvalidated, so one malformed or missing entry shifted
every later class (consumers index by order). Here every answer is parsed with `yaml.safe_load`,
checked field by field, and normalised (label = the class name, triples as "<a, b, c>", fields in a
fixed order) before it is stored; the error message is what the LLM is shown when it is re-asked.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, Optional

import yaml

from slowfast.config.yaml_files import RepeatedKeyError, safe_load_unique
from slowfast.errors import UserError
from slowfast.text.llm_instructions import ANSWER_CHARS_PER_TOKEN, ASKG_FIELDS, XPROMPT_FIELDS, XPROMPT_SOURCES

MIN_OBJECTS, MAX_OBJECTS = 5, 10
# A triple that is a whole list item (after "- ", "[" or ","), not already quoted.
_BARE_TRIPLE = re.compile(r"""(^[ \t]*-[ \t]+|[\[,][ \t]*)<([^<>\n"]*)>""", re.M)
_FENCE = re.compile(r"```[A-Za-z0-9_-]*[ \t]*\n(.*?)(?:\n[ \t]*```|\Z)", re.S)


class SchemaError(UserError, ValueError):
    """An answer or YAML file does not follow the ASKG / xprompt schema; the message says where."""


def strip_code_fences(text: str) -> str:
    """The body of the first ``` fenced block when there is one, else the text itself."""
    m = _FENCE.search(text)
    return (m.group(1) if m else text).strip()


def quote_bare_triples(body: str) -> str:
    """Quote unquoted `<a, b, c>` list items: in a flow list YAML would split them at the commas, and
    parts such as `on` or `no` would turn into booleans."""
    return _BARE_TRIPLE.sub(lambda m: f'{m.group(1)}"<{m.group(2)}>"', body)


def check_answer_length(text: str, max_tokens: int) -> None:
    """Refuse an answer far longer than `max_tokens` tokens can be (see ANSWER_CHARS_PER_TOKEN)."""
    limit = max_tokens * ANSWER_CHARS_PER_TOKEN
    if len(text) > limit:
        raise SchemaError(
            f"the answer has {len(text)} characters, more than the {limit} allowed ({ANSWER_CHARS_PER_TOKEN} per "
            f"token of max_tokens {max_tokens}); answer with the YAML entry only"
        )


def parse_yaml_answer(text: str) -> Any:
    body = strip_code_fences(text)
    try:
        return yaml.safe_load(quote_bare_triples(body))
    except yaml.YAMLError:
        pass
    try:
        return yaml.safe_load(body)
    except yaml.YAMLError as e:
        raise SchemaError(f"the answer is not valid YAML: {' '.join(str(e).split())}") from None


def _entry_of(obj: Any, required: tuple[str, ...]) -> Mapping:
    """The entry under the single root key, or the top level itself when it already holds the fields."""
    if not isinstance(obj, Mapping):
        raise SchemaError(f"the answer must be a YAML mapping, got {type(obj).__name__}")
    if any(k in obj for k in required):
        return obj
    if len(obj) == 1:
        (value,) = obj.values()
        if isinstance(value, Mapping):
            return value
    raise SchemaError(
        f"the answer must have one root key (the action name) holding the fields {', '.join(required)}; "
        f"got root keys {list(obj)[:5]}"
    )


def _string_list(entry: Mapping, key: str, min_len: int = 1, max_len: Optional[int] = None) -> list[str]:
    if key not in entry:
        raise SchemaError(f"field {key!r} is missing")
    value = entry[key]
    if not isinstance(value, list):
        raise SchemaError(f"field {key!r} must be a list, got {type(value).__name__}")
    out = []
    for i, item in enumerate(value):
        if isinstance(item, (int, float)) and not isinstance(item, bool):
            item = str(item)
        if not isinstance(item, str) or not item.strip():
            raise SchemaError(f"field {key!r} item {i + 1} must be a non-empty string, got {item!r}")
        out.append(" ".join(item.split()))
    if len(out) < min_len or (max_len is not None and len(out) > max_len):
        bound = f"{min_len} to {max_len}" if max_len is not None else f"at least {min_len}"
        raise SchemaError(f"field {key!r} must have {bound} items, got {len(out)}")
    return out


def normalize_triple(item: Any, key: str, i: int) -> str:
    """'<a, b, c>' with exactly three non-empty parts (a 3-item list is accepted and converted)."""
    if isinstance(item, list):
        parts = [str(p).strip() for p in item]
    elif isinstance(item, str):
        s = item.strip()
        if not (s.startswith("<") and s.endswith(">")):
            raise SchemaError(
                f"field {key!r} item {i + 1} must be a triple in angle brackets '<a, b, c>', got {item!r}"
            )
        parts = [p.strip() for p in s[1:-1].split(",")]
    else:
        raise SchemaError(f"field {key!r} item {i + 1} must be a triple '<a, b, c>', got {item!r}")
    if len(parts) != 3 or not all(parts):
        raise SchemaError(
            f"field {key!r} item {i + 1} must have exactly three non-empty parts separated by commas, got {item!r}"
        )
    return "<" + ", ".join(" ".join(p.split()) for p in parts) + ">"


def _triples(entry: Mapping, key: str) -> list[str]:
    if key not in entry:
        raise SchemaError(f"field {key!r} is missing")
    value = entry[key]
    if not isinstance(value, list) or not value:
        raise SchemaError(f"field {key!r} must be a non-empty list of triples '<a, b, c>'")
    return [normalize_triple(item, key, i) for i, item in enumerate(value)]



def validate_askg(obj: Any, class_name: str) -> dict:
    """A normalised ASKG entry (fields in schema order, label = class_name) or SchemaError."""
    entry = _entry_of(obj, ASKG_FIELDS)
    return {
        "label": class_name,
        "obj_en_li": _string_list(entry, "obj_en_li", MIN_OBJECTS, MAX_OBJECTS),
        "obj_rel_triples": _triples(entry, "obj_rel_triples"),
        "act_obj_triples": _triples(entry, "act_obj_triples"),
        "sub_act_en_li": _string_list(entry, "sub_act_en_li", 1),
        "act_rel_triples": _triples(entry, "act_rel_triples"),
    }


def _clean_clause(clause: str, label: str) -> str:
    """Drop a repeated 'This is an example of <label>,' lead-in and a final period."""
    c = clause.strip()
    lead = re.match(r"(?i)^this is an example of\s+" + re.escape(label) + r"\s*,\s*", c)
    if lead:
        c = c[lead.end():]
    return c.rstrip(" .")


def validate_xprompt(
    obj: Any, class_name: str, askg_entry: Optional[Mapping] = None, allow_empty: bool = False
) -> dict:
    """A normalised xprompt entry; with `askg_entry`, each list must have one clause per source triple.

    `allow_empty` accepts a missing, null or empty clause list (files written by the original scripts
    have some); at least one of the three lists must still be present, so that another kind of file is
    not read as an xprompt file with no clauses.
    """
    entry = _entry_of(obj, XPROMPT_FIELDS)
    if allow_empty and not any(k in entry for k in XPROMPT_FIELDS[1:]):
        raise SchemaError(f"none of the fields {', '.join(XPROMPT_FIELDS[1:])} is present")
    out: dict = {"label": class_name}
    for key in XPROMPT_FIELDS[1:]:
        if allow_empty and entry.get(key) is None:
            out[key] = []
            continue
        clauses = [_clean_clause(c, class_name) for c in _string_list(entry, key, 0 if allow_empty else 1)]
        if any(not c for c in clauses):
            raise SchemaError(f"field {key!r} has an empty clause")
        if askg_entry is not None:
            want = len(askg_entry[XPROMPT_SOURCES[key]])
            if len(clauses) != want:
                raise SchemaError(
                    f"field {key!r} must have exactly one clause per {XPROMPT_SOURCES[key]} triple: "
                    f"{want} expected, got {len(clauses)}"
                )
        out[key] = clauses
    return out


def load_yaml_file(path: str) -> Any:
    """`yaml.safe_load` of a file, refusing a repeated key (two runs appended to one file); errors name the
    file and line."""
    try:
        with open(path, encoding="utf-8") as f:
            return safe_load_unique(f)
    except RepeatedKeyError as e:
        raise SchemaError(f"{path}: {e}") from None
    except yaml.YAMLError as e:
        raise SchemaError(f"{path}: not valid YAML: {' '.join(str(e).split())}") from None
    except UnicodeDecodeError as e:
        raise SchemaError(f"{path}: not UTF-8 text (byte {e.start}): is it the right file?") from None


def load_entries(path: str, kind: str, allow_empty: bool = False) -> dict[str, dict]:
    """Validated entries of an ASKG (`kind='askg'`) or xprompt (`kind='xprompt'`) YAML, in file order.

    `allow_empty` (xprompt only) accepts empty clause lists, see `validate_xprompt`.
    """
    data = load_yaml_file(path)
    if not isinstance(data, Mapping) or not data:
        raise SchemaError(f"{path}: expected a mapping of class name -> {kind} entry")
    out: dict[str, dict] = {}
    for name, entry in data.items():
        if not isinstance(entry, Mapping):
            raise SchemaError(f"{path}: class {name!r}: expected a mapping of fields, got {type(entry).__name__}")
        try:
            if kind == "askg":
                out[str(name)] = validate_askg(dict(entry), str(name))
            else:
                out[str(name)] = validate_xprompt(dict(entry), str(name), allow_empty=allow_empty)
        except SchemaError as e:
            raise SchemaError(f"{path}: class {name!r}: {e}") from None
    return out
