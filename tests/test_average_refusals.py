"""`stdd-average` refusals: one line each, nothing half-written, earlier outputs kept.

Checkpoints of different models, numeric flags out of range (and extreme ones that must still give
weights), an output folder that cannot be written, a full disk and Ctrl-C.
"""

import math
import os
import resource
import signal
import subprocess
import sys

import pytest
import torch
from helpers import ROOT, config_from, ctrl_c_as_in_a_terminal

from slowfast.cli.average import main

TOOL = os.path.join(ROOT, "weight_average_tool.py")


def _write_checkpoint(directory, epoch_id, cfg_values=None, size=8):
    """An engine-style checkpoint (1-based id in the name, 0-based epoch inside) storing the full config
    of `cfg_values` as training does."""
    os.makedirs(directory, exist_ok=True)
    g = torch.Generator().manual_seed(epoch_id)
    state = {"model.visual.proj": torch.randn(size, size, generator=g), "raw_model.visual.proj": torch.randn(4, 4, generator=g)}
    cfg = config_from(cfg_values or {}, check=False).dump()
    path = os.path.join(directory, f"checkpoint_epoch_{epoch_id:05d}.pyth")
    torch.save({"epoch": epoch_id - 1, "model_state": state, "cfg": cfg}, path)
    return path


def _checkpoints(tmp_path, n=3, size=8):
    d = tmp_path / "ck"
    for i in range(1, n + 1):
        _write_checkpoint(str(d), i, size=size)
    return str(d)


def _files(directory):
    return sorted(os.listdir(directory)) if os.path.isdir(directory) else None


# ----------------------------------------------------------------------------------------------------
# Checkpoints trained as different models
# ----------------------------------------------------------------------------------------------------

CUSTOM = {"MODEL.ARCH": "custom", "MODEL.CUSTOM_CLIP.VISION_WIDTH": 32}
MODEL_MISMATCHES = [
    # (config of epochs 1-2, config of epoch 3, the first differing key, its value in epoch 1, in epoch 3)
    ({"MODEL.ARCH": "vitb16"}, {"MODEL.ARCH": "vitb32"}, "MODEL.ARCH", "'vitb16'", "'vitb32'"),
    ({"MODEL.TEMPORAL_MODELING_TYPE": "stcross_attend"}, {"MODEL.TEMPORAL_MODELING_TYPE": "None"},
     "MODEL.TEMPORAL_MODELING_TYPE", "'stcross_attend'", "None"),
    ({"DATA.NUM_FRAMES": 8}, {"DATA.NUM_FRAMES": 16}, "DATA.NUM_FRAMES", "8", "16"),
    ({"MODEL.TEMPORAL_MODELING_TYPE": "stcross_attend", "MODEL.MASK_RATE": 0.5},
     {"MODEL.TEMPORAL_MODELING_TYPE": "stcross_attend", "MODEL.MASK_RATE": 0.75}, "MODEL.MASK_RATE", "0.5", "0.75"),
    (CUSTOM, {**CUSTOM, "MODEL.CUSTOM_CLIP.VISION_WIDTH": 64}, "MODEL.CUSTOM_CLIP.VISION_WIDTH", "32", "64"),
]


@pytest.mark.parametrize("first,odd,key,in_first,in_odd", MODEL_MISMATCHES, ids=[r[2] for r in MODEL_MISMATCHES])
def test_checkpoints_of_different_models_are_refused_naming_both_files_and_the_key(
        tmp_path, run_cli, first, odd, key, in_first, in_odd):
    src, out = tmp_path / "ck", tmp_path / "avg"
    paths = [_write_checkpoint(str(src), i, first) for i in (1, 2)] + [_write_checkpoint(str(src), 3, odd)]
    code, err = run_cli(main, ["--source-dir", str(src), "--output-dir", str(out), "--methods", "swa", "gwa"])
    assert (code, err) == (1, f"error: {paths[0]} and {paths[2]} were trained as different models: {key} is "
                              f"{in_first} in the first and {in_odd} in the second; average checkpoints of one run only")
    assert not out.exists()


