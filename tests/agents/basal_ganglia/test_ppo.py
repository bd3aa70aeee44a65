"""JanusPPO: MaskablePPO + λ_logic · mean_i Σ_a π_θ(a|s_i)(1 − SatAgg(s_i, a)) on the shield's per-action scores."""

from __future__ import annotations

import copy
from collections.abc import Callable
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import pytest
import torch as th
from sb3_contrib import MaskablePPO
from sb3_contrib.common.maskable.buffers import MaskableDictRolloutBuffer
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.monitor import Monitor
from stable_baselines3.common.vec_env import DummyVecEnv

import envs_registry  # noqa: F401
from agents.basal_ganglia import BasalGangliaMaskablePolicy, JanusPPO, uses_action_masks
from agents.basal_ganglia.ppo import DEFAULT_LAMBDA_LOGIC, evaluate_actions_with_probs
from replay.rollout import LogicDictRolloutBuffer
from wrappers import LTNShield
from wrappers.rules import TradingKnowledgeBase
from wrappers.shield_kernel import DEFAULT_THRESHOLD, HOLD

N_STEPS, N_ENVS, EPISODE_STEPS, BUY = 64, 2, 40, 1
# cash_reserve = 1 (cash must stay ≥ 100% of equity after a buy): every buy that leaves the book long breaks a rule;
# graded_margin = 1e-9: graded truths (wrappers/rules.py) as good as crisp, so action_sat < 1 marks a rejected action
REJECT_BUYS = {"knowledge_base": TradingKnowledgeBase(cash_reserve=1.0, graded_margin=1e-9)}


class SatRecorder(gym.Wrapper):
    """Just outside the shield: before each step, the KB evaluated afresh on every action in the current state."""

    def __init__(self, env: LTNShield) -> None:
        super().__init__(env)
        self.rows: list[np.ndarray] = []

    def step(self, action: Any) -> Any:
        self.rows.append(self.env.evaluate_candidates().graded_sat.copy())  # type: ignore[attr-defined]
        return self.env.step(action)


def shielded_envs(n: int = N_ENVS, seed: int = 0, record: bool = False, **shield: Any) -> DummyVecEnv:
    def make(rank: int) -> Callable[[], gym.Env]:
        def thunk() -> gym.Env:
            env: gym.Env = LTNShield(gym.make("Janus-LOB-v0", episode_steps=EPISODE_STEPS), **shield)
            env = Monitor(SatRecorder(env) if record else env)
            env.reset(seed=seed + rank)
            return env

        return thunk

    return DummyVecEnv([make(i) for i in range(n)])


def make_ppo(env: Any, cls: type = JanusPPO, seed: int = 0, **kwargs: Any) -> Any:
    kwargs = {"n_steps": N_STEPS, "batch_size": N_STEPS, "n_epochs": 2, "seed": seed, "device": "cpu",
              "policy_kwargs": {"net_arch": [16]}, **kwargs}
    return cls(BasalGangliaMaskablePolicy, env, **kwargs)


class RolloutSnapshot(BaseCallback):
    """At each rollout's end (before training): copies of the buffer's arrays and the policy's parameters."""

    def __init__(self) -> None:
        super().__init__()
        self.rollouts: list[dict[str, Any]] = []

    def _on_step(self) -> bool:
        return True

    def _on_rollout_end(self) -> None:
        buffer = self.model.rollout_buffer
        self.rollouts.append({
            "observations": copy.deepcopy(buffer.observations),
            "action_masks": buffer.action_masks.copy(),
            "episode_starts": buffer.episode_starts.copy(),
            "action_sat": None if buffer.action_sat is None else buffer.action_sat.copy(),
            "policy": copy.deepcopy(self.model.policy.state_dict()),
        })


def flat(array: np.ndarray) -> np.ndarray:
    return array.reshape(-1, *array.shape[2:])


def parameters(model: Any) -> list[th.Tensor]:
    return [p.detach().clone() for p in model.policy.parameters()]


