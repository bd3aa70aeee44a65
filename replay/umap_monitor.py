"""UMAP monitor: an aligned 3-D map of consolidated experience across sleep cycles.

Each sleep cycle hands the monitor the features of the transitions it
consolidated and their schema ids (Project JANUS, part 4, "UMAP monitoring"):

1. **Aligned UMAP** (``umap.AlignedUMAP``, McInnes et al. 2018; Dadu et al.
   2023) over a sliding window of the last ``window`` cycles. Consecutive
   cycles are related by schema identity: the j-th point of schema k in one
   cycle is related to the j-th point of schema k in the next. The window is
   refitted each cycle and mapped onto the previous coordinates by orthogonal
   Procrustes on the overlapping cycles, so the map does not spin between
   cycles *(ours: bounded cost instead of an ever-growing ``update`` history)*.
   The first cycle, or one sharing no schema with the previous, uses a plain
   ``umap.UMAP`` fit.
2. **DBSCAN** (Ester et al. 1996, ``sklearn.cluster.DBSCAN``) on the newest
   embedding; the number of clusters excludes noise (label −1).
3. **Parametric UMAP**: a torch MLP ``d → 256 → 128 → 3`` (ReLU) regressed
   with MSE onto the newest embedding (warm-started across cycles), giving a
   real-time :meth:`UMAPMonitor.project` for single states.
4. **Anomaly**: ``is_anomaly(x) = min_k ‖f(x) − c_k‖₂ > τ_anomaly`` with
   ``τ_anomaly = 2.0`` (Project JANUS), where ``c_k`` is the 3-D centroid of
   schema k's points in the newest embedding.

Plots are drawn with matplotlib's Agg canvas directly (no pyplot, no global
backend switch).

Reproducibility and threads: UMAP runs with ``random_state`` (seed + cycle),
which makes umap-learn single-threaded and its layout deterministic; the
AlignedUMAP layout is a sequential loop seeded from the same state. umap-learn
sets numba's thread count around each fit and restores it afterwards; with
numba's OpenMP threading layer that call reaches the libgomp torch shares and
leaves *torch* running on numba's thread count (all cores) — on a busy 2-core
machine the next gradient steps ran 10-40x slower. :meth:`UMAPMonitor.update`
therefore restores torch's thread count after the UMAP and DBSCAN steps.
"""

from __future__ import annotations

import contextlib
import os
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from janus_env.checks import check_int, check_positive
from replay.umap_cache import import_umap

__all__ = ["ParametricUMAPNet", "UMAPMonitor"]

_BAD_X = "Expected `x` of shape (n, {}), got {}"
_BAD_X_ANY = "Expected a 2-D `x`, got shape {}"
_NON_FINITE = "Expected finite values in `x`"
_BAD_LABELS = "Expected `labels` of shape ({},), got {}"
_TOO_FEW = "UMAP needs at least {} points (n_neighbors + 1), got {}"
_NOT_FITTED = "Call update() before {}()"
_BAD_LOGGER = "Expected a torch SummaryWriter (add_image/add_scalar) or an SB3 Logger (record), got {}"

_N_COMPONENTS = 3


