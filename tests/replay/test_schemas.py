"""Tests for replay.schemas: Gaussian schema memory, gates, EMA, pruning."""

from __future__ import annotations

import math
import re

import numpy as np
import pytest
from scipy.stats import multivariate_normal

from replay.schemas import (
    _BAD_LENGTH,
    _BAD_X_SHAPE,
    _NON_FINITE,
    SECONDS_PER_DAY,
    SchemaMemory,
)


def _ones(n: int) -> np.ndarray:
    return np.ones(n)


def test_two_clusters_two_schemas_near_truth() -> None:
    rng = np.random.default_rng(0)
    truth = np.array([[0.0, 0.0], [10.0, -5.0]])
    x = np.concatenate([rng.normal(truth[0], 0.3, size=(1000, 2)), rng.normal(truth[1], 0.3, size=(1000, 2))])
    perm = rng.permutation(x.shape[0])
    x = x[perm]
    mem = SchemaMemory(2)
    report = mem.consolidate(x, _ones(2000), _ones(2000), now=0.0)
    assert len(mem) == 2 and report.n_new_schemas == 2 and report.n_gated == 2000
    order = np.argsort(mem.means[:, 0])
    np.testing.assert_allclose(mem.means[order], truth, atol=0.1)
    np.testing.assert_array_equal(mem.num_points, [1000, 1000])
    for cov in mem.covariances:
        np.testing.assert_allclose(cov, 0.09 * np.eye(2), atol=0.04)
    # every point labelled with the schema of its own cluster
    cluster = (perm >= 1000).astype(int)
    labels = report.labels
    assert len({(c, lab) for c, lab in zip(cluster, labels)}) == 2
    # a second batch from cluster 1 joins its schema (a rare > 3.5σ outlier may open a
    # singleton schema: τ_schema is a fixed log-likelihood threshold)
    more = mem.consolidate(rng.normal(truth[1], 0.3, size=(50, 2)), _ones(50), _ones(50), now=1.0)
    assert np.mean(more.labels == mem.ids[order[1]]) >= 0.9


def test_log_likelihood_matches_scipy() -> None:
    rng = np.random.default_rng(1)
    d = 4
    mem = SchemaMemory(d, eps=1e-12)
    a = rng.normal(size=(3, d, d))
    covs = a @ np.swapaxes(a, 1, 2) + 0.5 * np.eye(d)
    means = rng.normal(size=(3, d))
    x = rng.normal(size=(7, d))
    ll = mem.log_likelihood(x, means, covs)
    expected = np.stack([multivariate_normal(means[k], covs[k]).logpdf(x) for k in range(3)], axis=1)
    np.testing.assert_allclose(ll, expected, rtol=1e-9, atol=1e-9)


def test_ema_mean_equals_sequential_ema() -> None:
    rng = np.random.default_rng(2)
    mem = SchemaMemory(3, tau_schema=-1e9)  # everything joins schema 0
    mem.consolidate(np.zeros((1, 3)), _ones(1), _ones(1), now=0.0)
    mu = mem.means[0].copy()
    x = rng.normal(size=(40, 3))
    mem.consolidate(x, _ones(40), _ones(40), now=1.0)
    for row in x:  # reference loop (test only)
        mu = (1 - 0.01) * mu + 0.01 * row
    np.testing.assert_allclose(mem.means[0], mu, rtol=1e-12, atol=1e-12)
    assert mem.num_points[0] == 41 and mem.last_updated[0] == 1.0 and mem.created_at[0] == 0.0


def test_avg_reward_is_running_mean() -> None:
    mem = SchemaMemory(1, tau_schema=-1e9)
    mem.consolidate(np.zeros((3, 1)), np.array([1.0, 2.0, 3.0]), _ones(3), now=0.0)
    mem.consolidate(np.zeros((1, 1)), np.array([6.0]), _ones(1), now=0.0)
    assert mem.avg_reward[0] == pytest.approx(3.0)


