"""Decisions on the event loop with the policy on the engine's worker thread (``decide_async``): the same answers
as one at a time, in each account's order, with fills waiting for the decision in flight (in-process, no HTTP)."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

import pytest

import serve
from agents.app.service.keys import Principal
from agents.app.service.schemas import DecisionRequest, FillRequest
from agents.app.service.serving import build_service, resolve_service
from tests.service.conftest import MarketWalk
from wrappers import read_audit_log

VARYING = ("account", "latency_ms")
"""Answer keys that differ between two accounts deciding the same states."""


@pytest.fixture
def service(served_run: Path, tmp_path: Path):
    svc = build_service(resolve_service(serve.parse_args([str(served_run), "--store", str(tmp_path / "store"),
                                                          "--breaker", "slippage_ratio=null"])))
    yield svc
    svc.close()


def _same(answer: dict) -> dict:
    return {k: v for k, v in answer.items() if k not in VARYING}


def test_concurrent_decisions_are_the_sequential_ones(service) -> None:
    """8 accounts decide 6 rounds concurrently (``asyncio.gather`` of ``decide_async``, their fills reported between
    rounds); 8 other accounts decide the same states one at a time with ``decide``: equal answers, key by key,
    and equal audit records."""
    walks = [MarketWalk(seed=k) for k in range(8)]
    rounds = []
    for _ in range(6):
        rounds.append([json.dumps(w.body()) for w in walks])
        for w in walks:
            w.advance()
    together = [Principal(f"par-{k}", ("decide",)) for k in range(8)]
    alone = [Principal(f"seq-{k}", ("decide",)) for k in range(8)]

    def report(who: Principal, answer: dict) -> None:
        if answer["size"]:
            service.fill(who, FillRequest(decision_id=answer["decision_id"], qty=answer["size"],
                                          price=answer["mid"] + 0.01))

    async def play() -> list[list[dict]]:
        out = []
        for bodies in rounds:
            answers = await asyncio.gather(*(service.decide_async(who, DecisionRequest.model_validate_json(body),
                                                                  time.perf_counter())
                                             for who, body in zip(together, bodies)))
            for who, answer in zip(together, answers):
                report(who, answer)
            out.append(list(answers))
        return out

    concurrent = asyncio.run(play())
    orders = 0
    for bodies, answers in zip(rounds, concurrent):
        for who, body, theirs in zip(alone, bodies, answers):
            ours = service.decide(who, DecisionRequest.model_validate_json(body), time.perf_counter())
            report(who, ours)
            assert _same(ours) == _same(theirs)
            orders += bool(ours["size"])
    assert orders > 10  # fills moved the accounts (and the glass box read them) along the way
    for k in range(8):
        a = read_audit_log(service.store.audit_path(f"par-{k}")).drop(columns=["run_id", "time", "account"])
        b = read_audit_log(service.store.audit_path(f"seq-{k}")).drop(columns=["run_id", "time", "account"])
        assert a.equals(b)


def test_a_fill_waits_for_the_decision_in_flight(service, walk) -> None:
    """The decision's policy runs on the worker thread; a fill of that decision sent meanwhile waits on the
    account's lock and is booked on its order (without the lock it would find no decision 0: a 404)."""
    who = Principal("desk", ("decide",))

    async def fill(decision_id: int, qty: float) -> dict:
        async with service.account_lock(who.name):
            return service.fill(who, FillRequest(decision_id=decision_id, qty=qty, price=100.0))

    async def play() -> tuple[dict, dict]:
        decision = asyncio.create_task(service.decide_async(
            who, DecisionRequest.model_validate_json(json.dumps(walk.body())), time.perf_counter()))
        await asyncio.sleep(0)  # the decision holds the lock and waits for the policy
        assert service.account_lock(who.name).locked()
        booked = asyncio.create_task(fill(0, 100.0))
        return await decision, await booked

    answer, booked = asyncio.run(play())
    assert answer["decision_id"] == 0 and answer["size"] == 100.0
    assert booked["fill"]["decision_id"] == 0 and booked["position"] == 100.0


def test_the_warm_up_decides_once_and_leaves_no_trace(served_run: Path, tmp_path: Path, service) -> None:
    """``warm_up`` (run at start-up) takes one scratch decision: no account, audit trail, experience row or metric
    comes of it, and the decisions after it are those of a service that never warmed up (answers and audit
    records equal)."""
    store = service.store
    rows_before = store.query("SELECT COUNT(*) FROM experience")
    took = service.warm_up()
    assert took > 0.0
    assert service.slots == {} and not list(store.folder.rglob("*warm-up*"))
    assert store.query("SELECT COUNT(*) FROM experience") == rows_before
    assert "janus_decisions_total{" not in service.metrics.render()
    cold = build_service(resolve_service(serve.parse_args([str(served_run), "--store", str(tmp_path / "cold"),
                                                           "--breaker", "slippage_ratio=null"])))
    try:
        walk, who = MarketWalk(seed=3), Principal("desk", ("decide",))
        for _ in range(4):
            body = json.dumps(walk.body())
            answers = [svc.decide(who, DecisionRequest.model_validate_json(body), time.perf_counter())
                       for svc in (service, cold)]
            assert _same(answers[0]) == _same(answers[1])
            walk.advance()
        warm_trail, cold_trail = (read_audit_log(svc.store.audit_path("desk")).drop(columns=["run_id", "time"])
                                  for svc in (service, cold))
        assert warm_trail.equals(cold_trail)
        assert "janus_decisions_total{" in service.metrics.render()  # the check above can fail
    finally:
        cold.close()
