"""Sharp-wave-ripple replay and the sleep-phase callback."""

from __future__ import annotations

import csv
import math
import re
import sys
import types
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
import torch as th
from gymnasium import spaces
from hypothesis import given, settings
from hypothesis import strategies as st
from stable_baselines3 import DQN, SAC
from stable_baselines3.common.logger import configure

from replay import swr
from replay.prioritized import PrioritizedReplayBuffer
from replay.swr import SleepPhaseCallback, sample_sequences, swr_replay
from replay.types import SWRReport


@pytest.fixture(autouse=True, scope="module")
def _single_torch_thread() -> Iterator[None]:
    """Tiny MLPs run fastest on one thread; more threads thrash on a busy 2-core CI box."""
    previous = th.get_num_threads()
    th.set_num_threads(1)
    yield
    th.set_num_threads(previous)


def make_model(*, steps: int = 400, seed: int = 0, **kwargs: Any) -> DQN:
    """A DQN whose prioritized buffer holds ``steps`` random CartPole steps, untrained."""
    th.manual_seed(seed)
    kwargs.setdefault("learning_starts", 10**9)
    model = DQN(
        "MlpPolicy",
        "CartPole-v1",
        buffer_size=2000,
        learning_rate=1e-3,
        replay_buffer_class=PrioritizedReplayBuffer,
        replay_buffer_kwargs={"seed": seed},
        policy_kwargs={"net_arch": [32, 32]},
        seed=seed,
        device="cpu",
        **kwargs,
    )
    model.learn(steps)
    return model


@pytest.fixture(scope="module")
def filled_model() -> DQN:
    return make_model()


def replay(model: DQN, **kwargs: Any) -> SWRReport:
    kwargs.setdefault("n_sequences", 8)
    kwargs.setdefault("seq_len", 32)
    kwargs.setdefault("budget_s", 30.0)
    kwargs.setdefault("rng", np.random.default_rng(0))
    return swr_replay(model, model.replay_buffer, **kwargs)


# --------------------------------------------------------------------------- sequences


@settings(max_examples=100, deadline=None)
@given(
    buffer_size=st.integers(1, 30),
    n_envs=st.integers(1, 3),
    n_steps=st.integers(1, 80),
    seq_len=st.integers(1, 30),
    seed=st.integers(0, 2**16),
)
def test_sequences_are_consecutive_and_never_cross_the_write_position(
    buffer_size: int, n_envs: int, n_steps: int, seq_len: int, seed: int
) -> None:
    buffer = PrioritizedReplayBuffer(
        buffer_size * n_envs, spaces.Box(-1, 1, (1,)), spaces.Discrete(2), device="cpu", n_envs=n_envs, seed=seed
    )
    rng = np.random.default_rng(seed)
    obs = np.zeros((n_envs, 1), dtype=np.float32)
    for _ in range(n_steps):
        buffer.add(obs, obs, np.zeros((n_envs, 1)), np.zeros(n_envs), np.zeros(n_envs), [{}] * n_envs)
    buffer.update_priorities(np.arange(buffer.n_transitions), rng.random(buffer.n_transitions) * 5)
    if buffer.size() < seq_len:
        with pytest.raises(ValueError, match=re.escape(swr._SHORT_BUFFER.format(buffer.size(), seq_len))):
            sample_sequences(buffer, 4, seq_len, rng)
        return
    seqs = sample_sequences(buffer, 16, seq_len, rng)
    assert seqs.shape == (16, seq_len)
    assert ((seqs >= 0) & (seqs < buffer.n_transitions)).all()
    rows, cols = np.divmod(seqs, n_envs)
    assert (cols == cols[:, :1]).all()  # one env per sequence
    assert ((rows[:, 1:] - rows[:, :-1]) % buffer.buffer_size == 1 % buffer.buffer_size).all()
    # stepping onto the write position from the newest transition = crossing it
    assert not (rows[:, 1:] == buffer.pos).any() or buffer_size == 1


# --------------------------------------------------------------------------- replay


def test_updates_per_sequence_follow_compression(filled_model: DQN) -> None:
    report = replay(filled_model, n_sequences=4, seq_len=32, compression=15.0)
    assert report.n_updates == 4 * math.ceil(32 / 15) * 2
    assert report.replays == 8
    assert report.compression == 15.0
    report = replay(filled_model, n_sequences=3, seq_len=40, compression=10.0, reverse=False)
    assert report.n_updates == 3 * 4 and report.replays == 3


