"""`tools/submit.py`: the run_net job through submitit. Real local jobs (one subprocess per task, CPU, gloo)
against a 2-process run_net run; the sbatch script of a Slurm job; the refusals."""

import contextlib
import glob
import io
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time

import pytest
import torch
from helpers import ROOT

from slowfast.cli.submit import main
from slowfast.config import load
from slowfast.datasets.synthetic import SyntheticSpec, make_synthetic_dataset
from slowfast.engine import train
from slowfast.utils import checkpoint as cu
from slowfast.utils.checkpoint_files import list_checkpoints
from slowfast.utils.distributed import cluster_task_place, launch_job

SUBMIT = os.path.join(ROOT, "tools", "submit.py")
RECIPE = os.path.join(ROOT, "configs", "Kinetics", "STDD_vitb16_8x16_k400.yaml")  # NUM_GPUS 4
EPOCHS = 4  # interrupted after epochs 1 and 2, the job still has work to lose
# The tiny synthetic config, trained only (testing adds nothing submitit-specific), a checkpoint every epoch.
TINY_YAML = """
_BASE_: {root}/tests/configs/tiny_synthetic.yaml
DATA:
  PATH_TO_DATA_DIR: {data}
  PATH_PREFIX: {data}
  INDEX_LABEL_MAPPING_FILE: {data}/index2cls.json
SOLVER:
  MAX_EPOCH: {epochs}
TRAIN:
  CHECKPOINT_PERIOD: 1
  EVAL_PERIOD: 1
TEST:
  ENABLE: False
"""
# Fields of json_stats.log that measure the machine, not the run.
TIMING = {"dt", "dt_data", "dt_net", "eta", "seconds", "samples_per_s", "gpu_mem", "RAM"}


@pytest.fixture(scope="module")
def tiny_cfg(tmp_path_factory):
    data = tmp_path_factory.mktemp("synthetic")
    make_synthetic_dataset(str(data), SyntheticSpec(train_per_class=2, val_per_class=1, test_per_class=1,
                                                    zero_shot_per_class=1, frames=8))
    path = data / "tiny.yaml"
    path.write_text(TINY_YAML.format(root=ROOT, data=data, epochs=EPOCHS))
    return str(path)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def two_process_run(tiny_cfg, tmp_path_factory):
    """OUTPUT_DIR of the same config trained by run_net's own launcher on 2 CPU processes (gloo)."""
    out = str(tmp_path_factory.mktemp("two_process"))
    cfg = load([tiny_cfg], ["NUM_CPU_PROCS", "2", "OUTPUT_DIR", out])
    launch_job(cfg, f"tcp://127.0.0.1:{_free_port()}", train)
    return out


def _submit_cmd(tiny_cfg: str, out: str) -> list[str]:
    return [sys.executable, SUBMIT, "--cluster", "local", "--gpus-per-node", "0", "--tasks-per-node", "2", "--wait",
            "--cfg", tiny_cfg, "--opts", "OUTPUT_DIR", out]


def _run(cmd: list[str]) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, capture_output=True, text=True, timeout=600)


def _tensors(ckpt: dict) -> dict:
    flat = {f"model.{k}": v for k, v in ckpt["model_state"].items()}
    for pid, state in ckpt["optimizer_state"]["state"].items():
        flat.update({f"optimizer.{pid}.{k}": v for k, v in state.items() if torch.is_tensor(v)})
    return flat


def _assert_same_checkpoint(a_dir: str, b_dir: str, epoch: int) -> None:
    a = _tensors(torch.load(cu.checkpoint_path(a_dir, epoch), weights_only=True))
    b = _tensors(torch.load(cu.checkpoint_path(b_dir, epoch), weights_only=True))
    assert a.keys() == b.keys()
    for k in a:
        assert torch.allclose(a[k].float(), b[k].float(), rtol=0, atol=1e-6), (epoch, k)


def _metrics(out: str) -> list[dict]:
    with open(os.path.join(out, "json_stats.log"), encoding="utf-8") as f:
        return [{k: v for k, v in json.loads(line).items() if k not in TIMING} for line in f]


