"""What the service writes to disk, and off which thread: audit trails ``fsync``ed by the disk syncer, the
store's log checkpointed by it, and an ``fsync`` that fails halting the account (in-process, no HTTP)."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest

import serve
from agents.app.service import syncer as syncer_module
from agents.app.service.keys import Principal
from agents.app.service.schemas import DecisionRequest
from agents.app.service.serving import build_service, resolve_service
from agents.app.service.syncer import DiskSyncer
from wrappers import read_audit_log


@pytest.fixture
def service(served_run: Path, tmp_path: Path):
    """The service with its syncer's thread stopped: the tests make the passes (accounts take the syncer when
    their first decision builds their glass box)."""
    svc = build_service(resolve_service(serve.parse_args([str(served_run), "--store", str(tmp_path / "store"),
                                                          "--breaker", "slippage_ratio=null"])))
    svc.syncer.stop()
    svc.syncer = DiskSyncer(seconds=3600, checkpoint=svc.store.checkpoint)
    yield svc
    svc.close()


def _decide(svc, who: Principal, walk) -> dict:
    answer = svc.decide(who, DecisionRequest.model_validate_json(json.dumps(walk.body())), time.perf_counter())
    walk.advance()
    return answer


def test_decisions_never_fsync_on_the_event_loop(service, walk, monkeypatch) -> None:
    """After a session's first decision (``AuditLog.reset`` forces the trail to disk), decisions make no
    ``fsync``; the syncer's pass makes one per written trail, and checkpoints the store."""
    who = Principal("desk", ("decide",))
    _decide(service, who, walk)
    calls: list[int] = []
    real = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: calls.append(fd) or real(fd))
    start, ticks = time.monotonic(), iter(range(1, 10**6))  # 2 s pass between two reads: AuditLog's defaults
    monkeypatch.setattr(time, "monotonic", lambda: start + 2.0 * next(ticks))  # would fsync at every write
    for _ in range(20):
        assert not _decide(service, who, walk)["halted"]
    assert calls == [] and service.syncer.passes == 0
    assert service.store.query("PRAGMA wal_autocheckpoint") == [(0,)]
    checkpoints = []
    service.syncer.checkpoint = lambda: checkpoints.append(service.store.checkpoint())
    assert service.syncer.sync() == 1 and len(calls) == 1 and checkpoints and checkpoints[0][0] > 0
    assert service.syncer.sync() == 0 and len(calls) == 1
    assert len(read_audit_log(service.store.audit_path("desk"))) == 21


def test_a_failed_fsync_halts_the_account_before_its_next_record(service, walk, monkeypatch) -> None:
    who = Principal("desk-f", ("decide",))
    for _ in range(3):
        assert not _decide(service, who, walk)["halted"]

    def broken(fd: int) -> None:
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(syncer_module.os, "fsync", broken)
    service.syncer.sync()
    answer = _decide(service, who, walk)
    assert answer["halted"] and answer["size"] == 0
    assert answer["halt_reason"].startswith("audit_error: OSError") and "Input/output error" in answer["halt_reason"]
    assert service.store.halts()["desk-f"].reason == answer["halt_reason"]
    log = read_audit_log(service.store.audit_path("desk-f"))
    assert len(log) == 3  # the refused record is not written


def test_the_onnx_engine_predicts_slippage_in_numpy_and_the_torch_engine_in_torch(served_run: Path,
                                                                                 tmp_path: Path) -> None:
    from agents.app.service.serving import guard_settings

    for engine, torch_predictor in (("onnx", False), ("torch", True)):
        spec = resolve_service(serve.parse_args([str(served_run), "--store", str(tmp_path / engine),
                                                 "--engine", engine]))
        predictor = guard_settings(spec).breakers.slippage_predictor
        assert predictor is not None and (getattr(predictor, "__self__", None) is not None) == torch_predictor
