"""`build_model(cfg)`: config translation, class-index and feature-file checks, refusals."""

import json

import pytest
import torch
from helpers import config_from

from slowfast.config import ConfigError
from slowfast.models import ClassIndexError, TemporalOpConfig, TemporalOpError, build_model
from slowfast.text.feature_file import TextFeatureError, save_text_features

CLASSES = ["abseiling", "air drumming", "playing cello"]


@pytest.fixture()
def index_file(tmp_path):
    path = tmp_path / "index2cls.json"
    path.write_text(json.dumps({str(i): n for i, n in enumerate(CLASSES)}))
    return str(path)


def tiny_cfg(index_file, **opts):
    """Not checked by assert_and_infer_cfg: these tests are of what build_model itself refuses."""
    return config_from({
        "NUM_GPUS": 0, "DATA.NUM_FRAMES": 4, "DATA.INDEX_LABEL_MAPPING_FILE": index_file,
        "MODEL.NUM_CLASSES": len(CLASSES), "MODEL.ARCH": "custom", "MODEL.CUSTOM_CLIP.EMBED_DIM": 32,
        "MODEL.CUSTOM_CLIP.IMAGE_RESOLUTION": 32, "MODEL.CUSTOM_CLIP.VISION_PATCH": 8, "MODEL.CUSTOM_CLIP.VISION_WIDTH": 64,
        "MODEL.CUSTOM_CLIP.VISION_LAYERS": 2, "MODEL.CUSTOM_CLIP.VISION_HEADS": 2, "MODEL.CUSTOM_CLIP.TEXT_WIDTH": 32,
        "MODEL.CUSTOM_CLIP.TEXT_LAYERS": 1, "MODEL.CUSTOM_CLIP.TEXT_HEADS": 1,
        "MODEL.TEMPORAL_MODELING_TYPE": "stcross_attend", "MODEL.CHANNEL_FOLD": 8, "MODEL.TEMPORAL_SCALE": [1, 2], **opts,
    }, check=False)


def test_custom_arch_builds_on_cpu_with_checkpoint_key_layout(index_file):
    model = build_model(tiny_cfg(index_file, **{"MODEL.KEEP_RAW_MODEL": True, "MODEL.RAW_MODEL_DISTILLATION": True}))
    assert next(model.parameters()).device == torch.device("cpu")
    keys = model.state_dict().keys()
    assert {k.split(".")[0] for k in keys} == {"model", "raw_model", "projector_v"}
    assert {"projector_v.0.weight", "projector_v.2.weight", "model.visual.proj", "raw_model.visual.proj"} <= set(keys)
    assert model.num_classes == 3 and model.class_names == CLASSES
    assert model(torch.zeros(2, 3, 4, 32, 32)).shape == (2, 3)


def test_same_seed_gives_the_same_custom_clip(index_file):
    a = build_model(tiny_cfg(index_file)).state_dict()
    b = build_model(tiny_cfg(index_file)).state_dict()
    clip_keys = [k for k in a if k.startswith("model.")]
    assert clip_keys and all(torch.equal(a[k], b[k]) for k in clip_keys)


def test_clip_weights_file_is_loaded(index_file, tiny_clip_file):
    model = build_model(tiny_cfg(index_file, **{"MODEL.CLIP_WEIGHTS": tiny_clip_file}))
    sd = torch.load(tiny_clip_file, weights_only=True)
    assert torch.equal(model.model.visual.conv1.weight, sd["visual.conv1.weight"])


def test_num_classes_must_match_the_class_index_file(index_file):
    with pytest.raises(ConfigError, match="MODEL.NUM_CLASSES is 400 but .* has 3 classes"):
        build_model(tiny_cfg(index_file, **{"MODEL.NUM_CLASSES": 400}))


def test_an_unregistered_model_name_is_a_config_error_naming_the_known_ones(index_file):
    with pytest.raises(ConfigError, match="MODEL.MODEL_NAME 'VideoNet' is not a registered model; known: TemporalClipVideo"):
        build_model(tiny_cfg(index_file, **{"MODEL.MODEL_NAME": "VideoNet"}))


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_gpus_asked_for_without_cuda_are_a_config_error(index_file):
    with pytest.raises(ConfigError, match="NUM_GPUS is 1 but CUDA is not available; use NUM_GPUS 0"):
        build_model(tiny_cfg(index_file, NUM_GPUS=1))


