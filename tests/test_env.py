"""Every run records where it ran (env.json, env.txt, the head of its log); checkpoints and averaged files
record their commit and package versions, and loading one made elsewhere warns; `stdd-env` prints and diffs."""

import json
import logging
import os
import runpy
import subprocess
import sys
from importlib import metadata

import pytest
import torch
import torch.nn as nn
import yaml
from helpers import ROOT

from slowfast.averaging import SchemeParams, plan_averaging, run_averaging
from slowfast.cli.env import main as env_main
from slowfast.config import get_cfg
from slowfast.engine.common import prepare_output_dir, start_run
from slowfast.engine.test_weights import load_test_weights
from slowfast.utils import checkpoint as cu
from slowfast.utils import env as envu
from slowfast.utils import logging as lu


def _git(repo, *args):
    cmd = ["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@example.com", *args]
    return subprocess.run(cmd, check=True, capture_output=True, text=True).stdout.strip()


@pytest.fixture
def git_repo(tmp_path):
    """A real checkout with one commit of one tracked file."""
    repo = tmp_path / "repo"
    repo.mkdir()
    _git(repo, "init", "-q")
    (repo / "a.txt").write_text("one\n")
    _git(repo, "add", "a.txt")
    _git(repo, "commit", "-q", "-m", "first")
    return repo


def _run_cfg(output_dir, seed=0):
    cfg = get_cfg()
    cfg.OUTPUT_DIR = str(output_dir)
    cfg.RNG_SEED = seed
    return cfg


class _Net(nn.Module):
    """The smallest model with the `model.*` key layout that averaging and test loading expect."""

    def __init__(self):
        super().__init__()
        self.model = nn.Linear(3, 2)


# ---- git, CPU and packages: known values, and "unknown" when they cannot be read --------------------


def test_git_state_is_the_head_commit_of_a_clean_checkout(git_repo):
    assert envu.git_state(str(git_repo)) == {"commit": _git(git_repo, "rev-parse", "HEAD"), "dirty": False}


def test_a_modified_tracked_file_makes_the_checkout_dirty_an_untracked_one_does_not(git_repo):
    (git_repo / "new.txt").write_text("untracked\n")
    assert envu.git_state(str(git_repo))["dirty"] is False
    (git_repo / "a.txt").write_text("two\n")
    assert envu.git_state(str(git_repo))["dirty"] is True


def test_a_folder_outside_git_is_not_a_git_checkout(tmp_path):
    assert envu.git_state(str(tmp_path)) == {"commit": "not a git checkout", "dirty": "unknown"}


def test_without_the_git_program_the_commit_is_unknown(git_repo, tmp_path, monkeypatch):
    empty = tmp_path / "no_programs"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    assert envu.git_state(str(git_repo)) == {"commit": "unknown", "dirty": "unknown"}


def test_cpu_model_is_read_from_cpuinfo_and_unknown_when_it_cannot_be(tmp_path):
    info = tmp_path / "cpuinfo"
    info.write_text("processor\t: 0\nmodel name\t: Test CPU 9000 @ 3.0GHz\n")
    assert envu.cpu_model(str(info)) == "Test CPU 9000 @ 3.0GHz"
    assert envu.cpu_model(str(tmp_path / "missing")) == "unknown"
    assert envu.cpu_model(str(tmp_path)) == "unknown"  # a folder: unreadable as a file
    (tmp_path / "arm").write_text("processor\t: 0\nBogoMIPS\t: 50.00\n")
    assert envu.cpu_model(str(tmp_path / "arm")) == "unknown"


def test_a_package_missing_from_the_environment_is_unknown(tmp_path):
    req = tmp_path / "requirements.txt"
    req.write_text("# pinned\nPyYAML==6.0\nnot-an-installed-package-xyz==1.0  # gone\n-r other.txt\n\n")
    versions = envu.package_versions(str(req))
    assert versions["PyYAML"] == yaml.__version__
    assert versions["not-an-installed-package-xyz"] == "unknown"
    assert versions["torch"] == metadata.version("torch") and "-r" not in versions


