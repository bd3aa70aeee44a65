"""``Janus-Execution-v0``: liquidate a block of shares within a deadline, scored by implementation shortfall."""

from __future__ import annotations

import math
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from janus_env.actions import continuous_fraction, discrete_index
from janus_env.checks import NEED_RESET, check_choice, check_int, check_number
from janus_env.lob_env import info_from_out, observation_space, split_obs
from janus_env.regimes import SCENARIOS, scenario_config
from janus_env.simulator import (
    O_EXEC_PRICE,
    O_EXEC_QTY,
    O_FEES,
    O_MID,
    O_POSITION,
    O_TERMINATED,
    SimulatedMarket,
    check_whole_shares,
)

_BAD_SHARES = "Expected `shares` to be a positive multiple of `lot`, got {!r} (lot={!r})"
_DERIVED = ("Janus-Execution-v0 sets the market's `{}` itself ({}); set `{}` instead, got {}={!r}")
_DERIVED_FROM = {"episode_steps": ("horizon + 1", "horizon"), "max_position": ("shares", "shares")}



def almgren_chriss_kappa(risk_aversion: float, sigma: float, eta: float, tau: float = 1.0) -> float:
    """Urgency κ of the Almgren–Chriss optimal schedule.

    ``cosh(κτ) = 1 + λσ²τ² / (2η)`` (Almgren & Chriss, 2000, eq. 19, with the
    permanent-impact correction folded into η). λ = risk aversion, σ = per-step
    volatility in currency, η = temporary impact coefficient.
    """
    for name, value in (("risk_aversion", risk_aversion), ("sigma", sigma), ("eta", eta), ("tau", tau)):
        check_number(name, value, low=0, low_open=name in ("eta", "tau"))
    return math.acosh(1.0 + risk_aversion * sigma * sigma * tau * tau / (2.0 * eta)) / tau


def almgren_chriss_schedule(shares: float, horizon: int, kappa: float) -> np.ndarray:
    """Holdings ``x_t = X·sinh(κ(T−t))/sinh(κT)`` for ``t = 0..T`` (Almgren & Chriss, 2000).

    ``κ → 0`` gives the linear (TWAP) schedule ``x_t = X·(1 − t/T)``.
    """
    check_int("horizon", horizon, low=1)
    check_number("kappa", kappa, low=0)
    t = np.arange(int(horizon) + 1, dtype=np.float64)
    if kappa * horizon < 1e-8:
        return shares * (1.0 - t / horizon)
    return shares * np.sinh(kappa * (horizon - t)) / np.sinh(kappa * horizon)


