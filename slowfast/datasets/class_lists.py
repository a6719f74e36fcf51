"""The benchmarks' class lists shipped in `label_db/`, and the checks of other class lists against them.

Published zero-shot numbers are only comparable when the classes (and, for the text classifier, their
order) are exactly the benchmark's. `label_db/` holds them as class-index files (`{"0": "name", ...}`):

| name | file | classes |
|---|---|---:|
| k400 | `k400-index2cls.json` | 400 (sorted) |
| k600 | `k600-index2cls.json` | 600 (sorted) |
| ucf101 | `ucf101-index2cls.json` | 101 (official class-id order) |
| hmdb51 | `hmdb51-index2cls.json` | 51 (official order) |
| k600_split{1,2,3} | `k600_split{n}-index2cls.json` | 160 each: the Kinetics-600 zero-shot test splits of ER-ZSAR, sorted |

`tools/prepare_dataset.py` and `tools/zero_shot.py` use these lists by default and check the user's
annotation files against them, so a missing or renamed class stops the run with its name.
"""

from __future__ import annotations

import difflib
import os
from collections.abc import Iterable, Sequence

from slowfast.paths import LABEL_DB
from slowfast.utils.class_index import read_class_names

__all__ = [
    "LABEL_DB",
    "SHIPPED_CLASS_LISTS",
    "shipped_path",
    "shipped_classes",
    "normalize_class_name",
    "class_list_differences",
    "match_labels",
    "with_rename_hints",
]


SHIPPED_CLASS_LISTS = {
    "k400": "k400-index2cls.json",
    "k600": "k600-index2cls.json",
    "ucf101": "ucf101-index2cls.json",
    "hmdb51": "hmdb51-index2cls.json",
    "k600_split1": "k600_split1-index2cls.json",
    "k600_split2": "k600_split2-index2cls.json",
    "k600_split3": "k600_split3-index2cls.json",
}


def shipped_path(name: str) -> str:
    """Path of the shipped class-index file `name` (a key of SHIPPED_CLASS_LISTS)."""
    if name not in SHIPPED_CLASS_LISTS:
        raise KeyError(f"no shipped class list {name!r}; shipped: {', '.join(SHIPPED_CLASS_LISTS)}")
    return os.path.join(LABEL_DB, SHIPPED_CLASS_LISTS[name])


def shipped_classes(name: str) -> list[str]:
    """The class names of the shipped list `name`, in class-index order."""
    return read_class_names(shipped_path(name))


def normalize_class_name(name: str) -> str:
    """The spelling-insensitive key of a class name: lower case, without spaces and '_'.

    Annotation files of the same benchmark differ in exactly these ways ("brush_hair", "Brush Hair",
    "HandStandPushups" for "Handstand Pushups", "Yo Yo" for "Yoyo"); no two classes of a benchmark do.
    """
    return "".join(name.replace("_", " ").lower().split())


def _named(names: Iterable[str], limit: int = 8) -> str:
    names = list(names)
    shown = ", ".join(repr(n) for n in names[:limit])
    return shown + (f" and {len(names) - limit} more" if len(names) > limit else "")


def with_rename_hints(unknown: Sequence[str], missing: Sequence[str]) -> str:
    """'x' (renamed 'y'?) for each unknown name that resembles one of `missing` (the likely renames)."""
    keys = {normalize_class_name(m): m for m in missing}
    parts = []
    for name in unknown:
        close = difflib.get_close_matches(normalize_class_name(name), list(keys), n=1, cutoff=0.6)
        parts.append(f"{name!r}" + (f" (renamed {keys[close[0]]!r}?)" if close else ""))
    return ", ".join(parts[:8]) + (f" and {len(parts) - 8} more" if len(parts) > 8 else "")


def class_list_differences(found: Sequence[str], expected: Sequence[str], found_src: str, expected_src: str,
                           check_order: bool = True) -> str | None:
    """None when `found` is `expected` (names compared with `normalize_class_name`, in order when
    `check_order`); otherwise one message naming the missing, unknown (with likely renames) and
    out-of-order classes."""
    f_keys = [normalize_class_name(n) for n in found]
    e_keys = [normalize_class_name(n) for n in expected]
    if f_keys == e_keys or (not check_order and sorted(f_keys) == sorted(e_keys)):
        return None
    unknown = [n for n, k in zip(found, f_keys) if k not in set(e_keys)]
    missing = [n for n, k in zip(expected, e_keys) if k not in set(f_keys)]
    parts = [f"{found_src} ({len(found)} classes) does not match {expected_src} ({len(expected)} classes)"]
    if missing:
        parts.append(f"missing: {_named(missing)}")
    if unknown:
        parts.append(f"not in {os.path.basename(expected_src)}: {with_rename_hints(unknown, missing)}")
    if not missing and not unknown:
        first = next(i for i, (a, b) in enumerate(zip(f_keys, e_keys)) if a != b)
        parts.append(f"same classes in another order (first difference at index {first}: "
                     f"{found[first]!r} where {expected[first]!r} is expected)")
    return "; ".join(parts)


def match_labels(labels: Iterable[str], reference: Sequence[str], labels_src: str, reference_src: str,
                 allow_missing: bool = False) -> dict[str, int]:
    """{label: class index in `reference`} for every distinct annotation label.

    Raises ValueError naming the labels that are not in `reference` (with the likely renames) and, unless
    `allow_missing`, the reference classes no label refers to.
    """
    index = {normalize_class_name(n): i for i, n in enumerate(reference)}
    distinct = sorted(set(labels))
    out = {label: index[normalize_class_name(label)] for label in distinct if normalize_class_name(label) in index}
    unknown = [label for label in distinct if label not in out]
    used = set(out.values())
    missing = [n for i, n in enumerate(reference) if i not in used]
    if unknown or (missing and not allow_missing):
        parts = [f"the classes of {labels_src} do not match {reference_src}"]
        if unknown:
            parts.append(f"not in {os.path.basename(reference_src)}: {with_rename_hints(unknown, missing)}")
        if missing and not allow_missing:
            parts.append(f"no videos of: {_named(missing)}")
        raise ValueError("; ".join(parts))
    return out
