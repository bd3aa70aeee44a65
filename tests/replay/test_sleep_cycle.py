"""Tests for replay.sleep_cycle: the five-phase sleep cycle end to end."""

from __future__ import annotations

import copy
import math
import re
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium import spaces
from stable_baselines3 import DQN
from stable_baselines3.common.buffers import DictReplayBuffer, ReplayBuffer

from replay import swr
from replay.callbacks import SleepPhaseCallback
from replay.prioritized import PrioritizedReplayBuffer
from replay.sleep_cycle import (
    _BAD_BUFFER,
    _BAD_STATE,
    _DIM_CHANGED,
    SKIP_NO_MODEL,
    SKIP_NOT_DQN,
    SleepConfig,
    SleepState,
    memory_reader,
    run_sleep_cycle,
)
from replay.vector_store import SchemaVectorStore

REQUIRED = {
    "sleep/schema_count",
    "sleep/mean_schema_size",
    "sleep/constraint_satisfaction",
    "sleep/td_error_improvement",
    "sleep/umap_clusters",
    "sleep/anomalies",
    "sleep/replays",
}
PHASE_1 = {"sleep/replays", "sleep/td_error_before", "sleep/td_error_after", "sleep/td_error_improvement",
           "sleep/mean_priority", "sleep/swr_skipped", "sleep/swr_capped"}
TINY_UMAP = {"umap_n_neighbors": 5, "umap_n_epochs": 20, "mlp_epochs": 50, "umap_max_points": 150}

OBS_SPACE = spaces.Box(-np.inf, np.inf, shape=(4,), dtype=np.float32)
ACT_SPACE = spaces.Discrete(2)


def _fill(buffer: ReplayBuffer, n: int, rng: np.random.Generator, centers: np.ndarray | None = None) -> None:
    """Add n random CartPole-shaped transitions (clustered around `centers`)."""
    centers = np.array([[0.0, 0.0, 0.0, 0.0], [4.0, 4.0, -4.0, 0.0]]) if centers is None else centers
    for _ in range(n):
        obs = (centers[rng.integers(len(centers))] + 0.2 * rng.normal(size=4)).astype(np.float32)[None]
        buffer.add(obs, obs + 0.01, np.array([[rng.integers(2)]]), np.array([1.0]), np.array([False]), [{}])


def _buffer(n: int = 300, seed: int = 0) -> ReplayBuffer:
    buffer = ReplayBuffer(500, OBS_SPACE, ACT_SPACE, device="cpu")
    _fill(buffer, n, np.random.default_rng(seed))
    return buffer


def _config(tmp_path: Path | None = None, **kwargs: Any) -> SleepConfig:
    # raw features: these tests place clusters in observation space (codes are tested in test_memory.py)
    base = {"umap": False, "clock": lambda: 1_000.0, "store_device": "cpu", "features": "raw"}
    if tmp_path is not None:
        base["store_path"] = str(tmp_path / "store" / "schemas.npz")
    base.update(kwargs)
    return SleepConfig(**base)


def test_phases_2_to_5_without_model(tmp_path: Path) -> None:
    buffer = _buffer()
    config = _config(tmp_path)
    state, metrics = run_sleep_cycle(None, buffer, None, config)
    assert REQUIRED <= set(metrics) and all(isinstance(v, float) for v in metrics.values())
    assert state.swr_skip_reason == SKIP_NO_MODEL and metrics["sleep/swr_skipped"] == 1.0
    assert metrics["sleep/replays"] == 0.0 and metrics["sleep/td_error_improvement"] == 0.0
    assert metrics["sleep/constraint_satisfaction"] == 1.0  # plain buffer: no violations
    assert metrics["sleep/consolidated"] == 300.0  # reward 1 passes the recall gate
    assert metrics["sleep/schema_count"] == 2.0  # two clusters
    assert metrics["sleep/mean_schema_size"] == 150.0
    np.testing.assert_array_equal(state.store.ids, state.schemas.ids)
    hit = state.store.search(np.array([4.0, 4.0, -4.0, 0.0]), k=1)[0]
    np.testing.assert_allclose(hit[2]["mean"], [4.0, 4.0, -4.0, 0.0], atol=0.2)
    restored = SchemaVectorStore.restore(config.store_path, device="cpu")
    np.testing.assert_array_equal(restored.ids, state.store.ids)
    assert state.cycle == 1 and len(state.episodic) == 300

    # the next cycle consolidates only what was written since
    _fill(buffer, 40, np.random.default_rng(1))
    state, metrics = run_sleep_cycle(None, buffer, state, config)
    assert metrics["sleep/consolidated"] == 40.0 and state.cycle == 2
    assert state.transitions_seen == 340
    np.testing.assert_array_equal(state.episodic.last(40).payload_ids, np.arange(300, 340))


