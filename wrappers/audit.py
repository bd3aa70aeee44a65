"""``AuditLog``: one JSON line per decision, append-only; ``read_audit_log`` loads it back into pandas.

Each line (JSON Lines) is one ``step()`` of the wrapped env:

| key | meaning |
| --- | --- |
| `run_id` | random hex id of this `AuditLog` instance (episodes restart at 0 per instance) |
| `episode`, `step` | episode index of this instance (0-based) and decision index within it (0-based) |
| `seed` | the seed the episode was reset with (null if none) |
| tags | the constant fields given as `tags` (e.g. `scenario`, `strategy`), when given |
| `time` | wall-clock Unix time of the decision, seconds |
| `sim_step` | `info["step"]` of the env (null if absent) |
| `proposed_action` | the action this wrapper received |
| `final_action` | the action executed (see `AuditLog`), null when none was forwarded |
| `action_forwarded` | `info["action_forwarded"]` (written by `Amygdala`; null if absent) |
| `ltn` | `info["ltn"]`: rule truths, SatAgg, violation, overridden, proposed/final action, threshold |
| `ltn_violated_rules` | rules whose truth is below the shield's threshold (null without `ltn`) |
| `breakers`, `halted`, `halt_reason` | the amygdala's breaker state |
| `sizing` | `info["sizing"]` from `Hypothalamus` |
| `go_nogo`, `fusion_gates` | basal-ganglia and thalamic-gate values when present |
| `gaf_attribution` | the GAF frames' share in the decision (`agents.explain.DecisionExplainer`) when present |
| `predicted_slippage_bps`, `slippage_bps` | predicted (cerebellum / predictor) vs actual slippage |
| `exec_qty`, `reward`, `position`, `equity`, `terminated`, `truncated` | outcome of the step |
| `explanation` | why `final_action` differs from `proposed_action` (empty list when they agree) |

Absent slots are written as null. numpy scalars and arrays (and anything with
``.tolist()``, e.g. torch tensors) become JSON numbers and lists; NaN and ±inf
become null (JSON has no such numbers).
"""

from __future__ import annotations

import json
import math
import os
import time
import uuid
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import gymnasium as gym
import numpy as np

from janus_env.checks import check_int, check_mapping

if TYPE_CHECKING:  # pandas is imported only by read_audit_log (the hot path never needs it)
    import pandas as pd

_BAD_PATH = "Expected `path` to be a str or os.PathLike, got {!r}"
_CORRUPT_LINE = "Corrupt audit log {}: line {}: {}"
_NOT_OBJECT = "expected a JSON object, got {}"
_CLOSED = "AuditLog is closed"
_TAG_CLASH = "Expected `tags` other than the record's own keys {1}, got {0}"

_SLOTS = ("go_nogo", "fusion_gates", "gaf_attribution", "predicted_slippage_bps")

RECORD_KEYS: tuple[str, ...] = (
    "run_id", "episode", "step", "seed", "time", "sim_step", "proposed_action", "final_action",
    "action_forwarded", "ltn", "ltn_violated_rules", "breakers", "halted", "halt_reason", "sizing", *_SLOTS,
    "slippage_bps", "exec_qty", "reward", "position", "equity", "terminated", "truncated", "explanation",
)
"""The keys of every record, in the order written (``tags`` follow)."""


class AuditLogError(ValueError):
    """An audit-log file that cannot be parsed (names the file and the 1-based line)."""


def to_jsonable(x: Any) -> Any:
    """``x`` as plain JSON types: dicts (str keys), lists, str, bool, int, finite float or None."""
    if x is None or isinstance(x, (str, bool)):
        return x
    if isinstance(x, (np.bool_,)):
        return bool(x)
    if isinstance(x, (int, np.integer)):
        return int(x)
    if isinstance(x, (float, np.floating)):
        f = float(x)
        return f if math.isfinite(f) else None
    if isinstance(x, Mapping):
        return {str(k): to_jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple, set, frozenset)):
        return [to_jsonable(v) for v in x]
    if isinstance(x, np.ndarray):
        return to_jsonable(x.tolist())
    detach = getattr(x, "detach", None)
    if callable(detach):  # torch tensors
        x = detach().cpu()
    tolist = getattr(x, "tolist", None)
    if callable(tolist):
        return to_jsonable(tolist())
    return repr(x)


def violated_rules(ltn: Mapping[str, Any] | None) -> list[str] | None:
    """Names of the LTN rules whose truth is below the shield's threshold (τ = 0.9 if absent).

    When the shield overrode an action but no single rule is below τ (the
    aggregate was), the lowest-truth rule is named.
    """
    if not isinstance(ltn, Mapping):
        return None
    rules = ltn.get("rules") or {}
    tau = ltn.get("threshold", 0.9)
    tau = 0.9 if tau is None else float(tau)
    names = [str(k) for k, v in rules.items() if v is not None and float(v) < tau]
    if not names and ltn.get("overridden") and rules:
        names = [str(min(rules, key=lambda k: float(rules[k]) if rules[k] is not None else math.inf))]
    return names


