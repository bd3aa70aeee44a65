"""PrioritizedReplayBuffer / PrioritizedDictReplayBuffer: priorities, weights, SB3 integration."""

from __future__ import annotations

import re
from typing import Any

import numpy as np
import pytest
import torch as th
from gymnasium import spaces
from scipy.stats import chisquare
from stable_baselines3 import DQN, SAC, TD3
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.envs import SimpleMultiObsEnv
from stable_baselines3.common.type_aliases import DictReplayBufferSamples, ReplayBufferSamples

from replay import prioritized
from replay.prioritized import PrioritizedDictReplayBuffer, PrioritizedReplayBuffer
from replay.types import PrioritizedDictReplayBufferSamples, PrioritizedReplayBufferSamples

OBS_SPACE = spaces.Box(-np.inf, np.inf, shape=(2,), dtype=np.float32)
ACT_SPACE = spaces.Discrete(3)


def make_buffer(size: int = 16, n_envs: int = 1, **kwargs: Any) -> PrioritizedReplayBuffer:
    kwargs.setdefault("seed", 0)
    return PrioritizedReplayBuffer(size, OBS_SPACE, ACT_SPACE, device="cpu", n_envs=n_envs, **kwargs)


def add_steps(
    buffer: PrioritizedReplayBuffer,
    n: int,
    *,
    rewards: np.ndarray | None = None,
    violations: np.ndarray | None = None,
    start: int = 0,
) -> None:
    """Add ``n`` steps; observation of env e at step t is (start + t, e)."""
    n_envs = buffer.n_envs
    for t in range(n):
        obs = np.stack([np.array([start + t, e], dtype=np.float32) for e in range(n_envs)])
        reward = np.full(n_envs, 0.0 if rewards is None else rewards[t], dtype=np.float32)
        infos: list[dict[str, Any]] = [{} for _ in range(n_envs)]
        if violations is not None:
            infos = [{"ltn": {"violation": float(violations[t])}} for _ in range(n_envs)]
        buffer.add(obs, obs + 1, np.zeros((n_envs, 1)), reward, np.zeros(n_envs), infos)


# --------------------------------------------------------------------------- priorities


def test_sample_fields_extend_sb3_samples() -> None:
    n = len(ReplayBufferSamples._fields)
    assert PrioritizedReplayBufferSamples._fields[:n] == ReplayBufferSamples._fields
    assert PrioritizedDictReplayBufferSamples._fields[:n] == DictReplayBufferSamples._fields
    assert PrioritizedReplayBufferSamples._fields[n:] == ("weights", "indices", "action_sat")
    assert PrioritizedDictReplayBufferSamples._fields[n:] == ("weights", "indices", "action_sat")


def test_new_transitions_get_max_priority_or_their_known_part() -> None:
    buffer = make_buffer(lambda_logic=2.0, lambda_reward=0.5, eps=1e-6)
    add_steps(buffer, 3, rewards=np.array([0.0, 4.0, 0.0]), violations=np.array([0.0, 0.0, 0.9]))
    # step 0: max(1, ε) = 1; step 1: max(1, 0.5·4 + ε); step 2: max(2 + ε, 2·0.9 + ε) = 2 + ε
    np.testing.assert_allclose(buffer.priorities, [1.0, 2.0 + 1e-6, 2.0 + 1e-6])
    assert buffer.max_priority == pytest.approx(2.0 + 1e-6)
    np.testing.assert_allclose(buffer.violations[:3, 0], [0.0, 0.0, 0.9])
    np.testing.assert_allclose(buffer.tree.priorities[:3], buffer.priorities**0.6)


