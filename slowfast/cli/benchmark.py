"""`stdd-benchmark` (or `python tools/benchmark.py`): {model,data,averaging}, each printing a Markdown table.

    stdd-benchmark model --device cuda --arch vitb16 --batch-sizes 8 32
    stdd-benchmark data --workers 1 8
    stdd-benchmark averaging --num-checkpoints 20 --size-mb 50

`--append` adds the table to BENCHMARKS.md with the command line. The arguments are parsed here, before the
benchmark's module (and torch) is imported, so `--help` and a mistyped flag answer at once.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Callable, Sequence
from typing import Optional

from slowfast.benchmarks.options import averaging_parser, command_name, data_parser, model_parser
from slowfast.errors import cli_main

SUBCOMMANDS: dict[str, tuple[Callable[[], argparse.ArgumentParser], str]] = {
    "model": (model_parser, "slowfast.benchmarks.model"),
    "data": (data_parser, "slowfast.benchmarks.data"),
    "averaging": (averaging_parser, "slowfast.benchmarks.averaging_memory"),
}


@cli_main("interrupted: no table was written")
def main(argv: Optional[Sequence[str]] = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help") or argv[0] not in SUBCOMMANDS:
        print(f"usage: {command_name()} {{{','.join(SUBCOMMANDS)}}} [options]  (SUBCOMMAND --help for its options)")
        print(__doc__.strip())
        return 0 if (not argv or argv[0] in ("-h", "--help")) else 2
    build_parser, module_name = SUBCOMMANDS[argv[0]]
    args = build_parser().parse_args(argv[1:])
    module = importlib.import_module(module_name)
    return int(module.run(args, argv[1:]) or 0)
