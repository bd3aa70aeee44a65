"""AuditLog: every changed action is explained; the log appends, survives kill -9, rotates and fails loudly."""

from __future__ import annotations

import gc
import json
import math
import os
import re
import signal
import subprocess
import sys
import textwrap
import warnings
from typing import Any

import gymnasium as gym
import numpy as np
import pytest

from janus_env.checks import bad_value
from janus_env.lob_env import JanusLOBEnv
from wrappers.amygdala import Amygdala
from wrappers.audit import (
    _BAD_PATH,
    _BROKEN,
    _CORRUPT_LINE,
    _TORN_LINE,
    _TORN_TAIL,
    DEFAULT_FSYNC_EVERY,
    DEFAULT_FSYNC_SECONDS,
    RECORD_KEYS,
    AuditLog,
    AuditLogError,
    AuditLogWarning,
    audit_log_files,
    read_audit_log,
    to_jsonable,
)
from wrappers.hypothalamus import Hypothalamus

N_SIZES = 5


class FakeShield(gym.Wrapper):
    """Stands in for ``LTNShield``: overrides buys of ≥ 4 lots and every 7th proposal with HOLD."""

    def step(self, action):
        a = int(action)
        big_buy = 4 <= a <= N_SIZES
        periodic = getattr(self, "n", 0) % 7 == 6
        self.n = getattr(self, "n", 0) + 1
        rules = {"position_limit": 0.3 if big_buy else 1.0, "wash_sale": 0.1 if periodic else 0.97,
                 "vpin_toxicity": 0.95}
        sat = float(np.sqrt(np.mean(np.square(list(rules.values())))))
        overridden = big_buy or periodic
        final = np.int64(0) if overridden else action
        obs, r, te, tr, info = self.env.step(final)
        info = dict(info)
        info["ltn"] = {"rules": {k: np.float32(v) for k, v in rules.items()}, "sat_agg": sat,
                       "violation": 1.0 - sat, "overridden": overridden, "proposed_action": action,
                       "final_action": final, "threshold": 0.9}
        return obs, r, te, tr, info


def stack(path, seed: int = 0, **env_kw: Any) -> tuple[AuditLog, Amygdala]:
    env = JanusLOBEnv(**{"scenario": "ou", "seed": seed, "action_type": "sized", "n_sizes": N_SIZES,
                         "max_position": 5000, "lot": 300, "episode_steps": 120, **env_kw})
    amygdala = Amygdala(FakeShield(Hypothalamus(env)), max_violation_rate=None)
    return AuditLog(amygdala, path), amygdala


def _val(x: Any) -> Any:
    if isinstance(x, float) and math.isnan(x):
        return None
    return x


def test_every_changed_action_is_explained(tmp_path):
    path = tmp_path / "audit.jsonl"
    env, amygdala = stack(path)
    env.reset()
    rng = np.random.default_rng(0)
    for t in range(200):
        if t == 90:
            amygdala.kill("end of test session")
        _, _, term, trunc, _ = env.step(np.int64(rng.integers(0, 2 * N_SIZES + 1)))
        if term or trunc:
            break
    env.close()
    df = read_audit_log(path)
    assert len(df) == 91 and list(df["step"]) == list(range(91))
    assert {"ltn.rules.wash_sale", "ltn.overridden", "breakers.drawdown.value", "breakers.kill_switch.tripped",
            "sizing.final_qty", "sizing.cuts.reserve", "go_nogo", "fusion_gates", "predicted_slippage_bps",
            "slippage_bps", "reward", "position", "equity", "time", "episode", "halt_reason"} <= set(df.columns)
    kinds = set()
    for row in df.to_dict("records"):
        proposed, final = _val(row["proposed_action"]), _val(row["final_action"])
        if final == proposed:
            assert row["explanation"] == []
            continue
        text = " | ".join(row["explanation"])
        assert text and "unexplained" not in text, row
        if _val(row.get("ltn.overridden")):
            kinds.add("ltn")
            assert row["ltn_violated_rules"] and all(name in text for name in row["ltn_violated_rules"])
            assert row["ltn_violated_rules"][0] in ("position_limit", "wash_sale")
        elif final is None:
            kinds.add("halt")
            assert row["halted"] and f"blocked: {row['halt_reason']}" in text
        else:
            kinds.add("sizing")
            assert row["sizing.final_qty"] != row["sizing.proposed_qty"] and "sizing_cut" in text
    assert kinds == {"ltn", "halt", "sizing"}
    last = df.iloc[-1]
    assert last["halt_reason"] == "kill_switch: end of test session" and last["terminated"]
    assert last["action_forwarded"] is False or last["action_forwarded"] == 0


