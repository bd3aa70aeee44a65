"""Run configuration: hyper-parameters from YAML (RL Zoo style), the algorithm registry, env and model building.

Hyper-parameters resolve in this order, later wins: ``configs/<algo>.yml``
``default`` section → its ``<env id>`` section → a user ``--config`` file (same
layout, or a flat mapping) → ``--hp key=value`` overrides from the command
line. Nested mappings merge key by key, with one exception: within one file, an
``<env id>`` section's ``env_kwargs`` *replaces* that file's ``default``
``env_kwargs`` (env settings belong to one env: ``Janus-Execution-v0`` takes
``horizon``, and the ``episode_steps`` of the LOB envs' default would collide
with it). The resolved mapping is checked (:func:`check_hyperparams`: every key
known to the algorithm, every value inside :data:`HYPERPARAM_RANGES`) and is
what a run saves as ``config.yaml``.
"""

from __future__ import annotations

import copy
import difflib
import importlib
import inspect
import re
from collections.abc import Callable, Mapping
from dataclasses import fields
from pathlib import Path
from typing import Any

import gymnasium as gym
import torch
import yaml
from sb3_contrib import QRDQN
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
    JanusPPO,
)
from agents.app.yaml_io import load_yaml
from janus_env.checks import check_bool, check_choice, check_int, check_mapping, check_number
from replay import MemoryReader, SleepConfig, SleepPhaseCallback
from replay.types import DEFAULT_MAX_WALL_S
from wrappers import make_glass_box

CONFIG_DIR = Path(__file__).resolve().parents[2] / "configs"
ALGOS = ("janus-dqn", "janus-ppo", "dqn", "ppo", "qrdqn")
ALGO_CLASSES: dict[str, type] = {"janus-dqn": GatedJanusDQN, "janus-ppo": JanusPPO, "dqn": DQN, "ppo": PPO,
                                 "qrdqn": QRDQN}
"""The SB3 class each algorithm trains and loads with (``algo_class``)."""
# keys that configure the run rather than the SB3 algorithm
RUN_KEYS = ("policy", "n_timesteps", "n_envs", "shield", "shield_training", "breakers", "sizing", "sleep", "env_kwargs",
            "lambda_logic", "basal_ganglia", "cerebellum", "cerebellum_training", "normalize_reward")
SHIELD_TRAINING = ("enforce", "observe", "none")
"""``shield_training``: the training envs' shield enforces (masks and overrides, as in deployment), only observes
(scores every step for the logical loss and the No-Go labels, executes the proposal: ``LTNShield(enforce=False)``),
or is left out of training (``none``: the rules act at decision time only; ``lambda_logic`` must then be 0, as the
loss has no scores to learn from). Evaluation, the tournament and the service always enforce. What each costs:
``benchmarks/README.md``, "Ablation"."""
_LOSS_WITHOUT_SCORES = ("lambda_logic = {} needs the shield's scores in training, but shield_training is 'none'; set "
                        "lambda_logic: 0 or shield_training: observe / enforce")

_BAD_ALGO = "Unknown algo {!r}; expected one of {}"
_BAD_CONFIG = "{}: expected a mapping of hyper-parameters, got {}"
_BAD_OVERRIDE = "Expected --hp KEY=VALUE (VALUE in YAML syntax), got {!r}"
_MISSING_CONFIG = "Config file {} does not exist"
_BAD_SECTION = "{}: expected section {!r} to be a mapping of hyper-parameters, got {!r}"
_BAD_ENV = "Unknown env id {!r}{}; the JANUS ids are {}"
_NOT_A_RUN_CONFIG = "{}: not a run config of train.py (expected {})"
_RUN_EXISTS = "run folder {} exists; pass --resume {} to continue it"
_CANNOT_CREATE = "cannot create the run folder {}: {}"


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


