"""CLIP's image and text towers with OpenAI's state-dict key layout.

Tensors are batch-first (`[N, L, D]`) everywhere; only the parameter names follow OpenAI's layout
(`visual.transformer.resblocks.0.attn.in_proj_weight`, ...), so every OpenAI checkpoint loads 1:1.
Attention goes through `F.scaled_dot_product_attention`.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from dataclasses import dataclass
from typing import Optional
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.checkpoint import checkpoint


class LayerNorm(nn.LayerNorm):
    """LayerNorm computed in fp32 whatever the input dtype (as CLIP does), cast back afterwards."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        orig = x.dtype
        w = self.weight.float() if self.weight is not None else None
        b = self.bias.float() if self.bias is not None else None
        return F.layer_norm(x.float(), self.normalized_shape, w, b, self.eps).to(orig)


class QuickGELU(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.sigmoid(1.702 * x)


class Attention(nn.Module):
    """Multi-head self-attention whose parameters are named like `nn.MultiheadAttention`'s.

    `qkv(x)` and `project(o)` are public so that temporal operators can reuse the same weights on
    other token sets (masked windows, neighbour-frame keys) without copying them.
    """

    def __init__(self, width: int, heads: int, fused: bool = True):
        super().__init__()
        if width % heads:
            raise ValueError(f"width {width} is not divisible by heads {heads}")
        self.width, self.heads, self.head_dim = width, heads, width // heads
        self.fused = fused
        self.in_proj_weight = nn.Parameter(torch.empty(3 * width, width))
        self.in_proj_bias = nn.Parameter(torch.zeros(3 * width))
        self.out_proj = nn.Linear(width, width)
        nn.init.xavier_uniform_(self.in_proj_weight)
        nn.init.zeros_(self.out_proj.bias)

    def qkv(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """`[N, L, D]` -> q, k, v each `[N, heads, L, head_dim]`."""
        n, l, _ = x.shape
        qkv = F.linear(x, self.in_proj_weight, self.in_proj_bias)
        q, k, v = qkv.view(n, l, 3, self.heads, self.head_dim).permute(2, 0, 3, 1, 4).unbind(0)
        return q, k, v

    def attend(
        self,
        q: torch.Tensor,
        k: torch.Tensor,
        v: torch.Tensor,
        attn_mask: Optional[torch.Tensor] = None,
        is_causal: bool = False,
    ) -> torch.Tensor:
        if self.fused:
            return F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask, is_causal=is_causal)
        scores = (q * (1.0 / math.sqrt(q.shape[-1]))) @ k.transpose(-2, -1)
        if is_causal:
            lq, lk = q.shape[-2], k.shape[-2]
            causal = torch.ones(lq, lk, dtype=torch.bool, device=q.device).tril()
            scores = scores.masked_fill(~causal, float("-inf"))
        if attn_mask is not None:
            scores = scores + attn_mask if attn_mask.dtype != torch.bool else scores.masked_fill(~attn_mask, float("-inf"))
        return scores.softmax(-1) @ v

    def project(self, o: torch.Tensor) -> torch.Tensor:
        """`[N, heads, L, head_dim]` -> `[N, L, D]` through the output projection."""
        n, _, l, _ = o.shape
        return self.out_proj(o.transpose(1, 2).reshape(n, l, self.width))

    def forward(self, x: torch.Tensor, is_causal: bool = False) -> torch.Tensor:
        q, k, v = self.qkv(x)
        return self.project(self.attend(q, k, v, is_causal=is_causal))


class ResidualAttentionBlock(nn.Module):
    """CLIP's transformer block: x + attn(ln_1(x)), then x + mlp(ln_2(x))."""

    def __init__(self, width: int, heads: int, fused_attention: bool = True, is_causal: bool = False):
        super().__init__()
        self.attn = Attention(width, heads, fused=fused_attention)
        self.ln_1 = LayerNorm(width)
        self.mlp = nn.Sequential(
            OrderedDict(
                [("c_fc", nn.Linear(width, width * 4)), ("gelu", QuickGELU()), ("c_proj", nn.Linear(width * 4, width))]
            )
        )
        self.ln_2 = LayerNorm(width)
        self.is_causal = is_causal

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.ln_1(x), is_causal=self.is_causal)
        return x + self.mlp(self.ln_2(x))


BlockFactory = Callable[[int, int, int], nn.Module]
"""`factory(width, heads, layer_index) -> block`; a block maps `[N, L, D]` to `[N, L, D]`."""


class Transformer(nn.Module):
    def __init__(
        self,
        width: int,
        layers: int,
        heads: int,
        block_factory: Optional[BlockFactory] = None,
        use_checkpoint: bool = False,
        fused_attention: bool = True,
        is_causal: bool = False,
    ):
        super().__init__()
        self.width, self.layers = width, layers
        if block_factory is None:
            def block_factory(w: int, h: int, i: int) -> nn.Module:
                return ResidualAttentionBlock(w, h, fused_attention=fused_attention, is_causal=is_causal)
        self.resblocks = nn.ModuleList([block_factory(width, heads, i) for i in range(layers)])
        self.use_checkpoint = use_checkpoint

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for block in self.resblocks:
            if self.use_checkpoint and self.training and torch.is_grad_enabled():
                x = checkpoint(block, x, use_reentrant=False)
            else:
                x = block(x)
        return x


