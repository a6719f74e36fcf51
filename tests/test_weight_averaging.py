"""Checkpoint averaging (swa/gwa/bwa/ewa), streaming memory, robustness and weight-space patching."""

import math
import os
import signal
import subprocess
import sys

import numpy as np
import pytest
import torch
from helpers import ROOT

from slowfast.averaging import (
    SchemeParams,
    WeightAveragingError,
    patch_state_dict,
    scheme_weights,
)
from slowfast.benchmarks.averaging_memory import peak_rss_of_averaging, write_synthetic_checkpoints
from slowfast.cli.average import build_parser, main
from slowfast.clip import CLIP, random_clip_state_dict

TOOL = os.path.join(ROOT, "weight_average_tool.py")
ADAPTER_KEY = "model.visual.transformer.resblocks.0.message_fc.weight"


def _write_checkpoint(directory, epoch_id, state, **extra):
    """An engine-style checkpoint file (1-based id in the name, 0-based epoch inside)."""
    os.makedirs(directory, exist_ok=True)
    obj = {"epoch": epoch_id - 1, "model_state": state, "optimizer_state": {"state": {}, "param_groups": [{"lr": 0.1}]},
           "cfg": "TRAIN:\n  ENABLE: true\n"}
    obj.update(extra)
    path = os.path.join(directory, f"checkpoint_epoch_{epoch_id:05d}.pyth")
    torch.save(obj, path)
    return path


def _toy_state(seed):
    g = torch.Generator().manual_seed(seed)
    return {
        "model.visual.proj": torch.randn(6, 4, generator=g),
        ADAPTER_KEY: torch.randn(3, 3, generator=g),
        "model.counter": torch.tensor([seed], dtype=torch.int64),
        "raw_model.visual.proj": torch.randn(6, 4, generator=g),
        "projector_v.0.weight": torch.randn(4, 4, generator=g),
    }


def _load(path):
    return torch.load(path, map_location="cpu", weights_only=True)


def _np(t):
    return t.double().numpy()


@pytest.fixture()
def gapped_dir(tmp_path):
    """Checkpoints 1, 2, 3, 5, 8, 9, 12: averaging 2..9 must use ids 2, 3, 5, 8, 9 (gaps at 4, 6, 7)."""
    d = tmp_path / "checkpoints"
    states = {}
    for i in (1, 2, 3, 5, 8, 9, 12):
        states[i] = _toy_state(i)
        _write_checkpoint(str(d), i, states[i])
    return str(d), states


def test_four_schemes_match_numpy_on_present_ids(gapped_dir, tmp_path):
    src, states = gapped_dir
    out = tmp_path / "avg"
    assert main(["--source-dir", src, "--output-dir", str(out), "--start", "2", "--end", "9",
                 "--methods", "swa", "gwa", "bwa", "ewa"]) == 0
    ids = [2, 3, 5, 8, 9]
    n = len(ids)
    gauss = np.exp(-0.5 * ((np.array(ids) - 15.0) / 10.0) ** 2)
    x = (np.arange(n) + 0.5) / n
    beta = x ** -0.5 * (1 - x) ** -0.5 / (math.gamma(0.5) ** 2 / math.gamma(1.0))
    expected_w = {"swa": np.full(n, 1 / n), "gwa": gauss / gauss.sum(), "bwa": beta / beta.sum()}
    for key in ("model.visual.proj", ADAPTER_KEY, "projector_v.0.weight"):
        stack = np.stack([_np(states[i][key]) for i in ids])
        expected = {m: np.tensordot(w, stack, axes=1) for m, w in expected_w.items()}
        ema = stack[0]
        for s in stack[1:]:
            ema = 0.9 * ema + 0.1 * s
        expected["ewa"] = ema
        for m, value in expected.items():
            got = _load(out / f"{m}_2_9.pth")["model_state"][key]
            np.testing.assert_allclose(_np(got), value, rtol=1e-5, atol=1e-6, err_msg=f"{m} {key}")
    for m in ("swa", "gwa", "bwa"):
        meta = _load(out / f"{m}_2_9.pth")["meta"]
        np.testing.assert_allclose(meta["weights"], expected_w[m], rtol=1e-12)
        assert meta["source_ids"] == ids and meta["method"] == m