def test_replay_reduces_td_error_and_refreshes_priorities() -> None:
    model = make_model(seed=1)
    buffer = model.replay_buffer
    assert (buffer.priorities == 1.0).all()  # never updated yet
    report = replay(model, n_sequences=16, seq_len=32)
    assert report.td_after < report.td_before
    assert (buffer.priorities != 1.0).sum() > 0
    assert report.mean_priority == pytest.approx(buffer.priorities.mean())


def test_tiny_budget_does_no_update(filled_model: DQN) -> None:
    before = [p.detach().clone() for p in filled_model.q_net.parameters()]
    for budget in (0.0, 1e-9):
        report = replay(filled_model, budget_s=budget)
        assert report.n_updates == 0 and report.replays == 0
        assert math.isnan(report.td_before)
    for old, new in zip(before, filled_model.q_net.parameters(), strict=True):
        assert th.equal(old, new)


def test_budget_is_not_exceeded(filled_model: DQN) -> None:
    report = replay(filled_model, n_sequences=5000, seq_len=32, budget_s=0.25)
    assert report.n_updates > 0
    assert report.elapsed_s <= 0.25
    assert report.replays < 2 * 5000


def test_logic_satisfaction_hook_adds_loss() -> None:
    model = make_model(steps=200)
    model.lambda_logic = 1.0  # type: ignore[attr-defined]
    calls = []

    def logic_satisfaction(observations: th.Tensor, actions: th.Tensor) -> th.Tensor:
        calls.append(len(observations))
        q = model.q_net(observations).gather(1, actions.long())
        return th.sigmoid(q).reshape(-1)

    model.policy.logic_satisfaction = logic_satisfaction  # type: ignore[attr-defined]
    replay(model, n_sequences=2, seq_len=16)
    assert len(calls) == 2 * math.ceil(16 / 15) * 2


# --------------------------------------------------------------------------- errors


@pytest.mark.parametrize("compression", [9.99, 20.01, 5, float("nan")])
def test_bad_compression(filled_model: DQN, compression: float) -> None:
    with pytest.raises(ValueError, match=re.escape(swr._BAD_COMPRESSION.format(compression))):
        replay(filled_model, compression=compression)
    with pytest.raises(ValueError, match=re.escape(swr._BAD_COMPRESSION.format(compression))):
        SleepPhaseCallback(compression=compression)


def test_bad_counts_budget_rng(filled_model: DQN) -> None:
    with pytest.raises(ValueError, match=re.escape(swr._BAD_COUNT.format("seq_len", 0))):
        replay(filled_model, seq_len=0)
    with pytest.raises(ValueError, match=re.escape(swr._BAD_BUDGET.format(-1.0))):
        replay(filled_model, budget_s=-1.0)
    with pytest.raises(TypeError, match=re.escape(swr._BAD_RNG.format(0))):
        replay(filled_model, rng=0)
    with pytest.raises(ValueError, match=re.escape(swr._SHORT_BUFFER.format(400, 401))):
        replay(filled_model, seq_len=401)


def test_non_dqn_models_are_rejected() -> None:
    sac = SAC("MlpPolicy", "Pendulum-v1", buffer_size=100, replay_buffer_class=PrioritizedReplayBuffer, device="cpu")
    with pytest.raises(TypeError, match=re.escape(swr._BAD_MODEL.format("SAC"))):
        swr_replay(sac, sac.replay_buffer, n_sequences=1, seq_len=1, budget_s=1.0, rng=np.random.default_rng(0))
    sb3_contrib = pytest.importorskip("sb3_contrib")
    qrdqn = sb3_contrib.QRDQN("MlpPolicy", "CartPole-v1", buffer_size=100, device="cpu")
    with pytest.raises(TypeError, match=re.escape(swr._BAD_MODEL.format("QRDQN"))):
        swr_replay(qrdqn, qrdqn.replay_buffer, n_sequences=1, seq_len=1, budget_s=1.0, rng=np.random.default_rng(0))


def test_uniform_buffer_is_rejected() -> None:
    model = DQN("MlpPolicy", "CartPole-v1", buffer_size=100, device="cpu")
    with pytest.raises(TypeError, match=re.escape(swr._BAD_BUFFER.format("ReplayBuffer"))):
        replay(model)


