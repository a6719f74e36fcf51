"""Run the `tools/run_net.py` job on a Slurm cluster through submitit, or try it here with real processes.

    python tools/submit.py --nodes 2 --gpus-per-node 4 --partition P --timeout 1440 \
        --cfg configs/Kinetics/STDD_vitb16_8x16_k400.yaml --opts NUM_GPUS 4 OUTPUT_DIR OUT ...
    python tools/submit.py --cluster local --gpus-per-node 0 --tasks-per-node 2 --wait --cfg C.yaml
    python tools/submit.py --dry-run --nodes 2 --gpus-per-node 4 --cfg C.yaml    # print the sbatch script

The same --cfg / --opts as run_net. One task per GPU: each task is one process of the run, reads its rank
from submitit's job environment and joins the process group as run_net's processes do. NUM_GPUS counts
the GPUs of one node (as for run_net): --gpus-per-node defaults to it and may not differ from it. With
--gpus-per-node 0 the job runs on CPUs, --tasks-per-node processes per node (default NUM_CPU_PROCS), gloo.
On preemption or time-out the job requeues itself and resumes from its newest checkpoint
(TRAIN.AUTO_RESUME). Job files and logs go to --job-dir (default OUTPUT_DIR/submitit).
"""

import argparse
import logging
import os
import shlex
import shutil
import socket
from typing import Any, Optional

from slowfast.errors import UserError, cli_main

CLUSTERS = ("slurm", "local", "debug")
DEFAULT_TIMEOUT_MIN = 24 * 60
# Seconds between submitit's preemption signal (USR2) and the end of the job's time: enough to requeue.
SIGNAL_DELAY_S = 90


