"""Text-feature files record the CLIP that made them, and features from another CLIP are refused."""

from __future__ import annotations

import json
import logging

import pytest
import torch
import yaml

from slowfast.cli.text import features_main
from slowfast.clip import load_clip, random_clip_state_dict
from slowfast.text.feature_file import (
    TextFeatureError,
    check_feature_file_matches,
    load_text_features,
    text_tower_fingerprint,
)

CLASSES = ["abseiling", "yo-yo"]


@pytest.fixture
def other_clip_file(tmp_path, tiny_clip_config):
    """A CLIP of the same architecture and width as `tiny_clip_file`, with other weights."""
    path = tmp_path / "other_clip.pt"
    torch.save(random_clip_state_dict(tiny_clip_config, seed=1), path)
    return str(path)


def build_features(tmp_path, clip_file: str) -> str:
    classes = tmp_path / "index2cls.json"
    classes.write_text(json.dumps({str(i): n for i, n in enumerate(CLASSES)}))
    tpl = tmp_path / "templates.yml"
    tpl.write_text(yaml.safe_dump({"templates": ["a video of {}."]}))
    out = tmp_path / "feats.pt"
    assert features_main(["--classes", str(classes), "--clip-weights", clip_file, "--output", str(out),
                          "--templates-file", str(tpl), "--num-templates", "1", "--mode", "base", "--device", "cpu",
                          "--quiet"]) == 0
    return str(out)


def test_feature_file_records_the_clip_name_width_and_text_tower_fingerprint(tmp_path, tiny_clip_file,
                                                                            tiny_clip_config):
    _, meta = load_text_features(build_features(tmp_path, tiny_clip_file))
    assert meta["format_version"] == 2
    assert meta["clip_identity"] == {
        "name": "tiny_clip.pt",
        "embed_dim": tiny_clip_config.embed_dim,
        "text_tower_sha256": text_tower_fingerprint(load_clip(tiny_clip_file)),
    }


def test_features_from_another_clip_of_the_same_width_are_refused_naming_both(tmp_path, tiny_clip_file,
                                                                              other_clip_file, tiny_clip_config):
    path = build_features(tmp_path, tiny_clip_file)
    _, meta = load_text_features(path)
    other = text_tower_fingerprint(load_clip(other_clip_file))
    with pytest.raises(TextFeatureError) as err:
        check_feature_file_matches(meta, "other_clip.pt", tiny_clip_config.embed_dim, other, path)
    msg = str(err.value)
    assert "'tiny_clip.pt'" in msg and "'other_clip.pt'" in msg and "different text-tower weights" in msg
    assert meta["clip_identity"]["text_tower_sha256"][:12] in msg and other[:12] in msg


def test_features_from_the_same_clip_pass_whatever_name_the_model_gives_it(tmp_path, tiny_clip_file,
                                                                          tiny_clip_config):
    path = build_features(tmp_path, tiny_clip_file)
    _, meta = load_text_features(path)
    fp = text_tower_fingerprint(load_clip(tiny_clip_file))
    check_feature_file_matches(meta, "custom", tiny_clip_config.embed_dim, fp, path)


def test_features_of_another_width_are_refused_naming_both_sizes(tmp_path, tiny_clip_file, tiny_clip_config):
    path = build_features(tmp_path, tiny_clip_file)
    _, meta = load_text_features(path)
    with pytest.raises(TextFeatureError, match=r"embedding size 32,.*embedding size 512,.*different embedding size"):
        check_feature_file_matches(meta, "ViT-B/16", 512, "f" * 64, path)


def test_without_the_models_fingerprint_the_names_are_compared(tmp_path, tiny_clip_file, tiny_clip_config):
    path = build_features(tmp_path, tiny_clip_file)
    _, meta = load_text_features(path)
    check_feature_file_matches(meta, "tiny-clip.pt", tiny_clip_config.embed_dim, None, path)
    with pytest.raises(TextFeatureError, match="different CLIP name"):
        check_feature_file_matches(meta, "ViT-B/16", tiny_clip_config.embed_dim, None, path)


@pytest.mark.parametrize("old", ["bare tensor", "format version 1"])
def test_file_without_a_clip_record_still_loads_with_a_warning(tmp_path, caplog, old):
    path = tmp_path / "old.pt"
    feats = torch.randn(2, 3, 32)
    torch.save(feats if old == "bare tensor" else {"features": feats, "class_names": CLASSES, "format_version": 1},
               path)
    loaded, meta = load_text_features(str(path))
    with caplog.at_level(logging.WARNING, logger="slowfast.text"):
        check_feature_file_matches(meta, "ViT-B/16", 32, "f" * 64, str(path))
    assert torch.equal(loaded, feats)
    assert "does not record the CLIP it was made with" in caplog.text and "old.pt" in caplog.text


def test_text_tower_fingerprint_ignores_dtype_wrapping_and_the_image_tower(tiny_clip_file, other_clip_file):
    clip = load_clip(tiny_clip_file)
    fp = text_tower_fingerprint(clip)
    assert len(fp) == 64 and fp == text_tower_fingerprint(load_clip(tiny_clip_file))
    text_alone = torch.nn.ModuleDict({  # the text tower under other parameter names, in another order
        "blocks": clip.transformer, "final_norm": clip.ln_final, "embed": clip.token_embedding,
        "extra": torch.nn.ParameterDict({"proj": clip.text_projection, "pos": clip.positional_embedding}),
    })
    assert text_tower_fingerprint(text_alone) == fp
    assert text_tower_fingerprint(torch.nn.ModuleDict({"blocks": clip.transformer})) != fp
    with torch.no_grad():
        clip.visual.conv1.weight.add_(1.0)
        clip.logit_scale.add_(1.0)
    assert text_tower_fingerprint(clip) == fp
    assert text_tower_fingerprint(clip.half()) == text_tower_fingerprint(load_clip(tiny_clip_file).half().float())
    assert text_tower_fingerprint(load_clip(other_clip_file)) != fp
    with torch.no_grad():
        clip.ln_final.weight.add_(1e-3)
    assert text_tower_fingerprint(clip) != text_tower_fingerprint(load_clip(tiny_clip_file).half())