def test_buffer_wraparound() -> None:
    buffer = ReplayBuffer(100, OBS_SPACE, ACT_SPACE, device="cpu")
    _fill(buffer, 150, np.random.default_rng(0))
    state, metrics = run_sleep_cycle(None, buffer, None, _config())
    assert metrics["sleep/consolidated"] == 100.0
    _fill(buffer, 30, np.random.default_rng(1))  # pos 50 → 80
    state, metrics = run_sleep_cycle(None, buffer, state, _config())
    assert metrics["sleep/consolidated"] == 30.0
    np.testing.assert_array_equal(state.episodic.last(30).payload_ids, np.arange(50, 80))


def test_logic_and_recall_gates_from_buffer() -> None:
    buffer = _buffer(200)
    violations = np.zeros((buffer.buffer_size, 1), dtype=np.float32)
    violations[:50] = 0.3  # SatAgg 0.7: exactly at the gate → rejected
    violations[50:100] = 0.1
    buffer.violations = violations  # what the prioritized buffer stores
    buffer.rewards[150:200] = -5.0  # sigmoid(−5) < 0.3 → rejected
    state, metrics = run_sleep_cycle(None, buffer, None, _config())
    assert metrics["sleep/consolidated"] == 100.0
    expected_sat = np.mean(1.0 - violations[:200, 0].astype(np.float64))
    assert metrics["sleep/constraint_satisfaction"] == pytest.approx(expected_sat)


def test_dict_observations_and_codes() -> None:
    obs_space = spaces.Dict({"b": spaces.Box(-1, 1, (2, 2), np.float32), "a": spaces.Box(-1, 1, (3,), np.float32)})
    buffer = DictReplayBuffer(100, obs_space, ACT_SPACE, device="cpu")
    rng = np.random.default_rng(0)
    for _ in range(60):
        obs = {"a": rng.uniform(-1, 1, (1, 3)).astype(np.float32), "b": rng.uniform(-1, 1, (1, 2, 2)).astype(np.float32)}
        buffer.add(obs, obs, np.array([[0]]), np.array([0.5]), np.array([False]), [{}])
    config = _config(features="code", code_dim=16)
    state, metrics = run_sleep_cycle(None, buffer, None, config)
    assert state.input_dim == 7 and state.schemas.dim == 16
    assert metrics["sleep/consolidated"] == 60.0
    codes = state.episodic.last(60).codes
    assert np.all((codes != 0).sum(axis=1) <= 2)  # k = ⌈0.1·16⌉ = 2


def test_not_dqn_model_skips_phase_1() -> None:
    state, metrics = run_sleep_cycle(object(), _buffer(50), None, _config())
    assert state.swr_skip_reason == SKIP_NOT_DQN and metrics["sleep/swr_skipped"] == 1.0


def test_bad_buffer() -> None:
    with pytest.raises(TypeError, match=re.escape(_BAD_BUFFER.format("list"))):
        run_sleep_cycle(None, [], None, _config())


def test_bad_state() -> None:
    with pytest.raises(TypeError, match=re.escape(_BAD_STATE.format("dict"))):
        run_sleep_cycle(None, _buffer(20), {}, _config())  # type: ignore[arg-type]


def test_dim_changed() -> None:
    state = SleepState.create(7, _config())
    with pytest.raises(ValueError, match=re.escape(_DIM_CHANGED.format(4, 7))):
        run_sleep_cycle(None, _buffer(20), state, _config())


def test_bad_features() -> None:
    with pytest.raises(ValueError, match=re.escape("Expected `features` to be one of ('raw', 'code'), got 'pixels'")):
        SleepConfig(features="pixels")  # type: ignore[arg-type]


