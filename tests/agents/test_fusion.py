"""Gated cross-attention: the DESIGN.md formulas, gate inputs, optional text stage, errors."""

from __future__ import annotations

import re

import pytest
import torch as th
from torch import nn

from agents import fusion as fusion_module
from agents.fusion import GATE_KEYS, CrossAttention, GatedCrossAttention, ModalityGate
from janus_env.checks import BAD_VALUE


def tokens(batch: int, n: int, d: int = 8, seed: int = 0) -> th.Tensor:
    return th.randn(batch, n, d, generator=th.Generator().manual_seed(seed))


def randomize_gates(module: nn.Module, seed: int = 1) -> None:
    generator = th.Generator().manual_seed(seed)
    with th.no_grad():
        for gate in module.modules():
            if isinstance(gate, ModalityGate):
                gate.weight.copy_(th.randn(gate.weight.shape, generator=generator))
                gate.bias.fill_(0.3)


def test_cross_attention_equals_multihead_attention_on_normalized_inputs() -> None:
    th.manual_seed(0)
    attn = CrossAttention(8, n_heads=2)
    mha = nn.MultiheadAttention(8, 2, batch_first=True)
    with th.no_grad():
        mha.in_proj_weight.copy_(th.cat((attn.q.weight, attn.kv.weight)))
        mha.in_proj_bias.copy_(th.cat((attn.q.bias, attn.kv.bias)))
        mha.out_proj.weight.copy_(attn.out.weight)
        mha.out_proj.bias.copy_(attn.out.bias)
    query, context = tokens(3, 5, seed=1), tokens(3, 7, seed=2)
    q, kv = attn.norm_q(query), attn.norm_kv(context)
    expected, _ = mha(q, kv, kv, need_weights=False)
    th.testing.assert_close(attn(query, context), expected, atol=1e-5, rtol=1e-5)


def test_stage_one_formula_and_gate_inputs() -> None:
    th.manual_seed(0)
    fusion = GatedCrossAttention(8, n_heads=2)
    randomize_gates(fusion)
    h_ts, h_vis = tokens(4, 6, seed=1), tokens(4, 3, seed=2)
    h2, gates = fusion(h_ts, h_vis)
    gate = fusion.gate_vis
    pooled = th.cat((gate.norm_m(h_ts.mean(1)), gate.norm_n(h_vis.mean(1))), dim=-1)  # [H_m; H_n]
    lam = th.sigmoid(pooled @ gate.weight.T + gate.bias).squeeze(-1)
    th.testing.assert_close(gates["vis"], lam)
    th.testing.assert_close(h2, h_ts + lam[:, None, None] * fusion.attn_vis(h_ts, h_vis))
    assert gates["vis"].shape == (4,) and len(set(gates["vis"].tolist())) > 1  # one gate per sample
    assert set(gates) == set(GATE_KEYS)


def test_stage_two_formula_with_text() -> None:
    th.manual_seed(0)
    fusion = GatedCrossAttention(8, n_heads=2, use_text=True)
    randomize_gates(fusion)
    h_ts, h_vis, h_text = tokens(2, 6, seed=1), tokens(2, 3, seed=2), tokens(2, 4, seed=3)
    h2, gates = fusion(h_ts, h_vis, h_text)
    h1, _ = fusion(h_ts, h_vis)
    gate = fusion.gate_text
    pooled = th.cat((gate.norm_m(h1.mean(1)), gate.norm_n(h_text.mean(1))), dim=-1)
    lam_text = th.sigmoid(pooled @ gate.weight.T + gate.bias).squeeze(-1)
    th.testing.assert_close(gates["text"], lam_text)
    th.testing.assert_close(h2, h1 + lam_text[:, None, None] * fusion.attn_text(h1, h_text))


def test_without_text_stage_two_is_skipped_and_reported_as_zero() -> None:
    th.manual_seed(0)
    fusion = GatedCrossAttention(8, n_heads=2, use_text=True)
    h_ts, h_vis = tokens(2, 6, seed=1), tokens(2, 3, seed=2)
    h2, gates = fusion(h_ts, h_vis)
    th.testing.assert_close(h2, h_ts + gates["vis"][:, None, None] * fusion.attn_vis(h_ts, h_vis))
    assert gates["text"].tolist() == [0.0, 0.0]


def test_without_vision_stage_one_is_skipped_and_reported_as_zero() -> None:
    th.manual_seed(0)
    fusion = GatedCrossAttention(8, n_heads=2, use_text=True, use_vision=False)
    randomize_gates(fusion)
    assert not hasattr(fusion, "attn_vis") and not hasattr(fusion, "gate_vis")  # no parameters left to train
    h_ts, h_text = tokens(2, 6, seed=1), tokens(2, 4, seed=3)
    h1, gates = fusion(h_ts, None)
    th.testing.assert_close(h1, h_ts, atol=0, rtol=0)
    assert gates["vis"].tolist() == [0.0, 0.0] and gates["text"].tolist() == [0.0, 0.0]
    h2, gates = fusion(h_ts, None, h_text)  # the text stage attends from H1 = H_ts
    gate = fusion.gate_text
    pooled = th.cat((gate.norm_m(h_ts.mean(1)), gate.norm_n(h_text.mean(1))), dim=-1)
    lam_text = th.sigmoid(pooled @ gate.weight.T + gate.bias).squeeze(-1)
    th.testing.assert_close(gates["text"], lam_text)
    th.testing.assert_close(h2, h_ts + lam_text[:, None, None] * fusion.attn_text(h_ts, h_text))
    assert gates["vis"].tolist() == [0.0, 0.0]


