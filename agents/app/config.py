"""Run configuration: hyper-parameters from YAML (RL Zoo style), the algorithm registry, env and model building.

Hyper-parameters resolve in this order, later wins: ``configs/<algo>.yml``
``default`` section → its ``<env id>`` section → a user ``--config`` file (same
layout, or a flat mapping) → ``--hp key=value`` overrides from the command
line. The resolved mapping is what a run saves as ``config.yaml``.
"""

from __future__ import annotations

import copy
import difflib
import importlib
from collections.abc import Callable, Mapping
from dataclasses import fields
from pathlib import Path
from typing import Any

import gymnasium as gym
import torch
import yaml
from sb3_contrib import QRDQN, MaskablePPO
from stable_baselines3 import DQN, PPO
from stable_baselines3.common.monitor import Monitor
from stable_baselines3.common.vec_env import DummyVecEnv

import envs_registry  # noqa: F401  (registers the Janus-* ids)
from agents import (
    BasalGangliaCallback,
    BasalGangliaDQNPolicy,
    BasalGangliaMaskablePolicy,
    Cerebellum,
    CerebellumCallback,
    GatedJanusDQN,
)
from agents.app.yaml_io import load_yaml
from replay import SleepConfig, SleepPhaseCallback
from replay.types import DEFAULT_MAX_WALL_S
from wrappers import make_glass_box

CONFIG_DIR = Path(__file__).resolve().parents[2] / "configs"
ALGOS = ("janus-dqn", "janus-ppo", "dqn", "ppo", "qrdqn")
ALGO_CLASSES: dict[str, type] = {"janus-dqn": GatedJanusDQN, "janus-ppo": MaskablePPO, "dqn": DQN, "ppo": PPO,
                                 "qrdqn": QRDQN}
"""The SB3 class each algorithm trains and loads with (``algo_class``)."""
# keys that configure the run rather than the SB3 algorithm
RUN_KEYS = ("policy", "n_timesteps", "n_envs", "shield", "breakers", "sizing", "sleep", "env_kwargs", "lambda_logic",
            "basal_ganglia", "cerebellum")

_BAD_ALGO = "Unknown algo {!r}; expected one of {}"
_BAD_CONFIG = "{}: expected a mapping of hyper-parameters, got {}"
_BAD_OVERRIDE = "Expected --hp KEY=VALUE (VALUE in YAML syntax), got {!r}"
_MISSING_CONFIG = "Config file {} does not exist"


class ConfigError(ValueError):
    """A configuration file or override that cannot be used."""


def _merge(base: dict[str, Any], extra: Mapping[str, Any]) -> dict[str, Any]:
    """Recursive dict merge: nested mappings merge, everything else replaces."""
    out = copy.deepcopy(base)
    for key, value in extra.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def read_yaml(path: str | Path) -> dict[str, Any]:
    """A YAML mapping (:func:`~agents.app.yaml_io.load_yaml`); errors name the file (and the line for syntax
    errors)."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(_MISSING_CONFIG.format(path))
    try:
        data = load_yaml(path.read_text()) or {}
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f", line {mark.line + 1}" if mark is not None else ""
        raise ConfigError(f"{path}{where}: invalid YAML: {getattr(err, 'problem', err)}") from err
    if not isinstance(data, dict):
        raise ConfigError(_BAD_CONFIG.format(path, type(data).__name__))
    return data


def parse_override(text: str) -> tuple[list[str], Any]:
    """``"a.b=1e-3"`` → (["a", "b"], 0.001); the value is parsed as YAML."""
    key, sep, raw = text.partition("=")
    if not sep or not key.strip():
        raise ConfigError(_BAD_OVERRIDE.format(text))
    try:
        value = load_yaml(raw)
    except yaml.YAMLError as err:
        raise ConfigError(_BAD_OVERRIDE.format(text)) from err
    return key.strip().split("."), value


def resolve_hyperparams(
    algo: str,
    env_id: str,
    config: str | Path | None = None,
    overrides: list[str] | None = None,
) -> dict[str, Any]:
    """The resolved hyper-parameters of ``algo`` on ``env_id`` (see module docstring)."""
    if algo not in ALGOS:
        raise ConfigError(_BAD_ALGO.format(algo, list(ALGOS)))
    table = read_yaml(CONFIG_DIR / f"{algo}.yml")
    params = _merge(table.get("default", {}), table.get(env_id, {}))
    if config is not None:
        user = read_yaml(config)
        sections = {"default", env_id}
        if set(user) & sections:
            params = _merge(params, user.get("default", {}))
            params = _merge(params, user.get(env_id, {}))
        else:
            params = _merge(params, user)
    return apply_overrides(params, overrides or [])


def apply_overrides(params: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Set each ``--hp KEY=VALUE`` (dotted keys, YAML values) in ``params``, in place; returns ``params``.

    Raises:
        ConfigError: a malformed override or a dotted key through a non-mapping.
    """
    for text in overrides:
        keys, value = parse_override(text)
        node = params
        for key in keys[:-1]:
            node = node.setdefault(key, {})
            if not isinstance(node, dict):
                raise ConfigError(f"--hp {text!r}: {key!r} is not a mapping")
        node[keys[-1]] = value
    return params