def test_flushed_at_episode_end_and_second_episode_appends(tmp_path):
    path = tmp_path / "audit.jsonl"
    path.write_text('{"earlier": "run"}\n')
    env, _ = stack(path, episode_steps=30)
    env.reset()
    for _ in range(30):
        env.step(0)
    # truncated at the session end: flushed and fsync'd without close()
    lines = path.read_text().splitlines()
    assert len(lines) == 31 and lines[0] == '{"earlier": "run"}'
    env.reset()
    for _ in range(10):
        env.step(1)
    assert len(path.read_text().splitlines()) == 41  # each decision is written before its step returns
    env.reset()  # an unfinished episode is fsync'd on reset
    assert len(path.read_text().splitlines()) == 41
    env.step(0)
    env.close()
    env.close()  # idempotent
    again, _ = stack(path, episode_steps=30)
    again.reset()
    again.step(0)
    again.close()
    df = read_audit_log(path)
    assert len(df) == 43 and df["earlier"].iloc[0] == "run"
    ours = df.iloc[1:]
    assert list(ours["episode"]) == [0] * 30 + [1] * 10 + [2] + [0]
    assert ours["run_id"].nunique() == 2


def test_buffer_writes_when_full(tmp_path):
    path = tmp_path / "audit.jsonl"
    env = AuditLog(JanusLOBEnv(scenario="ou", seed=0, episode_steps=50), path, buffer_size=4)
    env.reset()
    for _ in range(9):
        env.step(0)
    assert len(path.read_text().splitlines()) == 8
    env.close()
    assert len(path.read_text().splitlines()) == 9


def test_plain_env_record(tmp_path):
    path = tmp_path / "audit.jsonl"
    env = AuditLog(JanusLOBEnv(scenario="ou", seed=0, episode_steps=5), path)
    env.reset()
    for _ in range(5):
        env.step(np.int64(1))
    env.close()
    rec = json.loads(path.read_text().splitlines()[0])
    assert rec["proposed_action"] == rec["final_action"] == 1 and rec["explanation"] == []
    for slot in ("ltn", "breakers", "sizing", "go_nogo", "fusion_gates", "predicted_slippage_bps",
                 "halt_reason", "ltn_violated_rules", "action_forwarded"):
        assert rec[slot] is None
    assert rec["halted"] is False and rec["position"] == 100 and rec["sim_step"] == 1


def test_slots_are_recorded_when_present(tmp_path):
    class Slots(gym.Wrapper):
        def step(self, action):
            obs, r, te, tr, info = self.env.step(action)
            return obs, r, te, tr, {**info, "go_nogo": {"go": np.float32(0.8), "nogo": np.array([0.1, 0.2])},
                                    "fusion_gates": {"vis": np.float64(0.3)}, "predicted_slippage_bps": 1.5}

    path = tmp_path / "audit.jsonl"
    env = AuditLog(Slots(JanusLOBEnv(scenario="ou", seed=0, episode_steps=3)), path)
    env.reset()
    for _ in range(3):
        env.step(1)
    env.close()
    df = read_audit_log(path)
    assert df["go_nogo.go"].iloc[0] == pytest.approx(0.8) and df["go_nogo.nogo"].iloc[0] == [0.1, 0.2]
    assert df["fusion_gates.vis"].iloc[0] == 0.3 and df["predicted_slippage_bps"].iloc[0] == 1.5


