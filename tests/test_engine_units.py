"""Engine pieces that need neither the video model nor the data: schedule, groups, losses, views, checkpoints."""

import errno
import importlib.util
import os
import subprocess
import sys

import pytest
import torch
import torch.nn as nn
from helpers import ROOT

from slowfast.averaging import patch_state_dict
from slowfast.config import ConfigError, get_cfg
from slowfast.engine.meters import aggregate_views, classification_metrics
from slowfast.engine.trainer import LinearConnectClimb
from slowfast.errors import UserError
from slowfast.models.losses import cross_entropy, get_loss_func, soft_cross_entropy
from slowfast.models.optimizer import build_optimizer, construct_optimizer, param_groups
from slowfast.models.temporal_ops import TemporalOpError
from slowfast.utils import checkpoint as cu
from slowfast.utils.atomic import atomic_path, no_room
from slowfast.utils.lr_policy import LRSchedule, get_lr_at_epoch, lr_at_epoch, set_lr


def test_lr_schedule_matches_reference_table():
    # The paper recipe: BASE 3.33e-6, START = END = 3.33e-8, 2 warmup epochs, 22 epochs, cosine after warmup.
    cfg = get_cfg()
    cfg.SOLVER.BASE_LR, cfg.SOLVER.WARMUP_START_LR, cfg.SOLVER.COSINE_END_LR = 3.33e-6, 3.33e-8, 3.33e-8
    cfg.SOLVER.WARMUP_EPOCHS, cfg.SOLVER.MAX_EPOCH, cfg.SOLVER.COSINE_AFTER_WARMUP = 2.0, 22, True
    table = {0: 3.33e-8, 1: 1.6817e-6, 2: 3.33e-6, 7: 2.8473e-6, 12: 1.6817e-6, 17: 5.160e-7, 22: 3.33e-8}
    for epoch, expected in table.items():
        assert get_lr_at_epoch(cfg, float(epoch)) == pytest.approx(expected, rel=2e-4), epoch


def test_lr_is_updated_per_iteration_within_warmup():
    s = LRSchedule(base_lr=1.0, max_epoch=10, warmup_epochs=1.0, warmup_start_lr=0.0, cosine_end_lr=0.0)
    assert lr_at_epoch(s, 0.25) == pytest.approx(0.25)
    assert lr_at_epoch(s, 0.5) == pytest.approx(0.5)


def test_lr_cosine_restart_period():
    s = LRSchedule(base_lr=1.0, max_epoch=20, warmup_epochs=0.0, cosine_end_lr=0.0, cosine_restart_epoch=5)
    assert lr_at_epoch(s, 5.0) == pytest.approx(1.0)
    assert lr_at_epoch(s, 7.5) == pytest.approx(0.5)


def test_set_lr_applies_group_factor():
    opt = torch.optim.SGD([{"params": [nn.Parameter(torch.zeros(1))], "lr_factor": 0.5},
                           {"params": [nn.Parameter(torch.zeros(1))]}], lr=1.0)
    set_lr(opt, 0.2)
    assert [g["lr"] for g in opt.param_groups] == [pytest.approx(0.1), pytest.approx(0.2)]


class _StandInVideoModel(nn.Module):
    """Stand-in with the parameter layout of TemporalClipVideo (student, frozen text tower and teacher)."""

    def __init__(self):
        super().__init__()
        self.model = nn.Module()
        self.model.visual = nn.Sequential(nn.Linear(4, 4), nn.LayerNorm(4))
        self.model.visual.class_embedding = nn.Parameter(torch.zeros(4))
        self.model.logit_scale = nn.Parameter(torch.tensor(2.6593))
        self.model.token_embedding = nn.Embedding(10, 4)
        self.model.token_embedding.weight.requires_grad_(False)
        self.raw_model = nn.Linear(4, 4)
        self.raw_model.requires_grad_(False)
        self.projector_v = nn.Sequential(nn.Linear(4, 4, bias=False), nn.ReLU(), nn.Linear(4, 4, bias=False))


def test_param_groups_follow_the_original():
    groups = {g["name"]: g for g in param_groups(_StandInVideoModel(), weight_decay=0.01, zero_wd_1d=True)}
    assert sorted(groups["decay"]["param_names"]) == sorted(
        ["model.visual.0.weight", "model.logit_scale", "projector_v.0.weight", "projector_v.2.weight"])
    assert sorted(groups["no_decay"]["param_names"]) == sorted(
        ["model.visual.0.bias", "model.visual.1.weight", "model.visual.1.bias", "model.visual.class_embedding"])
    assert groups["decay"]["weight_decay"] == 0.01 and groups["no_decay"]["weight_decay"] == 0.0