def test_checkpoints_differing_only_outside_the_model_keys_are_averaged(tmp_path, run_cli):
    src, out = tmp_path / "ck", tmp_path / "avg"
    _write_checkpoint(str(src), 1, {"MODEL.ARCH": "vitb32", "TRAIN.BATCH_SIZE": 8})
    _write_checkpoint(str(src), 2, {"MODEL.ARCH": "vitb32", "TRAIN.BATCH_SIZE": 16, "SOLVER.BASE_LR": 0.5})
    assert run_cli(main, ["--source-dir", str(src), "--output-dir", str(out)]) == (0, "")
    assert (out / "swa_1_2.pth").is_file()


# ----------------------------------------------------------------------------------------------------
# Numeric flags
# ----------------------------------------------------------------------------------------------------

NUMERIC_FLAGS = [
    # (flags, exit status, the one line on stderr, the method's weights over epochs 1..3 when it succeeds)
    (["--methods", "gwa", "--gauss-sigma", "1e-300"], 0, "", [0.0, 0.0, 1.0]),  # all on the epoch nearest mu 15
    (["--methods", "gwa", "--gauss-mu", "2", "--gauss-sigma", "1e-300"], 0, "", [0.0, 1.0, 0.0]),
    (["--methods", "gwa", "--gauss-mu", "2", "--gauss-sigma", "1e300"], 0, "", [1 / 3] * 3),
    (["--methods", "bwa", "--beta-a", "1e300"], 0, "", [0.0, 0.0, 1.0]),  # Beta(huge, 0.5): all on the last rank
    (["--methods", "bwa", "--beta-b", "1e300"], 0, "", [1.0, 0.0, 0.0]),
    (["--gauss-sigma", "0"], 1, "error: --gauss-sigma (gauss_sigma) must be a finite number > 0, got 0.0", None),
    (["--gauss-sigma", "-1"], 1, "error: --gauss-sigma (gauss_sigma) must be a finite number > 0, got -1.0", None),
    (["--gauss-sigma", "nan"], 1, "error: --gauss-sigma (gauss_sigma) must be a finite number > 0, got nan", None),
    (["--gauss-sigma", "inf"], 1, "error: --gauss-sigma (gauss_sigma) must be a finite number > 0, got inf", None),
    (["--gauss-mu", "nan"], 1, "error: --gauss-mu (gauss_mu) must be a finite number, got nan", None),
    (["--gauss-mu=-inf"], 1, "error: --gauss-mu (gauss_mu) must be a finite number, got -inf", None),
    (["--beta-a", "0"], 1, "error: --beta-a (beta_a) must be a finite number > 0, got 0.0", None),
    (["--beta-a", "nan"], 1, "error: --beta-a (beta_a) must be a finite number > 0, got nan", None),
    (["--beta-b", "inf"], 1, "error: --beta-b (beta_b) must be a finite number > 0, got inf", None),
    (["--ewa-decay", "1.5"], 1, "error: --ewa-decay (ewa_decay) must be a number in [0, 1], got 1.5", None),
    (["--ewa-decay", "nan"], 1, "error: --ewa-decay (ewa_decay) must be a number in [0, 1], got nan", None),
    (["--start", "0"], 1, "error: --start must be an epoch id >= 1 (checkpoint ids are 1-based), got 0", None),
    (["--end=-2"], 1, "error: --end must be an epoch id >= 1 (checkpoint ids are 1-based), got -2", None),
    (["--start", "3", "--end", "2"], 1, "error: --start 3 is after --end 2", None),
]