def test_teacher_and_integer_buffers_are_carried_from_the_last_checkpoint(gapped_dir, tmp_path):
    src, states = gapped_dir
    assert main(["--source-dir", src, "--output-dir", str(tmp_path), "--start", "2", "--end", "9"]) == 0
    state = _load(tmp_path / "swa_2_9.pth")["model_state"]
    assert torch.equal(state["raw_model.visual.proj"], states[9]["raw_model.visual.proj"])
    assert torch.equal(state["model.counter"], states[9]["model.counter"])
    assert list(state) == list(states[9])


def test_ewa_explicit_weights_equal_the_sequential_recursion():
    n, d = 7, 0.8
    # Run the recursion on one-hot "checkpoints": the result is each checkpoint's weight.
    theta = np.eye(n)[0]
    for i in range(1, n):
        theta = d * theta + (1 - d) * np.eye(n)[i]
    np.testing.assert_allclose(scheme_weights("ewa", list(range(1, n + 1)), SchemeParams(ewa_decay=d)), theta, rtol=1e-12)


def test_gwa_and_bwa_equal_the_original_formulas_when_all_21_files_are_present():
    ids = list(range(2, 23))
    g = np.exp(-((np.arange(2, 23) - 15.0) ** 2) / 200.0)
    x = (np.arange(21) + 0.5) / 21
    b = 1 / np.sqrt(x * (1 - x))
    np.testing.assert_allclose(scheme_weights("gwa", ids), g / g.sum(), rtol=1e-12)
    np.testing.assert_allclose(scheme_weights("bwa", ids), b / b.sum(), rtol=1e-12)


def _clip_checkpoints(directory, config, ids, dtype=torch.float32):
    states = {}
    for i in ids:
        sd = random_clip_state_dict(config, seed=100 + i)
        state = {"model." + k: v.to(dtype) for k, v in sd.items()}
        state[ADAPTER_KEY] = torch.randn(8, 8, generator=torch.Generator().manual_seed(i)).to(dtype)
        state["raw_model.visual.proj"] = sd["visual.proj"].clone().to(dtype)
        state["projector_v.0.weight"] = torch.full((4, 4), float(i), dtype=dtype)
        states[i] = state
        _write_checkpoint(directory, i, state)
    return states


def test_keys_clip_averages_clip_keys_and_carries_adapters_from_the_last_checkpoint(tmp_path, tiny_clip_config):
    states = _clip_checkpoints(str(tmp_path / "ck"), tiny_clip_config, [1, 2, 3])
    assert main(["--source-dir", str(tmp_path / "ck"), "--output-dir", str(tmp_path / "o"), "--keys", "clip"]) == 0
    got = _load(tmp_path / "o" / "swa_1_3.pth")["model_state"]
    mean = (states[1]["model.visual.proj"] + states[2]["model.visual.proj"] + states[3]["model.visual.proj"]) / 3
    torch.testing.assert_close(got["model.visual.proj"], mean)
    assert torch.equal(got[ADAPTER_KEY], states[3][ADAPTER_KEY])
    assert torch.equal(got["projector_v.0.weight"], states[3]["projector_v.0.weight"])


def test_keys_all_averages_adapter_and_projector_weights(tmp_path, tiny_clip_config):
    states = _clip_checkpoints(str(tmp_path / "ck"), tiny_clip_config, [1, 2, 3])
    assert main(["--source-dir", str(tmp_path / "ck"), "--output-dir", str(tmp_path / "o")]) == 0
    got = _load(tmp_path / "o" / "swa_1_3.pth")["model_state"]
    torch.testing.assert_close(got[ADAPTER_KEY], sum(states[i][ADAPTER_KEY] for i in (1, 2, 3)) / 3)
    torch.testing.assert_close(got["projector_v.0.weight"], torch.full((4, 4), 2.0))


