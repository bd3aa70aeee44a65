"""Tests for replay.umap_monitor.

The fast tests never fit UMAP. The ``monitor`` fixture runs three real cycles
on tiny data; the first use pays umap-learn's numba compilation (~20 s), so the
tests using it are marked slow.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
import torch

from replay.umap_monitor import (
    _BAD_LOGGER,
    _NOT_FITTED,
    _TOO_FEW,
    ParametricUMAPNet,
    UMAPMonitor,
    _procrustes,
    _schema_relations,
)

TINY = {"n_neighbors": 5, "n_epochs": 30, "mlp_epochs": 150, "dbscan_eps": 1.0}
Fitted = tuple[UMAPMonitor, list[tuple[np.ndarray, np.ndarray]], list[dict[str, float]]]
CENTERS = np.array([[0.0, 0.0, 0.0, 0.0], [6.0, 0.0, 0.0, 0.0], [0.0, 6.0, 6.0, 0.0]])


def _blobs(rng: np.random.Generator, n: int = 75) -> tuple[np.ndarray, np.ndarray]:
    labels = np.repeat(np.arange(3), n // 3)
    rng.shuffle(labels)
    return CENTERS[labels] + 0.3 * rng.normal(size=(n, 4)), labels + 10  # schema ids 10, 11, 12


# ---------------------------------------------------------------- fast


def test_schema_relations_pair_by_rank_within_schema() -> None:
    prev = np.array([0, 0, 1, -1, 2])
    new = np.array([1, 0, 0, 0, 3])
    assert _schema_relations(prev, new) == {0: 1, 1: 2, 2: 0}
    assert _schema_relations(np.array([5, 5]), np.array([6, -1])) == {}


def test_procrustes_recovers_rigid_motion() -> None:
    rng = np.random.default_rng(0)
    src = rng.normal(size=(30, 3))
    q, _ = np.linalg.qr(rng.normal(size=(3, 3)))
    dst = src @ q + np.array([1.0, -2.0, 3.0])
    rot, s_mean, t_mean = _procrustes(src, dst)
    np.testing.assert_allclose((src - s_mean) @ rot + t_mean, dst, atol=1e-10)


def test_parametric_net_shape() -> None:
    net = ParametricUMAPNet(7)
    sizes = [(m.in_features, m.out_features) for m in net.net if isinstance(m, torch.nn.Linear)]
    assert sizes == [(7, 256), (256, 128), (128, 3)]
    assert net(torch.zeros(2, 7)).shape == (2, 3)


def test_not_fitted() -> None:
    monitor = UMAPMonitor(**TINY)
    with pytest.raises(RuntimeError, match=re.escape(_NOT_FITTED.format("project"))):
        monitor.project(np.zeros((1, 4)))
    with pytest.raises(RuntimeError, match=re.escape(_NOT_FITTED.format("figure"))):
        monitor.save_plot("unused.png")


def test_too_few_points() -> None:
    monitor = UMAPMonitor(**TINY)
    with pytest.raises(ValueError, match=re.escape(_TOO_FEW.format(6, 5))):
        monitor.update(np.zeros((5, 4)), np.zeros(5))


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"tau_anomaly": 0.0}, ValueError, "Expected `tau_anomaly` to be a number > 0, got 0.0"),
        ({"tau_anomaly": float("nan")}, ValueError, "Expected `tau_anomaly` to be a number > 0, got nan"),
        ({"n_neighbors": 1}, ValueError, "Expected `n_neighbors` to be an int >= 2, got 1"),
        ({"n_neighbors": 15.0}, TypeError, "Expected `n_neighbors` to be an int >= 2, got 15.0"),
        ({"window": True}, TypeError, "Expected `window` to be an int >= 1, got True"),
        ({"mlp_lr": float("inf")}, ValueError, "Expected `mlp_lr` to be a finite number > 0, got inf"),
        ({"dbscan_eps": -0.5}, ValueError, "Expected `dbscan_eps` to be a finite number > 0, got -0.5"),
    ],
)
def test_bad_settings(kwargs: dict, error: type, message: str) -> None:
    with pytest.raises(error, match=re.escape(message)):
        UMAPMonitor(**kwargs)


def test_is_anomaly_is_distance_to_every_centroid() -> None:
    rng = np.random.default_rng(1)
    monitor = UMAPMonitor(**TINY)
    x = rng.normal(size=(40, 4))
    monitor.input_dim = 4
    monitor._fit_net(x, rng.normal(size=(40, 3)))  # no UMAP needed to test the rule
    monitor.centroids = np.array([[0.0, 0.0, 0.0], [5.0, 5.0, 5.0]])
    z = monitor.project(x)
    dist = np.linalg.norm(z[:, None, :] - monitor.centroids[None], axis=2)
    np.testing.assert_array_equal(monitor.is_anomaly(x), np.all(dist > 2.0, axis=1))
    assert monitor.is_anomaly(x[0]).shape == ()
    monitor.centroids = np.zeros((0, 3))
    assert monitor.is_anomaly(x).all()  # no schema → nothing is familiar


def test_bad_logger() -> None:
    monitor = UMAPMonitor(**TINY)
    monitor.embeddings, monitor.labels = [np.zeros((3, 3))], [np.zeros(3, dtype=np.int64)]
    monitor.n_cycles = 1
    with pytest.raises(TypeError, match=re.escape(_BAD_LOGGER.format("object"))):
        monitor.log_to_tensorboard(object(), step=0)


# ---------------------------------------------------------------- real UMAP


@pytest.fixture(scope="module")
def monitor() -> Fitted:
    rng = np.random.default_rng(0)
    mon = UMAPMonitor(**TINY, window=2)
    data, infos = [], []
    for _ in range(3):
        x, labels = _blobs(rng)
        infos.append(mon.update(x, labels))
        data.append((x, labels))
    return mon, data, infos


@pytest.mark.slow
def test_cycles_and_window(monitor: Fitted) -> None:
    mon, data, infos = monitor
    assert mon.n_cycles == 3 and len(mon.embeddings) == 2  # window = 2
    assert all(e.shape == (75, 3) for e in mon.embeddings)
    assert all(info["alignment_resets"] == 0.0 for info in infos)
    assert all(info["umap_clusters"] >= 1.0 for info in infos)
    np.testing.assert_array_equal(mon.centroid_ids, [10, 11, 12])


@pytest.mark.slow
def test_alignment_keeps_schemas_in_place(monitor: Fitted) -> None:
    mon, _, _ = monitor
    (prev_emb, cur_emb), (prev_lab, cur_lab) = mon.embeddings, mon.labels
    prev_c = np.stack([prev_emb[prev_lab == k].mean(axis=0) for k in (10, 11, 12)])
    cur_c = np.stack([cur_emb[cur_lab == k].mean(axis=0) for k in (10, 11, 12)])
    dist = np.linalg.norm(cur_c[:, None] - prev_c[None], axis=2)
    np.testing.assert_array_equal(np.argmin(dist, axis=1), [0, 1, 2])


@pytest.mark.slow
def test_projection_and_anomalies(monitor: Fitted) -> None:
    mon, data, infos = monitor
    x, labels = data[-1]
    z = mon.project(x)
    spread = np.linalg.norm(mon.embeddings[-1] - mon.embeddings[-1].mean(axis=0), axis=1).mean()
    assert np.sqrt(np.mean(np.sum((z - mon.embeddings[-1]) ** 2, axis=1))) < 0.5 * spread
    assert mon.is_anomaly(x).mean() < 0.2
    assert infos[-1]["anomalies"] == float(mon.is_anomaly(x).sum())
    far = x + 100.0
    assert mon.is_anomaly(far).all()


@pytest.mark.slow
def test_state_dict_roundtrip(monitor: Fitted) -> None:
    mon, data, _ = monitor
    state = mon.state_dict()
    other = UMAPMonitor(**TINY, window=2)
    other.load_state_dict(state)
    x = data[-1][0]
    np.testing.assert_array_equal(other.project(x), mon.project(x))
    np.testing.assert_array_equal(other.is_anomaly(x), mon.is_anomaly(x))
    assert other.n_cycles == mon.n_cycles and other._relations == mon._relations


@pytest.mark.slow
def test_save_plot_and_tensorboard(monitor: Fitted, tmp_path: Path) -> None:
    from stable_baselines3.common.logger import configure
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    from torch.utils.tensorboard import SummaryWriter

    mon, _, _ = monitor
    png = mon.save_plot(tmp_path / "plots" / "umap.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    writer = SummaryWriter(str(tmp_path / "tb"))
    mon.log_to_tensorboard(writer, step=7)
    writer.close()
    acc = EventAccumulator(str(tmp_path / "tb")).Reload()
    assert "sleep/umap" in acc.Tags()["images"]
    assert {"sleep/umap_clusters", "sleep/anomalies"} <= set(acc.Tags()["scalars"])
    assert acc.Scalars("sleep/umap_clusters")[0].value == mon.n_clusters

    logger = configure(str(tmp_path / "sb3"), ["tensorboard", "csv"])
    mon.log_to_tensorboard(logger, step=3)
    logger.dump(3)
    logger.close()
    acc = EventAccumulator(str(tmp_path / "sb3")).Reload()
    assert "sleep/umap" in acc.Tags()["images"]


@pytest.mark.slow
def test_unrelated_cycle_resets_alignment(monitor: Fitted) -> None:
    mon, _, _ = monitor
    other = UMAPMonitor(**TINY, window=2)
    other.load_state_dict(mon.state_dict())
    x, labels = _blobs(np.random.default_rng(5))
    info = other.update(x, labels + 100)  # no schema in common with the last cycle
    assert info["alignment_resets"] == 1.0 and len(other.embeddings) == 1


@pytest.mark.slow
def test_same_seed_same_maps(monitor: Fitted) -> None:
    """Two monitors, one seed, same data: bit-identical embeddings, centroids and parametric nets."""
    _, data, _ = monitor
    runs = []
    for _ in range(2):
        mon = UMAPMonitor(**TINY, window=2)
        for x, labels in data:  # cycle 1: plain UMAP; cycles 2-3: AlignedUMAP
            mon.update(x, labels)
        runs.append(mon)
    first, second = runs
    for a, b in zip(first.embeddings, second.embeddings, strict=True):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(first.centroids, second.centroids)
    for (name, a), b in zip(first.net.state_dict().items(), second.net.state_dict().values(), strict=True):
        assert torch.equal(a, b), name


_THREADS_SCRIPT = """
import numpy as np, torch
torch.set_num_threads(1)
layer, batch = torch.nn.Linear(256, 256), torch.ones(64, 256)
for _ in range(10):  # torch trains before the first sleep cycle (fewer steps here do not reproduce the issue)
    layer(batch).sum().backward()
from replay.umap_monitor import UMAPMonitor
rng = np.random.default_rng(0)
UMAPMonitor(n_neighbors=5, n_epochs=10, mlp_epochs=5).update(rng.normal(size=(60, 4)), np.repeat(np.arange(3), 20))
print(torch.get_num_threads())
"""


@pytest.mark.slow
def test_update_keeps_torchs_thread_count(run_script) -> None:
    """numba's first OpenMP launch (inside UMAP) must not leave torch on all cores (fresh process: it happens once)."""
    out = run_script("-c", _THREADS_SCRIPT)
    assert out.stdout.strip().splitlines()[-1] == "1", out.stderr[-2000:]
