"""Evaluate trained agents and baselines on the same episodes: the protocol, its statistics, tables and plots.

## Protocol

* **Same episodes for everyone.** Every strategy plays episodes with seeds
  ``seed .. seed + K − 1``; on historical data episode k also starts at the
  k-th walk-forward window (:func:`walk_forward_starts`), so the agent and each
  baseline are compared episode by episode (a paired test).
* **Walk-forward windows do not overlap.** The test split (rows after
  ``--split``) is cut into consecutive windows of ``episode_steps`` decisions:
  the return interval of window k ends on the row where window k + 1's begins.
  The first ``window`` rows of each episode only build the observation history,
  which may reach into the previous window (data a trader would have seen).
  As many windows as fit are available; the run reports the count.
* **The stress event happens inside the episodes.** For ``flash_crash`` and
  ``squeeze`` the event occupies steps ``floor(event_start·T)`` to that plus
  ``max(1, floor(event_length·T))`` (fractions of the episode, so ``--steps``
  moves it along); :func:`check_event_inside` refuses a configuration whose
  event does not end before the episode does, and each row counts the episodes
  that were still running when it ended (``event_covered``), so a strategy
  halted before the crash shows it.
* **Glass box.** Every strategy runs behind the deployed safety layers —
  ``Amygdala(LTNShield(env))`` — unless switched off: ``shield`` and
  ``breakers`` separately, breaker thresholds as ``Amygdala`` keyword
  arguments. The LTN violation rate of *proposed* actions, the executed
  violations (0 whenever the shield is on; blank without a shield, since
  nothing scores them) and the breaker halts are comparable across strategies.
* **Annualization** (:class:`Annualization`): the step duration comes from
  the data's time stamps (``env.unwrapped.step_seconds``) or
  ``MarketConfig.step_seconds`` in the simulator; the trading calendar is
  ``equities`` for the simulator (a stock: $100, 1-cent ticks, 100-share lots)
  and LOBSTER (NASDAQ); for time-stamped L2/OHLCV data it is guessed from the
  stamps (:func:`agents.app.metrics.calendar_from_times`: Saturday trading → crypto),
  and ``calendar=`` overrides it. Formulas: :mod:`agents.app.metrics`.
* **Ruin** (equity ≤ 0, or ``info["ruin"]``) ends an episode; the episode return
  is then ≤ −100% and the row counts it, instead of the metrics failing.
  A halted episode keeps the return at the halt (flat afterwards) and is
  annualized over the nominal episode length.
* **Stress scenarios are not annualized**: where every episode holds the designed event (``flash_crash``,
  ``squeeze``, or any ``event`` setting), a year of such episodes is not a year of trading, so the annualized
  return and volatility, Sharpe (and its standard error), Sortino and Calmar are NaN there, said under the
  table (:func:`annualization_notes`); ``sharpe_episode`` and the per-episode numbers stay.

## One row per scenario × strategy (full precision in CSV/JSON)

``episodes``, ``return_bps`` (mean episode return) with its 95% t-interval
(``return_bps_ci95`` half-width, ``return_bps_low``/``_high``),
``annualized_return_pct``, ``annualized_vol_pct``, ``sharpe`` (of episode
returns, annualized; ``sharpe_se`` its standard error; ``sharpe_episode``
the same unannualized, which the printed table shows), ``sortino``,
``calmar``, ``max_drawdown_pct`` (worst episode), ``var_95_bps``/``cvar_95_bps``
(one step), ``halts`` and ``ruin`` (episodes), ``halt_reasons``,
``stress_event`` (the scenario holds a designed event: not annualized), ``event_covered``,
``stopped_before_event`` (episodes halted or ruined at or before the event's first step: a breaker firing
early), ``fill_rate`` (filled / requested shares over all episodes;
empty when nothing was requested), ``avg_slippage_bps`` (over all fills),
``violation_rate``, ``executed_violations``, ``mean_steps``, latency
percentiles, and the annualization used (``step_seconds``, ``calendar``,
``periods_per_year``, ``steps_per_episode``). Undefined values are NaN: empty
in CSV, ``null`` in JSON, "—" in the printed tables.

## Outputs

Each evaluation writes into a new folder ``<out>/<YYYYmmdd-HHMMSS>/`` (``-2``,
``-3``… when it exists) and points ``<out>/latest`` at it, so a second run never
mixes with the first one's files: ``metrics.csv``/``.json``, ``paired.csv``/``.json``
(agent minus each baseline), ``summary.md`` (the printed tables),
``equity_<scenario>.png`` (first episode of each strategy, equity and drawdown,
the event window shaded) and ``returns.png`` (mean episode return per scenario
with 95% error bars).
"""