def test_every_package_of_the_projects_requirements_is_recorded():
    with open(os.path.join(ROOT, "requirements.txt"), encoding="utf-8") as f:
        pinned = [line.split("==")[0] for line in f if "==" in line and not line.startswith("#")]
    assert pinned and list(envu.package_versions())[2:] == pinned


def test_a_run_goes_on_when_git_cpuinfo_and_a_package_are_unavailable(tmp_path, monkeypatch):
    empty = tmp_path / "no_programs"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    req = tmp_path / "req.txt"
    req.write_text("not-an-installed-package-xyz==1.0\n")
    info = envu.collect_env(seed=3, root=str(tmp_path), requirements=str(req), cpuinfo=str(tmp_path / "none"))
    json_path, txt_path = envu.write_env_files(str(tmp_path / "out"), info)
    saved = envu.read_env(json_path)
    assert saved["git"]["commit"] == "unknown" and saved["cpu"]["model"] == "unknown"
    assert saved["packages"]["not-an-installed-package-xyz"] == "unknown" and saved["seed"] == 3
    text = open(txt_path, encoding="utf-8").read()
    assert "commit:    unknown" in text and "not-an-installed-package-xyz" in text


def test_without_a_gpu_the_gpu_field_says_none_and_cuda_is_not_needed():
    if torch.cuda.is_available():
        assert envu.gpu_list()[0]["name"] == torch.cuda.get_device_name(0)
    else:
        assert envu.gpu_list() == []
        assert envu.summary_lines(envu.collect_env())[2] == "GPUs: none (CUDA not available)"


# ---- nothing secret ----------------------------------------------------------------------------------


def test_api_keys_and_dotenv_values_are_not_recorded_only_the_named_variables(tmp_path, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-from-the-environment-123")
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "3,5")
    monkeypatch.chdir(tmp_path)
    (tmp_path / ".env").write_text("OPENAI_API_KEY=sk-from-a-dotenv-file-456\n")
    json_path, txt_path = envu.write_env_files(str(tmp_path / "run"), envu.collect_env(argv=["x"]))
    for path in (json_path, txt_path):
        text = open(path, encoding="utf-8").read()
        assert "sk-from-the-environment-123" not in text and "sk-from-a-dotenv-file-456" not in text
        assert "OPENAI_API_KEY" not in text and "3,5" in text
    assert set(envu.read_env(json_path)["variables"]) == set(envu.RESULT_VARIABLES)


def test_credential_flags_are_hidden_in_the_recorded_command():
    cmd = envu.command_line(["tools/x.py", "--api-key", "sk-1", "--hf_token=abc", "--keys", "all", "--opts", "A", "1"])
    assert "sk-1" not in cmd and "abc" not in cmd
    assert cmd == "tools/x.py --api-key '***' '--hf_token=***' --keys all --opts A 1"


# ---- every run: env files beside config.yaml, environment at the head of the log -----------------------


def test_a_run_writes_env_json_and_env_txt_beside_config_yaml(tmp_path):
    prepare_output_dir(_run_cfg(tmp_path / "run", seed=7), training=True)
    assert {"config.yaml", "env.json", "env.txt"} <= set(os.listdir(tmp_path / "run"))
    saved = envu.read_env(str(tmp_path / "run"))
    assert saved["seed"] == 7 and saved["git"] == envu.git_state()
    assert saved["torch"]["version"] == torch.__version__ and saved["command"]
    assert "seed:      7" in (tmp_path / "run" / "env.txt").read_text()


def test_the_log_opens_with_commit_torch_and_gpu_lines(tmp_path):
    try:
        start_run(_run_cfg(tmp_path / "run"), training=False)
        logging.getLogger("slowfast.test").info("after the environment")
    finally:
        lu.setup_logging(None)  # closes stdout.log
    lines = (tmp_path / "run" / "stdout.log").read_text().splitlines()
    assert f"commit: {envu.git_state()['commit']}" in lines[0]
    assert f"torch {torch.__version__} (CUDA" in lines[1]
    assert "GPUs: " in lines[2] and "after the environment" in lines[3]