def check_env_id(env_id: Any) -> str:
    """``env_id``, checked to be registered with Gymnasium (``envs_registry`` registers the ``Janus-*`` ids).

    Raises:
        ConfigError: ``"Unknown env id 'Janus-LOB-v1' (did you mean Janus-LOB-v0?); the JANUS ids are [...]"``.
    """
    if not isinstance(env_id, str) or env_id not in gym.registry:
        close = difflib.get_close_matches(str(env_id), envs_registry.ENV_IDS, n=1)
        hint = f" (did you mean {close[0]}?)" if close else ""
        raise ConfigError(_BAD_ENV.format(env_id, hint, list(envs_registry.ENV_IDS)))
    return env_id


def resolve_hyperparams(
    algo: str,
    env_id: str,
    config: str | Path | None = None,
    overrides: list[str] | None = None,
) -> dict[str, Any]:
    """The resolved hyper-parameters of ``algo`` on ``env_id`` (see module docstring), checked.

    Raises:
        ConfigError: an unknown algorithm, a bad config file or override, a key ``algo`` does not take, or a value
            outside its range (:func:`check_hyperparams`).
    """
    if algo not in ALGOS:
        raise ConfigError(_BAD_ALGO.format(algo, list(ALGOS)))
    path = CONFIG_DIR / f"{algo}.yml"
    params = _file_params(read_yaml(path), env_id, path)
    if config is not None:
        user = read_yaml(config)
        if set(user) & {"default", env_id}:
            params = _merge(params, _file_params(user, env_id, config))
        else:
            params = _merge(params, user)
    params = apply_overrides(params, overrides or [])
    check_hyperparams(algo, params)
    return params


def _file_params(table: Mapping[str, Any], env_id: str, path: str | Path) -> dict[str, Any]:
    """One config file's ``default`` section merged with its ``env_id`` section, whose ``env_kwargs`` (if it has
    any) replace the default's (module docstring)."""
    default, specific = (_section(table, name, path) for name in ("default", env_id))
    if "env_kwargs" in specific:
        default = {key: value for key, value in default.items() if key != "env_kwargs"}
    return _merge(default, specific)


def _section(table: Mapping[str, Any], name: str, path: str | Path) -> dict[str, Any]:
    section = table.get(name)
    if section is None:
        return {}
    if not isinstance(section, dict):
        raise ConfigError(_BAD_SECTION.format(path, name, section))
    return section


def check_run_config(config: Mapping[str, Any], path: str | Path) -> None:
    """A run's ``config.yaml`` (read to resume or evaluate it): ``run`` (env, algo, seed, timesteps,
    checkpoint_every) and ``hyperparams`` as ``train.py`` writes them, the hyper-parameters checked again (the
    file may come from anyone).

    Raises:
        ConfigError: (naming the file) anything else.
    """
    run, params = config.get("run"), config.get("hyperparams")
    if not isinstance(run, dict) or not isinstance(params, dict):
        raise ConfigError(_NOT_A_RUN_CONFIG.format(path, "`run` and `hyperparams` mappings"))
    try:
        check_env_id(run.get("env"))
        check_choice("run.algo", run.get("algo"), ALGOS)
        check_int("run.seed", run.get("seed"))
        for key in ("timesteps", "checkpoint_every"):
            check_int(f"run.{key}", run.get(key), low=1)
        check_hyperparams(run["algo"], params)
    except (TypeError, ValueError) as err:
        raise ConfigError(f"{path}: {err}") from err


def new_run_folder(path: Path) -> Path:
    """Create the new run folder ``path`` (and its parents); returns it.

    Raises:
        FileExistsError: ``path`` exists (a run is never written over).
        ConfigError: it cannot be created: a parent is a file, no permission, ... (the message names it).
    """
    if path.exists():
        raise FileExistsError(_RUN_EXISTS.format(path, path))
    try:
        path.mkdir(parents=True)
    except FileExistsError:
        raise FileExistsError(_RUN_EXISTS.format(path, path)) from None
    except OSError as err:
        raise ConfigError(_CANNOT_CREATE.format(path, err.strerror or err)) from err
    return path


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


