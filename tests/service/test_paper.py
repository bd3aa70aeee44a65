"""Paper trading over HTTP (``serve.py paper``) against ``evaluate.py``'s in-process run of the same agent.

The agent is the session's tiny run with its Q-head's biases set so that it trades both ways, driven by the
state: HOLD lowered by 1, BUY shifted by the median of Q(BUY) − Q(SELL) over a HOLD-only episode of the
scenario, so it buys in about half the states and sells in the others (the few training steps learned
nothing that matters; what matters is that the actions depend on the state, with shield overrides, sizing
cuts and fills of both signs in the trajectory). The server runs the torch engine, as ``evaluate.py`` does.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import gymnasium as gym
import httpx
import numpy as np
import pytest
import torch as th

from agents.app.service.keys import make_key
from agents.app.service.paper import SCENARIOS, decision_body, run_env, run_paper, summary
from wrappers import read_audit_log
ROOT = Path(__file__).resolve().parents[2]
HOLD, BUY, SELL = 0, 1, 2
SCENARIO, EPISODES, SEED = "regime", 3, 1000
BREAKERS = ("--breaker", "slippage_ratio=null", "--breaker", "max_drawdown=0.0006")
"""Both sides' breakers: the tiny run's cerebellum predicts too little slippage (its breaker would halt every
episode after 5 fills), and a drawdown limit of 0.06% that halts this agent in some episodes of these seeds and not
in others (episode 0 runs its 60 steps, 1 and 2 halt at steps 57 and 45), so both endings are compared. The limit
depends on the agent the session's tiny run trains (``janus-dqn`` as configured): 0.04% did it for the extractor
with the GAF video, and halts all three episodes of today's."""


