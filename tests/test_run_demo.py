"""The embedded demo (`make demo` = tools/run_demo.py): what it says it will do, Ctrl-C keeping every finished
epoch with one line and status 130, and the same command resuming from there.

The interrupted run is held at a known point without any timing: one validation video is a named pipe, so the
run's loader worker blocks on it in the validation of STDD's first epoch, after that epoch's checkpoint, while
the main process waits for the worker. The test waits until the worker has the pipe open (it then holds the
pipe's other end, writing nothing, so the worker stays blocked), checks that the output shows epoch 1 saved,
and sends SIGINT to the run's process group, as Ctrl-C in a terminal does. Waiting for the worker, not for a
line the main process prints, matters: a Ctrl-C that lands while the main process forks the worker, or while
PyAV is blocked opening a file in it, is dropped (by Python's fork handlers, by PyAV), and the run would go on.
"""

import errno
import json
import os
import shutil
import signal
import subprocess
import sys
import time

import pytest
from helpers import ROOT, ctrl_c_as_in_a_terminal

from slowfast.cli import run_demo
from slowfast.datasets.synthetic import SyntheticSpec, make_synthetic_dataset

TOOL = os.path.join(ROOT, "tools", "run_demo.py")
# The demo's configs shrunk to seconds: 4 frames of 32 px, a one-block CLIP, 3 epochs (one loader worker, as
# the demo's).
TINY_OPTS = ["DATA.NUM_FRAMES", "4", "DATA.SAMPLING_RATE", "4", "DATA.TRAIN_JITTER_SCALES", "[32,32]",
             "DATA.TRAIN_CROP_SIZE", "32", "DATA.TEST_CROP_SIZE", "32", "DATA_LOADER.NUM_WORKERS", "1",
             "TRAIN.BATCH_SIZE", "8", "TEST.BATCH_SIZE", "12", "MODEL.CUSTOM_CLIP.IMAGE_RESOLUTION", "32",
             "MODEL.CUSTOM_CLIP.VISION_WIDTH", "64", "MODEL.CUSTOM_CLIP.VISION_LAYERS", "1",
             "MODEL.CUSTOM_CLIP.EMBED_DIM", "32", "MODEL.CUSTOM_CLIP.TEXT_WIDTH", "32",
             "MODEL.CUSTOM_CLIP.TEXT_LAYERS", "1", "SOLVER.MAX_EPOCH", "3"]
HANG_GUARD_S = 600  # only a run that hangs gets near this


def _cmd(out, data, opts=TINY_OPTS) -> list[str]:
    return [sys.executable, TOOL, "--out", str(out), "--data", str(data), "--opts", *opts]


def _hold_once_opened(fifo, proc: subprocess.Popen) -> int:
    """Once a reader has `fifo` open, open its writing end (returned): the reader then waits for data."""
    deadline = time.monotonic() + HANG_GUARD_S
    while True:
        try:
            return os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
        except OSError as e:  # ENXIO: no reader yet
            if e.errno != errno.ENXIO:
                raise
        assert proc.poll() is None and time.monotonic() < deadline, "the run never reached the validation"
        time.sleep(0.05)


def _checkpoints(run_dir) -> list[str]:
    folder = os.path.join(run_dir, "checkpoints")
    return sorted(os.listdir(folder)) if os.path.isdir(folder) else []


@pytest.fixture(scope="module")
def interrupted(tmp_path_factory):
    """(out, data, exit status, output after the signal, copy of out as the interrupt left it)."""
    data = tmp_path_factory.mktemp("data")
    make_synthetic_dataset(str(data), SyntheticSpec(train_per_class=2, val_per_class=1, test_per_class=1,
                                                    zero_shot_per_class=1, frames=8))
    gate = data / open(data / "val.csv", encoding="utf-8").readline().split(",")[0]
    video = gate.read_bytes()
    gate.unlink()
    os.mkfifo(gate)
    out = tmp_path_factory.mktemp("demo") / "out"
    log_path = out.parent / "demo.log"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(_cmd(out, data), stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
                                preexec_fn=ctrl_c_as_in_a_terminal)
    writer = None
    try:
        writer = _hold_once_opened(gate, proc)
        before = log_path.read_bytes()
        assert f"saved {out / 'stdd' / 'checkpoints' / 'checkpoint_epoch_00001.pyth'}".encode() in before
        os.killpg(proc.pid, signal.SIGINT)
        proc.wait(timeout=HANG_GUARD_S)
    finally:
        try:  # the worker too, if the run left it behind, before it can see the pipe closed and go on
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait()
        if writer is not None:
            os.close(writer)
        gate.unlink()
        gate.write_bytes(video)
    after = log_path.read_bytes()[len(before):]
    kept = tmp_path_factory.mktemp("kept") / "out"
    shutil.copytree(out, kept)
    return out, data, proc.returncode, after.decode(errors="replace"), kept


@pytest.mark.slow
def test_ctrl_c_exits_130_with_one_line_naming_what_was_kept(interrupted):
    out, _, code, after, _ = interrupted
    lines = [line.strip() for line in after.replace("\r", "\n").splitlines() if line.strip()]
    assert code == 130
    assert "Traceback" not in after
    assert lines[-1] == (f"interrupted: kept STDD 1/3 epochs, baseline 0/3 epochs (checkpoints under {out}); "
                         "run the same command again to resume from there")