def test_output_keeps_the_checkpoints_dtype(tmp_path, tiny_clip_config):
    states = _clip_checkpoints(str(tmp_path / "ck"), tiny_clip_config, [1, 2], dtype=torch.float16)
    assert main(["--source-dir", str(tmp_path / "ck"), "--output-dir", str(tmp_path / "o")]) == 0
    got = _load(tmp_path / "o" / "swa_1_2.pth")["model_state"]
    assert got["model.visual.proj"].dtype == torch.float16
    expected = (states[1]["model.visual.proj"].float() + states[2]["model.visual.proj"].float()) / 2
    torch.testing.assert_close(got["model.visual.proj"], expected.half())


def _check_raw_clip_average(out_file, clip_sd, states):
    """gwa with raw CLIP as id 0: CLIP keys over ids 0, 2, 3; other keys over 2, 3 with rescaled weights."""
    g = np.exp(-0.5 * ((np.array([0, 2, 3]) - 15.0) / 10.0) ** 2)
    w = g / g.sum()
    got = _load(out_file)
    state = got["model_state"]
    for k in ("visual.proj", "transformer.resblocks.1.mlp.c_fc.weight", "logit_scale"):
        expected = w[0] * _np(clip_sd[k]) + w[1] * _np(states[2]["model." + k]) + w[2] * _np(states[3]["model." + k])
        np.testing.assert_allclose(_np(state["model." + k]), expected, rtol=1e-5, atol=1e-6, err_msg=k)
    wc = w[1:] / w[1:].sum()
    expected = wc[0] * _np(states[2][ADAPTER_KEY]) + wc[1] * _np(states[3][ADAPTER_KEY])
    np.testing.assert_allclose(_np(state[ADAPTER_KEY]), expected, rtol=1e-5, atol=1e-6)
    assert got["meta"]["source_ids"] == [0, 2, 3]


def test_include_raw_clip_state_dict_is_epoch_zero_for_clip_keys(tmp_path, tiny_clip_config):
    states = _clip_checkpoints(str(tmp_path / "ck"), tiny_clip_config, [1, 2, 3])
    clip_sd = random_clip_state_dict(tiny_clip_config, seed=7)
    torch.save(clip_sd, tmp_path / "clip.pt")
    assert main(["--source-dir", str(tmp_path / "ck"), "--output-dir", str(tmp_path / "o"), "--start", "2",
                 "--methods", "gwa", "--include-raw-clip", str(tmp_path / "clip.pt")]) == 0
    _check_raw_clip_average(tmp_path / "o" / "gwa_2_3_rawclip.pth", clip_sd, states)


@pytest.mark.filterwarnings("ignore::FutureWarning")  # torch.jit deprecation notices
def test_include_raw_clip_reads_a_torchscript_archive(tmp_path, tiny_clip_config):
    states = _clip_checkpoints(str(tmp_path / "ck"), tiny_clip_config, [2, 3])
    model = CLIP(tiny_clip_config).eval().half()  # OpenAI archives are fp16 and carry metadata buffers
    model.register_buffer("input_resolution", torch.tensor(tiny_clip_config.image_resolution))
    image = torch.zeros(1, 3, tiny_clip_config.image_resolution, tiny_clip_config.image_resolution, dtype=torch.half)
    traced = torch.jit.trace_module(model, {"encode_image": image}, check_trace=False)
    torch.jit.save(traced, str(tmp_path / "clip_jit.pt"))
    clip_sd = {k: v for k, v in model.state_dict().items() if k != "input_resolution"}
    assert main(["--source-dir", str(tmp_path / "ck"), "--output-dir", str(tmp_path / "o"), "--methods", "gwa",
                 "--include-raw-clip", str(tmp_path / "clip_jit.pt")]) == 0
    _check_raw_clip_average(tmp_path / "o" / "gwa_2_3_rawclip.pth", clip_sd, states)


