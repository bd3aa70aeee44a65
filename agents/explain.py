"""``DecisionExplainer``: the deciding policy's own explanation, written into the info of the step it decided.

A trained policy decides in ``model.predict(obs)``; the env steps the decision right after. Wrapped around the
glass box (and inside ``AuditLog``, which records the info), the explainer adds to that step's info what the
policy held at that moment:

* ``go_nogo``: the basal ganglia's Go scores and No-Go probabilities, the proposal, the final action, the veto
  and its reason (``policy.last_go_nogo``);
* ``fusion_gates``: the thalamic gate weights of the observation (``JanusExtractor.last_gates``);
* ``gaf_attribution``: which GAF frames drove the Go score of the proposal (:mod:`agents.attribution`:
  per-frame gradient × input, the frame that mattered most).

With ``keep=N`` it also keeps the ``N`` most consequential decisions whole (GAF video, attribution maps, the
shield's rule truths, breakers): consequence = ``|reward|``, the step's change of equity, ties to the earlier
decision; :func:`render_decision` draws one as a PNG (``evaluate.py --explain N``).
"""

from __future__ import annotations

import heapq
import itertools
from pathlib import Path
from typing import Any, NamedTuple

import gymnasium as gym
import numpy as np

from agents.attribution import GAFAttribution, explainable, gaf_attribution
from agents.basal_ganglia import go_extractor, is_basal_ganglia_policy
from agents.extractor import JanusExtractor
from janus_env.checks import check_int


class Decision(NamedTuple):
    """One explained decision, kept whole."""

    episode: int
    step: int
    reward: float
    action: Any
    attribution: GAFAttribution | None
    go_nogo: dict[str, Any] | None
    fusion_gates: dict[str, float] | None
    ltn: dict[str, Any] | None
    halt_reason: str | None


class DecisionExplainer(gym.Wrapper):
    """Write ``model``'s explanation of each decision into the info of the step that executes it.

    Args:
        env: the env the model acts in (the glass box around ``Janus-LOB-v0``).
        model: the SB3 model whose ``predict`` chose each action stepped here.
        keep: how many of the most consequential decisions to keep whole (:attr:`decisions`).
        attribution: compute the GAF attribution (one backward pass per decision) when the policy allows it.

    Raises:
        TypeError / ValueError: ``keep`` is not an int >= 0.
    """

    def __init__(self, env: gym.Env, model: Any, *, keep: int = 0, attribution: bool = True) -> None:
        super().__init__(env)
        self.policy = model.policy
        self.keep = check_int("keep", keep, low=0)
        self.gated = is_basal_ganglia_policy(self.policy)
        extractor = go_extractor(self.policy) if self.gated else next(
            (m for m in self.policy.modules() if isinstance(m, JanusExtractor)), None)
        self.extractor = extractor if isinstance(extractor, JanusExtractor) else None
        self.attribute = bool(attribution) and explainable(self.policy)
        self._kept: list[tuple[float, int, Decision]] = []
        self._order = itertools.count()
        self._obs: Any = None
        self._episode, self._step = -1, 0

    @property
    def decisions(self) -> list[Decision]:
        """The kept decisions, most consequential first."""
        return [d for _, _, d in sorted(self._kept, key=lambda k: (-k[0], -k[1]))]  # k[1] = −order: earlier first

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        obs, info = self.env.reset(seed=seed, options=options)
        self._obs, self._episode, self._step = obs, self._episode + 1, 0
        return obs, info

    def explain(self, action: Any) -> tuple[dict[str, Any], GAFAttribution | None]:
        """What the policy holds now about ``action``, the decision it just made on the last observation."""
        out: dict[str, Any] = {}
        go_nogo = self.policy.last_go_nogo if self.gated else None
        if go_nogo is not None:
            out["go_nogo"] = dict(go_nogo)
        if self.extractor is not None and self.extractor.last_gates:
            out["fusion_gates"] = self.extractor.last_gates  # read before the attribution's own forward pass
        attribution = None
        if self.attribute and self._obs is not None:
            proposed = go_nogo["proposed"] if go_nogo is not None else np.asarray(action).reshape(-1)[0]
            attribution = gaf_attribution(self.policy, self._obs, int(proposed))
            out["gaf_attribution"] = attribution.record()
        return out, attribution

    def step(self, action: Any):
        explanation, attribution = self.explain(action)
        obs, reward, terminated, truncated, info = self.env.step(action)
        info = {**info, **explanation}
        if self.keep:
            decision = Decision(self._episode, self._step, float(reward), action, attribution,
                                explanation.get("go_nogo"), explanation.get("fusion_gates"), info.get("ltn"),
                                info.get("halt_reason"))
            item = (abs(float(reward)), -next(self._order), decision)  # a min-heap of the largest |reward|
            if len(self._kept) < self.keep:
                heapq.heappush(self._kept, item)
            elif item[:2] > self._kept[0][:2]:
                heapq.heapreplace(self._kept, item)
        self._obs, self._step = obs, self._step + 1
        return obs, reward, terminated, truncated, info