from __future__ import annotations

import csv
import json
import math
import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np

from agents.app.metrics import (
    TradingCalendar,
    calendar,
    calendar_from_times,
    conditional_value_at_risk,
    episode_statistics,
    latency_percentiles,
    max_drawdown,
    paired_t_test,
    periods_per_year,
    returns,
    ruined,
    value_at_risk,
)
from agents.basal_ganglia import attach_shield_logic, find_shield, is_basal_ganglia_policy, uses_action_masks
from janus_env.checks import check_int
from janus_env.config import P_EVENT_LENGTH, P_EVENT_START
from janus_env.historical import LOBSTERSource
from wrappers import BreakerConfig, breaker_fields, make_glass_box

TRADING_SCENARIOS = ("ou", "gbm", "regime", "flash_crash", "high_vol", "squeeze")
STRESS_SCENARIOS = ("flash_crash", "squeeze")
CALENDAR_CHOICES = ("auto", "equities", "crypto", "fx")
SUMMARY_COLUMNS = ("scenario", "strategy", "return bps ± 95% CI", "ann. %", "Sharpe/ep", "max DD %", "halts", "ruin",
                   "fill %", "slip bps")
TABLE_NOTE = ("return: mean episode return ± 95% t-interval; ann. %: a year of such episodes, compounded (CAGR); "
              "Sharpe/ep: mean / std of episode returns, from ≥ 4 episodes (annualized × sqrt(episodes/yr) ± "
              "sharpe_se in metrics.csv); max DD: worst episode; halts, ruin: episodes; fill %: filled / requested "
              "shares")
ANNUALIZED_FIELDS = ("annualized_return_pct", "annualized_vol_pct", "sharpe", "sharpe_se", "sortino", "calmar")
"""The row's figures that scale episodes to a year: NaN for a stress scenario (module docstring)."""
PAIRED_COLUMNS = ("scenario", "agent − baseline", "Δ return bps", "95% CI", "p", "n")

_BAD_BREAKER = "Unknown breaker setting {!r}; expected one of {}"
_EVENT_OUTSIDE = ("the {} event spans steps {}..{} but the episode has {} steps (0..{}); use more steps "
                  "or move `event_start`/`event_length`")


# --------------------------------------------------------------------------- the env


def breaker_settings() -> tuple[str, ...]:
    """Names accepted as breaker settings: ``BreakerConfig``'s fields but the callables, ``halt_on_env_error``."""
    return breaker_fields(callables=False) + ("halt_on_env_error",)


def check_breaker_settings(settings: Mapping[str, Any]) -> dict[str, Any]:
    """Validate breaker settings (names, then values through ``BreakerConfig``); returns a copy.

    Raises:
        ValueError / TypeError: an unknown name, or a value the breakers reject (their message).
    """
    known = breaker_settings()
    for name in settings:
        if name not in known:
            raise ValueError(_BAD_BREAKER.format(name, sorted(known)))
    values = dict(settings)
    BreakerConfig.from_mapping({k: v for k, v in values.items() if k != "halt_on_env_error"})
    return values


def make_eval_env(env_id: str, env_kwargs: Mapping[str, Any], *, shield: bool = True,
                  breakers: Mapping[str, Any] | bool = True, sizing: Mapping[str, Any] | bool = False,
                  audit: Any = None) -> gym.Env:
    """The evaluation env: ``gym.make(env_id, **env_kwargs)`` in the glass box (:func:`wrappers.make_glass_box`):
    ``LTNShield`` when ``shield``, ``Amygdala`` when ``breakers`` (``True`` or a mapping: its defaults or its settings),
    ``Hypothalamus`` when ``sizing``, ``AuditLog`` when ``audit`` (its path, or a mapping of its arguments).
    ``Janus-Execution-v0`` runs without them (its action is not a trade decision the rules score)."""
    env = gym.make(env_id, **dict(env_kwargs))
    if env_id == "Janus-Execution-v0":
        return env
    return make_glass_box(env, sizing=sizing, shield=shield, breakers=breakers, audit=audit)



