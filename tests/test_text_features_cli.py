"""Stage 3: xprompt YAML + templates + class names + CLIP weights -> the [K, N, E] feature file."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import torch
import yaml
from helpers import ROOT

from slowfast.cli.text import features_main
from slowfast.clip import load_clip, tokenize
from slowfast.text.encode_prompts import build_prompt_table
from slowfast.text.feature_file import check_text_features, load_text_features
from slowfast.text.templates import default_templates_file, load_templates

CLASSES = ["abseiling", "Apply Eye Makeup", "yo-yo"]
XPROMPTS = {
    "abseiling": {
        "label": "abseiling",
        "xprompt_oo": ["where a rope is tied to a harness", "where an anchor holds the rope"],
        "xprompt_ao": ["which needs a rope", "which happens on a cliff"],
        "xprompt_aa": ["starting with putting on the harness", "where a rope is tied to a harness"],
    },
    "Apply Eye Makeup": {
        "label": "Apply Eye Makeup",
        "xprompt_oo": ["where a brush touches the eyelid"],
        "xprompt_ao": ["which uses a mirror"],
        "xprompt_aa": ["starting with opening the palette"],
    },
    "yo-yo": {
        "label": "yo-yo",
        "xprompt_oo": ["where a string is wound around the axle"],
        "xprompt_ao": ["which needs a string", "which uses a hand", "which takes practice"],
        "xprompt_aa": ["starting with winding the string"],
    },
}
TEMPLATES = ["a video of {}.", "The man is {}."]


@pytest.fixture
def inputs(tmp_path):
    classes = tmp_path / "index2cls.json"
    classes.write_text(json.dumps({str(i): n for i, n in enumerate(CLASSES)}))
    xp = tmp_path / "xprompt.yml"
    xp.write_text(yaml.safe_dump(XPROMPTS, sort_keys=False))
    tpl = tmp_path / "templates.yml"
    tpl.write_text(yaml.safe_dump({"templates": TEMPLATES}))
    return {"classes": str(classes), "xprompt": str(xp), "templates": str(tpl), "dir": tmp_path}


def run_stage3(inputs, clip_file, out, *extra) -> int:
    return features_main(["--xprompt", inputs["xprompt"], "--classes", inputs["classes"], "--clip-weights", clip_file,
                          "--output", str(out), "--templates-file", inputs["templates"], "--num-templates", "2",
                          "--device", "cpu", "--batch-size", "7", *extra])


def test_xmix_prompts_are_deduplicated_in_first_occurrence_order_and_padded_by_cycling():
    table, m = build_prompt_table(CLASSES, XPROMPTS, ["a video of {}."], "xmix")
    # abseiling: base + 2 oo + 2 ao + 2 aa, one aa clause repeats an oo clause -> 6 distinct, the longest.
    assert m == 6
    assert table[0] == [
        "a video of abseiling.",
        "a video of abseiling, where a rope is tied to a harness.",
        "a video of abseiling, where an anchor holds the rope.",
        "a video of abseiling, which needs a rope.",
        "a video of abseiling, which happens on a cliff.",
        "a video of abseiling, starting with putting on the harness.",
    ]
    # Apply Eye Makeup has 4 distinct prompts, cycled to 6.
    assert table[1][4:] == table[1][:2]
    assert len(set(table[1])) == 4


def test_feature_file_has_shape_order_and_metadata_the_model_checks(inputs, tiny_clip_file, tiny_clip_config):
    out = inputs["dir"] / "feats.pt"
    assert run_stage3(inputs, tiny_clip_file, out) == 0
    feats, meta = load_text_features(str(out))
    m = 6  # abseiling and yo-yo have 6 distinct prompts per template
    assert feats.shape == (3, 2 * m, tiny_clip_config.embed_dim)
    check_text_features(feats, meta, str(out), 3, tiny_clip_config.embed_dim, CLASSES)
    assert meta["class_names"] == CLASSES and meta["templates"] == TEMPLATES and meta["mode"] == "xmix"
    assert meta["clip"]["embed_dim"] == tiny_clip_config.embed_dim and meta["prompts_per_template"] == m
    prompts = meta["prompts"]
    # N index = template * M + slot.
    assert prompts[2][0] == "a video of yo-yo." and prompts[2][m] == "The man is yo-yo."
    assert prompts[2][m + 3] == "The man is yo-yo, which uses a hand."
    # Row k, column n is the CLIP text embedding of prompts[k][n].
    clip = load_clip(tiny_clip_file)
    with torch.no_grad():
        for k, n in [(0, 0), (1, 3), (2, m + 3), (2, 2 * m - 1)]:
            want = clip.encode_text(tokenize([prompts[k][n]]))[0]
            torch.testing.assert_close(feats[k, n], want, rtol=1e-4, atol=1e-5)


def test_prompt_order_does_not_depend_on_the_hash_seed(inputs):
    # The original deduplicated with set(), whose order follows the per-process string hash seed.
    script = (
        "import json, sys, yaml; from slowfast.text.encode_prompts import build_prompt_table; "
        "x = yaml.safe_load(open(sys.argv[1])); names = json.load(open(sys.argv[2])); "
        "print(json.dumps(build_prompt_table([names[str(i)] for i in range(len(names))], x, "
        "['a video of {}.', 'The man is {}.'], 'xmix')))"
    )
    tables = []
    for seed in ("1", "2", "3"):
        env = {**os.environ, "PYTHONHASHSEED": seed, "PYTHONPATH": ROOT}
        run = subprocess.run([sys.executable, "-c", script, inputs["xprompt"], inputs["classes"]], env=env,
                             check=True, capture_output=True, text=True, timeout=600)
        tables.append(json.loads(run.stdout))
    assert tables[0] == tables[1] == tables[2]
    assert tables[0][0] == list(build_prompt_table(CLASSES, XPROMPTS, TEMPLATES, "xmix")[0])


def test_class_missing_from_the_xprompt_file_is_an_error_naming_it(inputs, tiny_clip_file, capsys):
    with open(inputs["classes"], "w") as f:
        json.dump({str(i): n for i, n in enumerate(CLASSES + ["juggling balls"])}, f)
    out = inputs["dir"] / "feats.pt"
    assert run_stage3(inputs, tiny_clip_file, out) == 2
    assert "juggling balls" in capsys.readouterr().err
    assert not out.exists()


def test_xprompt_key_differing_only_in_case_is_matched_to_the_class(inputs, tiny_clip_file):
    data = dict(XPROMPTS)
    data["apply eye makeup"] = data.pop("Apply Eye Makeup")
    with open(inputs["xprompt"], "w") as f:
        yaml.safe_dump(data, f, sort_keys=False)
    out = inputs["dir"] / "feats.pt"
    assert run_stage3(inputs, tiny_clip_file, out) == 0
    _, meta = load_text_features(str(out))
    assert meta["class_names"][1] == "Apply Eye Makeup"
    assert meta["prompts"][1][1] == "a video of Apply Eye Makeup, where a brush touches the eyelid."


def test_base_mode_needs_no_xprompt_file_and_gives_one_prompt_per_template(inputs, tiny_clip_file):
    out = inputs["dir"] / "feats.pt"
    code = features_main(["--classes", inputs["classes"], "--clip-weights", tiny_clip_file, "--output", str(out),
                          "--templates-file", inputs["templates"], "--num-templates", "2", "--mode", "base",
                          "--device", "cpu"])
    assert code == 0
    feats, meta = load_text_features(str(out))
    assert feats.shape[:2] == (3, 2)
    assert meta["prompts"][0] == ["a video of abseiling.", "The man is abseiling."]


def test_shipped_templates_are_the_eight_tpl8_sentences():
    templates = load_templates(default_templates_file(), 8)
    assert len(templates) == 8
    assert templates[0] == "a human action of {}." and templates[-1] == "a video of a person {}."


def _model_cfg(classes_file: str, clip_file: str, feature_file: str):
    from slowfast.config import assert_and_infer_cfg, get_cfg, merge_from_list

    cfg = get_cfg()
    merge_from_list(cfg, ["NUM_GPUS", "0", "MODEL.ARCH", "custom", "MODEL.CLIP_WEIGHTS", clip_file, "MODEL.NUM_CLASSES", str(len(CLASSES)),
                          "DATA.INDEX_LABEL_MAPPING_FILE", classes_file, "DATA.NUM_FRAMES", "2",
                          "DATA.TEXT_AUG", "True", "DATA.TEXT_AUG_FEATURE_FILE", feature_file])
    return assert_and_infer_cfg(cfg)


def test_model_refuses_a_feature_file_built_with_another_clip_of_the_same_width(inputs, tiny_clip_file, tiny_clip_config):
    from slowfast.clip import random_clip_state_dict
    from slowfast.models import build_model
    from slowfast.text.feature_file import TextFeatureError

    out = inputs["dir"] / "feats.pt"
    assert run_stage3(inputs, tiny_clip_file, out) == 0
    other = inputs["dir"] / "other_clip.pt"
    torch.save(random_clip_state_dict(tiny_clip_config, seed=1), other)  # same sizes, other weights
    build_model(_model_cfg(inputs["classes"], tiny_clip_file, str(out)))  # the CLIP it was built with: accepted
    with pytest.raises(TextFeatureError, match="text-tower weights"):
        build_model(_model_cfg(inputs["classes"], str(other), str(out)))


@pytest.mark.parametrize("command, flags, named", [
    ("askg", ["--classes", "{classes}", "--output", "{classes}"], "--classes"),
    ("xprompt", ["--askg", "{askg}", "--output", "{askg}"], "--askg"),
    ("features", ["--classes", "{classes}", "--clip-weights", "w.pt", "--mode", "base", "--output", "{classes}"],
     "--classes"),
])
def test_a_text_command_refuses_an_output_that_is_one_of_its_inputs(tmp_path, command, flags, named):
    import contextlib
    import io

    from slowfast.cli.text import askg_main, xprompt_main

    classes, askg = tmp_path / "index2cls.json", tmp_path / "askg.yml"
    classes.write_text(json.dumps({"0": "abseiling"}))
    askg.write_text("abseiling:\n  label: abseiling\n")
    before = {p: p.read_bytes() for p in (classes, askg)}
    main = {"askg": askg_main, "xprompt": xprompt_main, "features": features_main}[command]
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        code = main([f.format(classes=classes, askg=askg) for f in flags])
    assert code == 2
    assert err.getvalue().strip() == f"error: --output {classes if named == '--classes' else askg} is the {named} file; " \
                                     "it would be replaced: choose another name"
    assert {p: p.read_bytes() for p in before} == before
