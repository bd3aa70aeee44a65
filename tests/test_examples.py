"""The scripts in examples/ run on a plain clone (shipped samples only) and print what they claim."""

from __future__ import annotations

import re


def test_lobster_replay_matches_the_exchange_book(run_script) -> None:
    out = run_script("examples/lobster_replay.py").stdout
    assert "top of book equal to the orderbook file: 999/999 rows" in out
    assert "crossed rows: 0; executions at our best price: 98/98" in out
    literal = run_script("examples/lobster_replay.py", "--literal").stdout
    assert "top of book equal to the orderbook file: 952/999 rows" in literal


def test_btc_fractional_lots_rebuild_the_account_from_fills(run_script) -> None:
    out = run_script("examples/btc_fractional_lots.py", "--steps", "48").stdout
    assert re.search(r"momentum on BTC/USD hourly, 48 decisions from seed 0: \d+ fills", out)
    worst = float(re.search(r"the env's: (\S+)", out).group(1))
    assert worst < 1e-6