@pytest.mark.parametrize("flags,code,line,weights", NUMERIC_FLAGS, ids=[" ".join(r[0]) for r in NUMERIC_FLAGS])
def test_numeric_flags_are_checked_and_extreme_values_give_finite_weights(tmp_path, run_cli, flags, code, line, weights):
    src, out = _checkpoints(tmp_path), tmp_path / "avg"
    assert run_cli(main, ["--source-dir", src, "--output-dir", str(out), *flags]) == (code, line)
    if weights is None:
        assert not out.exists()
        return
    method = flags[flags.index("--methods") + 1]
    got = torch.load(out / f"{method}_1_3.pth", weights_only=True)
    assert got["meta"]["weights"] == pytest.approx(weights, abs=1e-12)
    assert all(math.isfinite(w) for w in got["meta"]["weights"])
    assert torch.isfinite(got["model_state"]["model.visual.proj"]).all()


@pytest.mark.parametrize("ratio", ["nan", "-0.5", "1.5"])
def test_patch_ratio_outside_0_1_is_refused_before_reading_anything(tmp_path, run_cli, ratio):
    ckpt = _write_checkpoint(str(tmp_path / "ck"), 4)
    torch.save({"visual.proj": torch.zeros(8, 8)}, tmp_path / "clip.pt")
    out = tmp_path / "patched.pth"
    code, err = run_cli(main, ["--patch", ckpt, "--clip", str(tmp_path / "clip.pt"), "--ratio", ratio, "--output", str(out)])
    assert (code, err) == (1, f"error: --ratio must be in [0, 1] (0 = the checkpoint, 1 = raw CLIP), got {float(ratio)}")
    assert not out.exists()


# ----------------------------------------------------------------------------------------------------
# The output folder
# ----------------------------------------------------------------------------------------------------


def _a_file(tmp_path):
    path = tmp_path / "taken"
    path.write_text("mine")
    return str(path)


IN_THE_WAY = "error: --output-dir {out} cannot be created: a regular file is in the way"
OUTPUT_DIRS = [
    # (id, output folder made from tmp_path, the line on stderr ("..." ends a prefix: the OS's reason follows))
    ("is-a-file", _a_file, IN_THE_WAY),
    ("under-a-file", lambda t: os.path.join(_a_file(t), "avg"), IN_THE_WAY),
    # sysfs refuses new files to root too (os.access would say yes there).
    ("read-only-sysfs", lambda t: "/sys/stdd-average-test", "error: --output-dir {out} is not writable (..."),
]


@pytest.mark.parametrize("make_out,line", [r[1:] for r in OUTPUT_DIRS], ids=[r[0] for r in OUTPUT_DIRS])
def test_an_output_folder_that_cannot_be_written_is_one_line_before_any_averaging(tmp_path, run_cli, make_out, line):
    src = _checkpoints(tmp_path)
    out = make_out(tmp_path)
    if out.startswith("/sys/") and not os.path.isdir("/sys"):
        pytest.skip("no /sys on this system")
    code, err = run_cli(main, ["--source-dir", src, "--output-dir", out])
    expected = line.format(out=out)
    assert code == 1 and "\n" not in err
    if expected.endswith("..."):
        assert err.startswith(expected[:-3]) and err.endswith(")"), err
    else:
        assert err == expected
    if (tmp_path / "taken").exists():
        assert (tmp_path / "taken").read_text() == "mine"
    else:
        assert not os.path.exists(out)


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into a read-only folder (the /sys case covers root)")
def test_a_read_only_output_folder_is_one_line(tmp_path, run_cli):
    src, out = _checkpoints(tmp_path), tmp_path / "ro"
    out.mkdir()
    out.chmod(0o555)
    try:
        code, err = run_cli(main, ["--source-dir", src, "--output-dir", str(out)])
    finally:
        out.chmod(0o755)
    assert (code, err) == (1, f"error: --output-dir {out} is not writable (Permission denied)")
    assert os.listdir(out) == []


