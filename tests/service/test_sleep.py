"""The sleep side over HTTP (a real server, its worker processes): experience recorded from decisions and fills,
sleep jobs that make a new model version (validated, swapped in) or are rejected by validation, a job whose
worker is killed, rollback, a restart that keeps versions and jobs, and the admin scope.

The tests of this module share one server and one store and run in file order.
"""

from __future__ import annotations

import os
import signal
import sqlite3

import numpy as np
import pytest

from agents.app.service.keys import make_key
from tests.service.conftest import CYCLE, FINAL, MarketWalk, Server, queue_job, wait_job



@pytest.fixture(scope="module")
def sleep_server(served_run, tmp_path_factory):
    store = tmp_path_factory.mktemp("sleep") / "svc"
    srv = Server(served_run, store, "--breaker", "slippage_ratio=null").start()
    srv.admin = make_key(store, "ops", "decide,admin")
    srv.desk = make_key(store, "desk-s", "decide")
    srv.state = {}
    yield srv
    srv.stop()


def test_sleep_routes_need_the_admin_scope(sleep_server) -> None:
    with sleep_server.client(sleep_server.desk) as c:
        for method, path in (("post", "/api/v1/sleep-cycle"), ("get", "/api/v1/jobs/x"),
                             ("post", "/api/v1/model/rollback"), ("get", "/api/v1/model")):
            r = getattr(c, method)(path, **({"json": {}} if method == "post" else {}))
            assert r.status_code == 403, (path, r.text)
            assert r.json()["detail"][0]["message"] == "this key lacks the 'admin' scope (it has ['decide'])"


def test_nothing_to_consolidate_or_roll_back_yet(sleep_server) -> None:
    with sleep_server.client(sleep_server.admin) as c:
        r = c.post("/api/v1/sleep-cycle", json={"cycle": CYCLE})
        assert r.status_code == 409 and r.json()["detail"][0]["message"] == (
            "the store holds 0 recorded transition(s); the sleep cycle needs at least seq_len = 8")
        r = c.post("/api/v1/sleep-cycle", json={"cycle": {"seq_len": 0}})
        assert r.status_code == 422 and r.json()["detail"][0]["field"] == "cycle"
        r = c.post("/api/v1/sleep-cycle", json={"cycle": {"plot_dir": "/tmp"}})
        assert r.status_code == 422 and r.json()["detail"][0]["field"] == "cycle.plot_dir"
        root = c.get("/api/v1/model").json()
        assert root["model_version"] == root["root"] and root["parent"] is None
        r = c.post("/api/v1/model/rollback")
        assert r.status_code == 409 and "no previous version" in r.json()["detail"][0]["message"]
        assert c.get("/api/v1/jobs/nope").status_code == 404
    sleep_server.state["root"] = root["model_version"]


def test_decisions_and_fills_are_recorded_as_transitions(sleep_server) -> None:
    walk, answers = MarketWalk(seed=3), []
    with sleep_server.client(sleep_server.desk) as c:
        for _ in range(30):
            r = c.post("/api/v1/decision", json=walk.body())
            assert r.status_code == 200, r.text
            a = r.json()
            answers.append(a)
            if a["size"]:
                fill = {"decision_id": a["decision_id"], "qty": a["size"], "price": a["mid"] + 0.01}
                assert c.post("/api/v1/fills", json=fill).status_code == 200
            walk.advance()
    db = sqlite3.connect(sleep_server.store / "service.db")
    rows = db.execute("SELECT decision_id, action, reward, done, violation, obs, next_obs, model_version "
                      "FROM experience WHERE account = 'desk-s' ORDER BY id").fetchall()
    db.close()
    assert [r[0] for r in rows] == list(range(29))  # each decision's transition closes at the next one
    assert [r[1] for r in rows] == [a["go_nogo"]["final"] for a in answers[:-1]]  # the policy's gated action
    assert all(r[3] == 0 and 0.0 <= r[4] <= 1.0 for r in rows)
    assert all(rows[i][6] == rows[i + 1][5] for i in range(len(rows) - 1))  # next_obs chains to the next obs
    assert {r[7] for r in rows} == {sleep_server.state["root"]}
    # the reward is the pnl reward: Δequity / cash₀ · 10⁴, marked at the mids decided at with the fills booked
    held = np.cumsum([a["size"] for a in answers])
    mids = np.array([a["mid"] for a in answers])
    fee_cost = np.array([a["size"] * (a["mid"] + 0.01) * (1 + 0.5e-4) for a in answers])
    equity = 100_000.0 - np.concatenate([[0.0], np.cumsum(fee_cost)[:-1]]) + np.concatenate(
        [[0.0], held[:-1]]) * mids
    assert np.allclose([r[2] for r in rows], np.diff(equity) / 100_000.0 * 1e4, atol=1e-6)
    assert any(r[2] != 0.0 for r in rows)


