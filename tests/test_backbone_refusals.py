"""MODEL.ARCH and pretrained-tag refusals: what is wrong, said once, before anything is downloaded or written.

An unknown architecture gets the close matches of `open_clip.list_models()`, a tower the video model cannot
use gets the reason, a missing model-config file "file not found". Without network a pretrained tag fails
after one connection attempt, not after the hub client's minute of retries. No test here uses the network:
every server named is a closed port on 127.0.0.1.
"""

import json
import os
import shutil
import socket
import subprocess
import sys

import pytest
from helpers import ROOT, tiny_run_cfg, tiny_run_opts

from slowfast.cli.run_net import main as run_net
from slowfast.clip import CLIPWeightsError
from slowfast.models import build_model

TAKES = ("it takes vitb32, vitb16, vitl14, custom, an open_clip.list_models() ViT name or the path of an open_clip "
         "model-config .json")
CUSTOM_TEXT = ("it has a custom text tower, as SigLIP, CoCa, EVA and HF text models do (only CLIP's own text tower "
               "and tokenizer are supported)")
TINY_TOWERS = {"embed_dim": 32, "vision_cfg": {"image_size": 32, "layers": 1, "width": 64, "patch_size": 8},
               "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 1}}

# (id, --opts on top of the tiny run ({tmp} is the test's folder), the one line on stderr)
ARCH_REFUSALS = [
    ("unknown-name", ["MODEL.ARCH", "ViT-Q-99"],
     f"error: MODEL.ARCH 'ViT-Q-99': unknown architecture (close matches: ViT-S-32, ViT-S-16, ViT-M-32); {TAKES}"),
    ("unknown-name-with-a-tag", ["MODEL.ARCH", "ViT-Q-99", "MODEL.CLIP_WEIGHTS", "laion2b_s34b_b88k"],
     f"error: MODEL.ARCH 'ViT-Q-99': unknown architecture (close matches: ViT-S-32, ViT-S-16, ViT-M-32); {TAKES}"),
    ("misspelt-short-name", ["MODEL.ARCH", "vitb61"],
     f"error: MODEL.ARCH 'vitb61': unknown architecture (close matches: vitb16, ViT-B-16, vitl14); {TAKES}"),
    ("resnet", ["MODEL.ARCH", "RN50"],
     "error: MODEL.ARCH 'RN50' cannot be used: its image tower is a ResNet, not a ViT (the temporal operators need a ViT)"),
    ("siglip", ["MODEL.ARCH", "ViT-B-16-SigLIP", "MODEL.CLIP_WEIGHTS", "webli"],
     "error: MODEL.ARCH 'ViT-B-16-SigLIP' cannot be used: its image tower is the timm model "
     f"'vit_base_patch16_siglip_224', not open_clip's ViT (the temporal operators need open_clip's ViT); {CUSTOM_TEXT}"),
    ("coca", ["MODEL.ARCH", "coca_ViT-B-32"],
     "error: MODEL.ARCH 'coca_ViT-B-32' cannot be used: its image tower pools by attention (the video model reads "
     f"the class token); {CUSTOM_TEXT}"),
    ("missing-model-config", ["MODEL.ARCH", "{tmp}/nope.json"],
     "error: MODEL.ARCH {tmp}/nope.json: file not found (the path of an open_clip model-config .json)"),
    ("model-config-with-a-custom-text-tower", ["MODEL.ARCH", "{tmp}/custom_text.json"],
     f"error: MODEL.ARCH '{{tmp}}/custom_text.json' cannot be used: {CUSTOM_TEXT}"),
]


@pytest.mark.parametrize("opts,line", [r[1:] for r in ARCH_REFUSALS], ids=[r[0] for r in ARCH_REFUSALS])
def test_run_refuses_an_unusable_arch_with_the_reason_before_anything_is_written(tiny_data, tmp_path, run_cli, opts, line):
    (tmp_path / "custom_text.json").write_text(json.dumps({**TINY_TOWERS, "custom_text": True}))
    out = tmp_path / "run"
    opts = [o.format(tmp=tmp_path) for o in opts]
    code, err = run_cli(run_net, ["--opts", *tiny_run_opts(tiny_data, str(out)), *opts])
    assert (code, err) == (1, line.format(tmp=tmp_path))
    assert not out.exists()


@pytest.mark.parametrize("opts,line", [r[1:] for r in ARCH_REFUSALS[:2]], ids=[r[0] for r in ARCH_REFUSALS[:2]])
def test_build_model_says_unknown_architecture_before_looking_up_weights(tiny_data, tmp_path, opts, line):
    values = dict(zip(opts[0::2], opts[1::2]))
    cfg = tiny_run_cfg(tiny_data, str(tmp_path / "run"), **values)
    with pytest.raises(CLIPWeightsError) as err:
        build_model(cfg)
    assert f"error: {err.value}" == line


def test_a_model_config_file_of_a_plain_vit_is_accepted(tiny_data, tmp_path):
    (tmp_path / "plain.json").write_text(json.dumps(TINY_TOWERS))
    cfg = tiny_run_cfg(tiny_data, str(tmp_path / "run"), **{"MODEL.ARCH": str(tmp_path / "plain.json")})
    from slowfast.models import check_model_config

    check_model_config(cfg)  # the refusals above are not a blanket "no"


# ----------------------------------------------------------------------------------------------------
# Pretrained tags without network
# ----------------------------------------------------------------------------------------------------

# Resolves one tag in a fresh process (the hub client reads HF_ENDPOINT and HF_HUB_OFFLINE when imported),
# recording every TCP connection attempt; prints {"attempts": [[host, port], ...], "path" or "error": ...}.
_CHILD = r"""
import json, socket, sys
sys.path.insert(0, {root!r})
attempts = []
real_connect, real_connect_ex = socket.socket.connect, socket.socket.connect_ex
def record(address):
    if isinstance(address, tuple):
        attempts.append([address[0], address[1]])
def connect(self, address):
    record(address)
    return real_connect(self, address)
def connect_ex(self, address):
    record(address)
    return real_connect_ex(self, address)
socket.socket.connect, socket.socket.connect_ex = connect, connect_ex
from slowfast.clip import CLIPWeightsError, resolve_pretrained
try:
    result = {{"path": resolve_pretrained(sys.argv[1], sys.argv[2], cache_dir=sys.argv[3])}}
except CLIPWeightsError as e:
    result = {{"error": str(e)}}
print(json.dumps({{"attempts": attempts, **result}}))
"""

HUB_REPO = "laion/CLIP-ViT-B-16-laion2B-s34B-b88K"
AFTER = "on a machine with network access and put it at {target} (cache folder: MODEL.CLIP_CACHE_DIR or $STDD_CLIP_CACHE)"
NO_HUB = "cannot be downloaded: no network (cannot connect to 127.0.0.1:{port}: Connection refused)"
OFFLINE_CASES = [
    # (id, model, tag, environment ({port}: a closed port), connection attempts, the one line ({cache}, {port}))
    ("hub-tag", "ViT-B-16", "laion2b_s34b_b88k", {"HF_ENDPOINT": "http://127.0.0.1:{port}"}, 1,
     f"CLIP weights ViT-B-16 'laion2b_s34b_b88k' are not in {{cache}} and {NO_HUB}; download "
     f"https://huggingface.co/{HUB_REPO} " + AFTER.format(target="a local file and set MODEL.CLIP_WEIGHTS to it")),
    ("hf-hub-name", "ViT-B-16", "hf-hub:someone/their-clip", {"HF_ENDPOINT": "http://127.0.0.1:{port}"}, 1,
     f"CLIP weights ViT-B-16 'hf-hub:someone/their-clip' are not in {{cache}} and {NO_HUB}; download "
     "https://huggingface.co/someone/their-clip " + AFTER.format(target="a local file and set MODEL.CLIP_WEIGHTS to it")),
    ("hub-offline-flag", "ViT-B-16", "laion2b_s34b_b88k", {"HF_ENDPOINT": "http://127.0.0.1:{port}", "HF_HUB_OFFLINE": "1"},
     0, "CLIP weights ViT-B-16 'laion2b_s34b_b88k' are not in {cache} and cannot be downloaded: no network "
        f"(HF_HUB_OFFLINE is set); download https://huggingface.co/{HUB_REPO} "
        + AFTER.format(target="a local file and set MODEL.CLIP_WEIGHTS to it")),
    ("openai-url-through-a-proxy", "ViT-B-16", "openai", {"HTTPS_PROXY": "http://127.0.0.1:{port}"}, 1,
     "CLIP weights ViT-B-16 'openai' are not in {cache} and " + NO_HUB + "; download {url} "
     + AFTER.format(target="{cache}/ViT-B-16.pt")),
]
PROXY_VARIABLES = ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY")


@pytest.fixture()
def closed_port():
    """A port of 127.0.0.1 bound by this test and not listening: every connection to it is refused at once."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        yield s.getsockname()[1]


def _resolve_in_a_child(model, tag, cache, env_extra, port):
    env = {k: v for k, v in os.environ.items() if k.upper() not in (*PROXY_VARIABLES, "HF_HUB_OFFLINE", "HF_ENDPOINT",
                                                                     "TRANSFORMERS_OFFLINE")}
    env.update({k: v.format(port=port) for k, v in env_extra.items()}, HF_HUB_DISABLE_TELEMETRY="1")
    proc = subprocess.run([sys.executable, "-c", _CHILD.format(root=ROOT), model, tag, cache],
                          capture_output=True, text=True, env=env)
    assert proc.returncode == 0, proc.stderr
    assert "Retrying" not in proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("model,tag,env,attempts,line", [r[1:] for r in OFFLINE_CASES], ids=[r[0] for r in OFFLINE_CASES])
def test_a_tag_without_network_fails_after_one_connection_attempt_with_one_line(tmp_path, closed_port, model, tag, env,
                                                                                attempts, line):
    from open_clip.pretrained import get_pretrained_cfg

    cache = str(tmp_path / "cache")
    got = _resolve_in_a_child(model, tag, cache, env, closed_port)
    assert got["attempts"] == [["127.0.0.1", closed_port]] * attempts
    url = get_pretrained_cfg(model, tag).get("url", "") if not tag.startswith("hf-hub:") else ""
    assert got.get("error") == line.format(cache=cache, port=closed_port, url=url)


def test_without_network_a_file_the_hub_client_downloaded_before_is_still_found(tmp_path, closed_port, tiny_clip_file):
    cache = tmp_path / "cache"
    commit = "0123456789abcdef0123456789abcdef01234567"
    repo = cache / f"models--{HUB_REPO.replace('/', '--')}"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(commit)
    cached = repo / "snapshots" / commit / "open_clip_pytorch_model.bin"
    cached.parent.mkdir(parents=True)
    shutil.copy(tiny_clip_file, cached)
    got = _resolve_in_a_child("ViT-B-16", "laion2b_s34b_b88k", str(cache), {"HF_ENDPOINT": "http://127.0.0.1:{port}"},
                              closed_port)
    assert got["attempts"] == [["127.0.0.1", closed_port]]
    assert os.path.samefile(got["path"], cached)