@pytest.fixture(scope="module")
def paper_run(served_run: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    from agents.app.config import algo_class

    run = tmp_path_factory.mktemp("paper") / "trader"
    shutil.copytree(served_run, run, ignore=shutil.ignore_patterns("eval", "checkpoints"))
    model = algo_class("janus-dqn").load(run / "model.zip", device="cpu")
    env_id, kwargs = run_env(run, SCENARIO)
    env = gym.make(env_id, **kwargs)
    obs, _ = env.reset(seed=0)
    diffs, done = [], False
    while not done:
        tensor, _ = model.policy.obs_to_tensor(obs)
        with th.no_grad():
            q = model.policy.q_net(tensor)[0].numpy()
        diffs.append(float(q[BUY] - q[SELL]))
        obs, _, terminated, truncated, _ = env.step(np.int64(HOLD))
        done = terminated or truncated
    env.close()
    shift = float(np.median(diffs))
    for net in (model.policy.q_net, model.policy.q_net_target):
        net.q_net[-1].bias.data[BUY] -= shift
        net.q_net[-1].bias.data[HOLD] -= 1.0
    model.save(run / "model.zip")
    return run


@pytest.fixture(scope="module")
def paper_server(paper_run: Path, tmp_path_factory: pytest.TempPathFactory, server_class):
    store = tmp_path_factory.mktemp("paper-store") / "svc"
    srv = server_class(paper_run, store, "--engine", "torch", "--rate-limit", "100000", "--burst", "100000",
                       *BREAKERS).start()
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def in_process(paper_run: Path, tmp_path_factory: pytest.TempPathFactory):
    """``evaluate.py RUN --scenarios regime --episodes 3 --seed 1000 --baselines none --audit A``: its audit
    trail, one DataFrame per episode (what the glass box executed, the fills, rewards, equity per step)."""
    import evaluate

    out = tmp_path_factory.mktemp("paper-eval")
    audit = out / "audit.jsonl"
    assert evaluate.main([str(paper_run), "--scenarios", SCENARIO, "--episodes", str(EPISODES), "--seed", str(SEED),
                          "--baselines", "none", "--audit", str(audit), "--out", str(out / "eval"), *BREAKERS]) == 0
    log = read_audit_log(audit)
    return [log[log["episode"] == k].sort_values("step").reset_index(drop=True) for k in range(EPISODES)]


def test_paper_trajectory_is_evaluate_s(paper_server, in_process) -> None:
    key = make_key(paper_server.store, "paper-desk", "decide,admin")
    episodes = run_paper(paper_server.url, key, paper_server.run, SCENARIO, EPISODES, SEED)
    assert [ep.seed for ep in episodes] == [SEED + k for k in range(EPISODES)]
    buys = sells = vetoes = 0
    for ep, rec in zip(episodes, in_process, strict=True):
        assert ep.steps == len(rec)
        # what the env executed, its fill, the reward and the account, step by step: equal, not close
        assert ep.actions == [int(a) for a in rec["final_action"]]
        assert ep.exec_qty == rec["exec_qty"].tolist()
        assert ep.slippage_bps == rec["slippage_bps"].tolist()
        assert ep.rewards == rec["reward"].tolist()
        assert ep.equity[1:] == rec["equity"].tolist()
        assert ep.position == rec["position"].tolist()
        assert ep.halted == bool(rec["halted"].iloc[-1])
        # the policy's Go proposals and its gate (No-Go, ℓ_logic from the server's shield) are the in-process ones
        answers = ep.decisions[: ep.steps]
        assert [d["proposed_action"] for d in answers] == [int(a) for a in rec["go_nogo.proposed"]]
        assert [d["go_nogo"]["final"] for d in answers] == [int(a) for a in rec["proposed_action"]]
        assert [d["go_nogo"]["vetoed"] for d in answers] == rec["go_nogo.vetoed"].tolist()
        assert [d["go_nogo"]["logic_loss"] for d in answers] == rec["go_nogo.logic_loss"].tolist()
        vetoes += sum(d["go_nogo"]["vetoed"] for d in answers)
        buys += sum(q > 0 for q in ep.exec_qty)
        sells += sum(q < 0 for q in ep.exec_qty)
    assert buys > 5 and sells > 5 and vetoes > 0  # trades both ways, and the logic gate vetoed some proposals
    text = summary(episodes, SCENARIO)
    for ep in episodes:
        assert f"| {ep.seed} | {ep.return_bps:.2f} | {ep.steps} | {ep.trades} |" in text
    assert any(ep.halted for ep in episodes) and any(not ep.halted for ep in episodes)  # both endings compared
    for ep, rec in zip(episodes, in_process):
        if ep.halted:
            assert ep.halt_reason == rec["halt_reason"].iloc[-1] and ep.halt_reason.startswith("drawdown")
            assert ep.decisions[-1]["proposed_action"] is None  # found at the next decision, before the policy
    # the glass box read the env's own numbers, not the ones decoded from the float32 observation: the server's
    # audit trail has the in-process shield scores of each decision and, one decision later (when the service
    # learns how a step ended), the in-process breaker readings of that step, bit for bit (from the observation's
    # encoding alone the volatility reading is off by ≈ 1e-8)
    served = read_audit_log(paper_server.store / "audit" / "paper-desk.jsonl")
    rules = ["ltn.sat_agg", *(c for c in served.columns if c.startswith("ltn.rules."))]
    readings = [f"breakers.{name}.value" for name in ("drawdown", "volatility", "fear")]
    for k, rec in enumerate(in_process):
        ours = served[served["episode"] == k].sort_values("step").reset_index(drop=True)
        n = len(rec)
        assert len(ours) == n + rec["halted"].iloc[-1]  # a halted episode's last answer is the halt
        np.testing.assert_array_equal(ours[rules].iloc[:n].to_numpy(float), rec[rules].to_numpy(float))
        np.testing.assert_array_equal(ours[readings].iloc[1:].to_numpy(float),
                                      rec[readings].iloc[: len(ours) - 1].to_numpy(float))
    # the server's books reconciled with the env's at every decision (a mismatch is a 409, a PaperError here)
    with paper_server.client(key) as client:
        account = client.get("/api/v1/account").json()
    assert account["position"] == episodes[-1].position[-1]


def test_paper_cli_prints_episodes(paper_server) -> None:
    key = make_key(paper_server.store, "paper-cli", "decide,admin")
    proc = subprocess.run([sys.executable, "serve.py", "paper", str(paper_server.run), "--url", paper_server.url,
                           "--key", key, "--scenario", SCENARIO, "--episodes", "1", "--seed", str(SEED)],
                          cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert f"{SCENARIO}: 1 paper episode(s) decided by the service" in proc.stdout
    assert f"| {SEED} | " in proc.stdout


def test_venue_state_must_reconcile(paper_server) -> None:
    """A venue state whose position or cash disagrees with the server's books is refused (409), naming the
    field; a reset needs the admin scope; a state with a market body is a 422."""
    key = make_key(paper_server.store, "paper-check", "decide,admin")
    decide_only = make_key(paper_server.store, "paper-noadmin", "decide")
    env_id, kwargs = run_env(paper_server.run, SCENARIO)
    env = gym.make(env_id, **kwargs)
    obs, info = env.reset(seed=SEED)
    body = decision_body(obs, info, env.unwrapped.book())
    with paper_server.client(key) as client, paper_server.client(decide_only) as other:
        assert other.post("/api/v1/accounts/reset", json={"account": "paper-noadmin"}).status_code == 403
        assert client.post("/api/v1/accounts/reset", json={"account": "nobody"}).status_code == 404
        assert client.post("/api/v1/accounts/reset", json={"account": "paper-check"}).status_code == 200
        wrong = {**body, "state": {**body["state"], "position": 1.0}}
        answer = client.post("/api/v1/decision", json=wrong)
        assert answer.status_code == 409
        assert answer.json()["detail"][0]["field"] == "state.position"
        poor = {**body, "state": {**body["state"], "cash": body["state"]["cash"] - 10.0}}
        answer = client.post("/api/v1/decision", json=poor)
        assert answer.status_code == 409 and answer.json()["detail"][0]["field"] == "state.cash"
        answer = client.post("/api/v1/decision", json={"market": {"prices": [1.0]}, "state": body["state"]})
        assert answer.status_code == 422
        ok = client.post("/api/v1/decision", json=body)
        assert ok.status_code == 200, ok.text
    env.close()


def test_paper_refuses_unknown_scenario(paper_run: Path) -> None:
    with pytest.raises(ValueError, match="historical data: not in the paper loop yet"):
        run_env(paper_run, "historical")
    assert "regime" in SCENARIOS


def test_paper_refuses_another_model(paper_server, served_run: Path) -> None:
    from agents.app.service.paper import PaperError

    key = make_key(paper_server.store, "paper-other", "decide,admin")
    with pytest.raises(PaperError, match="not this run's model.zip"):
        run_paper(paper_server.url, key, served_run, SCENARIO, 1, SEED)
    assert httpx.get(f"{paper_server.url}/api/v1/health").status_code == 200
