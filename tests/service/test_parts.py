"""The service's parts without a server: keys, store, rate limit, metrics format, fills, body validation."""

from __future__ import annotations

import hashlib
import hmac
import sqlite3

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
