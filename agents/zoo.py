"""Algorithm zoo: hyper-parameters from YAML (RL Zoo style), env and model construction for the CLIs.

Hyper-parameters resolve in this order, later wins: ``configs/<algo>.yml``
``default`` section → its ``<env id>`` section → a user ``--config`` file (same
layout, or a flat mapping) → ``--hp key=value`` overrides from the command
line. The resolved mapping is what a run saves as ``config.yaml``.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import gymnasium as gym
import yaml

import envs_registry  # noqa: F401  (registers the Janus-* ids)

CONFIG_DIR = Path(__file__).resolve().parents[1] / "configs"
ALGOS = ("janus-dqn", "janus-ppo", "dqn", "ppo", "qrdqn")
# keys that configure the run rather than the SB3 algorithm
RUN_KEYS = ("policy", "n_timesteps", "n_envs", "shield", "breakers", "sleep", "env_kwargs", "lambda_logic",
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
    """``yaml.safe_load`` a mapping; errors name the file (and the line for syntax errors)."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(_MISSING_CONFIG.format(path))
    try:
        data = yaml.safe_load(path.read_text()) or {}
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
        value = yaml.safe_load(raw)
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
    import importlib

    module, _, attr = name.partition(":")
    if not attr or not (module == "agents" or module.startswith(("agents.", "stable_baselines3"))):
        raise ConfigError(f"Expected a class as 'agents.module:Class' or 'stable_baselines3...:Class', got {name!r}")
    try:
        return getattr(importlib.import_module(module), attr)
    except (ImportError, AttributeError) as err:
        raise ConfigError(f"Cannot import {name!r}: {err}") from err


def env_factory(env_id: str, env_kwargs: Mapping[str, Any], *, shield: bool, seed: int, rank: int,
                breakers: Mapping[str, Any] | bool | None = None) -> Callable[[], gym.Env]:
    """A thunk building one monitored env, optionally behind the LTN shield and the amygdala's breakers.

    ``breakers`` is ``True`` for the default thresholds or a mapping of ``Amygdala`` keyword arguments.
    """

    def make() -> gym.Env:
        from stable_baselines3.common.monitor import Monitor

        env = gym.make(env_id, **dict(env_kwargs))
        if shield:
            from wrappers import LTNShield

            env = LTNShield(env)
        if breakers:
            from wrappers import Amygdala

            env = Amygdala(env, **(dict(breakers) if isinstance(breakers, Mapping) else {}))
        env = Monitor(env)
        env.reset(seed=seed + rank)
        env.action_space.seed(seed + rank)
        return env

    return make


def make_vec_env(env_id: str, params: Mapping[str, Any], seed: int, n_envs: int | None = None):
    """SB3 ``DummyVecEnv`` of ``n_envs`` monitored copies (seeds ``seed..seed+n-1``)."""
    from stable_baselines3.common.vec_env import DummyVecEnv

    n = int(n_envs if n_envs is not None else params.get("n_envs", 1))
    if n < 1:
        raise ConfigError(f"Expected n_envs >= 1, got {n}")
    kwargs = dict(params.get("env_kwargs", {}))
    shield = bool(params.get("shield", False))
    breakers = params.get("breakers") or None
    return DummyVecEnv([env_factory(env_id, kwargs, shield=shield, breakers=breakers, seed=seed, rank=i)
                        for i in range(n)])


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
    if algo == "janus-dqn":
        from agents.basal_ganglia import GatedJanusDQN

        return GatedJanusDQN
    if algo == "janus-ppo":
        from sb3_contrib import MaskablePPO

        return MaskablePPO
    if algo == "dqn":
        from stable_baselines3 import DQN

        return DQN
    if algo == "ppo":
        from stable_baselines3 import PPO

        return PPO
    if algo == "qrdqn":
        from sb3_contrib import QRDQN

        return QRDQN
    raise ConfigError(_BAD_ALGO.format(algo, list(ALGOS)))


def _basal_ganglia_policy(kind: str, default: Any) -> Any:
    """The basal-ganglia policy class for ``kind`` (``default`` only when the config names another policy)."""
    from agents import basal_ganglia

    if default not in ("MultiInputPolicy", "MlpPolicy"):
        return default  # an explicit policy in the config wins
    return {"dqn": basal_ganglia.BasalGangliaDQNPolicy, "maskable": basal_ganglia.BasalGangliaMaskablePolicy}[kind]


