"""agents.app.callbacks: argument checks of the checkpoint callback."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from agents.app.callbacks import AtomicCheckpointCallback
from janus_env.checks import BAD_VALUE


@pytest.mark.parametrize(("save_freq", "error"), [
    (0, ValueError),
    (-5, ValueError),
    (100.0, TypeError),  # accepted before, as int(100.0)
    (True, TypeError),  # read as 1 before
    ("100", TypeError),  # raised an unnamed TypeError from `"100" < 1` before
])
def test_bad_save_freq(tmp_path: Path, save_freq: Any, error: type[Exception]) -> None:
    message = BAD_VALUE.format(name="save_freq", expected="an int >= 1", value=save_freq)
    with pytest.raises(error, match=re.escape(message)):
        AtomicCheckpointCallback(tmp_path, save_freq)


def test_save_freq_is_a_plain_int(tmp_path: Path) -> None:
    callback = AtomicCheckpointCallback(tmp_path, np.int64(250))
    assert callback.save_freq == 250 and type(callback.save_freq) is int