# ----------------------------------------------------------------------------- (a) the rows
def test_rollout_rows_are_the_shields_scores_of_the_state_each_action_was_decided_in() -> None:
    """Row (t, e) of the rollout equals the knowledge base evaluated independently on env e's state right before
    step t (``evaluate_candidates``, recorded outside the shield), across episode ends (autoreset), and the masks
    the action was drawn under are that row's ``SatAgg ≥ τ`` (HOLD always allowed)."""
    env = shielded_envs(record=True, knowledge_base=TradingKnowledgeBase(cash_reserve=0.5))
    model = make_ppo(env)
    snapshot = RolloutSnapshot()
    model.learn(2 * N_STEPS * N_ENVS, callback=snapshot)
    assert len(snapshot.rollouts) == 2
    recorded = [np.array(env.envs[e].env.rows) for e in range(N_ENVS)]  # Monitor → SatRecorder
    for k, rollout in enumerate(snapshot.rollouts):
        assert rollout["episode_starts"][1:].any()  # an episode ended inside the rollout
        expected = np.stack([recorded[e][k * N_STEPS:(k + 1) * N_STEPS] for e in range(N_ENVS)], axis=1)
        np.testing.assert_allclose(rollout["action_sat"], expected, rtol=0, atol=1e-6)  # float32 rows
        masks = expected >= DEFAULT_THRESHOLD
        masks[..., HOLD] = True
        np.testing.assert_array_equal(rollout["action_masks"].astype(bool), masks)
    masks = np.concatenate([r["action_masks"].reshape(-1, 3) for r in snapshot.rollouts])
    assert 0 < masks[:, BUY].mean() < 1  # the scores change with the state, so the alignment is tested


def test_no_shield_no_rows_no_term(losing_env_cls: type) -> None:
    """Without a shield (masks, no ``info["ltn"]``) the buffer keeps no rows and nothing is logged."""
    model = make_ppo(losing_env_cls(), lambda_logic=5.0)
    model.learn(N_STEPS)
    assert isinstance(model.rollout_buffer, LogicDictRolloutBuffer) and model.rollout_buffer.action_sat is None
    assert "train/logic_loss" not in model.logger.name_to_value


# ----------------------------------------------------------------------------- (b) the term
@pytest.mark.parametrize("threshold", [0.5, DEFAULT_THRESHOLD], ids=["buys allowed", "buys masked"])
def test_logic_term_is_the_expected_violation_of_the_masked_policy_by_hand(threshold: float) -> None:
    """One epoch on one minibatch (the whole rollout): the logged L_logic is mean_i Σ_a π(a|s_i)(1 − SatAgg) with π
    SB3's own masked distribution of the pre-update policy, and the loss is the λ = 0 loss plus λ·L_logic. With the
    default τ the rejected buys are masked (π = 0) and add nothing."""
    lam, logs = 5.0, {}
    for name, value in (("off", 0.0), ("on", lam)):
        env = shielded_envs(threshold=threshold, **REJECT_BUYS)
        model = make_ppo(env, n_epochs=1, batch_size=N_STEPS * N_ENVS, lambda_logic=value)
        snapshot = RolloutSnapshot()
        model.learn(N_STEPS * N_ENVS, callback=snapshot)
        logs[name] = dict(model.logger.name_to_value)
    rollout = snapshot.rollouts[0]
    policy = model.policy
    policy.load_state_dict(rollout["policy"])  # back to the parameters the rollout was trained from
    obs = {key: th.as_tensor(flat(value)) for key, value in rollout["observations"].items()}
    masks = flat(rollout["action_masks"]).astype(bool)
    with th.no_grad():
        probs = policy.get_distribution(obs, action_masks=masks).distribution.probs.double().numpy()
    action_sat = flat(rollout["action_sat"]).astype(np.float64)
    rejected = action_sat[:, BUY] < 1.0
    allowed = threshold < action_sat[rejected, BUY].min()
    assert rejected.mean() > 0.2
    assert masks[rejected, BUY].all() if allowed else not masks[rejected, BUY].any()
    by_hand = float(np.mean(np.sum(probs * (1.0 - action_sat), axis=1)))
    assert (by_hand > 0.01) == allowed and "train/logic_loss" not in logs["off"]
    assert logs["on"]["train/logic_loss"] == pytest.approx(by_hand, rel=1e-5, abs=1e-9)
    assert logs["on"]["train/loss"] == pytest.approx(logs["off"]["train/loss"] + lam * by_hand, rel=1e-5)


@pytest.mark.parametrize("share", [True, False])
def test_one_pass_evaluation_is_sb3_contribs_evaluate_actions(share: bool) -> None:
    """``evaluate_actions_with_probs`` returns exactly (bit for bit) what ``evaluate_actions`` does, plus π."""
    model = make_ppo(shielded_envs(**REJECT_BUYS), policy_kwargs={"net_arch": [16], "share_features_extractor": share})
    model.learn(N_STEPS * N_ENVS)
    samples = next(model.rollout_buffer.get(32))
    actions = samples.actions.long().flatten()
    with th.no_grad():
        want = model.policy.evaluate_actions(samples.observations, actions, action_masks=samples.action_masks)
        got = evaluate_actions_with_probs(model.policy, samples.observations, actions, samples.action_masks)
        reference = model.policy.get_distribution(samples.observations, samples.action_masks.numpy())
    for a, b in zip(got[:3], want, strict=True):
        assert th.equal(a, b)
    th.testing.assert_close(got[3], reference.distribution.probs)


