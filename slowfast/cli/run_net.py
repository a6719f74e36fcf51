"""Main entry: `python tools/run_net.py --cfg A.yaml [--cfg B.yaml] [--opts KEY VALUE ...]`.

Trains when TRAIN.ENABLE, then tests when TEST.ENABLE, on the CPU (NUM_GPUS 0), on N local processes
(NUM_GPUS N, or NUM_CPU_PROCS N on the CPU), under torchrun, or on several machines with
NUM_SHARDS / SHARD_ID (--num_shards / --shard_id) and --init_method tcp://host:port. `tools/submit.py` runs
the same job on a Slurm cluster (or locally) through submitit.
A configuration error, or missing weights or data, is printed as one line and the exit code is non-zero.
"""

from slowfast.errors import UserError, cli_main


@cli_main("interrupted (resume with TRAIN.AUTO_RESUME True)")
def main(argv=None) -> int:
    from slowfast.config.parser import load_config, parse_args

    args = parse_args(argv)
    cfg = load_config(args)
    if not (cfg.TRAIN.ENABLE or cfg.TEST.ENABLE):
        raise UserError("nothing to do: TRAIN.ENABLE and TEST.ENABLE are both False")
    from slowfast.engine.common import preflight
    from slowfast.engine.job import run_job

    preflight(cfg)
    run_job(cfg, args.init_method)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
