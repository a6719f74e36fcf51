"""open_clip ViTs as backbones: tiny random-weight models of each family, loaded through the real path."""

import json

import open_clip
import pytest
import torch
import torch.nn.functional as F

from slowfast.clip import CLIPWeightsError, read_state_dict
from slowfast.models import ClipSource, TemporalClipVideo, TemporalOpConfig
from slowfast.models.text_classifier import TEMPLATES

T = 4
CLASSES = ["abseiling", "air drumming", "playing cello"]
TEXT = {"context_length": 77, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 1}
# name -> (open_clip model config, STDD mask window that divides its grid)
TINY = {
    # QuickGELU, ViT-B family shape (4x4 grid)
    "tiny-ViT-B-quickgelu": ({"embed_dim": 32, "quick_gelu": True, "text_cfg": TEXT,
                              "vision_cfg": {"image_size": 32, "layers": 2, "width": 64, "patch_size": 8, "head_width": 32}},
                             (1, 2, 2)),
    # GELU, 7x7 grid (as ViT-B-32 at 224 px)
    "tiny-ViT-B-gelu-7x7": ({"embed_dim": 32, "text_cfg": TEXT,
                             "vision_cfg": {"image_size": 56, "layers": 2, "width": 64, "patch_size": 8, "head_width": 32}},
                            (1, 1, 7)),
    # LayerScale in both towers
    "tiny-ViT-layerscale": ({"embed_dim": 32, "text_cfg": {**TEXT, "ls_init_value": 0.1},
                             "vision_cfg": {"image_size": 32, "layers": 2, "width": 64, "patch_size": 8,
                                            "head_width": 32, "ls_init_value": 0.1}},
                            (1, 2, 2)),
}


@pytest.fixture(scope="module")
def registered(tmp_path_factory):
    folder = tmp_path_factory.mktemp("open_clip_configs")
    for name, (cfg, _) in TINY.items():
        (folder / f"{name}.json").write_text(json.dumps(cfg))
    open_clip.add_model_config(str(folder))
    return folder


def reference_model(name):
    """open_clip's own model of `name` with every parameter randomised (a swapped key would show)."""
    torch.manual_seed(0)
    model = open_clip.create_model(name)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.02 * torch.randn_like(p))
    return model.eval()


@pytest.fixture(scope="module", params=list(TINY))
def backbone(request, registered, tmp_path_factory):
    """(name, open_clip reference model, path of its saved open_clip state dict)."""
    name = request.param
    ref = reference_model(name)
    path = tmp_path_factory.mktemp("w") / f"{name}.pt"
    torch.save(ref.state_dict(), path)
    return name, ref, str(path)


def video_for(ref, b=2, seed=0):
    res = ref.visual.image_size[0]
    return torch.randn(b, 3, T, res, res, generator=torch.Generator().manual_seed(seed))


def build(name, path, type_=None, **op):
    stride = TINY[name][1]
    extra = dict(mask_stride=stride, channel_fold=8, deterministic_test_masks=True) if type_ == "stcross_attend" else {}
    return TemporalClipVideo(ClipSource(read_state_dict(path), name, path), CLASSES,
                             op=TemporalOpConfig(type=type_, num_frames=T, **extra, **op)).eval()


@torch.no_grad()
def open_clip_zero_shot_logits(ref, x):
    """open_clip's zero-shot recipe: 28 templates averaged per class, frame logits averaged over frames."""
    tokenizer = open_clip.get_tokenizer("ViT-B-32")
    weights = []
    for name in CLASSES:
        emb = F.normalize(ref.encode_text(tokenizer([t.format(name) for t in TEMPLATES])), dim=-1)
        weights.append(F.normalize(emb.mean(0), dim=-1))
    b, _, t, h, w = x.shape
    frames = x.permute(0, 2, 1, 3, 4).reshape(b * t, 3, h, w)
    f = F.normalize(ref.encode_image(frames), dim=-1).view(b, t, -1)
    return ref.logit_scale.exp() * (f @ torch.stack(weights).t()).mean(1)


@torch.no_grad()
def test_none_logits_equal_open_clips_frame_averaged_template_logits(backbone):
    name, ref, path = backbone
    x = video_for(ref)
    want = open_clip_zero_shot_logits(ref, x)
    got = build(name, path)(x)
    torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-4 * want.abs().max().item())