def test_logic_gate_rejects_exactly_at_threshold() -> None:
    mem = SchemaMemory(2)
    sat = np.array([0.7, np.nextafter(0.7, 1.0), 0.5, 1.0])
    report = mem.consolidate(np.zeros((4, 2)), _ones(4), sat, now=0.0)
    np.testing.assert_array_equal(report.logic_pass, [False, True, False, True])
    np.testing.assert_array_equal(report.labels >= 0, [False, True, False, True])
    assert mem.num_points.sum() == 2


def test_recall_gate_rejects_exactly_at_threshold() -> None:
    mem = SchemaMemory(2)  # W_r = 1, b_r = 0: sigmoid(r) > 0.3 ⇔ r > ln(3/7)
    r_at = math.log(0.3 / 0.7)
    assert mem.recall_probability(np.array([r_at]))[0] == 0.3
    rewards = np.array([r_at, np.nextafter(r_at, 0.0), -5.0, 0.0])
    report = mem.consolidate(np.zeros((4, 2)), rewards, _ones(4), now=0.0)
    np.testing.assert_array_equal(report.recall_pass, [False, True, False, True])
    np.testing.assert_array_equal(report.labels >= 0, [False, True, False, True])


def test_both_gates_required() -> None:
    mem = SchemaMemory(2)
    rewards = np.array([1.0, -5.0, 1.0, -5.0])
    sat = np.array([1.0, 1.0, 0.1, 0.1])
    report = mem.consolidate(np.zeros((4, 2)), rewards, sat, now=0.0)
    np.testing.assert_array_equal(report.labels >= 0, [True, False, False, False])
    assert report.n_gated == 1


def test_custom_recall_weights() -> None:
    mem = SchemaMemory(2, recall_weight=0.0, recall_bias=0.0, recall_threshold=0.5)
    report = mem.consolidate(np.zeros((2, 2)), np.array([100.0, -100.0]), _ones(2), now=0.0)
    assert report.n_gated == 0  # sigmoid(0) = 0.5 is not > 0.5


def test_prune_by_size_and_age() -> None:
    mem = SchemaMemory(1, tau_schema=-3.0, init_var=0.01)
    mem.consolidate(np.zeros((20, 1)), _ones(20), _ones(20), now=0.0)  # schema 0: 20 points
    mem.consolidate(np.full((5, 1), 100.0), _ones(5), _ones(5), now=0.0)  # schema 1: 5 points
    assert len(mem) == 2
    np.testing.assert_array_equal(mem.prune(now=0.0), [1])
    np.testing.assert_array_equal(mem.ids, [0])
    assert mem.prune(now=90 * SECONDS_PER_DAY).shape[0] == 0  # exactly 90 days: kept
    np.testing.assert_array_equal(mem.prune(now=90 * SECONDS_PER_DAY + 1.0), [0])
    assert len(mem) == 0


def test_age_counts_from_last_update() -> None:
    mem = SchemaMemory(1, tau_schema=-1e9)
    mem.consolidate(np.zeros((20, 1)), _ones(20), _ones(20), now=0.0)
    mem.consolidate(np.zeros((1, 1)), _ones(1), _ones(1), now=50 * SECONDS_PER_DAY)
    assert mem.prune(now=100 * SECONDS_PER_DAY).shape[0] == 0
    assert mem.prune(now=141 * SECONDS_PER_DAY).shape[0] == 1


def test_ids_never_reused() -> None:
    mem = SchemaMemory(1, tau_schema=-3.0, init_var=0.01)
    mem.consolidate(np.array([[0.0]]), _ones(1), _ones(1), now=0.0)
    mem.prune(now=0.0)
    mem.consolidate(np.array([[0.0]]), _ones(1), _ones(1), now=0.0)
    np.testing.assert_array_equal(mem.ids, [1])


