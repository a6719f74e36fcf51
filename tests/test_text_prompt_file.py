"""Prompt files written by the original scripts: spelling differences, empty clause lists, matching by order."""

from __future__ import annotations

import json
import logging

import pytest

from slowfast.cli.text import features_main
from slowfast.text.encode_prompts import build_prompt_table
from slowfast.text.feature_file import load_text_features
from slowfast.text.prompt_file import loose_key, match_xprompts
from slowfast.text.schema import SchemaError

CLASSES = ["Apply Eye Makeup", "Handstand Pushups", "Yoyo", "fall floor", "smile"]

# Written as the original scripts wrote them: LLM comment lines kept, keys spelled by the LLM,
# some clause lists empty, flow and block lists mixed.
ORIGINAL_FILE = """\
# This is an example of apply eye makeup, ...
apply eye makeup:
  label: apply eye makeup
  xprompt_oo: [where a brush touches the eyelid]
  xprompt_ao: [which uses a mirror]
  xprompt_aa: [starting with opening the palette]

hand stand pushups:
  label: hand stand pushups
  xprompt_oo:
    - where the hands are pressed against the floor
  xprompt_ao:
    - which needs a wall
  xprompt_aa:
    - starting with kicking up against the wall

yo yo:
  label: yo yo
  xprompt_oo: [where a string is wound around the axle]
  xprompt_ao: [which needs a string]
  xprompt_aa: [starting with winding the string]

fall floor:
  label: falling to the floor
  xprompt_oo: [where the body hits the floor]
  xprompt_ao: [which ends on the floor]
  xprompt_aa: []

smile:
  label: smile
  xprompt_oo: [where the lips curve upwards]
  xprompt_ao: [which involves the mouth]
  xprompt_aa:
"""


@pytest.fixture
def files(tmp_path):
    def write(name: str, text: str, classes=CLASSES) -> dict:
        idx = tmp_path / "hmdb51-index2cls.json"
        idx.write_text(json.dumps({str(i): n for i, n in enumerate(classes)}))
        xp = tmp_path / name
        xp.write_text(text)
        return {"classes": str(idx), "xprompt": str(xp), "out": tmp_path / "feats.pt"}

    return write


def build(paths: dict, clip_file: str, *extra: str) -> int:
    return features_main(["--xprompt", paths["xprompt"], "--classes", paths["classes"], "--clip-weights", clip_file,
                          "--output", str(paths["out"]), "--device", "cpu", "--num-templates", "2", *extra])


def test_original_prompt_file_with_spelling_mismatches_and_empty_lists_builds_one_row_per_class(
    files, tiny_clip_file, tiny_clip_config, capsys
):
    paths = files("classes_xprompt_hmdb51.yml", ORIGINAL_FILE)
    assert build(paths, tiny_clip_file) == 0
    feats, meta = load_text_features(str(paths["out"]))
    assert feats.shape[0] == len(CLASSES) and feats.shape[2] == tiny_clip_config.embed_dim
    assert meta["class_names"] == CLASSES
    # The entry found under another spelling gives its clauses to our class name.
    assert "a photo of a person Handstand Pushups, which needs a wall." in meta["prompts"][1]
    assert [tuple(p) for p in meta["prompt_matching"]["loose"]] == [
        ("Apply Eye Makeup", "apply eye makeup"), ("Handstand Pushups", "hand stand pushups"), ("Yoyo", "yo yo")]
    assert meta["prompt_matching"]["empty"] == {"fall floor": ["xprompt_aa"], "smile": ["xprompt_aa"]}
    out = capsys.readouterr().out
    assert "2 classes matched by name, 3 ignoring case and spacing, 0 by another name, 0 by order; 2 with an empty clause list" in out


def test_empty_clause_lists_give_one_warning_naming_every_such_class(files, caplog):
    paths = files("x.yml", ORIGINAL_FILE)
    with caplog.at_level(logging.WARNING, logger="slowfast.text"):
        match_xprompts(paths["xprompt"], CLASSES, "xmix")
    empty = [r.getMessage() for r in caplog.records if "empty clause list" in r.getMessage()]
    assert len(empty) == 1
    assert "'fall floor' (xprompt_aa)" in empty[0] and "'smile' (xprompt_aa)" in empty[0]


