"""SB3 callbacks of the JANUS CLIs: ``janus/`` TensorBoard scalars and atomic checkpoints.

``JanusMetricsCallback`` reads what the glass-box wrappers and the agent put
in each step's ``info`` (``ltn``, ``halted``/``halt_reason``, ``go_nogo``,
``fusion_gates``, ``predicted_slippage_bps``) plus the PER buffer and the
sleep callback's last metrics, and records them with ``logger.record_mean``
so SB3 averages them over its logging interval:

| key | meaning |
| --- | --- |
| `janus/ltn_satisfaction` | SatAgg of the proposed action |
| `janus/violation_rate` | fraction of proposed actions with violation > 0 |
| `janus/shield_overrides` | fraction of steps the shield replaced the action |
| `janus/halts/<reason>` | episodes ended by a breaker, per reason (count) |
| `janus/go_mean`, `janus/nogo_mean`, `janus/veto_rate` | basal-ganglia scores |
| `janus/fusion_gate/<name>` | thalamus gate values (from ``info`` or the policy's ``JanusExtractor``) |
| `janus/cerebellum_error` | |actual − predicted| slippage, bps |
| `janus/per_mean_priority`, `janus/per_beta` | prioritized replay |
| `janus/equity` | mark-to-market equity of env 0 |
| `janus/equity_curve` | image of env 0's last finished episode |
"""

from __future__ import annotations

import math
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
from stable_baselines3.common.callbacks import BaseCallback

from agents.app.checkpoint import save_checkpoint
from janus_env.checks import check_int, is_number


def _mean_numbers(mapping: Any) -> dict[str, float]:
    """Finite float entries of a (possibly nested one level) mapping."""
    out: dict[str, float] = {}
    if not isinstance(mapping, dict):
        return out
    for key, value in mapping.items():
        if isinstance(value, (list, tuple, np.ndarray)):
            arr = np.asarray(value, dtype=np.float64)
            if arr.size:
                value = float(arr.mean())
            else:
                continue
        if isinstance(value, (bool, np.bool_)):
            value = float(value)
        if is_number(value) and math.isfinite(value):
            out[str(key)] = float(value)
    return out


