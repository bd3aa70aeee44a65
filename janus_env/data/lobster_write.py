"""LOBSTER files from our engine: writing its event log, truncated files with exact truth, a test flow.

Our engine logs the LOBSTER message layout (:meth:`janus_env.book.OrderBook.events`,
prices in ticks), so :func:`write_lobster` turns an engine run into LOBSTER
files that :func:`~janus_env.data.lobster.read_lobster` reads back (the
orderbook file comes from a literal replay,
:class:`~janus_env.data.lobster_replay.LOBSTERReplayer`).
:func:`visible_messages` cuts from such a complete stream what a real
``_message_<L>`` file would hold, with the true book as its orderbook rows,
and :func:`drifting_order_flow` makes a seeded stream whose orders move in
and out of view: together they measure the reconstruction of
:mod:`janus_env.data.lobster_replay` against a book known exactly.
"""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd

from janus_env.book import BUY, EV_EXECUTE, EV_SUBMIT, SELL, OrderBook
from janus_env.checks import check_int
from janus_env.data.lobster import DEFAULT_TICK, PRICE_SCALE, LOBSTERData
from janus_env.data.lobster_replay import (
    LOBSTERReplayer,
    PriceGrid,
    ReplayReport,
    replay_lobster,
    to_orderbook_layout,
)

BAD_EVENTS = "Expected an int64 event array of shape (n, 6) from OrderBook.events(), got {}"
BAD_EVENT_LOG_TYPE = "event log row {row} has type {value}; the engine only logs types 1-4"


def write_lobster(
    events: np.ndarray,
    path_messages: str | os.PathLike[str],
    path_orderbook: str | os.PathLike[str] | None = None,
    *,
    n_levels: int = 10,
    tick_size: int = DEFAULT_TICK,
    price_origin: int = 100 * PRICE_SCALE,
    start_time: float = 34_200.0,
    time_step: float = 1e-3,
    chunk: int = 262_144,
) -> ReplayReport:
    """Write our engine's event log as LOBSTER message (and orderbook) files.

    Prices map as ``price = price_origin + tick · tick_size`` (LOBSTER units;
    default tick 0 = $100.00, tick = $0.01) and times as ``start_time +
    engine_time · time_step`` seconds after midnight (default 09:30:00, 1 ms
    per engine message). Engine order ids are written as they are. The
    orderbook file (top ``n_levels`` after every event) is produced by
    replaying the events through a fresh engine.

    Args:
        events: ``OrderBook.events()`` rows (time, type, id, size, price tick, direction).
        path_messages: message file to write.
        path_orderbook: orderbook file to write (None: skip).
        n_levels: levels per orderbook row.
        tick_size: LOBSTER units per engine tick.
        price_origin: LOBSTER price of engine tick 0.
        start_time: seconds after midnight of engine time 0.
        time_step: seconds per engine time unit.
        chunk: rows written per batch.

    Returns:
        The :class:`~janus_env.data.lobster_replay.ReplayReport` of the replay that produced the orderbook
        (all zeros for the unknown counters when ``events`` is a whole log).

    Raises:
        TypeError: ``events`` is not an integer array; ``n_levels`` or ``tick_size`` not an int.
        ValueError: wrong shape, a type outside 1..4, ``n_levels`` or ``tick_size`` < 1.
    """
    events = np.asarray(events)
    if events.ndim != 2 or events.shape[1] != 6:
        raise ValueError(BAD_EVENTS.format(f"shape {events.shape}"))
    if not np.issubdtype(events.dtype, np.integer):
        raise TypeError(BAD_EVENTS.format(f"dtype {events.dtype}"))
    check_int("n_levels", n_levels, low=1)
    check_int("tick_size", tick_size, low=1)
    events = events.astype(np.int64)
    types = events[:, 1]
    bad_type = np.flatnonzero((types < EV_SUBMIT) | (types > EV_EXECUTE))
    if bad_type.size:
        raise ValueError(BAD_EVENT_LOG_TYPE.format(row=int(bad_type[0]), value=int(types[bad_type[0]])))
    ticks = events[:, 4]
    grid = PriceGrid(
        origin=int(price_origin), tick_size=int(tick_size), n_ticks=int(ticks.max(initial=0)) + 2
    )
    data = LOBSTERData(
        time=start_time + events[:, 0].astype(np.float64) * time_step,
        type=types.copy(),
        order_id=events[:, 2].copy(),
        size=events[:, 3].copy(),
        price=grid.to_price(ticks),
        direction=events[:, 5].copy(),
        path=os.fspath(path_messages),
    )
    frame = pd.DataFrame(
        {"time": data.time, "type": data.type, "order_id": data.order_id, "size": data.size,
         "price": data.price, "direction": data.direction}
    )  # fmt: skip
    frame.to_csv(path_messages, header=False, index=False, float_format="%.9f", lineterminator="\n")
    replayer = LOBSTERReplayer(data, grid=grid, initial_state=False, remove_stale=False)  # the log, literally
    if path_orderbook is None:
        replayer.replay_to(len(data))
        return replayer.report()
    buffer = np.empty((min(chunk, max(len(data), 1)), int(n_levels), 4), dtype=np.int64)
    Path(path_orderbook).write_text("")
    for begin in range(0, len(data), chunk):
        end = min(begin + chunk, len(data))
        snaps = buffer[: end - begin]
        replayer.replay_to(end, snaps)
        pd.DataFrame(to_orderbook_layout(snaps, grid)).to_csv(
            path_orderbook, mode="a", header=False, index=False, lineterminator="\n"
        )
    return replayer.report()


