"""A bad config value stops `stdd-run` at once, on one line naming the key, before any model or data is built;
every numeric key has a rule in `slowfast.config.ranges.RANGES`; a key written twice in a YAML file is refused."""

import pytest
from helpers import make_tiny_synthetic

from slowfast.cli.run_net import main
from slowfast.config import ConfigError, all_keys, get_cfg, load
from slowfast.config.ranges import RANGES, value_of


@pytest.fixture(scope="module")
def tiny_yaml(tmp_path_factory):
    """The tiny synthetic config (a valid run) on a real synthetic dataset."""
    root = tmp_path_factory.mktemp("tiny")
    return str(make_tiny_synthetic(root / "data", root / "unused_out"))


def refused_on_one_line(run_cli, argv, out):
    """Run `stdd-run`; the one stderr line it printed, after checking the exit status and that nothing was
    written (OUTPUT_DIR is created only once the config has passed)."""
    code, err = run_cli(main, argv)
    assert code == 1, err
    assert err.startswith("error: ") and "\n" not in err and "Traceback" not in err
    assert not out.exists()
    return err


# opts, then a text the one error line must hold. With the old checks these either stopped with a traceback,
# stopped only after the model and the data were built, or ran (and trained by gradient ascent, or reported an
# accuracy computed from NaN logits).
RUN_REFUSALS = [
    (["NUM_SHARDS", "0"], "config key NUM_SHARDS must be >= 1, got 0"),
    (["SHARD_ID", "1"], "SHARD_ID 1 must be < NUM_SHARDS 1"),
    (["SHARD_ID", "-1"], "config key SHARD_ID must be >= 0, got -1"),
    (["MODEL.CUSTOM_CLIP.VISION_PATCH", "0"], "config key MODEL.CUSTOM_CLIP.VISION_PATCH must be >= 1, got 0"),
    (["MODEL.CUSTOM_CLIP.VISION_HEADS", "3"],
     "MODEL.CUSTOM_CLIP.VISION_WIDTH (64) must be divisible by MODEL.CUSTOM_CLIP.VISION_HEADS (3)"),
    (["MODEL.CUSTOM_CLIP.TEXT_HEADS", "3"],
     "MODEL.CUSTOM_CLIP.TEXT_WIDTH (32) must be divisible by MODEL.CUSTOM_CLIP.TEXT_HEADS (3)"),
    (["MODEL.NUM_CLASSES", "0"], "config key MODEL.NUM_CLASSES must be >= 1, got 0"),
    (["MODEL.NUM_CLASSES", "-3"], "config key MODEL.NUM_CLASSES must be >= 1, got -3"),
    (["MODEL.CONTEXT_LENGTH", "0"], "config key MODEL.CONTEXT_LENGTH must be >= 1, got 0"),
    (["DATA.TEST_CROP_SIZE", "0"], "config key DATA.TEST_CROP_SIZE must be >= 1, got 0"),
    (["DATA.TRAIN_CROP_SIZE", "-5"], "config key DATA.TRAIN_CROP_SIZE must be >= 1, got -5"),
    (["DATA.MEAN", "[0.5]"], "config key DATA.MEAN must be 3 finite numbers (R, G, B), got [0.5]"),
    (["DATA.STD", "[0,0,0]"], "config key DATA.STD must be 3 finite numbers > 0 (R, G, B), got [0, 0, 0]"),
    (["DATA.STD", "[0.2,-0.2,0.2]"], "config key DATA.STD must be 3 finite numbers > 0"),
    (["DATA.PATH_LABEL_SEPARATOR", ""], "config key DATA.PATH_LABEL_SEPARATOR must be a non-empty string, got ''"),
    (["DATA.PATH_LABEL_SEPARATOR", "''"], "config key DATA.PATH_LABEL_SEPARATOR must be a non-empty string"),
    (["DATA.TARGET_FPS", "0"], "config key DATA.TARGET_FPS must be >= 1, got 0"),
    (["MODEL.MASK_RATE", "nan"], "config key MODEL.MASK_RATE must be in [0, 1), got nan"),
    (["MODEL.MASK_RATE", "1.0"], "config key MODEL.MASK_RATE must be in [0, 1), got 1.0"),
    (["SOLVER.BETAS", "(2.0,0.9)"], "config key SOLVER.BETAS must be 2 numbers in [0, 1) (beta1, beta2), got [2.0, 0.9]"),
    (["SOLVER.BETAS", "(0.9,)"], "config key SOLVER.BETAS must be 2 numbers in [0, 1) (beta1, beta2), got [0.9]"),
    (["SOLVER.CLIP_GRAD_L2NORM", "-1"], "config key SOLVER.CLIP_GRAD_L2NORM must be None or a finite number >= 0"),
    (["SOLVER.OPTIMIZING_METHOD", "sgd", "SOLVER.MOMENTUM", "nan"], "config key SOLVER.MOMENTUM must be in [0, 1), got nan"),
    (["MODEL.DISTILLATION_RATIO", "nan"], "config key MODEL.DISTILLATION_RATIO must be a finite number >= 0, got nan"),
    (["MODEL.ENSEMBLE_RAWMODEL_RATIO", "2"], "config key MODEL.ENSEMBLE_RAWMODEL_RATIO must be in [0, 1], got 2.0"),
    (["TRAIN.LINEAR_CONNECT_LOSS_RATIO", "inf"], "config key TRAIN.LINEAR_CONNECT_LOSS_RATIO must be a finite number"),
    (["TRAIN.LINEAR_CONNECT_SAMPLE_L", "0.7"], "TRAIN.LINEAR_CONNECT_SAMPLE_L (0.7) must be <= TRAIN.LINEAR_CONNECT_SAMPLE_R (0.6)"),
    (["SOLVER.BASE_LR", "nan"], "config key SOLVER.BASE_LR must be a finite number >= 0, got nan"),
    (["SOLVER.WEIGHT_DECAY", "-0.01"], "config key SOLVER.WEIGHT_DECAY must be a finite number >= 0, got -0.01"),
    (["MODEL.MASK_STRIDE", "[0,0,0]"], "config key MODEL.MASK_STRIDE must be 3 positive ints (t, h, w), got [0, 0, 0]"),
    (["MODEL.MASK_STRIDE", "[2,2,2]"], "stcross_attend masks within each frame, so the temporal stride (the first "
                                       "entry) must be 1, got 2"),
]


