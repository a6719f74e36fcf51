"""One launcher for 1..N processes, and the few collective helpers the engine needs.

`launch_job(cfg, init_method, func, place=None)` runs `func(cfg)`:

* with `place` (a `ProcessPlace`: this process's rank, world size, local rank and rendez-vous, e.g. a task
  of a submitit job, see `cluster_task_place`) or under `torchrun` (RANK / WORLD_SIZE / LOCAL_RANK in the
  environment, rendez-vous `env://`): in this process, on any number of nodes;
* with `NUM_GPUS` N > 1, or `NUM_GPUS 0` and `NUM_CPU_PROCS` N > 1, or `NUM_SHARDS` > 1: it spawns N
  local processes; global rank = SHARD_ID * N + local rank, world = NUM_SHARDS * N, rendez-vous at
  `init_method` (PySlowFast's `--init_method tcp://host:port`, `--shard_id`, `--num_shards`);
* otherwise in this process without a process group (a single GPU, or the CPU).

Every multi-process start joins its group through `join_job`, whichever of these started it.
GPU runs use `cfg.DIST_BACKEND` (NCCL); CPU runs use gloo. The helpers below are no-ops without a group.
"""

from __future__ import annotations

import multiprocessing
import os
import re
import signal
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Optional

import torch
import torch.distributed as dist

from slowfast.errors import UserError, mute_cleanup_errors, release_after_interrupt
from slowfast.utils.atomic import atomic_write_text
from slowfast.utils.checkpoint_files import list_checkpoints
from slowfast.utils.interrupts import ctrl_c_ignored, install_ctrl_c

__all__ = [
    "launch_job", "is_dist", "get_world_size", "get_rank", "is_master", "barrier",
    "all_reduce", "all_gather_object", "procs_per_machine", "torchrun_env", "check_devices", "ProcessDiedError",
    "ProcessPlace", "torchrun_place", "cluster_task_place", "join_job",
]


class ProcessDiedError(UserError, RuntimeError):
    """A process of a multi-process run died (killed by a signal, out of memory): names the rank."""


def check_devices(cfg) -> None:
    """NUM_GPUS must not exceed the GPUs this machine has: checked before any process is spawned, where
    too many processes would otherwise fail one by one inside the communication library."""
    if cfg.NUM_GPUS <= 0:
        return
    present = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if cfg.NUM_GPUS > present:
        hint = "set NUM_GPUS 0 to run on the CPU" if present == 0 else f"set NUM_GPUS to at most {present}"
        raise UserError(f"NUM_GPUS {cfg.NUM_GPUS} but this machine has {present} GPU{'s' if present != 1 else ''} "
                        f"visible; {hint}")


def is_dist() -> bool:
    return dist.is_available() and dist.is_initialized()


def get_world_size() -> int:
    return dist.get_world_size() if is_dist() else 1


def get_rank() -> int:
    return dist.get_rank() if is_dist() else 0


def is_master() -> bool:
    return get_rank() == 0


def barrier() -> None:
    if is_dist():
        dist.barrier()


def all_reduce(tensors: list[torch.Tensor], average: bool = False) -> list[torch.Tensor]:
    """Sum (or average) each tensor over all processes, in place; returns the list."""
    if not is_dist():
        return tensors
    for t in tensors:
        dist.all_reduce(t, op=dist.ReduceOp.SUM)
        if average:
            t.div_(get_world_size())
    return tensors


def all_gather_object(obj: Any) -> list[Any]:
    """[obj of rank 0, obj of rank 1, ...] on every process (a one-element list without a group)."""
    if not is_dist():
        return [obj]
    out: list[Any] = [None] * get_world_size()
    dist.all_gather_object(out, obj)
    return out


def procs_per_machine(cfg) -> int:
    """Processes started on this machine: NUM_GPUS on GPUs, NUM_CPU_PROCS on the CPU."""
    return cfg.NUM_GPUS if cfg.NUM_GPUS > 0 else cfg.NUM_CPU_PROCS


