"""STDD's block (`stcross_attend`) against a slow reference written line by line from docs/method.md (section 2)."""

import math

import pytest
import torch

from slowfast.models.temporal_ops import (
    STCrossAttentionBlock,
    TemporalOpConfig,
    TemporalOpError,
    check_temporal_op,
    stcross_masks,
)

WIDTH, HEADS, GRID = 64, 2, 4  # 16 patches + CLS per frame


# ------------------------------------------------------------------------------------------------
# Reference: loops over videos, frames, windows and channels; explicit attention from the weights.
# ------------------------------------------------------------------------------------------------


def ref_attention(block, x):
    """softmax(q k^T / sqrt(hd)) v with nn.MultiheadAttention's weight layout, for one frame [L, D]."""
    w, b = block.attn.in_proj_weight, block.attn.in_proj_bias
    d = x.shape[-1]
    q, k, v = (x @ w[i * d:(i + 1) * d].t() + b[i * d:(i + 1) * d] for i in range(3))
    heads = block.attn.heads
    hd = d // heads
    outs = []
    for h in range(heads):
        sl = slice(h * hd, (h + 1) * hd)
        att = (q[:, sl] @ k[:, sl].t() / math.sqrt(hd)).softmax(-1)
        outs.append(att @ v[:, sl])
    return block.attn.out_proj(torch.cat(outs, dim=-1))


def rot(pi, o):
    return pi[-o:] + pi[:-o] if o else list(pi)


def ref_masks(B, T, c, m, cells, training, spatial_repeat, shuffle):
    """mask[b][t][q] = list of c slot flags (1 = dropped), drawing randomness in the documented order."""
    pi0 = [1] * m + [0] * (c - m)
    if training:
        cand = torch.randint(c, (B, 1 if spatial_repeat else cells))
    perm = torch.rand(B, T).argsort(1) if shuffle else torch.arange(T).expand(B, T)
    masks = []
    for b in range(B):
        per_b = []
        for t in range(T):
            pt = int(perm[b, t])
            per_q = []
            for q in range(cells):
                if training:
                    i = int(cand[b, 0 if spatial_repeat else q])
                    per_q.append(rot(pi0, (pt + i) % c))  # M_i[p(t)]
                else:
                    per_q.append(rot(pi0, pt % c))  # M_test[p(t)]
            per_b.append(per_q)
        masks.append(per_b)
    return masks