def test_class_with_an_empty_clause_list_falls_back_to_its_bare_prompt(files):
    paths = files("x.yml", ORIGINAL_FILE)
    entries, _ = match_xprompts(paths["xprompt"], CLASSES, "xaa")
    table, m = build_prompt_table(CLASSES, entries, ["a video of {}."], "xaa")
    assert m == 2
    assert table[3] == ["a video of fall floor.", "a video of fall floor."]
    assert table[2] == ["a video of Yoyo.", "a video of Yoyo, starting with winding the string."]


def test_empty_list_warning_only_names_the_fields_the_mode_reads(files, caplog):
    paths = files("x.yml", ORIGINAL_FILE)
    _, report = match_xprompts(paths["xprompt"], CLASSES, "xoo")
    assert report.empty == {}


def test_names_that_do_not_match_are_an_error_that_suggests_matching_by_order(files, tiny_clip_file, capsys):
    paths = files("x.yml", ORIGINAL_FILE.replace("fall floor:", "falling down:"))
    assert build(paths, tiny_clip_file) == 2
    err = capsys.readouterr().err
    assert "no entry for 1 of 5 classes, e.g. ['fall floor']" in err
    assert "'falling down'" in err and "--match-by-order" in err
    assert not paths["out"].exists()


def test_match_by_order_pairs_the_unmatched_classes_with_the_unmatched_entries_and_lists_each_pair(
    files, tiny_clip_file, caplog
):
    text = ORIGINAL_FILE.replace("fall floor:", "falling down:").replace("smile:", "smiling:")
    paths = files("x.yml", text)
    with caplog.at_level(logging.WARNING, logger="slowfast.text"):
        assert build(paths, tiny_clip_file, "--match-by-order") == 0
    _, meta = load_text_features(str(paths["out"]))
    assert [tuple(p) for p in meta["prompt_matching"]["by_order"]] == [
        ("fall floor", "falling down"), ("smile", "smiling")]
    assert "a photo of fall floor, where the body hits the floor." in meta["prompts"][3]
    warning = next(r.getMessage() for r in caplog.records if "by order" in r.getMessage())
    assert "'fall floor' <- 'falling down'" in warning and "'smile' <- 'smiling'" in warning


def test_match_by_order_refuses_unequal_numbers_of_unmatched_classes_and_entries(files):
    text = ORIGINAL_FILE.replace("fall floor:", "falling down:")
    paths = files("x.yml", text, classes=CLASSES + ["wave"])
    with pytest.raises(SchemaError, match="needs as many unmatched entries as unmatched classes, got 1 entries"):
        match_xprompts(paths["xprompt"], CLASSES + ["wave"], "xmix", by_order=True)


def test_spelling_match_ignores_case_spaces_and_underscores_only():
    assert loose_key("hand stand pushups") == loose_key("Handstand Pushups") == loose_key("handstand_pushups")
    assert loose_key("yo yo") == loose_key("Yoyo")
    assert loose_key("yo-yo") != loose_key("yoyo")


def test_two_entries_spelled_alike_are_not_matched_by_spelling(files):
    text = ORIGINAL_FILE + "\nYo Yo:\n  label: Yo Yo\n  xprompt_oo: [where x]\n  xprompt_ao: [which y]\n  xprompt_aa: [z]\n"
    paths = files("x.yml", text)
    with pytest.raises(SchemaError, match=r"no entry for 1 of 5 classes, e\.g\. \['Yoyo'\]"):
        match_xprompts(paths["xprompt"], CLASSES, "xmix")


def test_a_file_without_any_clause_field_is_not_read_as_a_prompt_file(files):
    paths = files("askg.yml", "smile:\n  label: smile\n  obj_en_li: [mouth, lips, teeth, face, eyes]\n")
    with pytest.raises(SchemaError, match="class 'smile': none of the fields xprompt_oo, xprompt_ao, xprompt_aa"):
        match_xprompts(paths["xprompt"], ["smile"], "xmix")
