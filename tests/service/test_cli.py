"""``serve.py``'s arguments and the service built in-process: bad input exits 2 with one line; the torch engine
decides as the ONNX one; readiness fails when the store does not take writes."""

from __future__ import annotations

import shutil
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import yaml

import envs_registry  # noqa: F401
import serve
from agents.app.service.accounts import Account
from agents.app.service.engine import DecisionEngine
from agents.app.service.serving import build_service, resolve_service
from janus_env.historical_market import HistoricalMarket
from janus_env.samples import sample_path


def _exit(argv: list[str], capsys) -> tuple[int, str]:
    try:
        code = serve.main(argv)
    except SystemExit as err:  # argparse's own errors
        code = err.code
    return code, capsys.readouterr().err


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["RUN", "--store", "STORE", "--port", "0"], "--port must be in 1..65535, got 0"),
        (["RUN", "--store", "STORE", "--engine", "tf"], "invalid choice: 'tf'"),
        (["RUN", "--store", "STORE", "--breaker", "max_drawdown"], "Expected --breaker NAME=VALUE"),
        (["RUN", "--store", "STORE", "--breaker", "no_such=1"], "Unknown breaker argument 'no_such'"),
        (["RUN", "--store", "STORE", "--breaker", "max_drawdown=-1"], "`max_drawdown`"),
        (["MISSING", "--store", "STORE"], "no model at"),
        (["keygen", "--store", "STORE", "--name", "a b"], "expected a name of 1-64 letters"),
        (["keygen", "--store", "STORE", "--name", "a", "--scopes", "root"], "expected scopes among"),
    ],
)
def test_bad_arguments_exit_2_with_one_line(argv, message: str, served_run: Path, tmp_path: Path, capsys) -> None:
    argv = [str(served_run) if a == "RUN" else str(tmp_path / "nope") if a == "MISSING" else
            str(tmp_path / "store") if a == "STORE" else a for a in argv]
    code, err = _exit(argv, capsys)
    assert code == 2
    assert message in err and len(err.strip().splitlines()) == 1 and "Traceback" not in err


def test_a_continuous_run_is_refused(served_run: Path, tmp_path: Path, capsys) -> None:
    run = tmp_path / "cont"
    shutil.copytree(served_run, run, ignore=shutil.ignore_patterns("checkpoints", "tb_*", "plots"))
    config = yaml.safe_load((run / "config.yaml").read_text())
    config["hyperparams"]["env_kwargs"]["action_type"] = "continuous"
    (run / "config.yaml").write_text(yaml.safe_dump(config))
    code, err = _exit([str(run), "--store", str(tmp_path / "store")], capsys)
    assert code == 2 and "serves Discrete action spaces" in err


@pytest.fixture(scope="module")
def service(served_run: Path, tmp_path_factory: pytest.TempPathFactory):
    store = tmp_path_factory.mktemp("inproc") / "svc"
    svc = build_service(resolve_service(serve.parse_args([str(served_run), "--store", str(store)])))
    yield svc
    svc.close()


def test_torch_engine_decides_as_the_onnx_graph(service, served_run: Path) -> None:
    onnx = service.engine
    torch_engine = DecisionEngine(onnx.model, "torch")
    env = gym.make("Janus-LOB-v0", seed=1, episode_steps=60)
    obs, _ = env.reset(seed=1)
    rng = np.random.default_rng(0)
    for _ in range(20):
        sat = rng.uniform(0.85, 1.0, 3)  # a logic loss straddling τ_logic = 0.1 for some proposals
        a, b = onnx.decide(obs, sat, None), torch_engine.decide(obs, sat, None)
        assert (a.action, a.proposed) == (b.action, b.proposed)
        np.testing.assert_allclose(a.go_nogo["go"], b.go_nogo["go"], atol=1e-5)
        np.testing.assert_allclose(a.go_nogo["nogo"], b.go_nogo["nogo"], atol=1e-5)
        assert a.go_nogo["vetoed"] == b.go_nogo["vetoed"] and a.go_nogo["veto_reason"] == b.go_nogo["veto_reason"]
        assert a.go_nogo["logic_loss"] == pytest.approx(b.go_nogo["logic_loss"], abs=1e-6)
        obs, *_ = env.step(int(rng.integers(0, 3)))


def test_ready_reports_a_store_that_takes_no_writes(service, monkeypatch) -> None:
    assert service.ready()["ready"]
    monkeypatch.setattr(service.store, "writable", lambda: False)
    state = service.ready()
    assert not state["ready"] and not state["store_writable"] and state["model_loaded"]


def test_set_account_checks_its_arguments() -> None:
    env = gym.make("Janus-LOB-v0", scenario="historical", data=sample_path("btc_usd_hourly"), episode_steps=20,
                   lot=0.01, max_position=1.0)
    config = env.unwrapped.config
    from janus_env.historical import load_source

    market = HistoricalMarket(config, load_source(sample_path("btc_usd_hourly")))
    market.reset(np.random.default_rng(0), 0)
    account = Account.new("a", config)
    market.set_account(account.units, account.cash, account.cost, account.cash, 0)
    with pytest.raises(ValueError, match=r"Expected `t` to be an int in \[0, 20\], got 21"):
        market.set_account(0, 1e5, 0.0, 1e5, 21)
    with pytest.raises(ValueError, match="Expected `cash` to be a finite number"):
        market.set_account(0, float("nan"), 0.0, 1e5, 0)
    with pytest.raises(TypeError, match="Expected `units` to be an int"):
        market.set_account(1.5, 1e5, 0.0, 1e5, 0)
