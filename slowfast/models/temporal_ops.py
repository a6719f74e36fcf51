"""Temporal operators: drop-in replacements of CLIP's image-tower block that let frames interact.

Every block keeps the parameter names of CLIP's `ResidualAttentionBlock` (`ln_1`, `attn.in_proj_weight`,
`attn.out_proj.*`, `ln_2`, `mlp.c_fc.*`, `mlp.c_proj.*`), so every pretrained CLIP key loads 1:1; new
parameters have their own prefixes (`stadapt_*`, `message_*`), listed in `NEW_PARAM_PREFIXES`.

Blocks see batch-first tokens `[B*T, L, D]` (frame-major within a video: row b*T + t) and know T from
construction. All index tables are precomputed, non-persistent buffers (they follow `.to(device)` and
stay out of checkpoints); random draws use torch's RNG on the input's device, so a forward never
synchronises with the host and never loops over frames or tokens in Python.

Blocks take the place of open_clip's `ResidualAttentionBlock` in the image tower and follow its shape:
activation (QuickGELU or GELU), MLP width and LayerScale (`ls_1.gamma`, `ls_2.gamma`).

Types (`MODEL.TEMPORAL_MODELING_TYPE`, formulas in docs/method.md):
  None                 plain CLIP per frame
  stcross_attend       STDD's spatiotemporal cross attention (no new parameters)
  stadapt_zeroinit     ST-Adapter before attention, zero-initialised up-projection (D^2 + 3.5 D per block)
  cross_frame_attend   X-CLIP message tokens (5 D^2 + 7 D per block)
  expand_temporal_view Open-VCLIP: keys/values of frames t+1, t-1, t (no new parameters)
"""

from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Optional

import torch
import torch.nn.functional as F
from open_clip.transformer import LayerNorm, LayerScale, QuickGELU
from torch import nn

from slowfast.config.choices import STCROSS_MLP_INPUTS, TEMPORAL_TYPES
from slowfast.errors import UserError

# Names of parameters that CLIP checkpoints do not have (allowed to be missing when loading CLIP weights).
NEW_PARAM_PREFIXES: dict[Optional[str], tuple[str, ...]] = {
    None: (), "stcross_attend": (), "expand_temporal_view": (),
    "stadapt_zeroinit": ("stadapt_",), "cross_frame_attend": ("message_",),
}


class TemporalOpError(UserError, ValueError):
    """A temporal operator cannot be built with these settings; the message says which values work."""


@dataclass(frozen=True)
class TemporalOpConfig:
    """Explicit settings of the temporal operator, passed whole to every block. `build_model` reads them from
    the config keys of `slowfast.config.choices.OPERATOR_FIELDS` (one per field)."""

    type: Optional[str] = None
    num_frames: int = 8
    mask_rate: float = 0.5
    mask_stride: tuple[int, int, int] = (1, 2, 2)
    spatial_repeat: bool = True
    temporal_shuffle: bool = True
    deterministic_test_masks: bool = False
    channel_fold: int = 64
    temporal_scale: tuple[int, ...] = (1,)
    mlp_input: str = "full"
    fused_attention: bool = True


def _divisors(n: int) -> list[int]:
    return [d for d in range(1, n + 1) if n % d == 0]