def algo_kwargs(params: Mapping[str, Any]) -> dict[str, Any]:
    """The keyword arguments meant for the SB3 algorithm's constructor.

    ``policy_kwargs.features_extractor_class`` may name a class as ``"module:Class"``
    (only from this project's ``agents`` package or from ``stable_baselines3``).
    """
    kwargs = {k: copy.deepcopy(v) for k, v in params.items() if k not in RUN_KEYS}
    policy_kwargs = kwargs.get("policy_kwargs") or {}
    name = policy_kwargs.get("features_extractor_class")
    if isinstance(name, str):
        policy_kwargs["features_extractor_class"] = _named_class(name)
    return kwargs


def _named_class(name: str) -> type:
    module, _, attr = name.partition(":")
    if not attr or not (module == "agents" or module.startswith(("agents.", "stable_baselines3"))):
        raise ConfigError(f"Expected a class as 'agents.module:Class' or 'stable_baselines3...:Class', got {name!r}")
    try:
        return getattr(importlib.import_module(module), attr)
    except (ImportError, AttributeError) as err:
        raise ConfigError(f"Cannot import {name!r}: {err}") from err


def env_factory(env_id: str, env_kwargs: Mapping[str, Any], *, shield: bool, seed: int, rank: int,
                breakers: Mapping[str, Any] | bool | None = None,
                sizing: Mapping[str, Any] | bool | None = None) -> Callable[[], gym.Env]:
    """A thunk building one monitored env in the glass box (:func:`wrappers.make_glass_box`): the LTN shield when
    ``shield``, the amygdala's breakers when ``breakers``, the hypothalamus's sizing when ``sizing`` (``True`` or
    its settings).

    ``breakers`` is ``True`` for the default thresholds or a mapping of ``Amygdala`` keyword arguments.
    """

    def make() -> gym.Env:
        env = make_glass_box(gym.make(env_id, **dict(env_kwargs)), shield=shield, breakers=breakers or None,
                             sizing=sizing or None)
        env = Monitor(env)
        env.reset(seed=seed + rank)
        env.action_space.seed(seed + rank)
        return env

    return make


def make_vec_env(env_id: str, params: Mapping[str, Any], seed: int, n_envs: int | None = None,
                 cerebellum: Cerebellum | None = None):
    """SB3 ``DummyVecEnv`` of ``n_envs`` monitored copies (seeds ``seed..seed+n-1``); with breakers on, a
    ``cerebellum`` feeds the slippage breaker its prediction before each order."""
    n = int(n_envs if n_envs is not None else params.get("n_envs", 1))
    if n < 1:
        raise ConfigError(f"Expected n_envs >= 1, got {n}")
    kwargs = dict(params.get("env_kwargs", {}))
    shield = bool(params.get("shield", False))
    breakers = with_slippage_predictor(params.get("breakers") or None, cerebellum)
    sizing = params.get("sizing") or None
    return DummyVecEnv([env_factory(env_id, kwargs, shield=shield, breakers=breakers, sizing=sizing, seed=seed,
                                    rank=i) for i in range(n)])


