"""The engine end to end on a tiny model and tiny real videos: DDP equivalence, resume, NaN, broken videos."""

import json
import os
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import torch
from helpers import ROOT, TINY_CLASSES, free_port, tiny_run_cfg, tiny_run_opts

from slowfast.engine import test as run_test
from slowfast.engine import train
from slowfast.engine.meters import NonFiniteLossError
from slowfast.utils import checkpoint as cu
from slowfast.utils.distributed import launch_job


def _train_losses(out: str) -> list[float]:
    with open(os.path.join(out, "json_stats.log"), encoding="utf-8") as f:
        rows = [json.loads(line) for line in f]
    return [r["loss"] for r in rows if r.get("_type") == "train_iter"]


@pytest.mark.slow
def test_two_process_ddp_matches_one_process_loss_trajectory(tiny_data, tmp_path):
    # One batch per epoch holds every training video, so the global batch is the same set whatever the
    # samplers' orders; the baseline operator (no random masks), no flips and clips as long as the videos
    # make the data deterministic. Distillation with gradient is on, so projector_v is trained through DDP.
    common = {"TRAIN.BATCH_SIZE": 8, "MODEL.TEMPORAL_MODELING_TYPE": "None", "SOLVER.MAX_EPOCH": 4,
              "TRAIN.EVAL_PERIOD": 10, "TRAIN.CHECKPOINT_PERIOD": 10, "TEST.ENABLE": False,
              "MODEL.KEEP_RAW_MODEL": True, "MODEL.RAW_MODEL_DISTILLATION": True, "MODEL.DISTILLATION_GRAD": True}
    one = str(tmp_path / "one")
    two = str(tmp_path / "two")
    launch_job(tiny_run_cfg(tiny_data, one, **common), f"tcp://127.0.0.1:{free_port()}", train)
    launch_job(tiny_run_cfg(tiny_data, two, NUM_CPU_PROCS=2, **common), f"tcp://127.0.0.1:{free_port()}", train)
    l1, l2 = _train_losses(one), _train_losses(two)
    assert len(l1) == len(l2) == 4
    assert l1[0] != l1[-1]  # the weights did change between steps
    # Tolerance: DDP averages two half-batch gradients instead of one full-batch mean, so float32 sums are
    # taken in a different order (relative error ~1e-7 per reduction); after 3 AdamW steps (whose update
    # direction is insensitive to such noise, clipping included) the loss agrees to well under 1e-4.
    # A wrong reduction (sum instead of mean, or no reduction at all) changes the 2nd loss by > 1e-2.
    assert np.allclose(l1, l2, rtol=0, atol=1e-4), (l1, l2)


def _run_net_cmd(data_dir: str, out: str, **extra) -> list[str]:
    return [sys.executable, os.path.join(ROOT, "tools", "run_net.py"), "--opts", *tiny_run_opts(data_dir, out, **extra)]


