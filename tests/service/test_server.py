"""The decision service over HTTP: a real server (``serve.py`` under uvicorn, a subprocess) and an httpx client.

Every endpoint and every error path: no key, a wrong scope, another client's account, malformed and oversized
bodies, NaN, a halted account, the rate limit, a breaker's halt, and a restart while halted. The tests of this
module share one server and run in file order (the last one restarts it).
"""

from __future__ import annotations

import json

import gymnasium as gym
import numpy as np
import pytest
import torch as th

import envs_registry  # noqa: F401
import serve
from agents.app.config import algo_class
from agents.app.service.keys import make_key
from wrappers import read_audit_log
from wrappers.audit import RECORD_KEYS
from wrappers.rules import RULE_NAMES

CONTRACT = ("action", "size", "confidence", "go_nogo", "ltn_satisfaction", "rules", "risk_score", "halted",
            "halt_reason", "model_version", "latency_ms")
LOT = 100.0  # Janus-LOB-v0's default lot (the run does not change it)
FEE = 0.5e-4  # its default fee_bps = 0.5
BUY = 1  # the served policy's favourite (tests/service/conftest.py: served_run)


def _decide(client, walk) -> dict:
    r = client.post("/api/v1/decision", json=walk.body())
    assert r.status_code == 200, r.text
    walk.advance()
    return r.json()


def test_health_ready_and_metrics_need_no_key(server) -> None:
    with server.client() as c:
        assert c.get("/api/v1/health").json() == {"status": "ok"}
        ready = c.get("/api/v1/ready").json()
        assert ready["ready"] and ready["model_loaded"] and ready["store_writable"]
        assert (ready["window"], ready["n_levels"], ready["episode_steps"], ready["n_actions"]) == (32, 5, 60, 3)
        metrics = c.get("/api/v1/metrics")
        assert metrics.headers["content-type"].startswith("text/plain; version=0.0.4")
        assert f'janus_model_info{{version="{ready["model_version"]}",engine="onnx"}} 1' in metrics.text


def test_keygen_prints_the_key_on_the_last_line(server, capsys) -> None:
    assert serve.main(["keygen", "--store", str(server.store), "--name", "cli-desk", "--scopes", "decide"]) == 0
    key = capsys.readouterr().out.strip().splitlines()[-1]
    with server.client(key) as c:
        assert c.get("/api/v1/account").json()["account"] == "cli-desk"
    assert serve.main(["keygen", "--store", str(server.store), "--name", "cli-desk", "--scopes", "decide"]) == 2
    assert "a key named 'cli-desk' exists already" in capsys.readouterr().err


def test_decisions_answer_the_contract_and_are_audited(server, new_key, walk) -> None:
    key = new_key("desk-a")
    with server.client(key) as c:
        answers = [_decide(c, walk) for _ in range(3)]
        version = c.get("/api/v1/ready").json()["model_version"]
    for i, a in enumerate(answers):
        assert set(CONTRACT) <= set(a)
        assert a["decision_id"] == i and a["model_version"] == version and a["latency_ms"] > 0
        assert a["proposed_action"] == BUY and a["go_nogo"]["proposed"] == BUY  # the Go head prefers BUY
        assert set(a["rules"]) == set(RULE_NAMES) and 0.0 <= a["ltn_satisfaction"] <= 1.0
        assert a["size"] == (LOT if a["action"] == BUY else 0.0) and a["side"] == ("buy" if a["size"] else "hold")
        assert 0.0 < a["confidence"] <= 1.0 and not a["halted"] and a["halt_reason"] is None
        assert not a["go_nogo"]["vetoed"] and not a["shield_overridden"]  # three buys, no position yet
    assert answers[0]["risk_score"] is None  # the fear breaker has no baseline before the session's first step
    assert 0.0 <= answers[1]["risk_score"] < 0.7
    log = read_audit_log(server.store / "audit" / "desk-a.jsonl")
    assert list(log["sim_step"]) == [0, 1, 2]
    assert set(RECORD_KEYS) <= set(c.split(".")[0] for c in log.columns)
    assert list(log["proposed_action"]) == [a["proposed_action"] for a in answers]
    assert list(log["final_action"]) == [a["action"] for a in answers]
    assert list(log["ltn.sat_agg"]) == [a["ltn_satisfaction"] for a in answers]
    assert list(log["account"]) == ["desk-a"] * 3 and list(log["model_version"]) == [version] * 3