@pytest.mark.parametrize("train_enabled", [True, False])
def test_a_key_that_changes_nothing_is_logged_once_per_run(tmp_path, monkeypatch, train_enabled):
    monkeypatch.setattr(envu, "collect_env", lambda seed=None, **_: {"seed": seed})  # the environment is not under test
    cfg = _run_cfg(tmp_path / "run")
    cfg.TRAIN.ENABLE = train_enabled
    cfg.SOLVER.BASE_LR_SCALE_NUM_SHARDS = True
    try:
        if train_enabled:
            start_run(cfg, training=True)  # a train-then-test run starts twice, in one output folder
        start_run(cfg, training=False)
    finally:
        lu.setup_logging(None)  # closes stdout.log
    log = (tmp_path / "run" / "stdout.log").read_text()
    assert log.count("SOLVER.BASE_LR_SCALE_NUM_SHARDS True is accepted for compatibility and changes nothing") == 1


# ---- stdd-env ----------------------------------------------------------------------------------------


def _two_runs(tmp_path):
    a = envu.collect_env(seed=0, argv=["stdd-run"])
    b = json.loads(json.dumps(a))
    b["torch"]["version"], b["packages"]["torch"] = "2.1.0+cu118", "2.1.0"
    b["git"]["commit"] = "0" * 40
    b["created"] = "2000-01-01T00:00:00+00:00"
    return envu.write_env_files(str(tmp_path / "A"), a)[0], envu.write_env_files(str(tmp_path / "B"), b)[0], a


def test_stdd_env_diff_prints_the_torch_version_and_commit_that_differ(tmp_path, capsys):
    path_a, path_b, a = _two_runs(tmp_path)
    assert env_main(["--diff", path_a, path_b]) == 0
    out = capsys.readouterr().out
    rows = {line.split()[0]: line for line in out.splitlines()[1:]}
    assert set(rows) == {"git.commit", "torch.version", "packages.torch"}  # creation time is not compared
    assert a["git"]["commit"] in rows["git.commit"] and "0" * 40 in rows["git.commit"]
    assert f"A: {torch.__version__}  B: 2.1.0+cu118" in rows["torch.version"]


def test_stdd_env_diff_of_one_run_with_itself_finds_nothing_and_takes_run_folders(tmp_path, capsys):
    path_a, _, _ = _two_runs(tmp_path)
    assert env_main(["--diff", path_a, os.path.dirname(path_a)]) == 0
    assert capsys.readouterr().out.startswith("no differences")


def test_stdd_env_diff_names_a_missing_or_malformed_file(tmp_path, capsys):
    path_a, _, _ = _two_runs(tmp_path)
    assert env_main(["--diff", path_a, str(tmp_path / "nope.json")]) == 1
    assert "nope.json" in capsys.readouterr().err
    (tmp_path / "bad.json").write_text("{not json")
    assert env_main(["--diff", str(tmp_path / "bad.json"), path_a]) == 1
    assert "bad.json is not JSON" in capsys.readouterr().err


def test_stdd_env_prints_the_report_as_text_or_json(capsys):
    assert env_main([]) == 0
    text = capsys.readouterr().out
    assert f"commit:    {envu.git_state()['commit']}" in text and "packages:" in text
    assert env_main(["--json"]) == 0
    assert json.loads(capsys.readouterr().out)["torch"]["version"] == torch.__version__


@pytest.mark.filterwarnings("ignore:'slowfast.utils.env' found in sys.modules")  # imported above, run again here
def test_python_m_slowfast_utils_env_runs_stdd_env(monkeypatch, capsys):
    monkeypatch.setattr(sys, "argv", ["env.py", "--json"])
    with pytest.raises(SystemExit) as e:
        runpy.run_module("slowfast.utils.env", run_name="__main__")
    assert e.value.code == 0 and "packages" in json.loads(capsys.readouterr().out)