def test_update_priorities_formula() -> None:
    buffer = make_buffer(lambda_logic=2.0, lambda_reward=0.5, eps=0.01)
    add_steps(buffer, 4, rewards=np.array([1.0, -2.0, 0.0, 0.5]), violations=np.array([0.5, 0.0, 1.0, 0.25]))
    buffer.update_priorities(np.array([0, 1, 2, 3]), th.tensor([[-0.3], [0.1], [0.0], [2.0]]))
    expected = np.array([0.3, 0.1, 0.0, 2.0]) + 2.0 * np.array([0.5, 0, 1, 0.25]) + 0.5 * np.array([1, 2, 0, 0.5]) + 0.01
    np.testing.assert_allclose(buffer.priorities, expected, rtol=1e-6)
    np.testing.assert_allclose(buffer.tree.priorities[:4], expected**0.6, rtol=1e-6)
    assert buffer.mean_priority() == pytest.approx(expected.mean())


def test_duplicate_indices_last_error_wins() -> None:
    buffer = make_buffer(lambda_logic=0.0, lambda_reward=0.0, eps=1e-3)
    add_steps(buffer, 3)
    buffer.update_priorities([1, 1, 2, 1], [5.0, 6.0, 1.0, 7.0])
    np.testing.assert_allclose(buffer.priorities, [1.0, 7.001, 1.001])


def test_weights_match_brute_force() -> None:
    buffer = make_buffer(size=32, alpha=0.7, beta0=0.5, beta_steps=10**6)
    add_steps(buffer, 20)
    rng = np.random.default_rng(1)
    buffer.update_priorities(np.arange(20), rng.random(20) * 3)
    samples = buffer.sample(64)
    p = buffer.priorities
    prob = p**0.7 / (p**0.7).sum()
    n = len(p)
    w = (n * prob) ** -0.5
    expected = w[samples.indices] / w.max()
    np.testing.assert_allclose(samples.weights.numpy()[:, 0], expected, rtol=1e-5)
    assert samples.weights.shape == (64, 1)
    assert float(samples.weights.min()) > 0.0 and float(samples.weights.max()) <= 1.0
    # rows come from the sampled transitions: observation = (index, env)
    np.testing.assert_array_equal(samples.observations.numpy()[:, 0], samples.indices)


def test_sampling_follows_priorities() -> None:
    buffer = make_buffer(size=50, alpha=0.6, lambda_logic=0.0, lambda_reward=0.0, eps=1e-6)
    add_steps(buffer, 50)
    td = np.linspace(0.0, 4.0, 50)
    buffer.update_priorities(np.arange(50), td)
    counts = np.zeros(50, dtype=np.int64)
    for _ in range(100):
        counts += np.bincount(buffer.sample(256).indices, minlength=50)
    prob = (td + 1e-6) ** 0.6
    expected = prob / prob.sum() * counts.sum()
    live = expected > 5
    assert chisquare(counts[live], expected[live] * counts[live].sum() / expected[live].sum()).pvalue > 1e-3


def test_beta_anneals_by_sample_calls_then_by_progress() -> None:
    buffer = make_buffer(beta0=0.4, beta_final=1.0, beta_steps=10)
    add_steps(buffer, 4)
    assert buffer.beta == pytest.approx(0.4)
    for _ in range(5):
        buffer.sample(2)
    assert buffer.beta == pytest.approx(0.7)
    for _ in range(20):
        buffer.sample(2)
    assert buffer.beta == pytest.approx(1.0)
    buffer.set_progress(0.25)
    assert buffer.beta == pytest.approx(0.55)
    buffer.sample(2)
    assert buffer.beta == pytest.approx(0.55)


def test_no_global_rng() -> None:
    buffer = make_buffer(n_envs=2)
    add_steps(buffer, 8)
    state = np.random.get_state()[1].copy()  # read-only: the buffer must not draw from it
    buffer.sample(16)
    buffer._get_samples(np.arange(4))
    np.testing.assert_array_equal(np.random.get_state()[1], state)


def test_same_seed_same_samples() -> None:
    a, b = make_buffer(seed=7), make_buffer(seed=7)
    for buffer in (a, b):
        add_steps(buffer, 10)
        buffer.update_priorities(np.arange(10), np.arange(10.0))
    np.testing.assert_array_equal(a.sample(32).indices, b.sample(32).indices)