def agent_policy(model: Any, env: gym.Env) -> Callable[[Any], Any]:
    """``obs -> action`` for an SB3 model (masked models get the shield's masks; a basal-ganglia policy's logic gate
    reads the shield's rules on its proposal in the current state, :mod:`agents.basal_ganglia.shield_logic`)."""
    shield = find_shield(env)
    if model is not None and is_basal_ganglia_policy(model.policy):
        model.policy.set_logic_hook(None)
        attach_shield_logic(model.policy, [env])
    masked = uses_action_masks(model)  # MaskablePPO, JanusPPO unless trained without masks

    def act(obs: Any) -> Any:
        if masked and shield is not None:
            action, _ = model.predict(obs, deterministic=True, action_masks=shield.action_masks())
        else:
            action, _ = model.predict(obs, deterministic=True)
        return action

    return act


def _historical_market(env: gym.Env) -> Any:
    """The ``HistoricalMarket`` behind a historical ``JanusLOBEnv`` (None otherwise)."""
    base = env.unwrapped
    if getattr(base, "scenario", None) != "historical":
        return None
    return base._market  # noqa: SLF001  (the env owns it; evaluation only reads its row bounds)


def nominal_steps(env: gym.Env) -> int:
    """Decisions in a full (not halted) episode."""
    base = env.unwrapped
    market = _historical_market(env)
    if market is not None:
        return int(market.episode_steps)
    if hasattr(base, "horizon"):
        return int(base.horizon)
    return int(base.config.episode_steps)


# --------------------------------------------------------------------------- annualization


@dataclass(frozen=True)
class Annualization:
    """How one scenario's results are annualized.

    Attributes:
        step_seconds: market seconds per decision step.
        step_source: where ``step_seconds`` came from (for the printed summary).
        calendar: the trading calendar.
        calendar_source: why this calendar.
        steps_per_episode: nominal decisions per episode ``T``.
    """

    step_seconds: float
    step_source: str
    calendar: TradingCalendar
    calendar_source: str
    steps_per_episode: int

    @property
    def periods_per_year(self) -> float:
        """Steps per year ``P`` (:func:`agents.app.metrics.periods_per_year`)."""
        return periods_per_year(self.step_seconds, self.calendar)

    @property
    def episodes_per_year(self) -> float:
        """``N = P / T``."""
        return self.periods_per_year / self.steps_per_episode

    def describe(self) -> str:
        """One line for the printed summary."""
        return (f"step {self.step_seconds:g} s ({self.step_source}), {self.calendar.name} calendar "
                f"({self.calendar_source}: {self.calendar.sessions_per_year:g} sessions × "
                f"{self.calendar.session_seconds / 3600:g} h) → {self.periods_per_year:,.0f} steps/yr, "
                f"{self.steps_per_episode} steps/episode = {self.episodes_per_year:,.4g} episodes/yr")


def annualization(env: gym.Env, calendar_name: str = "auto") -> Annualization:
    """The :class:`Annualization` of an evaluation env (rules in the module docstring).

    Raises:
        ValueError: an unknown calendar name.
    """
    if calendar_name != "auto":
        cal, cal_source = calendar(calendar_name), "chosen"
    base = env.unwrapped
    market = _historical_market(env)
    if market is None:
        step, step_source = float(base.config.step_seconds), "MarketConfig.step_seconds"
        if calendar_name == "auto":
            cal, cal_source = calendar("equities"), "simulated stock"
    else:
        source = market.source
        data_step = source.step_seconds
        if data_step is not None:
            step, step_source = float(data_step), "median spacing of the data's time stamps"
        else:
            step, step_source = float(base.config.step_seconds), "MarketConfig.step_seconds: the data has no times"
        if calendar_name == "auto":
            times = getattr(source.data, "time", None)
            if isinstance(source, LOBSTERSource):
                cal, cal_source = calendar("equities"), "LOBSTER is NASDAQ"
            elif times is not None and np.issubdtype(np.asarray(times).dtype, np.datetime64):
                name = calendar_from_times(times)
                reason = {"crypto": "trades on Saturdays", "fx": "trades on Sundays, not Saturdays",
                          "equities": "no weekend time stamps"}[name]
                cal, cal_source = calendar(name), f"data {reason}"
            else:
                cal, cal_source = calendar("equities"), "no time stamps: default"
    return Annualization(step, step_source, cal, cal_source, nominal_steps(env))