def test_callback_rejects_models_it_cannot_replay() -> None:
    sac = SAC("MlpPolicy", "Pendulum-v1", buffer_size=100, replay_buffer_class=PrioritizedReplayBuffer, device="cpu")
    with pytest.raises(TypeError, match=re.escape(swr._BAD_MODEL.format("SAC"))):
        sac.learn(10, callback=SleepPhaseCallback(every_n_steps=5))
    dqn = DQN("MlpPolicy", "CartPole-v1", buffer_size=100, device="cpu")
    with pytest.raises(TypeError, match=re.escape(swr._BAD_BUFFER.format("ReplayBuffer"))):
        dqn.learn(10, callback=SleepPhaseCallback(every_n_steps=5))


def test_bad_callback_args() -> None:
    with pytest.raises(ValueError, match=re.escape(swr._BAD_EVERY.format(0))):
        SleepPhaseCallback(every_n_steps=0)
    with pytest.raises(ValueError, match=re.escape(swr._NO_TRIGGER)):
        SleepPhaseCallback(on_episode_end=False)


# --------------------------------------------------------------------------- callback


def _train_with(callback: SleepPhaseCallback, tmp_path: Any, steps: int = 600) -> list[dict[str, str]]:
    model = DQN(
        "MlpPolicy",
        "CartPole-v1",
        buffer_size=2000,
        learning_starts=100,
        replay_buffer_class=PrioritizedReplayBuffer,
        replay_buffer_kwargs={"seed": 0},
        policy_kwargs={"net_arch": [32, 32]},
        seed=0,
        device="cpu",
    )
    model.set_logger(configure(str(tmp_path), ["csv"]))
    model.learn(steps, callback=callback, log_interval=1)
    with open(tmp_path / "progress.csv", newline="") as handle:
        return list(csv.DictReader(handle))


def test_callback_sleeps_every_n_steps_and_logs(tmp_path: Any) -> None:
    callback = SleepPhaseCallback(every_n_steps=200, on_episode_end=False, n_sequences=4, seq_len=16, budget_s=0.5)
    rows = _train_with(callback, tmp_path)
    assert callback.n_sleeps == 3  # at 200, 400, 600 (>= learning_starts)
    logged = [row for row in rows if row.get("sleep/replays")]
    assert logged
    for key in ("sleep/replays", "sleep/mean_priority", "sleep/td_error_before", "sleep/td_error_after", "sleep/elapsed_s"):
        assert key in rows[0]
    assert callback.last_metrics["replays"] == 8.0


def test_callback_sleeps_at_episode_end(tmp_path: Any) -> None:
    callback = SleepPhaseCallback(n_sequences=2, seq_len=8, budget_s=0.1)
    _train_with(callback, tmp_path, steps=400)
    assert callback.n_sleeps >= 3  # random CartPole episodes last ~20 steps


def test_full_cycle_falls_back_to_swr_without_sleep_cycle(tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "replay.sleep_cycle", None)  # import raises
    callback = SleepPhaseCallback(every_n_steps=300, on_episode_end=False, full_cycle=True, n_sequences=2, seq_len=8)
    with pytest.warns(RuntimeWarning, match=re.escape(swr._NO_SLEEP_CYCLE)):
        _train_with(callback, tmp_path)
    assert callback.n_sleeps == 2 and "td_error_after" in callback.last_metrics


def test_full_cycle_calls_run_sleep_cycle(tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[Any] = []
    fake = types.ModuleType("replay.sleep_cycle")

    class SleepConfig:
        pass

    def run_sleep_cycle(model: Any, buffer: Any, state: Any, config: Any) -> tuple[int, dict[str, float]]:
        calls.append((state, config))
        return (0 if state is None else state + 1), {"replays": 3.0, "schema_count": 2.0}

    fake.SleepConfig = SleepConfig  # type: ignore[attr-defined]
    fake.run_sleep_cycle = run_sleep_cycle  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "replay.sleep_cycle", fake)
    callback = SleepPhaseCallback(every_n_steps=200, on_episode_end=False, full_cycle=True)
    rows = _train_with(callback, tmp_path)
    assert [state for state, _ in calls] == [None, 0, 1]
    assert all(isinstance(config, SleepConfig) for _, config in calls)
    assert "sleep/schema_count" in rows[0]
    assert callback.sleep_state == 2


# --------------------------------------------------------------------------- package exports


def test_public_names_import() -> None:
    import replay

    for name in ("SumTree", "PrioritizedReplayBuffer", "PrioritizedDictReplayBuffer", "SleepPhaseCallback", "swr_replay"):
        assert hasattr(replay, name)


