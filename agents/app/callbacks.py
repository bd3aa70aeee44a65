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
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
from stable_baselines3.common.callbacks import BaseCallback

from agents.app.checkpoint import DEFAULT_KEEP, Checkpoint, CheckpointError, save_checkpoint
from janus_env.checks import check_int, is_number
from replay import SleepState

_OWN_STATE = "checkpoint"
_NOT_STATEFUL = "Expected component {!r} to have state_dict() and load_state_dict(), got a {}"
_RESERVED_COMPONENT = "Component name {!r} is the checkpoint callback's own"
_OTHER_CALLBACKS = "{}: holds the state of callbacks {}, this run has {}"
_CEREBELLUM_MISMATCH = "{}: the run's cerebellum and the checkpoint's do not match (one of them is missing)"
_NO_MODEL = "AtomicCheckpointCallback.save() needs a model outside learn(): save(model)"


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
        from matplotlib.figure import Figure as MplFigure
        from stable_baselines3.common.logger import Figure

        # not a pyplot figure: the logger keeps only the last one recorded before a dump (off-policy algorithms
        # dump every few episodes), so pyplot's registry would keep every other one open for the whole run
        fig = MplFigure(figsize=(6, 3))
        ax = fig.subplots()
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

    Checkpoints are taken between two rollouts (SB3's ``on_rollout_start``): after the last step's transition is
    stored and the updates it triggers are done, so the checkpoint at step ``N`` holds all ``N`` transitions and
    a resumed ``learn()`` starts exactly where the uninterrupted one goes on. (At ``on_step`` SB3 has not yet
    stored the step's transition, updated ε or trained.) A checkpoint is due at the first rollout boundary at
    or after each multiple of ``save_freq``, so with PPO's ``n_steps·n_envs`` rollouts a ``save_freq`` that is
    not a multiple of them is rounded up to the next boundary. The last step of ``learn()`` has no boundary
    after it: ``train.py`` saves it with :meth:`save` once ``learn()`` returns.

    Args:
        run_dir: the run folder.
        save_freq: steps between checkpoints (counted in ``num_timesteps``).
        sleep_callback: its ``sleep_state`` is saved too (``sleep_state.pt``).
        extra: JSON-able metadata stored in each checkpoint's ``meta.json``.
        keep: checkpoints kept on disk, the newest included (see ``agents.app.checkpoint.DEFAULT_KEEP``).
        components: name → callback with ``state_dict()`` / ``load_state_dict()`` (the sleep schedule, the
            cerebellum's and the basal ganglia's rings), saved in ``callbacks.npz`` and restored by
            :meth:`restore`.
        cerebellum: the online ``agents.Cerebellum``; its weights and optimizer state are saved.
        verbose: SB3 verbosity.

    Raises:
        TypeError: ``save_freq`` or ``keep`` is not an int; a component without ``state_dict``.
        ValueError: ``save_freq`` or ``keep`` < 1.
    """

    def __init__(self, run_dir: str | Path, save_freq: int, sleep_callback: Any = None,
                 extra: dict[str, Any] | None = None, verbose: int = 0, *, keep: int = DEFAULT_KEEP,
                 components: Mapping[str, Any] | None = None, cerebellum: Any = None) -> None:
        super().__init__(verbose)
        self.save_freq = check_int("save_freq", save_freq, low=1)
        self.keep = check_int("keep", keep, low=1)
        self.run_dir = Path(run_dir)
        self.sleep_callback = sleep_callback
        self.extra = dict(extra or {})
        self.components = dict(components or {})
        for name, component in self.components.items():
            if not (callable(getattr(component, "state_dict", None))
                    and callable(getattr(component, "load_state_dict", None))):
                raise TypeError(_NOT_STATEFUL.format(name, type(component).__name__))
        if _OWN_STATE in self.components:
            raise ValueError(_RESERVED_COMPONENT.format(_OWN_STATE))
        self.cerebellum = cerebellum
        self._last: int | None = None

    @property
    def last_saved(self) -> int | None:
        """The step grid point of the last checkpoint (``N - N % save_freq``); None before learning starts."""
        return self._last

    def state_dict(self) -> dict[str, Any]:
        """``{"last_saved": ...}``: a resumed run checkpoints next ``save_freq`` steps after it."""
        return {"last_saved": self._last}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore :meth:`state_dict` output.

        Raises:
            TypeError / ValueError: ``last_saved`` is not an int >= 0.
        """
        self._last = check_int("last_saved", state.get("last_saved"), low=0)

    def _init_callback(self) -> None:
        if self._last is None:  # a new run (a resumed one has its checkpoint's)
            steps = int(self.model.num_timesteps)
            self._last = steps - steps % self.save_freq

    def _on_step(self) -> bool:
        return True

    def _on_rollout_start(self) -> None:
        if self.model.num_timesteps - self._last >= self.save_freq:
            self.save()

    def save(self, model: Any = None) -> Path:
        """Write a checkpoint of ``model`` (default: the model being trained) now; return its folder.

        Raises:
            RuntimeError: no ``model`` given outside ``learn()``.
        """
        model = model if model is not None else getattr(self, "model", None)  # set by SB3 when learn() starts
        if model is None:
            raise RuntimeError(_NO_MODEL)
        steps = int(model.num_timesteps)
        self._last = steps - steps % self.save_freq
        sleep_state = getattr(self.sleep_callback, "sleep_state", None)
        extra = {**self.extra}
        if sleep_state is not None:
            extra["sleep_cycles"] = int(sleep_state.cycle)
        states = {name: component.state_dict() for name, component in self.components.items()}
        states[_OWN_STATE] = self.state_dict()
        folder = save_checkpoint(self.run_dir, model, sleep_state=sleep_state, callback_states=states,
                                 cerebellum=self.cerebellum, extra=extra, keep=self.keep)
        if self.verbose:
            print(f"checkpoint: {folder}")
        return folder

    def restore(self, checkpoint: Checkpoint) -> None:
        """Apply a loaded checkpoint to the callbacks: components, this callback's step, cerebellum, sleep state.

        Raises:
            CheckpointError: the checkpoint holds state for other callbacks than this run has, or lacks the
                cerebellum or sleep state the run learns.
            ValueError / TypeError / RuntimeError: a state its callback, ``load_state_dict`` or the optimizer refuses.
        """
        states = checkpoint.callback_states
        expected = {*self.components, _OWN_STATE}
        if set(states) != expected:
            raise CheckpointError(_OTHER_CALLBACKS.format(checkpoint.folder, sorted(states), sorted(expected)))
        if (self.cerebellum is not None) != (checkpoint.cerebellum is not None):
            raise CheckpointError(_CEREBELLUM_MISMATCH.format(checkpoint.folder))
        sleep_state = None
        if self.sleep_callback is not None and checkpoint.sleep_state is not None:
            sleep_state = SleepState.from_state_dict(checkpoint.sleep_state, self.sleep_callback.sleep_config)
        if self.cerebellum is not None:
            self.cerebellum.load_state_dict(checkpoint.cerebellum["model"])
            self.cerebellum.optimizer.load_state_dict(checkpoint.cerebellum["optimizer"])
        for name, component in self.components.items():
            component.load_state_dict(states[name])
        self.load_state_dict(states[_OWN_STATE])
        if self.sleep_callback is not None:
            self.sleep_callback.sleep_state = sleep_state