def test_stray_files_and_skipped_unreadable_checkpoints_are_ignored_with_a_note(gapped_dir, tmp_path, capsys):
    src, _ = gapped_dir
    with open(os.path.join(src, "notes.txt"), "w") as f:
        f.write("not a checkpoint")
    with open(os.path.join(src, "checkpoint_epoch_00004.pyth"), "wb") as f:
        f.write(b"truncated")
    torch.save({"epoch": 5}, os.path.join(src, "checkpoint_epoch_00006.pyth"))  # no model_state
    os.makedirs(os.path.join(src, "last_checkpoint"))
    assert main(["--source-dir", src, "--output-dir", str(tmp_path / "o"), "--start", "2", "--end", "9",
                 "--skip-unreadable"]) == 0
    printed = capsys.readouterr().out
    for name in ("notes.txt", "checkpoint_epoch_00004.pyth", "checkpoint_epoch_00006.pyth", "last_checkpoint"):
        assert f"ignored {os.path.join(src, name)}" in printed
    meta = _load(tmp_path / "o" / "swa_2_9.pth")["meta"]
    assert meta["source_ids"] == [2, 3, 5, 8, 9]


@pytest.mark.parametrize("change", ["extra_key", "shape"])
def test_mismatched_checkpoint_stops_naming_file_and_key(gapped_dir, tmp_path, capsys, change):
    src, states = gapped_dir
    bad = dict(states[5])
    if change == "extra_key":
        bad["model.surprise"] = torch.zeros(2)
        key = "model.surprise"
    else:
        bad["projector_v.0.weight"] = torch.zeros(5, 4)
        key = "projector_v.0.weight"
    bad_path = _write_checkpoint(src, 5, bad)
    assert main(["--source-dir", src, "--output-dir", str(tmp_path / "o"), "--start", "2", "--end", "9"]) == 1
    err = capsys.readouterr().err
    assert bad_path in err and repr(key) in err
    assert not (tmp_path / "o").exists()


def test_epoch_entry_disagreeing_with_file_name_stops(gapped_dir, tmp_path, capsys):
    src, states = gapped_dir
    path = _write_checkpoint(src, 5, states[5], epoch=6)
    assert main(["--source-dir", src, "--output-dir", str(tmp_path / "o")]) == 1
    assert path in capsys.readouterr().err


def test_dry_run_prints_weights_and_writes_nothing(gapped_dir, tmp_path, capsys):
    src, _ = gapped_dir
    out = tmp_path / "o"
    assert main(["--source-dir", src, "--output-dir", str(out), "--start", "2", "--end", "9",
                 "--methods", "swa", "ewa", "--dry-run"]) == 0
    printed = capsys.readouterr().out
    assert not out.exists()
    ewa = scheme_weights("ewa", [2, 3, 5, 8, 9])
    assert f"{0.2:10.6f}{ewa[0]:10.6f}  {os.path.join(src, 'checkpoint_epoch_00002.pyth')}" in printed


@pytest.mark.slow
def test_peak_memory_of_20_checkpoints_stays_below_three_checkpoint_sizes(tmp_path):
    # Stacking the 20 files (the original tool) measures about 20x here; streaming about 2x.
    size = write_synthetic_checkpoints(str(tmp_path / "ck"), 20, size_mb=6, teacher_fraction=0.25)
    r = peak_rss_of_averaging(["--source-dir", str(tmp_path / "ck"), "--output-dir", str(tmp_path / "o"), "--methods", "swa"])
    assert r["rc"] == 0
    assert (tmp_path / "o" / "swa_1_20.pth").is_file()
    assert r["delta_mb"] * 2**20 < 3 * size, r


# Runs a script (the arguments after it) so that its first write past KILL_PAST bytes of a file kills it with
# SIGXFSZ: a kill in the middle of writing the first output, at the same byte on every machine however fast
# (Python ignores SIGXFSZ unless told otherwise; no core file).
KILL_PAST = 4 * 2**20
KILLED_MID_WRITE = (
    "import resource, runpy, signal, sys\n"
    f"resource.setrlimit(resource.RLIMIT_FSIZE, ({KILL_PAST}, {KILL_PAST}))\n"
    "resource.setrlimit(resource.RLIMIT_CORE, (0, 0))\n"
    "signal.signal(signal.SIGXFSZ, signal.SIG_DFL)\n"
    "sys.argv = sys.argv[1:]\n"
    "runpy.run_path(sys.argv[0], run_name='__main__')\n"
)