def _check_train_freq(name: str, value: Any) -> Any:
    """``train_freq``: an int ≥ 1 (env steps), or ``[n, "step" | "episode"]`` with an int n ≥ 1."""
    if isinstance(value, (list, tuple)) and len(value) == 2:
        check_int(f"{name}[0]", value[0], low=1)
        check_choice(f"{name}[1]", value[1], ("step", "episode"))
        return value
    return check_int(name, value, low=1)


def _check_none(name: str, value: Any) -> None:
    """Keys whose value is a class SB3 picks for the algorithm: a YAML config can only leave them at None."""
    if value is not None:
        raise ConfigError(_CLASS_FROM_CONFIG.format(name, value))


def _check_optional_mapping(name: str, value: Any) -> Any:
    return value if value is None else check_mapping(name, value)


def _check_switch(name: str, value: Any) -> Any:
    """``breakers`` / ``sizing``: a bool, None, or a mapping of the wrapper's settings (checked when it is built)."""
    if value is None or isinstance(value, bool):
        return value
    if not isinstance(value, Mapping):
        raise TypeError(_BAD_SWITCH.format(name, value))
    return value


HYPERPARAM_RANGES: dict[str, tuple[Callable[..., Any], dict[str, Any]]] = {
    # SB3 algorithm arguments (a key the algorithm does not take is refused before its range is read)
    "learning_rate": (check_number, {"low": 0, "low_open": True}),
    "gamma": (check_number, {"low": 0, "high": 1}),
    "gae_lambda": (check_number, {"low": 0, "high": 1}),
    "clip_range": (check_number, {"low": 0, "low_open": True}),
    "clip_range_vf": (check_number, {"low": 0, "low_open": True, "optional": True}),
    "ent_coef": (check_number, {"low": 0}),
    "vf_coef": (check_number, {"low": 0}),
    "max_grad_norm": (check_number, {"low": 0, "low_open": True}),
    "target_kl": (check_number, {"low": 0, "low_open": True, "optional": True}),
    "n_steps": (check_int, {"low": 1}),
    "batch_size": (check_int, {"low": 1}),
    "n_epochs": (check_int, {"low": 1}),
    "buffer_size": (check_int, {"low": 1}),
    "learning_starts": (check_int, {"low": 0}),
    "tau": (check_number, {"low": 0, "high": 1, "low_open": True}),
    "train_freq": (_check_train_freq, {}),
    "gradient_steps": (check_int, {"low": -1}),
    "target_update_interval": (check_int, {"low": 1}),
    "exploration_fraction": (check_number, {"low": 0, "high": 1}),
    "exploration_initial_eps": (check_number, {"low": 0, "high": 1}),
    "exploration_final_eps": (check_number, {"low": 0, "high": 1}),
    "stats_window_size": (check_int, {"low": 1}),
    "sde_sample_freq": (check_int, {"low": -1}),
    "normalize_advantage": (check_bool, {}),
    "use_sde": (check_bool, {}),
    "optimize_memory_usage": (check_bool, {}),
    "policy_kwargs": (_check_optional_mapping, {}),
    "replay_buffer_kwargs": (_check_optional_mapping, {}),
    "rollout_buffer_kwargs": (_check_optional_mapping, {}),
    "replay_buffer_class": (_check_none, {}),
    "rollout_buffer_class": (_check_none, {}),
    # run settings (RUN_KEYS); `policy` and `sleep` are checked on their own
    "n_timesteps": (check_int, {"low": 1}),
    "n_envs": (check_int, {"low": 1}),
    "shield": (check_bool, {}),
    "shield_training": (check_choice, {"choices": SHIELD_TRAINING}),
    "normalize_reward": (check_bool, {}),
    "lambda_logic": (check_number, {"low": 0}),
    "action_masking": (check_bool, {}),
    "env_kwargs": (check_mapping, {}),
    "breakers": (_check_switch, {}),
    "sizing": (_check_switch, {}),
    "cerebellum": (_check_optional_mapping, {}),
    "cerebellum_training": (_check_optional_mapping, {}),
    "basal_ganglia": (_check_optional_mapping, {}),
}
"""Every hyper-parameter's type and range, one table for every algorithm: key → (check, its arguments), the
checks of :mod:`janus_env.checks`. The ranges are where SB3's formulas make sense: a discount or GAE λ in [0, 1]
(γ > 1 diverges), rates, clip ranges and gradient norms > 0, coefficients ≥ 0, the soft-update τ in (0, 1], ε and
exploration fractions in [0, 1], sizes and intervals ≥ 1, ``learning_starts`` ≥ 0, ``gradient_steps`` ≥ −1 and
``sde_sample_freq`` ≥ −1 (−1: SB3's "as many as env steps" / "only at rollout start")."""

