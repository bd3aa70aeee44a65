"""``janus_market_v0``: market makers, informed, momentum, noise and JANUS agents on one shared book.

| | |
| --- | --- |
| Import | `from janus_env.parallel_env import JanusParallelEnv` (or `envs_registry.make_parallel_env`) |
| Actions | Discrete (takers), MultiDiscrete (market makers) |
| Parallel API | Yes (`make_aec_env` / `parallel_to_aec` for AEC) |
| Manual Control | No |
| Agents | `agents = ['market_maker_0', 'informed_0', 'momentum_0', 'noise_0', 'janus_0']` by default |
| Agents | any count per role, `roles={"market_maker": 1, "informed": 1, "momentum": 1, "noise": 2, "janus": 2}` |
| Action Shape | takers `()`; market makers `(4,)` |
| Action Values | takers `Discrete(3)` HOLD/BUY/SELL of `lot` (`"sized"`: `Discrete(2k+1)`, `"continuous"`: `Box(-1, 1, (1,))`); makers `MultiDiscrete([K, K, S+1, S+1])` = (bid offset, ask offset, bid lots, ask lots), default `[5, 5, 4, 4]` |
| Observation Shape | `Dict` of Janus-LOB-v0: `prices (W,)`, `volumes (W,)`, `book (L, 4)`, `account (5,)`, `market (4,)`; informed agents also `signal (1,)` |
| Observation Values | float32, normalized as in `JanusLOBEnv`; each agent's `account` is its own |

All agents trade through the ONE numba matching engine of ``book.py``; the
whole step (every agent's orders in a random order, the background flow, the
features and every agent's observation) is one numba call
(``_parallel_kernels.parallel_step``).
"""

from __future__ import annotations

from operator import itemgetter
from typing import Any

import numpy as np
from gymnasium import logger, spaces
from gymnasium.utils import seeding
from pettingzoo import ParallelEnv

from janus_env._parallel_kernels import (
    EP_AGENT_BASE,
    EP_BACKGROUND,
    EP_INVENTORY_PENALTY,
    EP_MAKER_FEE_BPS,
    EP_SIGNAL_NOISE_BPS,
    N_AG,
    N_AGENT_OUT,
    N_EP,
    O_ASK_PRICE,
    O_ASK_SIZE,
    O_BID_PRICE,
    O_BID_SIZE,
    O_BUY_NOTIONAL,
    O_BUY_QTY,
    O_INVENTORY_PENALTY,
    O_ORDER_RANK,
    O_PASSIVE_QTY,
    O_SELL_NOTIONAL,
    O_SELL_QTY,
    ROLE_INFORMED,
    ROLE_JANUS,
    ROLE_MARKET_MAKER,
    ROLE_MOMENTUM,
    ROLE_NOISE,
    STATUS_HALTED,
    STATUS_LIVE,
    STATUS_REMOVED,
    cancel_quotes,
    parallel_reset,
    parallel_step,
)
from janus_env.accounting import REASON_STRINGS
from janus_env.actions import (
    ACTION_TYPES,
    InvalidActionError,
    continuous_fraction,
    discrete_index,
    make_action_space,
    sized_quantity,
)
from janus_env.book import (
    N_FILL_COLS,
    N_LEVEL_COLS,
    N_LOG_COLS,
    N_ORDER_COLS,
    N_STATE,
    O_AGENT,
    O_ID,
    O_PRICE,
    O_QTY,
    O_SIDE,
    S_FILL_OVERFLOW,
    snapshot,
)
from janus_env.checks import NEED_RESET, check_bool, check_choice, check_int, check_number
from janus_env.config import N_AGENTS
from janus_env.flow import I_SNAPSHOT
from janus_env.lob_env import market_config, observation_space, split_obs
from janus_env.render import ansi_ladder
from janus_env.rng import seed_state
from janus_env.simulator import (
    O_CASH,
    O_DRAWDOWN,
    O_EQUITY,
    O_EXEC_PRICE,
    O_EXEC_QTY,
    O_FEES,
    O_MID,
    O_N_FILLS,
    O_PNL,
    O_POSITION,
    O_REJECT_REASON,
    O_REJECTED,
    O_REWARD,
    O_SLIPPAGE_BPS,
    O_SPREAD,
    O_STEP,
    O_TERMINATED,
    O_VOLATILITY,
    O_VOLUME,
    O_VPIN,
    check_whole_shares,
    f_size,
    obs_size,
    ticks_to_currency,
)

