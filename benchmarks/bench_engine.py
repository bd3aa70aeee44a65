"""Matching-engine throughput: LOBSTER replay and raw submit/cancel streams (single core).

Generates a long LOBSTER-format message stream with our own engine (seeded
random limit/market/cancel flow, event log on), then times:

* **LOBSTER replay**: :func:`janus_env.data.lobster_replay.replay_kernel` applying the
  stream to a fresh book (add / cancel / delete / execute per message);
* the same replay writing a 10-level L2 snapshot after every message;
* **submit/cancel**: a pure stream of limit submissions and cancellations
  through the ``submit`` / ``cancel`` kernels (no log);
* **random flow**: limit/market/cancel orders with matching and the event log
  on (the generator itself);
* **load**: reading + validating a LOBSTER message CSV with pandas.

Then a **replay fidelity** section (no timing) on the real shipped sample
(``janus_env/samples``: the first 999 messages of LOBSTER's AAPL 2012-06-21
sample day with its 10-level orderbook file as ground truth): how often the
replayed book equals the file at the top and at every depth, with and
without the initial state from the orderbook's first row and the levels
revealed at the window's edge (rule 4); whether it is ever crossed; what
share of type-4 executions print at our best price on their side; the
stale-order removals and the revealed / trimmed orders. The same figures for
truncated 10-level files cut from complete engine streams
(:func:`~janus_env.data.lobster_write.visible_messages`: exact truth, with orders hidden deeper than 10
levels and before the file), next to a literal replay (no initial state, no
stale-order removal, no revealed levels) to show what the rules fix.

Generated streams keep at most ``--max-live`` orders resting (default 5,000:
a bounded book, as in real order flow; an unbounded random stream piles up
stale orders and measures cache misses instead — try ``--max-live 50000``).
Messages/s are compared with the target (>= 2,000,000 messages/s) and with
ABIDES' published 14,217 messages/s (Byrd, Hybinette & Balch, "ABIDES:
Towards High-Fidelity Market Simulation for AI Research", 2019). Numba
compilation is excluded (warm-up call first); the best of ``--repeat`` runs is
reported. Usage::

    PYTHONPATH=. python benchmarks/bench_engine.py --messages 2000000
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from numba import njit

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from janus_env.book import BUY, S_N_FILLS, S_N_LOG, SELL, OrderBook, cancel, slot_of, submit  # noqa: E402
from janus_env.data.lobster import LOBSTERData, read_lobster, read_lobster_messages  # noqa: E402
from janus_env.data.lobster_replay import LOBSTERReplayer, PriceGrid, replay_lobster, revealed_cells  # noqa: E402
from janus_env.data.lobster_write import drifting_order_flow, visible_messages, write_lobster  # noqa: E402
from janus_env.samples import sample_path  # noqa: E402

TARGET = 2_000_000
ABIDES = 14_217
FIXTURE = Path(__file__).resolve().parents[1] / "tests" / "data" / "JANUS_2024-01-02_34200000_57600000_message_5.csv"


@njit(cache=True)
def random_flow(levels, orders, state, accounts, fills, log, kinds, sides, offsets, qtys, picks, live, center, max_live):
    """Limit (kind 0), market (1) and cancel (2, a third partial) orders; stops when the log is full.

    A limit order becomes a cancel while ``max_live`` orders rest (a bounded
    book, as in real order flow). Returns the number of orders sent.
    """
    n_live = 0
    n_log = log.shape[0]
    n_agents = accounts.shape[0]
    for i in range(kinds.shape[0]):
        if state[S_N_LOG] >= n_log - 64:
            return i
        side = sides[i]
        agent = i % n_agents
        k = kinds[i]
        if k == 2 and n_live == 0:
            k = 0
        elif k == 0 and n_live >= max_live:
            k = 2
        if k == 0:
            price = center - side * offsets[i]
            oid = submit(levels, orders, state, accounts, fills, log, agent, side, price, qtys[i], False)
            state[S_N_FILLS] = 0  # fills are not needed
            if oid >= 0 and slot_of(orders, oid) >= 0 and n_live < live.shape[0]:
                live[n_live] = oid
                n_live += 1
        elif k == 1:
            submit(levels, orders, state, accounts, fills, log, agent, side, 0, qtys[i], True)
            state[S_N_FILLS] = 0
        else:
            j = int(picks[i] * n_live)
            oid = live[j]
            if qtys[i] % 3 == 0:  # a third of the cancels are partial (1-9 shares)
                cancel(levels, orders, state, log, oid, 1 + qtys[i] % 9)
                if slot_of(orders, oid) >= 0:
                    continue
            n_live -= 1
            live[j] = live[n_live]
            cancel(levels, orders, state, log, oid, 0)
    return kinds.shape[0]


@njit(cache=True)
def submit_cancel_stream(levels, orders, state, accounts, fills, log, sides, prices, qtys, cancel_flags, picks, live,
                         max_live):  # fmt: skip
    """Limit submissions and cancellations of random resting orders (at most ``max_live`` rest); returns messages sent."""
    n_live = 0
    sent = 0
    n_agents = accounts.shape[0]
    for i in range(sides.shape[0]):
        if (cancel_flags[i] or n_live >= max_live) and n_live > 0:
            j = int(picks[i] * n_live)
            oid = live[j]
            n_live -= 1
            live[j] = live[n_live]
            cancel(levels, orders, state, log, oid, 0)
        else:
            oid = submit(levels, orders, state, accounts, fills, log, i % n_agents, sides[i], prices[i], qtys[i], False)
            state[S_N_FILLS] = 0
            if oid >= 0 and slot_of(orders, oid) >= 0 and n_live < live.shape[0]:
                live[n_live] = oid
                n_live += 1
        sent += 1
    return sent


def generate_events(n_messages: int, seed: int, max_live: int) -> tuple[np.ndarray, float, int]:
    """Engine event log of about ``n_messages`` events; also the generation time and orders sent."""
    rng = np.random.default_rng(seed)
    n_orders = 2 * n_messages + 1000
    n_ticks = 2048
    book = OrderBook(n_ticks=n_ticks, capacity=max_live + 64, n_agents=16, log_capacity=n_messages + 64)
    kinds = rng.choice(np.array([0, 1, 2], dtype=np.int64), size=n_orders, p=[0.55, 0.1, 0.35])
    sides = np.where(rng.random(n_orders) < 0.5, BUY, SELL).astype(np.int64)
    offsets = (rng.geometric(0.15, size=n_orders) - 2).astype(np.int64)  # -1: marketable now and then
    qtys = rng.integers(1, 100, size=n_orders, dtype=np.int64)
    picks = rng.random(n_orders)
    live = np.empty(max_live + 64, dtype=np.int64)
    args = (book.levels, book.orders, book.state, book.accounts, book.fills, book.log)
    small = OrderBook(n_ticks=n_ticks, capacity=1024, n_agents=16, log_capacity=2048)
    random_flow(small.levels, small.orders, small.state, small.accounts, small.fills, small.log,
                kinds[:1000], sides[:1000], offsets[:1000], qtys[:1000], picks[:1000], live, n_ticks // 2, 512)  # fmt: skip
    t0 = time.perf_counter()
    sent = random_flow(*args, kinds, sides, offsets, qtys, picks, live, n_ticks // 2, max_live)
    elapsed = time.perf_counter() - t0
    return book.events(), elapsed, int(sent)


def events_to_data(events: np.ndarray) -> LOBSTERData:
    """LOBSTER message arrays of an engine log (what :func:`write_lobster` writes, without the CSV)."""
    grid = PriceGrid(origin=1_000_000, tick_size=100, n_ticks=int(events[:, 4].max()) + 2)
    return LOBSTERData(
        time=34_200.0 + events[:, 0] * 1e-6, type=events[:, 1].copy(), order_id=events[:, 2].copy(),
        size=events[:, 3].copy(), price=grid.to_price(events[:, 4]), direction=events[:, 5].copy(),
    )  # fmt: skip


def best_of(repeat: int, fn) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def bench_replay(data: LOBSTERData, repeat: int) -> tuple[float, LOBSTERReplayer]:
    replayer = LOBSTERReplayer(data)
    warm = LOBSTERReplayer(data.head(1000))
    warm.replay_to(1000)

    def run() -> None:
        replayer.reset()
        replayer.replay_to(len(data))

    return best_of(repeat, run), replayer


def bench_submit_cancel(n: int, seed: int, repeat: int, max_live: int) -> float:
    rng = np.random.default_rng(seed + 1)
    n_ticks = 2048
    sides = np.where(rng.random(n) < 0.5, BUY, SELL).astype(np.int64)
    prices = (n_ticks // 2 - sides * (rng.geometric(0.1, size=n) + 1)).astype(np.int64)  # never marketable
    qtys = rng.integers(1, 100, size=n, dtype=np.int64)
    cancel_flags = rng.random(n) < 0.45
    picks = rng.random(n)
    live = np.empty(max_live + 64, dtype=np.int64)
    book = OrderBook(n_ticks=n_ticks, capacity=max_live + 64, n_agents=16, log_capacity=0)
    small = OrderBook(n_ticks=n_ticks, capacity=1024, n_agents=16, log_capacity=0)
    submit_cancel_stream(small.levels, small.orders, small.state, small.accounts, small.fills, small.log,
                         sides[:500], prices[:500], qtys[:500], cancel_flags[:500], picks[:500], live, 256)  # fmt: skip

    def run() -> None:
        book.reset()
        submit_cancel_stream(book.levels, book.orders, book.state, book.accounts, book.fills, book.log,
                             sides, prices, qtys, cancel_flags, picks, live, max_live)  # fmt: skip

    return best_of(repeat, run)


def fidelity_row(name: str, data: LOBSTERData, **replay_kwargs: bool) -> str:
    """One line of the replay-fidelity table: ``data`` replayed and compared with its orderbook."""
    report, rows = replay_lobster(data, snapshots=True, **replay_kwargs)
    truth = data.orderbook
    n = report.messages
    depth = [float((rows[:, : 4 * k] == truth[:, : 4 * k]).all(axis=1).mean()) for k in (1, 3, 5, 10)]
    at_best = report.executions_at_best / report.executions if report.executions else float("nan")
    stale = report.stale_crossed_orders + report.stale_executed_orders + report.stale_queue_orders
    return (f"{name:46s} {n:7,d} {1 - report.top_mismatches / n:7.1%} {1 - report.snapshot_mismatches / n:7.1%} "
            f"{'/'.join(f'{d:.0%}' for d in depth):>15s} {report.crossed_rows:8,d} {at_best:9.1%} "
            f"{report.initial_orders:5d} {report.preexisting_matches:5d} {stale:6,d} "
            f"{report.revealed_orders:5,d} {report.trimmed_orders:5,d} "
            f"{report.unknown_cancels + report.unknown_executions:6,d}")  # fmt: skip




def replay_fidelity(seed: int) -> None:
    """Print the replay-fidelity table (real AAPL sample, then truncated engine streams)."""
    aapl = read_lobster(sample_path("lobster_aapl"), sample_path("lobster_aapl_orderbook"))
    header = (f"{'replay fidelity (10 levels)':46s} {'rows':>7s} {'top':>7s} {'all 10':>7s} {'top 1/3/5/10':>15s} "
              f"{'crossed':>8s} {'exec@best':>9s} {'seed':>5s} {'pre':>5s} {'stale':>6s} {'rvl':>5s} {'trim':>5s} "
              f"{'unknwn':>6s}")  # fmt: skip
    literal = {"initial_state": False, "remove_stale": False, "reveal_levels": False}
    print(header)
    print("-" * len(header))
    print(fidelity_row("AAPL sample: state + rules 1-4 (default)", aapl))
    print(fidelity_row("AAPL sample: state + rules 1-3 (no revealed)", aapl, reveal_levels=False))
    print(fidelity_row("AAPL sample: messages only + rules 1-4", aapl, initial_state=False))
    print(fidelity_row("AAPL sample: messages only + rules 1-3", aapl, initial_state=False, reveal_levels=False))
    print(fidelity_row("AAPL sample: literal (no state, no rules)", aapl, **literal))
    full = events_to_data(drifting_order_flow(20_000, seed))
    cut = visible_messages(full, 10, start=len(full) // 4)
    print(fidelity_row("engine stream cut to 10 levels: default", cut))
    print(fidelity_row("engine stream cut to 10 levels: no revealed", cut, reveal_levels=False))
    print(fidelity_row("engine stream cut to 10 levels: literal", cut, **literal))
    ask, bid = revealed_cells(aapl.orderbook)
    depth = ", ".join(str(int(lv) + 1) for lv in np.unique(np.r_[np.nonzero(ask)[1], np.nonzero(bid)[1]]))
    notes = [
        "top / all 10: rows equal to the orderbook file (best level; every level); crossed: rows with best bid"
        " >= best ask;",
        "exec@best: type-4 executions at our best price on their side before the message; seed: initial-state"
        " orders;",
        "pre: unknown ids matched to them; stale: orders removed by rules 1-2; rvl / trim: orders added / trimmed",
        "where a level came into view (rule 4); unknwn: unknown cancels + executions.",
        f"AAPL: rule 4 copies {int(ask.sum() + bid.sum())} (price, size) pairs from rows 1-{len(aapl) - 1},"
        f" all at level {depth} (row 0 aside: the initial state);",
        "without it, 4 bid orders that rested deeper than 10 levels stay unknown until they execute",
        "(messages 447-449, 487, 0-based), and rows 440-486 differ at the top.",
        "Engine streams: what remains is the queue inside a level (which orders left it out of view),",
        "announced by no message and shown by no orderbook row.",
    ]
    print("\n".join(notes) + "\n")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=2_000_000, help="LOBSTER messages to generate and replay")
    parser.add_argument("--load-messages", type=int, default=1_000_000, help="messages in the CSV load test (0: skip)")
    parser.add_argument("--repeat", type=int, default=3, help="timed runs per row (best is reported)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--max-live", type=int, default=5_000, help="most resting orders at once in generated streams")
    parser.add_argument("--fidelity-only", action="store_true", help="print only the replay-fidelity section")
    args = parser.parse_args(argv)
    if args.messages < 10_000 or args.repeat < 1 or args.load_messages < 0 or args.max_live < 64:
        parser.error("need --messages >= 10000, --repeat >= 1, --load-messages >= 0, --max-live >= 64")

    replay_fidelity(args.seed)
    if args.fidelity_only:
        return 0
    rows: list[tuple[str, int, float]] = []
    fixture = read_lobster(FIXTURE, str(FIXTURE).replace("_message_", "_orderbook_"))
    report, _ = replay_lobster(fixture)
    print(f"fixture {FIXTURE.name}: {report.messages} messages, snapshot mismatches {report.snapshot_mismatches}")

    events, gen_s, orders_sent = generate_events(args.messages, args.seed, args.max_live)
    counts = np.bincount(events[:, 1], minlength=5)[1:5]
    print(f"generated {len(events):,} events from {orders_sent:,} orders "
          f"(submit/cancel/delete/execute = {counts.tolist()})")  # fmt: skip
    rows.append(("random limit/market/cancel flow (log on)", orders_sent, gen_s))

    data = events_to_data(events)
    replay_s, replayer = bench_replay(data, args.repeat)
    rep = replayer.report()
    assert rep.messages == len(data) and rep.unknown_cancels == 0 and rep.unknown_executions == 0, rep
    rows.append(("LOBSTER replay (replay_kernel)", len(data), replay_s))

    n_snap = min(len(data), 1_000_000)
    head = data.head(n_snap)
    replay_lobster(head.head(2000), snapshots=True)
    snap_s = best_of(args.repeat, lambda: replay_lobster(head, snapshots=True, n_levels=10))
    rows.append(("LOBSTER replay + 10-level snapshot per msg", n_snap, snap_s))

    sc_s = bench_submit_cancel(args.messages, args.seed, args.repeat, args.max_live)
    rows.append(("pure submit/cancel (submit, cancel kernels)", args.messages, sc_s))

    if args.load_messages:
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "bench_message_10.csv"
            n_load = min(args.load_messages, len(events))
            write_lobster(events[:n_load], path)
            load_s = best_of(1, lambda: read_lobster_messages(path))
            rows.append(("load + validate message CSV (pandas)", n_load, load_s))

    print()
    print(f"single core, {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs visible, "
          f"best of {args.repeat}, at most {args.max_live:,} resting orders, replay pool {replayer.book.orders.shape[0]:,}")  # fmt: skip
    header = f"{'benchmark':46s} {'messages':>11s} {'seconds':>8s} {'msgs/s':>13s} {'/ target':>9s} {'/ ABIDES':>9s}"
    print(header)
    print("-" * len(header))
    for name, n, s in rows:
        rate = n / s
        print(f"{name:46s} {n:11,d} {s:8.3f} {rate:13,.0f} {rate / TARGET:9.2f} {rate / ABIDES:9.0f}")
    print(f"\ntarget {TARGET:,} msgs/s; ABIDES reference {ABIDES:,} msgs/s (Byrd et al. 2019)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