def test_frozen_parameters_are_not_optimized():
    model = _StandInVideoModel()
    opt = construct_optimizer(model, get_cfg())
    ids = {id(p) for g in opt.param_groups for p in g["params"]}
    assert id(model.model.token_embedding.weight) not in ids
    assert not any(id(p) in ids for p in model.raw_model.parameters())


def test_soft_cross_entropy_equals_cross_entropy_for_hard_labels():
    torch.manual_seed(0)
    logits, labels = torch.randn(6, 5), torch.tensor([0, 1, 2, 3, 4, 0])
    assert torch.allclose(soft_cross_entropy(logits, labels), cross_entropy(logits, labels), atol=1e-6)
    soft = torch.softmax(torch.randn(6, 5), dim=1)
    expected = -(soft * torch.log_softmax(logits, 1)).sum(1).mean()
    assert torch.allclose(soft_cross_entropy(logits, soft), expected, atol=1e-6)


def _parts(rows):
    """rows: (video, view, logits, label, ok) -> one records dict."""
    return {"video_index": torch.tensor([r[0] for r in rows]), "view_index": torch.tensor([r[1] for r in rows]),
            "logits": torch.tensor([r[2] for r in rows], dtype=torch.float32),
            "labels": torch.tensor([r[3] for r in rows]), "ok": torch.tensor([r[4] for r in rows])}


def test_views_are_summed_per_video_and_duplicates_counted_once():
    rank0 = _parts([(0, 0, [1.0, 0.0, 0.0], 0, True), (0, 1, [0.0, 3.0, 0.0], 0, True), (1, 0, [0.0, 0.0, 1.0], 2, True)])
    # rank 1 holds view 1 of video 1 and, like a padded sampler, a second copy of video 0 view 1.
    rank1 = _parts([(1, 1, [2.0, 0.0, 1.0], 2, True), (0, 1, [0.0, 3.0, 0.0], 0, True)])
    res = aggregate_views([rank0, rank1], "sum")
    assert res.video_index.tolist() == [0, 1]
    assert res.logits.tolist() == [[1.0, 3.0, 0.0], [2.0, 0.0, 2.0]]
    assert res.num_views.tolist() == [2, 2]
    m = classification_metrics(res.logits, res.labels)
    # video 0: argmax 1 != label 0; video 1: tie 0/2 -> topk picks index 0 first, so wrong as well.
    assert m["num_videos"] == 2 and m["top1_acc"] == 0.0 and m["top5_acc"] == 100.0


def test_views_max_ensemble_takes_elementwise_max():
    rows = _parts([(3, 0, [1.0, -2.0], 1, True), (3, 1, [-1.0, 0.5], 1, True)])
    res = aggregate_views([rows], "max")
    assert res.logits.tolist() == [[1.0, 0.5]]


def test_unreadable_video_is_excluded_and_listed():
    rows = _parts([(0, 0, [0.0, 1.0], 1, True), (1, 0, [1.0, 0.0], 0, True), (1, 1, [0.0, 0.0], 0, False)])
    res = aggregate_views([rows], "sum")
    assert res.video_index.tolist() == [0] and res.unreadable == [1]
    assert classification_metrics(res.logits, res.labels)["top1_acc"] == 100.0


def test_mean_class_accuracy_averages_over_classes():
    logits = torch.tensor([[1.0, 0.0], [1.0, 0.0], [1.0, 0.0], [1.0, 0.0]])
    labels = torch.tensor([0, 0, 0, 1])
    m = classification_metrics(logits, labels, 2)
    assert m["top1_acc"] == 75.0 and m["mean_class_acc"] == 50.0
    assert m["confusion"].tolist() == [[3, 0], [1, 0]]


