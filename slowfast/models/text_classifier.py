"""The frozen class classifier: class names -> text embeddings, and frame embeddings -> class logits.

Two kinds (docs/method.md, "Classifier"):
- `[K, E]`: the 28-template average (4 prefixes x 7 suffixes), per class
  w_k = normalize(mean_j normalize(text(template_j(name_k)))); logits are averaged over frames.
- `[K, N, E]`: N prompts per class from a text-feature file (DATA.TEXT_AUG), normalised per prompt;
  pred = (mean_n max_t sim + mean_t max_n sim) / 2.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F

from slowfast.clip.tokenizer import tokenize

PREFIXES = ("a photo of", "a video of", "a example of", "a demonstration of")
SUFFIXES = (
    "{}.", "a person {}.", "a person using {}.", "a person doing {}.", "a person during {}.",
    "a person performing {}.", "a person practicing {}.",
)
# Prefix-major: "a photo of {}.", "a photo of a person {}.", ..., "a demonstration of a person practicing {}.".
TEMPLATES: tuple[str, ...] = tuple(f"{p} {s}" for p in PREFIXES for s in SUFFIXES)


def encode_texts(clip: torch.nn.Module, texts: Sequence[str], context_length: int, batch_size: int = 512) -> torch.Tensor:
    """`[len(texts), E]` text embeddings (fp32, un-normalised), in batches on the text tower's device.

    Tokens after the end-of-text token cannot influence it (causal attention), so each batch is cut to
    its longest text: the same embeddings as the full 77-token context, several times faster.
    """
    device = clip.token_embedding.weight.device
    tokens = tokenize(list(texts), context_length=context_length)
    out = []
    for start in range(0, tokens.shape[0], batch_size):
        chunk = tokens[start : start + batch_size]
        length = int(chunk.argmax(dim=-1).max()) + 1  # host-side tensor: no device sync
        out.append(clip.encode_text(chunk[:, :length].to(device)).float())
    return torch.cat(out, dim=0)


@torch.no_grad()
def template_classifier(
    clip: torch.nn.Module, class_names: Sequence[str], context_length: int = 77, batch_size: int = 512
) -> torch.Tensor:
    """`[K, E]`: per class, the normalised mean of the 28 normalised template embeddings (docs/method.md)."""
    texts = [tpl.format(name) for name in class_names for tpl in TEMPLATES]  # class-major
    emb = F.normalize(encode_texts(clip, texts, context_length, batch_size), dim=-1)
    emb = emb.view(len(class_names), len(TEMPLATES), -1).mean(dim=1)
    return F.normalize(emb, dim=-1)


def prompt_classifier(features: torch.Tensor) -> torch.Tensor:
    """`[K, N, E]` fp32, each prompt normalised; prompts are not averaged (docs/method.md)."""
    return F.normalize(features.float(), dim=-1)


def class_logits(frame_features: torch.Tensor, classifier: torch.Tensor, logit_scale: torch.Tensor) -> torch.Tensor:
    """Video logits `[B, K]` from per-frame embeddings `[B, T, E]` (normalised here).

    `[K, E]` classifier: mean over frames of s * cos. `[K, N, E]`: pred = (mean_n max_t + mean_t max_n) / 2
    of s * cos. s = exp(logit_scale).
    """
    if classifier.dim() not in (2, 3):
        raise ValueError(f"classifier must be [K, E] or [K, N, E], got {tuple(classifier.shape)}")
    # fp32 even under autocast: a scale of ~100 times a bf16 cosine would cost 2 digits of the logits.
    with torch.autocast(device_type=frame_features.device.type, enabled=False):
        f = F.normalize(frame_features.float(), dim=-1)
        scale = logit_scale.float().exp()
        classifier = classifier.float()
        if classifier.dim() == 2:
            return scale * (f @ classifier.t()).mean(dim=1)
        sim = scale * torch.einsum("bte,kne->btkn", f, classifier)
        best_frame = sim.amax(dim=1).mean(dim=-1)  # mean_n max_t  -> [B, K]
        best_prompt = sim.amax(dim=-1).mean(dim=1)  # mean_t max_n -> [B, K]
        return 0.5 * (best_frame + best_prompt)