def _task_pids(out: str) -> dict[int, int]:
    """{rank: pid} of the job's current tasks, from the line each task prints in its log when it starts (a
    requeued job's tasks append theirs to the same logs)."""
    pids = {}
    for log in glob.glob(os.path.join(out, "submitit", "*_log.out")):
        with open(log, encoding="utf-8") as f:
            found = re.findall(r"rank (\d+)/2, .* pid (\d+)", f.read())
        if found:
            pids[int(found[-1][0])] = int(found[-1][1])
    return pids


def _signal_tasks_after_checkpoint(proc: subprocess.Popen, out: str, epoch: int, signum: int, not_pids=()) -> dict:
    """Once `epoch`'s checkpoint exists and both tasks (other than `not_pids`) have started, send `signum`
    to both tasks of the job that `proc` waits for; returns their {rank: pid}."""
    path = cu.checkpoint_path(out, epoch)
    deadline = time.monotonic() + 600  # a job that hangs fails the test instead of stalling the suite
    pids: dict = {}
    while proc.poll() is None and time.monotonic() < deadline:
        pids = {r: p for r, p in _task_pids(out).items() if p not in not_pids}
        if os.path.exists(path) and sorted(pids) == [0, 1]:
            break
        time.sleep(0.02)
    assert os.path.exists(path) and sorted(pids) == [0, 1], "the job did not get going"
    for pid in pids.values():
        os.kill(pid, signum)
    assert not os.path.exists(cu.checkpoint_path(out, EPOCHS - 1)), "the job ended before it could be interrupted"
    return pids


@pytest.mark.slow
def test_two_task_local_job_trains_like_the_two_process_run(tiny_cfg, two_process_run, tmp_path):
    out = str(tmp_path / "job")
    done = _run(_submit_cmd(tiny_cfg, out))
    assert done.returncode == 0, done.stdout + done.stderr
    # Each rank returns the size of the process group it trained in: both ran, in one group of two.
    assert "rank 0/2 done" in done.stdout and "rank 1/2 done" in done.stdout
    for epoch in range(EPOCHS):
        _assert_same_checkpoint(two_process_run, out, epoch)
    ours, theirs = _metrics(out), _metrics(two_process_run)
    assert [r.get("_type") for r in ours] == [r.get("_type") for r in theirs]
    for a, b in zip(ours, theirs):
        assert a.keys() == b.keys()
        for k in a:
            assert a[k] == pytest.approx(b[k], abs=1e-6) if isinstance(a[k], float) else a[k] == b[k], (a, b)


