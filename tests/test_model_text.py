"""The frozen class classifier: 28 templates, the text-augmentation rule, and the classifier buffer."""

import pytest
import torch
import torch.nn.functional as F

from slowfast.clip import read_state_dict, tokenize
from slowfast.errors import UserError
from slowfast.models import TemporalClipVideo, TemporalOpConfig
from slowfast.models.text_classifier import TEMPLATES, class_logits, template_classifier
from slowfast.text.feature_file import TextFeatureError, save_text_features


def test_a_class_name_longer_than_the_text_context_is_a_user_error_naming_it():
    name = "playing " * 80
    with pytest.raises(UserError, match=r"text is \d+ tokens, longer than the context length 77: 'a photo of playing"):
        tokenize(f"a photo of {name}.")


def test_templates_are_4_prefixes_times_7_suffixes_prefix_major():
    assert len(TEMPLATES) == 28
    assert TEMPLATES[0] == "a photo of {}."
    assert TEMPLATES[1] == "a photo of a person {}."
    assert TEMPLATES[7] == "a video of {}."
    assert TEMPLATES[-1] == "a demonstration of a person practicing {}."


def test_text_aug_rule_matches_a_hand_computed_example():
    # B=1, T=2 frames, K=2 classes, N=2 prompts, E=2; unit vectors so the cosines are read off directly.
    frames = torch.tensor([[[1.0, 0.0], [0.0, 1.0]]])
    c45 = 2**-0.5
    classifier = torch.tensor([
        [[1.0, 0.0], [c45, c45]],    # class 0: cos frame0 = (1, .707), frame1 = (0, .707)
        [[0.0, -1.0], [-1.0, 0.0]],  # class 1: cos frame0 = (0, -1),   frame1 = (-1, 0)
    ])
    scale = torch.tensor(0.0)  # exp(0) = 1
    # class 0: mean_n max_t = (1 + .707)/2; mean_t max_n = (1 + .707)/2 -> .8536
    # class 1: mean_n max_t = (0 + 0)/2 = 0; mean_t max_n = (0 + 0)/2 = 0
    expected = torch.tensor([[(1 + c45) / 2, 0.0]])
    torch.testing.assert_close(class_logits(frames, classifier, scale), expected)
    # an asymmetric case (the two halves differ): T=3 frames, N=2 prompts, one class
    sims = torch.tensor([[0.9, 0.1], [0.2, 0.3], [0.0, 0.8]])  # [T, N]
    # A = mean_n max_t = (0.9 + 0.8)/2 = 0.85 ; B = mean_t max_n = (0.9 + 0.3 + 0.8)/3 = 0.6667 -> 0.7583
    f = torch.eye(3).unsqueeze(0)  # frame t = e_t
    w = sims.t().unsqueeze(0)  # prompt n of the class = sims[:, n], so <e_t, w_n> = sims[t, n]
    logits = class_logits(f, w, torch.tensor(0.0))
    torch.testing.assert_close(logits, torch.tensor([[0.5 * (0.85 + 2.0 / 3.0)]]))


def test_two_d_classifier_averages_frame_logits_times_exp_logit_scale():
    frames = torch.tensor([[[3.0, 0.0], [0.0, 1.0]]])
    classifier = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    logits = class_logits(frames, classifier, torch.log(torch.tensor(100.0)))
    torch.testing.assert_close(logits, torch.tensor([[50.0, 50.0]]))


def test_template_classifier_is_the_normalised_mean_of_28_normalised_embeddings(tiny_clip_file):
    model = TemporalClipVideo(read_state_dict(tiny_clip_file), ["x"], op=TemporalOpConfig(num_frames=2))
    clip = model.model
    names = ["abseiling", "passing American football (in game)"]
    got = template_classifier(clip, names, batch_size=7)  # odd batches, each cut to its longest text
    with torch.no_grad():
        rows = []
        for name in names:  # one text at a time, full 77-token context
            emb = torch.cat([clip.encode_text(tokenize(t.format(name))) for t in TEMPLATES])
            rows.append(F.normalize(F.normalize(emb, dim=-1).mean(0), dim=-1))
    torch.testing.assert_close(got, torch.stack(rows), atol=1e-5, rtol=1e-5)


def test_classifier_is_a_frozen_buffer_that_follows_the_model(tiny_clip_file):
    model = TemporalClipVideo(read_state_dict(tiny_clip_file), ["a", "b"], op=TemporalOpConfig(num_frames=2))
    assert "classifier" in dict(model.named_buffers())
    assert "classifier" not in model.state_dict()
    assert not model.classifier.requires_grad and model.classifier.shape == (2, 32)
    model.to(torch.float64)
    assert model.classifier.dtype == torch.float64


def test_set_classifier_switches_label_sets(tiny_clip_file, tmp_path):
    model = TemporalClipVideo(read_state_dict(tiny_clip_file), ["a", "b"], op=TemporalOpConfig(num_frames=2))
    model.set_classifier(["c", "d", "e"])
    assert model.num_classes == 3 and model.classifier.shape == (3, 32)
    feats = torch.randn(4, 5, 32)
    path = tmp_path / "feats.pt"
    save_text_features(str(path), feats, ["p", "q", "r", "s"])
    model.set_classifier(feature_file=str(path))
    assert model.num_classes == 4 and model.class_names == ["p", "q", "r", "s"]
    torch.testing.assert_close(model.classifier, F.normalize(feats, dim=-1))
    assert model(torch.zeros(1, 3, 2, 32, 32)).shape == (1, 4)


def test_set_classifier_refuses_a_feature_file_for_another_class_count(tiny_clip_file, tmp_path):
    model = TemporalClipVideo(read_state_dict(tiny_clip_file), ["a", "b"], op=TemporalOpConfig(num_frames=2))
    path = tmp_path / "feats.pt"
    torch.save(torch.randn(4, 5, 32), path)
    with pytest.raises(TextFeatureError, match="has 4 classes but the class-index file has 2"):
        model.set_classifier(["a", "b"], feature_file=str(path))
