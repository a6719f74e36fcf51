"""What `stdd-run` (and the commands that test through the engine) refuse or stop on, each with one line and
nothing misleading left on disk: NaN scores, NaN weights at a checkpoint, a full disk while saving, Ctrl-C,
no config at all; and the newcomer's first command of docs/getting_started.md, with its per-class report."""

import json
import os
import re
import shlex
import signal
import subprocess
import sys

import pytest
import torch
from helpers import ROOT, TINY_CLASSES, ctrl_c_as_in_a_terminal, moving_square_clip, tiny_run_cfg, tiny_run_opts

from slowfast.cli import prepare_dataset, run_net, zero_shot
from slowfast.models import build_model
from slowfast.utils import checkpoint as cu


def _files(folder) -> list[str]:
    """Every file under `folder`, relative, hidden (temporary) ones included."""
    return sorted(os.path.relpath(os.path.join(d, f), folder) for d, _, fs in os.walk(folder) for f in fs)


def _message_lines(stderr: str) -> list[str]:
    """stderr without the progress bars (tqdm redraws with carriage returns) and blank lines."""
    return [line for line in re.split(r"[\r\n]", stderr) if line.strip() and not re.search(r"\| *\d+/\d+ \[", line)]


# ---- NaN scores: no accuracy is reported ----------------------------------------------------------------
@pytest.fixture(scope="module")
def nan_weights(tiny_data, tmp_path_factory):
    """(config file, checkpoint): the tiny run's config as a YAML file, and a checkpoint of its model, made
    with that config, whose visual projection holds one NaN (as a diverged run's weights would)."""
    folder = tmp_path_factory.mktemp("nan_weights")
    cfg = tiny_run_cfg(tiny_data, str(folder / "unused"))
    cfg_file = folder / "tiny.yaml"
    cfg_file.write_text(cfg.dump())
    state = build_model(cfg).state_dict()
    state["model.visual.proj"][0, 0] = float("nan")
    path = folder / "nan.pyth"
    torch.save({"epoch": 0, "model_state": state, "cfg": cfg.dump()}, path)
    return str(cfg_file), str(path)


def _run_net_test(cfg_file, ckpt, out, tiny_data):
    return run_net.main, ["--cfg", cfg_file, "--opts", "TRAIN.ENABLE", "False", "TEST.ENABLE", "True",
                          "TEST.CHECKPOINT_FILE_PATH", ckpt, "OUTPUT_DIR", str(out)], out / "test_metrics.json"


def _zero_shot(cfg_file, ckpt, out, tiny_data):
    # The tiny test list as a closed-set "k400" benchmark: test.csv and index2cls.json in the data root.
    return zero_shot.main, ["--benchmark", "k400", "--data-root", tiny_data, "--video-prefix", tiny_data,
                            "--custom-classes", "--checkpoint", ckpt, "--cfg", cfg_file,
                            "--output-dir", str(out)], out / "k400" / "test_metrics.json"


@pytest.mark.parametrize("command", [_run_net_test, _zero_shot], ids=["stdd-run", "stdd-zero-shot"])
def test_nan_scores_are_refused_and_no_accuracy_is_written(command, nan_weights, tiny_data, tmp_path, run_cli):
    cfg_file, ckpt = nan_weights
    main, argv, metrics = command(cfg_file, ckpt, tmp_path / "out", tiny_data)
    metrics.parent.mkdir(parents=True)
    metrics.write_text(json.dumps({"top1_acc": 75.0, "num_videos": 4}))  # an earlier test's result
    code, err = run_cli(main, argv)
    assert code == 1
    [line] = _message_lines(err)
    assert line.startswith("error: test: the model's scores are NaN or infinite for 4 of 4 videos (e.g. "), line
    assert line.endswith(f"so no accuracy is reported; the weights of {ckpt} hold NaN or inf (first in "
                         "model.visual.proj)"), line
    assert not metrics.exists(), "a metrics file would claim an accuracy"
    assert not [f for f in _files(tmp_path / "out") if f.startswith("zero_shot_")]


# ---- NaN weights are never written as a checkpoint ---------------------------------------------------------
def _nan_after_each_step(monkeypatch) -> list[str]:
    """Make every optimizer step of the next training run leave a NaN in its first parameter (as an update
    that diverges does); returns the list that receives that parameter's name."""
    from slowfast.engine import trainer

    real, poisoned = trainer.construct_optimizer, []

    def construct(model, cfg):
        optimizer = real(model, cfg)
        first = optimizer.param_groups[0]["params"][0]
        poisoned.append(next(name for name, p in model.named_parameters() if p is first))

        def poison(*_):
            with torch.no_grad():
                first.view(-1)[0] = float("nan")

        optimizer.register_step_post_hook(poison)
        return optimizer

    monkeypatch.setattr(trainer, "construct_optimizer", construct)
    return poisoned