# --------------------------------------------------------------------------- which episodes


def walk_forward_starts(env: gym.Env) -> list[int]:
    """Start rows of every non-overlapping walk-forward window of a historical env's split.

    Window k starts at ``first_row + k·T``; its decisions and returns cover rows
    ``start + window − 1 .. start + window − 1 + T``, so consecutive windows share
    one boundary row (the close of one is the open of the next) and no return interval.

    Raises:
        ValueError: the env is not historical.
    """
    market = _historical_market(env)
    if market is None:
        raise ValueError("walk_forward_starts needs a scenario='historical' env")
    steps = int(market.episode_steps)
    return list(range(int(market.first_row), int(market.max_start) + 1, steps))


def event_window(config: Any) -> tuple[int, int] | None:
    """``(first, last)`` step of the config's stress event (None without one), as the kernels place it."""
    if getattr(config, "event", "none") == "none":
        return None
    p = config.to_params()
    first = int(p[P_EVENT_START])
    return first, first + int(p[P_EVENT_LENGTH])


def check_event_inside(env: gym.Env) -> tuple[int, int] | None:
    """The event window of a stress scenario, after checking that it ends inside the episode.

    Raises:
        ValueError: the event's last step is not before the episode's end.
    """
    base = env.unwrapped
    config = getattr(base, "config", None)
    if config is None or _historical_market(env) is not None:
        return None
    window = event_window(config)
    if window is None:
        return None
    steps = nominal_steps(env)
    if window[0] < 0 or window[1] > steps - 1:
        raise ValueError(_EVENT_OUTSIDE.format(config.event, window[0], window[1], steps, steps - 1))
    return window


@dataclass(frozen=True)
class EpisodePlan:
    """The episodes every strategy plays in one scenario: ``(seed, start row or None)`` pairs."""

    episodes: list[tuple[int, int | None]]
    note: str = ""


def episode_plan(env: gym.Env, episodes: int, seed: int) -> EpisodePlan:
    """Seeds ``seed..``; on historical data also the first ``episodes`` walk-forward windows (fewer when
    fewer fit, said in ``note``).

    Raises:
        TypeError: ``episodes`` is not an int.
        ValueError: ``episodes`` < 1.
    """
    episodes = check_int("episodes", episodes, low=1)
    market = _historical_market(env)
    if market is None:
        return EpisodePlan([(seed + k, None) for k in range(episodes)])
    starts = walk_forward_starts(env)
    used = starts[:episodes]
    steps = int(market.episode_steps)
    note = (f"walk-forward: {len(starts)} non-overlapping test window(s) of {steps} steps fit in rows "
            f"{market.first_row}..{market.end_row - 1}; evaluating {len(used)}")
    if len(used) < episodes:
        note += f" (asked for {episodes})"
    return EpisodePlan([(seed + k, start) for k, start in enumerate(used)], note)


# --------------------------------------------------------------------------- one episode


@dataclass
class EpisodeResult:
    """What one strategy did in one episode (raw counts; :func:`summarize` pools them)."""

    equity: np.ndarray
    steps: int
    halted: bool = False
    halt_reason: str | None = None
    ruin: bool = False
    filled: float = 0.0
    requested: float = 0.0
    slippage_bps: list[float] = field(default_factory=list)
    proposed: int = 0
    violations: int = 0
    executed_violations: int = 0
    latencies: list[float] = field(default_factory=list)

    @property
    def episode_return(self) -> float:
        """``E_T / E_0 − 1``."""
        return float(self.equity[-1] / self.equity[0] - 1.0)

    @property
    def max_drawdown(self) -> float:
        return max_drawdown(self.equity)


