"""Benchmarks: `stdd-benchmark {model,data,averaging} [--help]` (or `python tools/benchmark.py ...`).

Each subcommand prints a Markdown table; `--append` adds it to BENCHMARKS.md with the command line.
"""

import importlib
import os
import sys

from slowfast.errors import cli_main

SUBCOMMANDS = {
    "model": "slowfast.benchmarks.model",
    "data": "slowfast.benchmarks.data",
    "averaging": "slowfast.benchmarks.averaging_memory",
}


def command_name() -> str:
    """The command as the user typed it (`stdd-benchmark`, or `benchmark.py` for tools/benchmark.py): the
    subcommands' usage lines start with it, as argparse's do."""
    return os.path.basename(sys.argv[0]) or "stdd-benchmark"


@cli_main("interrupted")
def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help") or argv[0] not in SUBCOMMANDS:
        print(f"usage: {command_name()} {{" + ",".join(SUBCOMMANDS) + "} [options]  (SUBCOMMAND --help for its options)")
        print(__doc__.strip())
        return 0 if (not argv or argv[0] in ("-h", "--help")) else 2
    module = importlib.import_module(SUBCOMMANDS[argv[0]])
    return int(module.main(argv[1:]) or 0)


if __name__ == "__main__":
    raise SystemExit(main())