class ClusterJob:
    """What each task of a submitted job runs: `run_job`, the job of `tools/run_net.py`, as the one process
    that submitit's job environment says this task is (rank, local rank, world size, nodes), joining the
    process group through the same function as run_net's processes. `port` is the rendez-vous port on rank
    0's node; None derives it from the job id (see `slowfast.utils.distributed.cluster_task_place`).

    Preemption and time-out follow submitit's checkpointing protocol: submitit signals every task, calls
    `checkpoint` on rank 0 and requeues the submission it returns. The checkpoints on disk are the job's
    state: the requeued job resumes from the newest complete one (TRAIN.AUTO_RESUME) and trains the
    interrupted epoch again from its start; each epoch's randomness depends only on the seed, the epoch and
    the rank, so the run ends with the checkpoints and weights of an uninterrupted one.
    """

    def __init__(self, cfg, port: Optional[int] = None) -> None:
        self.cfg = cfg
        self.port = port

    def __call__(self) -> dict[str, Any]:
        import submitit

        from slowfast.engine.job import run_job
        from slowfast.utils import distributed as du
        from slowfast.utils.checkpoint_files import list_checkpoints

        env = submitit.JobEnvironment()
        place = du.cluster_task_place(env, self.port)
        cfg = self.cfg.clone()
        cfg.defrost()
        cfg.SHARD_ID = env.node
        # One line per task in its own log: which rank this process is, and its pid (to find or stop it).
        print(f"task of job {env.job_id}: rank {place.rank}/{place.world_size}, node {env.node}, local rank "
              f"{place.local_rank}, pid {os.getpid()}, rendez-vous {place.init_method}", flush=True)
        run_job(cfg, place.init_method, place)
        found = list_checkpoints(cfg.OUTPUT_DIR)
        return {"rank": du.get_rank(), "world_size": du.get_world_size(), "last_checkpoint": found[-1] if found else None}

    def checkpoint(self) -> Any:
        """The submission to requeue: this job again, with TRAIN.AUTO_RESUME on whatever the first run had."""
        from submitit.helpers import DelayedSubmission

        from slowfast.utils.checkpoint_files import list_checkpoints

        cfg = self.cfg.clone()
        cfg.defrost()
        cfg.TRAIN.AUTO_RESUME = True
        found = list_checkpoints(cfg.OUTPUT_DIR)
        logging.getLogger(__name__).warning("preempted or out of time: the job is requeued and resumes from %s",
                                            found[-1] if found else "the start (no checkpoint yet)")
        return DelayedSubmission(ClusterJob(cfg, self.port))


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], epilog=__doc__.split("\n\n", 1)[1],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--cluster", choices=CLUSTERS, default="slurm",
                   help="slurm (default): submit with sbatch; local: the same job on this machine, one subprocess per "
                        "task (CPU and gloo without GPUs); debug: one task in this process, for a debugger.")
    p.add_argument("--dry-run", action="store_true", help="Print the sbatch script submitit would submit, and exit.")
    p.add_argument("--wait", action="store_true", help="Wait for the job to end; exit non-zero if a task failed.")
    p.add_argument("--nodes", type=int, default=None, help="Nodes (sets NUM_SHARDS; default NUM_SHARDS).")
    p.add_argument("--gpus-per-node", type=int, default=None,
                   help="GPUs per node (default NUM_GPUS, which it must equal; 0 = CPU tasks).")
    p.add_argument("--tasks-per-node", type=int, default=None,
                   help="Processes per node: one per GPU (the default); with --gpus-per-node 0 the CPU processes "
                        "(sets NUM_CPU_PROCS; default NUM_CPU_PROCS).")
    p.add_argument("--partition", default=None, help="Slurm partition (default: the cluster's default partition).")
    p.add_argument("--timeout", type=int, default=DEFAULT_TIMEOUT_MIN,
                   help=f"Time limit of one allocation in minutes (default {DEFAULT_TIMEOUT_MIN}); the job requeues "
                        "itself when it runs out.")
    p.add_argument("--account", default=None, help="Slurm account to charge.")
    p.add_argument("--qos", default=None, help="Slurm quality of service.")
    p.add_argument("--constraint", default=None, help="Slurm node constraint (features), e.g. a GPU type.")
    p.add_argument("--mem-per-gpu", type=int, default=None, help="Memory per GPU in GB.")
    p.add_argument("--cpus-per-task", type=int, default=None,
                   help="CPUs per task (default DATA_LOADER.NUM_WORKERS + 1: one per data-loader worker, one for the step).")
    p.add_argument("--comment", default=None, help="Slurm comment attached to the job.")
    p.add_argument("--mail", default=None, help="E-mail address told when the job ends or fails.")
    p.add_argument("--job-dir", default=None, help="Folder of submitit's job files and logs (default OUTPUT_DIR/submitit).")
    p.add_argument("--name", default="stdd", help="Job name (default stdd).")
    p.add_argument("--max-timeouts", type=int, default=10,
                   help="How many times a job that runs out of time is requeued (default 10; preemptions do not count).")
    p.add_argument("--cfg", dest="cfg_files", action="append", default=[],
                   help="YAML config file; repeat to merge several in order (later files win).")
    p.add_argument("--opts", nargs=argparse.REMAINDER, default=[],
                   help="Config overrides KEY VALUE ...; must come last.")
    return p


def resolve_layout(args, cfg) -> tuple[int, int, int]:
    """(nodes, GPUs per node, tasks per node) of the job, written into `cfg` (NUM_SHARDS, NUM_CPU_PROCS) and
    checked against it; UserError naming both numbers when they disagree."""
    from slowfast.config import assert_and_infer_cfg

    gpus = cfg.NUM_GPUS if args.gpus_per_node is None else args.gpus_per_node
    nodes = cfg.NUM_SHARDS if args.nodes is None else args.nodes
    if gpus < 0 or nodes < 1 or (args.tasks_per_node is not None and args.tasks_per_node < 1):
        raise UserError("--nodes and --tasks-per-node must be >= 1 and --gpus-per-node >= 0")
    if gpus != cfg.NUM_GPUS:
        raise UserError(f"--gpus-per-node {gpus} but NUM_GPUS {cfg.NUM_GPUS}: NUM_GPUS counts the GPUs of one node "
                        f"(as for run_net), so the two must be equal; pass --opts NUM_GPUS {gpus} or leave --gpus-per-node out")
    tasks = args.tasks_per_node or (gpus if gpus else cfg.NUM_CPU_PROCS)
    if gpus and tasks != gpus:
        raise UserError(f"--tasks-per-node {tasks} with --gpus-per-node {gpus}: a job runs one task per GPU; "
                        "leave --tasks-per-node out")
    if args.cluster == "local" and nodes != 1:
        raise UserError(f"--cluster local runs on this machine: --nodes {nodes} must be 1")
    if args.cluster == "debug" and nodes * tasks != 1:
        raise UserError(f"--cluster debug runs one task in this process, not {nodes * tasks}: use --tasks-per-node 1 "
                        "(and one GPU), or --cluster local for several processes")
    cfg.NUM_SHARDS, cfg.SHARD_ID = nodes, 0
    if not gpus:
        cfg.NUM_CPU_PROCS = tasks
    assert_and_infer_cfg(cfg)  # the batch sizes must divide by the new number of processes
    return nodes, gpus, tasks


