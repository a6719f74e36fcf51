"""The config tree: the paper's command line parses; unknown keys and wrong types are refused clearly."""

import os
import re

import pytest
import yaml
from helpers import ROOT
from paper_command import PAPER_OPTS

from slowfast.config import (
    ConfigError,
    all_keys,
    assert_and_infer_cfg,
    compatibility,
    get_cfg,
    merge_from_file,
    merge_from_list,
    num_processes,
)
from slowfast.config.compatibility import ACCEPTED_FOR_COMPATIBILITY
from slowfast.config.parser import load_config, parse_args
from slowfast.errors import UserError
from slowfast.utils.lr_policy import lr_at_epoch, schedule_from_cfg

PAPER_YAML = os.path.join(ROOT, "configs", "Kinetics", "TemporalCLIP_vitb16_8x16_STAdapter.yaml")



def test_the_paper_command_line_parses_completely():
    args = parse_args(["--cfg", PAPER_YAML, "--opts", *PAPER_OPTS])
    cfg = load_config(args)
    assert cfg.MODEL.TEMPORAL_MODELING_TYPE == "stcross_attend"
    assert cfg.MODEL.TEMPORAL_SCALE == [1, 2]
    assert cfg.DATA.PATH_LABEL_SEPARATOR == ","
    assert cfg.SOLVER.BASE_LR == pytest.approx(3.33e-6)
    assert cfg.TRAIN.BATCH_SIZE == 32 and cfg.NUM_GPUS == 4 and cfg.MODEL.KEEP_RAW_MODEL is True


def test_cfg_may_be_repeated_and_later_files_win(tmp_path):
    override = tmp_path / "b.yaml"
    override.write_text("SOLVER:\n  MAX_EPOCH: 3\nMODEL:\n  ARCH: custom\n")
    cfg = load_config(parse_args(["--cfg", PAPER_YAML, "--cfg", str(override)]))
    assert cfg.SOLVER.MAX_EPOCH == 3 and cfg.MODEL.ARCH == "custom" and cfg.SOLVER.BASE_LR == pytest.approx(1e-5)


def test_unknown_key_is_refused_naming_it_and_the_closest_valid_keys():
    with pytest.raises(ConfigError) as err:
        merge_from_list(get_cfg(), ["MODEL.TEMPORAL_SCALES", "[1,2]"])
    message = str(err.value)
    assert "MODEL.TEMPORAL_SCALES" in message and "MODEL.TEMPORAL_SCALE" in message.split("did you mean")[1]