class JanusMetricsCallback(BaseCallback):
    """Record the brain's state as ``janus/*`` TensorBoard scalars (see module docstring).

    Sleep-phase metrics (replays, TD-error before/after, schema count, UMAP
    clusters, anomalies) are logged as ``sleep/*`` by ``replay.SleepPhaseCallback``.

    Args:
        plot_dir: where equity-curve PNGs of finished episodes are written (None: not written).
        verbose: SB3 verbosity.
    """

    def __init__(self, plot_dir: str | Path | None = None, verbose: int = 0) -> None:
        super().__init__(verbose)
        self.plot_dir = Path(plot_dir) if plot_dir is not None else None
        self.halts: Counter[str] = Counter()
        self._equity: list[float] = []
        self._episodes = 0

    def _on_step(self) -> bool:
        infos = self.locals.get("infos") or []
        dones = self.locals.get("dones")
        record = self.logger.record_mean
        for i, info in enumerate(infos):
            ltn = info.get("ltn")
            if isinstance(ltn, dict):
                record("janus/ltn_satisfaction", float(ltn.get("sat_agg", math.nan)))
                record("janus/violation_rate", float(ltn.get("violation", 0.0) > 0.0))
                record("janus/shield_overrides", float(bool(ltn.get("overridden", False))))
            if info.get("halted"):
                reason = str(info.get("halt_reason", "unknown")).split(":")[0]
                self.halts[reason] += 1
                self.logger.record(f"janus/halts/{reason}", self.halts[reason])
            go_nogo = info.get("go_nogo")
            if isinstance(go_nogo, dict):
                scores = _mean_numbers(go_nogo)
                for name in ("go", "nogo"):
                    if name in scores:
                        record(f"janus/{name}_mean", scores[name])
                if "vetoed" in scores:
                    record("janus/veto_rate", scores["vetoed"])
            for name, value in _mean_numbers(info.get("fusion_gates")).items():
                record(f"janus/fusion_gate/{name}", value)
            predicted = info.get("predicted_slippage_bps")
            if predicted is not None and info.get("exec_qty", 0) != 0:
                record("janus/cerebellum_error", abs(float(info["slippage_bps"]) - float(predicted)))
            if i == 0 and "equity" in info:
                self._equity.append(float(info["equity"]))
                record("janus/equity", float(info["equity"]))
                if dones is not None and bool(dones[0]):
                    self._episode_finished()
        policy = self.model.policy
        extractor = getattr(policy, "features_extractor", None) or getattr(getattr(policy, "q_net", None),
                                                                            "features_extractor", None)
        for name, value in _mean_numbers(getattr(extractor, "last_gates", None)).items():
            record(f"janus/fusion_gate/{name}", value)
        buffer = getattr(self.model, "replay_buffer", None)
        if buffer is not None and hasattr(buffer, "mean_priority") and buffer.size() > 0:
            record("janus/per_mean_priority", float(buffer.mean_priority()))
            record("janus/per_beta", float(buffer.beta))
        return True

    def _on_training_end(self) -> None:
        # off-policy algorithms write logs every k episodes: keep what was recorded since the last write
        self.logger.dump(self.num_timesteps)

    def _episode_finished(self) -> None:
        curve = np.asarray(self._equity)
        self._equity = []
        self._episodes += 1
        if curve.size < 2:
            return
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        from stable_baselines3.common.logger import Figure

        fig, ax = plt.subplots(figsize=(6, 3))
        ax.plot(curve)
        ax.set_xlabel("step")
        ax.set_ylabel("equity")
        ax.set_title(f"episode {self._episodes} (env 0)")
        fig.tight_layout()
        if self.plot_dir is not None:
            self.plot_dir.mkdir(parents=True, exist_ok=True)
            fig.savefig(self.plot_dir / "equity_last_episode.png", dpi=90)
        self.logger.record("janus/equity_curve", Figure(fig, close=True), exclude=("stdout", "log", "json", "csv"))


class AtomicCheckpointCallback(BaseCallback):
    """Every ``save_freq`` environment steps, write a complete atomic checkpoint (see ``agents.app.checkpoint``).

    Args:
        run_dir: the run folder.
        save_freq: steps between checkpoints (counted in ``num_timesteps``).
        sleep_callback: its ``sleep_state`` is saved too.
        extra: JSON-able metadata stored in each checkpoint.

    Raises:
        TypeError: ``save_freq`` is not an int.
        ValueError: ``save_freq`` < 1.
    """

    def __init__(self, run_dir: str | Path, save_freq: int, sleep_callback: Any = None,
                 extra: dict[str, Any] | None = None, verbose: int = 0) -> None:
        super().__init__(verbose)
        self.save_freq = check_int("save_freq", save_freq, low=1)
        self.run_dir = Path(run_dir)
        self.sleep_callback = sleep_callback
        self.extra = dict(extra or {})
        self._last = 0

    def _init_callback(self) -> None:
        self._last = self.num_timesteps - self.num_timesteps % self.save_freq

    def _on_step(self) -> bool:
        if self.num_timesteps - self._last >= self.save_freq:
            self._last = self.num_timesteps - self.num_timesteps % self.save_freq
            self.save()
        return True

    def save(self) -> Path:
        sleep_state = getattr(self.sleep_callback, "sleep_state", None)
        extra = {**self.extra}
        if sleep_state is not None:
            extra["sleep_cycles"] = int(sleep_state.cycle)
        folder = save_checkpoint(self.run_dir, self.model, sleep_state=sleep_state, extra=extra)
        if self.verbose:
            print(f"checkpoint: {folder}")
        return folder
