"""Replay the shipped LOBSTER AAPL sample through the matching engine and check it against the exchange's book.

    python examples/lobster_replay.py                   # the reconstruction JANUS uses by default
    python examples/lobster_replay.py --literal         # messages only, no reconstruction rules

Prints what the replay did with every message (``ReplayReport``) and how often the replayed book
equals LOBSTER's own orderbook file (row k = the book after message k).
"""

from __future__ import annotations

import argparse

from janus_env.data import read_lobster, replay_lobster
from janus_env.samples import sample_path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--literal", action="store_true", help="no initial state, stale-order or revealed-level rules")
    args = parser.parse_args(argv)
    data = read_lobster(sample_path("lobster_aapl"), sample_path("lobster_aapl_orderbook"))
    options = dict(initial_state=False, remove_stale=False, reveal_levels=False) if args.literal else {}
    report, _ = replay_lobster(data, **options)
    rows = len(data)
    print(f"{rows} messages of AAPL 2012-06-21 ({'literal replay' if args.literal else 'default reconstruction'})")
    print(f"  top of book equal to the orderbook file: {rows - report.top_mismatches}/{rows} rows")
    print(f"  all {data.n_levels} levels equal:                  {rows - report.snapshot_mismatches}/{rows} rows")
    print(f"  crossed rows: {report.crossed_rows}; executions at our best price: "
          f"{report.executions_at_best}/{report.executions}")
    print(f"  initial-state orders {report.initial_orders}, stale orders removed "
          f"{report.stale_crossed_orders + report.stale_executed_orders + report.stale_queue_orders}, "
          f"revealed levels {report.revealed_levels}, unknown ids "
          f"{report.unknown_cancels + report.unknown_executions}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