def check_temporal_op(cfg: TemporalOpConfig, width: int, grid: int) -> None:
    """Refuse impossible settings before any block is built, naming the values that would work."""
    if cfg.type not in TEMPORAL_TYPES:
        valid = ", ".join("None" if t is None else t for t in TEMPORAL_TYPES)
        raise TemporalOpError(f"unknown temporal operator {cfg.type!r} (MODEL.TEMPORAL_MODELING_TYPE); valid: {valid}")
    if cfg.num_frames < 1:
        raise TemporalOpError(f"DATA.NUM_FRAMES must be >= 1, got {cfg.num_frames}")
    if cfg.type != "stcross_attend":
        return
    if len(cfg.mask_stride) != 3:
        raise TemporalOpError(f"MODEL.MASK_STRIDE must be (t, h, w), got {list(cfg.mask_stride)}")
    st, sh, sw = (int(s) for s in cfg.mask_stride)
    if st != 1:
        fix = f": use MODEL.MASK_STRIDE [1, {sh}, {sw}]" if sh >= 1 and sw >= 1 and grid % sh == 0 and grid % sw == 0 else ""
        raise TemporalOpError(
            f"stcross_attend needs a temporal mask stride of 1 (MODEL.MASK_STRIDE[0]), got {st}{fix}"
        )
    if sh < 1 or sw < 1 or grid % sh or grid % sw:
        ok = [d for d in _divisors(grid) if d > 1] or [1]
        raise TemporalOpError(
            f"stcross_attend: the {grid}x{grid} patch grid is not divisible by the mask window {sh}x{sw} "
            f"(MODEL.MASK_STRIDE [1, {sh}, {sw}]); window sides that divide {grid}: {ok}"
            + (" (ViT-B/32's 7x7 grid: use vitb16 or vitl14, or a 1x7 / 7x1 / 7x7 window)" if grid == 7 else "")
        )
    c = sh * sw
    m = stcross_dropped_per_window(cfg.mask_rate, cfg.num_frames, grid, sh, sw)
    if not 0.0 <= cfg.mask_rate < 1.0 or m >= c:
        raise TemporalOpError(
            f"MODEL.MASK_RATE {cfg.mask_rate} drops {m} of the {c} tokens of every {sh}x{sw} window, leaving none: "
            "use 0 <= MASK_RATE < 1 (STDD uses 0.5)"
        )
    if cfg.channel_fold < 2 or width // cfg.channel_fold == 0:
        raise TemporalOpError(
            f"MODEL.CHANNEL_FOLD {cfg.channel_fold} leaves d0 = width // CHANNEL_FOLD = {width // max(cfg.channel_fold, 1)} "
            f"shifted channels for width {width}: use 2 <= CHANNEL_FOLD <= {width}"
        )
    d0 = width // cfg.channel_fold
    scales = [int(s) for s in cfg.temporal_scale]
    if not scales or min(scales) < 1:
        raise TemporalOpError(f"MODEL.TEMPORAL_SCALE must be a non-empty list of positive ints, got {list(cfg.temporal_scale)}")
    max_scale = int(math.floor(math.log2(d0))) + 1
    if max(scales) > max_scale:
        raise TemporalOpError(
            f"MODEL.TEMPORAL_SCALE {scales}: scale {max(scales)} needs d0 / 2^{max(scales) - 1} >= 1 channel but "
            f"d0 = {width} // {cfg.channel_fold} = {d0}; use scales <= {max_scale} or a smaller CHANNEL_FOLD"
        )
    if cfg.mlp_input not in STCROSS_MLP_INPUTS:
        raise TemporalOpError(f"MODEL.STCROSS_MLP_INPUT must be one of {STCROSS_MLP_INPUTS}, got {cfg.mlp_input!r}")