def render_decision(decision: Decision, path: str | Path, *, title: str = "") -> Path:
    """A PNG of one decision: each GAF frame (GASF) above its attribution map, and the decision's numbers
    (Go / No-Go per action, veto, gate weights, rule truths, reward).

    Returns:
        ``path``.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    att = decision.attribution
    n_frames = att.video.shape[0] if att is not None else 0
    cols = max(n_frames, 1) + 1
    fig, axes = plt.subplots(2, cols, figsize=(2.2 * cols, 4.8), squeeze=False)
    if att is not None:
        maps = att.attribution.sum(axis=1)  # GASF + GADF, per pixel
        limit = float(np.abs(maps).max()) or 1.0
        for f in range(n_frames):
            axes[0, f].imshow(att.video[f, 0], cmap="viridis", vmin=-1, vmax=1)
            axes[0, f].set_title(f"frame {f + 1}/{n_frames}" + (" (now)" if f == n_frames - 1 else ""), fontsize=8)
            axes[1, f].imshow(maps[f], cmap="RdBu_r", vmin=-limit, vmax=limit)
            axes[1, f].set_title(f"attribution {att.frame_scores[f]:+.2e}", fontsize=8)
    for ax in axes.flat:
        ax.set_xticks([])
        ax.set_yticks([])
    text = axes[0, -1]
    axes[1, -1].axis("off")
    text.axis("off")
    lines = [f"episode {decision.episode}, step {decision.step}", f"reward {decision.reward:+.4g}",
             f"action sent {np.asarray(decision.action).tolist()}"]
    if decision.go_nogo:
        g = decision.go_nogo
        lines += ["go " + ", ".join(f"{x:.3g}" for x in g.get("go", [])),
                  "no-go " + ", ".join(f"{x:.2f}" for x in g.get("nogo", [])),
                  f"proposed {g.get('proposed')} -> final {g.get('final')}"
                  + (f" (veto: {g.get('veto_reason')})" if g.get("vetoed") else "")]
    if decision.fusion_gates:
        lines.append("gates " + ", ".join(f"{k} {v:.2f}" for k, v in decision.fusion_gates.items()))
    if decision.ltn:
        rules = decision.ltn.get("rules") or {}
        lines += [f"SatAgg {float(decision.ltn.get('sat_agg', float('nan'))):.3f}"
                  + (" (overridden)" if decision.ltn.get("overridden") else "")]
        lines += [f"  {name} {float(value):.2f}" for name, value in rules.items()]
    if decision.halt_reason:
        lines.append(f"halt: {decision.halt_reason}")
    text.text(0.0, 1.0, "\n".join(lines), va="top", ha="left", fontsize=7, family="monospace",
              transform=text.transAxes)
    fig.suptitle(title or "decision", fontsize=10)
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
