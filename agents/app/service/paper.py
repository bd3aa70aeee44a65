"""Paper trading against the decision service: a simulated market driven over HTTP, as ``evaluate.py`` drives it.

``python serve.py paper RUN --url URL --key KEY --scenario regime --episodes N --seed S`` plays N episodes of the
run's ``Janus-LOB-v0`` (its ``env_kwargs``, the scenario asked for) with seeds ``S, S+1, …`` — the episodes
``evaluate.py RUN --scenarios regime --episodes N --seed S`` plays — and the service decides every step:

1. before each episode, ``POST /api/v1/accounts/reset`` starts the key's account afresh (flat, the run's cash,
   no halt, a new session: an env ``reset``; admin scope, so a paper key is made with ``--scopes decide,admin``);
2. each step sends the env's observation, its ``mid`` and the env's raw state (``state``: the float64 ``info`` and
   ``book()``, :class:`~agents.app.service.schemas.VenueState`) to ``POST /api/v1/decision``;
3. the answer's ``action`` (the glass box's: shield, breakers, sizing applied on the server) is played in the raw
   env — no second glass box on this side, the server's is the one in force;
4. the env's execution of that step (``exec_qty`` at ``exec_price``, its VWAP) goes to ``POST /api/v1/fills``.

An episode ends as in ``evaluate.py``: when the env ends it (truncated after ``episode_steps``, or ruin), or when
the service answers halted. A halt the breakers raise after a step (drawdown, volatility, …) shows at the next
decision, whose answer is halted before the policy ran: the episode ends with that step, as the ``Amygdala``
ends it in-process. A halt before an order (kill switch, predicted slippage; the policy ran) blocks the step:
nothing is sent to the market and the step counts with reward 0 and unchanged equity, as the ``Amygdala``'s
blocked step does.

With the server on the torch engine (``serve.py RUN --engine torch``, what ``evaluate.py`` runs) every step's
action, fill, reward and equity equal ``evaluate.py``'s in-process run of the same agent in the same glass box
(``tests/service/test_paper.py`` checks it against ``evaluate.py --audit``). The ONNX engine computes the same
network in another library: equal up to float rounding of the scores, so a near-tie can break the other way.
One difference remains by construction: a breaker that trips on an episode's very last step halts the
in-process episode (``halts`` counts it), while the paper loop sends no decision after the last step, so the
service never sees that step's outcome through its breakers (its fills are booked).
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import gymnasium as gym
import httpx
import numpy as np

import envs_registry  # noqa: F401  (registers the Janus-* ids)
from agents.app.yaml_io import load_yaml
from janus_env.checks import check_int

API = "/api/v1"
SCENARIOS = ("ou", "gbm", "regime", "flash_crash", "high_vol", "squeeze")
"""The simulated scenarios the paper loop plays (``agents.app.evaluation.TRADING_SCENARIOS``)."""

_NO_CONFIG = "no run config at {}"
_SCENARIO = "expected a scenario in {}, got {!r} (historical data: not in the paper loop yet)"
_HTTP = "{} {} answered {}: {}"
_VERSION = "the service serves {!r}, not this run's model.zip (sha256 {}…): start serve.py on RUN"


class PaperError(RuntimeError):
    """The service answered an error (status and body in the message)."""


@dataclass
class PaperEpisode:
    """One paper episode: per env step the action played, the fill, reward, equity and position.

    ``equity`` has one more entry than the steps (the reset's); a blocked step (a halt before the order) has
    action None and no fill.
    """

    seed: int
    actions: list[int | None] = field(default_factory=list)
    exec_qty: list[float] = field(default_factory=list)
    exec_price: list[float] = field(default_factory=list)
    slippage_bps: list[float] = field(default_factory=list)
    rewards: list[float] = field(default_factory=list)
    equity: list[float] = field(default_factory=list)
    position: list[float] = field(default_factory=list)
    halted: bool = False
    halt_reason: str | None = None
    decisions: list[dict[str, Any]] = field(default_factory=list)

    @property
    def steps(self) -> int:
        return len(self.rewards)

    @property
    def trades(self) -> int:
        """Steps whose order was filled (``exec_qty ≠ 0``)."""
        return sum(q != 0.0 for q in self.exec_qty)

    @property
    def return_bps(self) -> float:
        """``(E_T / E_0 − 1)·10⁴``, as ``evaluate.py``'s ``return_bps`` of one episode."""
        return 1e4 * (self.equity[-1] / self.equity[0] - 1.0)


def run_env(run: Path, scenario: str) -> tuple[str, dict[str, Any]]:
    """``(env id, env kwargs)`` of ``evaluate.py``'s env for ``run`` on ``scenario``: the run's ``env_kwargs``
    (without its data) and the scenario.

    Raises:
        FileNotFoundError: no ``config.yaml`` in the run.
        ValueError: a scenario the paper loop does not play.
    """
    run_dir = run.parent if run.suffix == ".zip" else run
    path = run_dir / "config.yaml"
    if not path.is_file():
        raise FileNotFoundError(_NO_CONFIG.format(path))
    if scenario not in SCENARIOS:
        raise ValueError(_SCENARIO.format(SCENARIOS, scenario))
    config = load_yaml(path.read_text(encoding="utf-8"))
    kwargs = dict(config["hyperparams"].get("env_kwargs") or {})
    kwargs.pop("data", None)
    kwargs.pop("data_split", None)
    return str(config["run"]["env"]), {**kwargs, "scenario": scenario}


def venue_state(info: dict[str, Any], book: np.ndarray) -> dict[str, Any]:
    """The env's raw state as a decision body's ``state``: its float64 ``info`` values and ``book()`` (NaN → null)."""
    keys = ("vpin", "volatility", "spread", "volume", "position", "cash", "equity", "drawdown", "pnl",
            "exec_qty", "exec_price", "slippage_bps", "fees")
    state: dict[str, Any] = {k: float(info[k]) for k in keys}
    state["fills"] = int(info["fills"])
    state["book"] = [[v if math.isfinite(v) else None for v in row] for row in np.asarray(book, float).tolist()]
    return state


def decision_body(obs: dict[str, np.ndarray], info: dict[str, Any], book: np.ndarray) -> dict[str, Any]:
    """``{"observation", "mid", "state"}`` of one env state (float32 values are exact as JSON floats)."""
    return {"observation": {k: np.asarray(v).tolist() for k, v in obs.items()}, "mid": float(info["mid"]),
            "state": venue_state(info, book)}


def _post(client: httpx.Client, path: str, payload: dict[str, Any]) -> dict[str, Any]:
    answer = client.post(API + path, json=payload)
    if answer.status_code != 200:
        raise PaperError(_HTTP.format("POST", API + path, answer.status_code, answer.text))
    return answer.json()


def _get(client: httpx.Client, path: str) -> dict[str, Any]:
    answer = client.get(API + path)
    if answer.status_code != 200:
        raise PaperError(_HTTP.format("GET", API + path, answer.status_code, answer.text))
    return answer.json()


def play_episode(client: httpx.Client, env: gym.Env, account: str, seed: int) -> PaperEpisode:
    """One paper episode of ``env`` (the raw env) with seed ``seed``, decided by the service (module docstring).

    Raises:
        PaperError: the service answered an error (a refused body, a fill it could not book, …).
    """
    _post(client, "/accounts/reset", {"account": account})
    base = env.unwrapped
    obs, info = env.reset(seed=seed)
    episode = PaperEpisode(seed=seed, equity=[float(info["equity"])])
    done = False
    while not done:
        answer = _post(client, "/decision", decision_body(obs, info, base.book()))
        episode.decisions.append(answer)
        if answer["halted"]:
            episode.halted, episode.halt_reason = True, answer["halt_reason"]
            if answer["proposed_action"] is not None:  # halted before the order: the Amygdala's blocked step
                episode.actions.append(None)
                episode.exec_qty.append(0.0)
                episode.exec_price.append(0.0)
                episode.slippage_bps.append(0.0)
                episode.rewards.append(0.0)
                episode.equity.append(episode.equity[-1])
                episode.position.append(float(info["position"]))
            break
        action = int(answer["action"])
        obs, reward, terminated, truncated, info = env.step(np.int64(action))
        done = terminated or truncated
        qty = float(info["exec_qty"])
        if qty != 0.0:
            _post(client, "/fills", {"decision_id": answer["decision_id"], "qty": qty,
                                     "price": float(info["exec_price"])})
        episode.actions.append(action)
        episode.exec_qty.append(qty)
        episode.exec_price.append(float(info["exec_price"]))
        episode.slippage_bps.append(float(info["slippage_bps"]))
        episode.rewards.append(float(reward))
        episode.equity.append(float(info["equity"]))
        episode.position.append(float(info["position"]))
    return episode


def run_paper(url: str, key: str, run: Path, scenario: str, episodes: int, seed: int,
              timeout: float = 30.0) -> list[PaperEpisode]:
    """Paper-trade ``episodes`` episodes (seeds ``seed, seed+1, …``) of ``run``'s env on ``scenario`` against the
    service at ``url`` with ``key`` (module docstring).

    Raises:
        FileNotFoundError / ValueError / TypeError: no run config, an unknown scenario, bad ``episodes``/``seed``.
        PaperError: the service answered an error, or serves another model than ``run``'s.
    """
    episodes = check_int("episodes", episodes, low=1)
    seed = check_int("seed", seed, low=0)
    env_id, kwargs = run_env(run, scenario)
    env = gym.make(env_id, **kwargs)
    headers = {"Authorization": f"Bearer {key}"}
    try:
        with httpx.Client(base_url=url, headers=headers, timeout=timeout) as client:
            ready = _get(client, "/ready")
            model = run if run.suffix == ".zip" else run / "model.zip"
            digest = hashlib.sha256(model.read_bytes()).hexdigest()[:12]  # serving.model_version's suffix
            if not str(ready["model_version"]).endswith("-" + digest):
                raise PaperError(_VERSION.format(ready["model_version"], digest))
            account = _get(client, "/account")["account"]
            return [play_episode(client, env, account, seed + k) for k in range(episodes)]
    finally:
        env.close()


def summary(episodes: list[PaperEpisode], scenario: str) -> str:
    """One line per episode (return bps, steps, trades, halt) and the mean return, as ``evaluate.py`` reports."""
    lines = [f"{scenario}: {len(episodes)} paper episode(s) decided by the service",
             "| seed | return_bps | steps | trades | halted | halt_reason |",
             "| --- | --- | --- | --- | --- | --- |"]
    for ep in episodes:
        lines.append(f"| {ep.seed} | {ep.return_bps:.2f} | {ep.steps} | {ep.trades} | {ep.halted} | "
                     f"{ep.halt_reason or ''} |")
    mean = float(np.mean([ep.return_bps for ep in episodes]))
    lines.append(f"mean return {mean:.2f} bps; halts {sum(ep.halted for ep in episodes)}")
    return "\n".join(lines)


__all__ = ["API", "SCENARIOS", "PaperEpisode", "PaperError", "decision_body", "play_episode", "run_env",
           "run_paper", "summary", "venue_state"]
