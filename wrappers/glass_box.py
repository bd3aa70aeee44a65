"""The glass box, assembled in one place: sizing, shield, breakers and the audit trail around an env.

The order is DESIGN.md's (actions flow outside-in, infos inside-out, so each part reads what the inner
ones reported)::

    AuditLog(Amygdala(LTNShield(Hypothalamus(env))))

``make_glass_box`` builds that stack for one ``Janus-LOB-v0``-like env and ``make_parallel_glass_box``
its multi-agent twin, ``ParallelAmygdala(ParallelLTNShield(env))``, for ``janus_market_v0``. Each part
is switched by one argument, read the same way everywhere (Python, YAML configs, CLI flags):

* ``False`` or ``None``: the part is left out;
* ``True``: the part with its defaults;
* a mapping: the part's keyword arguments (a ``knowledge_base`` mapping becomes a
  ``TradingKnowledgeBase``); ``breakers`` also takes a ``BreakerConfig``; ``audit`` takes the JSONL path
  itself (``str`` or ``os.PathLike``) or a mapping with ``path`` and ``AuditLog``'s other arguments.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

import gymnasium as gym

from janus_env.checks import BAD_VALUE
from wrappers.amygdala import Amygdala
from wrappers.audit import AuditLog
from wrappers.breakers import BreakerConfig
from wrappers.hypothalamus import Hypothalamus
from wrappers.parallel_amygdala import ParallelAmygdala
from wrappers.parallel_shield import ParallelLTNShield
from wrappers.rules import TradingKnowledgeBase
from wrappers.shield import LTNShield

PARTS: tuple[str, ...] = ("sizing", "shield", "breakers", "audit")
"""The switchable parts of the single-env glass box, innermost first."""

_PART = "True, False, None or a mapping of keyword arguments"
_NO_AUDIT_PATH = "Expected `audit` to name its file: a path, or a mapping with a 'path' key, got {!r}"


def part_settings(name: str, value: Any) -> dict[str, Any] | None:
    """One part's switch read as keyword arguments: None when the part is off, else a (possibly empty) dict.

    Raises:
        TypeError: ``value`` is neither a bool, None nor a mapping.
    """
    if value is None or value is False:
        return None
    if value is True:
        return {}
    if isinstance(value, Mapping):
        return dict(value)
    raise TypeError(BAD_VALUE.format(name=name, expected=_PART, value=value))


def _shield_kwargs(settings: dict[str, Any]) -> dict[str, Any]:
    kb = settings.pop("knowledge_base", None)
    if isinstance(kb, Mapping):
        kb = TradingKnowledgeBase(**kb)
    return {**settings, "knowledge_base": kb}


def _breaker_kwargs(value: Any) -> dict[str, Any] | None:
    if isinstance(value, BreakerConfig):
        return {"config": value}
    return part_settings("breakers", value)


def _audit_kwargs(value: Any) -> dict[str, Any] | None:
    if isinstance(value, (str, os.PathLike)):
        return {"path": value}
    settings = part_settings("audit", value)
    if settings is not None and "path" not in settings:
        raise ValueError(_NO_AUDIT_PATH.format(value))
    return settings


def make_glass_box(
    env: gym.Env,
    *,
    sizing: Any = False,
    shield: Any = True,
    breakers: Any = True,
    audit: Any = None,
) -> gym.Env:
    """``AuditLog(Amygdala(LTNShield(Hypothalamus(env))))`` with each part switched on or off.

    Args:
        env: a ``Janus-LOB-v0`` env (or a wrapper of one; ``Hypothalamus`` needs ``action_type`` "sized" or
            "continuous").
        sizing: ``Hypothalamus`` (fractional Kelly, volatility target, drawdown scaling, cash reserve);
            off by default, as it changes the agent's order sizes.
        shield: ``LTNShield`` (``threshold``, ``fallback``, ``knowledge_base``).
        breakers: ``Amygdala`` (``BreakerConfig`` fields, ``config``, ``halt_on_env_error``).
        audit: ``AuditLog``: the JSONL path, or a mapping with ``path`` (and ``buffer_size``, ``fsync_every``,
            ``fsync_seconds``, ``max_bytes``, ``backups``, ``tags``).

    Returns:
        The wrapped env (``env`` itself when every part is off).

    Raises:
        TypeError: a switch of the wrong type, or a part's own ``TypeError`` (e.g. an unknown setting).
        ValueError: an ``audit`` mapping without ``path``, or a part's own ``ValueError``.

    Example:
        ```python
        env = make_glass_box(gym.make("Janus-LOB-v0", action_type="sized"), sizing=True,
                             breakers={"vol_ratio": 4.0}, audit="audit.jsonl")
        ```
    """
    sizing_kw = part_settings("sizing", sizing)
    shield_kw = part_settings("shield", shield)
    breaker_kw = _breaker_kwargs(breakers)
    audit_kw = _audit_kwargs(audit)
    if sizing_kw is not None:
        env = Hypothalamus(env, **sizing_kw)
    if shield_kw is not None:
        env = LTNShield(env, **_shield_kwargs(shield_kw))
    if breaker_kw is not None:
        env = Amygdala(env, **breaker_kw)
    if audit_kw is not None:
        env = AuditLog(env, **audit_kw)
    return env


def make_parallel_glass_box(env: Any, *, shield: Any = True, breakers: Any = True) -> Any:
    """``ParallelAmygdala(ParallelLTNShield(env))`` for ``janus_market_v0``, each part switched as in
    :func:`make_glass_box` (the shield's and the breakers' settings apply to every guarded agent).

    Raises:
        TypeError / ValueError: as :func:`make_glass_box`.
    """
    shield_kw = part_settings("shield", shield)
    breaker_kw = _breaker_kwargs(breakers)
    if shield_kw is not None:
        env = ParallelLTNShield(env, **_shield_kwargs(shield_kw))
    if breaker_kw is not None:
        env = ParallelAmygdala(env, **breaker_kw)
    return env
