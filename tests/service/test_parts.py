"""The service's parts without a server: keys, store, rate limit, metrics format, fills, body validation."""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import sqlite3
import threading
import time
from types import SimpleNamespace

import numpy as np
import pytest

from agents.app.service.accounts import Account
from agents.app.service.keys import ApiKeys, Principal, make_key, parse_scopes
from agents.app.service.metrics import Registry, halt_label
from agents.app.service.ratelimit import RateLimiter
from agents.app.service.schemas import DecisionRequest, FieldError, error_detail
from agents.app.service.store import ServiceStore
from janus_env.config import MarketConfig
from pydantic import ValidationError


def test_keys_are_stored_as_salted_digests_and_verified(tmp_path) -> None:
    store = ServiceStore(tmp_path)
    keys = ApiKeys(store)
    key = keys.create("desk-a", ("decide",))
    other = keys.create("ops", ("decide", "admin"))
    assert keys.verify(key) == Principal("desk-a", ("decide",))
    assert keys.verify(other) == Principal("ops", ("decide", "admin"))
    _, key_id, secret = key.split("_", 2)
    # nothing in the database file is the secret; the row holds HMAC-SHA256(salt, secret)
    raw = (tmp_path / "service.db").read_bytes()
    assert secret.encode() not in raw
    salt, digest = sqlite3.connect(tmp_path / "service.db").execute(
        "SELECT salt, digest FROM keys WHERE key_id = ?", (key_id,)).fetchone()
    assert digest == hmac.new(salt, secret.encode(), hashlib.sha256).digest() and len(salt) == 16
    # a changed secret, another key's id with this secret, garbage: refused
    assert keys.verify(key[:-1] + ("A" if key[-1] != "A" else "B")) is None
    assert keys.verify(f"janus_{other.split('_')[1]}_{secret}") is None
    assert keys.verify("janus_000000000000_" + "x" * 43) is None
    assert keys.verify("Bearer nonsense") is None
    with pytest.raises(ValueError, match="a key named 'desk-a' exists already"):
        keys.create("desk-a", ("decide",))
    with pytest.raises(ValueError, match="expected a name of 1-64 letters"):
        keys.create("../etc", ("decide",))
    store.close()
    assert make_key(tmp_path, "third", "decide").startswith("janus_")


def test_scopes() -> None:
    assert parse_scopes("decide, admin,decide") == ("decide", "admin")
    for bad in ("", "root", "decide,root"):
        with pytest.raises(ValueError, match="expected scopes among"):
            parse_scopes(bad)


def test_halts_survive_reopening_the_store(tmp_path) -> None:
    store = ServiceStore(tmp_path)
    store.halt("desk-a", "manual: test", "manual")
    store.halt("desk-a", "drawdown: later", "breaker")  # the first reason stays
    store.close()
    again = ServiceStore(tmp_path)
    assert again.halts()["desk-a"][:2] == ("manual: test", "manual")
    again.resume("desk-a")
    assert again.halts() == {}
    assert again.writable()


def test_token_bucket() -> None:
    now = [0.0]
    limiter = RateLimiter(rate=2.0, burst=3, clock=lambda: now[0])
    assert [limiter.take("a") for _ in range(3)] == [None, None, None]
    wait = limiter.take("a")
    assert wait == pytest.approx(0.5)  # one token at 2/s
    assert limiter.take("b") is None  # per key
    now[0] = 0.5
    assert limiter.take("a") is None
    assert limiter.take("a") == pytest.approx(0.5)
    now[0] = 100.0
    assert [limiter.take("a") for _ in range(4)][-1] is not None  # refills to the burst, not beyond
    assert RateLimiter.retry_after(0.2) == "1" and RateLimiter.retry_after(2.1) == "3"
    with pytest.raises(ValueError, match="`burst` to be a number >= 1"):
        RateLimiter(1.0, 0.5)


def test_metrics_text_format() -> None:
    m = Registry()
    for seconds in (0.0004, 0.002, 0.002, 0.3):
        m.latency.observe(seconds)
    m.decisions.inc("1", "buy")
    m.decisions.inc("1", "buy")
    m.halts.inc(halt_label("drawdown: session drawdown 12% > 10%"))
    m.model.set(1, 'v"1', "onnx")
    text = m.render()
    lines = text.splitlines()
    assert 'janus_decision_latency_seconds_bucket{le="0.0005"} 1' in lines
    assert 'janus_decision_latency_seconds_bucket{le="0.002"} 3' in lines  # cumulative
    assert 'janus_decision_latency_seconds_bucket{le="+Inf"} 4' in lines
    assert "janus_decision_latency_seconds_count 4" in lines
    assert float(next(x for x in lines if x.startswith("janus_decision_latency_seconds_sum")).split()[1]) == \
        pytest.approx(0.3044)
    assert 'janus_decisions_total{action="1",side="buy"} 2' in lines
    assert 'janus_halts_total{reason="drawdown"} 1' in lines
    assert 'janus_model_info{version="v\\"1",engine="onnx"} 1' in lines
    assert "# TYPE janus_decisions_total counter" in lines and text.endswith("\n")