def test_a_job_rejected_by_validation_keeps_the_version(sleep_server) -> None:
    with sleep_server.client(sleep_server.admin) as c:
        queued = queue_job(c, seed=7, tolerance=-1e6)  # demand an improvement no candidate makes
        row = wait_job(c, queued["id"])
        assert row["state"] == "rejected", row
        ev = row["result"]["evaluation"]
        assert not ev["accepted"] and ev["candidate_mean_return"] < ev["current_mean_return"] + 1e6
        assert row["error"].startswith("validation rejected the candidate: its mean episode return")
        assert row["result"]["sleep"]["sleep/replays"] > 0 and row["result"]["transitions"] == 29
        assert c.get("/api/v1/model").json()["model_version"] == sleep_server.state["root"]
        assert not (sleep_server.store / "models" / row["result"]["candidate_version"]).exists()
    sleep_server.state["rejected_candidate"] = row["result"]["candidate_version"]


def test_a_job_makes_a_validated_version_and_swaps_it_in(sleep_server) -> None:
    walk = MarketWalk(seed=5)
    with sleep_server.client(sleep_server.admin) as c:
        queued = queue_job(c, seed=7, tolerance=1.0)  # 100 % of equity: any candidate that exports and plays passes
        row = wait_job(c, queued["id"])
        assert row["state"] == "succeeded" and row["progress"] == 1.0, row
        new = row["new_version"]
        # the same seed on the same experience from the same base: the same weights as the rejected candidate
        assert new == sleep_server.state["rejected_candidate"] != sleep_server.state["root"]
        assert row["result"]["evaluation"]["accepted"]
        assert c.get("/api/v1/ready").json()["model_version"] == new
        assert c.get("/api/v1/model").json() == {"model_version": new, "parent": sleep_server.state["root"],
                                                 "root": sleep_server.state["root"], "engine": "onnx"}
        a = c.post("/api/v1/decision", json=walk.body()).json()
        assert a["model_version"] == new
        assert f'janus_model_info{{version="{new}",engine="onnx"}} 1' in c.get("/api/v1/metrics").text
    folder = sleep_server.store / "models" / new
    assert {"model.zip", "config.yaml", "policy.onnx", "sleep.json"} <= {p.name for p in folder.iterdir()}
    sleep_server.state["new"], sleep_server.state["ok_job"] = new, row["id"]


def test_a_killed_worker_fails_its_job_and_the_model_keeps_serving(sleep_server) -> None:
    walk = MarketWalk(seed=9)
    with sleep_server.client(sleep_server.admin) as c:
        queued = queue_job(c, seed=8, tolerance=1.0)
        row = wait_job(c, queued["id"], ("running",) + FINAL)
        assert row["state"] == "running" and row["pid"], row
        os.kill(row["pid"], signal.SIGKILL)
        row = wait_job(c, queued["id"])
        assert row["state"] == "failed" and row["error"] == (
            f"the worker process (pid {row['pid']}) exited with status -9 before the job finished; "
            "the version served stays")
        a = c.post("/api/v1/decision", json=walk.body())
        assert a.status_code == 200 and a.json()["model_version"] == sleep_server.state["new"]
    sleep_server.state["killed_job"] = row["id"]


def test_a_restart_keeps_versions_and_jobs_and_interrupts_a_running_job(sleep_server) -> None:
    with sleep_server.client(sleep_server.admin) as c:
        running = queue_job(c, seed=9, tolerance=1.0)["id"]
        before = {j: c.get(f"/api/v1/jobs/{j}").json() for j in (sleep_server.state["ok_job"],
                                                                 sleep_server.state["killed_job"])}
    sleep_server.stop()
    sleep_server.start()
    with sleep_server.client(sleep_server.admin) as c:
        assert c.get("/api/v1/ready").json()["model_version"] == sleep_server.state["new"]
        for job_id, row in before.items():
            assert c.get(f"/api/v1/jobs/{job_id}").json() == row
        row = c.get(f"/api/v1/jobs/{running}").json()
        assert row["state"] == "interrupted" and "the version served did not change" in row["error"]


def test_rollback_returns_to_the_previous_version(sleep_server) -> None:
    walk = MarketWalk(seed=11)
    root = sleep_server.state["root"]
    with sleep_server.client(sleep_server.admin) as c:
        r = c.post("/api/v1/model/rollback")
        assert r.status_code == 200 and r.json() == {"model_version": root,
                                                     "rolled_back_from": sleep_server.state["new"]}
        assert c.post("/api/v1/decision", json=walk.body()).json()["model_version"] == root
        assert c.post("/api/v1/model/rollback").status_code == 409
    db = sqlite3.connect(sleep_server.store / "service.db")  # stored: a restart serves it (the test above)
    assert db.execute("SELECT version, root FROM serving").fetchall() == [(root, root)]
    db.close()
