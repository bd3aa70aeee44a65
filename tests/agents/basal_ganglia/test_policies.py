"""The four basal-ganglia policies: learning the veto, logic-loss sources, masks, save/load, errors."""

from __future__ import annotations

import base64
import json
import re
import zipfile
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import pytest
import torch as th
from gymnasium.utils.env_checker import check_env
from stable_baselines3 import DQN, PPO
from stable_baselines3.common.callbacks import CallbackList

from agents.basal_ganglia import (
    HOLD,
    NOGO_INIT_BIAS,
    TAU_VETO,
    BasalGangliaActorCriticPolicy,
    BasalGangliaCallback,
    BasalGangliaDQN,
    BasalGangliaDQNPolicy,
    policies,
)
from janus_env.checks import BAD_VALUE

SELL = 2


def test_toy_env_passes_check_env(losing_env_cls: Any) -> None:
    check_env(losing_env_cls(), skip_render_check=True)


def test_nogo_starts_permissive_and_outside_the_algorithm_optimizer(
    algo: str, model_factory: Any, sample_obs: Any
) -> None:
    model = model_factory(algo)
    probs = model.policy.nogo(sample_obs(8))
    np.testing.assert_allclose(probs, 1.0 / (1.0 + np.exp(-NOGO_INIT_BIAS)), rtol=1e-6)
    algo_params = {id(p) for group in model.policy.optimizer.param_groups for p in group["params"]}
    assert not algo_params & {id(p) for p in model.policy.nogo_net.parameters()}


def test_learns_to_veto_the_always_losing_action(
    algo: str, model_factory: Any, sample_obs: Any, go_forcer: Any, recorder: Any
) -> None:
    model = model_factory(algo, nogo_lr=3e-2)
    steps = 2000 if algo in ("dqn", "qrdqn") else 1000  # ε decays fast: DQN tries SELL less often
    model.learn(steps, callback=CallbackList([BasalGangliaCallback(learning_starts=16), recorder]))
    obs = sample_obs(300)
    probs = model.policy.nogo(obs)
    assert probs[:, SELL].min() > TAU_VETO
    assert probs[:, HOLD].max() < TAU_VETO and probs[:, 1].max() < TAU_VETO
    assert SELL in recorder.actions[:200]  # it was tried while nothing was vetoed ...
    assert recorder.actions[-300:].count(SELL) == 0  # ... and no longer executed in rollouts
    go_forcer(model.policy, SELL)  # the Go pathway now insists on selling
    for deterministic in (True, False):
        actions, _ = model.predict(obs, deterministic=deterministic)
        assert SELL not in actions.tolist()
    single, _ = model.predict({k: v[0] for k, v in obs.items()}, deterministic=True)
    assert int(single) == HOLD
    record = model.policy.last_go_nogo
    assert record["proposed"] == SELL and record["final"] == HOLD and record["vetoed"]
    assert record["veto_reason"] == "nogo" and record["nogo_proposed"] > TAU_VETO


def test_learns_a_state_dependent_veto(model_factory: Any, losing_env_cls: Any, sample_obs: Any) -> None:
    class ToxicEnv(losing_env_cls):  # type: ignore[misc, valid-type]
        """SELL loses only when VPIN > 0.5 (toxic flow); otherwise it pays 0.2."""

        def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[dict, dict]:
            obs, info = super().reset(seed=seed, options=options)
            self._last = obs
            return obs, info

        def step(self, action: Any) -> tuple[dict, float, bool, bool, dict]:
            toxic = self._last["market"][0] > 0.5
            obs, reward, terminated, truncated, info = super().step(action)
            if int(action) == SELL:
                reward = -1.0 if toxic else 0.2
            self._last = obs
            return obs, reward, terminated, truncated, info

    model = model_factory("ppo", ToxicEnv(), nogo_lr=3e-2)
    model.learn(3000, callback=BasalGangliaCallback(learning_starts=16))
    obs = sample_obs(400)
    sell = model.policy.nogo(obs)[:, SELL]
    vpin = obs["market"][:, 0]
    assert sell[vpin > 0.6].mean() > sell[vpin < 0.4].mean() + 0.3
    assert sell[vpin < 0.4].max() < TAU_VETO  # calm flow: selling stays allowed


def test_plain_dqn_gates_greedy_actions(losing_env_cls: Any, sample_obs: Any, go_forcer: Any, nogo_setter: Any) -> None:
    model = DQN(BasalGangliaDQNPolicy, losing_env_cls(), learning_starts=10, buffer_size=500,
                policy_kwargs={"net_arch": [16]}, seed=0)
    nogo_setter(model.policy, [-5.0, -5.0, 5.0])
    go_forcer(model.policy, SELL)
    actions, _ = model.predict(sample_obs(20), deterministic=True)
    assert actions.tolist() == [HOLD] * 20