def test_every_checkpoint_key_loads_1_to_1(backbone):
    name, ref, path = backbone
    student = build(name, path, "stcross_attend").model.state_dict()
    for key, value in ref.state_dict().items():
        assert torch.equal(student[key], value), key


@torch.no_grad()
def test_stcross_attend_builds_and_sees_frame_order(backbone):
    name, ref, path = backbone
    model = build(name, path, "stcross_attend")
    x = video_for(ref)
    perm = torch.tensor([2, 0, 3, 1])
    assert not torch.allclose(model(x[:, :, perm]), model(x), atol=1e-4)


@torch.no_grad()
def test_stadapt_zeroinit_equals_the_backbone_at_initialisation(backbone):
    name, ref, path = backbone
    x = video_for(ref)
    b, _, t, h, w = x.shape
    want = ref.encode_image(x.permute(0, 2, 1, 3, 4).reshape(b * t, 3, h, w)).view(b, t, -1)
    torch.testing.assert_close(build(name, path, "stadapt_zeroinit").encode_frames(x), want, rtol=1e-5, atol=1e-5)


def test_activation_and_layer_scale_follow_the_checkpoint(registered):
    gelu = build("tiny-ViT-B-gelu-7x7", _saved(registered, "tiny-ViT-B-gelu-7x7"), "stcross_attend")
    block = gelu.model.visual.transformer.resblocks[0]
    assert isinstance(block.mlp.gelu, torch.nn.GELU) and isinstance(block.ls_1, torch.nn.Identity)
    ls = build("tiny-ViT-layerscale", _saved(registered, "tiny-ViT-layerscale"), "stcross_attend")
    block = ls.model.visual.transformer.resblocks[1]
    assert isinstance(block.mlp.gelu, torch.nn.GELU) and isinstance(block.ls_1, open_clip.transformer.LayerScale)
    assert "visual.transformer.resblocks.1.ls_2.gamma" in ls.model.state_dict()


def _saved(folder, name):
    path = folder / f"{name}.pt"
    if not path.exists():
        torch.save(reference_model(name).state_dict(), path)
    return str(path)


def test_stdd_geometry_check_knows_the_7x7_grid(registered):
    with pytest.raises(Exception, match="7x7 patch grid"):
        TemporalClipVideo(ClipSource(read_state_dict(_saved(registered, "tiny-ViT-B-gelu-7x7")), "tiny-ViT-B-gelu-7x7"),
                          CLASSES, op=TemporalOpConfig(type="stcross_attend", num_frames=T, channel_fold=8))


def test_weights_of_another_architecture_are_refused_naming_the_key(registered):
    sd = read_state_dict(_saved(registered, "tiny-ViT-B-quickgelu"))
    with pytest.raises(CLIPWeightsError, match="visual.positional_embedding"):
        TemporalClipVideo(ClipSource(sd, "tiny-ViT-B-gelu-7x7", "b.pt"), CLASSES, op=TemporalOpConfig(num_frames=T))


def test_layer_scale_weights_under_a_name_without_it_are_loaded_as_the_checkpoint_says(registered):
    sd = read_state_dict(_saved(registered, "tiny-ViT-layerscale"))
    model = TemporalClipVideo(ClipSource(sd, "tiny-ViT-B-quickgelu", "ls.pt"), CLASSES, op=TemporalOpConfig(num_frames=T))
    gamma = model.model.visual.transformer.resblocks[0].ls_1.gamma
    assert torch.equal(gamma, sd["visual.transformer.resblocks.0.ls_1.gamma"])


@pytest.mark.parametrize("vision,needle", [
    ({"image_size": 32, "layers": 1, "width": 64, "patch_size": 8, "attentional_pool": True}, "pools by attention"),
    ({"image_size": 32, "layers": 1, "width": 64, "patch_size": 8, "pool_type": "avg"}, "pools by 'avg'"),
    ({"image_size": 32, "layers": [1, 1, 1, 1], "width": 8}, "not a ViT"),
])
def test_towers_the_operators_cannot_wrap_are_refused_with_the_reason(tmp_path, vision, needle):
    cfg = tmp_path / "odd-tower.json"
    cfg.write_text(json.dumps({"embed_dim": 32, "text_cfg": TEXT, "vision_cfg": vision}))
    with pytest.raises(CLIPWeightsError, match=needle):
        TemporalClipVideo(ClipSource({}, str(cfg)), CLASSES, op=TemporalOpConfig(num_frames=T))