ROLES: tuple[str, ...] = ("market_maker", "informed", "momentum", "noise", "janus")
"""Role names in the order their agents appear in ``possible_agents``."""
TAKER_ROLES: tuple[str, ...] = ("informed", "momentum", "noise", "janus")
"""Roles that trade market orders (the same action space); ``market_maker`` quotes instead."""
DEFAULT_ROLES: dict[str, int] = {"market_maker": 1, "informed": 1, "momentum": 1, "noise": 1, "janus": 1}
ROLE_CODES: dict[str, int] = {
    "market_maker": ROLE_MARKET_MAKER,
    "informed": ROLE_INFORMED,
    "momentum": ROLE_MOMENTUM,
    "noise": ROLE_NOISE,
    "janus": ROLE_JANUS,
}
BANKRUPTCY_MODES: tuple[str, ...] = ("remove", "end_episode")

_FAST_INTS = (int, np.int64, np.int32)
_BAD_ROLES_TYPE = "Expected `roles` to be a dict of role name -> agent count, got {!r}"
_BAD_ROLE = "Unknown role {!r}; expected some of {}"

_NO_AGENTS = "Expected at least one agent in `roles`, got {!r}"
_BAD_SCENARIO = "JanusParallelEnv simulates its market; scenario='historical' is not supported"
_BAD_ACTIONS = "Expected `actions` to be a dict of agent name -> action, got {!r}"
_UNKNOWN_AGENT = "Unknown agent {!r}; expected one of {}"
_NOT_LIVE = "Agent {!r} is not live in this episode (finished or removed); live agents: {}"
_BAD_REASON = "Expected `reason` to be a str, got {!r}"
_MAKER_TYPE = "Expected an integer array of shape (4,) for {}, got {!r}"
_FILL_OVERFLOW = "The step's fill table overflowed ({} fills lost); raise `capacity`"


_TAKER_INFO_COLUMNS = {
    "exec_qty": O_EXEC_QTY,
    "exec_price": O_EXEC_PRICE,
    "slippage_bps": O_SLIPPAGE_BPS,
    "fees": O_FEES,
    "rejected_qty": O_REJECTED,
    "passive_qty": O_PASSIVE_QTY,
    "buy_qty": O_BUY_QTY,
    "buy_notional": O_BUY_NOTIONAL,
    "sell_qty": O_SELL_QTY,
    "sell_notional": O_SELL_NOTIONAL,
    "position": O_POSITION,
    "cash": O_CASH,
    "equity": O_EQUITY,
    "pnl": O_PNL,
    "drawdown": O_DRAWDOWN,
}
_MAKER_INFO_COLUMNS = {
    **_TAKER_INFO_COLUMNS,
    "bid_price": O_BID_PRICE,
    "bid_size": O_BID_SIZE,
    "ask_price": O_ASK_PRICE,
    "ask_size": O_ASK_SIZE,
    "inventory_penalty": O_INVENTORY_PENALTY,
}
_TAKER_INFO = (tuple(_TAKER_INFO_COLUMNS), itemgetter(*_TAKER_INFO_COLUMNS.values()))
_MAKER_INFO = (tuple(_MAKER_INFO_COLUMNS), itemgetter(*_MAKER_INFO_COLUMNS.values()))


def validate_roles(roles: object) -> dict[str, int]:
    """Check a ``roles`` mapping and return it in ``ROLES`` order (zero counts dropped).

    Raises:
        TypeError: not a dict, or a count that is not an int.
        ValueError: an unknown role, a count < 0, or no agent at all.
    """
    if not isinstance(roles, dict):
        raise TypeError(_BAD_ROLES_TYPE.format(roles))
    for name, count in roles.items():
        if name not in ROLE_CODES:
            raise ValueError(_BAD_ROLE.format(name, list(ROLES)))
        check_int(f"roles[{name!r}]", count, low=0)
    ordered = {name: int(roles[name]) for name in ROLES if roles.get(name, 0) > 0}
    if not ordered:
        raise ValueError(_NO_AGENTS.format(roles))
    return ordered


