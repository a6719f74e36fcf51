"""Text tokenisation through open_clip's tokenizer (it ships CLIP's BPE vocabulary)."""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache
from typing import Union

import torch

from slowfast.errors import UserError


class TextTooLongError(UserError, ValueError):
    """A text (a class name in its prompt, an extended prompt) longer than the text tower's context."""


@lru_cache(maxsize=1)
def _tokenizer():
    from open_clip.tokenizer import SimpleTokenizer

    return SimpleTokenizer()


def tokenize(texts: Union[str, Sequence[str]], context_length: int = 77, truncate: bool = False) -> torch.Tensor:
    """Token ids `[N, context_length]` (start, BPE tokens, end, zero padding), like OpenAI's `clip.tokenize`.

    Text longer than the context raises a `TextTooLongError` naming it, unless `truncate` (which keeps the
    end-of-text token last).
    """
    if isinstance(texts, str):
        texts = [texts]
    tok = _tokenizer()
    sot, eot = tok.encoder["<start_of_text>"], tok.encoder["<end_of_text>"]
    out = torch.zeros(len(texts), context_length, dtype=torch.long)
    for i, text in enumerate(texts):
        ids = [sot] + tok.encode(text) + [eot]
        if len(ids) > context_length:
            if not truncate:
                raise TextTooLongError(f"text is {len(ids)} tokens, longer than the context length {context_length}: {text!r}")
            ids = ids[:context_length]
            ids[-1] = eot
        out[i, : len(ids)] = torch.tensor(ids)
    return out
