"""Checkpoints know their model, bad input stops early on one line, and nothing the user made is lost.

The runs use the tiny model and videos of tests/helpers.py.
"""

import contextlib
import io
import json
import os
import signal
import subprocess
import sys
import time

import pytest
import torch
import yaml
from helpers import ROOT, free_port, tiny_run_cfg, tiny_run_opts

from slowfast.datasets.video_list import DatasetFileError, check_paths_exist, read_video_csv
from slowfast.engine import test as run_test
from slowfast.engine import train
from slowfast.engine.zero_shot_protocol import run_protocol
from slowfast.errors import UserError
from slowfast.utils import checkpoint as cu
from slowfast.utils.class_index import ClassIndexError, read_class_names

RUN_NET = os.path.join(ROOT, "tools", "run_net.py")
TINY_YAML = os.path.join(ROOT, "tests", "configs", "tiny_synthetic.yaml")
TOOL = os.path.join(ROOT, "weight_average_tool.py")
ONE_EPOCH = {"SOLVER.MAX_EPOCH": 1, "TEST.ENABLE": False, "TRAIN.EVAL_PERIOD": 10}


@pytest.fixture(scope="module")
def stdd_run(tiny_data, tmp_path_factory):
    """OUTPUT_DIR of a one-epoch run of the STDD operator (stcross_attend, TEMPORAL_SCALE [1, 2])."""
    out = str(tmp_path_factory.mktemp("stdd_run"))
    train(tiny_run_cfg(tiny_data, out, **ONE_EPOCH))
    return out


def _run_net_main(argv: list[str]) -> str:
    """The message tools/run_net.py exits with (in this process: fast), or "" when it succeeds."""
    sys.path.insert(0, os.path.join(ROOT, "tools"))
    try:
        import run_net
    finally:
        sys.path.pop(0)
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        code = run_net.main(argv)
    # The last line: progress bars before it end their lines with carriage returns.
    return err.getvalue().strip().replace("\r", "\n").splitlines()[-1] if code else ""


def _no_nan_json(path: str) -> dict:
    def refuse(constant):
        raise AssertionError(f"{path} holds {constant}")

    with open(path, encoding="utf-8") as f:
        return json.loads(f.read(), parse_constant=refuse)


# ---- checkpoints carry their model -----------------------------------------------------------------


def test_training_writes_the_merged_config_to_output_dir(stdd_run):
    with open(os.path.join(stdd_run, "config.yaml"), encoding="utf-8") as f:
        saved = yaml.safe_load(f)
    assert saved["MODEL"]["TEMPORAL_MODELING_TYPE"] == "stcross_attend"
    assert saved["MODEL"]["TEMPORAL_SCALE"] == [1, 2] and saved["OUTPUT_DIR"] == stdd_run


def test_training_records_its_environment_beside_the_config_and_in_its_checkpoints(stdd_run):
    from slowfast.utils import env as envu

    with open(os.path.join(stdd_run, "env.json"), encoding="utf-8") as f:
        env = json.load(f)
    assert env["seed"] == 3 and env["git"] == envu.git_state()  # the RNG_SEED of helpers.tiny_run_cfg
    assert os.path.isfile(os.path.join(stdd_run, "env.txt"))
    with open(os.path.join(stdd_run, "stdout.log"), encoding="utf-8") as f:
        head = f.read().splitlines()[:3]
    assert "commit: " in head[0] and "torch " in head[1] and "GPUs: " in head[2]
    assert torch.load(cu.checkpoint_path(stdd_run, 0), weights_only=True)["env"] == envu.provenance()


def test_testing_a_checkpoint_under_another_operator_is_refused_naming_key_and_both_values(tiny_data, stdd_run,
                                                                                            tmp_path):
    ckpt = cu.checkpoint_path(stdd_run, 0)
    cfg = tiny_run_cfg(tiny_data, str(tmp_path / "t"), **{"MODEL.TEMPORAL_MODELING_TYPE": "None",
                                                          "TEST.CHECKPOINT_FILE_PATH": ckpt})
    with pytest.raises(cu.CheckpointError) as e:
        run_test(cfg)
    msg = str(e.value)
    assert ckpt in msg and "MODEL.TEMPORAL_MODELING_TYPE is None here but 'stcross_attend'" in msg
    assert "\n" not in msg