def test_checkpoint_roundtrip_and_newest_complete_is_chosen(tmp_path):
    model = _StandInVideoModel()
    opt = construct_optimizer(model, get_cfg())
    cu.save_checkpoint(str(tmp_path), model, opt, epoch=0, cfg=get_cfg())
    cu.save_checkpoint(str(tmp_path), model, opt, epoch=1, cfg=get_cfg())
    # A newer file that is truncated (e.g. copied by hand while being written) must be skipped.
    with open(cu.checkpoint_path(str(tmp_path), 2), "wb") as f:
        f.write(b"PK\x03\x04 truncated")
    assert cu.last_checkpoint(str(tmp_path)) == cu.checkpoint_path(str(tmp_path), 1)
    assert os.path.basename(cu.checkpoint_path(str(tmp_path), 1)) == "checkpoint_epoch_00002.pyth"
    other = _StandInVideoModel()
    assert cu.load_checkpoint(cu.checkpoint_path(str(tmp_path), 1), other, construct_optimizer(other, get_cfg())) == 1
    for (k, a), b in zip(model.state_dict().items(), other.state_dict().values()):
        assert torch.equal(a, b), k
    ckpt = torch.load(cu.checkpoint_path(str(tmp_path), 1), weights_only=True)
    assert set(ckpt) >= {"epoch", "model_state", "optimizer_state", "scaler_state", "cfg"}
    assert not [n for n in os.listdir(cu.checkpoint_dir(str(tmp_path))) if n.endswith(".tmp")]


def test_checkpoint_of_another_model_is_refused_with_the_file_named(tmp_path):
    path = str(tmp_path / "other.pyth")
    torch.save({"epoch": 0, "model_state": nn.Linear(2, 2).state_dict()}, path)
    with pytest.raises(cu.CheckpointError, match="other.pyth"):
        cu.load_checkpoint(path, _StandInVideoModel())


def test_patching_interpolates_only_clip_keys():
    state = {"model.w": torch.ones(2), "raw_model.w": torch.ones(2), "projector_v.0.weight": torch.ones(2)}
    patched = patch_state_dict(state, {"w": torch.zeros(2)}, 0.25)
    assert torch.allclose(patched["model.w"], torch.full((2,), 0.75))
    assert torch.equal(patched["raw_model.w"], torch.ones(2)) and torch.equal(patched["projector_v.0.weight"], torch.ones(2))


def _climb_setup():
    torch.manual_seed(0)
    model = _StandInVideoModel()
    x, y = torch.randn(8, 4), torch.randint(0, 4, (8,))

    def loss():
        feats = model.model.visual(x)
        return cross_entropy(model.model.logit_scale.exp() * feats + model.projector_v(feats), y)

    trainable = [p for p in model.parameters() if p.requires_grad]
    raw = {k: torch.zeros_like(v) for k, v in model.model.state_dict().items()}
    return model, loss, trainable, raw


def test_linear_connect_climb_changes_gradient_and_restores_weights():
    model, loss, trainable, raw = _climb_setup()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    climb = LinearConnectClimb(model.model, raw, trainable, low=0.4, high=0.6, ratio=1.0)
    mix = climb.gradients(loss, lambda t: t)
    for k, v in model.state_dict().items():
        assert torch.equal(v, before[k]), k
    loss().backward()
    plain = [None if p.grad is None else p.grad.clone() for p in trainable]
    assert any(g is not None and not torch.allclose(g, p) for g, p in zip(mix, plain) if p is not None)
    # Only the student CLIP was interpolated: projector_v and the teacher are not in the pairs.
    interpolated = {id(p) for p, _ in climb.pairs}
    assert not any(id(p) in interpolated for p in model.projector_v.parameters())
    assert not any(id(p) in interpolated for p in model.raw_model.parameters())