def _tasks_import_this_checkout() -> str:
    """A shell line that makes this checkout importable in the job's tasks wherever the job starts."""
    from slowfast.paths import REPO_ROOT

    return f"export PYTHONPATH={shlex.quote(REPO_ROOT)}${{PYTHONPATH:+:$PYTHONPATH}}"


def slurm_parameters(args, cfg, nodes: int, gpus: int, tasks: int) -> dict:
    """Parameters of submitit's SlurmExecutor (sbatch options): only what was asked for, no site default."""
    params = {"job_name": args.name, "time": args.timeout, "nodes": nodes, "ntasks_per_node": tasks,
              "cpus_per_task": args.cpus_per_task or cfg.DATA_LOADER.NUM_WORKERS + 1,
              "signal_delay_s": SIGNAL_DELAY_S, "setup": [_tasks_import_this_checkout()],
              # submitit requeues with `scontrol requeue`, which needs a requeue-able job on every cluster.
              "additional_parameters": {"requeue": True}}
    if gpus:
        params["gpus_per_node"] = gpus
    for key in ("partition", "account", "qos", "constraint", "comment"):
        if getattr(args, key):
            params[key] = getattr(args, key)
    if args.mem_per_gpu:
        params["mem_per_gpu"] = f"{args.mem_per_gpu}G"
    if args.mail:
        params.update(mail_user=args.mail, mail_type="END,FAIL")
    return params


def sbatch_script(job_dir: str, params: dict) -> str:
    """The sbatch script submitit writes for these parameters, built on any machine (no Slurm needed)."""
    from submitit import SlurmExecutor

    class OfflineSlurmExecutor(SlurmExecutor):
        # submitit refuses to build a Slurm executor where srun is missing; the script needs no Slurm.
        @classmethod
        def affinity(cls) -> int:
            return 1

    executor = OfflineSlurmExecutor(folder=job_dir)
    executor.update_parameters(**params)
    return executor._make_submission_file_text(executor._submitit_command_str, "dry-run")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def make_executor(args, cfg, job_dir: str, layout: tuple[int, int, int]):
    """(submitit executor, rendez-vous port or None) for --cluster: the port of a one-machine job is
    picked here; a Slurm job's tasks derive theirs from the job id."""
    import submitit

    nodes, gpus, tasks = layout
    if args.cluster == "debug":
        return submitit.DebugExecutor(folder=job_dir), _free_port()
    if args.cluster == "local":
        from slowfast.paths import REPO_ROOT

        # The tasks start from this environment: make this checkout importable there.
        paths = os.environ.get("PYTHONPATH", "").split(os.pathsep)
        if REPO_ROOT not in paths:
            os.environ["PYTHONPATH"] = os.pathsep.join([REPO_ROOT, *filter(None, paths)])
        executor = submitit.LocalExecutor(folder=job_dir, max_num_timeout=args.max_timeouts)
        executor.update_parameters(tasks_per_node=tasks, gpus_per_node=gpus, timeout_min=args.timeout,
                                   signal_delay_s=SIGNAL_DELAY_S)
        return executor, _free_port()
    executor = submitit.SlurmExecutor(folder=job_dir, max_num_timeout=args.max_timeouts)
    executor.update_parameters(**slurm_parameters(args, cfg, nodes, gpus, tasks))
    return executor, None