def test_maskable_veto_needs_hold_allowed(
    model_factory: Any, losing_env_cls: Any, go_forcer: Any, nogo_setter: Any
) -> None:
    env = losing_env_cls()
    model = model_factory("maskable", env)
    nogo_setter(model.policy, [-5.0, -5.0, 5.0])
    go_forcer(model.policy, SELL)
    obs = env.sample_obs(4)
    allowed = np.ones((4, 3), dtype=bool)
    assert model.predict(obs, action_masks=allowed, deterministic=True)[0].tolist() == [HOLD] * 4
    no_hold = allowed.copy()
    no_hold[:, HOLD] = False
    assert model.predict(obs, action_masks=no_hold, deterministic=True)[0].tolist() == [SELL] * 4
    no_sell = allowed.copy()
    no_sell[:, SELL] = False
    assert model.predict(obs, action_masks=no_sell, deterministic=True)[0].tolist() == [1] * 4


# --------------------------------------------------------------------------- logic loss


@pytest.mark.parametrize("algo", ["dqn", "ppo"])
def test_logic_hook_vetoes_on_logic_loss(algo: str, model_factory: Any, sample_obs: Any, go_forcer: Any) -> None:
    model = model_factory(algo)
    go_forcer(model.policy, 1)
    obs = sample_obs(4)
    seen: list[th.Tensor] = []

    def hook(o: Any, proposed: th.Tensor) -> th.Tensor:
        seen.append(proposed.clone())
        return th.tensor([0.0, 0.05, 0.1, 0.5])

    model.policy.set_logic_hook(hook)
    assert model.predict(obs, deterministic=True)[0].tolist() == [1, 1, HOLD, HOLD]
    assert seen[-1].tolist() == [1, 1, 1, 1]
    batch = model.policy.last_go_nogo_batch
    assert [row["veto_reason"] for row in batch] == ["", "", "logic", "logic"]
    assert {row["logic_source"] for row in batch} == {"hook"}
    model.policy.set_logic_hook(None)
    assert model.predict(obs, deterministic=True)[0].tolist() == [1, 1, 1, 1]


def test_logic_loss_from_last_ltn_info(model_factory: Any, sample_obs: Any, go_forcer: Any) -> None:
    model = model_factory("ppo")
    policy = model.policy
    go_forcer(policy, 1)
    obs = sample_obs(3)
    infos = [{"ltn": {"sat_agg": 1.0}}, {"ltn": {"sat_agg": 0.85}}, {"ltn": {"violation": 0.3}}]
    policy.observe_infos(infos, dones=[False, False, False])
    assert model.predict(obs, deterministic=True)[0].tolist() == [1, HOLD, HOLD]
    assert policy.last_go_nogo_batch[1]["logic_loss"] == pytest.approx(0.15)
    assert policy.last_go_nogo_batch[1]["logic_source"] == "info"
    policy.observe_infos(infos, dones=[False, True, False])  # a finished episode starts clean
    assert model.predict(obs, deterministic=True)[0].tolist() == [1, 1, HOLD]
    policy.observe_infos([{}, {}, {}])  # no LTN at all: only the No-Go gate applies
    assert model.predict(obs, deterministic=True)[0].tolist() == [1, 1, 1]
    assert policy.last_go_nogo["logic_source"] == "none"
    policy.observe_infos(infos)
    with pytest.raises(ValueError, match=re.escape(policies._BAD_LOGIC_BATCH.format(3, 1))):
        model.predict({k: v[0] for k, v in obs.items()})
    policy.reset_logic_state()
    model.predict({k: v[0] for k, v in obs.items()})


# --------------------------------------------------------------------------- save / load


def test_save_load_round_trip(algo: str, tmp_path: Path, model_factory: Any, sample_obs: Any) -> None:
    model = model_factory(algo, tau_veto=0.6, tau_logic=0.2)
    model.learn(200, callback=BasalGangliaCallback(learning_starts=16))
    with th.no_grad():
        model.policy.nogo_net.linear.weight.normal_(0.0, 0.5)
    path = tmp_path / f"{algo}.zip"
    model.save(path)
    cls = type(model)
    loaded = cls.load(path, device="cpu")
    assert type(loaded.policy) is type(model.policy)
    assert (loaded.policy.tau_veto, loaded.policy.tau_logic) == (0.6, 0.2)
    obs = sample_obs(32)
    np.testing.assert_array_equal(loaded.policy.nogo(obs), model.policy.nogo(obs))
    np.testing.assert_array_equal(loaded.predict(obs, deterministic=True)[0], model.predict(obs, deterministic=True)[0])
    policy_path = tmp_path / "policy.pt"
    model.policy.save(str(policy_path))
    again = type(model.policy).load(str(policy_path), device="cpu")
    np.testing.assert_array_equal(again.nogo(obs), model.policy.nogo(obs))