def stcross_dropped_per_window(mask_rate: float, num_frames: int, grid: int, sh: int, sw: int) -> int:
    """m = int(rho * T * P^2) // (T * H' * W'): tokens dropped in each window (as the original computes it)."""
    cells = (grid // sh) * (grid // sw)
    return int(mask_rate * num_frames * grid * grid) // (num_frames * cells)


class Attention(nn.Module):
    """Multi-head self-attention with `nn.MultiheadAttention`'s parameter names, through SDPA.

    `qkv(x)` and `project(o)` are public so that temporal operators can reuse the same weights on other
    token sets (masked windows, neighbour-frame keys) without copying them.
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
        n, length, _ = x.shape
        qkv = F.linear(x, self.in_proj_weight, self.in_proj_bias)
        q, k, v = qkv.view(n, length, 3, self.heads, self.head_dim).permute(2, 0, 3, 1, 4).unbind(0)
        return q, k, v

    def attend(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        if self.fused:
            return F.scaled_dot_product_attention(q, k, v)
        scores = (q * (1.0 / math.sqrt(q.shape[-1]))) @ k.transpose(-2, -1)
        return scores.softmax(-1) @ v

    def project(self, o: torch.Tensor) -> torch.Tensor:
        """`[N, heads, L, head_dim]` -> `[N, L, D]` through the output projection."""
        n, _, length, _ = o.shape
        return self.out_proj(o.transpose(1, 2).reshape(n, length, self.width))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.project(self.attend(*self.qkv(x)))


@dataclass(frozen=True)
class BlockShape:
    """What a temporal block copies from the CLIP block it replaces (so that the checkpoint's keys fit)."""

    width: int
    heads: int
    mlp_width: int
    quick_gelu: bool = True
    layer_scale: bool = False

    @classmethod
    def of(cls, block: nn.Module) -> BlockShape:
        """The shape of an open_clip `ResidualAttentionBlock`."""
        return cls(
            width=block.attn.embed_dim, heads=block.attn.num_heads, mlp_width=block.mlp.c_fc.out_features,
            quick_gelu=isinstance(block.mlp.gelu, QuickGELU), layer_scale=isinstance(block.ls_1, LayerScale),
        )


class _ClipBlockBase(nn.Module):
    """CLIP's block parameters (names as in OpenAI's and open_clip's checkpoints) plus the clip length T.

    `forward` takes open_clip's block arguments (the tower passes `attn_mask=None`) and runs `block`.
    """

    def __init__(self, width: int, heads: int, num_frames: int, fused_attention: bool = True,
                 shape: Optional[BlockShape] = None):
        super().__init__()
        shape = shape or BlockShape(width, heads, 4 * width)
        self.attn = Attention(width, heads, fused=fused_attention)
        self.ln_1 = LayerNorm(width)
        self.ls_1 = LayerScale(width, 1e-5) if shape.layer_scale else nn.Identity()
        act = QuickGELU() if shape.quick_gelu else nn.GELU()
        self.mlp = nn.Sequential(OrderedDict([
            ("c_fc", nn.Linear(width, shape.mlp_width)), ("gelu", act), ("c_proj", nn.Linear(shape.mlp_width, width)),
        ]))
        self.ln_2 = LayerNorm(width)
        self.ls_2 = LayerScale(width, 1e-5) if shape.layer_scale else nn.Identity()
        self.width, self.num_frames = width, num_frames

    def _videos(self, x: torch.Tensor) -> int:
        n = x.shape[0]
        if n % self.num_frames:
            raise ValueError(f"{type(self).__name__}: {n} frames is not a multiple of the clip length T = {self.num_frames}")
        return n // self.num_frames

    def _mlp_residual(self, x: torch.Tensor, mlp_in: Optional[torch.Tensor] = None) -> torch.Tensor:
        return x + self.ls_2(self.mlp(self.ln_2(x if mlp_in is None else mlp_in)))

    def block(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def forward(self, q_x: torch.Tensor, k_x: Optional[torch.Tensor] = None, v_x: Optional[torch.Tensor] = None,
                attn_mask: Optional[torch.Tensor] = None) -> torch.Tensor:
        if k_x is not None or v_x is not None or attn_mask is not None:
            raise ValueError(f"{type(self).__name__} is a self-attention block of the image tower (no mask, no kv)")
        return self.block(q_x)


class ClipBlock(_ClipBlockBase):
    """Plain CLIP block per frame (type None): the same arithmetic as the operators' blocks, so that an
    operator that starts as the identity (stadapt_zeroinit) gives exactly this block's output."""

    def block(self, x: torch.Tensor) -> torch.Tensor:
        return self._mlp_residual(x + self.ls_1(self.attn(self.ln_1(x))))


# ---------------------------------------------------------------------------------------------------
# STDD: spatiotemporal cross attention (docs/method.md)
# ---------------------------------------------------------------------------------------------------


def window_order(grid: int, sh: int, sw: int) -> torch.Tensor:
    """`[P*P]`: raster patch index (0-based, CLS excluded) of each window index j = q*c + slot.

    Patch (h, w) lies in cell q = (h // sh) * W' + w // sw at slot (h % sh) * sw + w % sw.
    """
    h = torch.arange(grid).view(-1, 1).expand(grid, grid)
    w = torch.arange(grid).view(1, -1).expand(grid, grid)
    cells_w, c = grid // sw, sh * sw
    j = ((h // sh) * cells_w + (w // sw)) * c + (h % sh) * sw + (w % sw)
    order = torch.empty(grid * grid, dtype=torch.long)
    order[j.reshape(-1)] = torch.arange(grid * grid)
    return order


def stcross_masks(num_frames: int, c: int, m: int) -> tuple[torch.Tensor, torch.Tensor]:
    """`(train [c, T, c], test [T, c])`, 1 = dropped slot.

    pi0 = [1]*m + [0]*(c - m); rot(pi, o)[i] = pi[(i - o) mod c];
    train candidate i, frame t: rot(pi0, (t + i) mod c); test, frame t: rot(pi0, t mod c).
    """
    slots = torch.arange(c)
    t = torch.arange(num_frames)
    cand = torch.arange(c)
    offset = (t.view(1, -1) + cand.view(-1, 1)) % c  # [c, T]
    train = (((slots.view(1, 1, -1) - offset.unsqueeze(-1)) % c) < m)  # pi0[k] = 1 iff k < m
    test = (((slots.view(1, -1) - (t % c).view(-1, 1)) % c) < m)
    return train, test


def kept_slots(masks: torch.Tensor, keep: int) -> torch.Tensor:
    """Ascending indices of the kept (0) slots along the last dim: `[..., c]` -> `[..., keep]`."""
    c = masks.shape[-1]
    key = masks.long() * c + torch.arange(c)  # kept slots first, each group in ascending order
    return key.argsort(dim=-1)[..., :keep]


def shift_sources(num_frames: int, d0: int, scale: int) -> list[tuple[int, int, torch.Tensor]]:
    """Channel segments of the 2*d0 shifted channels for one scale, with each frame's source frame.

    Returns `[(start, stop, src[T])]`; src == T means "no source: zeros". Derived from the original's loop
    (for i < scale, d_i = d0 // 2^i: channels [0, d_i) of frame t <- frame t-(i+1) if t >= i+1, channels
    [2 d0 - d_i, 2 d0) <- frame t+(i+1) if t <= T-2-i; later iterations overwrite, unwritten stays 0):
    the last write wins, so a channel written by iterations 0..i takes shift min(i+1, t) (past half).
    """
    T = num_frames
    t = torch.arange(T)
    widths = [d0 // 2**i for i in range(scale)] + [0]
    segs: list[tuple[int, int, torch.Tensor]] = []
    for i in range(scale):
        lo, hi = widths[i + 1], widths[i]  # channels [lo, hi) written by iterations 0..i
        if hi == lo:
            continue
        past = torch.where(t >= 1, t - torch.clamp(t, max=i + 1), torch.full_like(t, T))
        segs.append((lo, hi, past))
        future = torch.where(t <= T - 2, t + torch.clamp(T - 1 - t, max=i + 1), torch.full_like(t, T))
        segs.append((2 * d0 - hi, 2 * d0 - lo, future))
    return sorted(segs, key=lambda s: s[0])


class STCrossAttentionBlock(_ClipBlockBase):
    """STDD's block: masked, channel-mixed attention per temporal scale + full attention, merged
    (docs/method.md, "Spatiotemporal cross attention").

    Per block: |S| attention passes over the kept tokens (one batched SDPA call, the |S| mixed inputs
    stacked along the batch dim) and one over all tokens, all with this block's own weights; no new
    parameters. Random draws, in this order (a reference implementation can replay them with the same
    seed): `torch.randint(window_size, (B, 1 or cells))` (train only: the mask candidate), then
    `torch.rand(B, T).argsort(1)` (the frame permutation, when shuffling). `generator`, if set, is used
    for both (tests); activation checkpointing replays only the global RNG, so leave it None there.
    The settings are checked once per model by `temporal_block_factory` (`check_temporal_op`).
    """

    def __init__(self, width: int, heads: int, grid: int, op: TemporalOpConfig, shape: Optional[BlockShape] = None):
        super().__init__(width, heads, op.num_frames, op.fused_attention, shape)
        num_frames, mask_rate, mask_stride = op.num_frames, op.mask_rate, op.mask_stride
        _, sh, sw = (int(s) for s in mask_stride)
        self.grid, self.window_size = grid, sh * sw
        self.cells = (grid // sh) * (grid // sw)
        self.dropped_per_window = stcross_dropped_per_window(mask_rate, num_frames, grid, sh, sw)
        self.keep = self.window_size - self.dropped_per_window
        self.num_kept = self.cells * self.keep
        self.spatial_repeat, self.temporal_shuffle = op.spatial_repeat, op.temporal_shuffle
        self.deterministic_test_masks = op.deterministic_test_masks
        self.d0 = width // op.channel_fold
        self.scales = tuple(int(s) for s in op.temporal_scale)
        self.mlp_input = op.mlp_input
        self.generator: Optional[torch.Generator] = None
        train_masks, test_mask = stcross_masks(num_frames, self.window_size, self.dropped_per_window)
        self.register_buffer("train_masks", train_masks, persistent=False)  # [c, T, c] bool
        self.register_buffer("test_mask", test_mask, persistent=False)  # [T, c] bool
        self.register_buffer("train_kept", kept_slots(train_masks, self.keep), persistent=False)  # [c, T, keep]
        self.register_buffer("test_kept", kept_slots(test_mask, self.keep), persistent=False)  # [T, keep]
        # Token index (CLS = 0) of each window index, and the first window index of each cell.
        self.register_buffer("window_tokens", window_order(grid, sh, sw) + 1, persistent=False)
        self.register_buffer("cell_starts", torch.arange(self.cells) * self.window_size, persistent=False)
        # Source frame of every (scale, frame, shifted channel); T = "no source": zeros.
        self.register_buffer("shift_src", shift_table(num_frames, self.d0, self.scales), persistent=False)

    @property
    def c(self) -> int:
        """Tokens per mask window (c in docs/method.md)."""
        return self.window_size

    @property
    def m(self) -> int:
        """Tokens dropped per window (m in docs/method.md)."""
        return self.dropped_per_window

    # -- masks ---------------------------------------------------------------------------------------
    def draw_kept_slots(self, batch: int) -> torch.Tensor:
        """`[B, T, cells or 1, keep]`: kept slots of every (video, frame, cell), drawn in the documented order."""
        dev = self.train_kept.device
        T = self.num_frames
        if self.training:
            cells = 1 if self.spatial_repeat else self.cells
            cand = torch.randint(self.window_size, (batch, cells), device=dev, generator=self.generator)
        shuffle = self.temporal_shuffle and (self.training or not self.deterministic_test_masks)
        if shuffle:
            perm = torch.rand(batch, T, device=dev, generator=self.generator).argsort(dim=1)
        else:
            perm = torch.arange(T, device=dev).expand(batch, T)
        if self.training:  # frame t takes the pattern of frame perm[t] of candidate cand
            return self.train_kept[cand.unsqueeze(1), perm.unsqueeze(2)]
        return self.test_kept[perm].unsqueeze(2)

    def kept_token_index(self, batch: int) -> torch.Tensor:
        """`[B*T, 1 + kept]`: token indices gathered per frame (CLS first, then kept ones in window order)."""
        slots = self.draw_kept_slots(batch)  # [B, T, cells|1, keep]
        win = (self.cell_starts.view(1, 1, -1, 1) + slots).reshape(batch * self.num_frames, self.num_kept)
        tokens = self.window_tokens[win]
        return torch.cat([tokens.new_zeros(tokens.shape[0], 1), tokens], dim=1)

    # -- channel mixing ----------------------------------------------------------------------------
    def mix_channels(self, z: torch.Tensor, batch: int) -> torch.Tensor:
        """`[Mix_s(z) for s in scales]` stacked along the batch dim: `[|S| * N, L', D]`.

        Mix_s: the first 2*d0 channels of the patch tokens come from neighbour frames (zeros where there
        is none); the CLS row and the other channels are unchanged. One copy of z per scale, then only
        the 2*d0 shifted channels are overwritten (one gather per scale).
        """
        n, length, d = z.shape
        T, w = self.num_frames, 2 * self.d0
        out = z.unsqueeze(0).repeat(len(self.scales), 1, 1, 1)
        shifted = z[:, 1:, :w].reshape(batch, T, length - 1, w)
        padded = torch.cat([shifted, shifted.new_zeros(batch, 1, length - 1, w)], dim=1)  # frame T = "no source"
        for si in range(len(self.scales)):
            index = self.shift_src[si].view(1, T, 1, w).expand(batch, T, length - 1, w)
            out[si, :, 1:, :w] = padded.gather(1, index).reshape(n, length - 1, w)
        return out.reshape(len(self.scales) * n, length, d)

    def _attn_residual(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.ls_1(self.attn(self.ln_1(x)))

    def block(self, x: torch.Tensor) -> torch.Tensor:
        n, length, d = x.shape
        batch = self._videos(x)
        idx = self.kept_token_index(batch)  # [N, 1 + kept]
        flat = (torch.arange(n, device=x.device).unsqueeze(1) * length + idx).reshape(-1)
        z = x.reshape(n * length, d).index_select(0, flat).reshape(n, -1, d)  # window masking
        mixed = self.mix_channels(z, batch)  # the |S| scales stacked: one attention call for all
        a = self._attn_residual(mixed).reshape(len(self.scales), n, -1, d).mean(dim=0)  # Ā
        x1 = self._attn_residual(x)  # full attention
        # Merge: kept tokens and CLS from Ā, dropped tokens from X1.
        xpad = x1.reshape(n * length, d).index_copy(0, flat, a.reshape(-1, d).to(x1.dtype)).reshape(n, length, d)
        # The original code feeds the MLP the full-attention branch X1; "merged" feeds it the merged tokens.
        return self._mlp_residual(xpad, x1 if self.mlp_input == "full" else xpad)


def shift_table(num_frames: int, d0: int, scales: Sequence[int]) -> torch.Tensor:
    """`[|S|, T, 2*d0]` long: source frame of each shifted channel per scale and frame (T = no source)."""
    table = torch.full((len(scales), num_frames, 2 * d0), num_frames, dtype=torch.long)
    for si, scale in enumerate(scales):
        for lo, hi, src in shift_sources(num_frames, d0, int(scale)):
            table[si, :, lo:hi] = src.unsqueeze(1)
    return table


# ---------------------------------------------------------------------------------------------------
# Other operators (docs/method.md, "Other temporal operators")
# ---------------------------------------------------------------------------------------------------


class STAdaptZeroInitBlock(_ClipBlockBase):
    """ST-Adapter on the patch tokens before attention: 1x1x1 down (D -> D/2), depthwise (3,1,1)
    temporal conv, 1x1x1 up (D/2 -> D, zero-initialised, so the block starts as plain CLIP); no
    activation; residual. Parameters are Conv3d-shaped; the math runs channels-last without permutes."""

    def __init__(self, width: int, heads: int, num_frames: int, fused_attention: bool = True,
                 shape: Optional[BlockShape] = None):
        super().__init__(width, heads, num_frames, fused_attention, shape)
        hidden = width // 2
        self.stadapt_down = nn.Conv3d(width, hidden, kernel_size=1)
        self.stadapt_conv = nn.Conv3d(hidden, hidden, kernel_size=(3, 1, 1), padding=(1, 0, 0), groups=hidden)
        self.stadapt_up = nn.Conv3d(hidden, width, kernel_size=1)
        nn.init.zeros_(self.stadapt_up.weight)
        nn.init.zeros_(self.stadapt_up.bias)

    def adapter(self, patches: torch.Tensor) -> torch.Tensor:
        """`[B, T, P*P, D]` -> the adapter's delta, same shape."""
        h = F.linear(patches, self.stadapt_down.weight.flatten(1), self.stadapt_down.bias)
        w = self.stadapt_conv.weight.view(-1, 3)  # [D/2, 3] taps for frames t-1, t, t+1
        zero = h.new_zeros(h[:, :1].shape)
        prev = torch.cat([zero, h[:, :-1]], dim=1)
        nxt = torch.cat([h[:, 1:], zero], dim=1)
        h = prev * w[:, 0] + h * w[:, 1] + nxt * w[:, 2] + self.stadapt_conv.bias
        return F.linear(h, self.stadapt_up.weight.flatten(1), self.stadapt_up.bias)

    def block(self, x: torch.Tensor) -> torch.Tensor:
        n, length, d = x.shape
        batch = self._videos(x)
        patches = x[:, 1:].reshape(batch, self.num_frames, length - 1, d)
        delta = self.adapter(patches).reshape(n, length - 1, d)
        x = torch.cat([x[:, :1], x[:, 1:] + delta], dim=1)
        return self._mlp_residual(x + self.ls_1(self.attn(self.ln_1(x))))


class CrossFrameAttentionBlock(_ClipBlockBase):
    """X-CLIP: a message token per frame (message_fc of the CLS token), mixed across the T frames by
    message_attn, appended to the frame's tokens for the spatial attention, then dropped."""

    def __init__(self, width: int, heads: int, num_frames: int, fused_attention: bool = True,
                 shape: Optional[BlockShape] = None):
        super().__init__(width, heads, num_frames, fused_attention, shape)
        self.message_fc = nn.Linear(width, width)
        self.message_ln = LayerNorm(width)
        self.message_attn = Attention(width, heads, fused=fused_attention)

    def block(self, x: torch.Tensor) -> torch.Tensor:
        n, length, d = x.shape
        batch = self._videos(x)
        msg = self.message_fc(x[:, 0]).reshape(batch, self.num_frames, d)
        msg = msg + self.message_attn(self.message_ln(msg))
        x = torch.cat([x, msg.reshape(n, 1, d)], dim=1)
        x = x + self.ls_1(self.attn(self.ln_1(x)))
        return self._mlp_residual(x[:, :length])


class ExpandTemporalViewBlock(_ClipBlockBase):
    """Open-VCLIP: the queries of frame t attend to the keys/values of frames [t+1; t-1; t] (3L keys).
    As in the original, a missing neighbour (t = T-1, t = 0) contributes zero keys and values, which
    still take part in the softmax (logit 0) at the boundary frames."""

    def _expand(self, t: torch.Tensor, batch: int) -> torch.Tensor:
        """`[N, h, L, hd]` -> `[N, h, 3L, hd]`: frames t+1, t-1, t concatenated along the tokens."""
        n, heads, length, hd = t.shape
        t = t.reshape(batch, self.num_frames, heads, length, hd)
        zero = t.new_zeros(t[:, :1].shape)
        nxt = torch.cat([t[:, 1:], zero], dim=1)
        prev = torch.cat([zero, t[:, :-1]], dim=1)
        return torch.cat([nxt, prev, t], dim=3).reshape(n, heads, 3 * length, hd)

    def block(self, x: torch.Tensor) -> torch.Tensor:
        batch = self._videos(x)
        q, k, v = self.attn.qkv(self.ln_1(x))  # [N, h, L, hd]
        o = self.attn.attend(q, self._expand(k, batch), self._expand(v, batch))
        return self._mlp_residual(x + self.ls_1(self.attn.project(o)))


def extra_params_per_block(op_type: Optional[str], width: int) -> int:
    """New (non-CLIP) parameters one block adds (docs/method.md gives the formulas)."""
    if op_type == "stadapt_zeroinit":
        return width * width + (7 * width) // 2
    if op_type == "cross_frame_attend":
        return 5 * width * width + 7 * width
    return 0


_SIMPLE_BLOCKS: dict[Optional[str], type[_ClipBlockBase]] = {
    None: ClipBlock,
    "stadapt_zeroinit": STAdaptZeroInitBlock,
    "cross_frame_attend": CrossFrameAttentionBlock,
    "expand_temporal_view": ExpandTemporalViewBlock,
}


def temporal_block_factory(cfg: TemporalOpConfig, width: int, grid: int) -> Callable[[nn.Module, int], nn.Module]:
    """`factory(clip_block, index)`: the block that replaces an open_clip image-tower block. The settings
    are checked here, once per model, against the tower's width and patch grid."""
    check_temporal_op(cfg, width, grid)

    def factory(clip_block: nn.Module, index: int) -> nn.Module:
        shape = BlockShape.of(clip_block)
        if cfg.type == "stcross_attend":
            return STCrossAttentionBlock(shape.width, shape.heads, grid, cfg, shape)
        return _SIMPLE_BLOCKS[cfg.type](shape.width, shape.heads, cfg.num_frames, cfg.fused_attention, shape)

    return factory