@pytest.mark.parametrize("dim", [1, 3, 8])
def test_degenerate_identical_points(dim: int) -> None:
    mem = SchemaMemory(dim)
    x = np.full((500, dim), 3.25)
    for t in range(5):  # Σ shrinks towards 0; the ε ridge keeps Cholesky alive
        report = mem.consolidate(x, _ones(500), _ones(500), now=float(t))
        assert report.n_gated == 500
    assert len(mem) == 1
    np.testing.assert_allclose(mem.means[0], 3.25)
    assert np.all(np.isfinite(mem.covariances)) and np.all(np.isfinite(mem.log_likelihood(x)))
    ids, ll = mem.assign(x[:3])
    np.testing.assert_array_equal(ids, [0, 0, 0])
    assert np.all(np.isfinite(ll))


def test_degenerate_rank_deficient_cluster() -> None:
    rng = np.random.default_rng(3)
    t = rng.normal(size=(300, 1))
    x = np.concatenate([t, 2 * t, -t], axis=1)  # all on a line in 3-D
    mem = SchemaMemory(3)
    for _ in range(3):
        mem.consolidate(x, _ones(300), _ones(300), now=0.0)
    assert np.all(np.isfinite(mem.log_likelihood(x)))


def test_empty_batch_and_no_schemas() -> None:
    mem = SchemaMemory(2)
    report = mem.consolidate(np.zeros((0, 2)), np.zeros(0), np.zeros(0), now=0.0)
    assert report.n_seen == 0 and len(mem) == 0
    ids, ll = mem.assign(np.zeros((2, 2)))
    np.testing.assert_array_equal(ids, [-1, -1])
    assert np.all(np.isneginf(ll))


def test_max_schemas_cap() -> None:
    mem = SchemaMemory(1, tau_schema=-1.0, init_var=1e-4, max_schemas=3)
    report = mem.consolidate(np.arange(10.0)[:, None] * 10, _ones(10), _ones(10), now=0.0)
    assert len(mem) == 3 and np.all(report.labels >= 0)


def test_payloads_fields() -> None:
    mem = SchemaMemory(2)
    mem.consolidate(np.ones((3, 2)), np.array([1.0, 2.0, 3.0]), _ones(3), now=5.0)
    (payload,) = mem.payloads()
    assert set(payload) == {"id", "mean", "covariance", "num_points", "avg_reward", "created_at", "last_updated"}
    assert payload["num_points"] == 3 and payload["avg_reward"] == pytest.approx(2.0)
    assert payload["covariance"].shape == (2, 2) and payload["created_at"] == 5.0


def test_state_dict_roundtrip() -> None:
    rng = np.random.default_rng(4)
    mem = SchemaMemory(3)
    mem.consolidate(rng.normal(size=(50, 3)) * 4, _ones(50), _ones(50), now=1.0)
    other = SchemaMemory(3)
    other.load_state_dict(mem.state_dict())
    x = rng.normal(size=(10, 3))
    np.testing.assert_array_equal(other.log_likelihood(x), mem.log_likelihood(x))
    assert other.next_id == mem.next_id


def test_bad_dim() -> None:
    with pytest.raises(ValueError, match=re.escape("Expected `dim` to be an int >= 1, got 0")):
        SchemaMemory(0)
    with pytest.raises(TypeError, match=re.escape("Expected `dim` to be an int >= 1, got 2.0")):
        SchemaMemory(2.0)  # type: ignore[arg-type]


def test_bad_eta() -> None:
    with pytest.raises(ValueError, match=re.escape("Expected `eta` to be a number in (0, 1], got 0.0")):
        SchemaMemory(2, eta=0.0)


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"init_var": 0.0}, ValueError, "Expected `init_var` to be a finite number > 0, got 0.0"),
        ({"eps": float("nan")}, ValueError, "Expected `eps` to be a finite number > 0, got nan"),
        ({"max_age_s": -1.0}, ValueError, "Expected `max_age_s` to be a number > 0, got -1.0"),
        ({"recall_threshold": 1.0}, ValueError, "Expected `recall_threshold` to be a number in [0, 1), got 1.0"),
        ({"logic_threshold": "0.7"}, TypeError, "Expected `logic_threshold` to be a number in [0, 1), got '0.7'"),
        ({"max_schemas": 0}, ValueError, "Expected `max_schemas` to be an int >= 1, got 0"),
        ({"max_schemas": 2.5}, TypeError, "Expected `max_schemas` to be an int >= 1, got 2.5"),
    ],
)
def test_bad_settings(kwargs: dict, error: type, message: str) -> None:
    with pytest.raises(error, match=re.escape(message)):
        SchemaMemory(2, **kwargs)
    assert SchemaMemory(2, max_age_s=math.inf).max_age_s == math.inf  # never too old