def test_stdd_env_is_an_installed_console_command():
    with open(os.path.join(ROOT, "setup.py"), encoding="utf-8") as f:
        assert '"stdd-env = slowfast.cli.env:main"' in f.read()


# ---- checkpoints and averaged files --------------------------------------------------------------------


def _checkpoint_from_another_checkout(git_repo, tmp_path, monkeypatch):
    """A checkpoint saved by `save_checkpoint` while the project was the checkout `git_repo`."""
    monkeypatch.setattr(envu, "PROJECT_ROOT", str(git_repo))
    path = cu.save_checkpoint(str(tmp_path / "old_run"), _Net(), None, 0, get_cfg())
    monkeypatch.undo()
    return path, _git(git_repo, "rev-parse", "HEAD")


def _provenance_warnings(caplog):
    return [r for r in caplog.records if r.levelno == logging.WARNING and r.name == "slowfast.utils.checkpoint"]


def test_a_checkpoint_of_another_commit_is_tested_with_one_warning_naming_both_commits(git_repo, tmp_path,
                                                                                       monkeypatch, caplog):
    path, old_commit = _checkpoint_from_another_checkout(git_repo, tmp_path, monkeypatch)
    cfg = _run_cfg(tmp_path / "test_run")
    cfg.TEST.CHECKPOINT_FILE_PATH = path
    model = _Net()
    with caplog.at_level(logging.WARNING):
        info = load_test_weights(cfg, model)
    warnings = _provenance_warnings(caplog)
    assert info["file"] == path and len(warnings) == 1
    message = warnings[0].getMessage()
    assert f"commit {old_commit} in the file, {envu.git_state()['commit']} here" in message and path in message
    assert torch.equal(model.model.weight, torch.load(path, weights_only=True)["model_state"]["model.weight"])


def test_resuming_from_a_checkpoint_of_another_commit_warns_and_loads(git_repo, tmp_path, monkeypatch, caplog):
    path, old_commit = _checkpoint_from_another_checkout(git_repo, tmp_path, monkeypatch)
    with caplog.at_level(logging.WARNING):
        assert cu.load_checkpoint(path, _Net(), cfg=get_cfg()) == 0
    warnings = _provenance_warnings(caplog)
    assert len(warnings) == 1 and old_commit in warnings[0].getMessage()


def test_a_checkpoint_of_this_environment_loads_without_a_warning(tmp_path, caplog):
    path = cu.save_checkpoint(str(tmp_path), _Net(), None, 0, get_cfg())
    saved = torch.load(path, weights_only=True)["env"]
    assert saved["commit"] == envu.git_state()["commit"] and saved["versions"]["torch"] == metadata.version("torch")
    with caplog.at_level(logging.WARNING):
        cu.load_checkpoint(path, _Net(), cfg=get_cfg())
    assert _provenance_warnings(caplog) == []


def test_averaged_files_store_commit_and_versions_and_their_folder_gets_env_files(tmp_path):
    for epoch in (0, 1):
        cu.save_checkpoint(str(tmp_path / "run"), _Net(), None, epoch, get_cfg())
    plan = plan_averaging(cu.checkpoint_dir(str(tmp_path / "run")), ["swa"], None, None, "all", None, SchemeParams())
    [out] = run_averaging(plan, str(tmp_path / "wa"), log=lambda _: None)
    assert {"env.json", "env.txt"} <= set(os.listdir(tmp_path / "wa"))
    averaged = torch.load(out, weights_only=True)
    trained = torch.load(plan.checkpoints[-1].path, weights_only=True)
    assert averaged["env"] == envu.provenance() and averaged["meta"]["trained_with"] == trained["env"]
    assert averaged["cfg"] == trained["cfg"]
