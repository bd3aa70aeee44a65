"""A sized run served with its ``Hypothalamus``: the answer's size is the sizing's, fills feed its statistics.

In-process (``DecisionService`` without HTTP): a janus-dqn run with ``action_type="sized"`` (3 sizes) and the
``sizing`` setting on, its Go head biased to the largest buy.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

import serve
from agents.app.config import algo_class
from agents.app.service.keys import Principal
from agents.app.service.schemas import DecisionRequest, FillRequest
from agents.app.service.serving import build_service, resolve_service

BUY_3 = 3  # sized_quantity(3, n_sizes=3, lot): buy 3 lots


@pytest.fixture(scope="module")
def sized_service(tmp_path_factory: pytest.TempPathFactory):
    import train

    out = tmp_path_factory.mktemp("sized")
    assert train.main(["--algo", "janus-dqn", "--timesteps", "120", "--run-dir", str(out), "--run-name", "sized",
                       "--no-progress", "--hp", "learning_starts=100", "--hp", "env_kwargs.episode_steps=60",
                       "--hp", "env_kwargs.action_type=sized", "--hp", "sizing=true",
                       "--hp", "sleep.every_n_steps=100000", "--hp", "policy_kwargs.net_arch=[16]"]) == 0
    run = out / "sized"
    model = algo_class("janus-dqn").load(run / "model.zip", device="cpu")
    for net in (model.policy.q_net, model.policy.q_net_target):
        net.q_net[-1].bias.data[BUY_3] += 5.0
    model.policy.nogo_net.linear.bias.data[BUY_3] = -10.0  # No-Go ≈ 0 for the 3-lot buy
    model.save(run / "model.zip")
    svc = build_service(resolve_service(serve.parse_args([str(run), "--store", str(out / "store")])))
    yield svc
    svc.close()


def test_sized_orders_go_through_the_hypothalamus(sized_service, walk) -> None:
    who = Principal("desk", ("decide",))
    sizes = []
    for _ in range(6):
        answer = sized_service.decide(who, DecisionRequest.model_validate_json(json.dumps(walk.body())),
                                      time.perf_counter())
        walk.advance()
        sizing = answer["sizing"]
        assert sizing is not None and set(sizing) >= {"kelly_scale", "vol_scale", "drawdown_scale", "final_qty",
                                                      "proposed_qty", "cuts"}
        assert answer["size"] == sizing["final_qty"] - answer["rejected_qty"]  # the env's cut comes after sizing
        assert sizing["final_qty"] <= sizing["proposed_qty"]  # sizing never enlarges an order
        if answer["size"]:
            sized_service.fill(who, FillRequest(decision_id=answer["decision_id"], qty=answer["size"],
                                                price=answer["mid"] + 0.01))
        sizes.append(answer["size"])
    assert max(sizes) > 0 and answer["action"] in range(7)
    account = sized_service.account_view(who)
    assert account["position"] == sum(sizes)
    log = Path(sized_service.store.audit_path("desk"))
    assert len(log.read_text().splitlines()) == 6