def test_records_carry_the_reset_seed_and_the_tags(tmp_path):
    path = tmp_path / "audit.jsonl"
    env = AuditLog(JanusLOBEnv(scenario="ou", seed=0, episode_steps=3), path,
                   tags={"scenario": "ou", "strategy": "agent"})
    env.reset(seed=11)
    for _ in range(3):
        env.step(1)
    env.reset()
    env.step(1)
    env.close()
    df = read_audit_log(path)
    assert df["seed"].tolist()[:3] == [11, 11, 11] and df["seed"].isna().iloc[3]
    assert (df["scenario"] == "ou").all() and (df["strategy"] == "agent").all()
    rec = json.loads(path.read_text().splitlines()[0])
    assert tuple(rec) == (*RECORD_KEYS, "scenario", "strategy")


def test_bad_tags(tmp_path):
    env = JanusLOBEnv(scenario="ou", seed=0)
    with pytest.raises(TypeError, match=re.escape("Expected `tags` to be a mapping, got ['ou']")):
        AuditLog(env, tmp_path / "a.jsonl", tags=["ou"])
    with pytest.raises(ValueError, match=re.escape("Expected `tags` other than the record's own keys")):
        AuditLog(env, tmp_path / "a.jsonl", tags={"step": 3})


def test_to_jsonable():
    torch = pytest.importorskip("torch")
    x = {"a": np.float32(1.5), "b": np.int64(3), "c": np.array([[1, 2]]), "d": np.bool_(True),
         "e": float("nan"), "f": (np.float64(np.inf), None), 3: torch.tensor([0.5], requires_grad=True)}
    out = to_jsonable(x)
    assert out == {"a": 1.5, "b": 3, "c": [[1, 2]], "d": True, "e": None, "f": [None, None], "3": [0.5]}
    json.dumps(out, allow_nan=False)


def test_corrupt_line_names_file_and_line(tmp_path):
    path = tmp_path / "audit.jsonl"
    path.write_text('{"step": 0}\n{"step": 1\n{"step": 2}\n')
    with pytest.raises(AuditLogError, match=re.escape(_CORRUPT_LINE.format(path, 2, ""))):
        read_audit_log(path)
    path.write_text('{"step": 0}\n[1, 2]\n')
    with pytest.raises(AuditLogError, match=re.escape(_CORRUPT_LINE.format(path, 2, "expected a JSON object"))):
        read_audit_log(path)
    assert issubclass(AuditLogError, ValueError)


def test_empty_log(tmp_path):
    path = tmp_path / "audit.jsonl"
    path.write_text("")
    assert read_audit_log(path).empty


def test_bad_arguments(tmp_path):
    env = JanusLOBEnv(scenario="ou", seed=0)
    with pytest.raises(TypeError, match=re.escape(_BAD_PATH.format(3))):
        AuditLog(env, 3)
    with pytest.raises(ValueError, match=re.escape("Expected `buffer_size` to be an int >= 1, got 0")):
        AuditLog(env, tmp_path / "a.jsonl", buffer_size=0)
    with pytest.raises(TypeError, match=re.escape("Expected `buffer_size` to be an int >= 1, got 10.0")):
        AuditLog(env, tmp_path / "a.jsonl", buffer_size=10.0)
    with pytest.raises(TypeError, match=re.escape(_BAD_PATH.format(None))):
        read_audit_log(None)
    for name, value, error, expected in [("fsync_every", 0, ValueError, "an int >= 1 or None"),
                                         ("fsync_seconds", 0, ValueError, "a finite number > 0 or None"),
                                         ("fsync_seconds", "1", TypeError, "a finite number > 0 or None"),
                                         ("fsync_every", 1.5, TypeError, "an int >= 1 or None"),
                                         ("max_bytes", 0, ValueError, "an int >= 1 or None"),
                                         ("backups", 0, ValueError, "an int >= 1 or None"),
                                         ("backups", "2", TypeError, "an int >= 1 or None")]:
        with pytest.raises(error, match=re.escape(bad_value(name, expected, value))):
            AuditLog(env, tmp_path / "a.jsonl", **{name: value})


