"""No file given as CLIP weights runs code: a TorchScript archive whose `__setstate__` writes a marker
file is read as data (its weights load, its code never runs) by every entry point."""

import json
import os
import subprocess
import sys

import pytest
import torch
from archives import clip_module_tree
from helpers import ROOT

from slowfast.clip import read_state_dict
from slowfast.config import get_cfg
from slowfast.models import build_model

pytestmark = pytest.mark.filterwarnings("ignore::FutureWarning")  # torch.jit deprecation notices


class Payload(torch.nn.Module):
    """Writes (creates) the file named by `marker` when TorchScript restores it."""

    def __init__(self, marker: str):
        super().__init__()
        self.marker = marker
        self.mapped = torch.zeros(8, dtype=torch.uint8)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x

    @torch.jit.export
    def __getstate__(self):
        return (self.marker, self.training)

    @torch.jit.export
    def __setstate__(self, state: tuple[str, bool]):
        self.marker = state[0]
        self.training = state[1]
        self.mapped = torch.from_file(state[0], shared=True, size=8, dtype=torch.uint8)


def malicious_archive(sd, path, marker):
    """A TorchScript archive with the CLIP weights of `sd` and a payload module."""
    root = clip_module_tree(sd)
    root.add_module("payload", Payload(marker))
    torch.jit.save(torch.jit.script(root), str(path))


@pytest.fixture()
def evil(tmp_path, tiny_clip_file):
    marker = tmp_path / "PWNED"
    path = tmp_path / "evil_clip.pt"
    malicious_archive(torch.load(tiny_clip_file, weights_only=True), path, str(marker))
    assert not marker.exists()
    return str(path), marker


def test_the_archive_does_run_code_when_opened_by_torch_jit_load(evil):
    path, marker = evil
    torch.jit.load(path)  # what the loader must never do with such a file
    assert marker.exists()


def test_read_state_dict_reads_the_weights_and_runs_nothing(evil, tiny_clip_file):
    path, marker = evil
    sd = read_state_dict(path)
    want = torch.load(tiny_clip_file, weights_only=True)
    assert set(sd) == set(want) and all(torch.equal(sd[k], want[k]) for k in want)
    assert not marker.exists()


def test_build_model_with_clip_weights_runs_nothing(evil, tiny_clip_file, tmp_path):
    path, marker = evil
    index = tmp_path / "index.json"
    index.write_text(json.dumps({"0": "a", "1": "b"}))
    cfg = get_cfg()
    cfg.NUM_GPUS, cfg.DATA.NUM_FRAMES, cfg.MODEL.NUM_CLASSES = 0, 2, 2
    cfg.DATA.INDEX_LABEL_MAPPING_FILE, cfg.MODEL.ARCH, cfg.MODEL.CLIP_WEIGHTS = str(index), "custom", path
    cfg.MODEL.KEEP_RAW_MODEL = True
    model = build_model(cfg)
    assert torch.equal(model.raw_model.visual.conv1.weight, torch.load(tiny_clip_file, weights_only=True)["visual.conv1.weight"])
    assert not marker.exists()


@pytest.mark.slow
def test_text_prompts_cli_clip_weights_runs_nothing(evil, tmp_path):
    path, marker = evil
    classes = tmp_path / "classes.json"
    classes.write_text(json.dumps({"0": "juggling", "1": "skiing"}))
    out = tmp_path / "feats.pt"
    proc = subprocess.run(
        [sys.executable, os.path.join(ROOT, "utils", "text_prompts.py"), "--mode", "base",
         "--classes", str(classes), "--clip-weights", path, "--output", str(out)],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
    )
    assert not marker.exists(), proc.stderr[-2000:]
    assert proc.returncode == 0 and out.exists(), proc.stderr[-2000:]


def test_an_unreadable_archive_is_refused_with_the_conversion_recipe(tmp_path):
    path = tmp_path / "odd.pt"
    torch.jit.save(torch.jit.script(Payload(str(tmp_path / "never"))), str(path))
    with pytest.raises(Exception, match="torch.jit.load\\('ViT-B-16.pt'") as err:
        read_state_dict(str(path))
    assert not (tmp_path / "never").exists() and "not opened" in str(err.value)


def test_weight_average_tool_raw_clip_and_patch_clip_run_nothing(evil, tiny_clip_file, tmp_path):
    from weight_average_tool import main as average_main

    path, marker = evil
    sd = torch.load(tiny_clip_file, weights_only=True)
    ck = tmp_path / "ck"
    ck.mkdir()
    for i in (1, 2):
        state = {"model." + k: v + i for k, v in sd.items()}
        torch.save({"epoch": i - 1, "model_state": state}, ck / f"checkpoint_epoch_{i:05d}.pyth")
    assert average_main(["--source-dir", str(ck), "--output-dir", str(tmp_path / "o"), "--include-raw-clip", path]) == 0
    assert not marker.exists()
    assert average_main(["--patch", str(ck / "checkpoint_epoch_00002.pyth"), "--clip", path, "--ratio", "0.5",
                         "--output", str(tmp_path / "patched.pth")]) == 0
    assert not marker.exists()
    patched = torch.load(tmp_path / "patched.pth", weights_only=True)["model_state"]
    torch.testing.assert_close(patched["model.visual.proj"], sd["visual.proj"] + 1.0)  # (sd + (sd + 2)) / 2