def _explain(proposed: Any, final: Any, info: Mapping[str, Any], rules: list[str] | None) -> list[str]:
    if final == proposed:
        return []
    out: list[str] = []
    ltn = info.get("ltn")
    if isinstance(ltn, Mapping) and ltn.get("overridden"):
        out.append(f"ltn_override: violated {', '.join(rules or []) or 'SatAgg'} "
                   f"(SatAgg {to_jsonable(ltn.get('sat_agg'))} < τ {to_jsonable(ltn.get('threshold'))})")
    if final is None:
        out.append(f"blocked: {info.get('halt_reason') or 'action not forwarded'}")
    elif info.get("halted"):
        out.append(f"halted after execution: {info.get('halt_reason')}")
    sizing = info.get("sizing")
    if isinstance(sizing, Mapping) and sizing.get("final_qty") != sizing.get("proposed_qty"):
        cuts = to_jsonable(sizing.get("cuts") or {})
        parts = ", ".join(f"{k} {v}" for k, v in cuts.items() if v) or "none"
        out.append(f"sizing_cut: {sizing.get('proposed_qty')} -> {sizing.get('final_qty')} shares ({parts})")
    if not out:
        out.append("unexplained: final action differs from the proposal")
    return out


class AuditLog(gym.Wrapper):
    """Record one JSON line per decision to an append-only file (the glass box's flight recorder).

    The final action is, in order of precedence: null when the amygdala did not
    forward the action (``info["action_forwarded"]`` is False or None) or the
    shield halted (``info["ltn"]["final_action"]`` is None);
    ``info["sizing"]["final_action"]`` (the hypothalamus sits innermost in the
    documented stack ``AuditLog(Amygdala(LTNShield(Hypothalamus(env))))``);
    ``info["ltn"]["final_action"]``; else the action received. Every line where
    it differs from the proposal carries an ``explanation``, a list of
    ``"ltn_override: violated <rules> (SatAgg … < τ …)"``, ``"blocked: <halt
    reason>"`` (nothing executed), ``"halted after execution: <halt reason>"``
    and ``"sizing_cut: <proposed> -> <final> shares (<cuts>)"``.

    The file is opened once in append mode (an existing log is never truncated).
    Lines are buffered in memory and written (and flushed to the OS) when
    ``buffer_size`` lines are pending; they are written, flushed and
    ``os.fsync``'d at the end of every episode (terminated or truncated), on
    ``reset()`` (an episode left unfinished), on ``flush()`` and on ``close()``
    (and, as a last resort, when a log that was never closed is garbage-collected).

    The brain's side of a decision (``go_nogo``, ``fusion_gates``, ``gaf_attribution``,
    ``predicted_slippage_bps``) is read from the step's info, where the component that decided wrote it
    (``agents.explain.DecisionExplainer`` for a trained policy, the amygdala's slippage predictor).

    Args:
        env: the env to record.
        path: the log file (JSON Lines); its directory must exist.
        buffer_size: pending lines that trigger a write (1000) *(ours)*.
        tags: constant fields written into every record (e.g. ``{"scenario": "ou", "strategy": "agent"}``);
            their names must not collide with the record's own keys.

    Raises:
        TypeError: ``path`` is not a str / PathLike, ``buffer_size`` not an int or ``tags`` not a mapping.
        ValueError: a tag named like a record key.
        ValueError: ``buffer_size`` < 1.
        OSError: the file cannot be opened for appending.
    """

    def __init__(
        self,
        env: gym.Env,
        path: str | os.PathLike[str],
        *,
        buffer_size: int = 1000,
        tags: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__(env)
        if not isinstance(path, (str, os.PathLike)):
            raise TypeError(_BAD_PATH.format(path))
        self.buffer_size = check_int("buffer_size", buffer_size, low=1)
        self.tags = to_jsonable(dict(check_mapping("tags", tags if tags is not None else {})))
        clash = sorted(set(self.tags) & set(RECORD_KEYS))
        if clash:
            raise ValueError(_TAG_CLASH.format(clash, list(RECORD_KEYS)))
        self._seed: int | None = None
        self.path = os.fspath(path)
        self.run_id = uuid.uuid4().hex
        self._file = open(self.path, "a", encoding="utf-8")  # noqa: SIM115 - held until close()
        self._pending: list[str] = []
        self._episode = -1
        self._step = 0

    # ---------------------------------------------------------------- gym API
    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        if self._file is None:
            raise RuntimeError(_CLOSED)
        self.flush()
        obs, info = self.env.reset(seed=seed, options=options)
        self._seed = seed
        self._episode += 1
        self._step = 0
        return obs, info

    def step(self, action: Any):
        if self._file is None:
            raise RuntimeError(_CLOSED)
        obs, reward, terminated, truncated, info = self.env.step(action)
        self._pending.append(json.dumps(self.record(action, reward, terminated, truncated, info),
                                        allow_nan=False, separators=(",", ":")))
        self._step += 1
        if terminated or truncated:
            self.flush()
        elif len(self._pending) >= self.buffer_size:
            self._write()
        return obs, reward, terminated, truncated, info

    def record(self, action: Any, reward: Any, terminated: bool, truncated: bool,
               info: Mapping[str, Any]) -> dict[str, Any]:
        """The JSON-safe record of one decision (what ``step`` writes)."""
        proposed = to_jsonable(action)
        forwarded = info.get("action_forwarded", True)
        sizing = info.get("sizing")
        ltn = info.get("ltn")
        if forwarded is False or ("action_forwarded" in info and forwarded is None):
            final = None
        elif isinstance(ltn, Mapping) and "final_action" in ltn and ltn["final_action"] is None:
            final = None  # the shield halted without forwarding
        elif isinstance(sizing, Mapping) and "final_action" in sizing:
            final = to_jsonable(sizing["final_action"])
        elif isinstance(ltn, Mapping) and "final_action" in ltn:
            final = to_jsonable(ltn["final_action"])
        else:
            final = proposed
        rules = violated_rules(ltn)
        rec = {
            "run_id": self.run_id,
            "episode": self._episode,
            "step": self._step,
            "seed": self._seed,
            "time": time.time(),
            "sim_step": info.get("step"),
            "proposed_action": proposed,
            "final_action": final,
            "action_forwarded": info.get("action_forwarded"),
            "ltn": ltn,
            "ltn_violated_rules": rules,
            "breakers": info.get("breakers"),
            "halted": bool(info.get("halted", False)),
            "halt_reason": info.get("halt_reason"),
            "sizing": sizing,
            **{slot: info.get(slot) for slot in _SLOTS},
            "slippage_bps": info.get("slippage_bps"),
            "exec_qty": info.get("exec_qty"),
            "reward": reward,
            "position": info.get("position"),
            "equity": info.get("equity"),
            "terminated": bool(terminated),
            "truncated": bool(truncated),
            "explanation": _explain(proposed, final, info, rules),
        }
        return {**to_jsonable(rec), **self.tags}

    def flush(self) -> None:
        """Write pending lines, flush and fsync the file."""
        if self._file is None:
            return
        self._write()
        os.fsync(self._file.fileno())

    def close(self) -> None:
        """Flush, fsync and close the log, then close the wrapped env (idempotent)."""
        if self._file is not None:
            try:
                self.flush()
            finally:
                self._file.close()
                self._file = None
        super().close()

    def __del__(self) -> None:
        # last resort for a log nobody closed: keep the pending records, release the file
        file = getattr(self, "_file", None)
        if file is not None:
            try:
                self.flush()
                file.close()
            except Exception:  # noqa: BLE001 - never raise from a finalizer
                pass
            self._file = None

    def _write(self) -> None:
        """Hand pending lines to the OS (write + flush, no fsync)."""
        if self._pending:
            self._file.write("\n".join(self._pending) + "\n")
            self._pending.clear()
            self._file.flush()


def read_audit_log(path: str | os.PathLike[str]) -> pd.DataFrame:
    """Load an audit log into a DataFrame, one row per decision.

    Nested dicts are flattened into dotted columns (``ltn.rules.wash_sale``,
    ``breakers.drawdown.value``, ``sizing.cuts.reserve``); lists stay as lists.
    Blank lines are skipped.

    Raises:
        TypeError: ``path`` is not a str / PathLike.
        AuditLogError: a line is not a JSON object (message names the file and the 1-based line).
        OSError: the file cannot be read.
    """
    import pandas as pd

    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(_BAD_PATH.format(path))
    path = os.fspath(path)
    records: list[dict[str, Any]] = []
    with open(path, encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            try:
                rec = json.loads(line)
            except json.JSONDecodeError as err:
                raise AuditLogError(_CORRUPT_LINE.format(path, lineno, err)) from err
            if not isinstance(rec, dict):
                raise AuditLogError(_CORRUPT_LINE.format(path, lineno, _NOT_OBJECT.format(type(rec).__name__)))
            records.append(rec)
    if not records:
        return pd.DataFrame()
    return pd.json_normalize(records, sep=".")