def visible_messages(data: LOBSTERData, n_levels: int, start: int = 0, *, tick_size: int = DEFAULT_TICK) -> LOBSTERData:
    """What a LOBSTER ``_message_<n_levels>`` file starting at message ``start`` would hold.

    ``data`` must be a *complete* stream (every order announced, e.g. our
    engine's log through :func:`write_lobster`). It is replayed literally; a
    message is kept when it changes the top ``n_levels`` of the book (LOBSTER
    records "events that cause an update of the limit order book within the
    requested price levels"), and the file begins at message ``start``
    (orders placed earlier are never announced). The orderbook rows are the
    true ``n_levels`` book after each kept message. Truncated files made this
    way, with their exact ground truth, test a reconstruction on the two
    things a real file hides: orders beyond the visible levels and orders
    from before the file.

    Raises:
        TypeError: ``n_levels`` or ``start`` not an int.
        ValueError: ``n_levels`` < 1 or ``start`` outside ``[0, len(data))``.
    """
    check_int("n_levels", n_levels, low=1)
    check_int("start", start, low=0, high=len(data) - 1)
    full = replace(data, orderbook=None, orderbook_path=None)
    _, rows = replay_lobster(full, tick_size=tick_size, n_levels=int(n_levels), snapshots=True,
                             initial_state=False, remove_stale=False)  # fmt: skip
    empty = to_orderbook_layout(np.full((1, int(n_levels), 4), -1, dtype=np.int64), PriceGrid(0, 1, 1))
    before = np.vstack([empty, rows[:-1]])
    keep = (rows != before).any(axis=1)
    keep[: int(start)] = False
    return replace(
        data,
        time=data.time[keep],
        type=data.type[keep],
        order_id=data.order_id[keep],
        size=data.size[keep],
        price=data.price[keep],
        direction=data.direction[keep],
        orderbook=rows[keep],
        orderbook_path=None,
    )


def drifting_order_flow(n_orders: int, seed: int, *, spread: float = 0.08) -> np.ndarray:
    """A complete engine event log (``OrderBook.events()`` layout) of a seeded order flow with deep orders.

    Limit orders (half of the events) rest ``geometric(spread) − 2`` ticks from a centre (now and
    then marketable), market orders take up to 60 shares and cancels remove random live orders;
    the centre drifts by up to 3 ticks every ~50 orders, so orders placed deep come into view and
    orders cancelled deep leave unseen — what a truncated (``visible_messages``) file hides.
    Used to measure the reconstruction against a book known exactly (tests, ``bench_engine``).
    """
    rng = np.random.default_rng(seed)
    book = OrderBook(n_ticks=1024, capacity=8192, n_agents=8, log_capacity=20 * n_orders + 16)
    centre, live = 512, []
    for _ in range(n_orders):
        u, agent, side = rng.random(), int(rng.integers(8)), BUY if rng.random() < 0.5 else SELL
        if u < 0.5 or not live:
            offset = int(rng.geometric(spread)) - 2  # -1: marketable now and then
            live.append(book.limit(agent, side, centre - side * offset, int(rng.integers(1, 30))))
        elif u < 0.6:
            book.market(agent, side, int(rng.integers(1, 60)))
        else:
            oid = live.pop(int(rng.integers(len(live))))
            book.cancel(oid, int(rng.integers(0, 8)) if rng.random() < 0.3 else 0, missing_ok=True)
        if rng.random() < 0.02:
            centre += int(rng.integers(-3, 4))
    return book.events()
