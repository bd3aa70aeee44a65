"""``ParallelAmygdala``: the amygdala's circuit breakers per agent on the shared book of ``janus_market_v0``."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Iterable
from typing import Any

from wrappers._parallel import ParallelSafetyWrapper
from wrappers.breakers import ERROR_PREFIX, BreakerConfig, CircuitBreakers, error_reason

_NOT_GUARDED = "Agent {!r} has no circuit breakers; guarded agents: {}"


def kill_path(kill_file: str | os.PathLike[str] | None, agent: str) -> str | None:
    """``agent``'s kill-switch flag file: ``kill_file`` with ``{agent}`` replaced by the agent's name."""
    if kill_file is None:
        return None
    return os.fspath(kill_file).replace("{agent}", agent)


class ParallelAmygdala(ParallelSafetyWrapper):
    """Circuit breakers on each guarded agent's own account; a tripped agent is halted, the market goes on.

    Every guarded agent has its own :class:`~wrappers.breakers.CircuitBreakers`:
    the six breakers of :class:`~wrappers.amygdala.Amygdala`, with its
    thresholds and defaults, on that agent's ``infos[agent]``:

    * **drawdown** — the agent's loss from its session peak equity > ``max_drawdown`` (0.10);
    * **volatility** — the market's realized σ > ``vol_ratio`` (3) × its long-run level σ_hist
      (seeded by the agent's reset info, then the running mean / 500-step EWMA of the readings
      that do not trip; see :mod:`wrappers.amygdala`);
    * **fear** — ``sigmoid(W_f·[VPIN excess, σ_t/σ_hist, Δp_max/σ_hist] + b_f)`` > ``fear_threshold``
      (0.7), every input relative to the market's own history;
    * **slippage** — the agent's mean slippage over its last fills > ``slippage_ratio`` (2) ×
      the prediction of ``slippage_predictor(obs, action, info)`` (called with the agent's
      observation, its *proposed* action — None if it sent none — and info) or of an inner
      ``infos[agent]["predicted_slippage_bps"]``; inactive without either;
    * **violation_rate** — the agent's recent rule-breaking proposals (``infos[agent]["ltn"]`` from an
      inner :class:`~wrappers.parallel_shield.ParallelLTNShield`), executed ones weighing 1 and ones the
      shield blocked ``blocked_weight`` (0.1), per proposal > ``max_violation_rate`` (0.05);
    * **kill_switch** — :meth:`kill` ``(agent)`` or the flag file ``kill_file``; a ``kill_file``
      containing ``{agent}`` is one file per agent (``"/tmp/janus.{agent}.kill"``, see
      :func:`kill_path`), else one file halts every guarded agent.

    The settings are one :class:`~wrappers.breakers.BreakerConfig` (``config=`` or its fields as
    keywords), the same for every guarded agent; each agent's breakers get it with its own
    ``kill_file`` path.

    Volatility and fear read the shared market, so they trip for every guarded agent at once;
    drawdown, slippage, violation rate and the kill switch are the agent's own.

    The kill switch is checked before the action goes to the market (a killed agent's
    action is never executed); the breakers are updated after the step. A tripped agent
    is halted through ``JanusParallelEnv.halt`` (its quotes cancelled, its actions ignored),
    ``infos[agent]["halted"] = True``, ``infos[agent]["halt_reason"] = "<breaker>: <details>"``;
    with ``on_halt="terminate"`` (default) it is reported ``terminated=True`` in that step and
    leaves ``agents``, with ``"stay"`` it stays halted until the episode ends
    (see :mod:`wrappers._parallel`). An ``infos[agent]["halted"]`` from below (an inner
    shield's fail-safe, or ``env.halt``) halts its breakers too. Every step each guarded agent
    gets ``infos[agent]["breakers"] = {name: {"value", "threshold", "active", "tripped",
    "reason"}}``. Unguarded agents trade on, unwatched.

    Fail-safe: an exception in a breaker, the kill-switch check, the predictor or the
    bookkeeping around one agent's breakers halts that agent with ``halt_reason =
    "amygdala_error: <stage> raised <Error>: <message>"``: before the market step its action is
    not forwarded, after it the agent is halted from the next step (the step reports it), in
    ``reset`` it halts at its first step without trading. An exception anywhere else in the
    layer halts every guarded agent the same way (:class:`~wrappers._parallel.ParallelSafetyWrapper`).

    Args:
        env: a ``JanusParallelEnv`` or a parallel wrapper of one (put the shield inside).
        agents: guarded agents: names and/or roles (default: every ``janus`` agent); makers allowed.
        on_halt: ``"terminate"`` (default) or ``"stay"``.
        config: the breaker settings (None: ``BreakerConfig()``, the defaults); its ``kill_file`` may
            contain ``{agent}``.
        **settings: :class:`~wrappers.breakers.BreakerConfig` fields (``max_drawdown``, ``vol_ratio``,
            ``fear_threshold``, ``slippage_predictor``, ``kill_file``, ...), replacing those of ``config``.

    Raises:
        TypeError: ``env`` is not a janus_market env, an unknown breaker argument (the message lists
            the ``BreakerConfig`` fields), a setting of the wrong type, or a ``config`` that is not a
            ``BreakerConfig``.
        ValueError: an unknown agent or role, an out-of-range threshold, or an unknown ``on_halt``.

    ```python
    env = ParallelAmygdala(ParallelLTNShield(make_parallel_env(scenario="flash_crash", seed=0)),
                           agents=["janus", "market_maker_0"], max_drawdown=0.05)
    ```
    """

    FAULT_FORMAT = ERROR_PREFIX + ": {stage} raised {kind}: {err}"

    def __init__(
        self,
        env: Any,
        agents: str | Iterable[str] | None = None,
        *,
        on_halt: str = "terminate",
        config: BreakerConfig | None = None,
        **settings: Any,
    ) -> None:
        super().__init__(env, agents, on_halt)
        self._config = shared = BreakerConfig.from_mapping(settings, base=config)
        self.breakers = {
            agent: CircuitBreakers(dataclasses.replace(shared, kill_file=kill_path(shared.kill_file, agent)))
            for agent in self.guarded}
        """Agent → its :class:`~wrappers.breakers.CircuitBreakers`."""

    @property
    def config(self) -> BreakerConfig:
        """The breaker settings of every guarded agent (``kill_file`` as given, ``{agent}`` not replaced)."""
        return self._config

    # ---------------------------------------------------------------- kill switch
    def kill(self, agent: str, reason: str = "manual kill") -> None:
        """Engage ``agent``'s kill switch: its next action is not executed and it is halted.

        Stays engaged across ``reset()`` until :meth:`clear_kill`.

        Raises:
            ValueError: ``agent`` is not guarded, or ``reason`` is empty.
            TypeError: ``reason`` is not a str.
        """
        self._breakers_of(agent).kill(reason)

    def clear_kill(self, agent: str) -> None:
        """Disengage ``agent``'s manual kill switch (a flag file is cleared by deleting it)."""
        self._breakers_of(agent).clear_kill()

    def _breakers_of(self, agent: str) -> CircuitBreakers:
        if agent not in self.breakers:
            raise ValueError(_NOT_GUARDED.format(agent, self.guarded))
        return self.breakers[agent]

    # ---------------------------------------------------------------- hooks
    def _after_reset(self, obs: dict[str, Any], infos: dict[str, dict[str, Any]]) -> None:
        for agent, breakers in self.breakers.items():
            if agent in infos:
                try:
                    breakers.start_session(obs.get(agent), infos[agent])  # fail-closed: an error halts at step 1
                    infos[agent]["breakers"] = breakers.breaker_info()
                except Exception as err:  # the agent halts at its first step, its action not forwarded
                    self._pending[agent] = error_reason("reset", err)

    def _before_step(self, actions: dict[str, Any]) -> dict[str, Any]:
        forwarded = dict(actions)
        for agent, breakers in self.breakers.items():
            if self._is_trading(agent):
                try:
                    reason = breakers.before_action(actions.get(agent))
                except Exception as err:  # the check itself failed: the action is not forwarded
                    reason = error_reason("pre-step check", err)
                if reason is not None:
                    forwarded.pop(agent, None)
                    self._halt_agent(agent, reason)
        return forwarded

    def _after_step(self, obs: dict[str, Any], infos: dict[str, dict[str, Any]]) -> None:
        for agent, breakers in self.breakers.items():
            if agent not in infos or agent in self._departed:
                continue
            try:
                reason = breakers.after_step(obs[agent], infos[agent])
                infos[agent]["breakers"] = breakers.breaker_info()
            except Exception as err:  # bookkeeping around the breakers: halt all the same
                reason = error_reason("breaker bookkeeping", err)
                try:
                    breakers.halt_on_error("breaker bookkeeping", err)
                except Exception:  # noqa: BLE001 - the layer's halt below stops the agent all the same
                    pass
            if reason is not None:
                self._halt_agent(agent, reason)