def check_can_submit(args, cfg, job_dir: str) -> None:
    """Everything that would make the submission fail, before anything is written or submitted."""
    from slowfast.utils.atomic import make_writable_dir

    if args.cluster == "slurm" and shutil.which("sbatch") is None:
        raise UserError("no Slurm on this machine (sbatch not found): add --cluster local to run the job here "
                        "with one process per task, or --cluster debug to run it in this process")
    if args.cluster != "slurm":
        from slowfast.utils.distributed import check_devices

        check_devices(cfg)
    make_writable_dir(job_dir, "--job-dir")
    make_writable_dir(cfg.OUTPUT_DIR, "OUTPUT_DIR")


def report_submitted(job, args, layout: tuple[int, int, int]) -> None:
    nodes, gpus, tasks = layout
    where = f"{gpus} GPU{'s' if gpus != 1 else ''} per node" if gpus else "CPU, gloo"
    log = job.task(0).paths.stdout
    print(f"submitted job {job.job_id} ({args.cluster}): {nodes} node{'s' if nodes != 1 else ''} x {tasks} "
          f"task{'s' if tasks != 1 else ''} ({where})")
    print(f"logs: {log} (rank 0; rank r writes {job.job_id}_r_log.out and _log.err in {log.parent})")
    print(f"follow: tail -f {log}")


def _last_line(text: str) -> str:
    """The error of a task's traceback as one line (its last line, without the exception's module path)."""
    lines = [line for line in text.splitlines() if line.strip() and not line.startswith("-----")]
    trace_end = [line for line in lines if not line.startswith(("You can check", "or at paths", "  - "))]
    last = trace_end[-1] if trace_end else text
    name, sep, rest = last.partition(": ")
    return rest if sep and " " not in name else last


def wait_for(job, tasks: int) -> list:
    """Wait until the job ends; the result of every task, or UserError naming the first rank that failed."""

    job.wait()
    subjobs = [job.task(k) for k in range(tasks)]
    missing = [k for k, t in enumerate(subjobs) if not t.paths.result_pickle.exists()]
    if missing:
        raise UserError(f"job {job.job_id} ended without a result from rank {', '.join(map(str, missing))} (killed?); "
                        f"see {subjobs[missing[0]].paths.stderr}; the same command resumes from the newest checkpoint")
    for k, t in enumerate(subjobs):
        failure = t.exception()
        if failure is not None:
            raise UserError(f"job {job.job_id}: rank {k} failed: {_last_line(str(failure))} (log: {t.paths.stderr})")
    return [t.result() for t in subjobs]


def submit(args):
    """Submit the job `args` describe; returns the submitit job, or None for --dry-run (script printed)."""
    from slowfast.config.parser import load_config

    cfg = load_config(args)
    layout = resolve_layout(args, cfg)
    job_dir = os.path.abspath(args.job_dir or os.path.join(cfg.OUTPUT_DIR, "submitit"))
    if args.dry_run:
        print(sbatch_script(job_dir, slurm_parameters(args, cfg, *layout)))
        return None
    check_can_submit(args, cfg, job_dir)
    executor, port = make_executor(args, cfg, job_dir, layout)
    job = executor.submit(ClusterJob(cfg, port))
    report_submitted(job, args, layout)
    return job


@cli_main("interrupted: a local job stops with this command, a Slurm job runs on (scancel JOB_ID); "
          "the same command resumes from the newest checkpoint")
def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    job = submit(args)
    if job is not None and (args.wait or args.cluster == "debug"):
        results = job.results() if args.cluster == "debug" else wait_for(job, job.num_tasks)
        for r in results:
            print(f"rank {r['rank']}/{r['world_size']} done; newest checkpoint: {r['last_checkpoint']}")
    return 0

if __name__ == "__main__":
    raise SystemExit(main())