def test_multi_env_flat_indices() -> None:
    buffer = make_buffer(size=8, n_envs=2)  # 4 steps × 2 envs
    add_steps(buffer, 3)
    assert buffer.n_transitions == 6
    samples = buffer.get_samples(np.array([0, 1, 4, 5]))
    obs = samples.observations.numpy()
    np.testing.assert_array_equal(obs[:, 0], [0, 0, 2, 2])  # step
    np.testing.assert_array_equal(obs[:, 1], [0, 1, 0, 1])  # env
    buffer.update_priorities([5], [3.0])
    assert buffer.priorities[5] == pytest.approx(3.0 + 1e-6)


def test_wraparound_resets_slot() -> None:
    buffer = make_buffer(size=4, lambda_logic=2.0)
    add_steps(buffer, 4)
    buffer.update_priorities(np.arange(4), [0.0, 0.0, 0.0, 9.0])
    add_steps(buffer, 1, violations=np.array([0.5]), start=100)  # overwrites slot 0
    assert buffer.full and buffer.pos == 1
    assert buffer.violations[0, 0] == pytest.approx(0.5)
    assert buffer.priorities[0] == pytest.approx(buffer.max_priority)
    assert buffer.mean_priority() == pytest.approx(buffer.priorities.mean())


def test_timeouts_are_not_dones() -> None:
    buffer = make_buffer(size=4)
    obs = np.zeros((1, 2), dtype=np.float32)
    buffer.add(obs, obs, np.zeros((1, 1)), np.zeros(1), np.ones(1), [{"TimeLimit.truncated": True}])
    buffer.add(obs, obs, np.zeros((1, 1)), np.zeros(1), np.ones(1), [{}])
    assert buffer.get_samples(np.array([0, 1])).dones.numpy()[:, 0].tolist() == [0.0, 1.0]


def test_reset_forgets_priorities() -> None:
    buffer = make_buffer()
    add_steps(buffer, 5)
    buffer.update_priorities([0], [50.0])
    buffer.reset()
    assert buffer.n_transitions == 0 and buffer.tree.total == 0.0 and buffer.max_priority == 1.0
    with pytest.raises(ValueError, match=re.escape(prioritized._EMPTY_BUFFER)):
        buffer.sample(4)


def test_dict_buffer_samples() -> None:
    obs_space = spaces.Dict({"a": spaces.Box(-1, 1, (3,), np.float32), "b": spaces.Discrete(4)})
    buffer = PrioritizedDictReplayBuffer(10, obs_space, ACT_SPACE, device="cpu", seed=0)
    for t in range(6):
        obs = {"a": np.full((1, 3), t / 10, np.float32), "b": np.array([t % 4])}
        infos = [{"ltn": {"violation": 0.5}}]
        buffer.add(obs, obs, np.array([[1]]), np.array([1.0]), np.array([0.0]), infos)
    samples = buffer.sample(8)
    assert isinstance(samples, PrioritizedDictReplayBufferSamples)
    assert set(samples.observations) == {"a", "b"}
    np.testing.assert_allclose(samples.observations["a"].numpy()[:, 0], samples.indices / 10, rtol=1e-6)
    buffer.update_priorities(samples.indices, np.zeros(8))
    assert buffer.violations[0, 0] == pytest.approx(0.5)


# --------------------------------------------------------------------------- errors


