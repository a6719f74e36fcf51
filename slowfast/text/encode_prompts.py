"""Stage 3: extended prompts + templates + class names -> the `[K, N, E]` text-feature file.

For each template τ and class c with clauses (oo, ao, aa): the bare prompt τ(c), then one prompt
τ("c, clause") per clause. In `xmix` mode the lists are concatenated and deduplicated keeping the first
occurrence (prompt order "first"). Each class's list is padded to the longest one, M, by cycling its own
prompts, and the N = len(templates)·M prompts are laid out template-major: N index = template·M + slot.
Padding repeats the first prompts of the list, so the order decides which prompts weigh more in the
classifier's mean over prompts: with "first", the bare prompt and the first clauses. Prompt order "set" is
the original's: `xmix` lists deduplicated through a Python set, whose order follows the strings' hashes
(a different order in every process unless PYTHONHASHSEED is set), and single-kind lists kept as they are,
duplicates included. Features are CLIP text embeddings, not normalised
(the model normalises per prompt when it loads the file).
"""

from __future__ import annotations

import dataclasses
import logging
import os
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Optional

from slowfast.text.prompt_file import MODE_FIELDS, match_xprompts
from slowfast.text.schema import SchemaError

if TYPE_CHECKING:  # torch is imported where it is used: stage 3's prompt table needs none
    import torch

logger = logging.getLogger(__name__)

MODES = tuple(MODE_FIELDS)
# "first": deduplicated keeping first occurrences (the same order every run); "set": the original's order.
PROMPT_ORDERS = ("first", "set")


def fill(template: str, text: str) -> str:
    # str.replace, not str.format: a clause may contain braces.
    return template.replace("{}", text, 1)


def class_prompts(template: str, class_name: str, entry: Optional[Mapping], mode: str, order: str = "first"
                  ) -> list[str]:
    """The bare prompt, then one per clause of the mode's fields; with `order` "first" duplicates are dropped,
    first occurrence kept; with "set" as the original (see the module docstring)."""
    prompts = [fill(template, class_name)]
    for key in MODE_FIELDS[mode]:
        prompts += [fill(template, f"{class_name}, {clause}") for clause in (entry or {}).get(key) or []]
    if order == "set":
        return list(set(prompts)) if mode == "xmix" else prompts
    return list(dict.fromkeys(prompts))


def build_prompt_table(
    class_names: Sequence[str], xprompts: Mapping[str, Mapping], templates: Sequence[str], mode: str = "xmix",
    order: str = "first",
) -> tuple[list[list[str]], int]:
    """`(prompts, M)`: prompts[k] holds the N = len(templates)·M prompts of class k, template-major."""
    if mode not in MODES:
        raise ValueError(f"unknown mode {mode!r}; choose one of {', '.join(MODES)}")
    if order not in PROMPT_ORDERS:
        raise ValueError(f"unknown prompt order {order!r}; choose one of {', '.join(PROMPT_ORDERS)}")
    per = [[class_prompts(t, c, xprompts.get(c), mode, order) for t in templates] for c in class_names]
    m = max(len(lst) for row in per for lst in row)
    table = []
    for row in per:
        padded: list[str] = []
        for lst in row:
            padded += [lst[i % len(lst)] for i in range(m)]
        table.append(padded)
    return table, m


def encode_prompts(
    model: torch.nn.Module, prompts: Sequence[str], batch_size: int = 256, truncate: bool = False
) -> torch.Tensor:
    """`[len(prompts), E]` fp32 CLIP text embeddings (on the CPU), encoded in batches on the model's device."""
    import torch

    from slowfast.clip import tokenize

    device = next(model.parameters()).device
    out = []
    for start in range(0, len(prompts), batch_size):
        chunk = list(prompts[start:start + batch_size])
        try:
            tokens = tokenize(chunk, context_length=model.context_length, truncate=truncate)
        except ValueError as e:
            raise SchemaError(f"{e}; shorten that clause or pass --truncate") from None
        # Causal attention: tokens after end-of-text cannot change its embedding, so cut the padding.
        length = int(tokens.argmax(dim=-1).max()) + 1
        with torch.no_grad():
            out.append(model.encode_text(tokens[:, :length].to(device)).float())
    return torch.cat(out).cpu()


def build_text_features(
    model: torch.nn.Module,
    class_names: Sequence[str],
    xprompts: Mapping[str, Mapping],
    templates: Sequence[str],
    mode: str = "xmix",
    batch_size: int = 256,
    truncate: bool = False,
    order: str = "first",
) -> tuple[torch.Tensor, list[list[str]], int]:
    """`(features [K, N, E], prompts [K][N], M)`; each distinct prompt is encoded once."""
    import torch

    table, m = build_prompt_table(class_names, xprompts, templates, mode, order)
    unique = list(dict.fromkeys(p for row in table for p in row))
    emb = encode_prompts(model.eval(), unique, batch_size=batch_size, truncate=truncate)
    where = {p: i for i, p in enumerate(unique)}
    index = torch.tensor([[where[p] for p in row] for row in table], dtype=torch.long)
    return emb[index], table, m


def _clip_name(clip_weights: str) -> str:
    """A model name (ViT-B/16) as given, a file by its base name: the record says what the user chose."""
    return os.path.basename(clip_weights) if os.path.exists(clip_weights) else clip_weights


def make_feature_file(
    xprompt_path: str,
    class_names: Sequence[str],
    clip_weights: str,
    output: str,
    templates: Sequence[str],
    mode: str = "xmix",
    batch_size: int = 256,
    device: str = "cpu",
    truncate: bool = False,
    templates_source: str = "",
    match_by_order: bool = False,
    prompt_order: str = "first",
) -> dict:
    """Build and save the feature file; returns a small summary (shape, M, prompt counts, matching report).

    The file's metadata records the templates and where they came from, the prompts of every row, how
    the prompt file's entries were matched to the classes, and which CLIP made it (`clip_identity`).
    """
    from slowfast.clip import load_clip
    from slowfast.text.feature_file import clip_identity, save_text_features, text_tower_fingerprint

    xprompts, matching = match_xprompts(xprompt_path, class_names, mode, by_order=match_by_order)
    model = load_clip(clip_weights).to(device)
    feats, table, m = build_text_features(model, class_names, xprompts, templates, mode, batch_size, truncate,
                                          prompt_order)
    distinct = [len(set(row[:m])) for row in table]  # distinct prompts of the first template, per class
    save_text_features(
        output,
        feats,
        class_names=list(class_names),
        clip=dataclasses.asdict(model.config),
        clip_weights=os.path.basename(clip_weights),
        clip_identity=clip_identity(_clip_name(clip_weights), feats.shape[2], text_tower_fingerprint(model)),
        templates=list(templates),
        templates_source=templates_source,
        prompts=table,
        mode=mode,
        prompt_order=prompt_order,
        prompts_per_template=m,
        prompt_matching=matching.as_metadata(),
    )
    return {
        "shape": tuple(feats.shape),
        "prompts_per_template": m,
        "distinct_min": min(distinct),
        "distinct_max": max(distinct),
        "distinct_mean": sum(distinct) / len(distinct),
        "matching": matching,
    }
