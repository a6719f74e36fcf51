"""The CLIP backbone: parity with open_clip, loading formats, pretrained tags, and clear errors."""

import os

import pytest
import torch
from archives import clip_module_tree

from slowfast.clip import (
    CLIPWeightsError,
    build_clip,
    custom_clip_config,
    infer_clip_config,
    load_clip,
    random_clip_state_dict,
    read_state_dict,
    resolve_pretrained,
    tokenize,
)

open_clip = pytest.importorskip("open_clip")
from open_clip.model import CLIP as OpenClipCLIP  # noqa: E402
from open_clip.model import CLIPTextCfg, CLIPVisionCfg  # noqa: E402

# Two sizes: a square-friendly one, and one with an odd 3x3 grid from 14-px patches, a single text head
# and a short text context (77 is not assumed anywhere).
SIZES = {
    "square": dict(embed=64, res=32, patch=8, vw=128, vl=2, tw=128, tl=2, ctx=77),
    "odd-grid": dict(embed=48, res=42, patch=14, vw=192, vl=3, tw=64, tl=1, ctx=24),
}


def _open_clip_model(s):
    torch.manual_seed(0)
    model = OpenClipCLIP(
        s["embed"],
        vision_cfg=CLIPVisionCfg(layers=s["vl"], width=s["vw"], patch_size=s["patch"], image_size=s["res"], head_width=64),
        text_cfg=CLIPTextCfg(context_length=s["ctx"], vocab_size=49408, width=s["tw"], heads=max(1, s["tw"] // 64), layers=s["tl"]),
        quick_gelu=True,
    )
    # open_clip initialises biases and LayerNorms to constants: randomise everything so that a swapped
    # or missed key would show.
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.02 * torch.randn_like(p))
    return model.eval()


@pytest.mark.parametrize("size", list(SIZES))
def test_embeddings_equal_open_clip_on_the_same_weights(size, tmp_path):
    s = SIZES[size]
    reference = _open_clip_model(s)
    path = tmp_path / "clip.pt"
    torch.save(reference.state_dict(), path)
    ours = load_clip(str(path))
    images = torch.randn(3, 3, s["res"], s["res"])
    tokens = tokenize(["a video of a person skiing", "juggling balls", "x"], context_length=s["ctx"])
    with torch.no_grad():
        img_ref, img_ours = reference.encode_image(images), ours.encode_image(images)
        txt_ref, txt_ours = reference.encode_text(tokens), ours.encode_text(tokens)
    assert img_ours.shape == (3, s["embed"]) and txt_ours.shape == (3, s["embed"])
    assert (img_ours - img_ref).abs().max().item() < 1e-4
    assert (txt_ours - txt_ref).abs().max().item() < 1e-4


def test_architecture_is_inferred_from_the_state_dict():
    cfg = custom_clip_config(embed_dim=48, image_resolution=42, vision_patch=14, vision_width=192, vision_layers=3,
                             vision_heads=3, text_width=64, text_layers=1, text_heads=1, context_length=24)
    inferred = infer_clip_config(random_clip_state_dict(cfg))
    assert inferred == cfg


def _torchscript_archive(sd, path):
    """An OpenAI-style TorchScript archive: a scripted module whose state dict has the CLIP keys."""

    root = clip_module_tree(sd, torch.half)
    # OpenAI archives carry three metadata entries besides the weights.
    root.register_buffer("input_resolution", torch.tensor(32))
    root.register_buffer("context_length", torch.tensor(77))
    root.register_buffer("vocab_size", torch.tensor(49408))
    torch.jit.save(torch.jit.script(root), str(path))


def test_torchscript_archive_and_state_dict_load_to_identical_outputs(tmp_path, tiny_clip_config):
    sd = {k: v.half().float() for k, v in random_clip_state_dict(tiny_clip_config, seed=3).items()}
    plain, archive = tmp_path / "plain.pt", tmp_path / "archive.pt"
    torch.save(sd, plain)
    _torchscript_archive(sd, archive)
    a, b = load_clip(str(plain)), load_clip(str(archive))
    images = torch.randn(2, 3, 32, 32)
    tokens = tokenize(["a", "b c"])
    with torch.no_grad():
        assert torch.equal(a.encode_image(images), b.encode_image(images))
        assert torch.equal(a.encode_text(tokens), b.encode_text(tokens))


def test_truncated_file_is_an_error_naming_the_file(tmp_path, tiny_clip_file):
    broken = tmp_path / "truncated.pt"
    data = open(tiny_clip_file, "rb").read()
    broken.write_bytes(data[: len(data) // 2])
    with pytest.raises(CLIPWeightsError, match="truncated.pt"):
        load_clip(str(broken))


def test_file_that_is_not_a_checkpoint_is_an_error_naming_the_file(tmp_path):
    junk = tmp_path / "notes.pt"
    junk.write_text("these are not weights")
    with pytest.raises(CLIPWeightsError, match="notes.pt"):
        read_state_dict(str(junk))


def test_missing_or_unexpected_keys_are_an_error(tmp_path, tiny_clip_config):
    sd = random_clip_state_dict(tiny_clip_config)
    del sd["visual.ln_post.weight"]
    sd["visual.extra"] = torch.zeros(1)
    with pytest.raises(CLIPWeightsError, match="visual.ln_post.weight") as err:
        build_clip(sd, source="partial.pt")
    assert "visual.extra" in str(err.value) and "partial.pt" in str(err.value)


@pytest.fixture()
def offline(monkeypatch):
    """No network: every connection attempt fails at once (as on a cluster node without internet)."""
    import socket

    def refuse(*args, **kwargs):
        raise OSError("network is unreachable")

    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")


def test_missing_pretrained_tag_without_network_is_one_line_naming_model_tag_and_place(tmp_path, offline):
    with pytest.raises(CLIPWeightsError) as err:
        read_state_dict("openai", model_name="ViT-B-16", cache_dir=str(tmp_path))
    message = str(err.value)
    assert "\n" not in message
    assert "ViT-B-16" in message and "'openai'" in message
    assert os.path.join(str(tmp_path), "ViT-B-16.pt") in message and "https://" in message


def test_pretrained_tag_found_in_the_cache_dir(tmp_path, tiny_clip_file):
    target = tmp_path / "ViT-L-14.pt"
    target.write_bytes(open(tiny_clip_file, "rb").read())
    assert resolve_pretrained("ViT-L-14", "openai", cache_dir=str(tmp_path)) == str(target)


def test_unknown_tag_lists_the_known_tags(tmp_path):
    with pytest.raises(CLIPWeightsError, match="laion2b_s34b_b88k"):
        read_state_dict("not_a_tag", model_name="ViT-B-16", cache_dir=str(tmp_path))


def test_tokenizer_refuses_text_longer_than_the_context():
    with pytest.raises(ValueError, match="context length 8"):
        tokenize("one two three four five six seven eight nine", context_length=8)
    ids = tokenize("one two three four five six seven eight nine", context_length=8, truncate=True)
    assert ids.shape == (1, 8) and ids[0, -1] == ids.max()