def torchrun_env() -> Optional[tuple[int, int, int]]:
    """(rank, world_size, local_rank) when started by torchrun (or another env:// launcher), else None."""
    if "RANK" in os.environ and "WORLD_SIZE" in os.environ:
        rank = int(os.environ["RANK"])
        return rank, int(os.environ["WORLD_SIZE"]), int(os.environ.get("LOCAL_RANK", rank))
    return None


@dataclass(frozen=True)
class ProcessPlace:
    """Where this process sits in its job: global rank and world size, rank and process count on its node,
    and the rendez-vous of the group (`env://`, or `tcp://host:port` of rank 0's node)."""

    rank: int
    world_size: int
    local_rank: int
    local_world_size: int
    init_method: str


def torchrun_place() -> Optional[ProcessPlace]:
    """This process's place when torchrun (or another env:// launcher) started it, else None."""
    env = torchrun_env()
    if env is None:
        return None
    rank, world, local_rank = env
    return ProcessPlace(rank, world, local_rank, int(os.environ.get("LOCAL_WORLD_SIZE", world)), "env://")


def cluster_task_place(job_env: Any, port: Optional[int] = None) -> ProcessPlace:
    """The place of a task of a submitit job, from its `submitit.JobEnvironment` (global and local rank,
    number of tasks and nodes, host names). Rank 0's node hosts the rendez-vous: on one node the loopback
    address; the port is `port` or, when None, one derived from the job id, which every task of the job
    (and the job requeued under the same id) computes alike."""
    nodes = max(1, job_env.num_nodes)
    host = job_env.hostnames[0] if nodes > 1 else "127.0.0.1"
    if port is None:
        digits = re.sub(r"\D", "", str(job_env.job_id)) or "0"
        port = 20000 + int(digits) % 20000
    return ProcessPlace(job_env.global_rank, job_env.num_tasks, job_env.local_rank,
                        max(1, job_env.num_tasks // nodes), f"tcp://{host}:{port}")


def _backend(cfg) -> str:
    return cfg.DIST_BACKEND if cfg.NUM_GPUS > 0 else "gloo"


def _set_local_device(cfg, local_rank: int) -> None:
    if cfg.NUM_GPUS > 0 and torch.cuda.is_available():
        torch.cuda.set_device(local_rank)


def _cpu_threads(nprocs: int) -> None:
    # Several CPU processes on one machine would otherwise each start one thread per core.
    torch.set_num_threads(max(1, (os.cpu_count() or 1) // max(1, nprocs)))


def join_job(cfg, place: ProcessPlace) -> None:
    """Bind this process to its GPU (or share the CPU cores with the other processes of its node) and join
    the process group of its job: the one set-up of every multi-process start (spawned here, torchrun, a
    submitit task). The group is joined once per process and kept: run_net trains then tests in it."""
    _set_local_device(cfg, place.local_rank)
    if cfg.NUM_GPUS == 0:
        _cpu_threads(place.local_world_size)
    if place.world_size > 1 and not is_dist():
        dist.init_process_group(backend=_backend(cfg), init_method=place.init_method,
                                world_size=place.world_size, rank=place.rank)


def _leave_group() -> None:
    if is_dist():
        dist.destroy_process_group()


def _worker(local_rank: int, func: Callable, cfg, init_method: str, nprocs: int, error_file: str,
            parent: int) -> None:
    """Entry point of a spawned process: join the group, run `func(cfg)`, leave the group."""
    # Started with Ctrl-C ignored (see launch_job): from here on Ctrl-C stops this process quietly, and so
    # does the death of the launching process (torch asks the kernel for a SIGINT then).
    install_ctrl_c()
    if os.getppid() != parent:
        return  # the launching process died while this one was starting
    if "fork" in multiprocessing.get_all_start_methods():
        # A spawned process inherits "spawn" for the processes it starts; its data-loader workers are forked,
        # as in a one-process run (spawned, each imports torch again and dies of Ctrl-C with a traceback).
        multiprocessing.set_start_method("fork", force=True)
    place = ProcessPlace(cfg.SHARD_ID * nprocs + local_rank, cfg.NUM_SHARDS * nprocs, local_rank, nprocs, init_method)
    hook = None
    try:
        join_job(cfg, place)
        func(cfg)
    except UserError as e:
        # Report once, without a traceback: the parent reads the file and raises a UserError with it.
        # Any other exception is a bug: the child prints its traceback and the parent says a process failed.
        if local_rank == 0 or not os.path.exists(error_file):
            atomic_write_text(error_file, str(e))
        raise
    except KeyboardInterrupt:
        hook = mute_cleanup_errors()  # the launching process prints the one line
    finally:
        _leave_group()
    if hook is not None:
        release_after_interrupt(hook)  # what the interrupt left half-built goes without a traceback
        raise KeyboardInterrupt from None


def launch_job(cfg, init_method: str, func: Callable, daemon: bool = False, place: Optional[ProcessPlace] = None) -> None:
    """Run `func(cfg)` on every process of this job (see the module docstring). Raises UserError when a
    spawned process stopped on a UserError (its message), RuntimeError for other failures."""
    place = place or torchrun_place()
    if place is not None:
        joined_before = is_dist()
        join_job(cfg, place)
        if is_dist() and not joined_before:
            # Kept for the process's life and left at exit: run_net trains then tests in it, and re-creating
            # a group on torchrun's rendez-vous store hangs.
            import atexit

            atexit.register(_leave_group)
        func(cfg)
        return
    check_devices(cfg)
    nprocs = procs_per_machine(cfg)
    if nprocs * cfg.NUM_SHARDS <= 1:
        _set_local_device(cfg, 0)
        func(cfg)
        return
    import tempfile

    import torch.multiprocessing as mp

    with tempfile.TemporaryDirectory(prefix="stdd-launch-") as tmp:
        error_file = os.path.join(tmp, "error.txt")
        # A process interrupted while it imports torch prints a traceback: they start with Ctrl-C ignored.
        with ctrl_c_ignored():
            context = mp.spawn(_worker, nprocs=nprocs, args=(func, cfg, init_method, nprocs, error_file, os.getpid()),
                               daemon=daemon, join=False)
        try:
            while not context.join():
                pass
        except KeyboardInterrupt:
            _stop(context.processes)
            raise
        except (mp.ProcessRaisedException, mp.ProcessExitedException) as e:
            if os.path.exists(error_file):
                with open(error_file, encoding="utf-8") as f:
                    raise UserError(f.read()) from None
            if isinstance(e, mp.ProcessExitedException):
                raise ProcessDiedError(_death_message(cfg, e)) from None
            raise RuntimeError(f"a training/testing process failed: {e}") from None


def _stop(processes: list) -> None:
    """Stop the spawned processes after Ctrl-C: the terminal sent it to them as well, `kill -INT` of this
    process alone did not. Ctrl-C lets each remove the file it was writing; one that does not stop (still
    starting, with Ctrl-C ignored) is terminated."""
    for p in processes:
        if p.is_alive():
            os.kill(p.pid, signal.SIGINT)
    for p in processes:
        p.join(timeout=30)
        if p.is_alive():
            p.terminate()
            p.join()


def _death_message(cfg, e: Any) -> str:
    """One line for a process that died without a Python error: its rank, the signal (or exit code) and
    where to resume from. `e` is torch's ProcessExitedException; the other processes are already stopped."""
    rank = cfg.SHARD_ID * procs_per_machine(cfg) + e.error_index
    how = f"was killed by {e.signal_name}" if e.signal_name else f"exited with code {e.exit_code}"
    if e.signal_name == "SIGKILL":
        how += " (out of memory, or killed by a user or the scheduler)"
    found = list_checkpoints(cfg.OUTPUT_DIR)
    resume = (f"resume from {found[-1]} with TRAIN.AUTO_RESUME True" if found
              else f"no checkpoint in {cfg.OUTPUT_DIR} yet: the run starts over")
    return f"process of rank {rank} {how}; the job was stopped; {resume}"