@pytest.mark.slow
@pytest.mark.skipif(not hasattr(signal, "SIGXFSZ"), reason="needs POSIX file-size limits")
def test_killed_run_leaves_no_partial_output_and_a_rerun_succeeds(tmp_path):
    src, out = tmp_path / "ck", tmp_path / "o"
    write_synthetic_checkpoints(str(src), 3, size_mb=16)
    args = ["--source-dir", str(src), "--output-dir", str(out), "--start", "1", "--end", "3",
            "--methods", "swa", "gwa", "bwa", "ewa"]
    proc = subprocess.run([sys.executable, "-c", KILLED_MID_WRITE, TOOL, *args], capture_output=True, timeout=600)
    assert proc.returncode == -signal.SIGXFSZ, proc.stderr.decode()[-2000:]
    partial = [n for n in os.listdir(out) if n.endswith(".tmp")]
    assert len(partial) == 1 and os.path.getsize(out / partial[0]) == KILL_PAST  # the kill did cut a write short
    for name in os.listdir(out):  # whatever .pth exists is complete
        if name.endswith(".pth"):
            assert set(_load(out / name)) == {"model_state", "meta"}
    assert not (out / "ewa_1_3.pth").exists()
    assert main(args) == 0  # the same command again, in-process
    assert sorted(os.listdir(out)) == ["bwa_1_3.pth", "env.json", "env.txt", "ewa_1_3.pth", "gwa_1_3.pth", "swa_1_3.pth"]
    assert len(_load(out / "swa_1_3.pth")["model_state"]) > 1


def test_patch_state_dict_blends_clip_keys_only():
    clip = {"visual.proj": torch.ones(2, 2).half(), "logit_scale": torch.tensor(4.0)}
    state = {"model.visual.proj": torch.zeros(2, 2), "model.logit_scale": torch.tensor(2.0),
             "model.adapter.w": torch.ones(3), "raw_model.visual.proj": torch.full((2, 2), 5.0)}
    out = patch_state_dict(state, clip, 0.25)
    torch.testing.assert_close(out["model.visual.proj"], torch.full((2, 2), 0.25))
    torch.testing.assert_close(out["model.logit_scale"], torch.tensor(2.5))
    assert out["model.adapter.w"] is state["model.adapter.w"]
    assert out["raw_model.visual.proj"] is state["raw_model.visual.proj"]


def test_patch_state_dict_refuses_ratio_outside_unit_interval_and_missing_keys():
    with pytest.raises(WeightAveragingError, match="ratio"):
        patch_state_dict({"model.a": torch.zeros(1)}, {"a": torch.ones(1)}, 1.5)
    with pytest.raises(WeightAveragingError, match="'model.b'"):
        patch_state_dict({"model.a": torch.zeros(1)}, {"b": torch.ones(1)}, 0.5)


def test_patch_cli_writes_the_patched_checkpoint(tmp_path, tiny_clip_config):
    states = _clip_checkpoints(str(tmp_path / "ck"), tiny_clip_config, [4])
    clip_sd = random_clip_state_dict(tiny_clip_config, seed=9)
    torch.save(clip_sd, tmp_path / "clip.pt")
    ckpt = tmp_path / "ck" / "checkpoint_epoch_00004.pyth"
    assert main(["--patch", str(ckpt), "--clip", str(tmp_path / "clip.pt"), "--ratio", "0.6",
                 "--output", str(tmp_path / "patched.pth")]) == 0
    got = _load(tmp_path / "patched.pth")
    expected = 0.6 * clip_sd["visual.proj"] + 0.4 * states[4]["model.visual.proj"]
    torch.testing.assert_close(got["model_state"]["model.visual.proj"], expected)
    assert torch.equal(got["model_state"][ADAPTER_KEY], states[4][ADAPTER_KEY])
    assert got["meta"]["ratio"] == 0.6


def test_help_documents_every_flag():
    undocumented = [a.option_strings for a in build_parser()._actions if a.option_strings and not a.help]
    assert undocumented == []