class VisionTransformer(nn.Module):
    """Image tower: `[N, 3, H, W]` -> `[N, E]` (before normalisation)."""

    def __init__(
        self,
        input_resolution: int,
        patch_size: int,
        width: int,
        layers: int,
        heads: int,
        output_dim: int,
        block_factory: Optional[BlockFactory] = None,
        use_checkpoint: bool = False,
        fused_attention: bool = True,
    ):
        super().__init__()
        if input_resolution % patch_size:
            raise ValueError(f"image resolution {input_resolution} is not a multiple of the patch size {patch_size}")
        self.input_resolution, self.patch_size = input_resolution, patch_size
        self.grid_size = input_resolution // patch_size
        self.width, self.output_dim = width, output_dim
        self.conv1 = nn.Conv2d(3, width, kernel_size=patch_size, stride=patch_size, bias=False)
        scale = width**-0.5
        self.class_embedding = nn.Parameter(scale * torch.randn(width))
        self.positional_embedding = nn.Parameter(scale * torch.randn(self.grid_size**2 + 1, width))
        self.ln_pre = LayerNorm(width)
        self.transformer = Transformer(
            width, layers, heads, block_factory=block_factory, use_checkpoint=use_checkpoint,
            fused_attention=fused_attention,
        )
        self.ln_post = LayerNorm(width)
        self.proj = nn.Parameter(scale * torch.randn(width, output_dim))

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """Pixels `[N, 3, H, W]` -> tokens `[N, 1 + P*P, D]` after ln_pre."""
        x = self.conv1(x.to(self.conv1.weight.dtype))
        x = x.flatten(2).transpose(1, 2)
        cls = self.class_embedding.to(x.dtype).expand(x.shape[0], 1, -1)
        x = torch.cat([cls, x], dim=1) + self.positional_embedding.to(x.dtype)
        return self.ln_pre(x)

    def head(self, x: torch.Tensor) -> torch.Tensor:
        """Tokens `[N, L, D]` -> embedding `[N, E]` from the class token."""
        return self.ln_post(x[:, 0, :]) @ self.proj

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.transformer(self.embed(x)))


@dataclass(frozen=True)
class CLIPConfig:
    embed_dim: int
    image_resolution: int
    vision_layers: int
    vision_width: int
    vision_patch_size: int
    vision_heads: int
    context_length: int
    vocab_size: int
    transformer_width: int
    transformer_heads: int
    transformer_layers: int


class CLIP(nn.Module):
    def __init__(
        self,
        config: CLIPConfig,
        vision_block_factory: Optional[BlockFactory] = None,
        use_checkpoint: bool = False,
        fused_attention: bool = True,
    ):
        super().__init__()
        c = config
        self.config = c
        self.context_length = c.context_length
        self.visual = VisionTransformer(
            input_resolution=c.image_resolution,
            patch_size=c.vision_patch_size,
            width=c.vision_width,
            layers=c.vision_layers,
            heads=c.vision_heads,
            output_dim=c.embed_dim,
            block_factory=vision_block_factory,
            use_checkpoint=use_checkpoint,
            fused_attention=fused_attention,
        )
        self.transformer = Transformer(
            c.transformer_width, c.transformer_layers, c.transformer_heads,
            fused_attention=fused_attention, is_causal=True,
        )
        self.vocab_size = c.vocab_size
        self.token_embedding = nn.Embedding(c.vocab_size, c.transformer_width)
        self.positional_embedding = nn.Parameter(torch.empty(c.context_length, c.transformer_width))
        self.ln_final = LayerNorm(c.transformer_width)
        self.text_projection = nn.Parameter(torch.empty(c.transformer_width, c.embed_dim))
        self.logit_scale = nn.Parameter(torch.ones([]) * math.log(1 / 0.07))
        self.initialize_parameters()

    def initialize_parameters(self) -> None:
        """CLIP's initialisation (used for `MODEL.ARCH custom`; pretrained weights overwrite it)."""
        nn.init.normal_(self.token_embedding.weight, std=0.02)
        nn.init.normal_(self.positional_embedding, std=0.01)
        for tower in (self.transformer, self.visual.transformer):
            width, layers = tower.width, tower.layers
            proj_std = (width**-0.5) * ((2 * layers) ** -0.5)
            attn_std = width**-0.5
            fc_std = (2 * width) ** -0.5
            for block in tower.resblocks:
                attn = getattr(block, "attn", None)
                if isinstance(attn, Attention):
                    nn.init.normal_(attn.in_proj_weight, std=attn_std)
                    nn.init.normal_(attn.out_proj.weight, std=proj_std)
                mlp = getattr(block, "mlp", None)
                if mlp is not None and hasattr(mlp, "c_fc"):
                    nn.init.normal_(mlp.c_fc.weight, std=fc_std)
                    nn.init.normal_(mlp.c_proj.weight, std=proj_std)
        nn.init.normal_(self.text_projection, std=self.transformer.width**-0.5)

    @property
    def dtype(self) -> torch.dtype:
        return self.visual.conv1.weight.dtype

    def encode_image(self, image: torch.Tensor) -> torch.Tensor:
        return self.visual(image.to(self.dtype))

    def encode_text(self, tokens: torch.Tensor) -> torch.Tensor:
        """Token ids `[N, context]` -> text embedding `[N, E]` at the end-of-text token (the largest id)."""
        if tokens.shape[-1] > self.context_length:
            raise ValueError(f"text has {tokens.shape[-1]} tokens; this CLIP's context length is {self.context_length}")
        x = self.token_embedding(tokens).to(self.dtype)
        x = x + self.positional_embedding[: x.shape[1]].to(self.dtype)
        x = self.ln_final(self.transformer(x))
        eot = tokens.argmax(dim=-1)
        return x[torch.arange(x.shape[0], device=x.device), eot] @ self.text_projection

    def forward(self, image: torch.Tensor, tokens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """CLIP's image-text logits `[N_img, N_txt]` and their transpose."""
        img = F.normalize(self.encode_image(image), dim=-1)
        txt = F.normalize(self.encode_text(tokens), dim=-1)
        logits = self.logit_scale.exp() * img @ txt.t()
        return logits, logits.t()
