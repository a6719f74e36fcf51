"""TemporalClipVideo: weight loading per operator, initial behaviour, frame order, gradients, distillation."""

import pytest
import torch

from slowfast.clip import custom_clip_config, random_clip_state_dict, read_state_dict
from slowfast.models import TeacherConfig, TemporalClipVideo, TemporalOpConfig, TemporalOpError
from slowfast.models.temporal_ops import TEMPORAL_TYPES, extra_params_per_block

T = 4
CLASSES = ["abseiling", "air drumming", "playing cello"]
STCROSS = dict(channel_fold=8, temporal_scale=(1, 2))


def op(type_, **kw):
    return TemporalOpConfig(type=type_, num_frames=T, **{**(STCROSS if type_ == "stcross_attend" else {}), **kw})


def video(b=2, res=32, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(b, 3, T, res, res, generator=g)


@pytest.fixture(scope="module")
def tiny_sd(tiny_clip_file):
    return read_state_dict(tiny_clip_file)


@pytest.mark.parametrize("type_", TEMPORAL_TYPES)
def test_every_clip_key_loads_into_each_operator_type(tiny_sd, type_):
    model = TemporalClipVideo(tiny_sd, CLASSES, op=op(type_))
    student = model.model.state_dict()
    for key, value in tiny_sd.items():
        assert torch.equal(student[key], value.float()), key
    new = set(student) - set(tiny_sd)
    prefixes = {None: (), "stcross_attend": (), "expand_temporal_view": (),
                "stadapt_zeroinit": ("stadapt_",), "cross_frame_attend": ("message_",)}[type_]
    assert all(any(p in k for p in prefixes) for k in new), sorted(new)[:3]
    width, layers = tiny_sd["visual.conv1.weight"].shape[0], 2
    assert sum(student[k].numel() for k in new) == layers * extra_params_per_block(type_, width)
    top = {k.split(".")[0] for k in model.state_dict()}
    assert top == {"model", "projector_v"}


def test_extra_parameter_formulas_give_the_published_counts():
    assert 12 * extra_params_per_block("stadapt_zeroinit", 768) == 7_110_144
    assert 24 * extra_params_per_block("stadapt_zeroinit", 1024) == 25_251_840
    assert 12 * extra_params_per_block("cross_frame_attend", 768) == 35_453_952
    assert 24 * extra_params_per_block("cross_frame_attend", 1024) == 126_001_152


@torch.no_grad()
def test_stadapt_zeroinit_starts_as_plain_clip(tiny_sd):
    plain = TemporalClipVideo(tiny_sd, CLASSES, op=op(None)).eval()
    adapted = TemporalClipVideo(tiny_sd, CLASSES, op=op("stadapt_zeroinit")).eval()
    x = video()
    torch.testing.assert_close(adapted.encode_frames(x), plain.encode_frames(x), rtol=0, atol=0)


@torch.no_grad()
def test_none_baseline_is_invariant_to_frame_order(tiny_sd):
    model = TemporalClipVideo(tiny_sd, CLASSES, op=op(None)).eval()
    x = video()
    perm = torch.tensor([2, 0, 3, 1])
    torch.testing.assert_close(model(x[:, :, perm]), model(x), atol=1e-5, rtol=1e-5)


@torch.no_grad()
def test_stcross_depends_on_frame_order(tiny_sd):
    model = TemporalClipVideo(tiny_sd, CLASSES, op=op("stcross_attend", deterministic_test_masks=True)).eval()
    x = video()
    perm = torch.tensor([2, 0, 3, 1])
    assert not torch.allclose(model(x[:, :, perm]), model(x), atol=1e-4)
    torch.testing.assert_close(model(x), model(x))  # deterministic test masks: repeatable


def _trained_step(model, x):
    model.train()
    logits, aux = model(x, return_aux=True)
    loss = torch.nn.functional.cross_entropy(logits, torch.tensor([0, 2])) + aux["loss_distill"]
    loss.backward()
    return aux


def test_backward_reaches_visual_tower_and_projector_but_not_text_tower_or_teacher(tiny_sd):
    model = TemporalClipVideo(tiny_sd, CLASSES, op=op("stcross_attend"),
                              teacher=TeacherConfig(keep_raw_model=True, distillation=True, distillation_ratio=2.0))
    torch.nn.init.normal_(model.projector_v[2].weight, std=0.1)  # as after some training: grads reach layer 0 too
    _trained_step(model, video())
    for name, p in model.model.named_parameters():
        if name.startswith("visual.") or name == "logit_scale":
            assert p.grad is not None and p.grad.abs().sum() > 0, name
        else:
            assert p.grad is None and not p.requires_grad, name
    for p in model.projector_v.parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0
    assert all(p.grad is None and not p.requires_grad for p in model.raw_model.parameters())
    assert not model.raw_model.training


def test_distillation_grad_false_only_logs_the_loss(tiny_sd):
    model = TemporalClipVideo(tiny_sd, CLASSES, op=op("stcross_attend"), teacher=TeacherConfig(
        keep_raw_model=True, distillation=True, distillation_ratio=2.0, distillation_grad=False))
    aux = _trained_step(model, video())
    assert not aux["loss_distill"].requires_grad and aux["loss_distill"] > 0
    assert all(p.grad is None for p in model.projector_v.parameters())
    torch.testing.assert_close(aux["loss_distill"], 2.0 * (1 - aux["distill_cos"]))


def test_forward_returns_logits_in_train_and_eval_alike(tiny_sd):
    model = TemporalClipVideo(tiny_sd, CLASSES, op=op(None), teacher=TeacherConfig(
        keep_raw_model=True, distillation=True, ensemble_pred=True, ensemble_rawmodel_ratio=0.5))
    x = video()
    for mode in (True, False):
        model.train(mode)
        out = model(x)
        assert isinstance(out, torch.Tensor) and out.shape == (2, len(CLASSES))
        logits, aux = model(x, return_aux=True)
        assert logits.shape == (2, len(CLASSES)) and isinstance(aux, dict)


@torch.no_grad()
def test_ensemble_pred_blends_teacher_and_student_logits(tiny_sd):
    def teacher(r):
        return TeacherConfig(keep_raw_model=True, ensemble_pred=True, ensemble_rawmodel_ratio=r)

    student_only = TemporalClipVideo(tiny_sd, CLASSES, op=op("stadapt_zeroinit"), teacher=teacher(0.0)).eval()
    teacher_only = TemporalClipVideo(tiny_sd, CLASSES, op=op("stadapt_zeroinit"), teacher=teacher(1.0)).eval()
    plain = TemporalClipVideo(tiny_sd, CLASSES, op=op(None)).eval()
    for m in (student_only, teacher_only):  # make the student differ from CLIP
        torch.nn.init.normal_(m.model.visual.transformer.resblocks[0].stadapt_up.weight, std=0.5)
    x = video()
    torch.testing.assert_close(teacher_only(x), plain(x))
    assert not torch.allclose(student_only(x), plain(x), atol=1e-4)


def test_activation_checkpointing_gives_the_same_gradients(tiny_sd):
    grads = []
    for ckpt in (False, True):
        model = TemporalClipVideo(tiny_sd, CLASSES, op=op("stcross_attend"), use_checkpoint=ckpt)
        torch.manual_seed(5)  # the masks are drawn again in the recomputation: RNG state must be replayed
        model.train()
        model(video()).logsumexp(-1).sum().backward()
        grads.append(model.model.visual.conv1.weight.grad)
    torch.testing.assert_close(grads[0], grads[1], atol=1e-6, rtol=1e-5)


def test_bf16_autocast_forward_and_backward_are_finite(tiny_sd):
    model = TemporalClipVideo(tiny_sd, CLASSES, op=op("stcross_attend"),
                              teacher=TeacherConfig(keep_raw_model=True, distillation=True)).train()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        logits, aux = model(video(), return_aux=True)
        loss = logits.float().logsumexp(-1).mean() + aux["loss_distill"]
    loss.backward()
    assert torch.isfinite(logits).all() and logits.dtype == torch.float32
    assert torch.isfinite(model.model.visual.conv1.weight.grad).all()


def test_stcross_refuses_a_grid_the_window_does_not_divide():
    sd = random_clip_state_dict(custom_clip_config(embed_dim=32, image_resolution=56, vision_patch=8, vision_width=64,
                                                   vision_layers=1, vision_heads=1, text_width=32, text_layers=1,
                                                   text_heads=1))
    with pytest.raises(TemporalOpError, match="7x7 patch grid"):
        TemporalClipVideo(sd, CLASSES, op=op("stcross_attend"))


def test_wrong_clip_length_is_refused(tiny_sd):
    model = TemporalClipVideo(tiny_sd, CLASSES, op=op("stcross_attend"))
    with pytest.raises(ValueError, match="T = 4 frames, got 6"):
        model(torch.zeros(1, 3, 6, 32, 32))