@pytest.mark.slow
def test_full_cycle_with_umap(tmp_path: Path) -> None:
    buffer = _buffer(300)
    config = _config(tmp_path, umap=True, plot_dir=str(tmp_path / "plots"), **TINY_UMAP)
    state, metrics = run_sleep_cycle(None, buffer, None, config)
    _fill(buffer, 120, np.random.default_rng(2))
    state, metrics = run_sleep_cycle(None, buffer, state, config)
    assert state.monitor.n_cycles == 2 and metrics["sleep/umap_clusters"] >= 1.0
    assert metrics["sleep/anomalies"] <= 120.0
    assert sorted(p.name for p in (tmp_path / "plots").iterdir()) == ["umap_cycle_0000.png", "umap_cycle_0001.png"]
    # a far-away state is anomalous, a familiar one is not
    assert state.monitor.is_anomaly(np.array([50.0, -50.0, 50.0, 9.0]))
    assert not state.monitor.is_anomaly(np.array([4.0, 4.0, -4.0, 0.0]))


def _dqn(buffer_size: int = 1_000) -> DQN:
    env = gym.make("CartPole-v1")
    return DQN(
        "MlpPolicy",
        env,
        learning_starts=64,
        buffer_size=buffer_size,
        batch_size=32,
        train_freq=4,
        policy_kwargs={"net_arch": [32]},
        replay_buffer_class=PrioritizedReplayBuffer,
        replay_buffer_kwargs={"seed": 0},
        seed=0,
        device="cpu",
    )


def test_dqn_end_to_end(tmp_path: Path) -> None:
    model = _dqn()
    model.learn(400)
    config = _config(tmp_path, n_sequences=4, seq_len=30, **TINY_UMAP)
    state, metrics = run_sleep_cycle(model, model.replay_buffer, None, config)
    assert state.swr_skip_reason is None and metrics["sleep/swr_skipped"] == 0.0
    assert metrics["sleep/replays"] == 8.0  # 4 sequences, forward + reverse
    assert metrics["sleep/swr_capped"] == 0.0 and state.swr_capped == 0
    report = state.swr_report
    assert metrics["sleep/td_error_improvement"] == pytest.approx(report.td_before - report.td_after)
    assert math.isfinite(metrics["sleep/td_error_improvement"])
    assert metrics["sleep/constraint_satisfaction"] == 1.0  # CartPole: no LTN violations
    assert metrics["sleep/consolidated"] == 400.0
    assert REQUIRED | PHASE_1 <= set(metrics)
    assert (metrics["sleep/td_error_before"], metrics["sleep/td_error_after"]) == (report.td_before, report.td_after)


def test_swr_only_cycle_is_exactly_swr_replay() -> None:
    """``swr_only``: phase 1 and its metrics, bit for bit what ``swr_replay`` does with a generator of the same seed."""
    model = _dqn()
    model.learn(300)
    twin = _dqn()
    twin.set_parameters(copy.deepcopy(model.get_parameters()))  # Adam's loaded state would share tensors
    twin.replay_buffer = copy.deepcopy(model.replay_buffer)
    config = SleepConfig(swr_only=True, n_sequences=4, seq_len=16, compression=12.0, seed=5)
    state, metrics = run_sleep_cycle(model, model.replay_buffer, None, config)
    report = swr.swr_replay(twin, twin.replay_buffer, n_sequences=4, seq_len=16, compression=12.0,
                            rng=np.random.default_rng(5))
    assert set(metrics) == PHASE_1 | {"sleep/elapsed_s"}
    assert metrics["sleep/replays"] == report.replays == 8.0
    assert (metrics["sleep/td_error_before"], metrics["sleep/td_error_after"]) == (report.td_before, report.td_after)
    assert metrics["sleep/mean_priority"] == report.mean_priority
    for a, b in zip(model.q_net.parameters(), twin.q_net.parameters(), strict=True):
        assert torch.equal(a, b)
    np.testing.assert_array_equal(model.replay_buffer.priorities, twin.replay_buffer.priorities)
    assert state.cycle == 1 and len(state.schemas) == 0 and state.last_pos == model.replay_buffer.pos


