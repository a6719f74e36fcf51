"""Template files per dataset: what ships, how one is chosen, and that the feature file records it."""

from __future__ import annotations

import json
import logging
import os

import pytest

from slowfast.cli.text import features_main
from slowfast.text.feature_file import load_text_features
from slowfast.text.templates import DATASETS, choose_templates_file, infer_dataset, load_templates, templates_file_for

HUMAN_ACTION = ["a human action of {}.", "a video of action {}.", "Playing action of {}.", "Doing a kind of action {}.",
                "Look, the person is {}.", "The man is {}.", "The woman is {}.", "a video of a person {}."]
CLIP_VIDEO_FIRST_8 = ["a photo of {}.", "a photo of a person {}.", "a photo of a person using {}.",
                      "a photo of a person doing {}.", "a photo of a person during {}.",
                      "a photo of a person performing {}.", "a photo of a person practicing {}.", "a video of {}."]


@pytest.mark.parametrize("dataset, want", [("k400", HUMAN_ACTION), ("k600", HUMAN_ACTION), ("ucf101", HUMAN_ACTION),
                                           ("hmdb51", CLIP_VIDEO_FIRST_8)])
def test_each_dataset_ships_the_templates_its_features_were_built_with(dataset, want):
    assert load_templates(templates_file_for(dataset), None) == want


@pytest.mark.parametrize("path, dataset", [
    ("label_db/hmdb51-index2cls.json", "hmdb51"),
    ("zs_label_db/hmdb-index2cls.json", "hmdb51"),
    ("label_db/ucf101-index2cls.json", "ucf101"),
    ("label_db/k400-index2cls.json", "k400"),
    ("label_db/kinetics600_zeroshot_split2-index2cls.json", "k600"),
    ("zs_label_db/k600_split1/k600-openset-index2cls.json", "k600"),
    ("data/Kinetics-600/index2cls.json", "k600"),
    ("my_actions.json", None),
])
def test_dataset_is_read_from_the_class_index_file_name_then_its_folder(path, dataset):
    assert infer_dataset(path) == dataset


def test_templates_file_flag_overrides_the_dataset():
    assert choose_templates_file("mine.yml", "hmdb51", "hmdb51-index2cls.json") == ("mine.yml", "--templates-file")
    assert choose_templates_file(None, "hmdb51", "k400-index2cls.json")[0] == templates_file_for("hmdb51")


def test_unrecognised_class_list_gets_the_kinetics_templates_with_a_warning(caplog):
    with caplog.at_level(logging.WARNING, logger="slowfast.text"):
        path, why = choose_templates_file(None, None, "my_actions.json")
    assert path == templates_file_for("k400") and why == "dataset k400, the default"
    assert "no dataset recognised in the class-index file name 'my_actions.json'" in caplog.text


def test_unknown_dataset_is_refused_by_the_cli(tmp_path, capsys):
    with pytest.raises(SystemExit):
        features_main(["--classes", "x.json", "--clip-weights", "w.pt", "--output", "o.pt", "--dataset", "sthv2"])
    assert "invalid choice: 'sthv2'" in capsys.readouterr().err
    assert set(DATASETS) == {"k400", "k600", "ucf101", "hmdb51"}


def test_feature_file_records_the_templates_chosen_from_the_class_list(tmp_path, tiny_clip_file, capsys):
    classes = tmp_path / "hmdb51-index2cls.json"
    classes.write_text(json.dumps({"0": "smile", "1": "fall floor"}))
    out = tmp_path / "feats.pt"
    code = features_main(["--classes", str(classes), "--clip-weights", tiny_clip_file, "--output", str(out),
                          "--mode", "base", "--device", "cpu"])
    assert code == 0
    feats, meta = load_text_features(str(out))
    assert feats.shape[:2] == (2, 8)
    assert meta["templates"] == CLIP_VIDEO_FIRST_8
    assert meta["templates_source"] == "hmdb51.yml (dataset hmdb51, from the class-index file name)"
    assert meta["prompts"][0][0] == "a photo of smile."
    assert os.path.join("label_db", "templates", "hmdb51.yml") in capsys.readouterr().out


def test_original_classes_label_file_is_accepted_as_a_templates_file(tmp_path):
    path = tmp_path / "classes_label_hmdb51.yml"
    path.write_text("classes: [smile, fall floor]\ntemplates:\n" + "".join(f"  - '{t}'\n" for t in CLIP_VIDEO_FIRST_8)
                    + "obj_templates: ['a photo of {}.']\n")
    assert load_templates(str(path), 8) == CLIP_VIDEO_FIRST_8