RUN_KEY_ALGOS: dict[str, tuple[str, ...]] = {
    "lambda_logic": ("janus-dqn", "janus-ppo"),
    "shield_training": ("janus-dqn", "janus-ppo"),
    "basal_ganglia": ("janus-dqn", "janus-ppo"),
    "cerebellum": ("janus-dqn", "janus-ppo"),
    "cerebellum_training": ("janus-dqn", "janus-ppo"),
    "sleep": ("janus-dqn", "janus-ppo"),
    # on-policy only: the off-policy learners' sleep replays the buffer's rewards outside SB3's normalizing sampler
    "normalize_reward": ("janus-ppo", "ppo"),
}
"""Run settings only some algorithms use (elsewhere they would be ignored silently, so they are refused)."""
SET_BY_TRAIN = ("env", "seed", "device", "verbose", "tensorboard_log", "_init_setup_model")
"""Constructor arguments ``train.py`` sets itself (``--seed``, the run folder, CPU); refused in a config."""

_UNKNOWN_KEY = "Unknown hyper-parameter {!r} for {}{}; expected one of {}"
_UNKNOWN_BRAIN_KEY = "{}.{}: unknown setting{}; {} takes the arguments of {}: {}"
_SET_BY_TRAIN = "Hyper-parameter {!r} is set by train.py (--seed, the run folder), not by a config"
_RUN_KEY_ALGO = "Hyper-parameter {!r} applies to {} only, not to {!r}"
_BAD_POLICY = "Expected `policy` to be one of {} for {}, got {!r}"
_CLASS_FROM_CONFIG = "Expected `{}` to be null (SB3 picks the class for the algorithm), got {!r}"
_BAD_SWITCH = "Expected `{}` to be a bool, None or a mapping of its settings, got {!r}"
_JANUS_PPO_SHIELD = ("janus-ppo decides over the LTN shield's action masks: it needs `shield: true`, got {!r} "
                     "(the shield wraps the Janus-LOB envs; for an unshielded PPO, e.g. on Janus-Execution-v0, "
                     "use --algo ppo)")
_MODEL_KEY = "{}: {!r} is not an argument of {}"
_EXTRACTOR_KEY = ("; the features extractor's arguments are the config's (configs/<algo>.yml) for its own extractor: "
                  "replace them with the new class's, e.g. --hp policy_kwargs.features_extractor_kwargs={}")
_MODEL_REJECTED = "{} rejected the hyper-parameters: {}"
_UNEXPECTED_KWARG = re.compile(r"([\w.]+)\(\) got an unexpected keyword argument '(\w+)'")


def algo_arguments(algo: str) -> tuple[str, ...]:
    """The keyword arguments of ``algo``'s SB3 class, through every ``**kwargs`` it passes on (MRO order).

    Raises:
        ConfigError: an unknown algorithm.
    """
    names: list[str] = []
    for klass in algo_class(algo).__mro__:
        init = klass.__dict__.get("__init__")
        if init is None:
            continue
        parameters = inspect.signature(init).parameters.values()
        names += [p.name for p in parameters if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)
                  and p.name not in ("self", "policy") and p.name not in names]
        if not any(p.kind == p.VAR_KEYWORD for p in parameters):
            break
    return tuple(names)