def test_the_policy_answers_what_sb3_computes_on_the_envs_observation(server, served_run, new_key) -> None:
    """An observation body straight from the env; the answer's Go scores against SB3's own Q-network (torch)."""
    env = gym.make("Janus-LOB-v0", seed=5, episode_steps=60)
    obs, info = env.reset(seed=5)
    model = algo_class("janus-dqn").load(served_run / "model.zip", device="cpu")
    with th.no_grad():
        tensor, _ = model.policy.obs_to_tensor(obs)
        q = model.policy.q_net(tensor)[0].numpy()
    with server.client(new_key("desk-obs")) as c:
        r = c.post("/api/v1/decision", json={"observation": {k: v.tolist() for k, v in obs.items()},
                                             "mid": info["mid"]})
    assert r.status_code == 200, r.text
    np.testing.assert_allclose(r.json()["go_nogo"]["go"], q, atol=1e-5)
    assert r.json()["proposed_action"] == int(np.argmax(q))


def test_fills_move_the_account_and_the_logic_gate_stops_at_the_limits(server, new_key, walk) -> None:
    fills, vetoed, rules = [], 0, set()
    with server.client(new_key("desk-b")) as c:
        for _ in range(14):
            a = _decide(c, walk)
            if a["size"]:
                price = a["mid"] + 0.01  # the best ask
                r = c.post("/api/v1/fills", json={"decision_id": a["decision_id"], "qty": a["size"], "price": price})
                assert r.status_code == 200, r.text
                fills.append((a["size"], price))
            if a["go_nogo"]["vetoed"]:  # the proposal breaks a rule: the logic gate holds (ℓ = 1 − SatAgg ≥ 0.1)
                vetoed += 1
                rules |= {k for k, v in a["rules"].items() if v < 0.9}
                assert "logic" in a["go_nogo"]["veto_reason"] and a["ltn_satisfaction"] < 0.9
                assert (a["proposed_action"], a["action"], a["size"]) == (BUY, 0, 0.0)
        account = c.get("/api/v1/account").json()
    assert len(fills) >= 5 and vetoed >= 1 and rules & {"cash_reserve", "position_limit"}, rules
    # the env's accounting, recomputed: cash − Σ (q·p + fee_bps·q·p), cost basis Σ q·p of a long-only book
    assert account["position"] == sum(q for q, _ in fills)
    assert account["cash"] == pytest.approx(100_000.0 - sum(q * p * (1 + FEE) for q, p in fills), abs=1e-6)
    assert account["cost_basis"] == pytest.approx(sum(q * p for q, p in fills), abs=1e-6)
    with server.client() as c:
        text = c.get("/api/v1/metrics").text
    assert 'janus_vetoes_total{by="basal_ganglia"}' in text
    assert 'janus_decisions_total{action="1",side="buy"}' in text
    assert any(f'janus_rule_violations_total{{rule="{rule}"}}' in text for rule in rules)