def run_episode(env: gym.Env, act: Callable[[Any], Any], seed: int, start: int | None = None) -> EpisodeResult:
    """Play one seeded episode with ``act`` (from row ``start`` on historical data)."""
    options = None if start is None else {"start": start}
    obs, info = env.reset(seed=seed, options=options)
    equity = [float(info["equity"])]
    result = EpisodeResult(np.empty(0), 0)
    done = False
    while not done:
        t0 = time.perf_counter()
        action = act(obs)
        result.latencies.append(time.perf_counter() - t0)
        obs, _, terminated, truncated, info = env.step(action)
        done = terminated or truncated
        equity.append(float(info["equity"]))
        result.steps += 1
        ltn = info.get("ltn")
        if isinstance(ltn, dict):
            result.proposed += 1
            result.violations += ltn.get("violation", 0.0) > 0.0
            result.executed_violations += (not ltn.get("overridden", False)) and ltn.get(
                "sat_agg", 1.0) < ltn.get("threshold", 0.9)
        if info.get("halted"):
            result.halted = True
            result.halt_reason = str(info.get("halt_reason") or "halted")
        if info.get("ruin") or equity[-1] <= 0.0:
            result.ruin = True
        qty = abs(float(info.get("exec_qty", 0.0)))
        rejected = abs(float(info.get("rejected_qty", 0.0)))
        if qty > 0:
            result.slippage_bps.append(float(info["slippage_bps"]))
        result.filled += qty
        result.requested += qty + rejected
    result.equity = np.asarray(equity, dtype=np.float64)
    result.ruin = result.ruin or ruined(result.equity)
    return result


# --------------------------------------------------------------------------- statistics


def _nan_mean(values: list[float]) -> float:
    return float(np.mean(values)) if values else math.nan


def summarize(results: list[EpisodeResult], timing: Annualization,
              event: tuple[int, int] | None = None) -> dict[str, Any]:
    """One table row (without scenario and strategy) from one strategy's episodes (module docstring)."""
    ep_returns = np.array([r.episode_return for r in results])
    stats = episode_statistics(ep_returns, np.array([r.max_drawdown for r in results]), timing.periods_per_year,
                               timing.steps_per_episode)
    step_returns = np.concatenate([returns(r.equity) for r in results])
    filled = sum(r.filled for r in results)
    requested = sum(r.requested for r in results)
    proposed = sum(r.proposed for r in results)
    fills = [s for r in results for s in r.slippage_bps]
    reasons: dict[str, int] = {}
    for r in results:
        if r.halt_reason:
            key = r.halt_reason.split(":")[0]
            reasons[key] = reasons.get(key, 0) + 1
    row: dict[str, Any] = {
        "episodes": stats.episodes,
        "return_bps": 1e4 * stats.mean_return,
        "return_bps_ci95": 1e4 * stats.return_ci,
        "return_bps_low": 1e4 * (stats.mean_return - stats.return_ci),
        "return_bps_high": 1e4 * (stats.mean_return + stats.return_ci),
        "annualized_return_pct": 100.0 * stats.annualized_return,
        "annualized_vol_pct": 100.0 * stats.annualized_volatility,
        "sharpe": stats.sharpe,
        "sharpe_se": stats.sharpe_se,
        "sharpe_episode": stats.sharpe_episode,
        "sortino": stats.sortino,
        "calmar": stats.calmar,
        "max_drawdown_pct": 100.0 * stats.worst_drawdown,
        "var_95_bps": 1e4 * value_at_risk(step_returns),
        "cvar_95_bps": 1e4 * conditional_value_at_risk(step_returns),
        "halts": sum(r.halted for r in results),
        "ruin": sum(r.ruin for r in results),
        "halt_reasons": "; ".join(f"{k}×{v}" for k, v in sorted(reasons.items())),
        "stress_event": event is not None,
        "event_covered": (sum(r.steps >= event[1] + 1 for r in results) if event is not None else math.nan),
        "stopped_before_event": (sum(r.steps <= event[0] for r in results) if event is not None else math.nan),
        "fill_rate": filled / requested if requested > 0 else math.nan,
        "avg_slippage_bps": _nan_mean(fills),
        "violation_rate": sum(r.violations for r in results) / proposed if proposed else math.nan,
        "executed_violations": sum(r.executed_violations for r in results) if proposed else math.nan,
        "mean_steps": float(np.mean([r.steps for r in results])),
        "steps_per_episode": timing.steps_per_episode,
        "step_seconds": timing.step_seconds,
        "calendar": timing.calendar.name,
        "periods_per_year": timing.periods_per_year,
    }
    if event is not None:  # a designed event in every episode: no year is made of these (module docstring)
        row.update(dict.fromkeys(ANNUALIZED_FIELDS, math.nan))
    row.update(latency_percentiles(np.array([s for r in results for s in r.latencies])))
    return row


