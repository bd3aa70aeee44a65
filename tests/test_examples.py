"""The scripts in examples/ run on a plain clone (shipped samples only) and print what they claim."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _run(*args: str) -> str:
    result = subprocess.run([sys.executable, *args], cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_lobster_replay_matches_the_exchange_book() -> None:
    out = _run("examples/lobster_replay.py")
    assert "top of book equal to the orderbook file: 999/999 rows" in out
    assert "crossed rows: 0; executions at our best price: 98/98" in out
    literal = _run("examples/lobster_replay.py", "--literal")
    assert "top of book equal to the orderbook file: 952/999 rows" in literal


def test_btc_fractional_lots_rebuild_the_account_from_fills() -> None:
    out = _run("examples/btc_fractional_lots.py", "--steps", "48")
    assert re.search(r"momentum on BTC/USD hourly, 48 decisions from seed 0: \d+ fills", out)
    worst = float(re.search(r"the env's: (\S+)", out).group(1))
    assert worst < 1e-6