def _account() -> tuple[Account, MarketConfig]:
    config = MarketConfig(lot=0.01, max_position=1.0, fee_bps=1.0)
    account = Account.new("desk", config)
    account.open_order(account.next_decision(), units=5, mid=100.0)  # buy 0.05
    return account, config


def test_fills_follow_the_envs_accounting() -> None:
    account, config = _account()
    account.apply_fill(0, 0.03, 101.0, config)
    account.apply_fill(0, 0.02, 102.0, config)
    assert account.units == 5
    fees = 1e-4 * (0.03 * 101.0 + 0.02 * 102.0)
    assert account.cash == pytest.approx(100_000.0 - 0.03 * 101.0 - 0.02 * 102.0 - fees, abs=1e-9)
    assert account.cost == pytest.approx(0.03 * 101.0 + 0.02 * 102.0)
    execution = account.cycle_execution(config)
    vwap = (0.03 * 101.0 + 0.02 * 102.0) / 0.05
    assert execution["exec_qty"] == pytest.approx(0.05) and execution["exec_price"] == pytest.approx(vwap)
    assert execution["slippage_bps"] == pytest.approx((vwap - 100.0) / 100.0 * 1e4)
    restored = Account.from_json(account.to_json())
    assert restored == account


@pytest.mark.parametrize(
    ("decision", "qty", "status", "field", "message"),
    [
        (7, 0.01, 404, "decision_id", "no decision 7 in this account (its decisions are 0..0)"),
        (0, -0.01, 422, "qty", "expected a buy (qty > 0) fill (decision 0 ordered 0.05), got -0.01"),
        (0, 0.015, 422, "qty", "expected a multiple of the run's quantity grid 0.01, got 0.015"),
        (0, 0.06, 409, "qty", "fills of decision 0 would total 0.06, over its order of 0.05"),
    ],
)
def test_fill_errors(decision: int, qty: float, status: int, field: str, message: str) -> None:
    account, config = _account()
    before = account.to_json()
    with pytest.raises(FieldError) as caught:
        account.apply_fill(decision, qty, 100.0, config)
    assert (caught.value.status, caught.value.field, caught.value.message) == (status, field, message)
    assert account.to_json() == before  # nothing booked


def test_a_closed_decision_takes_no_fills() -> None:
    account, config = _account()
    account.open_order(account.next_decision(), units=0, mid=100.0)
    with pytest.raises(FieldError, match="decision 0 is closed: fills are accepted for the open decision 1 only"):
        account.apply_fill(0, 0.01, 100.0, config)
    with pytest.raises(FieldError, match="decision 1 sent no order"):
        account.apply_fill(1, 0.01, 100.0, config)


@pytest.mark.parametrize(
    ("raw", "status", "field", "message"),
    [
        (b'{"market": {"prices": [1, NaN]', 400, "body", "Invalid JSON"),
        (b'{"market": {"prices": [1.0, NaN], "volumes": [1, 1], "bids": [[1, 1]], "asks": [[2, 1]]}}', 422,
         "market.prices[1]", "Input should be a finite number"),
        (b'{"market": {"prices": [1e999], "volumes": [1], "bids": [[1, 1]], "asks": [[2, 1]]}}', 422,
         "market.prices[0]", "Input should be a finite number"),
        (b'{"market": {"prices": ["1"], "volumes": [1], "bids": [[1, 1]], "asks": [[2, 1]]}}', 422,
         "market.prices[0]", "Input should be a valid number"),
        (b'{"market": {"prices": [1], "volumes": [1], "bids": [[1, 1, 1]], "asks": [[2, 1]]}}', 422,
         "market.bids[0]", "List should have at most 2 items"),
        (b'{"market": {"prices": [1], "volumes": [1], "bids": [[1, 1]], "asks": [[2, 1]], "extra": 1}}', 422,
         "market.extra", "Extra inputs are not permitted"),
        (b'{"market": {"prices": [' + b"1," * 10_000 + b'1], "volumes": [1], "bids": [[1, 1]], "asks": [[2, 1]]}}',
         422, "market.prices", "List should have at most 10000 items"),
        (b'[1, 2]', 422, "body", "Input should be an object"),
    ],
)
def test_body_errors_name_the_field(raw: bytes, status: int, field: str, message: str) -> None:
    with pytest.raises(ValidationError) as caught:
        DecisionRequest.model_validate_json(raw)
    got_status, detail = error_detail(caught.value)
    assert got_status == status
    assert any(d["field"] == field and message in d["message"] for d in detail), detail