def test_nan_weights_are_not_saved_and_the_previous_checkpoint_stays(tiny_data, tmp_path, run_cli, monkeypatch):
    out = tmp_path / "run"
    # One batch per epoch (8 training videos): the loss is checked before each update, so weights that
    # turn NaN in the epoch's last (here: only) update reach the checkpoint unless it checks them.
    opts = {"TRAIN.BATCH_SIZE": 8, "TEST.ENABLE": False}
    code, err = run_cli(run_net.main, ["--opts", *tiny_run_opts(tiny_data, str(out), **opts, **{"SOLVER.MAX_EPOCH": 1})])
    assert code == 0, err
    first = cu.checkpoint_path(str(out), 0)
    before = open(first, "rb").read()
    poisoned = _nan_after_each_step(monkeypatch)
    code, err = run_cli(run_net.main, ["--opts", *tiny_run_opts(tiny_data, str(out), **opts, **{"SOLVER.MAX_EPOCH": 2})])
    assert code == 1
    [err] = _message_lines(err)
    assert err == (f"error: epoch 2: the weights hold NaN or inf (first in {poisoned[0]}), so checkpoint_epoch_00002.pyth "
                   f"was not written; the last complete checkpoint is {first}: lower SOLVER.BASE_LR or set "
                   "SOLVER.CLIP_GRAD_L2NORM, then rerun to resume from it")
    assert _files(out / "checkpoints") == ["checkpoint_epoch_00001.pyth"]
    assert open(first, "rb").read() == before


# ---- a full disk while saving ----------------------------------------------------------------------------
FULL_DISK = """
import resource, signal, sys
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit then fails with EFBIG
resource.setrlimit(resource.RLIMIT_FSIZE, (int(sys.argv[1]), int(sys.argv[1])))
from slowfast.cli.run_net import main
sys.exit(main(sys.argv[2:]))
"""


@pytest.mark.slow
def test_full_disk_while_saving_names_the_last_complete_checkpoint(tiny_data, tmp_path, run_cli):
    out = tmp_path / "run"
    opts = tiny_run_opts(tiny_data, str(out), **{"TRAIN.BATCH_SIZE": 8, "TEST.ENABLE": False, "SOLVER.MAX_EPOCH": 1})
    assert run_cli(run_net.main, ["--opts", *opts])[0] == 0
    first = cu.checkpoint_path(str(out), 0)
    before = open(first, "rb").read()
    limit = len(before) // 2  # the next checkpoint (as large) cannot be written; the logs are far smaller
    assert os.path.getsize(out / "stdout.log") < limit
    env = {**os.environ, "PYTHONPATH": ROOT, "PYTHONDONTWRITEBYTECODE": "1", "OMP_NUM_THREADS": "1"}
    more = tiny_run_opts(tiny_data, str(out), **{"TRAIN.BATCH_SIZE": 8, "TEST.ENABLE": False, "SOLVER.MAX_EPOCH": 2})
    r = subprocess.run([sys.executable, "-c", FULL_DISK, str(limit), "--opts", *more], capture_output=True, text=True,
                       env=env, timeout=600)
    assert r.returncode == 1, r.stderr
    assert "Traceback" not in r.stderr
    lines = _message_lines(r.stderr)
    second = cu.checkpoint_path(str(out), 1)
    assert lines == [f"error: disk full while saving {second} (File too large); the last complete checkpoint is "
                     f"{first}: make room, then rerun the same command to resume from it"], r.stderr
    assert _files(out / "checkpoints") == ["checkpoint_epoch_00001.pyth"]
    assert open(first, "rb").read() == before


# ---- Ctrl-C ----------------------------------------------------------------------------------------------
@pytest.mark.slow
@pytest.mark.parametrize("processes", [1, 2])
def test_ctrl_c_exits_130_with_one_line_naming_the_checkpoint_to_resume_from(processes, tiny_data, tmp_path):
    out = tmp_path / "run"
    # Loader workers, as in `make demo`: the terminal's Ctrl-C reaches them too.
    opts = tiny_run_opts(tiny_data, str(out), **{"SOLVER.MAX_EPOCH": 100, "TEST.ENABLE": False,
                                                 "DATA_LOADER.NUM_WORKERS": 1, "NUM_CPU_PROCS": processes})
    env = {**os.environ, "PYTHONPATH": ROOT, "OMP_NUM_THREADS": "1"}
    with open(tmp_path / "stderr.txt", "w") as err_file:
        proc = subprocess.Popen([sys.executable, os.path.join(ROOT, "tools", "run_net.py"), "--opts", *opts], env=env,
                                stdout=subprocess.DEVNULL, stderr=err_file, start_new_session=True,
                                preexec_fn=ctrl_c_as_in_a_terminal)
    log = out / "stdout.log"
    while proc.poll() is None and not (log.exists() and "saved " in log.read_text()):  # the first checkpoint
        try:
            proc.wait(timeout=0.05)
        except subprocess.TimeoutExpired:
            pass
    assert proc.poll() is None, "the run ended before it could be interrupted: " + (tmp_path / "stderr.txt").read_text()
    os.killpg(proc.pid, signal.SIGINT)  # what the terminal does: the whole process group
    proc.wait(timeout=600)
    stderr = (tmp_path / "stderr.txt").read_text()
    assert proc.returncode == 130, stderr
    assert "Traceback" not in stderr and "Exception ignored" not in stderr, stderr
    lines = _message_lines(stderr)
    last = cu.list_checkpoints(str(out))[-1]
    assert lines == [f"interrupted: the last complete checkpoint is {last}; rerun the same command to resume from it"]
    assert "model_state" in cu.read_checkpoint(last)
    assert not [f for f in _files(out / "checkpoints") if f.endswith(".tmp")]