def build_model(algo: str, env: Any, params: Mapping[str, Any], *, seed: int, tensorboard_log: str | None,
                device: str = "cpu") -> Any:
    """Construct the SB3 model of ``algo`` with the resolved hyper-parameters."""
    kwargs = algo_kwargs(params)
    policy = params.get("policy", "MultiInputPolicy")
    common = {"seed": seed, "tensorboard_log": tensorboard_log, "device": device, "verbose": 0}
    cls = algo_class(algo)
    if algo == "janus-dqn":
        policy = _basal_ganglia_policy("dqn", policy)
        kwargs["lambda_logic"] = float(params.get("lambda_logic", 2.0))
    elif algo == "janus-ppo":
        policy = _basal_ganglia_policy("maskable", policy)
    return cls(policy, env, **kwargs, **common)


def algo_class(algo: str) -> type:
    """The SB3 class that ``load`` must be called on for ``algo``."""
    if algo not in ALGO_CLASSES:
        raise ConfigError(_BAD_ALGO.format(algo, list(ALGOS)))
    return ALGO_CLASSES[algo]


def _basal_ganglia_policy(kind: str, default: Any) -> Any:
    """The basal-ganglia policy class for ``kind`` (``default`` only when the config names another policy)."""
    if default not in ("MultiInputPolicy", "MlpPolicy"):
        return default  # an explicit policy in the config wins
    return {"dqn": BasalGangliaDQNPolicy, "maskable": BasalGangliaMaskablePolicy}[kind]


CEREBELLUM_FILE = "cerebellum.pt"
"""The trained cerebellum's weights in a run folder (a torch state dict, read with ``weights_only=True``)."""


def make_cerebellum(algo: str, env_id: str, params: Mapping[str, Any], *, seed: int) -> Cerebellum | None:
    """The JANUS algorithms' cerebellum, sized for the env (``Cerebellum.from_env``) with the run's ``cerebellum``
    settings and seeded weights; None for the other algorithms and for envs it cannot size."""
    if not algo.startswith("janus-"):
        return None
    probe = gym.make(env_id, **dict(params.get("env_kwargs", {})))
    try:
        config = getattr(probe.unwrapped, "config", None)
        if not hasattr(config, "n_levels"):
            return None  # e.g. the execution env's parent order: no market-order slippage to predict
        return Cerebellum.from_env(probe, **{"seed": seed, **dict(params.get("cerebellum") or {})})
    finally:
        probe.close()


def load_cerebellum(run_dir: Path, env: gym.Env, params: Mapping[str, Any]) -> Cerebellum | None:
    """The run's trained cerebellum (``CEREBELLUM_FILE``, loaded with ``weights_only=True``), None if it has none."""
    path = Path(run_dir) / CEREBELLUM_FILE
    if not path.is_file():
        return None
    cerebellum = Cerebellum.from_env(env, **dict(params.get("cerebellum") or {}))
    cerebellum.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
    return cerebellum


def with_slippage_predictor(breakers: Any, cerebellum: Cerebellum | None) -> Any:
    """The breaker settings with ``slippage_predictor`` = the cerebellum's prediction made *before* each order
    (the amygdala's 2× slippage breaker compares it with the fill); unchanged when the breakers are off or there is
    no cerebellum, or when the settings already name a predictor."""
    if cerebellum is None or breakers is None or breakers is False:
        return breakers
    settings = dict(breakers) if isinstance(breakers, Mapping) else {}
    settings.setdefault("slippage_predictor", cerebellum.predictor)
    return settings


def brain_callbacks(algo: str, params: Mapping[str, Any], cerebellum: Cerebellum | None) -> list[Any]:
    """The online-learning callbacks of the JANUS algorithms: cerebellum (slippage) and basal ganglia (No-Go).

    The cerebellum runs first so the No-Go labels can use its predicted slippage.
    """
    if not algo.startswith("janus-") or cerebellum is None:
        return []
    return [CerebellumCallback(cerebellum),
            BasalGangliaCallback(slippage_predictor=cerebellum.predictor, **dict(params.get("basal_ganglia", {})))]


