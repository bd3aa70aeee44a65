"""Fixtures shared by the whole suite (real data samples: ``janus_env.samples``).

Test modules never import each other or this file (``--import-mode=importlib``): what they share is a fixture,
here or in their package's ``conftest.py`` (``tests/janus_env``, ``tests/wrappers``, ``tests/agents``, ...).

Torch runs on one thread for the whole session, set here when pytest loads this file, before any test module is
imported: on 2 shared CI cores torch's default thread pool makes the suite's small nets 10-30x slower. It is the
one place that sets it; the code under test keeps it at one (``torch_threads=1`` by default for training, one
thread for evaluation and tournaments, and ``replay.umap_monitor`` restores it after numba's first launch).
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from hypothesis import settings as hypothesis_settings

torch.set_num_threads(1)

# Same seed, same result, for the tests too: under CI, hypothesis draws its examples from each test's own
# source (derandomize) instead of a fresh random seed, so a CI run never fails on a draw nobody can replay.
hypothesis_settings.register_profile("ci", derandomize=True, print_blob=True)
if os.environ.get("CI"):
    hypothesis_settings.load_profile("ci")

ROOT = Path(__file__).resolve().parents[1]


# Warnings we accept from the env checkers, each for a documented reason: unbounded Box features are
# unbounded by design (returns, log-sizes, bps), and the (levels, 4) book and the (frames, 2, w, w) GAF video
# are the documented layouts (SB3's MultiInputPolicy flattens them); check_env re-creates envs, so data-loader
# notices reappear.
ALLOWED_WARNINGS = (
    "A Box observation space minimum value is -infinity",
    "A Box observation space maximum value is infinity",
    "Your observation book has an unconventional shape",
    "Your observation gaf has an unconventional shape",
)
# Gymnasium's note that the env it checks is a wrapper: expected when a test checks the wrapper on purpose.
WRAPPER_WARNING = "is different from the unwrapped version"

# PettingZoo's checkers warn about choices janus_market_v0 makes on purpose: Dict observations (the
# Janus-LOB-v0 layout), the makers' MultiDiscrete quotes, the informed role's extra `signal` key,
# and the name "market_maker_0" (its regex wants one word before the number; the brief names it so).
PETTINGZOO_ALLOWED_WARNINGS = (
    "Observation is not a NumPy array",
    "Observation space for each agent probably should be",
    "Action space for each agent probably should be",
    "Agents have different observation space sizes",
    "We recommend agents to be named in the format",
)


def _check_all(env: Any, *, wrapper: bool = False) -> None:
    from gymnasium.utils.env_checker import check_env as gym_check_env
    from stable_baselines3.common.env_checker import check_env as sb3_check_env

    checked = env if wrapper else env.unwrapped
    allowed = (*ALLOWED_WARNINGS, WRAPPER_WARNING) if wrapper else ALLOWED_WARNINGS
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        gym_check_env(checked, skip_render_check=True)
        sb3_check_env(checked, warn=True)
    unexpected = [str(w.message) for w in caught if not any(a in str(w.message) for a in allowed)]
    assert not unexpected, unexpected


@pytest.fixture
def check_all() -> Callable[..., None]:
    """``check_all(env, wrapper=False)``: Gymnasium's and SB3's ``check_env`` on ``env.unwrapped`` (on ``env``
    itself with ``wrapper=True``); any warning outside ``ALLOWED_WARNINGS`` fails."""
    return _check_all


@contextlib.contextmanager
def _pettingzoo_check() -> Iterator[None]:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        yield
    unexpected = {str(w.message) for w in caught if not any(a in str(w.message) for a in PETTINGZOO_ALLOWED_WARNINGS)}
    assert not unexpected, unexpected


@pytest.fixture
def pettingzoo_check() -> Callable[[], contextlib.AbstractContextManager[None]]:
    """``with pettingzoo_check(): parallel_api_test(...)``: a warning outside ``PETTINGZOO_ALLOWED_WARNINGS`` fails."""
    return _pettingzoo_check


@pytest.fixture
def small_market() -> dict[str, Any]:
    """Settings of a quick simulated market for ``Janus-LOB-v0``, its vector env and ``janus_market_v0``.

    40-step sessions after 8 warm-up flow steps: the book is deep enough for every order the tests send, and a
    test can play whole sessions. A fresh dict each test; a module that needs other values overrides this
    fixture with ``{**small_market, ...}`` and says why.
    """
    return {"episode_steps": 40, "warmup": 8}


def _run_script(*args: str, check: bool = True, timeout: float = 600) -> subprocess.CompletedProcess:
    result = subprocess.run([sys.executable, *args], cwd=ROOT, capture_output=True, text=True, timeout=timeout)
    if check:
        assert result.returncode == 0, result.stderr
    return result


@pytest.fixture(scope="session")
def run_script() -> Callable[..., subprocess.CompletedProcess]:
    """``run_script("train.py", *args, check=True, timeout=600)``: a script (or ``-c`` code) run by this Python from
    the repository root, output captured as text; with ``check`` a non-zero exit fails, showing its stderr."""
    return _run_script


def bitwise_diff(a: Any, b: Any, where: str = "") -> list[str]:
    """Paths at which two nested structures of arrays, tensors and plain values differ, bit for bit (``[]``: none);
    imported by the checkpoint and resume tests (``from tests.conftest import bitwise_diff``)."""
    if isinstance(a, torch.Tensor) or isinstance(b, torch.Tensor):
        ok = isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor) and a.dtype == b.dtype and torch.equal(a, b)
        return [] if ok else [where]
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        ok = (isinstance(a, np.ndarray) and isinstance(b, np.ndarray) and a.dtype == b.dtype and a.shape == b.shape
              and a.tobytes() == b.tobytes())
        return [] if ok else [where]
    if isinstance(a, dict) and isinstance(b, dict):
        if a.keys() != b.keys():
            return [f"{where} keys {sorted(a)} != {sorted(b)}"]
        return [d for k in a for d in bitwise_diff(a[k], b[k], f"{where}/{k}")]
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        if len(a) != len(b):
            return [f"{where} length"]
        return [d for i, (x, y) in enumerate(zip(a, b)) for d in bitwise_diff(x, y, f"{where}[{i}]")]
    if isinstance(a, float) and isinstance(b, float) and a != a and b != b:
        return []
    return [] if a == b and type(a) is type(b) else [f"{where}: {a!r} != {b!r}"]