def paired_rows(scenario: str, episode_returns: Mapping[str, np.ndarray], agent: str = "agent") -> list[dict[str, Any]]:
    """The agent minus each baseline on the same episodes, in bps (empty without an agent)."""
    if agent not in episode_returns:
        return []
    out = []
    a = 1e4 * np.asarray(episode_returns[agent], dtype=np.float64)
    for name, values in episode_returns.items():
        if name == agent:
            continue
        c = paired_t_test(a, 1e4 * np.asarray(values, dtype=np.float64))
        out.append({"scenario": scenario, "baseline": name, "n": c.n, "diff_bps": c.mean_diff,
                    "ci_low_bps": c.ci_low, "ci_high_bps": c.ci_high, "p_value": c.p_value})
    return out


# --------------------------------------------------------------------------- tables


def annualization_notes(rows: list[dict[str, Any]]) -> list[str]:
    """The line that says why the stress scenarios' rows have no annualized figures (none without such rows)."""
    stress = sorted({r["scenario"] for r in rows if r.get("stress_event")})
    if not stress:
        return []
    return [f"note: {', '.join(stress)}: not annualized (ann. %, and Sharpe, Sortino, Calmar in CSV/JSON): every "
            "episode holds the designed stress event, so a year of such episodes is not a year of trading"]


def event_notes(rows: list[dict[str, Any]]) -> list[str]:
    """One line per row whose strategy stopped (halt or ruin) before the stress event ended in some episode."""
    return [f"note: {r['scenario']}/{r['strategy']}: {r['episodes'] - r['event_covered']} of {r['episodes']} "
            f"episode(s) stopped before the stress event ended, {r['stopped_before_event']} of them before it began "
            f"({r['halt_reasons'] or 'no halt'})"
            for r in rows if isinstance(r["event_covered"], int) and r["event_covered"] < r["episodes"]]