@pytest.mark.parametrize("opts, expected", RUN_REFUSALS, ids=[" ".join(o) for o, _ in RUN_REFUSALS])
def test_a_bad_value_stops_the_run_on_one_line_before_anything_is_built(run_cli, tiny_yaml, tmp_path, opts, expected):
    out = tmp_path / "out"
    err = refused_on_one_line(run_cli, ["--cfg", tiny_yaml, "--opts", "OUTPUT_DIR", str(out), *opts], out)
    assert expected in err


@pytest.mark.parametrize("stride", ["[0,0,0]", "[2,0,0]", "[2,2,2]"])
def test_a_bad_mask_stride_gets_no_suggestion_that_is_itself_invalid(run_cli, tiny_yaml, tmp_path, stride):
    out = tmp_path / "out"
    err = refused_on_one_line(run_cli, ["--cfg", tiny_yaml, "--opts", "OUTPUT_DIR", str(out),
                                        "MODEL.MASK_STRIDE", stride], out)
    suggested = err.split("got")[0]
    assert "[1, 0, 0]" not in err and "0]" not in suggested and "use MODEL.MASK_STRIDE" not in err


def test_a_shard_id_flag_beyond_the_number_of_machines_is_refused(run_cli, tiny_yaml, tmp_path):
    out = tmp_path / "out"
    err = refused_on_one_line(run_cli, ["--cfg", tiny_yaml, "--shard_id", "2", "--num_shards", "2", "--opts",
                                        "OUTPUT_DIR", str(out)], out)
    assert err == "error: SHARD_ID 2 must be < NUM_SHARDS 2 (machines are numbered 0 to NUM_SHARDS - 1)"


