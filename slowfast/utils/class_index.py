"""The class-index file `{"0": "class name", "1": ...}`: the one reader and the one writer the project uses."""

from __future__ import annotations

import json
import os
from collections.abc import Sequence

from slowfast.errors import UserError
from slowfast.utils.atomic import atomic_write_text


class ClassIndexError(UserError, ValueError):
    """A missing or malformed class-index file; the message names the file."""


def _no_duplicates(pairs: list[tuple[str, object]], path: str) -> dict:
    """A JSON object as a dict; a key given twice is refused (json keeps the last one silently, which
    would drop a class and shift none of the others)."""
    out: dict = {}
    for key, value in pairs:
        if key in out:
            raise ClassIndexError(f"class-index file {path}: key {key!r} appears twice ({out[key]!r} and {value!r})")
        out[key] = value
    return out


def read_class_names(path: str) -> list[str]:
    """Class names in index order, verbatim. Keys must be the integers 0..K-1 and names distinct and non-empty."""
    if not path:
        raise ClassIndexError("no class-index file given (DATA.INDEX_LABEL_MAPPING_FILE is empty)")
    if not os.path.isfile(path):
        raise ClassIndexError(f"class-index file not found: {path} (DATA.INDEX_LABEL_MAPPING_FILE)")
    try:
        with open(path, encoding="utf-8-sig") as f:  # -sig: a byte-order mark (Windows editors) is not a key
            data = json.load(f, object_pairs_hook=lambda pairs: _no_duplicates(pairs, path))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ClassIndexError(f"class-index file {path} is not valid JSON: {e}") from None
    if not isinstance(data, dict) or not data:
        raise ClassIndexError(f"class-index file {path}: expected a non-empty mapping {{\"0\": \"name\", ...}}")
    try:
        index = {int(k): v for k, v in data.items()}
    except ValueError:
        bad = next(k for k in data if not str(k).lstrip("-").isdigit())
        raise ClassIndexError(f"class-index file {path}: key {bad!r} is not an integer class index") from None
    missing = sorted(set(range(len(index))) - set(index))
    if missing:
        raise ClassIndexError(f"class-index file {path}: keys must be 0..{len(index) - 1} without gaps; missing {missing[:5]}")
    names = [index[i] for i in range(len(index))]
    seen: dict[str, int] = {}
    for i, name in enumerate(names):
        if not isinstance(name, str) or not name.strip():
            raise ClassIndexError(f"class-index file {path}: class {i} has no name (got {name!r})")
        if name in seen:
            raise ClassIndexError(f"class-index file {path}: classes {seen[name]} and {i} have the same name {name!r}")
        seen[name] = i
    return names


def write_class_names(path: str, names: Sequence[str]) -> None:
    """Write `names` (index order) as a class-index file that `read_class_names` reads back, atomically."""
    atomic_write_text(path, json.dumps({str(i): n for i, n in enumerate(names)}, indent=1) + "\n")
