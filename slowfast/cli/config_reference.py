"""Write the configuration reference (every key, its default and its comment) as Markdown.

`python tools/config_reference.py --update` rewrites `docs/config_reference.md` from the comments in
`slowfast/config/defaults.py`; without `--update` the page is printed. A test fails when the page is out
of date, so the reference never drifts from the defaults.
"""

from __future__ import annotations

import argparse
import os
import re

from slowfast.config import all_keys, get_cfg
from slowfast.config.compatibility import ACCEPTED_FOR_COMPATIBILITY
from slowfast.errors import cli_main
from slowfast.paths import REPO_ROOT as ROOT
from slowfast.utils.atomic import atomic_write_text

DEFAULTS = os.path.join(ROOT, "slowfast", "config", "defaults.py")
REFERENCE = os.path.join(ROOT, "docs", "config_reference.md")
HEADER = """# Configuration reference

Every key of the configuration tree, its default and what it does. This page is generated from the
comments in `slowfast/config/defaults.py` by `python tools/config_reference.py --update`; a test fails
when it is out of date, so edit the comments there, not this page.

Keys are set in YAML files (`--cfg`, repeatable, later files win) and on the command line
(`--opts KEY VALUE ...`, applied last). Lists are written `"[1,2]"` (quote them in a shell).

A key either changes what a run does or does not exist, with one exception: the keys marked *accepted for
compatibility* are kept so that the original code's configs and command lines still parse, and change
nothing (a run's log names each one set to a value other than its default).
"""


def key_comments(path: str = DEFAULTS) -> dict[str, str]:
    """Each key's documentation: the `#` lines right above its assignment, or its end-of-line comment."""
    lines = open(path, encoding="utf-8").read().splitlines()
    docs: dict[str, str] = {}
    for i, line in enumerate(lines):
        m = re.match(r"_C\.([A-Z0-9_.]+)\s*=", line)
        if not m:
            continue
        comment = []
        j = i - 1
        while j >= 0 and lines[j].lstrip().startswith("#") and not lines[j].lstrip().startswith("# ---"):
            comment.insert(0, lines[j].lstrip()[1:].strip())
            j -= 1
        if not comment and "#" in line:
            comment = [line.split("#", 1)[1].strip()]
        docs[m.group(1)] = " ".join(comment)
    return docs


def reference_markdown() -> str:
    """The table: one row per key of `get_cfg()`, in tree order."""
    cfg = get_cfg()
    docs = key_comments()
    rows = ["| key | default | meaning |", "|---|---|---|"]
    for key in all_keys(cfg):
        value = cfg
        for part in key.split("."):
            value = value[part]
        shown = repr(value).replace("|", "\\|")
        doc = docs.get(key, "").replace("|", "\\|")
        if key in ACCEPTED_FOR_COMPATIBILITY:
            doc = f"*Accepted for compatibility; changes nothing.* {doc}"
        rows.append(f"| `{key}` | `{shown}` | {doc} |")
    return "\n".join(rows)


def reference_document() -> str:
    """The whole generated page: the header, then the table."""
    return f"{HEADER}\n{reference_markdown()}\n"


def update_reference(path: str = REFERENCE) -> bool:
    """Rewrite the reference page when it differs; True when it changed."""
    new = reference_document()
    old = open(path, encoding="utf-8").read() if os.path.exists(path) else None
    if new != old:
        atomic_write_text(path, new)
    return new != old


@cli_main()
def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--update", action="store_true", help=f"Rewrite {os.path.relpath(REFERENCE, ROOT)}.")
    args = parser.parse_args(argv)
    if args.update:
        print(f"{os.path.relpath(REFERENCE, ROOT)} " + ("updated" if update_reference() else "already current"))
    else:
        print(reference_document(), end="")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