def test_run_net_config_error_is_one_line_without_traceback(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("SOLVER:\n  BASE_LRR: 0.1\n")
    proc = subprocess.run([sys.executable, os.path.join(ROOT, "tools", "run_net.py"), "--cfg", str(bad)],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode != 0
    err = proc.stderr.strip()
    assert "Traceback" not in err and len(err.splitlines()) == 1
    assert "SOLVER.BASE_LRR" in err and "SOLVER.BASE_LR" in err


def _load_run_net():
    spec = importlib.util.spec_from_file_location("run_net_under_test", os.path.join(ROOT, "tools", "run_net.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_run_net_lets_a_bug_keep_its_traceback(tmp_path, monkeypatch):
    import slowfast.engine

    def buggy_train(cfg):
        return {}["missing key"]  # a bug in our code, not a user mistake

    monkeypatch.setattr(slowfast.engine, "train", buggy_train)
    with pytest.raises(KeyError, match="missing key"):
        _load_run_net().main(["--opts", "NUM_GPUS", "0", "TEST.ENABLE", "False", "OUTPUT_DIR", str(tmp_path)])


def test_run_net_prints_a_user_error_raised_while_running_as_one_line(tmp_path, monkeypatch, run_cli):
    import slowfast.engine

    def train_on_missing_data(cfg):
        raise UserError("no videos in\n  data/missing")

    monkeypatch.setattr(slowfast.engine, "train", train_on_missing_data)
    code, err = run_cli(_load_run_net().main, ["--opts", "NUM_GPUS", "0", "TEST.ENABLE", "False", "OUTPUT_DIR", str(tmp_path)])
    assert code == 1 and err == "error: no videos in data/missing"


def test_model_and_text_input_errors_are_user_errors_so_the_tools_print_one_line():
    from slowfast.clip import CLIPWeightsError
    from slowfast.text.feature_file import TextFeatureError

    for cls, builtin in ((TemporalOpError, ValueError), (CLIPWeightsError, RuntimeError), (TextFeatureError, ValueError)):
        assert issubclass(cls, UserError) and issubclass(cls, builtin)
    assert not issubclass(KeyError, UserError)  # a bug keeps its traceback


@pytest.mark.parametrize("use, key", [
    (lambda: aggregate_views([], "mean"), "DATA.ENSEMBLE_METHOD"),
    (lambda: get_loss_func("hinge"), "MODEL.LOSS_FUNC"),
    (lambda: build_optimizer([{"params": [nn.Parameter(torch.zeros(1))]}], "adam", 1e-3), "SOLVER.OPTIMIZING_METHOD"),
    (lambda: lr_at_epoch(LRSchedule(base_lr=1e-3, max_epoch=2, policy="step"), 1.0), "SOLVER.LR_POLICY"),
])
def test_a_choice_the_config_refuses_is_a_config_error_where_it_is_used_too(use, key):
    with pytest.raises(ConfigError, match=key):  # reached by Python callers that skip assert_and_infer_cfg
        use()


def _chain(*errors: BaseException) -> BaseException:
    """errors[0] raised while handling errors[1], itself raised from errors[2], ...; the outermost returned."""
    for outer, inner in zip(errors, errors[1:]):
        outer.__cause__ = inner
    return errors[0]


def test_no_room_finds_the_full_disk_behind_another_os_error():
    full = OSError(errno.ENOSPC, "No space left on device")
    # a library's own I/O error (EIO) raised on top of the write that found the disk full
    assert no_room(_chain(RuntimeError("callback failed"), OSError(errno.EIO, "I/O error"), full)) is full
    assert no_room(_chain(RuntimeError("callback failed"), OSError(errno.EFBIG, "File too large"))) is not None
    assert no_room(_chain(RuntimeError("callback failed"), OSError(errno.EACCES, "Permission denied"))) is None
    assert no_room(RuntimeError("no OSError at all")) is None


def test_ctrl_c_that_torch_save_reports_as_a_failed_write_stays_a_ctrl_c(monkeypatch, tmp_path):
    def interrupted_save(obj, path):
        try:
            raise KeyboardInterrupt
        except KeyboardInterrupt:  # as torch.save's zip writer does when its clean-up fails after the interrupt
            raise RuntimeError("[enforce fail at inline_container.cc] unexpected pos") from None

    monkeypatch.setattr(cu, "atomic_torch_save", interrupted_save)
    with pytest.raises(KeyboardInterrupt):
        cu._write({}, str(tmp_path / "checkpoint_epoch_00001.pyth"), str(tmp_path), 0)


def test_atomic_path_replaces_the_target_only_on_success(tmp_path):
    target = tmp_path / "video.mp4"
    target.write_bytes(b"old")
    with pytest.raises(RuntimeError):
        with atomic_path(str(target)) as tmp:
            open(tmp, "wb").write(b"half")
            raise RuntimeError("writer died")
    assert target.read_bytes() == b"old" and os.listdir(tmp_path) == ["video.mp4"]
    with atomic_path(str(target)) as tmp:
        open(tmp, "wb").write(b"new")
    assert target.read_bytes() == b"new" and os.listdir(tmp_path) == ["video.mp4"]


def test_the_log_follows_stdout_after_a_redirected_stdout_is_closed(capsys):
    import contextlib
    import io
    import logging

    from slowfast.utils.logging import setup_logging

    redirected = io.StringIO()
    with contextlib.redirect_stdout(redirected):
        setup_logging(None)
        logging.getLogger("slowfast.test").info("while redirected")
    assert "while redirected" in redirected.getvalue()
    redirected.close()
    logging.getLogger("slowfast.test").info("after the stream closed")
    out, err = capsys.readouterr()
    assert "after the stream closed" in out and "Logging error" not in err
