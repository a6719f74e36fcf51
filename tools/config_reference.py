#!/usr/bin/env python
"""Print the configuration reference (every key, its default and its comment) as Markdown.

`python tools/config_reference.py --update-readme` rewrites the README section between the markers
`<!-- config-reference:start -->` and `<!-- config-reference:end -->`.
"""

from __future__ import annotations

import argparse
import os
import re
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from slowfast.config import all_keys, get_cfg  # noqa: E402

DEFAULTS = os.path.join(ROOT, "slowfast", "config", "defaults.py")
README = os.path.join(ROOT, "README.md")
START, END = "<!-- config-reference:start -->", "<!-- config-reference:end -->"


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
    cfg = get_cfg()
    docs = key_comments()
    rows = ["| key | default | meaning |", "|---|---|---|"]
    for key in all_keys(cfg):
        value = cfg
        for part in key.split("."):
            value = value[part]
        shown = repr(value).replace("|", "\\|")
        doc = docs.get(key, "").replace("|", "\\|")
        rows.append(f"| `{key}` | `{shown}` | {doc} |")
    return "\n".join(rows)


def update_readme(path: str = README) -> bool:
    """Rewrite the README's reference section; True when it changed."""
    text = open(path, encoding="utf-8").read()
    if START not in text or END not in text:
        raise SystemExit(f"{path} has no {START} ... {END} markers")
    head, rest = text.split(START, 1)
    _, tail = rest.split(END, 1)
    new = f"{head}{START}\n{reference_markdown()}\n{END}{tail}"
    if new != text:
        with open(path, "w", encoding="utf-8") as f:
            f.write(new)
    return new != text


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--update-readme", action="store_true", help="Rewrite the README's reference section.")
    args = parser.parse_args(argv)
    if args.update_readme:
        print("README updated" if update_readme() else "README already current")
    else:
        print(reference_markdown())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
