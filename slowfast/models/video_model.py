"""`TemporalClipVideo`: CLIP's image tower with a temporal operator, a frozen text classifier, and
optional FROSTER-style distillation from a frozen copy of CLIP (docs/method.md).

Attribute names fix the checkpoint keys: `model.*` (student CLIP, adapters included), `raw_model.*`
(the frozen teacher), `projector_v.{0,2}.weight`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Optional, Union

import torch
import torch.nn.functional as F
from torch import nn

from slowfast.clip.towers import build_clip, vision_geometry
from slowfast.models.temporal_ops import NEW_PARAM_PREFIXES, TemporalOpConfig, temporal_block_factory
from slowfast.models.text_classifier import class_logits, prompt_classifier, template_classifier
from slowfast.text.feature_file import check_text_features, load_text_features

# f~ = f^ + alpha * projector_v(f^): hard-coded in the original code.
DISTILLATION_ALPHA = 0.1


@dataclass(frozen=True)
class ClipSource:
    """CLIP weights and the architecture to build them into.

    `arch`: an open_clip model name or a short OpenAI name (`vitb16`, ...); None or `custom` read the
    architecture off an OpenAI-layout state dict (QuickGELU). `source` names the weights in errors.
    """

    state_dict: Mapping[str, torch.Tensor]
    arch: Optional[str] = None
    source: str = "state dict"


@dataclass(frozen=True)
class TeacherConfig:
    """The frozen plain-CLIP teacher and what it is used for.

    keep_raw_model: keep the teacher (`raw_model`). distillation: add the cosine feature-distillation
    term in training, weighted by distillation_ratio (already applied in `aux["loss_distill"]`).
    distillation_grad: True = the term trains the student and `projector_v` (FROSTER's intent); False =
    the original STDD code, where it is computed under no_grad (logged only). ensemble_pred,
    ensemble_rawmodel_ratio: in eval, r * teacher + (1 - r) * student logits.
    """

    keep_raw_model: bool = False
    distillation: bool = False
    distillation_ratio: float = 1.0
    distillation_grad: bool = True
    ensemble_pred: bool = False
    ensemble_rawmodel_ratio: float = 0.0

    def __post_init__(self) -> None:
        for flag in ("distillation", "ensemble_pred"):
            if getattr(self, flag) and not self.keep_raw_model:
                raise ValueError(f"{flag} needs the frozen raw CLIP (MODEL.KEEP_RAW_MODEL True)")


class TemporalClipVideo(nn.Module):
    """Video classifier `[B, 3, T, H, W]` -> logits `[B, K]` (train and eval alike).

    Args:
        clip: the CLIP weights (a `ClipSource`, or an OpenAI-layout state dict: every key must load).
        class_names: the K class names, in class-index order (the 28-template classifier), or None
            when `text_features` alone defines the classes, or when `set_classifier` is called later
            (e.g. after moving the model to its device, where the text tower runs faster).
        op: the temporal operator settings (`op.num_frames` is T; `op.fused_attention` picks
            F.scaled_dot_product_attention, else explicit softmax attention, in every block).
        teacher: the frozen teacher's settings (distillation, ensemble).
        text_features: `[K, N, E]` prompt embeddings (DATA.TEXT_AUG) instead of the templates.
        context_length: text context (tokens).
        use_checkpoint: activation checkpointing of the visual blocks.
        compile_visual: compile the student's image tower (`nn.Module.compile`).
    """

    def __init__(
        self,
        clip: Union[ClipSource, Mapping[str, torch.Tensor]],
        class_names: Optional[Sequence[str]],
        op: Optional[TemporalOpConfig] = None,
        teacher: Optional[TeacherConfig] = None,
        text_features: Optional[torch.Tensor] = None,
        context_length: int = 77,
        use_checkpoint: bool = False,
        compile_visual: bool = False,
        text_feature_source: str = "text features",
    ):
        super().__init__()
        clip = clip if isinstance(clip, ClipSource) else ClipSource(clip)
        self.op = op = op or TemporalOpConfig()
        self.teacher = teacher = teacher or TeacherConfig()
        width, grid = vision_geometry(clip.arch, clip.state_dict, clip.source)
        self.model = build_clip(
            clip.state_dict, source=clip.source, arch=clip.arch,
            vision_block_factory=temporal_block_factory(op, width, grid), use_checkpoint=use_checkpoint,
            allow_missing=NEW_PARAM_PREFIXES[op.type], context_length=context_length,
        )
        # The text tower only makes the (precomputed) classifier: frozen. logit_scale stays trainable.
        for name, p in self.model.named_parameters():
            if not name.startswith("visual.") and name != "logit_scale":
                p.requires_grad_(False)
        self.raw_model = None
        if teacher.keep_raw_model:
            self.raw_model = build_clip(clip.state_dict, source=clip.source, arch=clip.arch, context_length=context_length)
            self.raw_model.requires_grad_(False)
        self.num_frames, self.image_resolution, self.context_length = op.num_frames, grid * self._patch(), context_length
        self.embed_dim = embed_dim = int(self.model.text_projection.shape[1])
        self.projector_v = nn.Sequential(
            nn.Linear(embed_dim, embed_dim, bias=False), nn.GELU(), nn.Linear(embed_dim, embed_dim, bias=False)
        )
        nn.init.kaiming_normal_(self.projector_v[0].weight, mode="fan_in")
        nn.init.zeros_(self.projector_v[2].weight)
        # Only a projector that can receive gradient is trainable (keeps DDP free of unused parameters).
        self.projector_v.requires_grad_(teacher.distillation and teacher.distillation_grad)
        self.register_buffer("classifier", torch.zeros(0, embed_dim), persistent=False)
        self.class_names: Optional[list[str]] = None
        self.num_classes = 0
        if compile_visual:
            self.model.visual.compile()  # compiled in place: state-dict keys stay `model.visual.*`
        if class_names or text_features is not None:
            self.set_classifier_from(class_names, text_features, text_feature_source)
        # Every buffer (masks, index tables, the classifier: up to [K, N, E] = 180 MB for K400 prompts) is a
        # constant computed identically on each rank: DDP need not broadcast them before every forward.
        self._ddp_params_and_buffers_to_ignore = [name for name, _ in self.named_buffers()]
        self.train()

    def _patch(self) -> int:
        return int(self.model.visual.conv1.kernel_size[0])

    # -- classifier --------------------------------------------------------------------------------
    def set_classifier_from(
        self, class_names: Optional[Sequence[str]], features: Optional[torch.Tensor], source: str
    ) -> None:
        """The classifier from `[K, N, E]` prompt features (checked), else from the 28 templates of `class_names`."""
        if features is not None:
            k = features.shape[0]
            check_text_features(features, {}, source, k if class_names is None else len(class_names), self.embed_dim)
            classifier = prompt_classifier(features.to(self.classifier.device))
        elif class_names:
            classifier = template_classifier(self.model, class_names, self.context_length)
        else:
            raise ValueError("the classifier needs class names or a text-feature tensor")
        self.set_classifier_tensor(classifier, class_names)

    def set_classifier_tensor(self, classifier: torch.Tensor, class_names: Optional[Sequence[str]]) -> None:
        """Use a classifier made earlier by this model (e.g. cached per class list)."""
        self.classifier = classifier.to(self.classifier.device)
        self.class_names = list(class_names) if class_names is not None else None
        self.num_classes = int(classifier.shape[0])

    def set_classifier(self, class_names: Optional[Sequence[str]] = None, feature_file: Optional[str] = None) -> None:
        """Rebuild the frozen classifier (e.g. for a zero-shot label set) from the current text tower.

        With `feature_file`, its `[K, N, E]` prompts are used (checked against `class_names` when given);
        with only `class_names`, the 28 templates; with neither, the current class names again (e.g.
        after loading a checkpoint whose text tower differs from the one the classifier was made with).
        """
        if feature_file:
            feats, meta = load_text_features(feature_file)
            k = len(class_names) if class_names is not None else feats.shape[0]
            check_text_features(feats, meta, feature_file, k, self.embed_dim, list(class_names) if class_names else None)
            names = class_names if class_names is not None else meta.get("class_names")
            self.set_classifier_from(names, feats, feature_file)
        else:
            names = class_names if class_names is not None else self.class_names
            if not names:
                raise ValueError("set_classifier needs class names (or a feature file)")
            self.set_classifier_from(names, None, "templates")

    # -- forward ------------------------------------------------------------------------------------
    def train(self, mode: bool = True) -> TemporalClipVideo:
        super().train(mode)
        if self.raw_model is not None:
            self.raw_model.eval()  # the teacher is always in eval mode
        return self

    def _frames(self, x: Union[torch.Tensor, Sequence[torch.Tensor]]) -> tuple[torch.Tensor, int, int]:
        if isinstance(x, (list, tuple)):  # PySlowFast passes [tensor]
            if len(x) != 1:
                raise ValueError(f"expected one input pathway, got {len(x)}")
            x = x[0]
        if x.dim() != 5 or x.shape[1] != 3:
            raise ValueError(f"expected video [B, 3, T, H, W], got {tuple(x.shape)}")
        b, _, t, h, w = x.shape
        if self.op.type is not None and t != self.num_frames:
            raise ValueError(f"{self.op.type} was built for T = {self.num_frames} frames, got {t}")
        if h != self.image_resolution or w != self.image_resolution:
            raise ValueError(f"frames are {h}x{w}; this CLIP takes {self.image_resolution}x{self.image_resolution}")
        return x.permute(0, 2, 1, 3, 4).reshape(b * t, 3, h, w), b, t

    def _encode(self, tower: nn.Module, frames: torch.Tensor, b: int, t: int) -> torch.Tensor:
        return tower(frames.to(tower.conv1.weight.dtype)).view(b, t, -1)

    def encode_frames(self, x: torch.Tensor) -> torch.Tensor:
        """Per-frame visual embeddings `[B, T, E]`, before normalisation."""
        return self._encode(self.model.visual, *self._frames(x))

    def forward(self, x: torch.Tensor, return_aux: bool = False):
        if self.classifier.shape[0] == 0:
            raise RuntimeError("TemporalClipVideo has no classifier yet: call set_classifier(class_names) first")
        frames, b, t = self._frames(x)
        feats = self._encode(self.model.visual, frames, b, t)
        logits = class_logits(feats, self.classifier, self.model.logit_scale)
        aux: dict[str, torch.Tensor] = {}
        tc = self.teacher
        if self.raw_model is not None and ((self.training and tc.distillation) or (not self.training and tc.ensemble_pred)):
            with torch.no_grad():
                teacher = self._encode(self.raw_model.visual, frames, b, t)
            if self.training:
                aux.update(self._distill(feats, teacher))
            else:
                # The original's 2-D path uses raw_model.logit_scale and its 3-D path model.logit_scale;
                # we use the teacher's own scale in both.
                raw_logits = class_logits(teacher, self.classifier, self.raw_model.logit_scale)
                r = tc.ensemble_rawmodel_ratio
                logits = r * raw_logits + (1.0 - r) * logits
        return (logits, aux) if return_aux else logits

    def _distill(self, feats: torch.Tensor, teacher: torch.Tensor) -> dict[str, torch.Tensor]:
        """1 - cos(f^ + 0.1 * proj(f^), r^) averaged over frames, times the ratio (docs/method.md)."""
        # The original code computes the student side under no_grad too: distillation_grad False.
        grad = self.teacher.distillation_grad
        with torch.set_grad_enabled(grad and torch.is_grad_enabled()):
            f = F.normalize(feats.float(), dim=-1)
            f = f + DISTILLATION_ALPHA * self.projector_v(f.to(self.projector_v[0].weight.dtype)).float()
            cos = F.cosine_similarity(f, F.normalize(teacher.float(), dim=-1), dim=-1).mean()
            loss = self.teacher.distillation_ratio * (1.0 - cos)
        return {"loss_distill": loss if grad else loss.detach(), "distill_cos": cos.detach()}
