"""Print this machine's environment for a bug report, or compare the environments of two runs.

    stdd-env                               # the report: commit, Python, CPU, torch/CUDA/cuDNN/NCCL, GPUs, packages
    stdd-env --json                        # the same as JSON (the format of a run's env.json)
    stdd-env --diff A/env.json B/env.json  # the fields that differ between two runs (a run folder works too)

`python -m slowfast.utils.env` runs the same command. Every run writes the report to OUTPUT_DIR/env.txt and
OUTPUT_DIR/env.json; only the environment variables that change results are recorded, never secrets.
"""

from __future__ import annotations

import argparse
import json
import sys

from slowfast.errors import cli_main


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="stdd-env", description=__doc__.split("\n\n")[0], epilog=__doc__.split("\n\n", 1)[1],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    g = p.add_mutually_exclusive_group()
    g.add_argument("--json", action="store_true", help="Print the report as JSON instead of text.")
    g.add_argument("--diff", nargs=2, metavar=("A", "B"),
                   help="Two env.json files (or run folders holding one): print the fields that differ.")
    return p


@cli_main()
def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from slowfast.utils import env

    if args.diff:
        a, b = (env.read_env(path) for path in args.diff)
        sys.stdout.write(env.format_differences(env.env_differences(a, b), *args.diff))
        return 0
    info = env.collect_env()
    sys.stdout.write(json.dumps(info, indent=2) + "\n" if args.json else env.format_env(info))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