def test_missing_class_index_file_is_named(tmp_path):
    missing = str(tmp_path / "nope.json")
    with pytest.raises(ClassIndexError, match="nope.json"):
        build_model(tiny_cfg(missing))


def test_class_index_with_gaps_is_refused(tmp_path):
    path = tmp_path / "gaps.json"
    path.write_text(json.dumps({"0": "a", "2": "c"}))
    with pytest.raises(ClassIndexError, match="gaps.json.*missing \\[1\\]"):
        build_model(tiny_cfg(str(path)))


def test_text_aug_feature_file_with_another_class_count_is_refused(index_file, tmp_path):
    path = tmp_path / "feats.pt"
    save_text_features(str(path), torch.randn(5, 4, 32), [f"c{i}" for i in range(5)])
    cfg = tiny_cfg(index_file, **{"DATA.TEXT_AUG": True, "DATA.TEXT_AUG_FEATURE_FILE": str(path)})
    with pytest.raises(TextFeatureError, match="has 5 classes but the class-index file has 3"):
        build_model(cfg)


def test_text_aug_feature_file_with_another_embedding_size_is_refused(index_file, tmp_path):
    path = tmp_path / "feats.pt"
    torch.save(torch.randn(3, 4, 48), path)
    cfg = tiny_cfg(index_file, **{"DATA.TEXT_AUG": True, "DATA.TEXT_AUG_FEATURE_FILE": str(path)})
    with pytest.raises(TextFeatureError, match="embedding size 48 but the model's CLIP embeds to 32"):
        build_model(cfg)


def test_missing_text_aug_feature_file_is_an_error_not_a_fallback(index_file, tmp_path):
    cfg = tiny_cfg(index_file, **{"DATA.TEXT_AUG": True, "DATA.TEXT_AUG_FEATURE_FILE": str(tmp_path / "gone.pt")})
    with pytest.raises(TextFeatureError, match="gone.pt"):
        build_model(cfg)


def test_text_aug_builds_a_per_prompt_classifier(index_file, tmp_path):
    path = tmp_path / "feats.pt"
    save_text_features(str(path), torch.randn(3, 4, 32), CLASSES)
    model = build_model(tiny_cfg(index_file, **{"DATA.TEXT_AUG": True, "DATA.TEXT_AUG_FEATURE_FILE": str(path)}))
    assert model.classifier.shape == (3, 4, 32)
    torch.testing.assert_close(model.classifier.norm(dim=-1), torch.ones(3, 4))


@pytest.mark.parametrize(
    "opts,needle",
    [
        ({"MODEL.TEMPORAL_MODELING_TYPE": "stcross_attn"}, "unknown temporal operator 'stcross_attn'"),
        ({"MODEL.MASK_STRIDE": [2, 2, 2]}, "temporal mask stride of 1"),
        ({"MODEL.CUSTOM_CLIP.IMAGE_RESOLUTION": 56}, "7x7 patch grid is not divisible"),
    ],
)
def test_build_time_refusals(index_file, opts, needle):
    with pytest.raises(TemporalOpError, match=needle):
        build_model(tiny_cfg(index_file, **opts))


def test_every_operator_setting_has_exactly_one_config_key():
    import dataclasses

    from slowfast.config.choices import OPERATOR_FIELDS, OPERATOR_WEIGHT_FIELDS
    from slowfast.config.defaults import get_cfg
    from slowfast.models import temporal_op_config
    from slowfast.utils.checkpoint import OPERATOR_KEYS

    fields = [f.name for f in dataclasses.fields(TemporalOpConfig)]
    assert sorted(fields) == sorted(OPERATOR_FIELDS) and set(OPERATOR_WEIGHT_FIELDS) < set(fields)
    assert OPERATOR_KEYS == tuple(OPERATOR_FIELDS[f] for f in OPERATOR_WEIGHT_FIELDS)
    cfg = get_cfg()
    cfg.merge_from_list(["MODEL.MASK_RATE", 0.25, "MODEL.TEMPORAL_SCALE", [1, 3], "MODEL.FUSED_ATTENTION", False])
    op = temporal_op_config(cfg)
    assert (op.mask_rate, op.temporal_scale, op.fused_attention) == (0.25, (1, 3), False)