def test_operator_settings_are_compared_when_the_operator_is_the_same(tiny_data, stdd_run, tmp_path):
    cfg = tiny_run_cfg(tiny_data, str(tmp_path / "t"), **{"MODEL.TEMPORAL_SCALE": [1], "DATA.NUM_FRAMES": 8})
    with open(os.path.join(stdd_run, "config.yaml"), encoding="utf-8") as f:
        diffs = cu.model_key_mismatches(cfg, yaml.safe_load(f))
    assert diffs == [("DATA.NUM_FRAMES", 8, 4), ("MODEL.TEMPORAL_SCALE", [1], [1, 2])]


def test_keys_that_differ_between_training_and_testing_are_not_compared(tiny_data, stdd_run, tmp_path):
    cfg = tiny_run_cfg(tiny_data, str(tmp_path / "t"), **{
        "MODEL.NUM_CLASSES": 5, "TEST.NUM_ENSEMBLE_VIEWS": 4, "TEST.BATCH_SIZE": 8, "DATA.PATH_TO_DATA_DIR": "/x",
        "DATA.INDEX_LABEL_MAPPING_FILE": "/x/classes.json", "MODEL.KEEP_RAW_MODEL": True})
    with open(os.path.join(stdd_run, "config.yaml"), encoding="utf-8") as f:
        assert cu.model_key_mismatches(cfg, yaml.safe_load(f)) == []


def test_auto_resume_refuses_a_run_of_another_operator(tiny_data, stdd_run):
    cfg = tiny_run_cfg(tiny_data, stdd_run, **{**ONE_EPOCH, "SOLVER.MAX_EPOCH": 2, "MODEL.TEMPORAL_MODELING_TYPE": "None"})
    with pytest.raises(cu.CheckpointError, match="MODEL.TEMPORAL_MODELING_TYPE"):
        train(cfg)
    assert not os.path.exists(cu.checkpoint_path(stdd_run, 1))


def test_checkpoint_without_stored_config_loads_with_a_warning(tiny_data, stdd_run, tmp_path, caplog):
    old = str(tmp_path / "old.pyth")
    ckpt = torch.load(cu.checkpoint_path(stdd_run, 0), weights_only=True)
    del ckpt["cfg"]
    torch.save(ckpt, old)
    with caplog.at_level("WARNING"):
        m = run_test(tiny_run_cfg(tiny_data, str(tmp_path / "t"), **{"TEST.CHECKPOINT_FILE_PATH": old}))
    assert m["checkpoint"] == old and m["num_videos"] == 4
    assert "stores no config" in caplog.text


def test_custom_load_file_is_tested_without_custom_load_true(tiny_data, stdd_run, tmp_path):
    ckpt = cu.checkpoint_path(stdd_run, 0)
    m = run_test(tiny_run_cfg(tiny_data, str(tmp_path / "t"), **{"TEST.CUSTOM_LOAD": False, "TEST.CUSTOM_LOAD_FILE": ckpt}))
    assert m["checkpoint"] == ckpt