class JanusParallelEnv(ParallelEnv):
    """Learning agents with different roles trade on one simulated limit order book.

    ## Description

    Every step each live agent acts once on the book it observed. The order in
    which the agents' orders reach the matching engine is a fresh uniformly
    random permutation each step (a Fisher–Yates shuffle drawn from an
    xoshiro256** stream seeded from the env's `np_random` at `reset`), so no
    agent is systematically first; the rank is reported in `info["rank"]`.
    Then one step of the exogenous background flow of `Janus-LOB-v0` runs
    (noise traders, two inventory-aware market makers, an informed and a
    momentum trader on their own accounts — `background_flow=True`, the
    default, keeps the book from drying up; with `False` only the latent
    fundamental moves). All orders, the agents' and the background's, go
    through the one matching engine (price-time priority, self-trade
    prevention per account).

    * **Market makers** quote: at their turn their two previous quotes are
      cancelled and replaced by the new bid and ask (cancel-replace; until then
      the old quotes can still be hit by agents earlier in the order). Prices
      are fixed relative to the mid `m` the agent observed:
      `bid = ⌈m⌉ − 1 − bid_offset`, `ask = ⌊m⌋ + 1 + ask_offset` (grid ticks),
      so offset 0 is the tightest quote that does not cross the observed mid.
      If the book moved earlier in the step a quote may be marketable and then
      executes as a taker order. Quotes rest through the background flow.
    * **Takers** (`informed`, `momentum`, `noise`, `janus`) send market
      (immediate-or-cancel) orders that walk the book. The roles share one
      action space; they differ in what they observe (`informed` also sees a
      noisy signal of the fundamental) and are labels for the policies that
      drive them.

    ## Action Space

    | role | space | meaning |
    | --- | --- | --- |
    | takers, `action_type="discrete"` | `Discrete(3)` | 0 HOLD, 1 BUY `lot` shares, 2 SELL `lot` shares |
    | takers, `"sized"` | `Discrete(2k+1)`, k = `n_sizes` | 0 HOLD, `i ≤ k` BUY `i·lot`, `i > k` SELL `(i−k)·lot` |
    | takers, `"continuous"` | `Box(-1, 1, (1,))` | target position as a signed fraction of `max_position` |
    | `market_maker` | `MultiDiscrete([K, K, S+1, S+1])`, K = `maker_offsets`, S = `maker_sizes` | (bid offset ticks, ask offset ticks, bid size lots, ask size lots); size 0 = no quote on that side |

    Orders (and quote sizes) that could take a position beyond `max_position`,
    or gross exposure `|position| · mid` beyond `max_leverage` × the agent's
    equity (each quote checked as if it alone were filled; reducing orders
    always pass; see `janus_env.accounting`), are cut. Nothing vanishes
    silently: cut shares, the unfilled rest of a market order (book
    exhausted), and orders or quotes the engine could not accept (order pool
    full: raise `capacity`; a quote priced off the tick grid) are reported in
    `info["rejected_qty"]`, with the reasons in `info["rejected_reason"]`.
    An action outside its space raises `InvalidActionError` (a `ValueError`),
    a wrong type `TypeError`. A live agent missing from the `actions` dict
    HOLDs (a maker then quotes nothing: its old quotes are cancelled at its turn).

    ## Observation Space

    The `Dict` of `Janus-LOB-v0` (see `JanusLOBEnv`) for every agent — `prices`,
    `volumes`, `book`, `market` are the shared market; `account` (position /
    `max_position`, cash / `initial_cash`, unrealized PnL %, drawdown, time
    left) is the agent's own. Informed agents (all agents with
    `pad_observations=True`; 0 for non-informed roles) also get:

    | Key | Shape | Observation | Min | Max |
    | --- | --- | --- | --- | --- |
    | `signal` | (1,) | (V − mid) / mid in bps + N(0, `informed_noise_bps`²) noise, V = latent fundamental | -Inf | Inf |

    The signal is drawn fresh every step and independently per informed agent
    (Kyle, 1985: the informed trader knows the liquidation value; here noisily).

    ## Rewards

    Per agent: change in mark-to-market equity `cash0 + tick·(cash + position·mid) − fees`
    in basis points of `initial_cash`. Fees per fill: `fee_bps` of notional when
    the agent is the taker, `maker_fee_bps` (negative = rebate) when its resting
    order is hit. Market makers additionally pay the running inventory penalty
    `maker_inventory_penalty · (position / max_position)²` per step (Cartea,
    Jaimungal & Penalva, 2015, §10.2: a running penalty φ∫q² dt).
    Conservation: over all book accounts (agents and background),
    `Σ Δ(cash + position·mid) = −Σ fees` every step.

    ## Starting State

    A ladder of noise orders around `initial_price`, then `warmup` steps of
    background flow (fundamental moves only when it is off); every agent starts
    flat with `initial_cash`.

    ## Episode End

    An agent whose equity falls to ≤ 0 is ruined: terminated with
    `info["ruin"] = True` (its quotes are cancelled, its position stays on the
    book) and removed from `agents`; with
    `on_bankruptcy="end_episode"` every other agent is truncated in the same
    step (SuperSuit's vector envs need all agents to finish together). All agents
    are truncated after `episode_steps` steps.

    ## Safety: halting an agent

    `halt(agent, reason)` stops an agent from trading while the market goes on:
    its resting quotes are cancelled at once, its actions are ignored (HOLD)
    from the next step, and its info carries `halted=True` and `halt_reason`.
    A halted agent stays in `agents` and keeps receiving observations and
    rewards (its open position is still marked to market) — the
    PettingZoo-conformant choice, since `agents` may only shrink when an agent
    is terminated or truncated. `resume(agent)` lets it trade again.
    `halt(agent, reason, remove=True)` also takes it out of the episode: the
    next step reports it `truncated=True` (an external rule cut its episode
    short; it did not reach a terminal state of the market) and removes it.

    ## Info

    Per agent: `role`, `rank` (position in this step's order), `halted`,
    `halt_reason`, `fills`, `exec_qty` (signed shares, net of all the agent's
    fills), `exec_price` (average over buys and sells, 0 without a fill),
    `slippage_bps` (vs the observed mid, positive = cost), `fees`,
    `rejected_qty` (shares ≥ 0 cut or not filled, see Action Space),
    `rejected_reason` (comma-separated `position_limit`, `leverage`,
    `book_exhausted`, `pool_full`, `price_range`; `""` when nothing was
    rejected), `rounding_qty` (continuous takers: target shares left out by
    rounding to whole shares), `passive_qty` (shares filled as maker), the
    gross flows `buy_qty`, `buy_notional`, `sell_qty`, `sell_notional`
    (shares and currency, as taker and maker), `position`, `cash`, `equity`,
    `pnl`, `drawdown`, `ruin`, and the market's `mid`, `spread`, `vpin`,
    `volatility`, `volume`, `step`; makers also `bid_price`, `bid_size`,
    `ask_price`, `ask_size` (0 for no quote) and `inventory_penalty`.

    Every step, for every agent: `Δcash = sell_notional − buy_notional − fees`,
    `Δposition = buy_qty − sell_qty = exec_qty` and `equity = cash + position · mid`,
    so cash is rebuilt from the infos alone.

    ## Arguments

    | Argument | Default | Meaning |
    | --- | --- | --- |
    | `roles` | one of each | dict role → count, roles in `ROLES` |
    | `scenario` | `"ou"` | `ou`, `gbm`, `regime`, `flash_crash`, `high_vol`, `squeeze` |
    | `action_type` | `"discrete"` | takers' action space (see Action Space) |
    | `n_sizes` | 3 | k for `action_type="sized"` |
    | `maker_offsets` | 5 | K: quote offsets 0..K−1 ticks |
    | `maker_sizes` | 3 | S: quote sizes 0..S lots |
    | `maker_fee_bps` | 0.0 | fee on passive fills, bps (negative = rebate); takers pay `fee_bps` |
    | `maker_inventory_penalty` | 0.0 | φ of the makers' running inventory penalty |
    | `informed_noise_bps` | 10.0 | std of the noise on the informed signal, bps |
    | `background_flow` | True | run the exogenous flow of `Janus-LOB-v0` each step |
    | `pad_observations` | False | give every agent the `signal` key (0 unless informed) so takers share one space |
    | `on_bankruptcy` | `"remove"` | `"remove"` or `"end_episode"` |
    | `seed` | None | default seed of the first `reset()` |
    | `render_mode` | None | `"ansi"` or `"human"` (prints the ansi text) |
    | `**market` | | any `MarketConfig` field: `episode_steps`, `lot`, `max_position`, `max_leverage` (2), `fee_bps`, ...; the book trades whole shares, so a fractional `lot` or `qty_step` is a `ValueError` |

    ```python
    from envs_registry.pettingzoo_envs import make_parallel_env
    env = make_parallel_env(roles={"market_maker": 1, "informed": 1, "momentum": 1, "noise": 2, "janus": 2},
                            seed=0, episode_steps=500)
    obs, infos = env.reset()
    ```

    ## Version History

    * v0: initial release.
    """

    metadata = {"name": "janus_market_v0", "render_modes": ["human", "ansi"], "render_fps": 10,
                "is_parallelizable": True}

    def __init__(
        self,
        roles: dict[str, int] | None = None,
        scenario: str = "ou",
        action_type: str = "discrete",
        n_sizes: int = 3,
        maker_offsets: int = 5,
        maker_sizes: int = 3,
        maker_fee_bps: float = 0.0,
        maker_inventory_penalty: float = 0.0,
        informed_noise_bps: float = 10.0,
        background_flow: bool = True,
        pad_observations: bool = False,
        on_bankruptcy: str = "remove",
        seed: int | None = None,
        render_mode: str | None = None,
        **market: Any,
    ) -> None:
        self.roles = validate_roles(DEFAULT_ROLES if roles is None else roles)
        if scenario == "historical":
            raise ValueError(_BAD_SCENARIO)
        check_choice("action_type", action_type, ACTION_TYPES)
        check_int("maker_offsets", maker_offsets, low=1)
        check_int("maker_sizes", maker_sizes, low=1)
        check_number("maker_fee_bps", maker_fee_bps)  # negative = rebate
        check_number("maker_inventory_penalty", maker_inventory_penalty, low=0)
        check_number("informed_noise_bps", informed_noise_bps, low=0)
        check_bool("background_flow", background_flow)
        check_bool("pad_observations", pad_observations)
        check_choice("on_bankruptcy", on_bankruptcy, BANKRUPTCY_MODES)
        if render_mode is not None:
            check_choice("render_mode", render_mode, self.metadata["render_modes"])
        check_int("seed", seed, optional=True)
        self.config = market_config(scenario, market)
        check_whole_shares(self.config)
        self.scenario = scenario
        self.action_type = action_type
        self.n_sizes = int(n_sizes) if action_type == "sized" else 1
        self.maker_offsets = int(maker_offsets)
        self.maker_sizes = int(maker_sizes)
        self.on_bankruptcy = on_bankruptcy
        self.pad_observations = bool(pad_observations)
        self.render_mode = render_mode
        self._default_seed = None if seed is None else int(seed)

        self.possible_agents = [f"{role}_{k}" for role, count in self.roles.items() for k in range(count)]
        self.agents: list[str] = []
        self._index = {agent: i for i, agent in enumerate(self.possible_agents)}
        self._role_of = [agent.rsplit("_", 1)[0] for agent in self.possible_agents]
        self._is_maker = [role == "market_maker" for role in self._role_of]
        n = len(self.possible_agents)
        self.observation_spaces = {agent: self._make_observation_space(role)
                                   for agent, role in zip(self.possible_agents, self._role_of)}
        self.action_spaces = {agent: self._make_action_space(role)
                              for agent, role in zip(self.possible_agents, self._role_of)}

        cfg = self.config
        self._params = cfg.to_params()
        self._agent_base = N_AGENTS
        self._levels = np.zeros((cfg.n_ticks, N_LEVEL_COLS), dtype=np.int64)
        self._orders = np.zeros((cfg.capacity, N_ORDER_COLS), dtype=np.int64)
        self._state = np.zeros(N_STATE, dtype=np.int64)
        self._accounts = np.zeros((N_AGENTS + n, 2), dtype=np.int64)
        # a fill either empties a resting order or ends its incoming one, so a step has at most
        # (resting orders + 2 × orders sent) fills; this leaves ample room, and an overflow raises
        self._fills = np.zeros((4 * cfg.capacity + 64 * n + 1, N_FILL_COLS), dtype=np.int64)
        self._log = np.zeros((0, N_LOG_COLS), dtype=np.int64)
        self._rng = np.zeros(4, dtype=np.uint64)
        self._arng = np.zeros(4, dtype=np.uint64)
        self._f = np.zeros(f_size(self._params), dtype=np.float64)
        self._ib = np.full(I_SNAPSHOT + 4 * cfg.n_levels, -1, dtype=np.int64)
        self._roles_arr = np.array([ROLE_CODES[r] for r in self._role_of], dtype=np.int64)
        self._status = np.full(n, STATUS_REMOVED, dtype=np.int64)
        self._quotes = np.full((n, 2), -1, dtype=np.int64)
        self._ag = np.zeros((n, N_AG), dtype=np.float64)
        self._out = np.zeros((n, N_AGENT_OUT), dtype=np.float64)
        self._obs_size = obs_size(cfg.window, cfg.n_levels)
        self._shared = np.zeros(self._obs_size, dtype=np.float32)
        self._obs = np.zeros((n, self._obs_size + 1), dtype=np.float32)
        self._act = np.zeros((n, 4), dtype=np.int64)
        self._perm = np.arange(n, dtype=np.int64)
        self._ep = np.zeros(N_EP, dtype=np.float64)
        self._ep[EP_AGENT_BASE] = self._agent_base
        self._ep[EP_MAKER_FEE_BPS] = float(maker_fee_bps)
        self._ep[EP_INVENTORY_PENALTY] = float(maker_inventory_penalty)
        self._ep[EP_SIGNAL_NOISE_BPS] = float(informed_noise_bps)
        self._ep[EP_BACKGROUND] = 1.0 if background_flow else 0.0
        self._kernel_args = (self._levels, self._orders, self._state, self._accounts, self._fills, self._log,
                             self._rng, self._params, self._f, self._ib, self._arng, self._roles_arr, self._status,
                             self._quotes, self._ag, self._out, self._shared, self._obs, self._ep)
        self._halt_reason: dict[str, str] = {}
        self._remove_pending: set[str] = set()
        self._rounding = [0.0] * n  # continuous takers: target shares left out by rounding
        self._n_taker_actions = 0 if action_type == "continuous" else 2 * self.n_sizes + 1
        self._taker_table = [sized_quantity(a, self.n_sizes, self.config.lot_units)
                             for a in range(self._n_taker_actions)]
        self._with_signal = [self.pad_observations or role == "informed" for role in self._role_of]
        self.np_random, self._np_random_seed = seeding.np_random(None)
        self._seeded = False

    # ----------------------------------------------------------------- spaces
    def _make_observation_space(self, role: str) -> spaces.Dict:
        base = observation_space(self.config.window, self.config.n_levels)
        if role == "informed" or self.pad_observations:
            inf = np.float32(np.inf)
            return spaces.Dict({**base.spaces, "signal": spaces.Box(-inf, inf, shape=(1,), dtype=np.float32)})
        return base

    def _make_action_space(self, role: str) -> spaces.Space:
        if role == "market_maker":
            k, s = self.maker_offsets, self.maker_sizes
            return spaces.MultiDiscrete(np.array([k, k, s + 1, s + 1], dtype=np.int64))
        return make_action_space(self.action_type, self.n_sizes)

    def observation_space(self, agent: str) -> spaces.Space:
        return self.observation_spaces[agent]

    def action_space(self, agent: str) -> spaces.Space:
        return self.action_spaces[agent]

    # ------------------------------------------------------------ PettingZoo API
    def reset(self, seed: int | None = None, options: dict[str, Any] | None = None):
        """Start a new session; ``options`` is accepted for API compatibility and unused."""
        if seed is None and self._default_seed is not None:
            seed, self._default_seed = self._default_seed, None
        if seed is not None or not self._seeded:
            check_int("seed", seed, optional=True)
            self.np_random, self._np_random_seed = seeding.np_random(seed)
            self._seeded = True
        self._rng[:] = seed_state(self.np_random)
        self._arng[:] = seed_state(self.np_random)
        parallel_reset(*self._kernel_args)
        self.agents = list(self.possible_agents)
        self._halt_reason = {}
        self._remove_pending = set()
        self._rounding = [0.0] * len(self.possible_agents)
        live = list(range(len(self.possible_agents)))
        return self._observations(live), self._infos(live, self._out.tolist())

    def step(self, actions: dict[str, Any]):
        """Apply every live agent's action in this step's random order, then one step of background flow."""
        if not self.agents:
            raise RuntimeError(NEED_RESET)
        if not isinstance(actions, dict):
            raise TypeError(_BAD_ACTIONS.format(actions))
        live = [self._index[a] for a in self.agents]
        for agent in actions:
            if agent not in self._index:
                raise ValueError(_UNKNOWN_AGENT.format(agent, self.possible_agents))
            if self._status[self._index[agent]] == STATUS_REMOVED:
                raise ValueError(_NOT_LIVE.format(agent, self.agents))
        act = self._act
        act[:] = 0
        if self.action_type == "continuous":
            self._rounding = [0.0] * len(self.possible_agents)
        for i in live:
            if self._status[i] != STATUS_LIVE:
                continue  # halted: the action is ignored (HOLD)
            agent = self.possible_agents[i]
            action = actions.get(agent)
            if action is None:
                continue
            if self._is_maker[i]:
                act[i] = self._maker_action(action, self.action_spaces[agent])
            else:
                act[i, 0] = self._taker_qty(action, self.action_spaces[agent], i)
        parallel_step(*self._kernel_args, act, self._perm)
        if self._state[S_FILL_OVERFLOW] > 0:  # fills beyond the table were not attributed
            raise RuntimeError(_FILL_OVERFLOW.format(int(self._state[S_FILL_OVERFLOW])))
        observations = self._observations(live)
        rows = self._out.tolist()
        infos = self._infos(live, rows)
        time_up = bool(rows[0][O_STEP] >= self.config.episode_steps)
        names = self.possible_agents
        rewards = {}
        terminations = {}
        truncations = {}
        for i in live:
            agent = names[i]
            rewards[agent] = rows[i][O_REWARD]
            term = rows[i][O_TERMINATED] != 0.0
            terminations[agent] = term
            truncations[agent] = (not term) and (time_up or agent in self._remove_pending)
        if self.on_bankruptcy == "end_episode" and any(terminations.values()):
            for agent, term in terminations.items():
                truncations[agent] = not term
        done = [a for a in self.agents if terminations[a] or truncations[a]]
        if done:
            for agent in done:
                i = self._index[agent]
                cancel_quotes(self._levels, self._orders, self._state, self._log, self._quotes, i)
                self._status[i] = STATUS_REMOVED
            self.agents = [a for a in self.agents if not (terminations[a] or truncations[a])]
            self._remove_pending -= set(done)
        return observations, rewards, terminations, truncations, infos

    def _maker_action(self, action: Any, space: spaces.MultiDiscrete) -> np.ndarray:
        arr = np.asarray(action)
        if arr.shape != (4,) or not np.issubdtype(arr.dtype, np.integer):
            raise TypeError(_MAKER_TYPE.format(space, action))
        if (arr < 0).any() or (arr >= space.nvec).any():
            raise InvalidActionError(f"Action {action!r} is outside {space}")
        return arr

    def _taker_qty(self, action: Any, space: spaces.Space, i: int) -> int:
        if type(action) in _FAST_INTS and 0 <= action < self._n_taker_actions:  # fast path of the common case
            return self._taker_table[int(action)]
        if self.action_type == "continuous":
            target = continuous_fraction(action, space) * self.config.max_position
            units = round(target)
            self._rounding[i] = target - units
            return int(units - self._accounts[self._agent_base + i, 1])
        return sized_quantity(discrete_index(action, space), self.n_sizes, self.config.lot)

    def _observations(self, live: list[int]) -> dict[str, dict[str, np.ndarray]]:
        flat = self._obs.copy()
        parts = split_obs(flat[:, :self._obs_size], self.config.window, self.config.n_levels)
        signal = flat[:, self._obs_size:]
        out = {}
        for i in live:
            obs = {key: value[i] for key, value in parts.items()}
            if self._with_signal[i]:
                obs["signal"] = signal[i]
            out[self.possible_agents[i]] = obs
        return out

    def _infos(self, live: list[int], rows: list[list[float]]) -> dict[str, dict[str, Any]]:
        m = rows[0]  # every agent's row holds the market's columns
        market = {"mid": m[O_MID], "spread": m[O_SPREAD], "vpin": m[O_VPIN], "volatility": m[O_VOLATILITY],
                  "volume": m[O_VOLUME], "step": int(m[O_STEP])}
        status = self._status.tolist()
        rounding = self._rounding
        infos = {}
        for i in live:
            agent = self.possible_agents[i]
            o = rows[i]
            info = {"role": self._role_of[i], "rank": int(o[O_ORDER_RANK]), "halted": status[i] == STATUS_HALTED,
                    "halt_reason": self._halt_reason.get(agent), "fills": int(o[O_N_FILLS])}
            keys, columns = _MAKER_INFO if self._is_maker[i] else _TAKER_INFO
            info.update(zip(keys, columns(o)))
            info["rejected_reason"] = REASON_STRINGS[o[O_REJECT_REASON]]
            info["rounding_qty"] = rounding[i]
            info["ruin"] = o[O_TERMINATED] != 0.0
            info.update(market)
            infos[agent] = info
        return infos

    # ------------------------------------------------------------------ safety
    def halt(self, agent: str, reason: str = "halted", *, remove: bool = False) -> None:
        """Stop ``agent`` from trading while the market goes on.

        Its resting quotes are cancelled immediately; from the next step its
        actions are ignored (HOLD) and its info carries ``halted=True`` and
        ``halt_reason``. It stays in ``agents`` (observations and rewards go on)
        unless ``remove``, in which case the next step reports it
        ``truncated=True`` and removes it.

        Raises:
            ValueError: ``agent`` is unknown or not live in this episode.
            TypeError: ``reason`` is not a str.
        """
        i = self._live_index(agent)
        if not isinstance(reason, str):
            raise TypeError(_BAD_REASON.format(reason))
        self._status[i] = STATUS_HALTED
        self._halt_reason[agent] = reason
        if remove:
            self._remove_pending.add(agent)
        cancel_quotes(self._levels, self._orders, self._state, self._log, self._quotes, i)

    def resume(self, agent: str) -> None:
        """Let a halted agent trade again from the next step (not one halted with ``remove=True``).

        Raises:
            ValueError: ``agent`` is unknown or not live in this episode.
        """
        i = self._live_index(agent)
        if agent in self._remove_pending:
            raise ValueError(f"Agent {agent!r} was halted with remove=True and leaves the episode next step")
        self._status[i] = STATUS_LIVE
        self._halt_reason.pop(agent, None)

    def is_halted(self, agent: str) -> bool:
        """Whether ``agent`` is currently halted."""
        if agent not in self._index:
            raise ValueError(_UNKNOWN_AGENT.format(agent, self.possible_agents))
        return bool(self._status[self._index[agent]] == STATUS_HALTED)

    def _live_index(self, agent: str) -> int:
        if agent not in self._index:
            raise ValueError(_UNKNOWN_AGENT.format(agent, self.possible_agents))
        if agent not in self.agents:
            raise ValueError(_NOT_LIVE.format(agent, self.agents))
        return self._index[agent]

    # --------------------------------------------------------------- inspection
    def account_id(self, agent: str) -> int:
        """The book account id that ``agent`` trades under (row of ``book_accounts()``)."""
        if agent not in self._index:
            raise ValueError(_UNKNOWN_AGENT.format(agent, self.possible_agents))
        return self._agent_base + self._index[agent]

    def book_accounts(self) -> np.ndarray:
        """Copy of every book account: rows (cash in tick·shares, position in shares).

        Rows ``0 .. N_AGENTS−1`` are the background participants of ``config.py``;
        the learning agents follow (``account_id``). Σ cash = Σ position = 0.
        """
        return self._accounts.copy()

    def open_orders(self, agent: str) -> np.ndarray:
        """Resting orders of ``agent``: int64 rows (order id, side, price tick, shares)."""
        aid = self.account_id(agent)
        o = self._orders
        mine = (o[:, O_QTY] > 0) & (o[:, O_AGENT] == aid)
        return o[mine][:, [O_ID, O_SIDE, O_PRICE, O_QTY]].copy()

    def buffers(self) -> tuple[np.ndarray, np.ndarray]:
        """The market's live buffers, one row per agent in ``possible_agents`` order (read-only).

        ``(obs, out)``: float32 ``(n_agents, D + 1)`` observation rows in the flat layout of
        ``JanusLOBEnv.buffers`` (the last column is the informed signal) and float64
        ``(n_agents, N_AGENT_OUT)`` rows whose first ``N_OUT`` columns are the ``O_*`` layout of
        the single-agent and vector envs (the agent's account and execution, the market's
        mid, VPIN, σ, volume and step), followed by the multi-agent columns of
        ``janus_env._parallel_kernels``. Kernels that read every agent's state after each step
        (the multi-agent LTN shield) use them without copies.
        """
        return self._obs, self._out

    def book(self) -> np.ndarray:
        """Top ``n_levels`` of the book: rows (bid_px, bid_qty, ask_px, ask_qty) in currency/shares."""
        raw = np.empty((self.config.n_levels, 4), dtype=np.int64)
        snapshot(self._levels, self._state, raw)
        return ticks_to_currency(raw, self._params)

    # --------------------------------------------------------------- rendering
    def render(self) -> str | None:
        """``"ansi"``: the book ladder and one line per agent; ``"human"``: print it."""
        if self.render_mode is None:
            logger.warn("render() called without a render_mode; pass render_mode='ansi' or 'human'")
            return None
        rows = self._out
        m = rows[0]  # the market's columns
        market = {"step": m[O_STEP], "mid": m[O_MID], "spread": m[O_SPREAD], "vpin": m[O_VPIN]}
        text = ansi_ladder(self.book(), market).splitlines()[:-1]  # drop the single-account line
        for i, agent in enumerate(self.possible_agents):
            status = ("live", "halted", "out")[int(self._status[i])]
            text.append(f"{agent:<16} {status:<6} position {int(self._accounts[self._agent_base + i, 1]):>7d}  "
                        f"equity {rows[i, O_EQUITY]:>12.2f}")
        out = "\n".join(text) + "\n"
        if self.render_mode == "human":
            print(out, end="")
            return None
        return out

    def close(self) -> None:
        """Nothing to release (all state is numpy arrays)."""

    def __str__(self) -> str:
        return "janus_market_v0"

