"""Temporal operators: drop-in replacements of CLIP's image-tower block that let frames interact.

Every block keeps the parameter names of CLIP's `ResidualAttentionBlock` (`ln_1`, `attn.in_proj_weight`,
`attn.out_proj.*`, `ln_2`, `mlp.c_fc.*`, `mlp.c_proj.*`), so every pretrained CLIP key loads 1:1; new
parameters have their own prefixes (`stadapt_*`, `message_*`), listed in `NEW_PARAM_PREFIXES`.

Blocks see batch-first tokens `[B*T, L, D]` (frame-major within a video: row b*T + t) and know T from
construction. All index tables are precomputed, non-persistent buffers (they follow `.to(device)` and
stay out of checkpoints); random draws use torch's RNG on the input's device, so a forward never
synchronises with the host and never loops over frames or tokens in Python.

Types (`MODEL.TEMPORAL_MODELING_TYPE`), see STDD_REFERENCE §2.3-2.4:
  None                 plain CLIP per frame
  stcross_attend       STDD's spatiotemporal cross attention (no new parameters)
  stadapt_zeroinit     ST-Adapter before attention, zero-initialised up-projection (D^2 + 3.5 D per block)
  cross_frame_attend   X-CLIP message tokens (5 D^2 + 7 D per block)
  expand_temporal_view Open-VCLIP: keys/values of frames t+1, t-1, t (no new parameters)
"""

from __future__ import annotations

import math
from collections import OrderedDict
from dataclasses import dataclass
from typing import Optional
from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from slowfast.models.clip.model import Attention, LayerNorm, QuickGELU

TEMPORAL_TYPES: tuple[Optional[str], ...] = (
    None, "stcross_attend", "stadapt_zeroinit", "cross_frame_attend", "expand_temporal_view",
)
# Names of parameters that CLIP checkpoints do not have (allowed to be missing when loading CLIP weights).
NEW_PARAM_PREFIXES: dict[Optional[str], tuple[str, ...]] = {
    None: (), "stcross_attend": (), "expand_temporal_view": (),
    "stadapt_zeroinit": ("stadapt_",), "cross_frame_attend": ("message_",),
}
STCROSS_MLP_INPUTS = ("full", "merged")


class TemporalOpError(ValueError):
    """A temporal operator cannot be built with these settings; the message says which values work."""