def brain_callbacks(algo: str, params: Mapping[str, Any], env: Any) -> list[Any]:
    """The online-learning callbacks of the JANUS algorithms: cerebellum (slippage) and basal ganglia (No-Go).

    The cerebellum runs first so the No-Go labels can use its predicted slippage.
    """
    if not algo.startswith("janus-"):
        return []
    from agents.basal_ganglia import BasalGangliaCallback
    from agents.cerebellum import Cerebellum, CerebellumCallback

    base = env.envs[0].unwrapped if hasattr(env, "envs") else env.unwrapped
    config = base.config
    cerebellum = Cerebellum(n_levels=config.n_levels, lot=config.lot, **dict(params.get("cerebellum", {})))
    return [CerebellumCallback(cerebellum),
            BasalGangliaCallback(slippage_predictor=cerebellum.predictor, **dict(params.get("basal_ganglia", {})))]


_BAD_SLEEP = "sleep: expected a mapping of replay.SleepPhaseCallback settings, got {!r}"
_BAD_CYCLE = "sleep.cycle: expected a mapping of replay.SleepConfig fields, got {!r}"
_REMOVED_BUDGET = (
    "{}budget_s was removed: a wall-clock replay budget made what is learned depend on machine load. "
    "SWR replay now runs exactly n_sequences sequences; its wall-clock safety cap is {}max_wall_s "
    "(default {} s, logged when hit)"
)
_CYCLE_WITHOUT_FULL = "sleep.cycle configures the full sleep cycle; set sleep.full_cycle: true, or drop sleep.cycle"


def sleep_callback(algo: str, params: Mapping[str, Any], *, seed: int, run_dir: str | Path,
                   env: Any = None) -> Any:
    """The ``replay.SleepPhaseCallback`` that ``params["sleep"]`` configures (None without one).

    Only ``janus-dqn`` sleeps (SWR replay needs a DQN-family model with a
    prioritized buffer). ``sleep`` holds the callback's arguments; with
    ``full_cycle: true`` every cycle setting, SWR ones included, goes in
    ``sleep.cycle`` (``replay.SleepConfig`` fields), whose ``seed`` defaults to
    the run seed, ``plot_dir`` to ``<run_dir>/plots/umap`` and ``step_seconds``
    to the env's ``step_seconds`` (market time for schema ages). Without
    ``full_cycle`` the callback's ``seed`` defaults to the run seed.

    Raises:
        ConfigError: ``sleep`` or ``sleep.cycle`` is not a mapping, names an
            unknown or removed setting (``budget_s``), gives an SWR setting
            that the chosen mode would ignore, or holds an invalid value.
    """
    sleep = params.get("sleep")
    if algo != "janus-dqn" or not sleep:
        return None
    if not isinstance(sleep, Mapping):
        raise ConfigError(_BAD_SLEEP.format(sleep))
    from replay import SleepConfig, SleepPhaseCallback
    from replay.types import DEFAULT_MAX_WALL_S

    sleep = dict(sleep)
    cycle = sleep.pop("cycle", None) or {}
    if not isinstance(cycle, Mapping):
        raise ConfigError(_BAD_CYCLE.format(cycle))
    if "budget_s" in sleep:
        raise ConfigError(_REMOVED_BUDGET.format("sleep.", "sleep.cycle." if sleep.get("full_cycle") else "sleep.",
                                                 DEFAULT_MAX_WALL_S))
    if "budget_s" in cycle:
        raise ConfigError(_REMOVED_BUDGET.format("sleep.cycle.", "sleep.cycle.", DEFAULT_MAX_WALL_S))
    try:
        if sleep.get("full_cycle"):
            defaults: dict[str, Any] = {"plot_dir": str(Path(run_dir) / "plots" / "umap"), "seed": seed}
            base = env.envs[0].unwrapped if hasattr(env, "envs") else getattr(env, "unwrapped", None)
            step_seconds = getattr(base, "step_seconds", None)
            if step_seconds is not None:
                defaults["step_seconds"] = float(step_seconds)
            config = SleepConfig(**{**defaults, **cycle})
            return SleepPhaseCallback(sleep_config=config, **sleep)
        if cycle:
            raise ConfigError(_CYCLE_WITHOUT_FULL)
        return SleepPhaseCallback(**{"seed": seed, **sleep})
    except ConfigError:
        raise
    except (TypeError, ValueError) as err:  # unknown names (TypeError) or invalid values
        raise ConfigError(f"sleep: {err}") from err