@pytest.mark.slow
def test_preempted_or_killed_local_job_resumes_to_the_same_weights(tiny_cfg, two_process_run, tmp_path):
    # Both interruptions in one job (each costs a start of two processes): after the first checkpoint,
    # Slurm's warning of a preemption or of the time limit (USR2, to every task): the job requeues itself;
    # after the requeued job's first checkpoint, a kill: the job ends, and the same command resumes it.
    out = str(tmp_path / "job")
    proc = subprocess.Popen(_submit_cmd(tiny_cfg, out), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        first = _signal_tasks_after_checkpoint(proc, out, 0, signal.SIGUSR2)
        # The requeued tasks' first checkpoint: the next one after those already written.
        _signal_tasks_after_checkpoint(proc, out, len(list_checkpoints(out)), signal.SIGKILL, not_pids=first.values())
        said, _ = proc.communicate(timeout=600)
    finally:
        if proc.poll() is None:
            proc.kill()
    # Rank 1 may have left the error of its first run (its peer gone at the requeue); rank 0 never returned.
    assert proc.returncode == 1 and re.search(r"ended without a result from rank 0\b", said), said
    again = _run(_submit_cmd(tiny_cfg, out))
    assert again.returncode == 0 and "rank 0/2 done" in again.stdout and "rank 1/2 done" in again.stdout, again.stdout
    with open(os.path.join(out, "stdout.log"), encoding="utf-8") as f:
        log = f.read()
    assert "the job is requeued" in log and log.count("resumed from") == 2  # once requeued, once submitted again
    _assert_same_checkpoint(two_process_run, out, EPOCHS - 1)


@pytest.mark.slow
def test_debug_cluster_runs_the_job_in_this_process(tiny_cfg, tmp_path, capsys):
    out = str(tmp_path / "job")
    assert main(["--cluster", "debug", "--cfg", tiny_cfg, "--opts", "OUTPUT_DIR", out, "SOLVER.MAX_EPOCH", "1"]) == 0
    assert "rank 0/1 done" in capsys.readouterr().out
    assert os.path.exists(cu.checkpoint_path(out, 0))


def test_dry_run_prints_the_sbatch_script_of_two_nodes_of_four_gpus(tmp_path, capsys):
    out = tmp_path / "out"
    main(["--dry-run", "--nodes", "2", "--gpus-per-node", "4", "--partition", "gpu", "--timeout", "600",
          "--cfg", RECIPE, "--opts", "OUTPUT_DIR", str(out)])
    script = capsys.readouterr().out
    assert script.startswith("#!/bin/bash")
    directives = set(re.findall(r"^#SBATCH (\S+)$", script, flags=re.M))
    assert {"--nodes=2", "--ntasks-per-node=4", "--gpus-per-node=4", "--partition=gpu", "--time=600",
            "--signal=USR2@90", "--requeue"} <= directives
    assert f"--output={out / 'submitit'}/%j_0_log.out" in directives
    assert "srun" in script and "submitit.core._submit" in script
    assert not out.exists()  # nothing written, nothing submitted


def _error_line(argv: list[str]) -> str:
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        assert main(argv) == 1
    msg = err.getvalue().strip()
    assert msg.startswith("error: ") and "\n" not in msg
    return msg


def test_without_slurm_the_command_says_so_and_names_cluster_local(tiny_cfg, tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))  # no sbatch on the PATH
    msg = _error_line(["--cfg", tiny_cfg, "--opts", "OUTPUT_DIR", str(tmp_path / "out")])
    assert "no Slurm" in msg and "--cluster local" in msg
    assert not (tmp_path / "out").exists()


def test_gpus_per_node_other_than_num_gpus_is_refused_naming_both():
    msg = _error_line(["--dry-run", "--gpus-per-node", "8", "--cfg", RECIPE])
    assert "--gpus-per-node 8" in msg and "NUM_GPUS 4" in msg


def test_unwritable_job_dir_stops_before_anything_is_submitted(tiny_cfg, tmp_path):
    (tmp_path / "file").write_text("in the way")
    job_dir = tmp_path / "file" / "jobs"
    msg = _error_line(["--cluster", "local", "--job-dir", str(job_dir), "--cfg", tiny_cfg,
                       "--opts", "OUTPUT_DIR", str(tmp_path / "out")])
    assert str(job_dir) in msg
    assert not (tmp_path / "out").exists()


def test_slurm_task_place_comes_from_the_job_environment(monkeypatch):
    from submitit.slurm.slurm import SlurmJobEnvironment

    # Task 5 of a 2-node x 4-task job: node 1, local rank 1; rank 0 runs on the first node of the list.
    for name, value in {"SLURM_JOB_ID": "4242", "SLURM_NTASKS": "8", "SLURM_JOB_NUM_NODES": "2", "SLURM_NODEID": "1",
                        "SLURM_JOB_NODELIST": "gpu[07-08]", "SLURM_PROCID": "5", "SLURM_LOCALID": "1"}.items():
        monkeypatch.setenv(name, value)
    place = cluster_task_place(SlurmJobEnvironment())
    assert (place.rank, place.world_size, place.local_rank, place.local_world_size) == (5, 8, 1, 4)
    assert re.fullmatch(r"tcp://gpu07:\d+", place.init_method)
    assert cluster_task_place(SlurmJobEnvironment()).init_method == place.init_method  # every task agrees