def test_ctrl_c_while_an_object_is_half_built_still_prints_only_the_one_line(tmp_path, monkeypatch, run_cli):
    class HalfBuilt:  # as torch's data-loader iterator when Ctrl-C lands while it starts its workers
        def __init__(self):
            raise KeyboardInterrupt

        def __del__(self):
            self.shutdown()  # AttributeError: __init__ never got that far

    def interrupted_run(args, runs):
        HalfBuilt()

    monkeypatch.setattr(sys, "unraisablehook", sys.__unraisablehook__)  # as outside pytest: printed on stderr
    monkeypatch.setattr(run_demo, "_run", interrupted_run)
    code, err = run_cli(run_demo.main, ["--out", str(tmp_path)])
    assert code == 130
    assert err == ("interrupted before the first epoch was checkpointed: nothing trained was kept; run the same "
                   "command again to start")


@pytest.mark.slow
def test_ctrl_c_keeps_the_checkpoint_of_the_finished_epoch_and_no_report(interrupted):
    _, _, _, _, kept = interrupted
    assert _checkpoints(kept / "stdd") == ["checkpoint_epoch_00001.pyth"]
    assert not (kept / "baseline").exists()
    assert not (kept / "report.json").exists()


@pytest.fixture(scope="module")
def resumed(interrupted):
    out, data, *_ = interrupted
    first = out / "stdd" / "checkpoints" / "checkpoint_epoch_00001.pyth"
    before = first.read_bytes()
    r = subprocess.run(_cmd(out, data), capture_output=True, text=True, timeout=HANG_GUARD_S)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    return out, data, r.stdout, before == first.read_bytes()


@pytest.mark.slow
def test_the_same_command_resumes_after_the_kept_epoch(resumed):
    out, _, said, first_unchanged = resumed
    assert "resuming from the kept checkpoints: STDD 1/3 epochs done, baseline 0/3 epochs done" in said
    assert f"resumed from {out / 'stdd' / 'checkpoints' / 'checkpoint_epoch_00001.pyth'} (epoch 1 done)" in said
    assert first_unchanged
    assert _checkpoints(out / "stdd") == [f"checkpoint_epoch_{e:05d}.pyth" for e in (1, 2, 3)]


@pytest.mark.slow
def test_the_resumed_report_has_every_epoch_of_both_runs(resumed):
    out, *_ = resumed
    rep = json.loads((out / "report.json").read_text())
    assert (rep["stdd"]["resumed_after_epoch"], rep["baseline"]["resumed_after_epoch"]) == (1, 0)
    for run in ("stdd", "baseline"):
        assert [e["epoch"] for e in rep[run]["epochs"]] == [1, 2, 3]
        assert all("train_loss" in e for e in rep[run]["epochs"])
    # STDD's first validation was the one interrupted; the resumed run starts with epoch 2.
    assert ["val_top1_acc" in e for e in rep["stdd"]["epochs"]] == [False, True, True]
    assert all("val_top1_acc" in e for e in rep["baseline"]["epochs"])
    assert "| STDD (stcross_attend) |" in (out / "report.md").read_text()
    assert "(resumed after epoch 1)" in (out / "report.md").read_text()


@pytest.mark.slow
def test_kept_epochs_trained_with_other_settings_are_started_over(interrupted, capsys):
    _, data, _, _, kept = interrupted
    runs = run_demo.prepare_runs(str(kept), str(data), [*TINY_OPTS, "SOLVER.BASE_LR", "0.002"])
    assert [r.kept for r in runs] == [0, 0]
    assert not (kept / "stdd").exists()
    assert f"STDD (stcross_attend): the 1 epochs kept in {kept / 'stdd'} were trained with other settings: " \
           "starting over" in capsys.readouterr().out


@pytest.mark.slow
def test_a_finished_demo_starts_over_and_drops_its_old_report(resumed, tmp_path):
    out, data, *_ = resumed
    finished = tmp_path / "out"
    shutil.copytree(out, finished)
    assert {"stdd", "baseline", "report.json", "report.md", "curves.png"} <= set(os.listdir(finished))
    runs = run_demo.prepare_runs(str(finished), str(data), TINY_OPTS)
    assert [r.kept for r in runs] == [0, 0]
    assert os.listdir(finished) == []


def test_the_demo_says_first_what_it_does_and_how_long_on_an_idle_two_core_machine(tmp_path):
    data = tmp_path / "dataset"
    runs = run_demo.prepare_runs(str(tmp_path), str(data), [])
    lines = run_demo.plan_lines(runs, str(data), ready=False)
    assert lines[0].startswith("demo: STDD and the frame-averaging baseline, 5 epochs each on 512 synthetic videos")
    assert "then a test on 256 videos (the dataset is generated first" in lines[0]
    assert lines[0].endswith(": about 5 min on an idle 2-core machine, longer on a busy one")
    assert lines[-1] == "Ctrl-C keeps the checkpoint of every finished epoch; the same command then resumes from there"


def test_the_estimate_counts_only_the_epochs_left(tmp_path):
    runs = run_demo.prepare_runs(str(tmp_path), str(tmp_path / "dataset"), [])
    fresh = run_demo.estimate_seconds(runs, 512, generate=False)
    for r in runs:
        r.kept = 4
    assert run_demo.estimate_seconds(runs, 512, generate=False) < fresh / 3