def test_skipped_phase_1_reports_nan_td_errors() -> None:
    _, metrics = run_sleep_cycle(None, _buffer(100), None, _config())
    assert PHASE_1 <= set(metrics) and metrics["sleep/swr_skipped"] == 1.0
    assert math.isnan(metrics["sleep/td_error_before"]) and math.isnan(metrics["sleep/td_error_after"])
    assert math.isnan(metrics["sleep/mean_priority"])  # a plain buffer has no priorities


def test_sleep_phase_callback_runs_full_cycle() -> None:
    model = _dqn()
    callback = SleepPhaseCallback(_config(n_sequences=2, seq_len=16), every_n_steps=150, on_episode_end=False)
    model.learn(300, callback=callback)
    assert callback.n_sleeps >= 1
    assert REQUIRED <= set(callback.last_metrics)
    assert isinstance(callback.sleep_state, SleepState) and callback.sleep_state.cycle == callback.n_sleeps


def test_state_dict_roundtrip() -> None:
    buffer = _buffer(200)
    config = _config(features="code", code_dim=16)
    state, _ = run_sleep_cycle(None, buffer, None, config)
    restored = SleepState.from_state_dict(state.state_dict(), config)
    _fill(buffer, 30, np.random.default_rng(3))
    state, metrics = run_sleep_cycle(None, buffer, state, config)
    restored, metrics_restored = run_sleep_cycle(None, buffer, restored, config)
    metrics.pop("sleep/elapsed_s"), metrics_restored.pop("sleep/elapsed_s")
    assert metrics == metrics_restored
    np.testing.assert_array_equal(restored.schemas.means, state.schemas.means)
    np.testing.assert_array_equal(restored.store.ids, state.store.ids)


def test_default_clock_is_market_time_not_wall_time() -> None:
    """Schema timestamps = env steps per env x step_seconds: the same in every run, whenever it runs."""
    buffer = _buffer(300)
    config = _config(clock=None, step_seconds=2.0)
    state, _ = run_sleep_cycle(None, buffer, None, config)
    assert state.env_steps == 300
    np.testing.assert_array_equal(state.schemas.created_at, np.full(len(state.schemas), 600.0))
    _fill(buffer, 150, np.random.default_rng(1))  # 450 rows in a 500-row buffer
    state, _ = run_sleep_cycle(None, buffer, state, config)
    _fill(buffer, 100, np.random.default_rng(2))  # wraps: pos 450 → 50
    state, _ = run_sleep_cycle(None, buffer, state, config)
    assert state.env_steps == 550
    assert state.schemas.last_updated.max() == 1100.0
    assert all(p["last_updated"] <= 1100.0 for p in state.schemas.payloads())
    restored = SleepState.from_state_dict(state.state_dict(), config)
    assert restored.env_steps == 550 and restored.swr_capped == 0


def test_schemas_age_in_market_time() -> None:
    """max_schema_age_s counts market seconds: a schema not seen for longer is pruned, deterministically."""
    buffer = ReplayBuffer(2_000, OBS_SPACE, ACT_SPACE, device="cpu")
    rng = np.random.default_rng(0)
    _fill(buffer, 100, rng, centers=np.array([[0.0, 0.0, 0.0, 0.0]]))
    config = _config(clock=None, step_seconds=10.0, max_schema_age_s=1_000.0)
    state, _ = run_sleep_cycle(None, buffer, None, config)  # t = 1000 s
    first = state.schemas.ids.copy()
    assert first.shape == (1,)
    _fill(buffer, 100, rng, centers=np.array([[4.0, 4.0, -4.0, 0.0]]))  # t = 2000 s: first schema 1000 s old → kept
    state, metrics = run_sleep_cycle(None, buffer, state, config)
    assert metrics["sleep/pruned"] == 0.0 and first[0] in state.schemas.ids
    _fill(buffer, 100, rng, centers=np.array([[4.0, 4.0, -4.0, 0.0]]))  # t = 3000 s: 2000 s old → pruned
    state, metrics = run_sleep_cycle(None, buffer, state, config)
    assert metrics["sleep/pruned"] == 1.0 and first[0] not in state.schemas.ids