def test_a_key_repeated_in_a_yaml_file_is_refused_naming_file_key_and_lines(run_cli, tiny_yaml, tmp_path):
    out = tmp_path / "out"
    cfg = tmp_path / "twice.yaml"
    cfg.write_text(f"_BASE_: {tiny_yaml}\nOUTPUT_DIR: {out}\nSOLVER:\n  BASE_LR: 0.001\n  MAX_EPOCH: 1\n"
                   "  BASE_LR: 0.1\n")
    err = refused_on_one_line(run_cli, ["--cfg", str(cfg)], out)
    assert err == (f"error: config file {cfg}: key SOLVER.BASE_LR is repeated (lines 4 and 6); "
                   "YAML would keep only the last value: keep one")


# Unit tests of the table, through `slowfast.config.load`.

def _numeric(value) -> bool:
    if isinstance(value, (list, tuple)):
        return any(_numeric(v) for v in value)
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def test_every_numeric_key_of_the_defaults_has_a_rule_and_every_rule_a_key():
    cfg = get_cfg()
    keys = all_keys(cfg)
    numeric = [k for k in keys if _numeric(value_of(cfg, k))] + ["SOLVER.CLIP_GRAD_L2NORM"]  # default None
    assert sorted(set(numeric) - set(RANGES)) == []
    assert sorted(set(RANGES) - set(keys)) == []


def test_the_defaults_and_every_shipped_rule_boundary_are_accepted():
    cfg = load([], ["SOLVER.CLIP_GRAD_L2NORM", "0", "SOLVER.BETAS", "(0.0,0.0)", "SOLVER.MOMENTUM", "0",
                    "MODEL.MASK_RATE", "0", "TEST.PATCHING_RATIO", "1", "MODEL.ENSEMBLE_RAWMODEL_RATIO", "1",
                    "NUM_GPUS", "0", "DATA.MEAN", "[-1, 0, 2]", "SOLVER.BASE_LR", "0", "DATA_LOADER.NUM_RETRIES", "0"])
    assert cfg.SOLVER.CLIP_GRAD_L2NORM == 0 and cfg.MODEL.MASK_RATE == 0.0
    assert load().SOLVER.CLIP_GRAD_L2NORM is None


