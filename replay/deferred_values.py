"""Rollout values from one batched critic pass at the rollout's end, instead of one small pass per step.

PPO stores ``V(s_t)`` with every row of its rollout and needs them only when it computes returns and
advantages (GAE, Schulman et al. 2016, "High-dimensional continuous control using generalized advantage
estimation", ICLR) after the last step. SB3 computes each inside that step's policy call, at the batch size
of the vectorized env (4 rows for ``janus-ppo``), where a features extractor costs per tensor op rather than
per row: ``janus-ppo`` trained ≈ 8% faster without its critic's per-step pass (``benchmarks/README.md``). The critic's
parameters do not change during a rollout and no action depends on ``V``, so the same values come from one
pass over the stored observations just before :meth:`compute_returns_and_advantage` — the values SB3 would
have stored, up to the last bits of the float arithmetic at another batch size.

:class:`DeferredValuesMixin` goes before an SB3 rollout buffer class (``replay.rollout``'s buffers have it);
the algorithm calls :meth:`~DeferredValuesMixin.defer_values` with the critic before the rollout and
``None`` after it, and stores NaN as each step's value meanwhile (``agents.basal_ganglia.ppo.JanusPPO``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

ValuesOf = Callable[[Any], np.ndarray]
"""``values_of(observations) -> (N,)`` critic values of ``N`` observations (an array, or a dict of arrays)."""

CHUNK = 4096
"""Rows per critic pass: bounds the pass's activations on long rollouts (``n_steps · n_envs`` rows)."""

_UNFILLED = "The rollout's values are not all finite after the critic's pass ({} of {}): {}"

__all__ = ["CHUNK", "DeferredValuesMixin", "ValuesOf"]


class DeferredValuesMixin:
    """Fills a full rollout buffer's ``values`` from one batched critic pass before returns and advantages."""

    observations: Any
    values: np.ndarray
    buffer_size: int
    n_envs: int

    _values_of: ValuesOf | None = None

    def defer_values(self, values_of: ValuesOf | None) -> None:
        """Compute the values of the next rollout with ``values_of`` at its end (None: stored per step, as SB3)."""
        self._values_of = values_of

    def _stored_rows(self, start: int, stop: int) -> Any:
        """Rows ``start:stop`` of the observations as ``(buffer_size · n_envs, …)``, in ``values``' order."""
        def rows(array: np.ndarray) -> np.ndarray:
            return array.reshape(-1, *array.shape[2:])[start:stop]

        if isinstance(self.observations, dict):
            return {k: rows(v) for k, v in self.observations.items()}
        return rows(self.observations)

    def compute_returns_and_advantage(self, last_values: Any, dones: np.ndarray) -> None:
        """SB3's returns and GAE advantages, on values computed now from the stored observations when deferred.

        Raises:
            ValueError: the critic returned a non-finite value (NaN would otherwise train silently).
        """
        if self._values_of is not None:
            n = self.buffer_size * self.n_envs
            parts = [np.asarray(self._values_of(self._stored_rows(start, start + CHUNK)), dtype=np.float32).reshape(-1)
                     for start in range(0, n, CHUNK)]
            values = np.concatenate(parts).reshape(self.buffer_size, self.n_envs)
            bad = ~np.isfinite(values)
            if bad.any():
                raise ValueError(_UNFILLED.format(int(bad.sum()), values.size, values[bad][:5]))
            self.values[...] = values
        super().compute_returns_and_advantage(last_values, dones)  # type: ignore[misc]
