"""Pre-norm transformer encoder for short token sequences (ViViT's spatial and temporal stacks).

Each layer is the pre-norm ("norm_first") encoder layer of ViT
(Dosovitskiy et al. 2021; Xiong et al. 2020)::

    x = x + Dropout(MHSA(LN₁(x)))
    x = x + Dropout(W₂·Dropout(GELU(W₁·LN₂(x))))

and the stack ends with a final LayerNorm. It computes what
``nn.TransformerEncoder(nn.TransformerEncoderLayer(..., batch_first=True,
norm_first=True, activation="gelu"), depth, norm=LayerNorm)`` computes, with the
same parameter names, so state dicts of either load into the other. It exists
for speed on CPU: ``nn.MultiheadAttention`` transposes batch-first input to
sequence-first and splits the fused projection with copies, which for ViViT's
thousands of 17-token sequences cost as much as the attention itself; here the
fused QKV projection is viewed per head and handed to
``F.scaled_dot_product_attention`` without a transpose of the tokens.
"""

from __future__ import annotations

import torch as th
from torch import nn
from torch.nn import functional as F


class SelfAttention(nn.Module):
    """Multi-head self-attention with ``nn.MultiheadAttention``'s parameters and initialisation.

    ``in_proj_weight (3d, d)`` / ``in_proj_bias (3d,)`` hold ``W_q; W_k; W_v``
    (Xavier-uniform, zero bias) and ``out_proj`` is ``W_o``.
    """

    def __init__(self, d_model: int, n_heads: int, dropout: float = 0.0) -> None:
        super().__init__()
        self.n_heads = n_heads
        self.d_head = d_model // n_heads
        self.dropout = dropout
        self.in_proj_weight = nn.Parameter(th.empty(3 * d_model, d_model))
        self.in_proj_bias = nn.Parameter(th.zeros(3 * d_model))
        self.out_proj = nn.Linear(d_model, d_model)
        nn.init.xavier_uniform_(self.in_proj_weight)
        nn.init.zeros_(self.out_proj.bias)

    def forward(self, x: th.Tensor) -> th.Tensor:
        """``softmax(Q Kᵀ/√d_h) V`` per head, concatenated and projected; ``x`` is ``(B, T, d)``."""
        batch, n_tokens, d_model = x.shape
        qkv = F.linear(x, self.in_proj_weight, self.in_proj_bias)
        q, k, v = qkv.reshape(batch, n_tokens, 3, self.n_heads, self.d_head).permute(2, 0, 3, 1, 4).unbind(0)
        drop = self.dropout if self.training else 0.0
        mixed = F.scaled_dot_product_attention(q, k, v, dropout_p=drop)  # (B, h, T, d_h)
        return self.out_proj(mixed.transpose(1, 2).reshape(batch, n_tokens, d_model))


class EncoderLayer(nn.Module):
    """One pre-norm encoder layer (see the module docstring)."""

    def __init__(self, d_model: int, n_heads: int, dim_feedforward: int, dropout: float = 0.0) -> None:
        super().__init__()
        self.self_attn = SelfAttention(d_model, n_heads, dropout)
        self.linear1 = nn.Linear(d_model, dim_feedforward)
        self.linear2 = nn.Linear(dim_feedforward, d_model)
        self.norm1 = nn.LayerNorm(d_model)
        self.norm2 = nn.LayerNorm(d_model)
        self.dropout = nn.Dropout(dropout)
        self.dropout1 = nn.Dropout(dropout)
        self.dropout2 = nn.Dropout(dropout)
        self.has_dropout = dropout > 0.0
        """False: the three dropouts are the identity and are not called (three module calls fewer per layer)."""

    def forward(self, x: th.Tensor) -> th.Tensor:
        """``(B, T, d)`` → ``(B, T, d)``."""
        if not self.has_dropout:
            x = x + self.self_attn(self.norm1(x))
            return x + self.linear2(F.gelu(self.linear1(self.norm2(x))))
        x = x + self.dropout1(self.self_attn(self.norm1(x)))
        return x + self.dropout2(self.linear2(self.dropout(F.gelu(self.linear1(self.norm2(x))))))


class Encoder(nn.Module):
    """``depth`` pre-norm layers and a final LayerNorm, batch-first ``(B, T, d)``.

    Args:
        d_model: token width.
        n_heads: attention heads; must divide ``d_model``.
        depth: layers.
        dim_feedforward: width of the feed-forward block.
        dropout: dropout on attention weights and both residual branches.
    """

    def __init__(self, d_model: int, n_heads: int, depth: int, dim_feedforward: int, dropout: float = 0.0) -> None:
        super().__init__()
        self.layers = nn.ModuleList(EncoderLayer(d_model, n_heads, dim_feedforward, dropout) for _ in range(depth))
        self.norm = nn.LayerNorm(d_model)

    def forward(self, x: th.Tensor) -> th.Tensor:
        """Encode ``x (B, T, d)``."""
        for layer in self.layers:
            x = layer(x)
        return self.norm(x)