def test_vision_stream_and_stage_must_agree() -> None:
    with pytest.raises(ValueError, match=re.escape(fusion_module._NO_VISION_STAGE)):
        GatedCrossAttention(8, use_vision=False)(tokens(2, 5), tokens(2, 3))
    with pytest.raises(ValueError, match=re.escape(fusion_module._NEEDS_VISION)):
        GatedCrossAttention(8)(tokens(2, 5), None)
    with pytest.raises(TypeError, match="`use_vision` to be a bool, got 'no'"):
        GatedCrossAttention(8, use_vision="no")  # type: ignore[arg-type]


def test_gates_start_at_one_half_and_in_unit_interval() -> None:
    fusion = GatedCrossAttention(8, use_text=True)
    h2, gates = fusion(tokens(3, 5), tokens(3, 2), tokens(3, 4))
    assert gates["vis"].tolist() == [0.5] * 3 and gates["text"].tolist() == [0.5] * 3
    closed = GatedCrossAttention(8, gate_bias=-4.0)
    _, closed_gates = closed(tokens(3, 5), tokens(3, 2))
    th.testing.assert_close(closed_gates["vis"], th.full((3,), float(th.sigmoid(th.tensor(-4.0)))))


def test_gradients_reach_gates_and_both_streams() -> None:
    th.manual_seed(0)
    fusion = GatedCrossAttention(8, use_text=True)
    h_ts, h_vis, h_text = (tokens(2, n, seed=s).requires_grad_(True) for s, n in ((1, 5), (2, 3), (3, 4)))
    h2, gates = fusion(h_ts, h_vis, h_text)
    (h2.square().sum() + gates["vis"].sum()).backward()
    for t in (h_ts, h_vis, h_text):
        assert t.grad is not None and t.grad.abs().sum() > 0
    for gate in (fusion.gate_vis, fusion.gate_text):
        assert gate.weight.grad.abs().sum() > 0 and gate.bias.grad.abs().sum() > 0


def test_gate_survives_linear_reinitialization() -> None:
    """SB3's ortho_init re-initialises every nn.Linear; the gate must keep λ₀ = sigmoid(b₀)."""
    fusion = GatedCrossAttention(8)
    for module in fusion.modules():
        if isinstance(module, nn.Linear):
            nn.init.orthogonal_(module.weight, gain=2**0.5)
    _, gates = fusion(tokens(2, 5), tokens(2, 3))
    assert gates["vis"].tolist() == [0.5, 0.5]


def test_bad_text_without_text_stage() -> None:
    fusion = GatedCrossAttention(8)
    with pytest.raises(ValueError, match=re.escape(fusion_module._NO_TEXT_STAGE)):
        fusion(tokens(2, 5), tokens(2, 3), tokens(2, 4))


def test_bad_token_shapes() -> None:
    fusion = GatedCrossAttention(8, use_text=True)
    with pytest.raises(ValueError, match=re.escape(fusion_module._BAD_TOKENS.format("h_vis", 8, (2, 3, 4)))):
        fusion(tokens(2, 5), tokens(2, 3, d=4))
    with pytest.raises(ValueError, match=re.escape(fusion_module._BAD_TOKENS.format("h_ts", 8, (2, 8)))):
        fusion(th.zeros(2, 8), tokens(2, 3))
    with pytest.raises(ValueError, match=re.escape(fusion_module._BAD_TOKENS.format("h_text", 8, (2, 4, 6)))):
        fusion(tokens(2, 5), tokens(2, 3), tokens(2, 4, d=6))


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ((8, 3), fusion_module._BAD_HEADS.format(8, 3)),
        ((0, 1), BAD_VALUE.format(name="d_model", expected="an int >= 1", value=0)),
        ((8, 0), BAD_VALUE.format(name="n_heads", expected="an int >= 1", value=0)),
    ],
)
def test_bad_sizes(args: tuple[int, int], message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        GatedCrossAttention(*args)


@pytest.mark.parametrize(
    ("args", "message"),
    [  # ValueError before
        ((8.0, 2), BAD_VALUE.format(name="d_model", expected="an int >= 1", value=8.0)),
        ((8, True), BAD_VALUE.format(name="n_heads", expected="an int >= 1", value=True)),
    ],
)
def test_wrong_size_types(args: tuple[object, object], message: str) -> None:
    with pytest.raises(TypeError, match=re.escape(message)):
        GatedCrossAttention(*args)