# One value each rule refuses, for every key of the table (a test checks the list is complete).
BAD_VALUE = {
    "NUM_GPUS": "-1", "NUM_SHARDS": "0", "SHARD_ID": "-1", "NUM_CPU_PROCS": "0", "RNG_SEED": "-1", "LOG_PERIOD": "0",
    "TRAIN.BATCH_SIZE": "0", "TRAIN.EVAL_PERIOD": "0", "TRAIN.CHECKPOINT_PERIOD": "0",
    "TRAIN.LINEAR_CONNECT_LOSS_RATIO": "-1.0", "TRAIN.LINEAR_CONNECT_SAMPLE_L": "-0.1",
    "TRAIN.LINEAR_CONNECT_SAMPLE_R": "nan", "TEST.BATCH_SIZE": "0", "TEST.NUM_ENSEMBLE_VIEWS": "0",
    "TEST.NUM_SPATIAL_CROPS": "0", "TEST.PATCHING_RATIO": "1.5", "DATA.PATH_LABEL_SEPARATOR": "",
    "DATA.NUM_FRAMES": "0", "DATA.SAMPLING_RATE": "0", "DATA.TARGET_FPS": "0", "DATA.TRAIN_JITTER_SCALES": "[0, 320]",
    "DATA.TRAIN_CROP_SIZE": "0", "DATA.TEST_CROP_SIZE": "-1", "DATA.MEAN": "['a', 'b', 'c']", "DATA.STD": "[1, 1]",
    "DATA_LOADER.NUM_WORKERS": "-1", "DATA_LOADER.NUM_RETRIES": "-1", "AUG.NUM_SAMPLE": "0",
    "SOLVER.BASE_LR": "inf", "SOLVER.WARMUP_START_LR": "-1e-7", "SOLVER.COSINE_END_LR": "nan",
    "SOLVER.WARMUP_EPOCHS": "-1", "SOLVER.MAX_EPOCH": "0", "SOLVER.COSINE_RESTART_EPOCH": "-1",
    "SOLVER.WEIGHT_DECAY": "nan", "SOLVER.CLIP_GRAD_L2NORM": "'abc'", "SOLVER.BETAS": "(0.9, 1.0)",
    "SOLVER.MOMENTUM": "-0.5", "MODEL.NUM_CLASSES": "0", "MODEL.MASK_RATE": "-0.1", "MODEL.MASK_STRIDE": "[1, 2]",
    "MODEL.CHANNEL_FOLD": "1", "MODEL.TEMPORAL_SCALE": "[]", "MODEL.DISTILLATION_RATIO": "-2.0",
    "MODEL.ENSEMBLE_RAWMODEL_RATIO": "nan", "MODEL.CONTEXT_LENGTH": "-1", "MODEL.CUSTOM_CLIP.EMBED_DIM": "0",
    "MODEL.CUSTOM_CLIP.IMAGE_RESOLUTION": "0", "MODEL.CUSTOM_CLIP.VISION_PATCH": "0",
    "MODEL.CUSTOM_CLIP.VISION_WIDTH": "0", "MODEL.CUSTOM_CLIP.VISION_LAYERS": "0", "MODEL.CUSTOM_CLIP.VISION_HEADS": "0",
    "MODEL.CUSTOM_CLIP.TEXT_WIDTH": "0", "MODEL.CUSTOM_CLIP.TEXT_LAYERS": "0", "MODEL.CUSTOM_CLIP.TEXT_HEADS": "0",
    "MODEL.CUSTOM_CLIP.VOCAB_SIZE": "1000", "MODEL.CUSTOM_CLIP.SEED": "-1",
}


def test_every_rule_of_the_table_has_a_bad_value_below():
    assert sorted(BAD_VALUE) == sorted(RANGES)


@pytest.mark.parametrize("key, bad", sorted(BAD_VALUE.items()))
def test_load_refuses_a_value_outside_the_rule_naming_the_key(key, bad):
    with pytest.raises(ConfigError) as err:
        load([], [key, bad])
    message = str(err.value)
    if key == "TEST.NUM_SPATIAL_CROPS":  # a choice of 1 or 3, checked with the other choices first
        assert message == "config key TEST.NUM_SPATIAL_CROPS: 0 is not one of 1, 3"
    else:
        assert message.startswith(f"config key {key} must be {RANGES[key].text}, got ")


def test_a_non_finite_std_in_a_yaml_file_is_refused(tmp_path):
    path = tmp_path / "std.yaml"
    path.write_text("DATA:\n  STD: [0.2, .nan, 0.2]\n")
    with pytest.raises(ConfigError, match=r"config key DATA.STD must be 3 finite numbers > 0 \(R, G, B\), got \[0.2, nan"):
        load(str(path))


def test_a_clip_norm_that_yaml_reads_as_a_string_becomes_a_number(tmp_path):
    path = tmp_path / "clip.yaml"
    path.write_text("SOLVER:\n  CLIP_GRAD_L2NORM: 1e-1\n")  # YAML 1.1: no dot, so a string
    assert load(str(path)).SOLVER.CLIP_GRAD_L2NORM == pytest.approx(0.1)
    path.write_text("SOLVER:\n  CLIP_GRAD_L2NORM: -1e-1\n")
    with pytest.raises(ConfigError, match="SOLVER.CLIP_GRAD_L2NORM must be None or a finite number >= 0"):
        load(str(path))


