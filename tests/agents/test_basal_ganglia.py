"""Basal ganglia: the Go/No-Go gate, its training signal, every policy family, save/load, errors."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import pytest
import torch as th
from gymnasium import spaces
from gymnasium.utils.env_checker import check_env
from sb3_contrib import MaskablePPO, QRDQN
from stable_baselines3 import DQN, PPO
from stable_baselines3.common.callbacks import BaseCallback, CallbackList

from agents import basal_ganglia as bg
from agents.basal_ganglia import (
    HOLD,
    NOGO_INIT_BIAS,
    TAU_LOGIC,
    TAU_VETO,
    BasalGangliaActorCriticPolicy,
    BasalGangliaCallback,
    BasalGangliaDQN,
    BasalGangliaDQNPolicy,
    BasalGangliaMaskablePolicy,
    BasalGangliaQRDQN,
    BasalGangliaQRDQNPolicy,
    adverse_labels,
    basal_ganglia_gate,
)

SELL = 2


class LosingEnv(gym.Env):
    """Toy market: HOLD pays 0, BUY +0.1, SELL always −1; observations are noise plus a ``market`` key."""

    metadata: dict[str, Any] = {"render_modes": []}

    def __init__(self, episode_steps: int = 50) -> None:
        self.observation_space = spaces.Dict({
            "x": spaces.Box(-1.0, 1.0, (4,), np.float32),
            "market": spaces.Box(
                np.array([0.0, 0.0, 0.0, -1.0], np.float32), np.array([1.0, 10.0, 10.0, 1.0], np.float32)
            ),
        })
        self.action_space = spaces.Discrete(3)
        self.episode_steps = episode_steps
        self.executed = np.zeros(3, dtype=np.int64)
        self.allow_hold = True
        self._t = 0

    def _obs(self) -> dict[str, np.ndarray]:
        r = self.np_random
        market = np.array([r.uniform(), r.uniform(0, 5), r.uniform(0, 3), r.uniform(-1, 1)], np.float32)
        return {"x": r.uniform(-1, 1, 4).astype(np.float32), "market": market}

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[dict, dict]:
        super().reset(seed=seed)
        self._t = 0
        return self._obs(), {}

    def step(self, action: Any) -> tuple[dict, float, bool, bool, dict]:
        a = int(action)
        self.executed[a] += 1
        self._t += 1
        reward = {0: 0.0, 1: 0.1, 2: -1.0}[a]
        return self._obs(), reward, False, self._t >= self.episode_steps, {"exec_qty": float(a != 0)}

    def action_masks(self) -> np.ndarray:
        return np.array([self.allow_hold, True, True])

    def sample_obs(self, n: int, seed: int = 123) -> dict[str, np.ndarray]:
        self.reset(seed=seed)
        rows = [self._obs() for _ in range(n)]
        return {k: np.stack([r[k] for r in rows]) for k in rows[0]}


ALGOS = ["dqn", "qrdqn", "ppo", "maskable"]


def make_model(algo: str, env: gym.Env | None = None, **policy_kwargs: Any) -> Any:
    env = env if env is not None else LosingEnv()
    kwargs: dict[str, Any] = {"net_arch": [16], "nogo_lr": 1e-2, **policy_kwargs}
    if algo == "dqn":
        return BasalGangliaDQN(BasalGangliaDQNPolicy, env, learning_starts=100, buffer_size=2000,
                               policy_kwargs=kwargs, seed=0)
    if algo == "qrdqn":
        return BasalGangliaQRDQN(BasalGangliaQRDQNPolicy, env, learning_starts=100, buffer_size=2000,
                                 policy_kwargs={"n_quantiles": 5, **kwargs}, seed=0)
    if algo == "ppo":
        return PPO(BasalGangliaActorCriticPolicy, env, n_steps=64, batch_size=32, n_epochs=2,
                   policy_kwargs=kwargs, seed=0)
    return MaskablePPO(BasalGangliaMaskablePolicy, env, n_steps=64, batch_size=32, n_epochs=2,
                       policy_kwargs=kwargs, seed=0)


def env_of(model: Any) -> LosingEnv:
    return model.get_env().envs[0].unwrapped


def force_go(policy: Any, action: int) -> None:
    """Make the Go pathway prefer ``action``, then the other non-HOLD action (so the gate must stop it)."""
    if isinstance(policy, BasalGangliaDQNPolicy):
        last = policy.q_net.q_net[-1]
    elif isinstance(policy, BasalGangliaQRDQNPolicy):
        last = policy.quantile_net.quantile_net[-1]
    else:
        last = policy.action_net
    with th.no_grad():
        last.weight.zero_()
        bias = th.zeros_like(last.bias).reshape(-1, policy.action_space.n)
        bias[:, action] = 50.0
        bias[:, 3 - action if action in (1, 2) else 1] = 10.0
        last.bias.copy_(bias.reshape(-1))


def set_nogo(policy: Any, bias: list[float]) -> None:
    with th.no_grad():
        policy.nogo_net.linear.weight.zero_()
        policy.nogo_net.linear.bias.copy_(th.tensor(bias))


class ActionRecorder(BaseCallback):
    """Keeps the executed actions and the infos every step sees."""

    def __init__(self) -> None:
        super().__init__()
        self.actions: list[int] = []
        self.infos: list[dict[str, Any]] = []

    def _on_step(self) -> bool:
        self.actions.extend(int(a) for a in np.asarray(self.locals["actions"]).reshape(-1))
        self.infos.extend(self.locals["infos"])
        return True


# --------------------------------------------------------------------------- gate


def test_toy_env_passes_check_env() -> None:
    check_env(LosingEnv(), skip_render_check=True)


def test_gate_keeps_proposal_unless_vetoed() -> None:
    proposed = th.tensor([1, 2, 2, 0, 1, 2])
    nogo = th.tensor([
        [0.0, 0.1, 0.1],  # 1 allowed
        [0.0, 0.1, 0.7],  # NoGo == τ_veto → vetoed (≥)
        [0.0, 0.1, 0.69],  # just below → kept
        [0.99, 0.9, 0.9],  # HOLD is never vetoed
        [0.0, 0.1, 0.1],  # logic loss ≥ τ_logic → vetoed
        [0.0, 0.1, 0.9],  # vetoed, but the mask forbids HOLD
    ])
    logic = th.tensor([0.0, 0.0, 0.0, 0.5, 0.1, 0.0])
    hold_allowed = th.tensor([True, True, True, True, True, False])
    final, vetoed = basal_ganglia_gate(proposed, nogo, logic, hold_allowed=hold_allowed)
    assert final.tolist() == [1, 0, 2, 0, 0, 2]
    assert vetoed.tolist() == [False, True, False, False, True, False]
    assert (TAU_VETO, TAU_LOGIC, HOLD) == (0.7, 0.1, 0)


@pytest.mark.parametrize("algo", ALGOS)
def test_nogo_starts_permissive_and_outside_the_algorithm_optimizer(algo: str) -> None:
    model = make_model(algo)
    env = LosingEnv()
    probs = model.policy.nogo(env.sample_obs(8))
    np.testing.assert_allclose(probs, 1.0 / (1.0 + np.exp(-NOGO_INIT_BIAS)), rtol=1e-6)
    algo_params = {id(p) for group in model.policy.optimizer.param_groups for p in group["params"]}
    assert not algo_params & {id(p) for p in model.policy.nogo_net.parameters()}


@pytest.mark.parametrize("algo", ALGOS)
def test_learns_to_veto_the_always_losing_action(algo: str) -> None:
    model = make_model(algo, nogo_lr=3e-2)
    recorder = ActionRecorder()
    steps = 2000 if algo in ("dqn", "qrdqn") else 1000  # ε decays fast: DQN tries SELL less often
    model.learn(steps, callback=CallbackList([BasalGangliaCallback(learning_starts=16), recorder]))
    env = LosingEnv()
    obs = env.sample_obs(300)
    probs = model.policy.nogo(obs)
    assert probs[:, SELL].min() > TAU_VETO
    assert probs[:, HOLD].max() < TAU_VETO and probs[:, 1].max() < TAU_VETO
    assert SELL in recorder.actions[:200]  # it was tried while nothing was vetoed ...
    assert recorder.actions[-300:].count(SELL) == 0  # ... and no longer executed in rollouts
    force_go(model.policy, SELL)  # the Go pathway now insists on selling
    for deterministic in (True, False):
        actions, _ = model.predict(obs, deterministic=deterministic)
        assert SELL not in actions.tolist()
    single, _ = model.predict({k: v[0] for k, v in obs.items()}, deterministic=True)
    assert int(single) == HOLD
    record = model.policy.last_go_nogo
    assert record["proposed"] == SELL and record["final"] == HOLD and record["vetoed"]
    assert record["veto_reason"] == "nogo" and record["nogo_proposed"] > TAU_VETO


class ToxicEnv(LosingEnv):
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


def test_learns_a_state_dependent_veto() -> None:
    model = make_model("ppo", ToxicEnv(), nogo_lr=3e-2)
    model.learn(3000, callback=BasalGangliaCallback(learning_starts=16))
    obs = LosingEnv().sample_obs(400)
    sell = model.policy.nogo(obs)[:, SELL]
    vpin = obs["market"][:, 0]
    assert sell[vpin > 0.6].mean() > sell[vpin < 0.4].mean() + 0.3
    assert sell[vpin < 0.4].max() < TAU_VETO  # calm flow: selling stays allowed


@pytest.mark.parametrize("algo", ALGOS)
def test_veto_holds_in_rollouts_including_exploration(algo: str) -> None:
    model = make_model(algo)
    set_nogo(model.policy, [-5.0, -5.0, 5.0])  # SELL vetoed everywhere from the start
    recorder = ActionRecorder()
    model.learn(400, callback=recorder)  # DQN: 100 warm-up steps, then ε-greedy from 1.0
    assert SELL not in recorder.actions
    assert env_of(model).executed[SELL] == 0
    assert env_of(model).executed[1] > 0


def test_gated_janus_dqn() -> None:
    from agents.janus_dqn import JanusDQN

    class GatedJanusDQN(bg.GatedExplorationMixin, JanusDQN):
        """JanusDQN (prioritized replay) whose exploration passes the gate too."""

    model = GatedJanusDQN(BasalGangliaDQNPolicy, LosingEnv(), learning_starts=50, buffer_size=1000,
                          policy_kwargs={"net_arch": [16]}, seed=0)
    set_nogo(model.policy, [-5.0, -5.0, 5.0])
    recorder = ActionRecorder()
    model.learn(300, callback=CallbackList([BasalGangliaCallback(learning_starts=16), recorder]))
    assert SELL not in recorder.actions and 1 in recorder.actions
    assert model.replay_buffer.size() > 0


def test_plain_dqn_gates_greedy_actions() -> None:
    model = DQN(BasalGangliaDQNPolicy, LosingEnv(), learning_starts=10, buffer_size=500,
                policy_kwargs={"net_arch": [16]}, seed=0)
    set_nogo(model.policy, [-5.0, -5.0, 5.0])
    force_go(model.policy, SELL)
    actions, _ = model.predict(LosingEnv().sample_obs(20), deterministic=True)
    assert actions.tolist() == [HOLD] * 20


def test_maskable_veto_needs_hold_allowed() -> None:
    env = LosingEnv()
    model = make_model("maskable", env)
    set_nogo(model.policy, [-5.0, -5.0, 5.0])
    force_go(model.policy, SELL)
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
def test_logic_hook_vetoes_on_logic_loss(algo: str) -> None:
    model = make_model(algo)
    force_go(model.policy, 1)
    obs = LosingEnv().sample_obs(4)
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


def test_logic_loss_from_last_ltn_info() -> None:
    model = make_model("ppo")
    policy = model.policy
    force_go(policy, 1)
    obs = LosingEnv().sample_obs(3)
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
    with pytest.raises(ValueError, match=re.escape(bg._BAD_LOGIC_BATCH.format(3, 1))):
        model.predict({k: v[0] for k, v in obs.items()})
    policy.reset_logic_state()
    model.predict({k: v[0] for k, v in obs.items()})


def test_callback_feeds_ltn_infos_and_writes_go_nogo() -> None:
    class LTNEnv(LosingEnv):
        def step(self, action: Any) -> tuple[dict, float, bool, bool, dict]:
            obs, reward, terminated, truncated, info = super().step(action)
            info["ltn"] = {"sat_agg": 0.5, "violation": 0.5, "overridden": False}  # every proposal unsatisfying
            return obs, reward, terminated, truncated, info

    model = make_model("ppo", LTNEnv())
    recorder = ActionRecorder()
    model.learn(128, callback=CallbackList([BasalGangliaCallback(), recorder]))
    # after the first step (and each episode start) the lagged logic loss 0.5 ≥ τ_logic forces HOLD
    later = [a for a, info in zip(recorder.actions[1:], recorder.infos[:-1]) if not info.get("TimeLimit.truncated")]
    assert set(later) == {HOLD}
    rows = [info["go_nogo"] for info in recorder.infos]
    assert all(row["final"] == a for row, a in zip(rows, recorder.actions))
    assert {row["logic_source"] for row in rows[1:]} == {"info"}
    json.dumps(rows)  # audit-ready
    assert model.policy._info_logic_loss is None  # cleared at the end of training


# --------------------------------------------------------------------------- labels


def test_adverse_labels() -> None:
    rewards = np.array([-2.0, -0.5, 0.0, 0.0, 0.0, -3.0, 0.0, 0.0])
    infos = [
        {},  # reward below −c
        {},  # loss smaller than c
        {"ltn": {"violation": 0.2, "overridden": True}},  # LTN violation
        {"ltn": {"sat_agg": 0.95}},  # satisfied enough
        {"exec_qty": 100.0, "slippage_bps": 3.0, "predicted_slippage_bps": 1.0},  # slippage > 2× predicted
        {"ltn": {"violation": 0.0, "overridden": True}},  # overridden: the loss was the shield's action
        {"exec_qty": 100.0, "slippage_bps": 1.5, "predicted_slippage_bps": 1.0},  # within 2×
        {"exec_qty": 0.0, "slippage_bps": 9.0, "predicted_slippage_bps": 1.0},  # no fill
    ]
    labels = adverse_labels(rewards, infos, reward_threshold=1.0)
    assert labels.tolist() == [1, 0, 1, 0, 1, 0, 0, 0]
    assert adverse_labels(rewards, infos, reward_threshold=None).tolist() == [0, 0, 1, 0, 1, 0, 0, 0]
    predicted = np.full(8, np.nan)
    predicted[6] = 0.5
    assert adverse_labels(rewards, infos, reward_threshold=None, predicted_slippage=predicted)[[4, 6]].tolist() == [
        0,
        1,
    ]


# --------------------------------------------------------------------------- save / load


@pytest.mark.parametrize("algo", ALGOS)
def test_save_load_round_trip(algo: str, tmp_path: Path) -> None:
    model = make_model(algo, tau_veto=0.6, tau_logic=0.2)
    model.learn(200, callback=BasalGangliaCallback(learning_starts=16))
    with th.no_grad():
        model.policy.nogo_net.linear.weight.normal_(0.0, 0.5)
    path = tmp_path / f"{algo}.zip"
    model.save(path)
    cls = type(model)
    loaded = cls.load(path, device="cpu")
    assert type(loaded.policy) is type(model.policy)
    assert (loaded.policy.tau_veto, loaded.policy.tau_logic) == (0.6, 0.2)
    obs = LosingEnv().sample_obs(32)
    np.testing.assert_array_equal(loaded.policy.nogo(obs), model.policy.nogo(obs))
    np.testing.assert_array_equal(loaded.predict(obs, deterministic=True)[0], model.predict(obs, deterministic=True)[0])
    policy_path = tmp_path / "policy.pt"
    model.policy.save(str(policy_path))
    again = type(model.policy).load(str(policy_path), device="cpu")
    np.testing.assert_array_equal(again.nogo(obs), model.policy.nogo(obs))


# --------------------------------------------------------------------------- JanusExtractor


def test_with_janus_extractor_on_lob_env() -> None:
    extractor = pytest.importorskip("agents.extractor")
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
            "features_extractor_class": extractor.JanusExtractor,
            "features_extractor_kwargs": {"features_dim": 16, "d_model": 8},
            "net_arch": [16],
        },
    )
    model.learn(64, callback=BasalGangliaCallback(learning_starts=8, batch_size=8))
    obs, _ = env.reset(seed=1)
    action, _ = model.predict(obs, deterministic=True)
    assert int(action) == model.policy.last_go_nogo["final"]
    assert set(model.policy.features_extractor.last_gates) >= {"vis"}


# --------------------------------------------------------------------------- errors


@pytest.mark.parametrize("name", ["tau_veto", "tau_logic"])
@pytest.mark.parametrize("value", [0.0, 1.5, -0.1])
def test_bad_tau(name: str, value: float) -> None:
    with pytest.raises(ValueError, match=re.escape(bg._BAD_TAU.format(name, value))):
        make_model("ppo", **{name: value})


def test_bad_action_space() -> None:
    env = gym.make("Pendulum-v1")
    with pytest.raises(TypeError, match=re.escape(bg._NOT_DISCRETE.format(env.action_space))):
        PPO(BasalGangliaActorCriticPolicy, env, policy_kwargs={"market_key": None})


def test_missing_market_key() -> None:
    env = gym.make("CartPole-v1")
    with pytest.raises(ValueError, match=re.escape(bg._NO_MARKET.format("market", 0, 1, env.observation_space))):
        DQN(BasalGangliaDQNPolicy, env)
    model = DQN(BasalGangliaDQNPolicy, env, policy_kwargs={"market_key": None}, buffer_size=100)
    assert model.predict(np.zeros(4, np.float32))[0] in (0, 1)


def test_bad_nogo_weight_decay() -> None:
    with pytest.raises(ValueError, match=re.escape(bg._BAD_NONNEG.format("nogo_weight_decay", -1.0))):
        make_model("dqn", nogo_weight_decay=-1.0)


def test_bad_hold_action() -> None:
    with pytest.raises(ValueError, match=re.escape(bg._BAD_HOLD.format(3, 3))):
        make_model("ppo", hold_action=3)


def test_bad_logic_hook() -> None:
    model = make_model("dqn")
    with pytest.raises(TypeError, match=re.escape(bg._BAD_HOOK.format(42))):
        model.policy.set_logic_hook(42)
    model.policy.set_logic_hook(lambda obs, proposed: th.full((proposed.shape[0],), 1.5))
    with pytest.raises(ValueError, match=re.escape("Expected the logic loss to be 2 finite values in [0, 1]")):
        model.predict(LosingEnv().sample_obs(2), deterministic=True)


def test_bad_ltn_info() -> None:
    model = make_model("ppo")
    with pytest.raises(ValueError, match=re.escape(bg._BAD_INFO_LTN.format("sat_agg", 1.5))):
        model.policy.observe_infos([{"ltn": {"sat_agg": 1.5}}])


def test_bad_labels() -> None:
    model = make_model("ppo")
    obs = LosingEnv().sample_obs(2)
    with pytest.raises(ValueError, match=re.escape(bg._BAD_LABELS.format(2, [0.5, 1.0]))):
        model.policy.train_nogo(obs, np.array([1, 2]), [0.5, 1.0])


def test_callback_needs_basal_ganglia_policy() -> None:
    model = PPO("MultiInputPolicy", LosingEnv(), n_steps=16, batch_size=16)
    with pytest.raises(TypeError, match=re.escape(bg._NOT_BG_POLICY.format("MultiInputActorCriticPolicy"))):
        model.learn(16, callback=BasalGangliaCallback())


def test_gated_exploration_needs_basal_ganglia_policy() -> None:
    with pytest.raises(TypeError, match=re.escape(bg._NOT_BG_POLICY.format("MultiInputPolicy"))):
        BasalGangliaDQN("MultiInputPolicy", LosingEnv(), buffer_size=100)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"batch_size": 0}, bg._BAD_POSITIVE.format("batch_size", 0)),
        ({"train_freq": 1.5}, bg._BAD_POSITIVE.format("train_freq", 1.5)),
        ({"learning_starts": -1}, bg._BAD_NONNEG.format("learning_starts", -1)),
        ({"reward_threshold": -1.0}, bg._BAD_NONNEG.format("reward_threshold", -1.0)),
        ({"reward_std_k": 0.0}, bg._BAD_POSITIVE.format("reward_std_k", 0.0)),
        ({"violation_threshold": 1.0}, bg._BAD_VIOLATION.format(1.0)),
    ],
)
def test_bad_callback_arguments(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        BasalGangliaCallback(**kwargs)


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