def test_models_saved_before_the_split_still_load(tmp_path: Path, model_factory: Any, sample_obs: Any) -> None:
    """A zip whose policy class is ``agents.basal_ganglia.BasalGangliaDQNPolicy`` (the one-module layout) loads."""
    model = model_factory("dqn")
    model.save(tmp_path / "new.zip")
    with zipfile.ZipFile(tmp_path / "new.zip") as src:
        files = {name: src.read(name) for name in src.namelist()}
    data = json.loads(files["data"])
    assert data["policy_class"]["__module__"] == "agents.basal_ganglia.policies"
    old_reference = b"cagents.basal_ganglia\nBasalGangliaDQNPolicy\n."  # pickle GLOBAL opcode, module path of old
    data["policy_class"][":serialized:"] = base64.b64encode(old_reference).decode()
    files["data"] = json.dumps(data).encode()
    with zipfile.ZipFile(tmp_path / "old.zip", "w") as dst:
        for name, content in files.items():
            dst.writestr(name, content)
    loaded = BasalGangliaDQN.load(tmp_path / "old.zip", device="cpu")
    assert type(loaded.policy) is BasalGangliaDQNPolicy
    obs = sample_obs(16)
    np.testing.assert_array_equal(loaded.predict(obs, deterministic=True)[0], model.predict(obs, deterministic=True)[0])


# --------------------------------------------------------------------------- JanusExtractor


def test_with_janus_extractor_on_lob_env() -> None:
    from agents.extractor import JanusExtractor
    import envs_registry  # noqa: F401

    env = gym.make("Janus-LOB-v0", seed=0, episode_steps=64)
    model = PPO(
        BasalGangliaActorCriticPolicy,
        env,
        n_steps=32,
        batch_size=32,
        n_epochs=1,
        seed=0,
        policy_kwargs={
            "features_extractor_class": JanusExtractor,
            "features_extractor_kwargs": {"features_dim": 16, "d_model": 8},
            "net_arch": [16],
        },
    )
    model.learn(64, callback=BasalGangliaCallback(learning_starts=8, batch_size=8))
    obs, _ = env.reset(seed=1)
    action, _ = model.predict(obs, deterministic=True)
    assert int(action) == model.policy.last_go_nogo["final"]
    assert set(model.policy.features_extractor.last_gates) >= {"vis"}


def test_actor_critic_with_an_extractor_each_keeps_the_value_loss_out_of_the_actor(tmp_path: Path) -> None:
    """``share_features_extractor=False`` (configs/janus-ppo.yml): the value loss leaves the actor's features alone."""
    import envs_registry  # noqa: F401
    from agents.extractor import JanusExtractor

    env = gym.make("Janus-LOB-v0")
    model = PPO(BasalGangliaActorCriticPolicy, env, n_steps=32, batch_size=16, n_epochs=1, seed=0, device="cpu",
                policy_kwargs={"features_extractor_class": JanusExtractor, "share_features_extractor": False})
    policy = model.policy
    assert policy.pi_features_extractor is not policy.vf_features_extractor
    obs, _ = env.reset(seed=1)
    tensor_obs, _ = policy.obs_to_tensor(obs)
    policy.optimizer.zero_grad()
    policy.predict_values(tensor_obs).sum().backward()
    assert all(p.grad is None for p in policy.pi_features_extractor.parameters())
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in policy.vf_features_extractor.parameters())
    model.learn(64, callback=BasalGangliaCallback())
    assert policy.last_go_nogo is not None  # the gate ran on the actor's own features
    model.save(tmp_path / "ppo")
    loaded = PPO.load(tmp_path / "ppo", device="cpu")
    assert loaded.policy.share_features_extractor is False
    assert loaded.predict(obs, deterministic=True)[0] == model.predict(obs, deterministic=True)[0]


# --------------------------------------------------------------------------- errors


@pytest.mark.parametrize("name", ["tau_veto", "tau_logic"])
@pytest.mark.parametrize("value", [0.0, 1.5, -0.1, float("nan")])
def test_bad_tau(name: str, value: float, model_factory: Any) -> None:
    message = BAD_VALUE.format(name=name, expected="a number in (0, 1]", value=value)
    with pytest.raises(ValueError, match=re.escape(message)):
        model_factory("ppo", **{name: value})


@pytest.mark.parametrize("value", [True, "0.5", None])
def test_tau_of_the_wrong_type(value: Any, model_factory: Any) -> None:  # ValueError before
    message = BAD_VALUE.format(name="tau_veto", expected="a number in (0, 1]", value=value)
    with pytest.raises(TypeError, match=re.escape(message)):
        model_factory("ppo", tau_veto=value)