@pytest.mark.parametrize(("tau_veto", "tau_logic", "hold"), [(0.7, 0.1, 0), (0.5, 0.25, 0), (1.0, 1.0, 2),
                                                              (1e-3, 0.3333333333333333, 1)])
def test_the_engines_gate_is_the_policys_on_every_boundary(tau_veto, tau_logic, hold) -> None:
    """``gate_row`` (numpy, one row) against ``basal_ganglia_gate`` (the tensors ``apply_gate`` runs): every
    proposal, No-Go probabilities one float32 step below, at and above τ_veto (and the float64 τ itself),
    logic losses likewise around τ_logic, HOLD allowed, forbidden or not masked."""
    import torch as th

    from agents.app.service.engine import gate_row
    from agents.basal_ganglia.gate import basal_ganglia_gate

    policy = SimpleNamespace(tau_veto=tau_veto, tau_logic=tau_logic, hold_action=hold)

    def near(tau: float) -> list[float]:
        f32 = np.float32(tau)
        return sorted({float(np.nextafter(f32, np.float32(-1))), float(f32), float(np.nextafter(f32, np.float32(2))),
                       tau, 0.0, 1.0})

    cases = 0
    for proposed in range(3):
        for nogo_p in near(tau_veto):
            for logic in near(tau_logic):
                for allowed in (None, True, False):
                    nogo = np.full(3, 0.5, dtype=np.float32)
                    nogo[proposed] = nogo_p
                    final, vetoed = basal_ganglia_gate(
                        th.as_tensor([proposed]), th.as_tensor(nogo[None]), th.as_tensor([logic], dtype=th.float32),
                        tau_veto=tau_veto, tau_logic=tau_logic, hold_action=hold,
                        hold_allowed=None if allowed is None else th.as_tensor([allowed]))
                    assert gate_row(proposed, nogo, logic, policy, allowed) == (int(final[0]), bool(vetoed[0]))
                    cases += 1
    assert cases == 3 * len(near(tau_veto)) * len(near(tau_logic)) * 3


def test_key_rows_are_read_from_the_store_once(tmp_path) -> None:
    store = ServiceStore(tmp_path)
    keys = ApiKeys(store)
    key = keys.create("desk-a", ("decide",))
    reads = []
    real = store.key
    store.key = lambda key_id: reads.append(key_id) or real(key_id)  # type: ignore[method-assign]
    for _ in range(3):
        assert keys.verify(key) == Principal("desk-a", ("decide",))
    assert keys.verify(key[:-1] + ("A" if key[-1] != "A" else "B")) is None  # the cached row still checks the secret
    assert len(reads) == 1
    assert keys.verify("janus_000000000000_" + "x" * 43) is None and len(reads) == 2  # unknown ids: not cached
    assert keys.verify("janus_000000000000_" + "x" * 43) is None and len(reads) == 3
    store.close()


def test_the_store_checkpoints_on_demand_only(tmp_path) -> None:
    """With background checkpoints the serving connection never checkpoints (its commits never wait for the
    checkpoint's fsyncs); ``checkpoint()`` copies the whole log, from another thread, and the data is all there."""
    store = ServiceStore(tmp_path)
    store.background_checkpoints()
    assert store.query("PRAGMA wal_autocheckpoint") == [(0,)]
    state = json.dumps({"pad": "x" * 3000})
    for i in range(1500):  # a page or more a commit: past SQLite's automatic checkpoint at 1,000 pages
        store.save_account(f"desk-{i % 7}", state)
    wal = tmp_path / "service.db-wal"
    assert wal.stat().st_size > 1000 * 4096  # nothing checkpointed it meanwhile
    done: list[tuple[int, int]] = []
    worker = threading.Thread(target=lambda: done.append(store.checkpoint()))
    worker.start()
    worker.join()
    (log, copied), = done
    assert log > 1000 and copied == log
    store.save_account("desk-0", "{}")
    store.close()
    again = ServiceStore(tmp_path)
    assert again.account("desk-0") == "{}" and again.account("desk-6") == state
    again.close()


