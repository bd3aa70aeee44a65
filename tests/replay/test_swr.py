"""Sharp-wave-ripple replay (phase 1 of a sleep cycle) and the sleep-phase callback."""

from __future__ import annotations

import csv
import math
import re
from typing import Any

import numpy as np
import pytest
import torch as th
from gymnasium import spaces
from hypothesis import given, settings
from hypothesis import strategies as st
from stable_baselines3 import DQN, SAC
from stable_baselines3.common.logger import configure

from replay import callbacks, swr
from replay.callbacks import SleepPhaseCallback
from replay.prioritized import PrioritizedReplayBuffer
from replay.sleep_cycle import SleepConfig, SleepState
from replay.swr import sample_sequences, swr_replay
from replay.types import SWRReport


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


def _state(model: DQN) -> list[th.Tensor]:
    return [t.detach().clone() for t in (*model.q_net.parameters(), *model.q_net_target.parameters())]


def test_replay_is_a_function_of_seed_and_counts_not_of_time(monkeypatch: pytest.MonkeyPatch) -> None:
    """Same seed, same work, same weights and priorities, however slow the clock says each step is."""
    results = []
    for seconds_per_call in (0.0, 0.3):  # 0.3 s per clock read: the old 0.5 s budget stopped after ~1 sequence
        model = make_model(seed=2)
        fake_now = [0.0]

        def fake_clock(step: float = seconds_per_call) -> float:
            fake_now[0] += step
            return fake_now[0]

        monkeypatch.setattr(swr, "_now", fake_clock)
        report = replay(model, n_sequences=6, seq_len=32, max_wall_s=1e6)
        monkeypatch.undo()
        results.append((report, _state(model), model.replay_buffer.priorities.copy()))
    (first, w1, p1), (second, w2, p2) = results
    assert first.n_sequences == second.n_sequences == 6 and not first.capped and not second.capped
    assert first.n_updates == second.n_updates == 6 * math.ceil(32 / 15) * 2
    assert (first.td_before, first.td_after) == (second.td_before, second.td_after)
    for a, b in zip(w1, w2, strict=True):
        assert th.equal(a, b)
    np.testing.assert_array_equal(p1, p2)