# ----------------------------------------------------------------------------- (c) it acts
def test_the_logical_loss_lowers_the_probability_of_a_rejected_action() -> None:
    """Buys break a rule in (almost) every state, unmasked (τ = 0.05): with a large λ the policy's probability of
    BUY falls far below the λ = 0 run from the same seed, on states neither run trained on."""
    probe_env = shielded_envs(n=1, seed=100, threshold=0.05, **REJECT_BUYS)
    rows = [probe_env.reset()]
    for _ in range(49):
        rows.append(probe_env.step(np.array([0]))[0])
    probe = {key: np.concatenate([row[key] for row in rows]) for key in rows[0]}
    p_buy = {}
    for lam in (0.0, 20.0):
        model = make_ppo(shielded_envs(threshold=0.05, **REJECT_BUYS), lambda_logic=lam, n_epochs=8,
                         learning_rate=3e-3)
        obs, _ = model.policy.obs_to_tensor(probe)
        with th.no_grad():
            start = model.policy.get_distribution(obs).distribution.probs[:, BUY].mean().item()
        model.learn(4 * N_STEPS * N_ENVS)
        with th.no_grad():
            p_buy[lam] = model.policy.get_distribution(obs).distribution.probs[:, BUY].mean().item()
    assert start == pytest.approx(1 / 3, abs=0.05)
    assert p_buy[20.0] < 0.5 * p_buy[0.0] and p_buy[20.0] < 0.1, p_buy


# ----------------------------------------------------------------------------- (d) determinism, SB3 equivalence
def test_same_seed_same_parameters() -> None:
    runs = []
    for _ in range(2):
        model = make_ppo(shielded_envs(threshold=0.5, **REJECT_BUYS), lambda_logic=10.0)
        model.learn(2 * N_STEPS * N_ENVS)
        runs.append(parameters(model))
    assert all(th.equal(a, b) for a, b in zip(*runs, strict=True))


@pytest.mark.parametrize(("lam", "shield"), [(0.0, True), (5.0, False)], ids=["lambda 0", "no shield"])
def test_without_the_term_it_trains_exactly_as_maskable_ppo(lam: float, shield: bool, losing_env_cls: type) -> None:
    """λ = 0, or no SatAgg: the copied ``train`` is sb3-contrib's, bit for bit (this fails when sb3-contrib changes
    its ``train``: update the copy)."""
    runs = []
    for cls in (MaskablePPO, JanusPPO):
        env = shielded_envs(**REJECT_BUYS) if shield else losing_env_cls()
        # per-step values, as MaskablePPO: batched ones differ in the last bits on this MLP (tested below)
        model = make_ppo(env, cls=cls, **({"lambda_logic": lam, "batched_values": False} if cls is JanusPPO else {}))
        model.learn(2 * N_STEPS * N_ENVS)
        runs.append(parameters(model))
    assert all(th.equal(a, b) for a, b in zip(*runs, strict=True))


class RolloutArrays(BaseCallback):
    """The first rollout's stored arrays at its end, before any training."""

    def __init__(self) -> None:
        super().__init__()
        self.arrays: dict[str, np.ndarray] = {}

    def _on_step(self) -> bool:
        return True

    def _on_rollout_end(self) -> None:
        if not self.arrays:
            buffer = self.model.rollout_buffer
            self.arrays = {k: getattr(buffer, k).copy() for k in ("actions", "log_probs", "values", "returns",
                                                                  "advantages")}
            obs = {k: th.as_tensor(flat(v)) for k, v in buffer.observations.items()}
            with th.no_grad():
                self.arrays["critic"] = self.model.policy.predict_values(obs).numpy().reshape(buffer.values.shape)


def test_batched_values_are_the_critics_values_of_the_rollout() -> None:
    """``batched_values``: the steps skip the critic (same actions and log-probs, bit for bit, as the per-step
    run), and the stored values are the critic's on the stored observations, computed once at the end."""
    runs = []
    for batched in (False, True):
        arrays = RolloutArrays()
        make_ppo(shielded_envs(), batched_values=batched).learn(N_STEPS * N_ENVS, callback=arrays)
        runs.append(arrays.arrays)
    per_step, batched = runs
    for key in ("actions", "log_probs"):
        np.testing.assert_array_equal(batched[key], per_step[key])
    assert np.isfinite(batched["values"]).all()
    np.testing.assert_array_equal(batched["values"], batched["critic"])  # one pass: exactly the critic's values
    for key in ("values", "returns", "advantages"):  # the per-step pass: the same up to the batch's float rounding
        np.testing.assert_allclose(batched[key], per_step[key], rtol=1e-5, atol=1e-6)