def test_bad_action_space() -> None:
    env = gym.make("Pendulum-v1")
    with pytest.raises(TypeError, match=re.escape(policies._NOT_DISCRETE.format(env.action_space))):
        PPO(BasalGangliaActorCriticPolicy, env, policy_kwargs={"market_key": None})


def test_missing_market_key() -> None:
    env = gym.make("CartPole-v1")
    with pytest.raises(ValueError, match=re.escape(policies._NO_MARKET.format("market", 0, 1, env.observation_space))):
        DQN(BasalGangliaDQNPolicy, env)
    model = DQN(BasalGangliaDQNPolicy, env, policy_kwargs={"market_key": None}, buffer_size=100)
    assert model.predict(np.zeros(4, np.float32))[0] in (0, 1)


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"nogo_weight_decay": -1.0}, ValueError,
         BAD_VALUE.format(name="nogo_weight_decay", expected="a finite number >= 0", value=-1.0)),
        ({"nogo_lr": 0.0}, ValueError, BAD_VALUE.format(name="nogo_lr", expected="a finite number > 0", value=0.0)),
        ({"nogo_init_bias": float("nan")}, ValueError,
         BAD_VALUE.format(name="nogo_init_bias", expected="a finite number", value=float("nan"))),
        ({"vpin_index": -1}, ValueError, BAD_VALUE.format(name="vpin_index", expected="an int >= 0", value=-1)),
        ({"hold_action": 3}, ValueError, BAD_VALUE.format(name="hold_action", expected="an int in [0, 2]", value=3)),
        # wrong types: ValueError before
        ({"volatility_index": 1.0}, TypeError,
         BAD_VALUE.format(name="volatility_index", expected="an int >= 0", value=1.0)),
        ({"hold_action": np.bool_(False)}, TypeError,
         BAD_VALUE.format(name="hold_action", expected="an int in [0, 2]", value=np.bool_(False))),
        ({"nogo_lr": "1e-3"}, TypeError,
         BAD_VALUE.format(name="nogo_lr", expected="a finite number > 0", value="1e-3")),
    ],
)
def test_bad_policy_arguments(kwargs: dict[str, Any], error: type[Exception], message: str,
                              model_factory: Any) -> None:
    with pytest.raises(error, match=re.escape(message)):
        model_factory("dqn", **kwargs)


def test_bad_logic_hook(model_factory: Any, sample_obs: Any) -> None:
    model = model_factory("dqn")
    message = BAD_VALUE.format(name="logic_hook", expected="callable or None", value=42)
    with pytest.raises(TypeError, match=re.escape(message)):
        model.policy.set_logic_hook(42)
    model.policy.set_logic_hook(lambda obs, proposed: th.full((proposed.shape[0],), 1.5))
    with pytest.raises(ValueError, match=re.escape("Expected the logic loss to be 2 finite values in [0, 1]")):
        model.predict(sample_obs(2), deterministic=True)


def test_bad_ltn_info(model_factory: Any) -> None:
    model = model_factory("ppo")
    with pytest.raises(ValueError, match=re.escape(policies._BAD_INFO_LTN.format("sat_agg", 1.5))):
        model.policy.observe_infos([{"ltn": {"sat_agg": 1.5}}])


def test_bad_labels(model_factory: Any, sample_obs: Any) -> None:
    model = model_factory("ppo")
    with pytest.raises(ValueError, match=re.escape(policies._BAD_LABELS.format(2, [0.5, 1.0]))):
        model.policy.train_nogo(sample_obs(2), np.array([1, 2]), [0.5, 1.0])


@pytest.mark.parametrize("algo", ["dqn", "qrdqn", "ppo", "maskable"])
def test_set_training_mode_leaves_every_module_as_sb3s_would(algo: str, model_factory: Any) -> None:
    """The skip where nothing would change: after any sequence of modes (and a module flipped by hand, and the
    No-Go head's own training) every module's flag equals what SB3's ``set_training_mode`` sets."""
    policy = model_factory(algo).policy
    reference = model_factory(algo).policy
    base = type(policy).__mro__[2]  # the SB3 policy class under the mixin
    assert base.__module__.startswith(("stable_baselines3", "sb3_contrib"))
    for step, mode in enumerate([False, False, True, True, False, True, False, False]):
        if step == 4:  # a module flipped by hand is set back, as SB3 would
            for p in (policy, reference):
                next(m for m in p.modules() if m is not p).train(True)
        if step == 6:
            for p in (policy, reference):
                p.nogo_net.train(True)  # train_nogo's own mode, which SB3's call does not touch (DQN family)
        policy.set_training_mode(mode)
        base.set_training_mode(reference, mode)
        assert [m.training for m in policy.modules()] == [m.training for m in reference.modules()]