@pytest.mark.parametrize("action_type", ["sized", "continuous"])
def test_documented_stack_with_ltn_shield_is_explained(tmp_path, action_type):
    shield = pytest.importorskip("wrappers.shield")
    path = tmp_path / "audit.jsonl"
    base = JanusLOBEnv(scenario="ou", seed=3, action_type=action_type, n_sizes=N_SIZES, max_position=5000, lot=300,
                       episode_steps=150)
    env = AuditLog(Amygdala(shield.LTNShield(Hypothalamus(base))), path)
    rng = np.random.default_rng(1)
    for _ in range(2):
        env.reset()
        for _ in range(150):
            a = (np.int64(rng.integers(0, 2 * N_SIZES + 1)) if action_type == "sized"
                 else rng.uniform(-1, 1, 1).astype(np.float32))
            _, _, term, trunc, _ = env.step(a)
            if term or trunc:
                break
    env.close()
    df = read_audit_log(path)
    assert set(df["episode"]) == {0, 1}
    changed = 0
    for row in df.to_dict("records"):
        proposed, final = _val(row["proposed_action"]), _val(row["final_action"])
        if _val(row.get("ltn.overridden")) is not None:
            # composition order: the shield's output is what the hypothalamus sized
            assert row["sizing.proposed_action"] == row["ltn.final_action"]
        if final == proposed:
            continue
        changed += 1
        text = " | ".join(row["explanation"])
        assert text and "unexplained" not in text
        if row["ltn.overridden"]:
            truths = {k[len("ltn.rules."):]: v for k, v in row.items() if k.startswith("ltn.rules.")}
            below = sorted(k for k, v in truths.items() if v < 0.9)
            assert sorted(row["ltn_violated_rules"]) == below or (not below and len(row["ltn_violated_rules"]) == 1)
            assert all(name in text for name in row["ltn_violated_rules"])
        elif final is None:
            assert f"blocked: {row['halt_reason']}" in text
        else:
            assert "sizing_cut" in text
    assert changed > 0


def test_unclosed_log_keeps_its_records(tmp_path):
    path = tmp_path / "audit.jsonl"
    env = AuditLog(JanusLOBEnv(scenario="ou", seed=0, episode_steps=50), path)
    env.reset()
    for _ in range(3):
        env.step(0)
    del env
    gc.collect()
    assert len(path.read_text().splitlines()) == 3


# --------------------------------------------------------------------------- durability
class Counter(gym.Wrapper):
    """Counts the actions that reach the env."""

    n = 0

    def step(self, action):
        self.n += 1
        return self.env.step(action)


def _lines(path) -> list[str]:
    return path.read_bytes().decode().splitlines()


_WRITER = textwrap.dedent("""
    import sys
    from janus_env.lob_env import JanusLOBEnv
    from wrappers.audit import AuditLog
    kwargs = {} if sys.argv[2] == "default" else {"buffer_size": int(sys.argv[2])}
    env = AuditLog(JanusLOBEnv(scenario="ou", seed=0, episode_steps=10_000, warmup=8), sys.argv[1], **kwargs)
    env.reset(seed=0)
    for n in range(1, 100_000):
        env.step(n % 3)
        print(n, flush=True)  # this decision's step() has returned
""")


@pytest.mark.parametrize("buffer_size", [None, 50])
def test_kill_9_mid_run_loses_at_most_the_documented_bound(tmp_path, buffer_size):
    """A process killed mid-episode (no episode end, no close) loses at most ``buffer_size`` decisions: the
    ``buffer_size − 1`` still in memory and the one being recorded. With the default (1), every decision whose
    step returned is in the file."""
    path = tmp_path / "audit.jsonl"
    arg = "default" if buffer_size is None else str(buffer_size)
    proc = subprocess.Popen([sys.executable, "-c", _WRITER, str(path), arg], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, cwd=os.path.dirname(os.path.dirname(
                                os.path.dirname(os.path.abspath(__file__)))))
    try:
        for line in proc.stdout:
            if int(line) >= 400:
                break
        proc.send_signal(signal.SIGKILL)
        rest = proc.stdout.read().split()  # what it reported before it died
    finally:
        proc.kill()
        proc.wait()
    assert proc.returncode == -signal.SIGKILL, proc.stderr.read()
    returned = int(rest[-1]) if rest else 400  # decisions whose step() had returned when it died
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", AuditLogWarning)  # a torn last line is allowed (and skipped)
        df = read_audit_log(path)
    assert list(df["step"]) == list(range(len(df)))  # nothing out of order, nothing in the middle missing
    bound = buffer_size or 1  # the default writes every record before its step returns
    assert returned - bound < len(df) <= returned + 1, (returned, len(df))
    if buffer_size is None:
        assert len(df) >= returned  # every decision whose step returned is on record
    again = AuditLog(JanusLOBEnv(scenario="ou", seed=0, episode_steps=5), path)  # the file takes more records
    again.reset()
    again.step(0)
    again.close()
    assert len(read_audit_log(path)) == len(df) + 1