def test_cap_stops_whole_sequences_and_warns(filled_model: DQN, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each clock read advances 1 s: the first sequence ends at 3 s (slowest 2 s), the second would end past 5 s."""
    fake_now = [0.0]

    def fake_clock() -> float:
        fake_now[0] += 1.0
        return fake_now[0]

    monkeypatch.setattr(swr, "_now", fake_clock)
    # reads: start 1; seq 1: check 2, end 3 (slowest = 1 s); seq 2: check at 4 → 4 − 1 + 1.5·1 = 4.5 > 4 → stop
    with pytest.warns(RuntimeWarning, match=re.escape(swr._CAPPED.format(4.0, 1, 5, 4.0))):
        report = replay(filled_model, n_sequences=5, seq_len=32, max_wall_s=4.0)
    assert report.capped and report.n_sequences == 1
    assert report.replays == 2 and report.n_updates == 2 * math.ceil(32 / 15)
    assert math.isfinite(report.td_before) and math.isfinite(report.td_after)


def test_uncapped_replay_reports_every_sequence(filled_model: DQN) -> None:
    report = replay(filled_model, n_sequences=3, seq_len=16, max_wall_s=math.inf)
    assert not report.capped and report.n_sequences == 3 and report.replays == 6


def test_replayed_sequences_carry_their_stored_satagg(monkeypatch: pytest.MonkeyPatch) -> None:
    """SWR replay judges a replayed transition with the same logical loss as training: its stored SatAgg per
    action reaches the loss with every chunk."""
    from replay import losses

    model = make_model(steps=200)
    model.lambda_logic = 1.0  # type: ignore[attr-defined]
    buffer = model.replay_buffer
    buffer.action_sat = np.full((buffer.buffer_size, buffer.n_envs, 2), 0.25, dtype=np.float32)
    seen = []
    real = losses.logic_penalty

    def spy(q_values: th.Tensor, samples: Any) -> th.Tensor | None:
        seen.append(samples.action_sat)
        return real(q_values, samples)

    monkeypatch.setattr(losses, "logic_penalty", spy)
    replay(model, n_sequences=2, seq_len=16)
    assert seen and all(s is not None and s.shape[1] == 2 and bool((s == 0.25).all()) for s in seen)


# --------------------------------------------------------------------------- errors


@pytest.mark.parametrize(("compression", "error"), [(9.99, ValueError), (20.01, ValueError), (5, ValueError),
                                                     (float("nan"), ValueError), (True, TypeError), ("15", TypeError)])
def test_bad_compression(filled_model: DQN, compression: float, error: type) -> None:
    message = f"Expected `compression` to be a number in [10, 20], got {compression!r}"
    with pytest.raises(error, match=re.escape(message)):
        replay(filled_model, compression=compression)
    with pytest.raises(error, match=re.escape(message)):
        SleepConfig(compression=compression)  # the same check, when the setting is made


def test_bad_counts_cap_rng(filled_model: DQN) -> None:
    with pytest.raises(ValueError, match=re.escape("Expected `seq_len` to be an int >= 1, got 0")):
        replay(filled_model, seq_len=0)
    with pytest.raises(TypeError, match=re.escape("Expected `n_sequences` to be an int >= 1, got 4.0")):
        replay(filled_model, n_sequences=4.0)
    for cap, error in ((0.0, ValueError), (-1.0, ValueError), (float("nan"), ValueError), (True, TypeError)):
        message = f"Expected `max_wall_s` to be a number > 0, got {cap!r}"
        with pytest.raises(error, match=re.escape(message)):
            replay(filled_model, max_wall_s=cap)
        with pytest.raises(error, match=re.escape(message)):
            SleepConfig(max_wall_s=cap)
    assert SleepConfig(max_wall_s=math.inf).max_wall_s == math.inf  # no cap
    with pytest.raises(TypeError, match=re.escape(swr._BAD_RNG.format(0))):
        replay(filled_model, rng=0)
    with pytest.raises(ValueError, match=re.escape(swr._SHORT_BUFFER.format(400, 401))):
        replay(filled_model, seq_len=401)


def test_non_dqn_models_are_rejected() -> None:
    sac = SAC("MlpPolicy", "Pendulum-v1", buffer_size=100, replay_buffer_class=PrioritizedReplayBuffer, device="cpu")
    with pytest.raises(TypeError, match=re.escape(swr._BAD_MODEL.format("SAC"))):
        swr_replay(sac, sac.replay_buffer, n_sequences=1, seq_len=1, rng=np.random.default_rng(0))
    sb3_contrib = pytest.importorskip("sb3_contrib")
    qrdqn = sb3_contrib.QRDQN("MlpPolicy", "CartPole-v1", buffer_size=100, device="cpu")
    with pytest.raises(TypeError, match=re.escape(swr._BAD_MODEL.format("QRDQN"))):
        swr_replay(qrdqn, qrdqn.replay_buffer, n_sequences=1, seq_len=1, rng=np.random.default_rng(0))


def test_uniform_buffer_is_rejected() -> None:
    model = DQN("MlpPolicy", "CartPole-v1", buffer_size=100, device="cpu")
    with pytest.raises(TypeError, match=re.escape(swr._BAD_BUFFER.format("ReplayBuffer"))):
        replay(model)


def test_swr_only_callback_rejects_models_it_cannot_replay() -> None:
    swr_only = SleepConfig(swr_only=True)
    sac = SAC("MlpPolicy", "Pendulum-v1", buffer_size=100, replay_buffer_class=PrioritizedReplayBuffer, device="cpu")
    with pytest.raises(TypeError, match=re.escape(swr._BAD_MODEL.format("SAC"))):
        sac.learn(10, callback=SleepPhaseCallback(swr_only, every_n_steps=5))
    dqn = DQN("MlpPolicy", "CartPole-v1", buffer_size=100, device="cpu")
    with pytest.raises(TypeError, match=re.escape(swr._BAD_BUFFER.format("ReplayBuffer"))):
        dqn.learn(10, callback=SleepPhaseCallback(swr_only, every_n_steps=5))
    dqn.learn(10, callback=SleepPhaseCallback(every_n_steps=5))  # the full cycle skips phase 1 instead


def test_bad_callback_args() -> None:
    with pytest.raises(ValueError, match=re.escape("Expected `every_n_steps` to be an int >= 1 or None, got 0")):
        SleepPhaseCallback(every_n_steps=0)
    with pytest.raises(TypeError, match=re.escape("Expected `every_n_steps` to be an int >= 1 or None, got 2.5")):
        SleepPhaseCallback(every_n_steps=2.5)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=re.escape("Expected `on_episode_end` to be a bool, got 0")):
        SleepPhaseCallback(every_n_steps=5, on_episode_end=0)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=re.escape(callbacks._NO_TRIGGER)):
        SleepPhaseCallback(on_episode_end=False)
    with pytest.raises(TypeError, match=re.escape(callbacks._BAD_CONFIG.format("dict"))):
        SleepPhaseCallback({"n_sequences": 4})  # type: ignore[arg-type]


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


SWR_ONLY_KEYS = {"sleep/replays", "sleep/td_error_before", "sleep/td_error_after", "sleep/td_error_improvement",
                 "sleep/mean_priority", "sleep/swr_skipped", "sleep/swr_capped", "sleep/elapsed_s"}


def test_swr_only_callback_sleeps_every_n_steps_and_logs(tmp_path: Any) -> None:
    callback = SleepPhaseCallback(SleepConfig(swr_only=True, n_sequences=4, seq_len=16), every_n_steps=200,
                                  on_episode_end=False)
    rows = _train_with(callback, tmp_path)
    assert callback.n_sleeps == 3  # at 200, 400, 600 (>= learning_starts)
    assert [row for row in rows if row.get("sleep/replays")]
    assert SWR_ONLY_KEYS <= set(rows[0])
    assert set(callback.last_metrics) == SWR_ONLY_KEYS  # no schema, UMAP or store metrics
    assert callback.last_metrics["sleep/replays"] == 8.0 and callback.last_metrics["sleep/swr_capped"] == 0.0
    state = callback.sleep_state
    assert isinstance(state, SleepState) and state.cycle == 3 and state.swr_capped == 0
    assert len(state.schemas) == 0 and state.transitions_seen == 0  # phases 2-4 never ran


def test_swr_only_sleep_is_a_function_of_the_config_seed(tmp_path: Any) -> None:
    """Same SleepConfig seed, same weights; another seed replays other sequences (the test can fail)."""
    weights = []
    for run, seed in enumerate((3, 3, 4)):
        config = SleepConfig(swr_only=True, n_sequences=4, seq_len=16, seed=seed)
        callback = SleepPhaseCallback(config, every_n_steps=200, on_episode_end=False)
        _train_with(callback, tmp_path / str(run), steps=400)
        assert callback.n_sleeps == 2
        weights.append([p.detach().clone() for p in callback.model.q_net.parameters()])
    assert all(th.equal(a, b) for a, b in zip(weights[0], weights[1], strict=True))
    assert not all(th.equal(a, b) for a, b in zip(weights[0], weights[2], strict=True))


def test_callback_sleeps_at_episode_end(tmp_path: Any) -> None:
    callback = SleepPhaseCallback(SleepConfig(swr_only=True, n_sequences=2, seq_len=8))
    _train_with(callback, tmp_path, steps=400)
    assert callback.n_sleeps >= 3  # random CartPole episodes last ~20 steps


def test_callback_threads_its_config_and_state_through_run_sleep_cycle(
    tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[tuple[Any, Any]] = []
    real = callbacks.run_sleep_cycle

    def spy(model: Any, buffer: Any, state: Any, config: Any) -> Any:
        calls.append((state, config))
        return real(model, buffer, state, config)

    monkeypatch.setattr(callbacks, "run_sleep_cycle", spy)
    config = SleepConfig(swr_only=True, n_sequences=2, seq_len=16)
    callback = SleepPhaseCallback(config, every_n_steps=200, on_episode_end=False)
    _train_with(callback, tmp_path)
    assert len(calls) == 3 and all(c is config for _, c in calls)
    assert calls[0][0] is None and calls[1][0] is calls[2][0] is callback.sleep_state  # one state, carried over


# --------------------------------------------------------------------------- package exports


def test_public_names_import() -> None:
    import replay

    for name in ("SumTree", "PrioritizedReplayBuffer", "PrioritizedDictReplayBuffer", "SleepPhaseCallback", "swr_replay"):
        assert hasattr(replay, name)


