"""A whole `run_net` job, train then test, as one function: what `tools/run_net.py` runs, and what each task
of a `tools/submit.py` job runs with its place in the job (see `slowfast.cli.submit.ClusterJob`)."""

from __future__ import annotations

from typing import Optional

from yacs.config import CfgNode

from slowfast.utils import distributed as du

__all__ = ["run_job"]


def run_job(cfg: CfgNode, init_method: str, place: Optional[du.ProcessPlace] = None) -> None:
    """Train when TRAIN.ENABLE, then test when TEST.ENABLE, on the processes `launch_job` starts or, with
    `place`, as that one process of a job that something else started (a submitit task)."""
    from slowfast.engine import test, train

    if cfg.TRAIN.ENABLE:
        du.launch_job(cfg, init_method, train, place=place)
    if cfg.TEST.ENABLE:
        du.launch_job(cfg, init_method, test, place=place)