class JanusExecutionEnv(gym.Env):
    """Sell ``shares`` within ``horizon`` steps on the simulated book; reward is minus implementation shortfall.

    ## Description

    The agent starts holding ``shares`` (bought at the arrival mid) and must be
    flat at the deadline. Each step it sells a fraction of what remains with a
    market order that walks the book; whatever remains after the last step is
    sold at market. The market is the same simulator as ``Janus-LOB-v0``.

    ## Action Space

    | `action_type` | space | meaning |
    | --- | --- | --- |
    | `"continuous"` (default) | `Box(-1, 1, (1,))` | sell `(a + 1) / 2` of the remaining shares now (−1 none, 1 all) |
    | `"discrete"` | `Discrete(n_bins)` | sell `i / (n_bins − 1)` of the remaining shares |

    Out-of-space actions raise `InvalidActionError`; nothing is clipped.

    ## Observation Space

    The `Janus-LOB-v0` `Dict` (see `JanusLOBEnv`), with `max_position = shares`
    so `account[0]` is the fraction still to sell and `account[4]` the fraction
    of time left.

    ## Rewards

    Per step, minus the implementation shortfall of the shares sold, in basis
    points of the arrival value: `−(q·(p_arrival − p_exec) + fees) / (X·p_arrival) · 1e4`.
    The episode's total is minus the whole order's shortfall (Perold, 1988).

    ## Starting State

    As `Janus-LOB-v0`, then the agent holds `shares`.

    ## Episode End

    Terminated when everything is sold (at the latest at the deadline, when the
    rest is sold at market), or on ruin (equity ≤ 0, `info["ruin"]`). Never truncated.

    ## Info

    The `Janus-LOB-v0` keys (`exec_qty`, `exec_price`, `fees`, `rejected_qty`,
    `rejected_reason`, `position`, `cash`, `equity`, `ruin`, ...; a sale the book
    cannot absorb shows as `rejected_qty` with reason `"book_exhausted"`) plus
    `remaining` (shares left to sell), `shortfall` (currency) and `arrival_price`.

    ## Arguments

    | Argument | Default | Meaning |
    | --- | --- | --- |
    | `shares` | 5000 | block size X (a multiple of `lot`) |
    | `horizon` | 100 | steps T |
    | `scenario` | `"ou"` | any simulated scenario of `Janus-LOB-v0` |
    | `action_type` | `"continuous"` | `"continuous"` or `"discrete"` |
    | `n_bins` | 11 | discrete action count |
    | `**market` | | `MarketConfig` overrides but `episode_steps` (= `horizon` + 1), `max_position` (= `shares`) |

    ```python
    env = gym.make("Janus-Execution-v0", shares=5000, horizon=100)
    ```

    ## Version History

    * v0: initial release.
    """

    metadata = {"render_modes": ["ansi"], "render_fps": 10}

    def __init__(
        self,
        shares: int = 5000,
        horizon: int = 100,
        scenario: str = "ou",
        action_type: str = "continuous",
        n_bins: int = 11,
        seed: int | None = None,
        render_mode: str | None = None,
        **market: Any,
    ) -> None:
        for name, (rule, instead) in _DERIVED_FROM.items():
            if name in market:
                raise ValueError(_DERIVED.format(name, f"{name} = {rule}", instead, name, market[name]))
        lot = market.get("lot", 100)
        check_int("shares", shares, low=1)
        check_int("horizon", horizon, low=1)
        check_choice("scenario", scenario, tuple(sorted(SCENARIOS)))  # simulated only: no 'historical' here
        config = scenario_config(scenario, max_position=int(shares), episode_steps=int(horizon) + 1, **market)
        check_whole_shares(config)  # the simulated book trades whole shares
        if shares % config.lot:
            raise ValueError(_BAD_SHARES.format(shares, lot))
        check_choice("action_type", action_type, ("continuous", "discrete"))
        if render_mode is not None:
            check_choice("render_mode", render_mode, self.metadata["render_modes"])
        self.shares = int(shares)
        self.horizon = int(horizon)
        self.config = config
        self.action_type = action_type
        self.render_mode = render_mode
        if action_type == "discrete":
            check_int("n_bins", n_bins, low=2)
            self.action_space = spaces.Discrete(int(n_bins))
        else:
            # symmetric, as SB3 recommends for continuous actions; a = 2·fraction − 1
            self.action_space = spaces.Box(-1.0, 1.0, shape=(1,), dtype=np.float32)
        self.observation_space = observation_space(self.config.window, self.config.n_levels)
        self._market = SimulatedMarket(self.config)
        self._default_seed = seed
        self._needs_reset = True
        self._arrival = 0.0
        self._t = 0

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        if seed is None and self._default_seed is not None:
            seed, self._default_seed = self._default_seed, None
        super().reset(seed=seed)
        market = self._market
        market.reset(self.np_random)
        market.endow(self.shares)  # the block at the arrival mid: cash goes down by its value, equity unchanged
        self._arrival = float(market.out[O_MID])
        self._t = 0
        self._needs_reset = False
        info = info_from_out(market.out.tolist())
        info["remaining"] = self.shares
        return self._observation(), info

    def _observation(self) -> dict[str, np.ndarray]:
        return split_obs(self._market.obs.copy(), self.config.window, self.config.n_levels)

    def _fraction(self, action: Any) -> float:
        if self.action_type == "discrete":
            return discrete_index(action, self.action_space) / (self.action_space.n - 1)
        return 0.5 * (continuous_fraction(action, self.action_space) + 1.0)

    def step(self, action: Any):
        if self._needs_reset:
            raise RuntimeError(NEED_RESET)
        fraction = self._fraction(action)
        market = self._market
        remaining = int(market.out[O_POSITION])
        self._t += 1
        last = self._t >= self.horizon
        qty = remaining if last else int(round(fraction * remaining))
        market.step(-qty)
        out = market.out.tolist()
        sold = -out[O_EXEC_QTY]
        shortfall = sold * (self._arrival - out[O_EXEC_PRICE]) + out[O_FEES] if sold > 0 else 0.0
        reward = -shortfall / (self.shares * self._arrival) * 1e4
        left = int(out[O_POSITION])
        # at the deadline the episode ends even if the book could not absorb everything (`remaining` > 0)
        terminated = left <= 0 or last or out[O_TERMINATED] != 0.0
        truncated = False
        self._needs_reset = terminated
        info = info_from_out(out)
        info["remaining"] = left
        info["shortfall"] = shortfall
        info["arrival_price"] = self._arrival
        return self._observation(), reward, terminated, truncated, info

    def render(self) -> str | None:
        if self.render_mode != "ansi":
            return None
        from janus_env.render import ansi_ladder

        return ansi_ladder(self._market.l2(self.config.n_levels), info_from_out(self._market.out.tolist()))