def test_a_full_disk_is_one_line_naming_the_file_and_keeps_the_finished_outputs(tmp_path, run_cli):
    """The file-size limit (RLIMIT_FSIZE) makes every write past it fail as a full disk does (EFBIG)."""
    src, out = _checkpoints(tmp_path, size=128), tmp_path / "avg"  # outputs of about 70 KB
    assert run_cli(main, ["--source-dir", src, "--output-dir", str(out), "--methods", "swa"]) == (0, "")
    finished = (out / "swa_1_3.pth").read_bytes()
    before = _files(out)

    def limit():
        resource.setrlimit(resource.RLIMIT_FSIZE, (16 * 1024, 16 * 1024))

    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}
    proc = subprocess.run([sys.executable, TOOL, "--source-dir", src, "--output-dir", str(out), "--methods", "gwa", "bwa"],
                          capture_output=True, text=True, preexec_fn=limit, env=env)
    assert (proc.returncode, proc.stderr.strip()) == (
        1, f"error: no room to write {out / 'gwa_1_3.pth'} (File too large): nothing of it is left; "
           "make room and run the command again")
    assert _files(out) == before == ["env.json", "env.txt", "swa_1_3.pth"]  # no partial gwa, no temp file
    assert (out / "swa_1_3.pth").read_bytes() == finished


# ----------------------------------------------------------------------------------------------------
# Ctrl-C
# ----------------------------------------------------------------------------------------------------

# Runs the command with torch.load or torch.save wrapped so that the n-th call stops (after the first bytes
# of the file, for a save) and prints PAUSED; the test then sends a real SIGINT.
_CHILD = r"""
import sys, time
import torch
sys.path.insert(0, {root!r})
from slowfast.cli.average import main

what, nth = sys.argv[1], int(sys.argv[2])
calls = {{"load": 0, "save": 0}}
real_load, real_save = torch.load, torch.save

def pause():
    print("PAUSED", flush=True)
    while True:  # until the SIGINT arrives
        time.sleep(0.05)

class PausingFile:
    def __init__(self, f):
        self.f, self.writes = f, 0
    def write(self, data):
        n = self.f.write(data)
        self.writes += 1
        if self.writes == 2:
            self.f.flush()
            pause()
        return n
    def __getattr__(self, name):
        return getattr(self.f, name)

def load(*args, **kwargs):
    calls["load"] += 1
    if what == "load" and calls["load"] == nth:
        pause()
    return real_load(*args, **kwargs)

def save(obj, f, *args, **kwargs):
    calls["save"] += 1
    return real_save(obj, PausingFile(f) if what == "save" and calls["save"] == nth else f, *args, **kwargs)

torch.load, torch.save = load, save
sys.exit(main(sys.argv[3:]))
"""

INTERRUPTS = [
    # (id, what pauses, which call, files left in the output folder: None = no folder)
    ("while-reading-the-first-checkpoint", "load", 1, None),
    ("while-writing-the-first-output", "save", 1, []),
    ("while-writing-the-second-output", "save", 2, ["swa_1_3.pth"]),
]


@pytest.mark.parametrize("what,nth,left", [r[1:] for r in INTERRUPTS], ids=[r[0] for r in INTERRUPTS])
def test_ctrl_c_exits_130_with_one_line_and_leaves_no_partial_file(tmp_path, what, nth, left):
    src, out = _checkpoints(tmp_path, size=128), tmp_path / "avg"
    argv = ["--source-dir", src, "--output-dir", str(out), "--methods", "swa", "gwa"]
    proc = subprocess.Popen([sys.executable, "-c", _CHILD.format(root=ROOT), what, str(nth), *argv],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, preexec_fn=ctrl_c_as_in_a_terminal)
    try:
        for line in proc.stdout:
            if line.strip() == "PAUSED":
                break
        else:
            pytest.fail(f"the command ended before the pause: {proc.communicate()}")
        if what == "save":  # the pause is inside the write: part of the output is on disk now
            assert any(n.endswith(".tmp") and os.path.getsize(out / n) > 0 for n in os.listdir(out))
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=600)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert (proc.returncode, err.strip()) == (130, "interrupted: nothing half-written is kept; run the command again")
    assert _files(out) == left
    if left:
        assert set(torch.load(out / "swa_1_3.pth", weights_only=True)) == {"model_state", "meta", "cfg", "env"}
