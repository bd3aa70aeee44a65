"""Which GAF frames drove a decision: gradient × input over the video the policy saw (the seed's visual explanation).

For the action ``a`` a basal-ganglia policy chose in observation ``o``, with ``V = DiffGAF(prices)`` the
``(F, 2, w, w)`` GAF video its Go pathway reads (channel 0 GASF, 1 GADF) and ``g_a`` the action's Go score
(the Q-value of a DQN policy, the logit of an actor-critic one)::

    A = V ⊙ ∂g_a/∂V                       gradient × input, per pixel, frame and channel
    frame_scores_f = Σ_{c,i,j} A_{f,c,i,j}  how much frame f pushed the Go score of a (signed)

(Simonyan, Vedaldi & Zisserman 2014, "Deep Inside Convolutional Networks", for the gradient; Shrikumar et al.
2017, "Learning Important Features Through Propagating Activation Differences", for gradient × input.)
``frame_scores_f`` is the directional derivative of ``g_a`` along frame ``f``'s own pixels,
``d/dε g_a(V + ε·V_f)`` at 0: how much the Go score moves when that frame's image is brightened by 1% is
``0.01·frame_scores_f`` (a test checks it by finite differences). The frame nearest the decision is the last one.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, NamedTuple

import numpy as np
import torch as th

from agents.basal_ganglia import go_extractor, is_basal_ganglia_policy
from agents.extractor import JanusExtractor


class GAFAttribution(NamedTuple):
    """A decision's attribution over its GAF video."""

    action: int
    """The action explained."""
    go: float
    """Its Go score ``g_a``."""
    video: np.ndarray
    """``(F, 2, w, w)`` the GAF video the Go pathway read (GASF, GADF per frame, oldest frame first)."""
    attribution: np.ndarray
    """``(F, 2, w, w)`` gradient × input ``V ⊙ ∂g_a/∂V``."""
    frame_scores: np.ndarray
    """``(F,)`` the attribution summed per frame."""

    def record(self) -> dict[str, Any]:
        """The numbers an audit record keeps: per-frame scores, the frame that mattered most, the Go score."""
        scores = self.frame_scores
        return {"action": self.action, "go": self.go, "frame_scores": scores.tolist(),
                "top_frame": int(np.argmax(np.abs(scores))), "total": float(scores.sum())}


def explainable(policy: Any) -> bool:
    """Whether :func:`gaf_attribution` can explain ``policy``: a basal-ganglia policy whose Go pathway reads
    the GAF video through a :class:`~agents.extractor.JanusExtractor` (one built with ``vision=False`` reads
    none: there is no frame to attribute to)."""
    if not is_basal_ganglia_policy(policy):
        return False
    extractor = go_extractor(policy)
    return isinstance(extractor, JanusExtractor) and extractor.vision


def gaf_attribution(policy: Any, observation: Mapping[str, np.ndarray], action: int) -> GAFAttribution:
    """Gradient × input of ``action``'s Go score over the GAF video of one (unbatched) observation.

    Raises:
        TypeError: ``policy`` is not :func:`explainable`.
    """
    if not explainable(policy):
        raise TypeError("Expected a basal-ganglia policy reading a JanusExtractor with vision=True (the GAF video), "
                        f"got {type(policy).__name__}")
    extractor = go_extractor(policy)
    obs, _ = policy.obs_to_tensor(observation)
    was_training = policy.training
    policy.set_training_mode(False)
    try:
        with th.enable_grad():
            video = extractor.gaf(obs["prices"].float()).detach().requires_grad_(True)
            extractor.video_override = video
            go, _ = policy.go_nogo(obs)
            score = go[0, int(action)]
            (grad,) = th.autograd.grad(score, video)
    finally:
        extractor.video_override = None
        policy.set_training_mode(was_training)
    attribution = (grad * video).detach()[0].cpu().numpy()
    return GAFAttribution(action=int(action), go=float(score.detach()), video=video.detach()[0].cpu().numpy(),
                          attribution=attribution, frame_scores=attribution.sum(axis=(1, 2, 3)))