def test_optimize_memory_usage_rejected() -> None:
    with pytest.raises(ValueError, match=re.escape(prioritized._OPTIMIZE_MEMORY)):
        make_buffer(optimize_memory_usage=True, handle_timeout_termination=False)


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"alpha": -0.1}, ValueError, "Expected `alpha` to be a finite number >= 0, got -0.1"),
        ({"alpha": float("inf")}, ValueError, "Expected `alpha` to be a finite number >= 0, got inf"),
        ({"alpha": True}, TypeError, "Expected `alpha` to be a finite number >= 0, got True"),
        ({"beta0": 1.5}, ValueError, "Expected `beta0` to be a number in [0, 1], got 1.5"),
        ({"beta_final": float("nan")}, ValueError, "Expected `beta_final` to be a number in [0, 1], got nan"),
        ({"beta_final": "1"}, TypeError, "Expected `beta_final` to be a number in [0, 1], got '1'"),
        ({"beta_steps": 0}, ValueError, "Expected `beta_steps` to be an int >= 1, got 0"),
        ({"beta_steps": 1000.0}, TypeError, "Expected `beta_steps` to be an int >= 1, got 1000.0"),
        ({"lambda_logic": -1.0}, ValueError, "Expected `lambda_logic` to be a finite number >= 0, got -1.0"),
        ({"lambda_reward": -1.0}, ValueError, "Expected `lambda_reward` to be a finite number >= 0, got -1.0"),
        ({"eps": 0.0}, ValueError, "Expected `eps` to be a finite number > 0, got 0.0"),
        ({"seed": "x"}, TypeError, "Expected `seed` to be an int or None, got 'x'"),
    ],
)
def test_bad_constructor_args(kwargs: dict[str, Any], error: type, message: str) -> None:
    with pytest.raises(error, match=re.escape(message)):
        make_buffer(**kwargs)


def test_bad_progress() -> None:
    with pytest.raises(ValueError, match=re.escape("Expected `fraction` to be a number in [0, 1], got 1.5")):
        make_buffer().set_progress(1.5)
    with pytest.raises(TypeError, match=re.escape("Expected `fraction` to be a number in [0, 1], got None")):
        make_buffer().set_progress(None)  # type: ignore[arg-type]


@pytest.mark.parametrize("violation", [1.5, -0.1, float("nan")])
def test_bad_violation(violation: float) -> None:
    buffer = make_buffer()
    with pytest.raises(ValueError, match=re.escape(prioritized._BAD_VIOLATION.format(violation, 0))):
        add_steps(buffer, 1, violations=np.array([violation]))
    assert buffer.pos == 0  # nothing stored


def test_bad_ltn_info() -> None:
    buffer = make_buffer()
    obs = np.zeros((1, 2), dtype=np.float32)
    with pytest.raises(TypeError, match=re.escape(prioritized._BAD_LTN_INFO.format(0.3, 0))):
        buffer.add(obs, obs, np.zeros((1, 1)), np.zeros(1), np.zeros(1), [{"ltn": 0.3}])


def test_bad_infos_length() -> None:
    buffer = make_buffer(n_envs=2)
    obs = np.zeros((2, 2), dtype=np.float32)
    with pytest.raises(ValueError, match=re.escape(prioritized._BAD_INFOS.format(2, 1))):
        buffer.add(obs, obs, np.zeros((2, 1)), np.zeros(2), np.zeros(2), [{}])


def test_bad_update_indices() -> None:
    buffer = make_buffer()
    add_steps(buffer, 3)
    with pytest.raises(ValueError, match=re.escape(prioritized._BAD_INDEX.format(3, 3))):
        buffer.update_priorities([0, 3], [1.0, 1.0])
    with pytest.raises(TypeError, match=re.escape(prioritized._BAD_INDEX_TYPE.format("float64"))):
        buffer.update_priorities(np.array([0.0]), [1.0])
    with pytest.raises(ValueError, match=re.escape(prioritized._TD_MISMATCH.format(2, 1))):
        buffer.update_priorities([0, 1], [1.0])
    with pytest.raises(ValueError, match=re.escape(prioritized._NONFINITE_TD.format(float("nan"), 1))):
        buffer.update_priorities([0, 1], [1.0, float("nan")])


def test_bad_batch_size() -> None:
    buffer = make_buffer()
    add_steps(buffer, 3)
    with pytest.raises(ValueError, match=re.escape("Expected `batch_size` to be an int >= 1, got 0")):
        buffer.sample(0)
    with pytest.raises(TypeError, match=re.escape("Expected `batch_size` to be an int >= 1, got 2.0")):
        buffer.sample(2.0)  # type: ignore[arg-type]


# --------------------------------------------------------------------------- SB3 integration