def test_unknown_key_in_a_yaml_file_names_the_file(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("TRAIN:\n  BATCHSIZE: 8\n")
    with pytest.raises(ConfigError, match=r"TRAIN\.BATCHSIZE.*bad\.yaml.*TRAIN\.BATCH_SIZE"):
        merge_from_file(get_cfg(), str(bad))


def test_wrong_type_is_refused_naming_key_expected_and_given_type():
    with pytest.raises(ConfigError) as err:
        merge_from_list(get_cfg(), ["MODEL.TEMPORAL_SCALE", "2"])  # the original L/14 yaml's mistake
    message = str(err.value)
    assert "MODEL.TEMPORAL_SCALE" in message and "expected list" in message and "got int" in message


def test_int_is_accepted_for_a_float_key_and_a_string_for_a_none_default():
    cfg = merge_from_list(get_cfg(), ["SOLVER.BASE_LR", "1", "SOLVER.CLIP_GRAD_L2NORM", "1.0"])
    assert cfg.SOLVER.BASE_LR == 1.0 and isinstance(cfg.SOLVER.BASE_LR, float)
    assert cfg.SOLVER.CLIP_GRAD_L2NORM == 1.0


def test_opts_without_a_value_are_refused():
    with pytest.raises(ConfigError, match="has no value"):
        merge_from_list(get_cfg(), ["NUM_GPUS"])


def test_the_original_yaml_typo_is_refused_with_the_right_name():
    cfg = merge_from_list(get_cfg(), ["MODEL.TEMPORAL_MODELING_TYPE", "stcross_attn"])
    with pytest.raises(ConfigError, match="stcross_attend"):
        assert_and_infer_cfg(cfg)


def test_batch_size_must_divide_over_processes():
    cfg = merge_from_list(get_cfg(), ["NUM_GPUS", "3", "TRAIN.BATCH_SIZE", "32"])
    with pytest.raises(ConfigError, match="TRAIN.BATCH_SIZE = 32"):
        assert_and_infer_cfg(cfg)


def test_every_key_is_documented_by_a_comment():
    source = open(os.path.join(ROOT, "slowfast", "config", "defaults.py"), encoding="utf-8").read().splitlines()
    undocumented = []
    for key in all_keys(get_cfg()):
        assignment = f"_C.{key} ="
        for i, line in enumerate(source):
            if line.startswith(assignment):
                if not (source[i - 1].lstrip().startswith("#") or "#" in line):
                    undocumented.append(key)
                break
    assert not undocumented, f"keys without a comment: {undocumented}"


def _lr_cfg(shards: int):
    cfg = merge_from_list(get_cfg(), [
        "NUM_GPUS", "0", "NUM_CPU_PROCS", "2", "NUM_SHARDS", str(shards), "TRAIN.BATCH_SIZE", "8", "TEST.BATCH_SIZE", "8",
        "SOLVER.BASE_LR_SCALE_NUM_SHARDS", "True", "SOLVER.BASE_LR", "1e-3", "SOLVER.WARMUP_START_LR", "1e-4",
        "SOLVER.COSINE_END_LR", "1e-5", "SOLVER.WARMUP_EPOCHS", "1.0", "SOLVER.MAX_EPOCH", "4",
    ])
    return assert_and_infer_cfg(cfg)


@pytest.mark.parametrize("shards", [1, 2])
def test_batch_is_global_and_learning_rates_do_not_depend_on_the_number_of_machines(shards):
    cfg, one_machine = _lr_cfg(shards), _lr_cfg(1)
    assert num_processes(cfg) == 2 * shards
    assert (cfg.TRAIN.BATCH_SIZE // num_processes(cfg)) * num_processes(cfg) == 8  # the global batch, split
    epochs = [0.0, 0.5, 1.0, 2.5, 3.9]
    assert [lr_at_epoch(schedule_from_cfg(cfg), e) for e in epochs] == \
        [lr_at_epoch(schedule_from_cfg(one_machine), e) for e in epochs]
    saved = yaml.safe_load(cfg.dump())["SOLVER"]  # what every checkpoint and config.yaml records
    assert (saved["BASE_LR"], saved["WARMUP_START_LR"], saved["COSINE_END_LR"]) == (1e-3, 1e-4, 1e-5)


def test_config_errors_are_user_errors_and_still_value_errors():
    cfg = merge_from_list(get_cfg(), ["MODEL.LOSS_FUNC", "hinge"])
    with pytest.raises(UserError, match="MODEL.LOSS_FUNC"):
        assert_and_infer_cfg(cfg)
    with pytest.raises(ValueError, match="MODEL.LOSS_FUNC"):
        assert_and_infer_cfg(cfg)


@pytest.mark.parametrize("key", ["TRAIN.DATASET", "TEST.DATASET"])
def test_an_unknown_dataset_name_is_refused_with_the_config_naming_key_and_valid_names(key):
    cfg = merge_from_list(get_cfg(), [key, "kinetcs"])
    with pytest.raises(ConfigError, match=rf"{key}: 'kinetcs' is not one of 'kinetics', 'ucf101', 'hmdb51', 'k600', "
                                          r"'synthetic'"):
        assert_and_infer_cfg(cfg)


def test_every_key_is_read_by_the_code_or_listed_as_accepted_for_compatibility():
    package = os.path.join(ROOT, "slowfast")
    config_only = {os.path.join(package, "config", name) for name in ("defaults.py", "compatibility.py", "__init__.py")}
    sources = []
    for folder, _, files in os.walk(package):
        sources += [open(os.path.join(folder, f), encoding="utf-8").read() for f in files
                    if f.endswith(".py") and os.path.join(folder, f) not in config_only]
    code = "\n".join(sources)
    unread = [key for key in all_keys(get_cfg()) if key not in ACCEPTED_FOR_COMPATIBILITY
              and not re.search(rf"\b{key.split('.')[-1]}\b", code)]
    assert unread == []
    assert set(ACCEPTED_FOR_COMPATIBILITY) <= set(all_keys(get_cfg()))


def test_keys_accepted_for_compatibility_are_noted_only_when_set_to_another_value():
    assert compatibility.notes(get_cfg()) == []
    cfg = merge_from_list(get_cfg(), ["SOLVER.BASE_LR_SCALE_NUM_SHARDS", "True", "TEST.DATASET", "ucf101",
                                      "TRAIN.DATASET", "kinetics", "SOLVER.BASE_LR", "1e-3"])
    assert compatibility.notes(cfg) == [
        "TEST.DATASET 'ucf101' is accepted for compatibility and changes nothing (docs/config_reference.md)",
        "SOLVER.BASE_LR_SCALE_NUM_SHARDS True is accepted for compatibility and changes nothing "
        "(docs/config_reference.md)",
    ]


def test_the_input_channel_key_no_longer_exists():
    with pytest.raises(ConfigError, match="unknown config key DATA.INPUT_CHANNEL_NUM"):
        merge_from_list(get_cfg(), ["DATA.INPUT_CHANNEL_NUM", "[3]"])


@pytest.mark.parametrize("key, value, message", [
    ("MODEL.CUSTOM_CLIP.VISION_HEADS", 3, "VISION_WIDTH .* must be divisible by MODEL.CUSTOM_CLIP.VISION_HEADS"),
    ("MODEL.CUSTOM_CLIP.VISION_PATCH", 0, "VISION_PATCH must be >= 1"),
    ("MODEL.CUSTOM_CLIP.IMAGE_RESOLUTION", 60, "IMAGE_RESOLUTION .* must be a multiple of"),
    ("MODEL.CUSTOM_CLIP.VOCAB_SIZE", 1000, "VOCAB_SIZE must be >= 49408"),
    ("DATA.TARGET_FPS", 0, "DATA.TARGET_FPS must be >= 1"),
])
def test_values_the_model_or_data_would_fail_on_are_refused_with_the_config(key, value, message):
    cfg = merge_from_list(get_cfg(), ["MODEL.ARCH", "custom", key, str(value)])
    with pytest.raises(ConfigError, match=message):
        assert_and_infer_cfg(cfg)


@pytest.mark.parametrize("spelling", ["None", "none", ""])
def test_every_spelling_of_no_temporal_operator_becomes_none(spelling):
    cfg = merge_from_list(get_cfg(), ["MODEL.TEMPORAL_MODELING_TYPE", spelling])
    assert assert_and_infer_cfg(cfg).MODEL.TEMPORAL_MODELING_TYPE is None