@pytest.mark.slow
def test_averaged_and_patched_files_store_the_training_config(stdd_run, tmp_path, tiny_clip_file):
    out = tmp_path / "avg"
    r = subprocess.run([sys.executable, TOOL, "--source-dir", cu.checkpoint_dir(stdd_run), "--output-dir", str(out)],
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr
    averaged = torch.load(out / "swa_1_1.pth", weights_only=True)
    assert yaml.safe_load(averaged["cfg"])["MODEL"]["TEMPORAL_MODELING_TYPE"] == "stcross_attend"


# ---- preflight: one line, before the expensive part ------------------------------------------------


@pytest.mark.slow
@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without GPUs")
def test_num_gpus_above_the_gpus_present_fails_before_any_process(tiny_data, tmp_path):
    out = tmp_path / "o"
    r = subprocess.run([sys.executable, RUN_NET, "--opts", *tiny_run_opts(tiny_data, str(out), NUM_GPUS=2)],
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 1
    assert r.stderr.strip() == ("error: NUM_GPUS 2 but this machine has 0 GPUs visible; set NUM_GPUS 0 to run on "
                                "the CPU")
    assert not out.exists()


def test_wrong_path_prefix_names_the_prefix_tried_and_what_exists(tiny_data, tmp_path):
    wrong = tmp_path / "prefix"
    wrong.mkdir()
    (wrong / "clips").mkdir()
    with pytest.raises(DatasetFileError) as e:
        csv = os.path.join(tiny_data, "test.csv")
        check_paths_exist(read_video_csv(csv, ",", str(wrong)), csv, str(wrong))
    msg = str(e.value)
    assert f"DATA.PATH_PREFIX is {str(wrong)!r}" in msg and "contains clips" in msg
    assert os.path.join(str(wrong), "videos", "test_0.mp4") in msg


def _broken_test_list(folder, n: int = 2) -> str:
    folder.mkdir(exist_ok=True)
    lines = []
    for i in range(n):
        (folder / f"broken_{i}.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42 not a video")
        lines.append(f"{folder / f'broken_{i}.mp4'},{i % 2}\n")
    (folder / "test.csv").write_text("".join(lines))
    return str(folder)


def test_a_test_with_no_readable_video_exits_nonzero_and_writes_no_nan(tiny_data, tmp_path):
    data = _broken_test_list(tmp_path / "data")
    out = tmp_path / "o"
    opts = tiny_run_opts(data, str(out), **{"TRAIN.ENABLE": False, "DATA.PATH_PREFIX": "",
                                            "DATA.INDEX_LABEL_MAPPING_FILE": os.path.join(tiny_data, "index2cls.json")})
    msg = _run_net_main(["--opts", *opts])
    assert msg.startswith("error: the test evaluated no video: all 2 videos") and "\n" not in msg
    metrics = _no_nan_json(str(out / "test_metrics.json"))
    assert metrics["top1_acc"] is None and metrics["num_unreadable"] == 2


def test_an_empty_test_list_stops_a_train_and_test_run_before_training(tiny_data, tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    for name in ("train.csv", "index2cls.json"):
        (data / name).write_text(open(os.path.join(tiny_data, name)).read())
    (data / "test.csv").write_text("\n")
    out = tmp_path / "o"
    msg = _run_net_main(["--opts", *tiny_run_opts(str(data), str(out), **{"DATA.PATH_PREFIX": tiny_data})])
    assert msg == f"error: {data / 'test.csv'}: no videos listed"
    assert cu.list_checkpoints(str(out)) == []


def test_an_output_dir_under_a_regular_file_is_one_line(tiny_data, tmp_path):
    (tmp_path / "file").write_text("x")
    out = tmp_path / "file" / "run"
    msg = _run_net_main(["--opts", *tiny_run_opts(tiny_data, str(out))])
    assert msg == f"error: OUTPUT_DIR {out} cannot be created: a regular file is in the way"


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_an_unwritable_output_dir_is_refused_before_training(tiny_data, tmp_path):
    out = tmp_path / "ro"
    out.mkdir()
    out.chmod(0o555)
    msg = _run_net_main(["--opts", *tiny_run_opts(tiny_data, str(out))])
    assert msg.startswith(f"error: OUTPUT_DIR {out} is not writable")


@pytest.mark.parametrize("key,value,expected", [
    ("MODEL.TEMPORAL_SCALE", "['a']", "MODEL.TEMPORAL_SCALE must be a non-empty list of positive ints"),
    ("MODEL.TEMPORAL_SCALE", "[1.5]", "MODEL.TEMPORAL_SCALE must be a non-empty list of positive ints"),
    ("TEST.NUM_ENSEMBLE_VIEWS", "0", "TEST.NUM_ENSEMBLE_VIEWS must be >= 1"),
    ("SOLVER.BASE_LR", "nan", "SOLVER.BASE_LR must be a finite number"),
    ("DATA_LOADER.NUM_RETRIES", "-1", "DATA_LOADER.NUM_RETRIES must be >= 0"),
    ("DATA.SAMPLING_RATE", "0", "DATA.SAMPLING_RATE must be >= 1"),
    ("SOLVER.MAX_EPOCH", "0", "SOLVER.MAX_EPOCH must be >= 1"),
    ("TEST.PATCHING_RATIO", "1.5", "TEST.PATCHING_RATIO must be in [0, 1]"),
])
def test_bad_config_values_are_one_line(key, value, expected, tmp_path):
    msg = _run_net_main(["--opts", "NUM_GPUS", "0", "OUTPUT_DIR", str(tmp_path / "o"), key, value])
    assert msg.startswith("error: ") and expected in msg and "\n" not in msg
    assert not (tmp_path / "o").exists()


# A value a user can get wrong, and the key the one error line must name. NUM_GPUS asks for more GPUs than
# any machine has (with batch sizes that divide over them), so the case holds with or without GPUs.
BAD_VALUES = [
    (["MODEL.NUM_CLASSES", "5"], "MODEL.NUM_CLASSES"),  # the class-index file has 2
    (["NUM_GPUS", "1024", "TRAIN.BATCH_SIZE", "1024", "TEST.BATCH_SIZE", "1024"], "NUM_GPUS"),
    (["MODEL.MODEL_NAME", "VideoNet"], "MODEL.MODEL_NAME"),
    (["TRAIN.DATASET", "kinetcs"], "TRAIN.DATASET"),
    (["DATA.ENSEMBLE_METHOD", "mean"], "DATA.ENSEMBLE_METHOD"),
    (["MODEL.CUSTOM_CLIP.VISION_HEADS", "3"], "MODEL.CUSTOM_CLIP.VISION_HEADS"),
]


@pytest.mark.slow
@pytest.mark.parametrize("bad, key", BAD_VALUES, ids=[key for _, key in BAD_VALUES])
def test_a_bad_config_value_stops_the_command_on_one_error_line_naming_the_key(tiny_data, tmp_path, bad, key):
    out = tmp_path / "o"
    data = ["DATA.PATH_TO_DATA_DIR", tiny_data, "DATA.PATH_PREFIX", tiny_data, "MODEL.NUM_CLASSES", "2",
            "DATA.INDEX_LABEL_MAPPING_FILE", os.path.join(tiny_data, "index2cls.json"), "OUTPUT_DIR", str(out)]
    r = subprocess.run([sys.executable, RUN_NET, "--cfg", TINY_YAML, "--opts", *data, *bad],
                       capture_output=True, text=True, timeout=600)
    printed = r.stdout + r.stderr
    errors = [line for line in printed.splitlines() if line.startswith("error:")]
    assert r.returncode != 0 and "Traceback" not in printed, printed
    assert len(errors) == 1 and key in errors[0], printed
    assert not out.exists()  # stopped before the run's folder was made, so before any model or process


def test_a_base_file_that_includes_itself_is_one_line(tmp_path):
    (tmp_path / "a.yaml").write_text("_BASE_: b.yaml\n")
    (tmp_path / "b.yaml").write_text("_BASE_: a.yaml\nNUM_GPUS: 0\n")
    msg = _run_net_main(["--cfg", str(tmp_path / "a.yaml")])
    assert msg.startswith(f"error: config file {tmp_path / 'a.yaml'} includes itself through _BASE_")


def test_top_k_must_be_positive():
    from slowfast.engine.common import check_top_k

    for bad in (0, -3):
        with pytest.raises(UserError, match="--top-k must be a positive integer"):
            check_top_k(bad)
    assert check_top_k(5, num_classes=3) == 3


def test_every_training_video_broken_is_one_line(tiny_data, tmp_path):
    data = _broken_test_list(tmp_path / "data", n=4)
    os.replace(os.path.join(data, "test.csv"), os.path.join(data, "train.csv"))
    opts = tiny_run_opts(data, str(tmp_path / "o"), **{"TEST.ENABLE": False, "DATA.PATH_PREFIX": "",
                                                       "DATA_LOADER.NUM_RETRIES": 2,
                                                       "DATA.INDEX_LABEL_MAPPING_FILE": os.path.join(tiny_data,
                                                                                                     "index2cls.json")})
    msg = _run_net_main(["--opts", *opts])
    assert msg.startswith(f"error: {os.path.join(data, 'train.csv')}: 3 videos in a row could not be decoded")


def test_an_error_from_a_data_loader_worker_is_shown_as_its_original_message():
    from slowfast.errors import one_line

    wrapped = UserError("Caught UnreadableVideosError in DataLoader worker process 0.\nOriginal Traceback (most "
                        "recent call last):\n  File \"x.py\", line 1, in f\nslowfast.datasets.csv_dataset."
                        "UnreadableVideosError: train.csv: 3 videos in a row could not be decoded\n")
    assert one_line(wrapped) == "train.csv: 3 videos in a row could not be decoded"


def test_a_csv_with_a_byte_order_mark_reads_its_first_path(tmp_path):
    path = tmp_path / "list.csv"
    path.write_bytes("a.mp4,0\nb.mp4,1\n".encode("utf-8-sig"))
    assert [e.path for e in read_video_csv(str(path), ",", "")] == ["a.mp4", "b.mp4"]


def test_a_class_index_with_a_duplicate_key_is_refused(tmp_path):
    path = tmp_path / "classes.json"
    path.write_text('{"0": "jump", "1": "run", "1": "swim"}')
    with pytest.raises(ClassIndexError, match="key '1' appears twice"):
        read_class_names(str(path))


# ---- nothing the user made is lost -----------------------------------------------------------------


def _checkpoints(folder, ids) -> str:
    folder.mkdir()
    for i in ids:
        torch.save({"epoch": i - 1, "model_state": {"model.w": torch.full((2,), float(i))}},
                   folder / f"checkpoint_epoch_{i:05d}.pyth")
    return str(folder)


@pytest.mark.slow
def test_averaging_names_the_output_after_the_epochs_really_averaged(tmp_path):
    src = _checkpoints(tmp_path / "ck", [1, 2])
    r = subprocess.run([sys.executable, TOOL, "--source-dir", src, "--output-dir", str(tmp_path / "o"),
                        "--start", "2", "--end", "22"], capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr
    assert sorted(os.listdir(tmp_path / "o")) == ["env.json", "env.txt", "swa_2_2.pth"]
    assert "no checkpoint for epochs 3-22 of 2..22" in r.stdout


@pytest.mark.slow
def test_a_corrupt_checkpoint_inside_the_range_stops_averaging(tmp_path):
    src = _checkpoints(tmp_path / "ck", [1, 2, 3])
    (tmp_path / "ck" / "checkpoint_epoch_00002.pyth").write_bytes(b"truncated")
    r = subprocess.run([sys.executable, TOOL, "--source-dir", src, "--output-dir", str(tmp_path / "o")],
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 1 and os.path.join(src, "checkpoint_epoch_00002.pyth") in r.stderr
    assert not (tmp_path / "o").exists()


@pytest.mark.slow
def test_patching_refuses_an_output_equal_to_its_input(tmp_path, tiny_clip_file):
    src = _checkpoints(tmp_path / "ck", [1])
    ckpt = os.path.join(src, "checkpoint_epoch_00001.pyth")
    before = open(ckpt, "rb").read()
    r = subprocess.run([sys.executable, TOOL, "--patch", ckpt, "--clip", tiny_clip_file, "--ratio", "0.5",
                        "--output", ckpt], capture_output=True, text=True, timeout=600)
    assert r.returncode == 1 and f"--output {ckpt} is the --patch input" in r.stderr
    assert open(ckpt, "rb").read() == before


def test_zero_shot_writes_its_summary_when_a_split_has_no_readable_video(tiny_data, tmp_path):
    root = _broken_test_list(tmp_path / "k400")
    with open(os.path.join(tiny_data, "index2cls.json")) as f:
        (tmp_path / "k400" / "index2cls.json").write_text(f.read())
    cfg = tiny_run_cfg(tiny_data, str(tmp_path / "unused"), **{"TRAIN.ENABLE": False, "DATA.PATH_PREFIX": ""})
    out = tmp_path / "zs"
    summary = run_protocol(cfg, "k400", root, str(out), official_classes=False)
    assert summary["failed_splits"] == ["k400"]
    saved = _no_nan_json(str(out / "zero_shot_k400.json"))
    assert saved["failed_splits"] == ["k400"] and saved["top1_acc"]["mean"] is None
    assert "no readable video" in (out / "zero_shot_k400.md").read_text()


def test_temporary_files_of_a_killed_checkpoint_save_are_removed_at_the_next_start(tiny_data, tmp_path):
    out = str(tmp_path / "o")
    os.makedirs(cu.checkpoint_dir(out))
    stray = os.path.join(cu.checkpoint_dir(out), ".checkpoint_epoch_00001.pyth.k2j4h5_x.tmp")
    with open(stray, "wb") as f:
        f.write(b"half a checkpoint")
    train(tiny_run_cfg(tiny_data, out, **ONE_EPOCH))
    assert sorted(os.listdir(cu.checkpoint_dir(out))) == ["checkpoint_epoch_00001.pyth"]


def _spawned_children(pid: int) -> list[int]:
    """Pids of the worker processes `multiprocessing` spawned from `pid` (Linux /proc), oldest first."""
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            children = [int(c) for c in f.read().split()]
    except OSError:
        return []
    found = []
    for c in children:
        try:
            with open(f"/proc/{c}/cmdline", "rb") as f:
                if b"spawn_main" in f.read():
                    found.append(c)
        except OSError:
            continue
    return sorted(found)


@pytest.mark.slow
@pytest.mark.skipif(not os.path.isdir("/proc/self/task"), reason="finds the worker processes through /proc")
def test_a_killed_process_ends_a_multi_process_run_naming_rank_signal_and_checkpoint(tiny_data, tmp_path):
    out = str(tmp_path / "o")
    env = {**os.environ, "OMP_NUM_THREADS": "1", "TMPDIR": str(tmp_path)}
    opts = tiny_run_opts(tiny_data, out, **{"NUM_CPU_PROCS": 2, "SOLVER.MAX_EPOCH": 100, "TEST.ENABLE": False,
                                            "TRAIN.EVAL_PERIOD": 100})
    proc = subprocess.Popen([sys.executable, RUN_NET, "--init_method", f"tcp://127.0.0.1:{free_port()}",
                             "--opts", *opts], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.time() + 600  # only a run that hangs gets near this
        while not os.path.exists(cu.checkpoint_path(out, 0)) and proc.poll() is None and time.time() < deadline:
            time.sleep(0.05)
        workers = _spawned_children(proc.pid)
        assert len(workers) == 2 and os.path.exists(cu.checkpoint_path(out, 0)), "the run did not get going"
        os.kill(workers[1], signal.SIGKILL)  # spawned second: local rank 1
        _, err = proc.communicate(timeout=600)  # a launcher that waits on the dead process hangs here
    finally:
        if proc.poll() is None:
            proc.kill()
    # torch and the resource tracker add warnings of their own; ours is the one "error:" line.
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert proc.returncode == 1 and len(errors) == 1, err
    assert errors[0].startswith("error: process of rank 1 was killed by SIGKILL")
    assert "resume from " + os.path.join(cu.checkpoint_dir(out), "checkpoint_epoch_") in errors[0]
    assert "Traceback" not in err