class ParametricUMAPNet(nn.Module):
    """MLP ``d → 256 → 128 → 3`` used as a parametric UMAP projection (Sainburg et al. 2021)."""

    def __init__(self, input_dim: int) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(input_dim, 256),
            nn.ReLU(),
            nn.Linear(256, 128),
            nn.ReLU(),
            nn.Linear(128, _N_COMPONENTS),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Project standardized features to 3-D."""
        return self.net(x)


@contextlib.contextmanager
def _keep_torch_threads() -> Iterator[None]:
    """Restore ``torch.get_num_threads()`` on exit (numba's OpenMP layer may change it, see module docstring)."""
    n_threads = torch.get_num_threads()
    try:
        yield
    finally:
        if torch.get_num_threads() != n_threads:
            torch.set_num_threads(n_threads)


def _schema_relations(prev_labels: np.ndarray, new_labels: np.ndarray) -> dict[int, int]:
    """Relate the j-th point of schema k in ``prev`` to the j-th point of schema k in ``new``.

    Points with a negative label are unrelated. Vectorized: each point gets the
    key ``(label, rank within label)`` and keys are matched with ``np.intersect1d``.
    """

    def keys(labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        idx = np.flatnonzero(labels >= 0)
        lab = labels[idx]
        order = np.argsort(lab, kind="stable")
        sorted_lab = lab[order]
        starts = np.flatnonzero(np.r_[True, sorted_lab[1:] != sorted_lab[:-1]])
        group_start = np.repeat(starts, np.diff(np.r_[starts, sorted_lab.shape[0]]))
        rank = np.empty_like(lab)
        rank[order] = np.arange(lab.shape[0]) - group_start
        return idx, lab * (1 << 31) + rank

    prev_idx, prev_keys = keys(prev_labels.astype(np.int64))
    new_idx, new_keys = keys(new_labels.astype(np.int64))
    _, ip, inew = np.intersect1d(prev_keys, new_keys, assume_unique=True, return_indices=True)
    return dict(zip(prev_idx[ip].tolist(), new_idx[inew].tolist()))


def _procrustes(source: np.ndarray, target: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Orthogonal Procrustes with translation: ``(x − s̄)R + t̄ ≈ target`` (Schönemann 1966).

    ``R = UVᵀ`` from the SVD ``(S − s̄)ᵀ(T − t̄) = UΣVᵀ``. Returns ``(R, s̄, t̄)``.
    """
    s_mean = source.mean(axis=0)
    t_mean = target.mean(axis=0)
    u, _, vt = np.linalg.svd((source - s_mean).T @ (target - t_mean))
    return u @ vt, s_mean, t_mean


class UMAPMonitor:
    """Aligned UMAP + DBSCAN + parametric projection of consolidated experience.

    Args:
        n_neighbors: UMAP neighbourhood size; default 15 (umap-learn default).
        n_epochs: UMAP optimization epochs; default 200.
        min_dist: UMAP ``min_dist``; default 0.1.
        window: Cycles kept for alignment; default 3 (= AlignedUMAP's
            ``alignment_window_size``).
        alignment_regularisation: AlignedUMAP ``alignment_regularisation``; 1e-2.
        dbscan_eps: DBSCAN ``eps`` in embedding units; default 0.5 (sklearn).
        dbscan_min_samples: DBSCAN ``min_samples``; default 5 (sklearn).
        tau_anomaly: Anomaly distance τ_anomaly in embedding units; 2.0 (Project JANUS).
        mlp_epochs: Full-batch Adam steps per cycle for the parametric net; 200 *(ours)*.
        mlp_lr: Adam learning rate; 1e-3 *(ours)*.
        seed: Seed for UMAP (``random_state``, single-threaded, reproducible)
            and the MLP initialization.

    Raises:
        TypeError: A size that is not an int, or a threshold or rate that is not a real number.
        ValueError: On non-positive sizes or thresholds (``n_neighbors`` < 2; ``tau_anomaly`` may be
            ``math.inf``: nothing is an anomaly).
    """

    def __init__(
        self,
        *,
        n_neighbors: int = 15,
        n_epochs: int = 200,
        min_dist: float = 0.1,
        window: int = 3,
        alignment_regularisation: float = 1e-2,
        dbscan_eps: float = 0.5,
        dbscan_min_samples: int = 5,
        tau_anomaly: float = 2.0,
        mlp_epochs: int = 200,
        mlp_lr: float = 1e-3,
        seed: int = 0,
    ) -> None:
        self.n_neighbors = check_int("n_neighbors", n_neighbors, low=2)
        self.n_epochs = check_int("n_epochs", n_epochs, low=1)
        self.min_dist = float(min_dist)
        self.window = check_int("window", window, low=1)
        self.alignment_regularisation = float(alignment_regularisation)
        self.dbscan_eps = check_positive("dbscan_eps", dbscan_eps)
        self.dbscan_min_samples = check_int("dbscan_min_samples", dbscan_min_samples, low=1)
        self.tau_anomaly = check_positive("tau_anomaly", tau_anomaly, finite=False)  # math.inf: no anomalies
        self.mlp_epochs = check_int("mlp_epochs", mlp_epochs, low=1)
        self.mlp_lr = check_positive("mlp_lr", mlp_lr)
        self.seed = int(seed)
        self.n_cycles = 0
        self.input_dim: int | None = None
        self.xs: list[np.ndarray] = []
        self.labels: list[np.ndarray] = []
        self.embeddings: list[np.ndarray] = []
        self._relations: list[dict[int, int]] = []
        self.cluster_labels: np.ndarray = np.zeros(0, dtype=np.int64)
        self.n_clusters = 0
        self.n_anomalies = 0
        self.alignment_resets = 0
        self.centroid_ids = np.zeros(0, dtype=np.int64)
        self.centroids = np.zeros((0, _N_COMPONENTS), dtype=np.float64)
        self.x_mean: np.ndarray | None = None
        self.x_std: np.ndarray | None = None
        self.net: ParametricUMAPNet | None = None
        self.last_mlp_loss = float("nan")

    @property
    def min_points(self) -> int:
        """Smallest batch :meth:`update` accepts (``n_neighbors + 1``)."""
        return self.n_neighbors + 1

    @property
    def fitted(self) -> bool:
        """Whether :meth:`update` has run at least once."""
        return self.net is not None

    # ----------------------------------------------------------------- fitting
    def _umap_kwargs(self) -> dict[str, Any]:
        return {
            "n_neighbors": self.n_neighbors,
            "n_components": _N_COMPONENTS,
            "n_epochs": self.n_epochs,
            "min_dist": self.min_dist,
            "random_state": self.seed + self.n_cycles,
        }

    def _embed(self, x: np.ndarray, labels: np.ndarray) -> np.ndarray:
        """Embed ``x`` aligned with the stored window; updates the window."""
        umap = import_umap()  # lazy: a heavy import; numba's cache on for its functions (replay.umap_cache)

        relations = _schema_relations(self.labels[-1], labels) if self.xs else {}
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="n_jobs value", category=UserWarning)
            if not relations:
                if self.xs:
                    self.alignment_resets += 1
                self.xs, self.labels, self.embeddings, self._relations = [], [], [], []
                emb = umap.UMAP(**self._umap_kwargs()).fit_transform(x)
            else:
                rels = [*self._relations, relations]
                kwargs = self._umap_kwargs()
                aligned = umap.AlignedUMAP(
                    **kwargs,
                    alignment_regularisation=self.alignment_regularisation,
                    alignment_window_size=self.window,
                ).fit([*self.xs, x], relations=rels)
                refit = [np.asarray(e, dtype=np.float64) for e in aligned.embeddings_]
                src = np.concatenate(refit[:-1])
                dst = np.concatenate(self.embeddings)
                ok = np.all(np.isfinite(src), axis=1) & np.all(np.isfinite(dst), axis=1)
                rot, s_mean, t_mean = _procrustes(src[ok], dst[ok])
                emb = (refit[-1] - s_mean) @ rot + t_mean
                self._relations = rels
        emb = np.asarray(emb, dtype=np.float64)
        self.xs.append(x)
        self.labels.append(labels)
        self.embeddings.append(emb)
        if len(self.xs) > self.window:
            self.xs, self.labels, self.embeddings = self.xs[1:], self.labels[1:], self.embeddings[1:]
            self._relations = self._relations[1:]
        return emb

    def update(self, x: np.ndarray, labels: np.ndarray, *, probe: np.ndarray | None = None) -> dict[str, float]:
        """Run one monitoring cycle: aligned UMAP, DBSCAN, parametric net, anomalies.

        Args:
            x: ``(n, d)`` features of the consolidated transitions (n ≥ ``min_points``).
            labels: ``(n,)`` schema id per point (−1: none).
            probe: Points whose anomalies are counted into ``n_anomalies``;
                defaults to ``x``.

        Returns:
            ``{"umap_clusters", "anomalies", "mlp_loss", "alignment_resets"}``.

        Raises:
            ValueError: On bad shapes, non-finite values, too few points or a
                feature dimension different from earlier cycles.
        """
        from sklearn.cluster import DBSCAN

        x = self._check_x(x, fitting=True)
        labels = np.asarray(labels).astype(np.int64).reshape(-1)
        if labels.shape[0] != x.shape[0]:
            raise ValueError(_BAD_LABELS.format(x.shape[0], labels.shape))
        if x.shape[0] < self.min_points:
            raise ValueError(_TOO_FEW.format(self.min_points, x.shape[0]))
        with _keep_torch_threads():
            emb = self._embed(x.astype(np.float32), labels)
            finite = np.all(np.isfinite(emb), axis=1)
            cluster_labels = np.full(x.shape[0], -1, dtype=np.int64)
            if finite.sum() >= 1:
                dbscan = DBSCAN(eps=self.dbscan_eps, min_samples=self.dbscan_min_samples)
                cluster_labels[finite] = dbscan.fit_predict(emb[finite])
        self.cluster_labels = cluster_labels
        self.n_clusters = int(np.unique(cluster_labels[cluster_labels >= 0]).shape[0])

        use = finite & (labels >= 0)
        ids, inverse = np.unique(labels[use], return_inverse=True)
        sums = np.zeros((ids.shape[0], _N_COMPONENTS))
        np.add.at(sums, inverse, emb[use])
        self.centroid_ids = ids.astype(np.int64)
        self.centroids = sums / np.maximum(np.bincount(inverse, minlength=ids.shape[0]), 1)[:, None]

        self._fit_net(x[finite], emb[finite])
        self.n_cycles += 1
        self.n_anomalies = int(np.sum(self.is_anomaly(x if probe is None else probe)))
        return {
            "umap_clusters": float(self.n_clusters),
            "anomalies": float(self.n_anomalies),
            "mlp_loss": float(self.last_mlp_loss),
            "alignment_resets": float(self.alignment_resets),
        }

    def _fit_net(self, x: np.ndarray, target: np.ndarray) -> None:
        """Warm-started full-batch Adam regression (MSE) of the MLP onto ``target``."""
        self.x_mean = x.mean(axis=0)
        self.x_std = np.where(x.std(axis=0) > 1e-8, x.std(axis=0), 1.0)
        if self.net is None:
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(self.seed)
                self.net = ParametricUMAPNet(x.shape[1])
        xt = torch.as_tensor((x - self.x_mean) / self.x_std, dtype=torch.float32)
        yt = torch.as_tensor(target, dtype=torch.float32)
        optimizer = torch.optim.Adam(self.net.parameters(), lr=self.mlp_lr)
        self.net.train()
        loss = torch.zeros(())
        for _ in range(self.mlp_epochs):
            optimizer.zero_grad()
            loss = torch.mean((self.net(xt) - yt) ** 2)
            loss.backward()
            optimizer.step()
        self.net.eval()
        self.last_mlp_loss = float(loss.detach())

    # ------------------------------------------------------------- real time
    def _check_x(self, x: np.ndarray, *, fitting: bool = False) -> np.ndarray:
        x = np.asarray(x, dtype=np.float64)
        if x.ndim != 2:
            raise ValueError(_BAD_X_ANY.format(x.shape))
        if self.input_dim is None and fitting:
            self.input_dim = x.shape[1]
        if x.shape[1] != self.input_dim:
            raise ValueError(_BAD_X.format(self.input_dim, x.shape))
        if not np.all(np.isfinite(x)):
            raise ValueError(_NON_FINITE)
        return x

    @torch.no_grad()
    def project(self, x: np.ndarray) -> np.ndarray:
        """Real-time 3-D projection ``f(x)`` through the parametric net.

        Args:
            x: ``(n, d)`` or ``(d,)`` features.

        Returns:
            ``(n, 3)`` (or ``(3,)``) float64 coordinates.

        Raises:
            RuntimeError: Before the first :meth:`update`.
        """
        if self.net is None:
            raise RuntimeError(_NOT_FITTED.format("project"))
        single = np.ndim(x) == 1
        x2 = self._check_x(np.atleast_2d(x))
        out = self.net(torch.as_tensor((x2 - self.x_mean) / self.x_std, dtype=torch.float32)).numpy().astype(np.float64)
        return out[0] if single else out

    def is_anomaly(self, x: np.ndarray) -> np.ndarray:
        """``min_k ‖f(x) − c_k‖₂ > τ_anomaly`` per point (True when no centroid exists).

        Args:
            x: ``(n, d)`` or ``(d,)`` features.

        Returns:
            Boolean array ``(n,)`` (or a 0-d bool array for one point).
        """
        z = self.project(x)
        z2 = np.atleast_2d(z)
        if self.centroids.shape[0] == 0:
            out = np.ones(z2.shape[0], dtype=bool)
        else:
            dist = np.linalg.norm(z2[:, None, :] - self.centroids[None, :, :], axis=2)
            out = np.all(dist > self.tau_anomaly, axis=1)
        return out[0] if z.ndim == 1 else out

    # ------------------------------------------------------------------ plots
    def figure(self) -> Any:
        """A matplotlib ``Figure``: one scatter (UMAP axes 1–2, colour = schema) per stored cycle."""
        from matplotlib.figure import Figure

        if not self.embeddings:
            raise RuntimeError(_NOT_FITTED.format("figure"))
        n = len(self.embeddings)
        fig = Figure(figsize=(3.2 * n, 3.2), dpi=80)
        first = self.n_cycles - n
        for i, (emb, lab) in enumerate(zip(self.embeddings, self.labels)):
            ax = fig.add_subplot(1, n, i + 1)
            ax.scatter(emb[:, 0], emb[:, 1], c=lab, s=6, cmap="tab20")
            ax.set_title(f"cycle {first + i}")
            ax.set_xlabel("umap-1")
            ax.set_ylabel("umap-2")
        if self.centroids.shape[0]:
            fig.axes[-1].scatter(self.centroids[:, 0], self.centroids[:, 1], marker="x", c="black", s=30)
        fig.tight_layout()
        return fig

    def render(self) -> np.ndarray:
        """The :meth:`figure` as an ``(H, W, 3)`` uint8 RGB image."""
        from matplotlib.backends.backend_agg import FigureCanvasAgg

        canvas = FigureCanvasAgg(self.figure())
        canvas.draw()
        return np.asarray(canvas.buffer_rgba())[..., :3].copy()

    def save_plot(self, path: str | os.PathLike[str]) -> Path:
        """Write the :meth:`figure` as a PNG; returns the path."""
        from matplotlib.backends.backend_agg import FigureCanvasAgg

        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        fig = self.figure()
        FigureCanvasAgg(fig)
        fig.savefig(path, format="png")
        return path

    def log_to_tensorboard(self, writer: Any, step: int) -> None:
        """Log the plot (``sleep/umap``) and ``sleep/umap_clusters``, ``sleep/anomalies``.

        Args:
            writer: A ``torch.utils.tensorboard.SummaryWriter`` (written at
                ``step``) or an SB3 ``Logger`` (values are recorded; SB3 writes
                them at its next ``dump(step)``, the image to TensorBoard only).
            step: Global step for the SummaryWriter.

        Raises:
            TypeError: For any other writer.
            RuntimeError: Before the first :meth:`update`.
        """
        image = self.render()
        scalars = {"sleep/umap_clusters": float(self.n_clusters), "sleep/anomalies": float(self.n_anomalies)}
        if hasattr(writer, "add_image") and hasattr(writer, "add_scalar"):
            writer.add_image("sleep/umap", image, global_step=step, dataformats="HWC")
            for key, value in scalars.items():
                writer.add_scalar(key, value, global_step=step)
        elif hasattr(writer, "record"):
            from stable_baselines3.common.logger import Image

            writer.record("sleep/umap", Image(image, "HWC"), exclude=("stdout", "log", "json", "csv"))
            for key, value in scalars.items():
                writer.record(key, value)
        else:
            raise TypeError(_BAD_LOGGER.format(type(writer).__name__))

    # ------------------------------------------------------------ checkpoints
    def state_dict(self) -> dict[str, Any]:
        """Plain arrays, lists of arrays and the MLP ``state_dict`` (``torch.save``-able)."""
        rels = [np.asarray(sorted(r.items()), dtype=np.int64).reshape(-1, 2) for r in self._relations]
        return {
            "n_cycles": self.n_cycles,
            "input_dim": -1 if self.input_dim is None else self.input_dim,
            "xs": [a.copy() for a in self.xs],
            "labels": [a.copy() for a in self.labels],
            "embeddings": [a.copy() for a in self.embeddings],
            "relations": rels,
            "cluster_labels": self.cluster_labels.copy(),
            "n_clusters": self.n_clusters,
            "n_anomalies": self.n_anomalies,
            "alignment_resets": self.alignment_resets,
            "centroid_ids": self.centroid_ids.copy(),
            "centroids": self.centroids.copy(),
            "x_mean": None if self.x_mean is None else self.x_mean.copy(),
            "x_std": None if self.x_std is None else self.x_std.copy(),
            "net": None if self.net is None else {k: v.detach().clone() for k, v in self.net.state_dict().items()},
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state_dict` output (settings come from the constructor)."""
        self.n_cycles = int(state["n_cycles"])
        self.input_dim = None if int(state["input_dim"]) < 0 else int(state["input_dim"])
        self.xs = [np.asarray(a, dtype=np.float32) for a in state["xs"]]
        self.labels = [np.asarray(a, dtype=np.int64) for a in state["labels"]]
        self.embeddings = [np.asarray(a, dtype=np.float64) for a in state["embeddings"]]
        self._relations = [dict(np.asarray(r, dtype=np.int64).reshape(-1, 2).tolist()) for r in state["relations"]]
        self.cluster_labels = np.asarray(state["cluster_labels"], dtype=np.int64)
        self.n_clusters = int(state["n_clusters"])
        self.n_anomalies = int(state["n_anomalies"])
        self.alignment_resets = int(state["alignment_resets"])
        self.centroid_ids = np.asarray(state["centroid_ids"], dtype=np.int64)
        self.centroids = np.asarray(state["centroids"], dtype=np.float64).reshape(-1, _N_COMPONENTS)
        self.x_mean = None if state["x_mean"] is None else np.asarray(state["x_mean"], dtype=np.float64)
        self.x_std = None if state["x_std"] is None else np.asarray(state["x_std"], dtype=np.float64)
        if state["net"] is None:
            self.net = None
        else:
            self.net = ParametricUMAPNet(int(state["input_dim"]))
            self.net.load_state_dict(state["net"])
            self.net.eval()