def reference_stcross(block, x, masks, scales, d0, sh=2, sw=2, mlp_input="full"):
    N, L, D = x.shape
    T = block.num_frames
    B = N // T
    P = int(round((L - 1) ** 0.5))
    Wc, c = P // sw, sh * sw
    # Window order: token of each window index j = q*c + slot.
    win_token = {}
    for h in range(P):
        for w in range(P):
            q = (h // sh) * Wc + (w // sw)
            slot = (h % sh) * sw + (w % sw)
            win_token[q * c + slot] = 1 + h * P + w
    # 1. Window masking: CLS + kept tokens in ascending window index.
    kept_tokens = [[None] * T for _ in range(B)]
    Z = [[None] * T for _ in range(B)]
    for b in range(B):
        for t in range(T):
            toks = [win_token[j] for j in range(P * P) if masks[b][t][j // c][j % c] == 0]
            kept_tokens[b][t] = toks
            Z[b][t] = torch.stack([x[b * T + t, 0]] + [x[b * T + t, k] for k in toks])
    # 2.-4. Channel mixing per scale, masked attention, mean over scales.
    A_sum = [[0.0] * T for _ in range(B)]
    for sigma in scales:
        for b in range(B):
            Y = [torch.zeros_like(Z[b][t]) for t in range(T)]
            for t in range(T):
                Y[t][0] = Z[b][t][0]  # CLS unchanged
                Y[t][1:, 2 * d0:] = Z[b][t][1:, 2 * d0:]
            for i in range(sigma):
                di = d0 // 2**i
                for t in range(T):
                    if t >= i + 1:
                        Y[t][1:, 0:di] = Z[b][t - (i + 1)][1:, 0:di]
                    if t <= T - 2 - i:
                        Y[t][1:, 2 * d0 - di:2 * d0] = Z[b][t + (i + 1)][1:, 2 * d0 - di:2 * d0]
            for t in range(T):
                A = Y[t] + ref_attention(block, block.ln_1(Y[t]))
                A_sum[b][t] = A_sum[b][t] + A
    out = torch.empty_like(x)
    for b in range(B):
        for t in range(T):
            n = b * T + t
            A_bar = A_sum[b][t] / len(scales)
            X1 = x[n] + ref_attention(block, block.ln_1(x[n]))  # 5. full attention
            Xpad = X1.clone()  # 6. merge
            for k, tok in enumerate(kept_tokens[b][t]):
                Xpad[tok] = A_bar[1 + k]
            Xpad[0] = A_bar[0]
            mlp_in = X1 if mlp_input == "full" else Xpad
            out[n] = Xpad + block.mlp(block.ln_2(mlp_in))  # 7.
    return out


def make_block(T=6, scales=(1, 2), fold=8, mask_rate=0.5, spatial_repeat=True, shuffle=True, deterministic=False,
               mlp_input="full"):
    torch.manual_seed(0)
    op = TemporalOpConfig("stcross_attend", T, mask_rate=mask_rate, mask_stride=(1, 2, 2), spatial_repeat=spatial_repeat,
                          temporal_shuffle=shuffle, deterministic_test_masks=deterministic, channel_fold=fold,
                          temporal_scale=scales, mlp_input=mlp_input)
    block = STCrossAttentionBlock(WIDTH, HEADS, GRID, op)
    for p in block.parameters():  # non-trivial weights everywhere (LN and biases included)
        torch.nn.init.normal_(p, std=0.2)
    return block


@torch.no_grad()
def test_eval_with_deterministic_masks_matches_reference():
    T, B = 6, 2
    block = make_block(T=T, deterministic=True).eval()
    x = torch.randn(B * T, GRID * GRID + 1, WIDTH)
    masks = ref_masks(B, T, block.c, block.m, block.cells, training=False, spatial_repeat=True, shuffle=False)
    expected = reference_stcross(block, x, masks, (1, 2), d0=WIDTH // 8)
    torch.testing.assert_close(block(x), expected, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("spatial_repeat,mask_rate,mlp_input", [(True, 0.5, "full"), (False, 0.25, "merged")])
@torch.no_grad()
def test_train_with_fixed_seed_matches_reference(spatial_repeat, mask_rate, mlp_input):
    T, B = 6, 2
    block = make_block(T=T, spatial_repeat=spatial_repeat, mask_rate=mask_rate, mlp_input=mlp_input).train()
    x = torch.randn(B * T, GRID * GRID + 1, WIDTH)
    torch.manual_seed(123)
    got = block(x)
    torch.manual_seed(123)
    masks = ref_masks(B, T, block.c, block.m, block.cells, training=True, spatial_repeat=spatial_repeat, shuffle=True)
    expected = reference_stcross(block, x, masks, (1, 2), d0=WIDTH // 8, mlp_input=mlp_input)
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-5)


@torch.no_grad()
def test_eval_with_shuffled_test_masks_matches_reference_and_generator_makes_it_repeatable():
    T, B = 5, 2
    block = make_block(T=T, scales=(1, 3), fold=4).eval()  # original default: test masks shuffled too
    x = torch.randn(B * T, GRID * GRID + 1, WIDTH)
    block.generator = torch.Generator().manual_seed(7)
    got = block(x)
    torch.manual_seed(7)
    masks = ref_masks(B, T, block.c, block.m, block.cells, training=False, spatial_repeat=True, shuffle=True)
    torch.testing.assert_close(got, reference_stcross(block, x, masks, (1, 3), d0=WIDTH // 4), atol=1e-5, rtol=1e-5)


def test_masks_follow_the_rotation_table():
    train, test = stcross_masks(num_frames=8, c=4, m=2)
    # t mod 4 -> dropped slots: 0 {TL,TR}, 1 {TR,BL}, 2 {BL,BR}, 3 {TL,BR}  (docs/method.md, window masking)
    table = {0: [1, 1, 0, 0], 1: [0, 1, 1, 0], 2: [0, 0, 1, 1], 3: [1, 0, 0, 1]}
    for t in range(8):
        assert test[t].int().tolist() == table[t % 4]
        for i in range(4):
            assert train[i, t].int().tolist() == table[(t + i) % 4]


def test_masks_are_buffers_outside_the_state_dict():
    block = make_block()
    buffers = dict(block.named_buffers())
    assert {"train_masks", "test_mask", "train_kept", "test_kept", "window_tokens"} <= set(buffers)
    assert not any(k in block.state_dict() for k in buffers)
    assert sum(p.numel() for p in block.parameters()) == 12 * WIDTH * WIDTH + 13 * WIDTH  # a CLIP block, nothing new


def test_masked_branch_keeps_half_the_tokens_per_frame():
    block = make_block(T=8).train()
    idx = block.kept_token_index(batch=3)
    assert idx.shape == (3 * 8, 1 + GRID * GRID // 2)
    assert (idx[:, 0] == 0).all()
    # every frame keeps distinct tokens, and exactly 2 of each 2x2 window
    for row in idx[:, 1:]:
        assert len(set(row.tolist())) == row.numel()
        cells = [((int(tok) - 1) // GRID // 2) * 2 + ((int(tok) - 1) % GRID) // 2 for tok in row]
        assert sorted(cells) == sorted(list(range(4)) * 2)


@pytest.mark.parametrize(
    "kwargs,width,grid,needle",
    [
        (dict(type="stcross_attn"), 64, 4, "valid: None, stcross_attend"),
        (dict(type="stcross_attend"), 768, 7, "divide 7"),
        (dict(type="stcross_attend", mask_stride=(2, 2, 2)), 64, 4, "MODEL.MASK_STRIDE [1, 2, 2]"),
        (dict(type="stcross_attend", channel_fold=128), 64, 4, "2 <= CHANNEL_FOLD <= 64"),
        (dict(type="stcross_attend", channel_fold=32, temporal_scale=(1, 2, 3)), 64, 4, "use scales <= 2"),
        (dict(type="stcross_attend", mask_rate=1.0), 64, 4, "MASK_RATE < 1"),
    ],
)
def test_impossible_settings_are_refused_with_the_values_that_work(kwargs, width, grid, needle):
    with pytest.raises(TemporalOpError, match=None) as e:
        check_temporal_op(TemporalOpConfig(**kwargs), width, grid)
    assert needle in str(e.value)


@pytest.mark.parametrize("stride", [(0, 0, 0), (2, 0, 0), (2, 3, 3)])
def test_a_mask_stride_is_never_answered_with_a_suggestion_that_is_itself_refused(stride):
    with pytest.raises(TemporalOpError) as e:
        check_temporal_op(TemporalOpConfig(type="stcross_attend", mask_stride=stride), 64, 4)
    assert "use MODEL.MASK_STRIDE" not in str(e.value)


def test_not_invariant_to_frame_order_in_eval():
    T = 4
    block = make_block(T=T, deterministic=True).eval()
    x = torch.randn(T, GRID * GRID + 1, WIDTH)
    with torch.no_grad():
        out = block(x)
        out_perm = block(x[[1, 0, 3, 2]])[[1, 0, 3, 2]]
    assert not torch.allclose(out, out_perm, atol=1e-4)


def test_gradients_flow_through_gather_and_merge():
    block = make_block(T=4).train()
    x = torch.randn(2 * 4, GRID * GRID + 1, WIDTH, requires_grad=True)
    block(x).square().mean().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in block.parameters())