def test_disk_syncer_fsyncs_what_was_written_off_the_caller(tmp_path, monkeypatch) -> None:
    from agents.app.service import syncer as syncer_module
    from agents.app.service.syncer import DiskSyncer

    synced: list[str] = []
    real_fsync = os.fsync
    paths = {}

    def fsync(fd: int) -> None:
        real_fsync(fd)
        synced.append(paths.get(os.fstat(fd).st_ino, "?"))

    monkeypatch.setattr(syncer_module.os, "fsync", fsync)
    a, b = tmp_path / "a.jsonl", tmp_path / "b.jsonl"
    for path in (a, b):
        path.write_text("")
        paths[path.stat().st_ino] = path.name
    checkpoints = []
    sync = DiskSyncer(seconds=3600, checkpoint=lambda: checkpoints.append(1))
    sync.wrote(a)
    sync.wrote(a)
    assert sync.sync() == 1 and synced == ["a.jsonl"] and checkpoints == [1]
    assert sync.sync() == 0 and synced == ["a.jsonl"]  # nothing new written: no fsync
    sync.wrote(b)
    sync.wrote(a)
    assert sync.sync() == 2 and sorted(synced[1:]) == ["a.jsonl", "b.jsonl"]

    def failing(fd: int) -> None:
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(syncer_module.os, "fsync", failing)
    sync.wrote(b)
    sync.check(a)
    assert sync.sync() == 0
    with pytest.raises(OSError, match="Input/output error"):
        sync.check(b)  # the next record of b is refused (its account halts with audit_error)
    sync.check(b)  # reported once
    sync.checkpoint = lambda: 1 / 0
    sync.sync()
    assert sync.checkpoint_errors == 1
    monkeypatch.setattr(syncer_module.os, "fsync", fsync)
    sync.stop()
    sync.stop()
    assert synced[-1] == "b.jsonl"  # stop() made a last pass: b's record is on disk after all


def test_disk_syncer_thread_runs_every_period(tmp_path) -> None:
    from agents.app.service.syncer import DiskSyncer

    path = tmp_path / "a.jsonl"
    path.write_text("x\n")
    sync = DiskSyncer(seconds=0.02)
    sync.start()
    sync.wrote(path)
    deadline = time.monotonic() + 10
    while sync.passes == 0 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert sync.passes == 1
    sync.stop()
    with pytest.raises(ValueError):
        DiskSyncer(seconds=0)


def test_the_numpy_cerebellum_predicts_what_torch_does() -> None:
    """``Cerebellum.numpy_predictor`` (the ONNX engine's) against ``predictor`` (torch) on 200 states of the env,
    every action: equal to float32 rounding; HOLD 0; a malformed observation is the same ValueError."""
    import gymnasium as gym

    import envs_registry  # noqa: F401
    from agents.cerebellum import Cerebellum

    env = gym.make("Janus-LOB-v0", seed=0, n_sizes=2, action_type="sized")
    cerebellum = Cerebellum.from_env(env, seed=3, hidden=(16, 8))
    fast = cerebellum.numpy_predictor()
    obs, _ = env.reset(seed=0)
    rng = np.random.default_rng(0)
    for _ in range(200):
        obs, *_ = env.step(int(rng.integers(0, 5)))
        for action in range(5):
            ours, theirs = fast(obs, np.int64(action), {}), cerebellum.predictor(obs, np.int64(action), {})
            assert ours == pytest.approx(theirs, rel=1e-5, abs=1e-5)
            assert (ours == 0.0) == (action == 0)
    with pytest.raises(ValueError, match="Expected an observation with keys 'book' and 'market'"):
        fast({"book": np.zeros(3)}, np.int64(1), {})
    with pytest.raises(ValueError, match="Expected a discrete action index in"):
        fast(obs, np.int64(9), {})


@pytest.mark.parametrize("engine", ["torch", "onnx"])
def test_engine_masks_only_a_model_trained_with_masks(engine: str, tmp_path) -> None:
    """A JanusPPO trained with ``action_masking=False`` proposes from its whole distribution in the service as in
    training (the guard's shield overrides afterwards); one trained with masks never proposes a masked action."""
    import gymnasium as gym
    from stable_baselines3.common.vec_env import DummyVecEnv

    import envs_registry  # noqa: F401
    from agents.app.service.engine import DecisionEngine
    from agents.basal_ganglia import BasalGangliaMaskablePolicy, JanusPPO
    from wrappers import LTNShield

    buy = 1
    obs, _ = gym.make("Janus-LOB-v0", episode_steps=40).reset(seed=0)
    masks = np.array([True, False, True])  # BUY masked
    for masking in (True, False):
        env = DummyVecEnv([lambda: LTNShield(gym.make("Janus-LOB-v0", episode_steps=40))])
        model = JanusPPO(BasalGangliaMaskablePolicy, env, n_steps=64, batch_size=64, device="cpu",
                         policy_kwargs={"net_arch": [16], "tau_veto": 1.0}, action_masking=masking)
        model.policy.action_net.bias.data[buy] += 50.0  # the Go head wants BUY
        decision = DecisionEngine(model, engine, tmp_path / f"{masking}.onnx").decide(obs, np.ones(3), masks)
        assert (decision.proposed == buy) is (not masking), (engine, masking, decision)