def _fmt(value: Any, spec: str) -> str:
    """``value`` formatted with a fixed-point ``spec`` (".1f"); "—" for NaN; never "-0.0"."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "—"
    return format(round(float(value), int(spec[1:-1])) + 0.0, spec)


def _markdown(columns: tuple[str, ...], cells: list[list[str]]) -> str:
    lines = ["| " + " | ".join(columns) + " |", "|" + "|".join("---" for _ in columns) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in cells]
    return "\n".join(lines)


def summary_table(rows: list[dict[str, Any]]) -> str:
    """The compact Markdown table of the printed summary, rounded for reading."""
    cells = []
    for r in rows:
        ci = r["return_bps_ci95"]
        ret = _fmt(r["return_bps"], ".1f") + ("" if math.isnan(ci) else f" ± {_fmt(ci, '.1f')}")
        fill = r["fill_rate"]
        cells.append([r["scenario"], r["strategy"], ret, _fmt(r["annualized_return_pct"], ".1f"),
                      _fmt(r["sharpe_episode"], ".2f"), _fmt(r["max_drawdown_pct"], ".2f"),
                      f"{r['halts']}/{r['episodes']}", f"{r['ruin']}/{r['episodes']}",
                      _fmt(100.0 * fill if not math.isnan(fill) else fill, ".0f"),
                      _fmt(r["avg_slippage_bps"], ".2f")])
    return _markdown(SUMMARY_COLUMNS, cells)


def paired_table(rows: list[dict[str, Any]]) -> str:
    """The paired comparison (agent − baseline), rounded for reading."""
    cells = []
    for r in rows:
        low, high = _fmt(r["ci_low_bps"], ".1f"), _fmt(r["ci_high_bps"], ".1f")
        ci = "—" if math.isnan(r["ci_low_bps"]) else f"[{low}, {high}]"
        p = r["p_value"]
        p_text = "—" if math.isnan(p) else ("<0.001" if p < 1e-3 else f"{p:.3f}")
        cells.append([r["scenario"], f"agent − {r['baseline']}", _fmt(r["diff_bps"], ".1f"), ci, p_text,
                      str(r["n"])])
    return _markdown(PAIRED_COLUMNS, cells)


# --------------------------------------------------------------------------- outputs


def new_eval_dir(root: Path) -> Path:
    """Create a fresh ``root/<YYYYmmdd-HHMMSS>[-k]`` folder and point ``root/latest`` at it.

    ``latest`` is a relative symbolic link, replaced atomically; where links are
    not allowed, ``root/LATEST`` holds the folder name instead.
    """
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    k = 1
    while True:
        path = root / (stamp if k == 1 else f"{stamp}-{k}")
        try:
            path.mkdir()
            break
        except FileExistsError:
            k += 1
    link = root / "latest"
    tmp = root / f".latest-{os.getpid()}"
    try:
        if tmp.is_symlink():
            tmp.unlink()
        tmp.symlink_to(path.name, target_is_directory=True)
        os.replace(tmp, link)
    except OSError:
        (root / "LATEST").write_text(path.name + "\n")
    return path


def _clean(value: Any) -> Any:
    if isinstance(value, (float, np.floating)):
        return None if math.isnan(value) else float(value)
    if isinstance(value, np.integer):
        return int(value)
    return value


def _write_csv(path: Path, rows: list[dict[str, Any]]) -> None:
    with open(path, "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]) if rows else ["empty"])
        writer.writeheader()
        for row in rows:
            writer.writerow({k: ("" if _clean(v) is None else _clean(v)) for k, v in row.items()})


def write_outputs(out_dir: Path, rows: list[dict[str, Any]], paired: list[dict[str, Any]],
                  curves: Mapping[str, Mapping[str, np.ndarray]], events: Mapping[str, tuple[int, int] | None],
                  summary: str) -> list[Path]:
    """CSV, JSON, the summary and the PNGs (module docstring) into ``out_dir``; the paths written."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for name, table in (("metrics", rows), ("paired", paired)):
        if name == "paired" and not table:
            continue
        _write_csv(out_dir / f"{name}.csv", table)
        (out_dir / f"{name}.json").write_text(json.dumps([{k: _clean(v) for k, v in r.items()} for r in table],
                                                         indent=2))
        written += [out_dir / f"{name}.csv", out_dir / f"{name}.json"]
    (out_dir / "summary.md").write_text(summary + "\n")
    written.append(out_dir / "summary.md")
    for scenario, by_strategy in curves.items():
        fig, (ax_eq, ax_dd) = plt.subplots(2, 1, figsize=(8, 6), sharex=True)
        for name, curve in by_strategy.items():
            ax_eq.plot(curve, label=name, linewidth=2.0 if name == "agent" else 1.0)
            peak = np.maximum.accumulate(curve)
            ax_dd.plot(-100.0 * (peak - curve) / peak, label=name)
        window = events.get(scenario)
        if window is not None:  # flow step t moves the equity point t + 1
            for ax in (ax_eq, ax_dd):
                ax.axvspan(window[0] + 1, window[1] + 1, color="red", alpha=0.1, label=None)
        ax_eq.set_ylabel("equity")
        ax_eq.set_title(f"{scenario}: first episode" + (" (event shaded)" if window is not None else ""))
        ax_eq.legend(fontsize=8)
        ax_dd.set_ylabel("drawdown %")
        ax_dd.set_xlabel("step")
        fig.tight_layout()
        path = out_dir / f"equity_{scenario}.png"
        fig.savefig(path, dpi=90)
        plt.close(fig)
        written.append(path)
    if rows:
        scenarios = list(dict.fromkeys(r["scenario"] for r in rows))
        strategies = list(dict.fromkeys(r["strategy"] for r in rows))
        fig, ax = plt.subplots(figsize=(max(6.0, 1.6 * len(scenarios) + 3), 4))
        width = 0.8 / max(len(strategies), 1)
        for j, strategy in enumerate(strategies):
            picked = [next((r for r in rows if r["scenario"] == s and r["strategy"] == strategy), None)
                      for s in scenarios]
            means = [r["return_bps"] if r else math.nan for r in picked]
            errs = [r["return_bps_ci95"] if r and not math.isnan(r["return_bps_ci95"]) else 0.0 for r in picked]
            ax.bar(np.arange(len(scenarios)) + j * width, means, width, yerr=errs, capsize=3, label=strategy)
        ax.set_xticks(np.arange(len(scenarios)) + 0.4 - width / 2)
        ax.set_xticklabels(scenarios, rotation=30, fontsize=8)
        ax.set_ylabel("mean episode return, bps")
        ax.set_title("mean episode return with 95% t-interval")
        ax.axhline(0, color="black", linewidth=0.5)
        ax.legend(fontsize=7)
        fig.tight_layout()
        path = out_dir / "returns.png"
        fig.savefig(path, dpi=90)
        plt.close(fig)
        written.append(path)
    return written
