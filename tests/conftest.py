"""Shared fixtures: tiny OpenAI-format CLIP checkpoints written with random weights, the tiny videos of the
engine tests, LLM settings isolated from the machine. Shared functions and constants live in helpers.py."""

import contextlib
import io
import json
import os

import pytest
import torch
from helpers import write_tiny_data

from slowfast.clip import custom_clip_config, random_clip_state_dict

torch.set_num_threads(min(2, os.cpu_count() or 1))


@pytest.fixture(scope="session")
def tiny_data(tmp_path_factory):
    """Folder of `helpers.write_tiny_data`: 8 train, 4 val, 4 test tiny videos, their lists, the class index
    (read only: tests that change the data copy what they need)."""
    return write_tiny_data(str(tmp_path_factory.mktemp("tiny_videos")))


@pytest.fixture(scope="session")
def tiny_clip_config():
    """A small CLIP: 32 px images, 8 px patches (4x4 grid), width 64, 2 layers, embed 32."""
    return custom_clip_config(
        embed_dim=32, image_resolution=32, vision_patch=8, vision_width=64, vision_layers=2, vision_heads=2,
        text_width=32, text_layers=2, text_heads=2,
    )


@pytest.fixture(scope="session")
def tiny_clip_file(tmp_path_factory, tiny_clip_config):
    """Path of a plain state-dict checkpoint of the tiny CLIP (OpenAI key layout, random weights)."""
    path = tmp_path_factory.mktemp("clip") / "tiny_clip.pt"
    torch.save(random_clip_state_dict(tiny_clip_config, seed=0), path)
    return str(path)


@pytest.fixture
def run_cli():
    """`run_cli(main, argv) -> (exit status, what it printed on stderr)`: a command's main, in this process."""
    def run(main, argv):
        err = io.StringIO()
        with contextlib.redirect_stderr(err):
            code = main(argv)
        return code, err.getvalue().strip()

    return run


@pytest.fixture
def llm_env(monkeypatch, tmp_path):
    """No OpenAI settings from the machine's environment or a stray .env; work in tmp_path."""
    for name in ("OPENAI_API_KEY", "OPENAI_BASE_URL", "OPENAI_API_BASE", "OPENAI_MODEL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.fixture
def classes_file(llm_env):
    """The class-index file of the LLM stage tests (tests/fakes.py's CLASSES) in the test's folder."""
    from fakes import CLASSES

    path = llm_env / "index2cls.json"
    path.write_text(json.dumps({str(i): n for i, n in enumerate(CLASSES)}))
    return str(path)
