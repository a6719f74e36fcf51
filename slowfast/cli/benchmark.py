"""Benchmarks: `python tools/benchmark.py {model,data,averaging} [--help]`.

Each subcommand prints a Markdown table; `--append` adds it to BENCHMARKS.md with the command line.
"""

import importlib
import sys

SUBCOMMANDS = {
    "model": "slowfast.benchmarks.model",
    "data": "slowfast.benchmarks.data",
    "averaging": "slowfast.benchmarks.averaging_memory",
}


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help") or argv[0] not in SUBCOMMANDS:
        print("usage: python tools/benchmark.py {" + ",".join(SUBCOMMANDS) + "} [options]  (SUBCOMMAND --help for its options)")
        print(__doc__.strip())
        return 0 if (not argv or argv[0] in ("-h", "--help")) else 2
    module = importlib.import_module(SUBCOMMANDS[argv[0]])
    return int(module.main(argv[1:]) or 0)


if __name__ == "__main__":
    raise SystemExit(main())