def test_save_and_load_replay_buffer_round_trips_priorities(tmp_path: Any) -> None:
    kwargs: dict[str, Any] = dict(
        learning_starts=50, buffer_size=500, replay_buffer_class=PrioritizedReplayBuffer, seed=0, device="cpu"
    )
    model = DQN("MlpPolicy", "CartPole-v1", replay_buffer_kwargs={"seed": 3}, **kwargs)
    model.learn(150)
    buffer = model.replay_buffer
    buffer.update_priorities(np.arange(100), np.linspace(0.0, 5.0, 100))
    model.save_replay_buffer(tmp_path / "buffer.pkl")

    other = DQN("MlpPolicy", "CartPole-v1", **kwargs)
    other.load_replay_buffer(tmp_path / "buffer.pkl")
    loaded = other.replay_buffer
    assert isinstance(loaded, PrioritizedReplayBuffer)
    np.testing.assert_array_equal(loaded.priorities, buffer.priorities)
    np.testing.assert_array_equal(loaded.tree.priorities, buffer.tree.priorities)
    assert loaded.tree.total == buffer.tree.total
    assert loaded.max_priority == buffer.max_priority
    assert loaded.mean_priority() == buffer.mean_priority()
    np.testing.assert_array_equal(loaded.sample(32).indices, buffer.sample(32).indices)


def _learn(model_cls: type, env: Any, **kwargs: Any) -> Any:
    model = model_cls(
        "MlpPolicy" if not isinstance(env, SimpleMultiObsEnv) else "MultiInputPolicy",
        env,
        learning_starts=100,
        batch_size=32,
        buffer_size=1000,
        replay_buffer_kwargs={"seed": 0},
        seed=0,
        device="cpu",
        **kwargs,
    )
    model.learn(300)
    samples = model.replay_buffer.sample(16)
    assert float(samples.weights.min()) > 0.0 and float(samples.weights.max()) <= 1.0
    return model


def test_dqn() -> None:
    _learn(DQN, "CartPole-v1", replay_buffer_class=PrioritizedReplayBuffer)


def test_dqn_two_envs() -> None:
    model = _learn(DQN, make_vec_env("CartPole-v1", n_envs=2, seed=0), replay_buffer_class=PrioritizedReplayBuffer)
    assert model.replay_buffer.n_envs == 2


def test_dqn_dict_observations() -> None:
    _learn(DQN, SimpleMultiObsEnv(random_start=False), replay_buffer_class=PrioritizedDictReplayBuffer)


def test_sac() -> None:
    _learn(SAC, "Pendulum-v1", replay_buffer_class=PrioritizedReplayBuffer, policy_kwargs={"net_arch": [32, 32]})


def test_td3() -> None:
    _learn(TD3, "Pendulum-v1", replay_buffer_class=PrioritizedReplayBuffer, policy_kwargs={"net_arch": [32, 32]})


def test_qrdqn() -> None:
    sb3_contrib = pytest.importorskip("sb3_contrib")
    _learn(sb3_contrib.QRDQN, "CartPole-v1", replay_buffer_class=PrioritizedReplayBuffer)


def test_boost_priorities_adds_to_raw_priority() -> None:
    import gymnasium as gym

    from replay import PrioritizedReplayBuffer

    space = gym.spaces.Box(-1.0, 1.0, (2,), np.float32)
    buf = PrioritizedReplayBuffer(16, space, gym.spaces.Discrete(2), device="cpu", seed=0)
    for _ in range(4):
        buf.add(np.zeros(2), np.zeros(2), np.array([0]), np.array([0.0]), np.array([False]), [{}])
    before = buf.priorities.copy()
    buf.boost_priorities(np.array([1, 3, 3]), 2.5)
    np.testing.assert_allclose(buf.priorities, before + np.array([0.0, 2.5, 0.0, 2.5]))
    assert buf.mean_priority() == pytest.approx(buf.priorities.mean())
    with pytest.raises(ValueError, match=re.escape("Expected `amount` to be a finite number >= 0, got -1.0")):
        buf.boost_priorities(np.array([0]), -1.0)
    with pytest.raises(TypeError, match=re.escape("Expected `amount` to be a finite number >= 0, got '1'")):
        buf.boost_priorities(np.array([0]), "1")  # type: ignore[arg-type]
