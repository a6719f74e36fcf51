"""Reading docs/differences.md's tables: the one list of the switches that restore the original's behaviour.

A row's last cell ("switch to restore") names config keys as `KEY VALUE`, "(parity)" right after the ones
the parity configs set, command-line flags as `--flag`, and the files that read them in backticks.
"""

import os
import re

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PAGE = os.path.join(ROOT, "docs", "differences.md")
CONFIG_SWITCH = re.compile(r"^([A-Z][A-Z0-9_]*(?:\.[A-Z0-9_]+)+) (\S+)$")


def switch_cells() -> list[str]:
    """The last cell of every row of the page's difference tables (header and rule rows left out)."""
    cells = []
    for line in open(PAGE, encoding="utf-8").read().splitlines():
        if line.startswith("|") and not line.startswith("|---") and "switch to restore" not in line:
            cells.append([c.strip() for c in line.strip().strip("|").split(" | ")][-1])
    return cells


def named_switches(cell: str) -> tuple[list[tuple[str, str, bool]], list[str], list[str]]:
    """(config switches as (key, value, parity), flags, source files) named in one cell."""
    ticked = re.findall(r"`([^`]+)`", cell)
    config = []
    for m in re.finditer(r"`([^`]+)`( \(parity)?", cell):
        found = CONFIG_SWITCH.match(m.group(1))
        if found:
            config.append((found.group(1), found.group(2), bool(m.group(2))))
    flags = [f for t in ticked for f in re.findall(r"(?<![\w-])(--[a-z][a-z-]*)", t)]
    files = [t for t in ticked if t.startswith("slowfast/") and t.endswith(".py")]
    return config, flags, files


def parity_switches() -> dict[str, str]:
    """KEY -> VALUE (as written) of every switch marked "(parity)"."""
    out: dict[str, str] = {}
    for cell in switch_cells():
        for key, value, parity in named_switches(cell)[0]:
            if parity:
                assert out.get(key, value) == value, f"{key} marked (parity) with two values"
                out[key] = value
    return out
