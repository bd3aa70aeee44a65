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
become null (JSON has no such numbers). Lines are pure ASCII (``json.dumps``
escapes the rest), one ``write(2)`` each.

## Durability (what a crash can cost)

Decisions lost at most (with the defaults):

* the process is killed (``kill -9``, the OOM killer, a crash): ``buffer_size``
  (1: the decision being recorded when it died);
* the machine loses power or the OS crashes: those written since the last
  ``fsync``, never more than ``fsync_every + buffer_size − 1`` (1,000), and while
  decisions keep coming no more than the last ``fsync_seconds`` (1 s) of them
  (the clock is read at each write: a loop that pauses keeps its last records
  unsynced until its next write, episode end, ``flush()`` or ``close()``);
* after ``close()``, an episode end, ``reset()`` or ``flush()``: none (everything
  is written and ``fsync``'d).

A record is handed to the OS (``write``) before ``step()`` returns, so once the
caller has a step's result its record survives the process (``buffer_size=1``);
it is forced to disk (``fsync``) with the next write that comes ``fsync_seconds``
after the last ``fsync`` or makes ``fsync_every`` unsynced records, and at every
episode end. A fast backtest thus pays one ``fsync`` a second, a slow live loop one
per decision. A write cut short by a kill leaves a *torn* last line (no
newline at its end): :func:`read_audit_log` skips it with a warning naming the
file and the line, and a new ``AuditLog`` on that file truncates it before
appending, so the file always loads. A corrupt line anywhere else is an error
naming the file and the line.

## Rotation

With ``max_bytes``, the file is rotated before a write that would take it past
``max_bytes``: ``path`` becomes ``path.1``, ``path.1`` becomes ``path.2``, ...
(the scheme of :class:`logging.handlers.RotatingFileHandler`; the highest number is
the oldest), keeping ``backups`` rotated files (None: all of them; an audit trail
is not deleted unless asked). :func:`read_audit_log` reads ``path.N``, ...,
``path.1``, ``path`` in that order, i.e. oldest first. Renames go from the oldest
down, so a crash in the middle of a rotation leaves a gap in the numbers, never
two files out of order.
"""

from __future__ import annotations

import json
import math
import os
import re
import stat
import time
import uuid
import warnings
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import gymnasium as gym
import numpy as np

from janus_env.checks import check_int, check_mapping, check_positive

if TYPE_CHECKING:  # pandas is imported only by read_audit_log (the hot path never needs it)
    import pandas as pd

_BAD_PATH = "Expected `path` to be a str or os.PathLike, got {!r}"
_CORRUPT_LINE = "Corrupt audit log {}: line {}: {}"
_NOT_OBJECT = "expected a JSON object, got {}"
_CLOSED = "AuditLog is closed"
_BROKEN = ("AuditLog could not record a decision ({!r}): it forwards no more actions; close it (which retries "
           "the unwritten records) and open a new one")
_TORN_LINE = "Skipped the torn last line of audit log {}: line {} ({} bytes cut short by a crash)"
_TORN_TAIL = "Audit log {}: truncated its torn last line {} ({} bytes cut short by a crash) before appending"
_TAG_CLASH = "Expected `tags` other than the record's own keys {1}, got {0}"

_SLOTS = ("go_nogo", "fusion_gates", "gaf_attribution", "predicted_slippage_bps")

RECORD_KEYS: tuple[str, ...] = (
    "run_id", "episode", "step", "seed", "time", "sim_step", "proposed_action", "final_action",
    "action_forwarded", "ltn", "ltn_violated_rules", "breakers", "halted", "halt_reason", "sizing", *_SLOTS,
    "slippage_bps", "exec_qty", "reward", "position", "equity", "terminated", "truncated", "explanation",
)
"""The keys of every record, in the order written (``tags`` follow)."""


DEFAULT_FSYNC_EVERY = 1000
"""Most records written between two ``fsync`` calls *(ours)*. An ``fsync`` waits for the disk: ≈ 4 ms on the
development machine's virtual disk, against ≈ 0.15 ms of CPU for a glass-box step with its record
(``benchmarks/bench_audit.py``), so forcing every decision to disk (``fsync_every=1``) cuts a backtest's throughput
more than tenfold, every 100 decisions still adds ≈ 40 µs a step, every 1,000 ≈ 4 µs. With
:data:`DEFAULT_FSYNC_SECONDS` it bounds what a power loss can cost; a killed process loses none of the written
records (they are with the OS)."""
DEFAULT_FSYNC_SECONDS = 1.0
"""Most seconds between a write and the ``fsync`` that follows it *(ours)*: a power loss costs at most the last
second of decisions; at most one ``fsync`` a second costs a fast backtest ≈ 0.4% at 4 ms each, while a slow loop
(a decision every second or more) gets each decision forced to disk."""


class AuditLogError(ValueError):
    """An audit-log file that cannot be parsed (names the file and the 1-based line)."""


class AuditLogWarning(UserWarning):
    """A torn last line skipped (reading) or truncated (appending): a write cut short by a crash."""


def to_jsonable(x: Any) -> Any:
    """``x`` as plain JSON types: dicts (str keys), lists, str, bool, int, finite float or None."""
    kind = type(x)  # the plain types first, by exact type (a record is mostly these; the checks below cost ~5×)
    if kind is float:
        return x if math.isfinite(x) else None
    if kind is str or kind is bool or kind is int:
        return x
    if kind is dict:
        return {str(k): to_jsonable(v) for k, v in x.items()}
    if kind is list or kind is tuple:
        return [to_jsonable(v) for v in x]
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

    The file is opened once for appending (an existing log is never truncated,
    except for a torn last line left by a crash, which is cut off with an
    :class:`AuditLogWarning`; a complete last line without its newline gets one).
    Each record is written (one ``write`` to the OS) before ``step()`` returns
    when ``buffer_size`` is 1 (the default), else when ``buffer_size`` records are
    pending; the file is ``fsync``'d by the first write ``fsync_seconds`` after the
    last ``fsync`` or that makes ``fsync_every`` unsynced records and, with every
    pending record written first, at the end of every episode (terminated or
    truncated), on ``reset()`` (an episode left unfinished), on ``flush()`` and on
    ``close()`` (and, as a last resort, when a log that was never closed is
    garbage-collected). What a crash can cost: the module docstring's table.

    If a record cannot be written (disk full, I/O error), that ``step()`` raises the
    error — its action has already executed — and from then on ``step()`` and
    ``reset()`` raise ``RuntimeError`` before forwarding anything: no decision is
    taken that cannot be recorded. ``close()`` tries the unwritten records once more.

    The brain's side of a decision (``go_nogo``, ``fusion_gates``, ``gaf_attribution``,
    ``predicted_slippage_bps``) is read from the step's info, where the component that decided wrote it
    (``agents.explain.DecisionExplainer`` for a trained policy, the amygdala's slippage predictor).

    Args:
        env: the env to record.
        path: the log file (JSON Lines); its directory must exist.
        buffer_size: records held in memory before they are written (1: each record is written before its
            ``step()`` returns, so a killed process loses at most the decision being recorded; k: up to k).
        fsync_every: most records written between two ``fsync`` calls (:data:`DEFAULT_FSYNC_EVERY` = 1000);
            None: no count limit.
        fsync_seconds: most seconds from a write to the ``fsync`` after it (:data:`DEFAULT_FSYNC_SECONDS` = 1.0:
            a power loss costs at most the last second of decisions); None: no time limit. With both None the
            file is ``fsync``'d only at episode ends, ``reset``, ``flush`` and ``close``.
        max_bytes: rotate the file before a write would take it past this size (None: never rotate); a
            file exceeds it only when one write alone is larger.
        backups: rotated files kept (``path.1`` … ``path.<backups>``, the oldest deleted); None keeps all.
        tags: constant fields written into every record (e.g. ``{"scenario": "ou", "strategy": "agent"}``);
            their names must not collide with the record's own keys.

    Raises:
        TypeError: ``path`` is not a str / PathLike, ``buffer_size``, ``fsync_every``, ``max_bytes`` or
            ``backups`` not an int (or None where allowed), ``fsync_seconds`` not a number or None, or ``tags``
            not a mapping.
        ValueError: a tag named like a record key, ``buffer_size``, ``fsync_every``, ``max_bytes`` or
            ``backups`` < 1, or ``fsync_seconds`` not a finite number > 0.
        OSError: the file cannot be opened for appending.
    """

    def __init__(
        self,
        env: gym.Env,
        path: str | os.PathLike[str],
        *,
        buffer_size: int = 1,
        fsync_every: int | None = DEFAULT_FSYNC_EVERY,
        fsync_seconds: float | None = DEFAULT_FSYNC_SECONDS,
        max_bytes: int | None = None,
        backups: int | None = None,
        tags: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__(env)
        self._fd: int | None = None
        if not isinstance(path, (str, os.PathLike)):
            raise TypeError(_BAD_PATH.format(path))
        self.buffer_size = check_int("buffer_size", buffer_size, low=1)
        self.fsync_every = check_int("fsync_every", fsync_every, low=1, optional=True)
        self.fsync_seconds = check_positive("fsync_seconds", fsync_seconds, optional=True)
        self.max_bytes = check_int("max_bytes", max_bytes, low=1, optional=True)
        self.backups = check_int("backups", backups, low=1, optional=True)
        self.tags = to_jsonable(dict(check_mapping("tags", tags if tags is not None else {})))
        clash = sorted(set(self.tags) & set(RECORD_KEYS))
        if clash:
            raise ValueError(_TAG_CLASH.format(clash, list(RECORD_KEYS)))
        self._seed: int | None = None
        self.path = os.fspath(path)
        self.run_id = uuid.uuid4().hex
        self._pending: list[str] = []
        self._unsynced = 0  # records written since the last fsync
        self._synced_at = time.monotonic()  # when the last fsync ended (durability only: no record depends on it)
        self._broken: BaseException | None = None
        self._episode = -1
        self._step = 0
        self._open()

    # ---------------------------------------------------------------- gym API
    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        self._check_usable()
        self._guarded(self.flush)
        obs, info = self.env.reset(seed=seed, options=options)
        self._seed = seed
        self._episode += 1
        self._step = 0
        return obs, info

    def step(self, action: Any):
        self._check_usable()
        obs, reward, terminated, truncated, info = self.env.step(action)
        self._guarded(self._record, action, reward, terminated, truncated, info)
        return obs, reward, terminated, truncated, info

    def _record(self, action: Any, reward: Any, terminated: bool, truncated: bool, info: Mapping[str, Any]) -> None:
        self._pending.append(json.dumps(self.record(action, reward, terminated, truncated, info),
                                        allow_nan=False, separators=(",", ":")))
        self._step += 1
        if terminated or truncated:
            self.flush()
        elif len(self._pending) >= self.buffer_size:
            self._write()

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
        """Write pending lines, then ``fsync`` the file."""
        if self._fd is None:
            return
        self._write()
        self._sync()

    def close(self) -> None:
        """Write what is pending, ``fsync`` and close the log, then close the wrapped env (idempotent).

        Raises:
            OSError: the pending records could not be written (the file is closed all the same).
        """
        if self._fd is not None:
            try:
                self.flush()
            finally:
                os.close(self._fd)
                self._fd = None
        super().close()

    def __del__(self) -> None:
        # last resort for a log nobody closed: keep the pending records, release the file
        if getattr(self, "_fd", None) is not None:
            try:
                self.flush()
            except Exception:  # noqa: BLE001 - never raise from a finalizer
                pass
            try:
                os.close(self._fd)
            except OSError:
                pass
            self._fd = None

    # ---------------------------------------------------------------- the file
    def _check_usable(self) -> None:
        if self._fd is None:
            raise RuntimeError(_CLOSED)
        if self._broken is not None:
            raise RuntimeError(_BROKEN.format(self._broken))

    def _guarded(self, fn: Any, *args: Any) -> None:
        """Run ``fn``; on any error the log is broken (no more steps forwarded) and the error is raised."""
        try:
            fn(*args)
        except BaseException as err:
            self._broken = err
            raise

    def _open(self) -> None:
        """Open :attr:`path` for appending; repair a torn last line first."""
        fd = os.open(self.path, os.O_RDWR | os.O_APPEND | os.O_CREAT | getattr(os, "O_BINARY", 0), 0o644)
        try:
            info = os.fstat(fd)
            self._regular = stat.S_ISREG(info.st_mode)
            if self._regular:
                _repair_tail(fd, self.path, info.st_size)
                self._size = os.fstat(fd).st_size
            else:  # /dev/null, a pipe: nothing to repair, rotate or fsync
                self._size = 0
        except BaseException:
            os.close(fd)
            raise
        self._fd = fd

    def _write(self) -> None:
        """Hand pending lines to the OS (one ``write``), then ``fsync`` if ``fsync_every`` records are unsynced or
        ``fsync_seconds`` have passed since the last ``fsync``."""
        if not self._pending:
            return
        data = ("\n".join(self._pending) + "\n").encode("ascii")
        if self.max_bytes is not None and self._regular and self._size > 0 and self._size + len(data) > self.max_bytes:
            self._rotate()
        _write_all(self._fd, data)
        self._size += len(data)
        self._unsynced += len(self._pending)
        self._pending.clear()
        if (self.fsync_every is not None and self._unsynced >= self.fsync_every) or (
                self.fsync_seconds is not None and time.monotonic() - self._synced_at >= self.fsync_seconds):
            self._sync()

    def _sync(self) -> None:
        if self._regular and self._unsynced:
            os.fsync(self._fd)
        self._unsynced = 0
        self._synced_at = time.monotonic()

    def _rotate(self) -> None:
        """``path`` → ``path.1`` → ``path.2`` …, the oldest beyond ``backups`` deleted; a new empty ``path``."""
        self._sync()
        os.close(self._fd)
        self._fd = None
        numbers = rotated_numbers(self.path)
        for n in numbers:  # oldest (highest) first: no rename ever lands on an existing file
            src = f"{self.path}.{n}"
            if self.backups is not None and n >= self.backups:
                os.remove(src)
            else:
                os.replace(src, f"{self.path}.{n + 1}")
        os.replace(self.path, f"{self.path}.1")
        _sync_dir(self.path)
        self._open()


def _write_all(fd: int, data: bytes) -> None:
    """``os.write`` until every byte is written (a regular file takes them in one call unless interrupted)."""
    view = memoryview(data)
    while view:
        n = os.write(fd, view)
        view = view[n:]


def _sync_dir(path: str) -> None:
    """``fsync`` the directory of ``path`` so that renames in it survive a power loss (POSIX; a no-op elsewhere)."""
    try:
        fd = os.open(os.path.dirname(os.path.abspath(path)), os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass  # directories cannot be fsync'd on every platform
    finally:
        os.close(fd)


def _repair_tail(fd: int, path: str, size: int) -> None:
    """Make the file end with a newline: a complete last record gets one, a torn one is cut off (with a warning)."""
    if size == 0:
        return
    os.lseek(fd, size - 1, os.SEEK_SET)
    if os.read(fd, 1) == b"\n":
        return
    start, tail = size, b""
    while start > 0:  # the last line: back to the previous newline
        lo = max(0, start - 65536)
        os.lseek(fd, lo, os.SEEK_SET)
        block = os.read(fd, start - lo)
        k = block.rfind(b"\n")
        if k >= 0:
            tail = block[k + 1:] + tail
            start = lo + k + 1
            break
        tail = block + tail
        start = lo
    try:
        complete = isinstance(json.loads(tail), dict)
    except ValueError:  # JSONDecodeError and UnicodeDecodeError
        complete = False
    if complete:  # a whole record without its newline (e.g. written by hand): keep it
        _write_all(fd, b"\n")
    else:
        lineno = _count_lines(fd, start) + 1
        os.ftruncate(fd, start)
        warnings.warn(_TORN_TAIL.format(path, lineno, len(tail)), AuditLogWarning, stacklevel=4)
    os.fsync(fd)


def _count_lines(fd: int, end: int) -> int:
    """Newlines in the first ``end`` bytes of ``fd``."""
    os.lseek(fd, 0, os.SEEK_SET)
    count, left = 0, end
    while left > 0:
        block = os.read(fd, min(left, 1 << 20))
        if not block:
            break
        count += block.count(b"\n")
        left -= len(block)
    return count


def rotated_numbers(path: str | os.PathLike[str]) -> list[int]:
    """The numbers ``n`` of the rotated files ``path.n`` that exist, highest (oldest) first."""
    path = os.fspath(path)
    folder, name = os.path.split(os.path.abspath(path))
    pattern = re.compile(re.escape(name) + r"\.([1-9][0-9]*)")
    try:
        entries = os.listdir(folder)
    except OSError:
        return []
    return sorted((int(m.group(1)) for e in entries if (m := pattern.fullmatch(e))), reverse=True)


def audit_log_files(path: str | os.PathLike[str]) -> list[str]:
    """The files of the audit log at ``path``, oldest first: its rotated files ``path.N`` … ``path.1``, then ``path``
    (when it exists).

    Raises:
        TypeError: ``path`` is not a str / PathLike.
    """
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(_BAD_PATH.format(path))
    path = os.fspath(path)
    files = [f"{path}.{n}" for n in rotated_numbers(path)]
    if os.path.exists(path) or not files:
        files.append(path)
    return files


def read_audit_log(path: str | os.PathLike[str], *, rotated: bool = True) -> pd.DataFrame:
    """Load an audit log into a DataFrame, one row per decision.

    Nested dicts are flattened into dotted columns (``ltn.rules.wash_sale``,
    ``breakers.drawdown.value``, ``sizing.cuts.reserve``); lists stay as lists.
    Blank lines are skipped. A torn last line (no newline at its end and not a
    complete record: a write cut short by a crash) is skipped with an
    :class:`AuditLogWarning` naming the file and the line.

    Args:
        path: the log file.
        rotated: also read its rotated files (``path.N`` … ``path.1``, oldest first, before ``path``).

    Raises:
        TypeError: ``path`` is not a str / PathLike.
        AuditLogError: a line other than a torn last one is not a JSON object (message names the file and the
            1-based line).
        OSError: a file cannot be read (e.g. ``path`` does not exist and has no rotated files).
    """
    import pandas as pd

    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(_BAD_PATH.format(path))
    files = audit_log_files(path) if rotated else [os.fspath(path)]
    records: list[dict[str, Any]] = []
    for file in files:
        records.extend(_read_records(file))
    if not records:
        return pd.DataFrame()
    return pd.json_normalize(records, sep=".")


def _read_records(path: str) -> list[dict[str, Any]]:
    records: list[dict[str, Any]] = []
    with open(path, "rb") as fh:
        for lineno, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            try:
                rec = json.loads(line)
            except ValueError as err:  # JSONDecodeError and UnicodeDecodeError
                if not line.endswith(b"\n"):  # only the last line can lack its newline: a torn write
                    warnings.warn(_TORN_LINE.format(path, lineno, len(line)), AuditLogWarning, stacklevel=3)
                    continue
                raise AuditLogError(_CORRUPT_LINE.format(path, lineno, err)) from err
            if not isinstance(rec, dict):
                raise AuditLogError(_CORRUPT_LINE.format(path, lineno, _NOT_OBJECT.format(type(rec).__name__)))
            records.append(rec)
    return records