def test_old_checkpoints_without_market_clock_restore() -> None:
    config = _config()
    state, _ = run_sleep_cycle(None, _buffer(50), None, config)
    old = state.state_dict()
    del old["env_steps"], old["swr_capped"]
    restored = SleepState.from_state_dict(old, config)
    assert restored.env_steps == 0 and restored.swr_capped == 0


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"step_seconds": 0.0}, ValueError, "Expected `step_seconds` to be a finite number > 0, got 0.0"),
        ({"step_seconds": float("inf")}, ValueError, "Expected `step_seconds` to be a finite number > 0, got inf"),
        ({"step_seconds": "23.4"}, TypeError, "Expected `step_seconds` to be a finite number > 0, got '23.4'"),
        ({"max_wall_s": 0.0}, ValueError, "Expected `max_wall_s` to be a number > 0, got 0.0"),
        ({"max_wall_s": float("nan")}, ValueError, "Expected `max_wall_s` to be a number > 0, got nan"),
        ({"compression": 25.0}, ValueError, "Expected `compression` to be a number in [10, 20], got 25.0"),
        ({"clock": 5.0}, TypeError, "Expected `clock` to be callable or None, got 5.0"),
        ({"n_sequences": 0}, ValueError, "Expected `n_sequences` to be an int >= 1, got 0"),
        ({"seq_len": 1.5}, TypeError, "Expected `seq_len` to be an int >= 1, got 1.5"),
        ({"n_recent": 0}, ValueError, "Expected `n_recent` to be an int >= 1, got 0"),
        ({"code_dim": True}, TypeError, "Expected `code_dim` to be an int >= 1, got True"),
        ({"anomaly_priority": -1.0}, ValueError, "Expected `anomaly_priority` to be a finite number >= 0, got -1.0"),
        ({"anomaly_priority": None}, TypeError, "Expected `anomaly_priority` to be a finite number >= 0, got None"),
    ],
)
def test_bad_config_values(kwargs: dict[str, Any], error: type, message: str) -> None:
    with pytest.raises(error, match=re.escape(message)):
        SleepConfig(**kwargs)


def test_capped_swr_is_counted(monkeypatch: pytest.MonkeyPatch) -> None:
    model = _dqn()
    model.learn(200)
    fake_now = [0.0]

    def fake_clock() -> float:
        fake_now[0] += 1.0
        return fake_now[0]

    monkeypatch.setattr(swr, "_now", fake_clock)
    config = _config(n_sequences=5, seq_len=16, max_wall_s=4.0)
    with pytest.warns(RuntimeWarning, match="wall-clock safety cap"):
        state, metrics = run_sleep_cycle(model, model.replay_buffer, None, config)
    assert metrics["sleep/swr_capped"] == 1.0 and state.swr_capped == 1
    assert metrics["sleep/replays"] == 2.0  # one whole sequence, forward and reverse


# ---------------------------------------------------------------- encoder training, outcomes, the read path


def test_horizon_returns_by_hand() -> None:
    """G_t = sum of the next H rewards of the same env, cut after an episode end; NaN until the horizon is written."""
    from replay.sleep_cycle import horizon_returns

    buffer = ReplayBuffer(20, OBS_SPACE, ACT_SPACE, device="cpu", n_envs=2)  # 10 rows of 2 envs
    rewards = np.arange(1.0, 25.0).reshape(12, 2)  # 12 steps into 10 rows: wraps, pos = 2
    dones = np.zeros((12, 2))
    dones[6, 1] = 1.0
    for t in range(12):
        obs = np.zeros((2, 4), np.float32)
        buffer.add(obs, obs, np.zeros((2, 1)), rewards[t], dones[t], [{}, {}])
    positions = np.array([3, 4, 5, 6, 7, 8, 9, 0, 1])  # steps 3..11 (step 10 sits in row 0, 11 in row 1)
    out = horizon_returns(buffer, positions, 3).reshape(-1, 2)
    for p, step in enumerate(range(3, 12)):
        for e in range(2):
            total, complete = 0.0, False
            for i in range(3):
                if step + i > 11:
                    break
                total += rewards[step + i, e]
                if dones[step + i, e]:
                    complete = True
                    break
            else:
                complete = True
            expected = total if complete else np.nan
            np.testing.assert_equal(out[p, e], expected)
    assert np.isnan(out[-1]).all() and out[3, 1] == rewards[6, 1]  # step 6 of env 1 ends its episode


