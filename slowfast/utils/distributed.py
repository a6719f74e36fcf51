"""One launcher for 1..N processes, and the few collective helpers the engine needs.

`launch_job(cfg, init_method, func)` runs `func(cfg)`:

* under `torchrun` (RANK / WORLD_SIZE / LOCAL_RANK in the environment): in this process, joining the
  group torchrun describes (`env://`), on any number of nodes;
* with `NUM_GPUS` N > 1, or `NUM_GPUS 0` and `NUM_CPU_PROCS` N > 1, or `NUM_SHARDS` > 1: it spawns N
  local processes; global rank = SHARD_ID * N + local rank, world = NUM_SHARDS * N, rendez-vous at
  `init_method` (PySlowFast's `--init_method tcp://host:port`, `--shard_id`, `--num_shards`);
* otherwise in this process without a process group (a single GPU, or the CPU).

GPU runs use `cfg.DIST_BACKEND` (NCCL); CPU runs use gloo. The helpers below are no-ops without a group.
"""

from __future__ import annotations

import os
from typing import Any, Optional
from collections.abc import Callable

import torch
import torch.distributed as dist

from slowfast.errors import UserError
from slowfast.utils.atomic import atomic_write_text
from slowfast.utils.checkpoint_files import list_checkpoints

__all__ = [
    "launch_job", "is_dist", "get_world_size", "get_rank", "is_master", "barrier",
    "all_reduce", "all_gather_object", "procs_per_machine", "torchrun_env", "check_devices", "ProcessDiedError",
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


def _backend(cfg) -> str:
    return cfg.DIST_BACKEND if cfg.NUM_GPUS > 0 else "gloo"


def _set_local_device(cfg, local_rank: int) -> None:
    if cfg.NUM_GPUS > 0 and torch.cuda.is_available():
        torch.cuda.set_device(local_rank)


def _cpu_threads(nprocs: int) -> None:
    # Several CPU processes on one machine would otherwise each start one thread per core.
    torch.set_num_threads(max(1, (os.cpu_count() or 1) // max(1, nprocs)))


def _worker(local_rank: int, func: Callable, cfg, init_method: str, nprocs: int, error_file: str) -> None:
    """Entry point of a spawned process: join the group, run `func(cfg)`, leave the group."""
    rank = cfg.SHARD_ID * nprocs + local_rank
    world = cfg.NUM_SHARDS * nprocs
    _set_local_device(cfg, local_rank)
    if cfg.NUM_GPUS == 0:
        _cpu_threads(nprocs)
    try:
        dist.init_process_group(backend=_backend(cfg), init_method=init_method, world_size=world, rank=rank)
        func(cfg)
    except UserError as e:
        # Report once, without a traceback: the parent reads the file and raises a UserError with it.
        # Any other exception is a bug: the child prints its traceback and the parent says a process failed.
        if local_rank == 0 or not os.path.exists(error_file):
            atomic_write_text(error_file, str(e))
        raise
    finally:
        if is_dist():
            dist.destroy_process_group()


def launch_job(cfg, init_method: str, func: Callable, daemon: bool = False) -> None:
    """Run `func(cfg)` on every process of this job (see the module docstring). Raises UserError when a
    spawned process stopped on a UserError (its message), RuntimeError for other failures."""
    env = torchrun_env()
    if env is not None:
        rank, world, local_rank = env
        _set_local_device(cfg, local_rank)
        if cfg.NUM_GPUS == 0:
            _cpu_threads(int(os.environ.get("LOCAL_WORLD_SIZE", world)))
        if not is_dist():
            # Joined once and kept for the process's life: run_net calls train then test, and re-creating
            # a group on torchrun's rendez-vous store hangs. Destroyed at exit.
            dist.init_process_group(backend=_backend(cfg), init_method="env://", world_size=world, rank=rank)
            import atexit

            atexit.register(lambda: dist.destroy_process_group() if is_dist() else None)
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
        try:
            mp.spawn(_worker, nprocs=nprocs, args=(func, cfg, init_method, nprocs, error_file), daemon=daemon)
        except (mp.ProcessRaisedException, mp.ProcessExitedException) as e:
            if os.path.exists(error_file):
                with open(error_file, encoding="utf-8") as f:
                    raise UserError(f.read()) from None
            if isinstance(e, mp.ProcessExitedException):
                raise ProcessDiedError(_death_message(cfg, e)) from None
            raise RuntimeError(f"a training/testing process failed: {e}") from None


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