def policy_choices(algo: str) -> tuple[str, ...]:
    """The ``policy`` names ``algo`` accepts: SB3's aliases (the JANUS algorithms swap in their basal-ganglia
    policy for ``MultiInputPolicy``/``MlpPolicy``, so only those two)."""
    if algo.startswith("janus-"):
        return ("MultiInputPolicy", "MlpPolicy")
    return tuple(algo_class(algo).policy_aliases)


BRAIN_BLOCKS: dict[str, tuple[type, tuple[str, ...]]] = {
    "cerebellum": (Cerebellum, ()),
    "cerebellum_training": (CerebellumCallback, ("cerebellum", "verbose")),
    "basal_ganglia": (BasalGangliaCallback, ("slippage_predictor", "verbose")),
}
"""The brain's config blocks: the class whose keyword arguments each block is, and the arguments ``train.py`` sets
itself (the cerebellum the callback trains, the No-Go labels' slippage predictor, verbosity)."""


def brain_block_keys(block: str) -> tuple[str, ...]:
    """The settings a :data:`BRAIN_BLOCKS` block takes: its class's keyword arguments, less those train.py sets."""
    cls, set_by_train = BRAIN_BLOCKS[block]
    params = inspect.signature(cls.__init__).parameters.values()
    return tuple(sorted(p.name for p in params if p.default is not p.empty and p.name not in set_by_train))


def check_brain_block(block: str, settings: Mapping[str, Any]) -> None:
    """Refuse a setting of a :data:`BRAIN_BLOCKS` block its class does not take (values are checked by the class
    when ``train.py`` builds it).

    Raises:
        ConfigError: naming ``block.key``, the closest setting and every accepted one.
    """
    keys = brain_block_keys(block)
    for key in settings:
        if key not in keys:
            close = difflib.get_close_matches(str(key), keys, n=1)
            hint = f" (did you mean {close[0]}?)" if close else ""
            cls = BRAIN_BLOCKS[block][0]
            raise ConfigError(_UNKNOWN_BRAIN_KEY.format(block, key, hint, block, f"agents.{cls.__name__}",
                                                        ", ".join(keys)))


def check_hyperparams(algo: str, params: Mapping[str, Any], *, run_keys: bool = True) -> None:
    """Check resolved hyper-parameters before anything is built: every key one that ``algo`` takes (its SB3
    class's keyword arguments, and with ``run_keys`` the run settings :data:`RUN_KEYS` it uses), every value of
    the right type and inside :data:`HYPERPARAM_RANGES`, ``policy`` one of :func:`policy_choices`.

    Args:
        algo: a name of :data:`ALGOS`.
        params: the hyper-parameters (as resolved, or a tournament learner's ``hyperparams``).
        run_keys: accept the run settings (False: only the SB3 class's arguments, e.g. a tournament learner's).

    Raises:
        ConfigError: (one line, naming the key) an unknown key, a key set by ``train.py``, a run setting this
            algorithm does not use, a value of the wrong type or out of range, a setting a brain block's class
            does not take (:data:`BRAIN_BLOCKS`), an unknown policy, or ``janus-ppo`` without the shield.
    """
    accepted = algo_arguments(algo)
    run = tuple(k for k in RUN_KEYS if algo in RUN_KEY_ALGOS.get(k, (algo,))) if run_keys else ()
    for key, value in params.items():
        if key in SET_BY_TRAIN:
            raise ConfigError(_SET_BY_TRAIN.format(key))
        if run_keys and key in RUN_KEY_ALGOS and key not in run:
            raise ConfigError(_RUN_KEY_ALGO.format(key, "/".join(RUN_KEY_ALGOS[key]), algo))
        if key not in accepted and key not in run:
            known = sorted({k for k in (*accepted, *run) if k not in SET_BY_TRAIN})
            close = difflib.get_close_matches(str(key), known, n=1)
            hint = f" (did you mean {close[0]}?)" if close else ""
            raise ConfigError(_UNKNOWN_KEY.format(key, algo, hint, known))
        if key == "policy":
            if value not in policy_choices(algo):
                raise ConfigError(_BAD_POLICY.format(policy_choices(algo), algo, value))
        elif key == "sleep":
            if value:  # false/null: no sleep
                check_sleep_keys(value)
        elif key in HYPERPARAM_RANGES:
            check, kwargs = HYPERPARAM_RANGES[key]
            try:
                check(key, value, **kwargs)
            except (TypeError, ValueError) as err:
                raise ConfigError(str(err)) from err
            if key in BRAIN_BLOCKS and value:
                check_brain_block(key, value)
    if run_keys and algo == "janus-ppo" and params.get("shield") is not True:
        raise ConfigError(_JANUS_PPO_SHIELD.format(params.get("shield")))
    if run_keys and params.get("shield_training") == "none" and float(params.get("lambda_logic", 0) or 0) > 0:
        raise ConfigError(_LOSS_WITHOUT_SCORES.format(params.get("lambda_logic")))