def test_error_paths(server, new_key, walk) -> None:
    decide_key, admin_only = new_key("desk-c"), new_key("ops-only", "admin")
    huge = b'{"market": {"prices": [' + b"1.0," * 300_000 + b'1.0]}}'
    with server.client() as anonymous, server.client(decide_key) as c, server.client(admin_only) as ops:
        first = _decide(c, walk)
        r = anonymous.post("/api/v1/decision", json=walk.body())
        assert r.status_code == 401 and r.headers["www-authenticate"] == "Bearer"
        assert r.json()["detail"][0]["field"] == "Authorization"
        r = anonymous.post("/api/v1/decision", json=walk.body(), headers={"Authorization": "Bearer janus_x"})
        assert r.status_code == 401 and r.json()["detail"][0]["message"] == "unknown or malformed key"
        r = ops.post("/api/v1/decision", json=walk.body())
        assert r.status_code == 403 and "lacks the 'decide' scope" in r.json()["detail"][0]["message"]
        assert c.post("/api/v1/halt", json={"account": "desk-c"}).status_code == 403
        r = c.get("/api/v1/accounts/desk-a")  # another client's account
        assert r.status_code == 403 and "reads its own account only" in r.json()["detail"][0]["message"]
        assert ops.get("/api/v1/accounts/desk-c").json()["decisions"] == 1
        assert ops.get("/api/v1/accounts/nobody").status_code == 404

        def refused(payload, status: int, field: str, text: str, **kw) -> None:
            r = c.post("/api/v1/decision", **({"content": payload} if isinstance(payload, bytes) else
                                              {"json": payload}), **kw)
            assert r.status_code == status, r.text
            assert any(d["field"] == field and text in d["message"] for d in r.json()["detail"]), r.json()

        body = walk.body()
        refused(b'{"market": ', 400, "body", "Invalid JSON")
        refused({"market": {**body["market"], "prices": body["market"]["prices"][:5], "volumes": [1.0] * 5,
                            "buy_volumes": None}}, 422, "market.prices", "expected between 32")
        prices = "[" + ", ".join("NaN" if i == 3 else repr(p) for i, p in enumerate(body["market"]["prices"])) + "]"
        nan_body = json.dumps({"market": {**body["market"], "prices": "P"}}).replace('"P"', prices).encode()
        refused(nan_body, 422, "market.prices[3]", "Input should be a finite number")
        refused(huge, 413, "body", "request body larger than 1048576 bytes")
        refused({"market": {**body["market"], "volumes": [1.0] * 10_001}}, 422, "market.volumes",
                "List should have at most 10000 items")
        observation = {"prices": [0.0] * 32, "volumes": [0.0] * 32, "book": [[0.0] * 4] * 5, "account": [0.0] * 5,
                       "market": [0.0] * 4}
        refused({**body, "observation": observation}, 422, "body", "exactly one of `market` and `observation`")
        refused({"observation": observation}, 422, "mid", "needs `mid`")
        refused({"market": {**body["market"], "bids": [[1e9, 1.0]]}}, 422, "market.bids[0]", "best bid <= best ask")
        assert c.post("/api/v1/fills", json={"decision_id": 99, "qty": 100.0, "price": 1.0}).status_code == 404
        r = c.post("/api/v1/fills", json={"decision_id": first["decision_id"], "qty": -100.0, "price": 100.0})
        assert r.status_code == 422 and r.json()["detail"][0]["field"] == "qty"
        r = c.post("/api/v1/fills", content=b'{"decision_id": 0, "qty": 100, "price": NaN}')
        assert r.status_code == 422 and r.json()["detail"][0]["field"] == "price"
        assert c.get("/api/v1/account").json()["decisions"] == 1  # nothing refused changed the account
        second = _decide(c, walk)
        r = c.post("/api/v1/fills", json={"decision_id": first["decision_id"], "qty": 100.0, "price": 100.0})
        assert r.status_code == 409 and "is closed" in r.json()["detail"][0]["message"]
        assert second["decision_id"] == 1


def test_the_hot_routes_stream_bodies_and_leave_other_methods_to_fastapi(server, new_key, walk) -> None:
    """``POST /api/v1/decision`` and ``/fills`` are answered in front of FastAPI's router: a body sent in chunks
    (no ``Content-Length``) is read whole, and refused with 413 once past the limit; other methods on these paths
    get FastAPI's 405; every answer is counted by status."""
    key = new_key("desk-stream")
    body = json.dumps(walk.body()).encode()

    def chunks(data: bytes, size: int = 100):
        for i in range(0, len(data), size):
            yield data[i:i + size]

    with server.client(key) as c:
        r = c.post("/api/v1/decision", content=chunks(body), headers={"Content-Type": "application/json"})
        assert r.status_code == 200 and r.json()["decision_id"] == 0 and r.headers["content-type"] == "application/json"
        assert int(r.headers["content-length"]) == len(r.content)
        huge = b'{"market": {"prices": [' + b"1.0," * 300_000 + b"1.0]}}"
        r = c.post("/api/v1/decision", content=chunks(huge, 65536))
        too_large = {"field": "body", "message": "request body larger than 1048576 bytes"}
        assert r.status_code == 413 and r.json() == {"error": "payload_too_large", "detail": [too_large]}
        r = c.post("/api/v1/fills", content=chunks(huge, 65536))
        assert r.status_code == 413
        assert c.get("/api/v1/decision").status_code == 405
        assert c.put("/api/v1/fills", json={}).status_code == 405
        assert c.get("/api/v1/account").json()["decisions"] == 1
        text = c.get("/api/v1/metrics").text
    assert 'janus_http_responses_total{code="413"}' in text and 'janus_http_responses_total{code="405"}' in text


def test_rate_limit_answers_429_with_retry_after(server, new_key) -> None:
    with server.client(new_key("desk-fast")) as c:
        codes = [c.get("/api/v1/account") for _ in range(150)]
    statuses = [r.status_code for r in codes]
    assert statuses[:60] == [200] * 60  # the burst
    limited = [r for r in codes if r.status_code == 429]
    assert limited, statuses
    assert int(limited[0].headers["retry-after"]) >= 1
    assert "rate limit of this key exceeded (5 requests/s, bursts of 60)" in limited[0].json()["detail"][0]["message"]
    with server.client(new_key("desk-slow")) as c:  # per key: another key is not limited
        assert c.get("/api/v1/account").status_code == 200