def test_torn_last_line_is_skipped_with_a_warning(tmp_path):
    path = tmp_path / "audit.jsonl"
    torn = b'{"step": 2, "ltn": {"ru'
    path.write_bytes(b'{"step": 0}\n{"step": 1}\n' + torn)
    with pytest.warns(AuditLogWarning, match=re.escape(_TORN_LINE.format(path, 3, len(torn)))):
        df = read_audit_log(path)
    assert list(df["step"]) == [0, 1]
    # a complete last record without its newline is not torn; a bad line that ends with one is corruption
    path.write_bytes(b'{"step": 0}\n{"step": 1}')
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert list(read_audit_log(path)["step"]) == [0, 1]
    path.write_bytes(b'{"step": 0}\n{"step": 1\n{"step": 2}\n')
    with pytest.raises(AuditLogError, match=re.escape(_CORRUPT_LINE.format(path, 2, ""))):
        read_audit_log(path)
    path.write_bytes(b'{"step": 0}\n{"st\n{"step": 2')  # torn in the middle, then a torn end: still an error
    with pytest.raises(AuditLogError, match=re.escape(_CORRUPT_LINE.format(path, 2, ""))):
        read_audit_log(path)
    path.write_bytes(b'{"step": 0}\n{"x": "\xc3')  # torn inside a UTF-8 character
    with pytest.warns(AuditLogWarning, match=re.escape(_TORN_LINE.format(path, 2, 8))):
        assert list(read_audit_log(path)["step"]) == [0]


def test_appending_after_a_torn_line_repairs_the_file(tmp_path):
    path = tmp_path / "audit.jsonl"
    torn = b'{"step": 2, "ltn": {"ru'
    path.write_bytes(b'{"step": 0}\n{"step": 1}\n' + torn)
    with pytest.warns(AuditLogWarning, match=re.escape(_TORN_TAIL.format(path, 3, len(torn)))):
        env = AuditLog(JanusLOBEnv(scenario="ou", seed=0, episode_steps=5), path)
    env.reset()
    env.step(1)
    env.close()
    lines = _lines(path)
    assert lines[:2] == ['{"step": 0}', '{"step": 1}'] and len(lines) == 3
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # nothing torn any more
        df = read_audit_log(path)
    assert list(df["step"]) == [0, 1, 0] and df["proposed_action"].iloc[2] == 1
    # a whole record without its newline gets one, and is kept
    path.write_bytes(b'{"step": 0}')
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        AuditLog(JanusLOBEnv(scenario="ou", seed=0), path).close()
    assert path.read_bytes() == b'{"step": 0}\n'
    path.write_bytes(b'{"st')  # a file that is one torn line
    with pytest.warns(AuditLogWarning, match=re.escape(_TORN_TAIL.format(path, 1, 4))):
        AuditLog(JanusLOBEnv(scenario="ou", seed=0), path).close()
    assert path.read_bytes() == b""