@dataclass(frozen=True)
class TemporalOpConfig:
    """Explicit settings of the temporal operator (what `build_model` reads from the MODEL section)."""

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
        raise TemporalOpError(
            f"stcross_attend needs a temporal mask stride of 1 (MODEL.MASK_STRIDE[0]), got {st}: "
            f"use MODEL.MASK_STRIDE [1, {sh}, {sw}]"
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
    """m = int(rho * T * P^2) // (T * H' * W'): tokens dropped in each window (§2.3)."""
    cells = (grid // sh) * (grid // sw)
    return int(mask_rate * num_frames * grid * grid) // (num_frames * cells)


def _mlp(width: int) -> nn.Sequential:
    return nn.Sequential(
        OrderedDict([("c_fc", nn.Linear(width, width * 4)), ("gelu", QuickGELU()), ("c_proj", nn.Linear(width * 4, width))])
    )


class _ClipBlockBase(nn.Module):
    """CLIP's block parameters (names as in OpenAI's checkpoints) plus the clip length T."""

    def __init__(self, width: int, heads: int, num_frames: int, fused_attention: bool = True):
        super().__init__()
        self.attn = Attention(width, heads, fused=fused_attention)
        self.ln_1 = LayerNorm(width)
        self.mlp = _mlp(width)
        self.ln_2 = LayerNorm(width)
        self.width, self.num_frames = width, num_frames

    def _videos(self, x: torch.Tensor) -> int:
        n = x.shape[0]
        if n % self.num_frames:
            raise ValueError(f"{type(self).__name__}: {n} frames is not a multiple of the clip length T = {self.num_frames}")
        return n // self.num_frames


# ---------------------------------------------------------------------------------------------------
# STDD: spatiotemporal cross attention (§2.3)
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

    Returns `[(start, stop, src[T])]`; src == T means "no source: zeros". Derived from §2.3's loop
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
    """STDD's block: masked, channel-mixed attention per temporal scale + full attention, merged (§2.3).

    Per block: |S| attention passes over the kept tokens (one batched SDPA call, the |S| mixed inputs
    stacked along the batch dim) and one over all tokens, all with this block's own weights; no new
    parameters. Random draws, in this order (a reference implementation can replay them with the same
    seed): `torch.randint(c, (B, 1 or cells))` (train only: the mask candidate), then
    `torch.rand(B, T).argsort(1)` (the frame permutation, when shuffling). `generator`, if set, is used
    for both (tests); activation checkpointing replays only the global RNG, so leave it None there.
    """

    def __init__(
        self,
        width: int,
        heads: int,
        num_frames: int,
        grid: int,
        mask_rate: float = 0.5,
        mask_stride: Sequence[int] = (1, 2, 2),
        spatial_repeat: bool = True,
        temporal_shuffle: bool = True,
        deterministic_test_masks: bool = False,
        channel_fold: int = 64,
        temporal_scale: Sequence[int] = (1,),
        mlp_input: str = "full",
        fused_attention: bool = True,
    ):
        super().__init__(width, heads, num_frames, fused_attention)
        check_temporal_op(
            TemporalOpConfig(
                type="stcross_attend", num_frames=num_frames, mask_rate=mask_rate, mask_stride=tuple(mask_stride),
                channel_fold=channel_fold, temporal_scale=tuple(temporal_scale), mlp_input=mlp_input,
            ),
            width, grid,
        )
        _, sh, sw = (int(s) for s in mask_stride)
        self.grid, self.c = grid, sh * sw
        self.cells = (grid // sh) * (grid // sw)
        self.m = stcross_dropped_per_window(mask_rate, num_frames, grid, sh, sw)
        self.keep = self.c - self.m
        self.num_kept = self.cells * self.keep
        self.spatial_repeat, self.temporal_shuffle = spatial_repeat, temporal_shuffle
        self.deterministic_test_masks = deterministic_test_masks
        self.d0 = width // channel_fold
        self.scales = tuple(int(s) for s in temporal_scale)
        self.mlp_input = mlp_input
        self.generator: Optional[torch.Generator] = None
        train_masks, test_mask = stcross_masks(num_frames, self.c, self.m)
        self.register_buffer("train_masks", train_masks, persistent=False)  # [c, T, c] bool
        self.register_buffer("test_mask", test_mask, persistent=False)  # [T, c] bool
        self.register_buffer("train_kept", kept_slots(train_masks, self.keep), persistent=False)  # [c, T, keep]
        self.register_buffer("test_kept", kept_slots(test_mask, self.keep), persistent=False)  # [T, keep]
        # Token index (CLS = 0) of each window index, and the first window index of each cell.
        self.register_buffer("window_tokens", window_order(grid, sh, sw) + 1, persistent=False)
        self.register_buffer("cell_starts", torch.arange(self.cells) * self.c, persistent=False)
        self._segments = {s: shift_sources(num_frames, self.d0, s) for s in self.scales}
        for s, segs in self._segments.items():
            for k, (_, _, src) in enumerate(segs):
                self.register_buffer(f"shift_src_{s}_{k}", src, persistent=False)

    # -- masks ---------------------------------------------------------------------------------------
    def draw_kept_slots(self, batch: int) -> torch.Tensor:
        """`[B, T, cells or 1, keep]`: kept slots of every (video, frame, cell), drawn as §2.3 says."""
        dev = self.train_kept.device
        T = self.num_frames
        if self.training:
            cand = torch.randint(self.c, (batch, 1 if self.spatial_repeat else self.cells), device=dev, generator=self.generator)
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
        the 2*d0 shifted channels are overwritten.
        """
        n, l, d = z.shape
        T, w = self.num_frames, 2 * self.d0
        out = z.unsqueeze(0).repeat(len(self.scales), 1, 1, 1)
        shifted = z[:, 1:, :w].reshape(batch, T, l - 1, w)
        padded = torch.cat([shifted, shifted.new_zeros(batch, 1, l - 1, w)], dim=1)  # frame T = "no source"
        for si, scale in enumerate(self.scales):
            parts = [
                padded[..., lo:hi].index_select(1, getattr(self, f"shift_src_{scale}_{k}"))
                for k, (lo, hi, _) in enumerate(self._segments[scale])
            ]
            out[si, :, 1:, :w] = torch.cat(parts, dim=-1).reshape(n, l - 1, w)
        return out.reshape(len(self.scales) * n, l, d)

    def _attn_residual(self, x: torch.Tensor) -> torch.Tensor:
        q, k, v = self.attn.qkv(self.ln_1(x))
        return x + self.attn.project(self.attn.attend(q, k, v))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, l, d = x.shape
        batch = self._videos(x)
        idx = self.kept_token_index(batch)  # [N, 1 + kept]
        flat = (torch.arange(n, device=x.device).unsqueeze(1) * l + idx).reshape(-1)
        z = x.reshape(n * l, d).index_select(0, flat).reshape(n, -1, d)  # window masking
        mixed = self.mix_channels(z, batch)  # the |S| scales stacked: one attention call for all
        a = self._attn_residual(mixed).reshape(len(self.scales), n, -1, d).mean(dim=0)  # Ā
        x1 = self._attn_residual(x)  # full attention
        # Merge: kept tokens and CLS from Ā, dropped tokens from X1.
        xpad = x1.reshape(n * l, d).index_copy(0, flat, a.reshape(-1, d).to(x1.dtype)).reshape(n, l, d)
        # The original feeds the MLP the full-attention branch (§2.3 step 7, §10.1 item 4); "merged" is the alternative.
        mlp_in = x1 if self.mlp_input == "full" else xpad
        return xpad + self.mlp(self.ln_2(mlp_in))


# ---------------------------------------------------------------------------------------------------
# Other operators (§2.4)
# ---------------------------------------------------------------------------------------------------


class STAdaptZeroInitBlock(_ClipBlockBase):
    """ST-Adapter on the patch tokens before attention: 1x1x1 down (D -> D/2), depthwise (3,1,1)
    temporal conv, 1x1x1 up (D/2 -> D, zero-initialised, so the block starts as plain CLIP); no
    activation; residual. Parameters are Conv3d-shaped; the math runs channels-last without permutes."""

    def __init__(self, width: int, heads: int, num_frames: int, fused_attention: bool = True):
        super().__init__(width, heads, num_frames, fused_attention)
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

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, l, d = x.shape
        batch = self._videos(x)
        patches = x[:, 1:].reshape(batch, self.num_frames, l - 1, d)
        delta = self.adapter(patches).reshape(n, l - 1, d)
        x = torch.cat([x[:, :1], x[:, 1:] + delta], dim=1)
        x = x + self.attn(self.ln_1(x))
        return x + self.mlp(self.ln_2(x))


class CrossFrameAttentionBlock(_ClipBlockBase):
    """X-CLIP: a message token per frame (message_fc of the CLS token), mixed across the T frames by
    message_attn, appended to the frame's tokens for the spatial attention, then dropped."""

    def __init__(self, width: int, heads: int, num_frames: int, fused_attention: bool = True):
        super().__init__(width, heads, num_frames, fused_attention)
        self.message_fc = nn.Linear(width, width)
        self.message_ln = LayerNorm(width)
        self.message_attn = Attention(width, heads, fused=fused_attention)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, l, d = x.shape
        batch = self._videos(x)
        msg = self.message_fc(x[:, 0]).reshape(batch, self.num_frames, d)
        msg = msg + self.message_attn(self.message_ln(msg))
        x = torch.cat([x, msg.reshape(n, 1, d)], dim=1)
        x = x + self.attn(self.ln_1(x))
        x = x[:, :l]
        return x + self.mlp(self.ln_2(x))


class ExpandTemporalViewBlock(_ClipBlockBase):
    """Open-VCLIP: the queries of frame t attend to the keys/values of frames [t+1; t-1; t] (3L keys).
    As in the original, a missing neighbour (t = T-1, t = 0) contributes zero keys and values, which
    still take part in the softmax (logit 0) at the boundary frames."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, l, d = x.shape
        batch = self._videos(x)
        q, k, v = self.attn.qkv(self.ln_1(x))  # [N, h, L, hd]

        def expand(t: torch.Tensor) -> torch.Tensor:
            t = t.reshape(batch, self.num_frames, *t.shape[1:])
            zero = t.new_zeros(t[:, :1].shape)
            nxt = torch.cat([t[:, 1:], zero], dim=1)
            prev = torch.cat([zero, t[:, :-1]], dim=1)
            return torch.cat([nxt, prev, t], dim=3).reshape(n, t.shape[2], 3 * l, t.shape[-1])

        x = x + self.attn.project(self.attn.attend(q, expand(k), expand(v)))
        return x + self.mlp(self.ln_2(x))


def extra_params_per_block(op_type: Optional[str], width: int) -> int:
    """New (non-CLIP) parameters one block adds (§2.4 formulas)."""
    if op_type == "stadapt_zeroinit":
        return width * width + (7 * width) // 2
    if op_type == "cross_frame_attend":
        return 5 * width * width + 7 * width
    return 0


def temporal_block_factory(cfg: TemporalOpConfig, grid: int) -> Optional[Callable[[int, int, int], nn.Module]]:
    """The `vision_block_factory` for `build_clip`, or None for plain CLIP blocks (type None)."""
    if cfg.type is None:
        return None
    if cfg.type not in TEMPORAL_TYPES:
        check_temporal_op(cfg, 1, grid)  # raises, naming the valid types

    def factory(width: int, heads: int, index: int) -> nn.Module:
        if cfg.type == "stcross_attend":
            return STCrossAttentionBlock(
                width, heads, cfg.num_frames, grid, mask_rate=cfg.mask_rate, mask_stride=cfg.mask_stride,
                spatial_repeat=cfg.spatial_repeat, temporal_shuffle=cfg.temporal_shuffle,
                deterministic_test_masks=cfg.deterministic_test_masks, channel_fold=cfg.channel_fold,
                temporal_scale=cfg.temporal_scale, mlp_input=cfg.mlp_input, fused_attention=cfg.fused_attention,
            )
        cls = {
            "stadapt_zeroinit": STAdaptZeroInitBlock,
            "cross_frame_attend": CrossFrameAttentionBlock,
            "expand_temporal_view": ExpandTemporalViewBlock,
        }[cfg.type]
        return cls(width, heads, cfg.num_frames, fused_attention=cfg.fused_attention)

    return factory