def test_bad_x_shape() -> None:
    with pytest.raises(ValueError, match=re.escape(_BAD_X_SHAPE.format(2, (4, 3)))):
        SchemaMemory(2).consolidate(np.zeros((4, 3)), _ones(4), _ones(4), now=0.0)


def test_non_finite() -> None:
    x = np.zeros((2, 2))
    x[1, 0] = np.nan
    with pytest.raises(ValueError, match=re.escape(_NON_FINITE.format("x"))):
        SchemaMemory(2).consolidate(x, _ones(2), _ones(2), now=0.0)
    with pytest.raises(ValueError, match=re.escape(_NON_FINITE.format("rewards"))):
        SchemaMemory(2).consolidate(np.zeros((2, 2)), np.array([0.0, np.inf]), _ones(2), now=0.0)


def test_bad_length() -> None:
    with pytest.raises(ValueError, match=re.escape(_BAD_LENGTH.format("sat", 2, 3))):
        SchemaMemory(2).consolidate(np.zeros((2, 2)), _ones(2), _ones(3), now=0.0)


# ---------------------------------------------------------------- action outcomes and recall by similarity


def test_action_outcomes_are_running_means_per_schema_and_action() -> None:
    rng = np.random.default_rng(10)
    mem = SchemaMemory(2, n_actions=3)
    x = np.concatenate([rng.normal(0, 0.1, (40, 2)), rng.normal(10, 0.1, (40, 2))])
    acts = rng.integers(0, 3, 80)
    outs = rng.normal(size=80)
    outs[5] = np.nan  # not counted for its action, still consolidated
    report = mem.consolidate(x, _ones(80), _ones(80), now=0.0, actions=acts, outcomes=outs)
    more_x, more_a, more_o = rng.normal(10, 0.1, (10, 2)), rng.integers(0, 3, 10), rng.normal(size=10)
    more = mem.consolidate(more_x, _ones(10), _ones(10), now=1.0, actions=more_a, outcomes=more_o)
    labels = np.concatenate([report.labels, more.labels])
    all_a, all_o = np.concatenate([acts, more_a]), np.concatenate([outs, more_o])
    for row, schema_id in enumerate(mem.ids):
        for a in range(3):
            mask = (labels == schema_id) & (all_a == a) & np.isfinite(all_o)
            assert mem.action_counts[row, a] == mask.sum()
            assert mem.action_outcome[row, a] == pytest.approx(all_o[mask].mean() if mask.any() else 0.0, rel=1e-12)
    finite = all_o[np.isfinite(all_o)]
    assert mem.outcome_std == pytest.approx(finite.std(), rel=1e-12)
    assert mem.num_points.sum() == 90  # the NaN outcome's transition is in its schema
    (payload, *_) = mem.payloads()
    np.testing.assert_array_equal(payload["action_counts"], mem.action_counts[0])