def test_code_features_train_the_encoder_once_and_keep_outcomes() -> None:
    buffer = _buffer(300)
    config = _config(features="code", code_dim=16, encoder_steps=40, memory_horizon=4)
    state, metrics = run_sleep_cycle(None, buffer, None, config)
    assert state.encoder.trained and int(state.encoder.fit_steps) == 40
    assert math.isfinite(metrics["sleep/encoder_reconstruction"]) and metrics["sleep/encoder_penalty"] >= 0.0
    np.testing.assert_allclose(np.linalg.norm(state.schemas.means, axis=1), 1.0, atol=0.2)  # means of unit codes
    counts, sizes = state.schemas.action_counts.sum(axis=1), state.schemas.num_points
    assert state.n_actions == 2 and np.all(counts <= sizes)
    assert 0 <= sizes.sum() - counts.sum() <= 3  # only the newest 3 rows' outcomes are unknown (horizon 4)
    weights = state.encoder.weight.detach().clone()
    _fill(buffer, 60, np.random.default_rng(1))
    state, _ = run_sleep_cycle(None, buffer, state, config)
    assert torch.equal(state.encoder.weight, weights) and int(state.encoder.fit_steps) == 40  # frozen after cycle 1
    reader = memory_reader(state, config)
    assert reader is not None and reader.features == "code" and len(reader) == len(state.schemas)
    np.testing.assert_array_equal(reader.ids, state.store.ids)
    assert memory_reader(state, _config(features="code", code_dim=16, memory_prior=False)) is None


def test_same_seed_same_memory() -> None:
    """Two cycles from the same data and seed learn the same encoder, schemas and read path, bit for bit."""
    readers = []
    for _ in range(2):
        buffer = _buffer(200)
        config = _config(features="code", code_dim=16, encoder_steps=30, seed=4)
        state, _ = run_sleep_cycle(None, buffer, None, config)
        readers.append((state, memory_reader(state, config)))
    (a, ra), (b, rb) = readers
    for name, value in a.encoder.state_dict().items():
        assert torch.equal(value, b.encoder.state_dict()[name]), name
    np.testing.assert_array_equal(a.schemas.means, b.schemas.means)
    x = np.random.default_rng(0).normal(size=(5, 4))
    for u, v in zip(ra.recall(x), rb.recall(x), strict=True):
        np.testing.assert_array_equal(u, v)


def test_state_dict_keeps_the_trained_encoder_and_outcomes() -> None:
    buffer = _buffer(200)
    config = _config(features="code", code_dim=16, encoder_steps=20)
    state, _ = run_sleep_cycle(None, buffer, None, config)
    restored = SleepState.from_state_dict(state.state_dict(), config)
    assert restored.n_actions == 2 and restored.encoder.trained
    np.testing.assert_array_equal(restored.schemas.action_outcome, state.schemas.action_outcome)
    x = np.random.default_rng(1).normal(size=(6, 4))
    for u, v in zip(memory_reader(state, config).recall(x), memory_reader(restored, config).recall(x), strict=True):
        np.testing.assert_array_equal(u, v)


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"encoder_steps": -1}, ValueError, "Expected `encoder_steps` to be an int >= 0, got -1"),
        ({"memory_k": 0}, ValueError, "Expected `memory_k` to be an int >= 1, got 0"),
        ({"memory_min_similarity": 0.0}, ValueError,
         "Expected `memory_min_similarity` to be a number in (0, 1], got 0.0"),
        ({"memory_weight": -1.0}, ValueError, "Expected `memory_weight` to be a finite number >= 0, got -1.0"),
        ({"memory_prior": 1}, TypeError, "Expected `memory_prior` to be a bool, got 1"),
        ({"schema_init_var": 0.0}, ValueError, "Expected `schema_init_var` to be a finite number > 0 or None, got 0.0"),
        ({"archive_size": 0}, ValueError, "Expected `archive_size` to be an int >= 1, got 0"),
    ],
)
def test_bad_memory_settings(kwargs: dict[str, Any], error: type, message: str) -> None:
    with pytest.raises(error, match=re.escape(message)):
        SleepConfig(**kwargs)