def test_a_clip_norm_read_as_a_string_can_be_set_again_by_a_later_file_or_option(tmp_path):
    base, child = tmp_path / "base.yaml", tmp_path / "child.yaml"
    base.write_text("SOLVER:\n  CLIP_GRAD_L2NORM: 1e-1\n")  # a string to YAML 1.1
    child.write_text("SOLVER:\n  CLIP_GRAD_L2NORM: 0.5\n")
    assert load([str(base), str(child)]).SOLVER.CLIP_GRAD_L2NORM == 0.5
    assert load([str(base)], ["SOLVER.CLIP_GRAD_L2NORM", "2.0"]).SOLVER.CLIP_GRAD_L2NORM == 2.0
    assert load([str(child), str(base)]).SOLVER.CLIP_GRAD_L2NORM == pytest.approx(0.1)


@pytest.mark.parametrize("text, repeated", [
    ("SOLVER:\n  BASE_LR: 0.1\nDATA:\n  NUM_FRAMES: 4\nSOLVER:\n  MAX_EPOCH: 2\n", "key SOLVER is repeated (lines 1 and 5)"),
    ("MODEL:\n  CUSTOM_CLIP:\n    SEED: 1\n    SEED: 2\n", "key MODEL.CUSTOM_CLIP.SEED is repeated (lines 3 and 4)"),
    ("NUM_GPUS: 0\nNUM_GPUS: 1\n", "key NUM_GPUS is repeated (lines 1 and 2)"),
])
def test_a_key_repeated_in_one_mapping_is_refused(tmp_path, text, repeated):
    path = tmp_path / "twice.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as err:
        load(str(path))
    assert str(err.value) == f"config file {path}: {repeated}; YAML would keep only the last value: keep one"


def test_a_key_repeated_in_a_base_file_names_the_base_file(tmp_path):
    (tmp_path / "base.yaml").write_text("TRAIN:\n  BATCH_SIZE: 8\n  BATCH_SIZE: 16\n")
    (tmp_path / "top.yaml").write_text("_BASE_: base.yaml\nTEST:\n  BATCH_SIZE: 8\n")
    with pytest.raises(ConfigError, match=r"base\.yaml: key TRAIN\.BATCH_SIZE is repeated \(lines 2 and 3\)"):
        load(str(tmp_path / "top.yaml"))


def test_the_same_name_in_two_mappings_is_not_a_repeat(tmp_path):
    path = tmp_path / "ok.yaml"
    path.write_text("TRAIN:\n  BATCH_SIZE: 8\nTEST:\n  BATCH_SIZE: 4\nMODEL:\n  CUSTOM_CLIP: {SEED: 1}\n")
    cfg = load(str(path))
    assert (cfg.TRAIN.BATCH_SIZE, cfg.TEST.BATCH_SIZE, cfg.MODEL.CUSTOM_CLIP.SEED) == (8, 4, 1)


def test_a_key_that_overrides_a_yaml_merge_key_is_not_a_repeat(tmp_path):
    path = tmp_path / "merged.yaml"  # `<<: *shared` copies TRAIN's keys into TEST; BATCH_SIZE then overrides one
    path.write_text("TRAIN: &shared\n  BATCH_SIZE: 8\n  DATASET: ucf101\nTEST:\n  <<: *shared\n  BATCH_SIZE: 4\n")
    cfg = load(str(path))
    assert (cfg.TRAIN.BATCH_SIZE, cfg.TEST.BATCH_SIZE, cfg.TEST.DATASET) == (8, 4, "ucf101")


def test_shard_id_must_name_one_of_the_machines():
    assert load([], ["NUM_SHARDS", "2", "SHARD_ID", "1"]).SHARD_ID == 1
    with pytest.raises(ConfigError, match=r"^SHARD_ID 2 must be < NUM_SHARDS 2 "):
        load([], ["NUM_SHARDS", "2", "SHARD_ID", "2"])