def algo_kwargs(params: Mapping[str, Any]) -> dict[str, Any]:
    """The keyword arguments meant for the SB3 algorithm's constructor.

    ``policy_kwargs.features_extractor_class`` may name a class as ``"module:Class"``
    (only from this project's ``agents`` package or from ``stable_baselines3``).
    """
    kwargs = {k: copy.deepcopy(v) for k, v in params.items() if k not in RUN_KEYS}
    if isinstance(kwargs.get("train_freq"), list):  # YAML's [4, episode]: SB3 takes a tuple
        kwargs["train_freq"] = tuple(kwargs["train_freq"])
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


def env_factory(env_id: str, env_kwargs: Mapping[str, Any], *, shield: bool | Mapping[str, Any], seed: int,
                rank: int, breakers: Mapping[str, Any] | bool | None = None,
                sizing: Mapping[str, Any] | bool | None = None) -> Callable[[], gym.Env]:
    """A thunk building one monitored env in the glass box (:func:`wrappers.make_glass_box`): the LTN shield when
    ``shield`` (``True`` or its settings), the amygdala's breakers when ``breakers``, the hypothalamus's sizing
    when ``sizing`` (``True`` or its settings).

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
    shield: bool | dict[str, Any] = bool(params.get("shield", False))
    mode = params.get("shield_training", "enforce")
    if shield and mode == "observe":
        shield = {"enforce": False}  # the rules as a loss in training; deployment enforces (SHIELD_TRAINING)
    elif mode == "none":
        shield = False  # the rules at decision time only
    breakers = with_slippage_predictor(params.get("breakers") or None, cerebellum)
    sizing = params.get("sizing") or None
    return DummyVecEnv([env_factory(env_id, kwargs, shield=shield, breakers=breakers, sizing=sizing, seed=seed,
                                    rank=i) for i in range(n)])


def build_model(algo: str, env: Any, params: Mapping[str, Any], *, seed: int, tensorboard_log: str | None,
                device: str = "cpu") -> Any:
    """Construct the SB3 model of ``algo`` with the resolved hyper-parameters.

    Raises:
        ConfigError: (one line, naming the key) the SB3 class, its policy or its features extractor refused a
            keyword argument or a value (SB3 raises ``TypeError`` for an unknown keyword and guards values with
            ``assert``, e.g. PPO's ``batch_size`` > 1).
    """
    kwargs = algo_kwargs(params)
    policy = params.get("policy", "MultiInputPolicy")
    common = {"seed": seed, "tensorboard_log": tensorboard_log, "device": device, "verbose": 0}
    cls = algo_class(algo)
    if algo == "janus-dqn":
        policy = _basal_ganglia_policy("dqn", policy)
        kwargs["lambda_logic"] = float(params.get("lambda_logic", 2.0))
    elif algo == "janus-ppo":
        policy = _basal_ganglia_policy("maskable", policy)
        kwargs["lambda_logic"] = float(params.get("lambda_logic", 2.0))
    try:
        return cls(policy, env, **kwargs, **common)
    except TypeError as err:
        match = _UNEXPECTED_KWARG.search(str(err))
        if match is None:
            raise ConfigError(_MODEL_REJECTED.format(algo, err)) from err
        owner, key = match.groups()
        policy_kwargs = kwargs.get("policy_kwargs") or {}
        where, hint = ("policy_kwargs." if key in policy_kwargs else ""), ""
        if key not in policy_kwargs and key in (policy_kwargs.get("features_extractor_kwargs") or {}):
            where, hint = "policy_kwargs.features_extractor_kwargs.", _EXTRACTOR_KEY
        raise ConfigError(_MODEL_KEY.format(algo, where + key, owner.removesuffix(".__init__")) + hint) from err
    except (ValueError, AssertionError) as err:  # SB3 guards its arguments with assert
        raise ConfigError(_MODEL_REJECTED.format(algo, err)) from err


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


MEMORY_FILE = "memory.npz"
"""The memory a run's policy read at the end of training (``replay.MemoryReader.save``: arrays, no pickle)."""


def load_memory(run_dir: Path, model: Any) -> MemoryReader | None:
    """Hand ``model``'s basal-ganglia policy the run's memory (``MEMORY_FILE``, checked on load) when the run saved
    one; returns it (None: no file, or a policy that reads no memory).

    Raises:
        ValueError: a damaged memory file, or one for other observations or actions than the model's.
    """
    path = Path(run_dir) / MEMORY_FILE
    setter = getattr(getattr(model, "policy", None), "set_memory", None)
    if not path.is_file() or not callable(setter):
        return None
    memory = MemoryReader.load(path)
    setter(memory)
    return memory


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

    The cerebellum runs first so the No-Go labels can use its predicted slippage. The config's
    ``cerebellum_training`` block is ``CerebellumCallback``'s arguments, ``basal_ganglia`` ``BasalGangliaCallback``'s
    (``cerebellum`` is the model's: ``Cerebellum.from_env``).
    """
    if not algo.startswith("janus-") or cerebellum is None:
        return []
    return [CerebellumCallback(cerebellum, **dict(params.get("cerebellum_training") or {})),
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
    env's ``step_seconds`` (market time for schema ages). ``janus-dqn`` and
    ``janus-ppo`` sleep; ``janus-ppo`` on the steps the callback archives, without
    SWR replay (phase 1 needs a DQN-family model with a prioritized buffer;
    :mod:`replay.archive` says why an on-policy learner does not replay).

    Raises:
        ConfigError: (one line) ``sleep`` or ``sleep.cycle`` is not a
            mapping; an unknown key, a SleepConfig field outside ``cycle``, a
            removed key (``full_cycle``, ``budget_s``) or an invalid value.
    """
    sleep = params.get("sleep")
    if algo not in RUN_KEY_ALGOS["sleep"] or not sleep:
        return None
    triggers, cycle = check_sleep_keys(sleep)
    defaults: dict[str, Any] = {"plot_dir": str(Path(run_dir) / "plots" / "umap"), "seed": seed}
    base = env.envs[0].unwrapped if hasattr(env, "envs") else getattr(env, "unwrapped", None)
    step_seconds = getattr(base, "step_seconds", None)
    if step_seconds is not None:
        defaults["step_seconds"] = float(step_seconds)
    try:
        return SleepPhaseCallback(SleepConfig(**{**defaults, **cycle}), **triggers)
    except (TypeError, ValueError) as err:  # invalid values
        raise ConfigError(f"sleep: {err}") from err


def check_sleep_keys(sleep: Any) -> tuple[dict[str, Any], Mapping[str, Any]]:
    """The ``sleep`` block's keys checked (:func:`sleep_callback`'s layout; the values are checked when the callback
    is built); returns ``(triggers, cycle)``.

    Raises:
        ConfigError: ``sleep`` or ``sleep.cycle`` is not a mapping; an unknown key, a SleepConfig field outside
            ``cycle`` or a removed key (``full_cycle``, ``budget_s``).
    """
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
    return triggers, cycle