def test_outcomes_default_to_rewards_and_need_actions() -> None:
    mem = SchemaMemory(1, tau_schema=-1e9, n_actions=2)
    mem.consolidate(np.zeros((3, 1)), np.array([1.0, 2.0, 4.0]), _ones(3), now=0.0, actions=np.array([0, 1, 1]))
    np.testing.assert_allclose(mem.action_outcome, [[1.0, 3.0]])
    with pytest.raises(ValueError, match=re.escape("Expected `actions` (n_actions=2) when `outcomes` are given")):
        mem.consolidate(np.zeros((1, 1)), _ones(1), _ones(1), now=0.0, outcomes=_ones(1))
    with pytest.raises(ValueError, match=re.escape("Expected `actions` to be 2 ints in [0, 2), got array([0, 2])")):
        mem.consolidate(np.zeros((2, 1)), _ones(2), _ones(2), now=0.0, actions=np.array([0, 2]))
    with pytest.raises(ValueError, match=re.escape("Expected `actions` to be 1 ints in [0, 2), got array([0.5])")):
        mem.consolidate(np.zeros((1, 1)), _ones(1), _ones(1), now=0.0, actions=np.array([0.5]))


def test_similarity_and_recall_by_hand() -> None:
    rng = np.random.default_rng(11)
    mem = SchemaMemory(3, tau_schema=-1e9)
    for _ in range(5):
        mem._append(rng.normal(size=3), 0.0)
    x = rng.normal(size=(7, 3))
    sims = mem.similarity(x)
    for i in range(7):
        for k in range(5):
            mu = mem.means[k]
            assert sims[i, k] == pytest.approx(x[i] @ mu / (np.linalg.norm(x[i]) * np.linalg.norm(mu)), rel=1e-12)
    ids, best = mem.recall(x, 2, 0.25)
    for i in range(7):
        order = sorted(range(5), key=lambda k: -sims[i, k])[:2]
        expected = [mem.ids[k] if sims[i, k] >= 0.25 else -1 for k in order]
        np.testing.assert_array_equal(ids[i], expected)
        np.testing.assert_array_equal(np.isnan(best[i]), np.asarray(expected) < 0)
    assert SchemaMemory(3).recall(x, 2, 0.5)[0].shape == (7, 2)  # no schemas: nothing recalled


def test_state_dict_roundtrip_with_actions_and_old_states() -> None:
    rng = np.random.default_rng(12)
    mem = SchemaMemory(2, n_actions=2)
    mem.consolidate(rng.normal(size=(30, 2)), _ones(30), _ones(30), now=0.0, actions=rng.integers(0, 2, 30),
                    outcomes=rng.normal(size=30))
    other = SchemaMemory(2, n_actions=2)
    other.load_state_dict(mem.state_dict())
    for name in ("action_counts", "action_outcome", "outcome_moments"):
        np.testing.assert_array_equal(getattr(other, name), getattr(mem, name))
    old = {k: v for k, v in mem.state_dict().items() if k not in ("action_counts", "action_outcome", "outcome_moments")}
    legacy = SchemaMemory(2, n_actions=2)
    legacy.load_state_dict(old)  # saved before schemas kept outcomes: none known
    assert legacy.action_counts.shape == (len(mem), 2) and legacy.action_counts.sum() == 0
    with pytest.raises(ValueError, match="Schema state has inconsistent shapes"):
        SchemaMemory(2, n_actions=3).load_state_dict(mem.state_dict())


def test_gated_out_transitions_still_count_their_outcomes() -> None:
    """A loss the recall gate keeps out of a schema's Gaussian is still remembered as that action's outcome there."""
    mem = SchemaMemory(2, n_actions=2, min_size=1)
    x = np.zeros((6, 2))
    rewards = np.array([1.0, 1.0, 1.0, -5.0, -5.0, 1.0])  # sigmoid(-5) < 0.3: rows 3, 4 rejected by the recall gate
    report = mem.consolidate(x, rewards, _ones(6), now=0.0, actions=np.array([0, 0, 0, 1, 1, 1]))
    assert report.n_gated == 4 and mem.num_points[0] == 4
    np.testing.assert_array_equal(mem.action_counts, [[3, 3]])
    np.testing.assert_allclose(mem.action_outcome, [[1.0, -3.0]])  # (-5 - 5 + 1) / 3
    far = mem.consolidate(np.full((1, 2), 50.0), np.array([-5.0]), _ones(1), now=0.0, actions=np.array([1]))
    assert far.n_gated == 0 and mem.action_counts.sum() == 6  # no schema near it: counted nowhere