def test_batched_values_skip_the_critic_only_during_the_rollout() -> None:
    model = make_ppo(shielded_envs())
    model.learn(N_STEPS * N_ENVS)
    assert model.policy.defer_values is False and model.rollout_buffer._values_of is None
    obs = {k: th.as_tensor(np.stack([v.sample() for _ in range(3)])) for k, v in model.observation_space.items()}
    with th.no_grad():
        _, values, _ = model.policy(obs)
    assert th.isfinite(values).all()


# ----------------------------------------------------------------------------- API
@pytest.mark.parametrize(("value", "error"), [(-0.5, ValueError), (float("nan"), ValueError), ("2", TypeError)])
def test_bad_lambda_logic(value: Any, error: type, losing_env_cls: type) -> None:
    with pytest.raises(error, match="lambda_logic"):
        make_ppo(losing_env_cls(), lambda_logic=value)


def test_save_load_and_models_saved_by_maskable_ppo(tmp_path: Path, losing_env_cls: type) -> None:
    model = make_ppo(losing_env_cls(), lambda_logic=0.7)
    assert make_ppo(losing_env_cls()).lambda_logic == DEFAULT_LAMBDA_LOGIC == 2.0
    model.save(tmp_path / "janus")
    loaded = JanusPPO.load(tmp_path / "janus", env=losing_env_cls(), device="cpu")
    assert loaded.lambda_logic == 0.7 and isinstance(loaded.rollout_buffer, LogicDictRolloutBuffer)
    make_ppo(losing_env_cls(), cls=MaskablePPO).save(tmp_path / "maskable")
    legacy = JanusPPO.load(tmp_path / "maskable", env=losing_env_cls(), device="cpu")
    assert legacy.lambda_logic == DEFAULT_LAMBDA_LOGIC and isinstance(legacy.rollout_buffer, LogicDictRolloutBuffer)
    custom = make_ppo(losing_env_cls(), rollout_buffer_class=MaskableDictRolloutBuffer)
    assert isinstance(custom.rollout_buffer, LogicDictRolloutBuffer)  # sb3-contrib's default is upgraded


def test_janus_ppo_config_builds_janus_ppo_with_lambda_logic() -> None:
    from agents.app import config

    params = config.resolve_hyperparams("janus-ppo", "Janus-LOB-v0",
                                        overrides=["shield_training=enforce", "lambda_logic=0.25"])
    params["policy_kwargs"] = {"net_arch": [8]}
    env = config.make_vec_env("Janus-LOB-v0", params, seed=0, n_envs=1)
    model = config.build_model("janus-ppo", env, params, seed=0, tensorboard_log=None)
    assert type(model) is config.algo_class("janus-ppo") is JanusPPO and model.lambda_logic == 0.25
    assert isinstance(model.policy, BasalGangliaMaskablePolicy)
    assert config.resolve_hyperparams("janus-ppo", "Janus-LOB-v0")["lambda_logic"] == 0.0  # trained without the shield
    assert config.resolve_hyperparams("janus-dqn", "Janus-LOB-v0")["lambda_logic"] == DEFAULT_LAMBDA_LOGIC


# ----------------------------------------------------------------------------- (e) trained without masks
class Overrides(BaseCallback):
    """Counts the shield's overrides (``info["ltn"]["overridden"]``) in the training envs."""

    def __init__(self) -> None:
        super().__init__()
        self.count = 0

    def _on_step(self) -> bool:
        self.count += sum(bool(info["ltn"]["overridden"]) for info in self.locals["infos"])
        return True


def test_without_masks_it_proposes_every_action_and_the_shield_overrides() -> None:
    """``action_masking=False``: rollouts draw from the whole distribution (the buffer's masks all True), rejected
    buys are proposed and the shield replaces them; the SatAgg rows are kept, so the logical loss acts on every
    action. With masks the same env never overrides: the masked policy cannot propose a rejected buy."""
    runs = {}
    for masking in (True, False):
        model = make_ppo(shielded_envs(**REJECT_BUYS), action_masking=masking)
        snapshot, overrides = RolloutSnapshot(), Overrides()
        model.learn(2 * N_STEPS * N_ENVS, callback=[snapshot, overrides])
        masks = np.concatenate([r["action_masks"].reshape(-1, 3) for r in snapshot.rollouts]).astype(bool)
        runs[masking] = (model, masks, overrides.count, snapshot.rollouts[-1]["action_sat"])
    masked_model, masks, count, sat = runs[True]
    assert uses_action_masks(masked_model) and count == 0 and not masks[:, BUY].all()
    model, masks, count, sat = runs[False]
    assert not uses_action_masks(model) and masks.all() and count > 0
    assert sat is not None and (sat[..., BUY] < DEFAULT_THRESHOLD).any()
    assert "train/logic_loss" in model.logger.name_to_value