@pytest.mark.slow
def test_killed_run_resumed_ends_with_the_same_weights(tiny_data, tmp_path):
    # The killed run stops at a known point whatever the machine's speed: one validation video is a named pipe
    # that nobody writes, so the run blocks opening it, in epoch 1's validation, after that epoch's checkpoint.
    data = tmp_path / "data"
    shutil.copytree(tiny_data, data)
    gate = data / "videos" / "val_0.mp4"
    gate.unlink()
    os.mkfifo(gate)
    extra = {"SOLVER.MAX_EPOCH": 3, "TEST.ENABLE": False}
    straight, killed = str(tmp_path / "straight"), str(tmp_path / "killed")
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(_run_net_cmd(str(data), killed, **extra), env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    first = cu.checkpoint_path(killed, 0)
    deadline = time.time() + 600  # only a run that hangs before its first checkpoint gets near this
    while not os.path.exists(first) and proc.poll() is None and time.time() < deadline:
        time.sleep(0.02)
    assert os.path.exists(first) and proc.poll() is None, "the first checkpoint never appeared"
    os.kill(proc.pid, signal.SIGKILL)  # blocked in epoch 1's validation: epochs 2 and 3 are still to train
    proc.wait()
    assert cu.list_checkpoints(killed) == [first]
    gate.unlink()
    shutil.copy(os.path.join(tiny_data, "videos", "val_0.mp4"), gate)
    subprocess.run(_run_net_cmd(str(data), killed, **extra), check=True, env=env, capture_output=True, timeout=600)
    subprocess.run(_run_net_cmd(str(data), straight, **extra), check=True, env=env, capture_output=True, timeout=600)
    a = torch.load(cu.checkpoint_path(straight, 2), weights_only=True)["model_state"]
    b = torch.load(cu.checkpoint_path(killed, 2), weights_only=True)["model_state"]
    assert a.keys() == b.keys()
    for k in a:
        assert torch.allclose(a[k], b[k], rtol=0, atol=1e-6), k
    with open(os.path.join(killed, "stdout.log"), encoding="utf-8") as f:
        assert "resumed from" in f.read()


def test_nan_loss_stops_with_iteration_and_last_checkpoint(tiny_data, tmp_path):
    out = str(tmp_path / "nan")
    train(tiny_run_cfg(tiny_data, out, **{"SOLVER.MAX_EPOCH": 1, "TEST.ENABLE": False}))
    assert os.path.exists(cu.checkpoint_path(out, 0))
    # Resume for more epochs with an absurd learning rate and no clipping: the weights overflow.
    cfg = tiny_run_cfg(tiny_data, out, **{"SOLVER.MAX_EPOCH": 3, "SOLVER.BASE_LR": 1e30, "SOLVER.WARMUP_EPOCHS": 0.0,
                                          "SOLVER.CLIP_GRAD_L2NORM": None, "SOLVER.LR_POLICY": "constant"})
    with pytest.raises(NonFiniteLossError) as e:
        train(cfg)
    msg = str(e.value)
    assert "epoch 2/3" in msg and "iteration" in msg and "checkpoint_epoch_00001.pyth" in msg


def test_test_run_reports_broken_videos_and_scores_the_rest(tiny_data, tmp_path):
    data = tmp_path / "with_broken"
    data.mkdir()
    (data / "broken.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42 this is not a video")
    lines = [f"{os.path.join(tiny_data, 'videos', f'test_{i}.mp4')},{i % 2}\n" for i in range(4)]
    lines.insert(2, f"{data / 'broken.mp4'},0\n")
    lines.append(f"{data / 'missing.mp4'},1\n")
    (data / "test.csv").write_text("".join(lines))
    out = str(tmp_path / "out")
    cfg = tiny_run_cfg(str(data), out, **{"DATA.PATH_PREFIX": "", "DATA.INDEX_LABEL_MAPPING_FILE":
                                           os.path.join(tiny_data, "index2cls.json"), "TRAIN.ENABLE": False})
    metrics = run_test(cfg)  # no checkpoint anywhere: the initial weights, with a warning
    assert metrics["num_videos"] == 4 and metrics["num_unreadable"] == 2
    assert metrics["checkpoint"] is None
    listed = open(os.path.join(out, "unreadable_videos.txt"), encoding="utf-8").read()
    assert "broken.mp4" in listed and "missing.mp4" in listed
    saved = torch.load(os.path.join(out, "test_results.pt"), weights_only=True)
    assert saved["logits"].shape == (4, 2) and saved["class_names"] == TINY_CLASSES
    assert saved["num_views"].tolist() == [2, 2, 2, 2]
    assert json.load(open(os.path.join(out, "test_metrics.json")))["num_unreadable"] == 2
    assert os.path.exists(os.path.join(out, "confusion_matrix.png"))


def test_patching_ratio_one_tests_the_initial_clip_weights(tiny_data, tmp_path):
    out = str(tmp_path / "patch")
    cfg = tiny_run_cfg(tiny_data, out, **{"SOLVER.MAX_EPOCH": 1, "SOLVER.BASE_LR": 0.05, "SOLVER.WARMUP_EPOCHS": 0.0,
                                          "TEST.ENABLE": False, "MODEL.TEMPORAL_MODELING_TYPE": "None"})
    train(cfg)
    ckpt = cu.checkpoint_path(out, 0)
    initial = run_test(tiny_run_cfg(tiny_data, str(tmp_path / "initial"), **{"MODEL.TEMPORAL_MODELING_TYPE": "None"}))
    trained = run_test(tiny_run_cfg(tiny_data, str(tmp_path / "trained"), **{
        "MODEL.TEMPORAL_MODELING_TYPE": "None", "TEST.CHECKPOINT_FILE_PATH": ckpt}))
    patched = run_test(tiny_run_cfg(tiny_data, str(tmp_path / "patched"), **{
        "MODEL.TEMPORAL_MODELING_TYPE": "None", "TEST.CUSTOM_LOAD": True, "TEST.CUSTOM_LOAD_FILE": ckpt,
        "TEST.PATCHING_MODEL": True, "TEST.PATCHING_RATIO": 1.0}))
    logits = {name: torch.load(m["results_path"], weights_only=True)["logits"]
              for name, m in (("initial", initial), ("trained", trained), ("patched", patched))}
    assert not torch.allclose(logits["trained"], logits["initial"], atol=1e-4)
    assert torch.allclose(logits["patched"], logits["initial"], atol=1e-5)
    assert patched["patched"] and patched["checkpoint"] == ckpt


def test_custom_load_reports_unexpected_keys(tiny_data, tmp_path, caplog):
    path = str(tmp_path / "averaged.pyth")
    model_state = train(tiny_run_cfg(tiny_data, str(tmp_path / "src"), **{"SOLVER.MAX_EPOCH": 1, "TEST.ENABLE": False})
                        )["model"].state_dict()
    model_state["adapter.extra.weight"] = torch.zeros(3)
    torch.save({"model_state": model_state, "meta": {"method": "swa"}}, path)
    with caplog.at_level("WARNING"):
        m = run_test(tiny_run_cfg(tiny_data, str(tmp_path / "out"), **{"TEST.CUSTOM_LOAD": True, "TEST.CUSTOM_LOAD_FILE": path}))
    assert m["checkpoint"] == path and m["num_videos"] == 4
    assert "adapter.extra.weight" in caplog.text


def test_linear_connect_climb_trains_the_stdd_model_with_teacher(tiny_data, tmp_path):
    # The original code crashes here (state-dict length assert with raw_model and projector_v keys).
    common = {"SOLVER.MAX_EPOCH": 1, "TEST.ENABLE": False, "MODEL.KEEP_RAW_MODEL": True,
              "MODEL.RAW_MODEL_DISTILLATION": True, "SOLVER.CLIP_GRAD_L2NORM": None}
    plain = train(tiny_run_cfg(tiny_data, str(tmp_path / "plain"), **common))["model"]
    climb = train(tiny_run_cfg(tiny_data, str(tmp_path / "climb"), **common, **{
        "TRAIN.LINEAR_CONNECT_CLIMB": True, "TRAIN.LINEAR_CONNECT_LOSS_RATIO": 1.0}))["model"]
    a, b = plain.state_dict(), climb.state_dict()
    assert all(torch.isfinite(v).all() for v in b.values() if v.is_floating_point())
    assert not torch.allclose(a["model.visual.proj"], b["model.visual.proj"])  # the extra gradient was applied
    for k in a:
        if k.startswith("raw_model."):
            assert torch.equal(a[k], b[k]), k  # the teacher is never interpolated nor trained