def test_kill_switch_halts_and_resume_starts_a_new_session(server, new_key, walk) -> None:
    admin = new_key("ops", "decide,admin")
    with server.client(new_key("desk-d")) as c, server.client(admin) as ops:
        open_order = _decide(c, walk)
        assert open_order["size"] == LOT
        r = ops.post("/api/v1/halt", json={"account": "desk-d", "reason": "desk on fire"})
        assert r.status_code == 200 and r.json() == {"halted": ["desk-d"], "reason": "manual: desk on fire"}
        halted = _decide(c, walk)
        assert halted["halted"] and halted["halt_reason"] == "manual: desk on fire"
        assert (halted["action"], halted["size"], halted["side"]) == (0, 0.0, "hold")
        assert halted["breakers"]["kill_switch"]["tripped"]
        # the order in flight when the switch flipped still books its fills
        r = c.post("/api/v1/fills", json={"decision_id": open_order["decision_id"], "qty": LOT, "price": 100.0})
        assert r.status_code == 200 and r.json()["position"] == LOT
        assert ops.post("/api/v1/resume", json={"account": "desk-a"}).status_code == 409  # not halted
        assert ops.post("/api/v1/resume", json={"account": "desk-d"}).json() == {"resumed": ["desk-d"]}
        after = _decide(c, walk)
        assert not after["halted"] and after["session"] == halted["session"] + 1 and after["session_step"] == 1
        text = ops.get("/api/v1/metrics").text
    assert 'janus_halts_total{reason="manual"} 1' in text
    log = read_audit_log(server.store / "audit" / "desk-d.jsonl")
    assert list(log["halted"]) == [False, True, False]
    assert log["final_action"].isna().tolist() == [False, True, False]  # nothing forwarded while halted
    assert list(log["episode"]) == [0, 0, 1]  # the resume started a new session


def test_a_breaker_halts_on_the_fill_it_learns_of(server, new_key, walk) -> None:
    with server.client(new_key("desk-e")) as c:
        a = _decide(c, walk)
        assert a["size"] == LOT
        # a fill at 2.5x the mid: equity falls by 1.5 x 100 x 100 = 15,000 of 100,000, a 15% drawdown
        r = c.post("/api/v1/fills", json={"decision_id": a["decision_id"], "qty": LOT, "price": 2.5 * a["mid"]})
        assert r.json()["drawdown"] == pytest.approx(0.15, abs=0.002)
        b = _decide(c, walk)
        equity = 100_000.0 - LOT * 2.5 * a["mid"] * (1 + FEE) + LOT * b["mid"]  # marked at the new mid
        assert b["halted"] and b["halt_reason"].startswith("drawdown: session drawdown 1")
        assert b["breakers"]["drawdown"]["tripped"]
        # the env reports the drawdown as its observation holds it (float32)
        assert b["breakers"]["drawdown"]["value"] == pytest.approx(1.0 - equity / 100_000.0, abs=1e-7)
        assert c.get("/api/v1/account").json()["halt_reason"] == b["halt_reason"]


def test_restart_while_halted_keeps_halts_and_accounts(server, new_key, walk) -> None:
    admin = make_key(server.store, "ops-restart", "admin")
    with server.client(admin) as ops:
        ops.post("/api/v1/halt", json={"account": "desk-a", "reason": "before restart"})
        before = {name: ops.get(f"/api/v1/accounts/{name}").json() for name in ("desk-a", "desk-b", "desk-e")}
    assert server.stop() in (0, -15)  # SIGTERM: uvicorn shuts down gracefully, then re-raises the signal
    assert "decision service stopped:" in server.log.read_text()  # the lifespan's shutdown ran
    for name in ("desk-a", "desk-b", "desk-e"):
        read_audit_log(server.store / "audit" / f"{name}.jsonl")  # every trail readable after the shutdown
    server.start()
    with server.client(admin) as ops:
        after = {name: ops.get(f"/api/v1/accounts/{name}").json() for name in before}
        assert after == before
        assert after["desk-a"]["halt_reason"] == "manual: before restart"
        assert after["desk-e"]["halt_reason"].startswith("drawdown:")
        assert ops.get("/api/v1/metrics").text.count("janus_accounts_halted 2") == 1
    key_b = make_key(server.store, "desk-b2", "decide")  # keys made while it runs work at once
    with server.client(key_b) as c:
        assert not _decide(c, walk)["halted"]