# ---- no config -------------------------------------------------------------------------------------------
def test_run_without_a_config_asks_for_one(tmp_path, monkeypatch, run_cli):
    monkeypatch.chdir(tmp_path)
    code, err = run_cli(run_net.main, [])
    assert code == 1
    assert err == ("error: no config given: name one with --cfg, e.g. `stdd-run --cfg "
                   "configs/Synthetic/STDD_custom_8x2.yaml` (the demo's, on the data `make demo` writes); "
                   "docs/getting_started.md shows a run on your own data")
    assert os.path.isfile(os.path.join(ROOT, "configs", "Synthetic", "STDD_custom_8x2.yaml"))
    assert os.listdir(tmp_path) == []


# ---- the first run on your own data (docs/getting_started.md) ---------------------------------------------
def _first_run_commands() -> tuple[list[str], list[str]]:
    """The argv of steps 1 and 2 of "A first run on your own data", as the page writes them."""
    with open(os.path.join(ROOT, "docs", "getting_started.md"), encoding="utf-8") as f:
        page = f.read()
    section = page[page.index("## A first run on your own data"):]
    step1 = re.search(r"`(python tools/prepare_dataset\.py folder [^`]+)`", section).group(1)
    step2 = re.search(r"```bash\n(.*?)```", section, re.S).group(1).replace("\\\n", " ")
    return shlex.split(step1), shlex.split(step2)


# The page's command runs the ViT-B/16 recipe; here a tiny random CLIP on 4 frames of 32 px, on the CPU.
_TINY_MODEL = ["NUM_GPUS", "0", "MODEL.ARCH", "custom", "MODEL.CUSTOM_CLIP.IMAGE_RESOLUTION", "32",
               "MODEL.CUSTOM_CLIP.VISION_WIDTH", "64", "MODEL.CUSTOM_CLIP.VISION_LAYERS", "1",
               "MODEL.CUSTOM_CLIP.EMBED_DIM", "32", "MODEL.CUSTOM_CLIP.TEXT_WIDTH", "32", "MODEL.CUSTOM_CLIP.TEXT_LAYERS", "1",
               "DATA.NUM_FRAMES", "4", "DATA.SAMPLING_RATE", "1", "DATA.TRAIN_JITTER_SCALES", "[32, 32]",
               "DATA.TRAIN_CROP_SIZE", "32", "DATA.TEST_CROP_SIZE", "32", "DATA_LOADER.NUM_WORKERS", "0",
               "TEST.BATCH_SIZE", "8", "TEST.MIXED_PRECISION", "False"]


def test_the_first_run_on_your_own_data_tests_and_reports_per_class_accuracy(tmp_path, monkeypatch, run_cli):
    from slowfast.datasets.synthetic import write_video

    step1, step2 = _first_run_commands()
    assert step1[:2] == ["python", "tools/prepare_dataset.py"] and step2[:2] == ["python", "tools/run_net.py"]
    monkeypatch.chdir(tmp_path)
    os.symlink(os.path.join(ROOT, "configs"), "configs")
    for label, name in enumerate(TINY_CLASSES):  # 20 videos per class: 2 of each in the test list
        os.makedirs(os.path.join("my_videos", name))
        for i in range(20):
            write_video(os.path.join("my_videos", name, f"{i}.mp4"), moving_square_clip(label, 10 * i + label), fps=30)
    assert run_cli(prepare_dataset.main, step1[2:])[0] == 0
    code, err = run_cli(run_net.main, [a.replace("<K>", str(len(TINY_CLASSES))) for a in step2[2:]] + _TINY_MODEL)
    assert code == 0, err
    out = step2[step2.index("OUTPUT_DIR") + 1]
    with open(os.path.join(out, "test_metrics.json"), encoding="utf-8") as f:
        m = json.load(f)
    per_class = m["per_class"]
    assert sorted(per_class) == sorted(TINY_CLASSES)
    assert sum(c["num_videos"] for c in per_class.values()) == m["num_videos"] == 4
    weighted = sum(c["top1_acc"] * c["num_videos"] for c in per_class.values()) / m["num_videos"]
    assert weighted == pytest.approx(m["top1_acc"])
    assert all(c["top1_acc"] in (0.0, 50.0, 100.0) for c in per_class.values())
    with open(os.path.join(out, "stdout.log"), encoding="utf-8") as f:
        log = f.read()
    assert "per-class top-1:" in log
    for name, c in per_class.items():
        assert re.search(rf"{re.escape(name)}\s+{c['top1_acc']:.2f} % of 2 videos", log), name