def test_action_masking_is_saved_and_checked(tmp_path: Path, losing_env_cls: type) -> None:
    make_ppo(losing_env_cls(), action_masking=False).save(tmp_path / "free")
    assert JanusPPO.load(tmp_path / "free", env=losing_env_cls(), device="cpu").action_masking is False
    make_ppo(losing_env_cls(), cls=MaskablePPO).save(tmp_path / "maskable")
    assert uses_action_masks(JanusPPO.load(tmp_path / "maskable", env=losing_env_cls(), device="cpu"))
    with pytest.raises(TypeError, match="action_masking"):
        make_ppo(losing_env_cls(), action_masking="no")


def test_evaluation_passes_masks_only_to_a_model_trained_with_them(monkeypatch: pytest.MonkeyPatch) -> None:
    from agents.app.evaluation import agent_policy, make_eval_env

    env = make_eval_env("Janus-LOB-v0", {"episode_steps": EPISODE_STEPS}, shield=True, breakers=False)
    obs, _ = env.reset(seed=0)
    for masking in (True, False):
        model = make_ppo(shielded_envs(n=1), action_masking=masking)
        seen: list[Any] = []
        predict = model.predict
        monkeypatch.setattr(model, "predict",
                            lambda o, **kw: (seen.append(kw.get("action_masks")), predict(o, **kw))[1])
        agent_policy(model, env)(obs)
        assert (seen[0] is not None) is masking


def test_config_action_masking() -> None:
    from agents.app import config

    params = config.resolve_hyperparams("janus-ppo", "Janus-LOB-v0", overrides=["action_masking=false"])
    params["policy_kwargs"] = {"net_arch": [8]}
    env = config.make_vec_env("Janus-LOB-v0", params, seed=0, n_envs=1)
    assert config.build_model("janus-ppo", env, params, seed=0, tensorboard_log=None).action_masking is False
    with pytest.raises(config.ConfigError, match="action_masking"):
        config.resolve_hyperparams("janus-ppo", "Janus-LOB-v0", overrides=["action_masking=maybe"])
    with pytest.raises(config.ConfigError, match="action_masking' for ppo"):  # JanusPPO's alone
        config.resolve_hyperparams("ppo", "Janus-LOB-v0", overrides=["action_masking=false"])


def test_config_shield_training_builds_the_training_envs_it_names(tmp_path: Path) -> None:
    """enforce: the deployment shield in training; observe: a shield that only scores; none (the janus-ppo
    default): no shield in training (JanusPPO then learns without masks) and no logical loss allowed."""
    from agents.app import config
    from agents.basal_ganglia import find_shield

    for value, enforce in (("observe", False), ("enforce", True)):
        params = config.resolve_hyperparams("janus-ppo", "Janus-LOB-v0",
                                            overrides=[f"shield_training={value}", "lambda_logic=2"])
        env = config.make_vec_env("Janus-LOB-v0", params, seed=0, n_envs=2)
        assert env.get_attr("enforce") == [enforce, enforce]
    default = config.resolve_hyperparams("janus-ppo", "Janus-LOB-v0")
    assert (default["shield"], default["shield_training"], default["lambda_logic"]) == (True, "none", 0.0)
    default["policy_kwargs"] = {"net_arch": [8]}
    env = config.make_vec_env("Janus-LOB-v0", default, seed=0, n_envs=1)
    assert find_shield(env.envs[0]) is None
    model = config.build_model("janus-ppo", env, default, seed=0, tensorboard_log=None)
    model.learn(64)  # no masks to give: learns without them, and keeps deciding with masks where a shield gives some
    assert model.num_timesteps >= 64 and uses_action_masks(model)
    with pytest.raises(config.ConfigError, match="lambda_logic = 2 needs the shield's scores in training"):
        config.resolve_hyperparams("janus-ppo", "Janus-LOB-v0", overrides=["lambda_logic=2"])
    with pytest.raises(config.ConfigError, match="shield_training"):
        config.resolve_hyperparams("janus-ppo", "Janus-LOB-v0", overrides=["shield_training=maybe"])
    with pytest.raises(config.ConfigError, match="shield_training"):
        config.resolve_hyperparams("ppo", "Janus-LOB-v0", overrides=["shield_training=observe"])