_SLEEP_TRIGGERS = ("every_n_steps", "on_episode_end")
_BAD_SLEEP = "sleep: expected a mapping of every_n_steps, on_episode_end and cycle, got {!r}"
_BAD_CYCLE = "sleep.cycle: expected a mapping of replay.SleepConfig fields, got {!r}"
_UNKNOWN_SLEEP_KEY = (
    "sleep.{}: unknown setting; sleep takes every_n_steps and on_episode_end (when to sleep) "
    "and cycle (replay.SleepConfig fields: what a sleep does)"
)
_SLEEP_FIELD_OUTSIDE_CYCLE = "sleep.{0}: a replay.SleepConfig field; set sleep.cycle.{0}"
_UNKNOWN_CYCLE_KEY = "sleep.cycle.{}: not a replay.SleepConfig field{}"
_REMOVED_FULL_CYCLE = (
    "sleep.full_cycle was removed: a sleep runs the full cycle unless sleep.cycle.swr_only is true; "
    "delete the key"
)
_REMOVED_BUDGET = (
    "{}budget_s was removed: a wall-clock replay budget made what is learned depend on machine load. "
    "SWR replay now runs exactly n_sequences sequences; its wall-clock safety cap is sleep.cycle.max_wall_s "
    "(default {} s, logged when hit)"
)


def sleep_callback(algo: str, params: Mapping[str, Any], *, seed: int, run_dir: str | Path,
                   env: Any = None) -> Any:
    """The ``replay.SleepPhaseCallback`` that ``params["sleep"]`` configures (None without one).

    The YAML ``sleep`` block maps onto it in one way::

        sleep:
          every_n_steps: 2500     # when to sleep: the callback's own arguments
          on_episode_end: false
          cycle:                  # what a sleep does: replay.SleepConfig fields, nothing else
            n_sequences: 16
            swr_only: false       # true: SWR replay only (no schemas, UMAP, vector store)

    (``--hp sleep.every_n_steps=…``, ``--hp sleep.cycle.<field>=…`` override
    single values). In ``cycle``, ``seed`` defaults to the run seed,
    ``plot_dir`` to ``<run_dir>/plots/umap`` and ``step_seconds`` to the
    env's ``step_seconds`` (market time for schema ages). Only ``janus-dqn``
    sleeps (SWR replay needs a DQN-family model with a prioritized buffer).

    Raises:
        ConfigError: (one line) ``sleep`` or ``sleep.cycle`` is not a
            mapping; an unknown key, a SleepConfig field outside ``cycle``, a
            removed key (``full_cycle``, ``budget_s``) or an invalid value.
    """
    sleep = params.get("sleep")
    if algo != "janus-dqn" or not sleep:
        return None
    if not isinstance(sleep, Mapping):
        raise ConfigError(_BAD_SLEEP.format(sleep))
    names = [f.name for f in fields(SleepConfig)]
    triggers = {key: value for key, value in sleep.items() if key != "cycle"}
    for key in triggers:
        if key == "budget_s":
            raise ConfigError(_REMOVED_BUDGET.format("sleep.", DEFAULT_MAX_WALL_S))
        if key == "full_cycle":
            raise ConfigError(_REMOVED_FULL_CYCLE)
        if key in names:
            raise ConfigError(_SLEEP_FIELD_OUTSIDE_CYCLE.format(key))
        if key not in _SLEEP_TRIGGERS:
            raise ConfigError(_UNKNOWN_SLEEP_KEY.format(key))
    cycle = sleep.get("cycle") or {}
    if not isinstance(cycle, Mapping):
        raise ConfigError(_BAD_CYCLE.format(cycle))
    for key in cycle:
        if key == "budget_s":
            raise ConfigError(_REMOVED_BUDGET.format("sleep.cycle.", DEFAULT_MAX_WALL_S))
        if key not in names:
            close = difflib.get_close_matches(str(key), names, n=1)
            raise ConfigError(_UNKNOWN_CYCLE_KEY.format(key, f" (did you mean {close[0]}?)" if close else ""))
    defaults: dict[str, Any] = {"plot_dir": str(Path(run_dir) / "plots" / "umap"), "seed": seed}
    base = env.envs[0].unwrapped if hasattr(env, "envs") else getattr(env, "unwrapped", None)
    step_seconds = getattr(base, "step_seconds", None)
    if step_seconds is not None:
        defaults["step_seconds"] = float(step_seconds)
    try:
        return SleepPhaseCallback(SleepConfig(**{**defaults, **cycle}), **triggers)
    except (TypeError, ValueError) as err:  # invalid values
        raise ConfigError(f"sleep: {err}") from err
