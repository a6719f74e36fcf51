"""Main entry: `python tools/run_net.py --cfg A.yaml [--cfg B.yaml] [--opts KEY VALUE ...]`.

Trains when TRAIN.ENABLE, then tests when TEST.ENABLE, on the CPU (NUM_GPUS 0), on N local processes
(NUM_GPUS N, or NUM_CPU_PROCS N on the CPU), under torchrun, or on several machines with
NUM_SHARDS / SHARD_ID (--num_shards / --shard_id) and --init_method tcp://host:port. `tools/submit.py` runs
the same job on a Slurm cluster (or locally) through submitit.
A configuration error, or missing weights or data, is printed as one line and the exit code is non-zero.
Ctrl-C stops the run with one line saying what was kept and how to go on, and exit status 130.
"""

import signal
from typing import Any, Optional

from slowfast.errors import Interrupted, UserError, cli_main
from slowfast.utils.interrupts import CtrlC, install_ctrl_c

# The run the no-config message suggests: the embedded demo's (its data is what `make demo` writes).
EXAMPLE = ("`stdd-run --cfg configs/Synthetic/STDD_custom_8x2.yaml` (the demo's, on the data `make demo` writes); "
           "docs/getting_started.md shows a run on your own data")


def interrupted_line(cfg: Optional[Any]) -> str:
    """What Ctrl-C leaves behind, on one line: the newest complete checkpoint and how to resume from it."""
    if cfg is None:
        return "interrupted before the run started; nothing was written"
    if not cfg.TRAIN.ENABLE:
        return "interrupted: the test was stopped before writing its results; rerun the same command to test again"
    from slowfast.utils.checkpoint_files import list_checkpoints

    found = list_checkpoints(cfg.OUTPUT_DIR)
    resume = "rerun the same command" if cfg.TRAIN.AUTO_RESUME else "rerun with --opts TRAIN.AUTO_RESUME True"
    if not found:
        return f"interrupted before the first checkpoint was saved in {cfg.OUTPUT_DIR}: a rerun starts over"
    return f"interrupted: the last complete checkpoint is {found[-1]}; {resume} to resume from it"


def _run(argv: Any, ctrl_c: CtrlC, loaded: dict) -> None:
    from slowfast.config.parser import load_config, parse_args

    args = parse_args(argv)
    if not args.cfg_files and not args.opts:
        raise UserError(f"no config given: name one with --cfg, e.g. {EXAMPLE}")
    cfg = loaded["cfg"] = load_config(args)
    if not (cfg.TRAIN.ENABLE or cfg.TEST.ENABLE):
        raise UserError("nothing to do: TRAIN.ENABLE and TEST.ENABLE are both False")
    from slowfast.engine.common import preflight
    from slowfast.engine.job import run_job

    if ctrl_c.pressed:  # swallowed by a library while the modules above were imported
        raise KeyboardInterrupt
    preflight(cfg)
    run_job(cfg, args.init_method)


@cli_main("interrupted")
def main(argv=None) -> int:
    # Ctrl-C is reported as an interrupt whatever error it caused on its way (slowfast.utils.interrupts).
    ctrl_c, previous = install_ctrl_c()
    loaded: dict = {"cfg": None}
    try:
        _run(argv, ctrl_c, loaded)
    except BaseException as e:
        if not ctrl_c.pressed or isinstance(e, SystemExit):
            raise
        raise Interrupted(interrupted_line(loaded["cfg"])) from None
    finally:
        signal.signal(signal.SIGINT, previous)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