@pytest.mark.parametrize("backups", [None, 2])
def test_rotation_round_trip(tmp_path, backups):
    path = tmp_path / "audit.jsonl"
    env = AuditLog(JanusLOBEnv(scenario="ou", seed=0, episode_steps=25), path, max_bytes=8_000, backups=backups)
    for _ in range(4):
        env.reset()
        for t in range(25):
            env.step(t % 3)
    env.close()
    files = audit_log_files(path)
    numbers = [int(f.rsplit(".", 1)[1]) for f in files[:-1]]
    assert files[-1] == str(path) and numbers == sorted(numbers, reverse=True) and numbers[-1] == 1
    assert all(os.path.getsize(f) <= 8_000 for f in files)
    df = read_audit_log(path)
    seen = [(e, s) for e, s in zip(df["episode"], df["step"])]
    assert seen == sorted(seen) and len(set(seen)) == len(seen)  # oldest first, no record twice
    if backups is None:
        assert len(files) >= 6 and seen == [(e, s) for e in range(4) for s in range(25)]
    else:
        assert len(files) == 3 and seen[-1] == (3, 24) and len(df) < 100  # the oldest were deleted
        assert seen == [(e, s) for e in range(4) for s in range(25)][-len(df):]  # ... and only the oldest
    assert len(read_audit_log(path, rotated=False)) == len(_lines(path))


def test_a_write_that_fails_stops_the_next_order(tmp_path, monkeypatch):
    """Disk full: the step that could not record raises (its order executed); later steps raise before
    forwarding anything; close() retries the unwritten record."""
    import wrappers.audit as audit

    path = tmp_path / "audit.jsonl"
    inner = Counter(JanusLOBEnv(scenario="ou", seed=0, episode_steps=50))
    env = AuditLog(inner, path)
    env.reset()
    env.step(1)
    full = OSError(28, "No space left on device")

    def no_space(fd, data):
        raise full

    monkeypatch.setattr(audit, "_write_all", no_space)
    with pytest.raises(OSError, match="No space left on device"):
        env.step(1)
    assert inner.n == 2
    for call in (lambda: env.step(1), env.reset):
        with pytest.raises(RuntimeError, match=re.escape(_BROKEN.format(full))):
            call()
    assert inner.n == 2
    monkeypatch.undo()
    env.close()
    assert [json.loads(line)["step"] for line in _lines(path)] == [0, 1]


def test_fsync_cadence(tmp_path, monkeypatch):
    synced: list[int] = []  # lines in the file at each fsync
    real = os.fsync
    path = tmp_path / "audit.jsonl"
    env = AuditLog(JanusLOBEnv(scenario="ou", seed=0, episode_steps=1000), path, fsync_every=100, fsync_seconds=None)
    env.reset()
    current = {"path": path}  # the file being written
    monkeypatch.setattr(os, "fsync", lambda fd: (synced.append(len(_lines(current["path"]))), real(fd)))
    for _ in range(250):
        env.step(0)
    assert synced == [100, 200]  # every 100 decisions, each written before
    env.flush()
    assert synced == [100, 200, 250]
    env.close()
    assert synced == [100, 200, 250]  # nothing new to sync
    current["path"] = tmp_path / "b.jsonl"
    rare = AuditLog(JanusLOBEnv(scenario="ou", seed=0, episode_steps=30), current["path"], fsync_every=None,
                    fsync_seconds=None)
    rare.reset()
    synced.clear()
    for _ in range(30):
        rare.step(0)
    assert synced == [30]  # only at the episode end
    rare.close()
    # the time limit: the first write a second (of the monotonic clock) after the last fsync syncs
    import wrappers.audit as audit

    clock = {"now": 1000.0}
    monkeypatch.setattr(audit.time, "monotonic", lambda: clock["now"])
    current["path"] = tmp_path / "c.jsonl"
    timed = AuditLog(JanusLOBEnv(scenario="ou", seed=0, episode_steps=1000), current["path"])
    assert (timed.fsync_every, timed.fsync_seconds, timed.buffer_size) == (DEFAULT_FSYNC_EVERY,
                                                                          DEFAULT_FSYNC_SECONDS, 1) == (1000, 1.0, 1)
    timed.reset()
    synced.clear()
    for t in range(10):
        clock["now"] += 0.25
        timed.step(0)
    assert synced == [4, 8]  # the writes 1 s and 2 s after the reset's sync
    timed.close()
