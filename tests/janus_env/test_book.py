"""Example tests for the numba matching engine (``janus_env.book``).

Every book here is tiny (20 ticks, a handful of orders, 3 agents) so each case
can be checked by hand. Error messages are matched literally against the
module constants.
"""

from __future__ import annotations

import doctest
import re

import numpy as np
import pytest

from janus_env import book as book_module
from janus_env.book import (
    _POOL_FULL,
    _UNKNOWN_ORDER,
    BUY,
    ERR_POOL_FULL,
    ERR_PRICE,
    ERR_QTY,
    EV_CANCEL,
    EV_DELETE,
    EV_EXECUTE,
    EV_SUBMIT,
    L_ASK,
    L_BID,
    L_QTY,
    S_N_FILLS,
    S_N_MESSAGES,
    S_REJECTED,
    S_TIME,
    S_TRADED_QTY,
    S_UNKNOWN_EXECUTIONS,
    SELL,
    Fill,
    OrderBook,
    UnknownOrderError,
    add_resting,
    execute_resting,
    remove_ahead,
    remove_range,
    side_block,
    submit,
)
from janus_env.checks import bad_value

N_TICKS = 20
N_AGENTS = 3


@pytest.fixture
def book() -> OrderBook:
    return OrderBook(n_ticks=N_TICKS, capacity=16, n_agents=N_AGENTS, log_capacity=64)


def literal(message: str) -> str:
    """A ``pytest.raises(match=...)`` pattern that matches ``message`` verbatim."""
    return re.escape(message)


def bad(name: str, expected: str, value: object) -> str:
    """The pattern of ``janus_env.checks``' message for a bad argument ``name``."""
    return literal(bad_value(name, expected, value))


SIDE_CHOICES = "one of (1, -1)"


def rows(book: OrderBook) -> list[tuple[int, ...]]:
    """Resting orders as sorted (id, agent, side, price, qty) tuples."""
    return sorted(tuple(r) for r in book.resting_orders().tolist())


# --------------------------------------------------------------------------- priority


def test_same_price_fills_in_arrival_order(book: OrderBook) -> None:
    first = book.limit(agent=0, side=SELL, price=10, qty=5)
    second = book.limit(agent=1, side=SELL, price=10, qty=5)
    fills = book.market(agent=2, side=BUY, qty=7)
    assert fills == [
        Fill(first, fills[0].taker_id, 10, 5, 0, 2, BUY),
        Fill(second, fills[0].taker_id, 10, 2, 1, 2, BUY),
    ]
    assert rows(book) == [(second, 1, SELL, 10, 3)]


def test_same_price_bids_fill_in_arrival_order(book: OrderBook) -> None:
    first = book.limit(agent=1, side=BUY, price=7, qty=2)
    second = book.limit(agent=0, side=BUY, price=7, qty=2)
    fills = book.market(agent=2, side=SELL, qty=3)
    assert [(f.maker_id, f.qty) for f in fills] == [(first, 2), (second, 1)]
    assert rows(book) == [(second, 0, BUY, 7, 1)]


def test_better_ask_fills_first_regardless_of_arrival(book: OrderBook) -> None:
    worse = book.limit(agent=0, side=SELL, price=11, qty=4)
    better = book.limit(agent=1, side=SELL, price=10, qty=4)
    fills = book.market(agent=2, side=BUY, qty=5)
    assert [(f.maker_id, f.price, f.qty) for f in fills] == [(better, 10, 4), (worse, 11, 1)]
    assert book.best_ask == 11


def test_better_bid_fills_first_regardless_of_arrival(book: OrderBook) -> None:
    worse = book.limit(agent=0, side=BUY, price=5, qty=4)
    better = book.limit(agent=1, side=BUY, price=6, qty=4)
    fills = book.market(agent=2, side=SELL, qty=5)
    assert [(f.maker_id, f.price, f.qty) for f in fills] == [(better, 6, 4), (worse, 5, 1)]
    assert book.best_bid == 5


def test_partial_fill_keeps_remainder_at_head_of_queue(book: OrderBook) -> None:
    head = book.limit(agent=0, side=SELL, price=10, qty=5)
    behind = book.limit(agent=1, side=SELL, price=10, qty=5)
    book.market(agent=2, side=BUY, qty=2)
    assert rows(book) == sorted([(head, 0, SELL, 10, 3), (behind, 1, SELL, 10, 5)])
    assert book.levels[10, L_ASK + L_QTY] == 8 and book.levels[10, L_BID + L_QTY] == 0
    # the partly filled order keeps its time priority
    fills = book.market(agent=2, side=BUY, qty=4)
    assert [(f.maker_id, f.qty) for f in fills] == [(head, 3), (behind, 1)]
    assert rows(book) == [(behind, 1, SELL, 10, 4)]


# --------------------------------------------------------------------------- market and marketable limit


def test_market_order_walks_levels_and_discards_remainder(book: OrderBook) -> None:
    book.limit(agent=0, side=SELL, price=10, qty=2)
    book.limit(agent=1, side=SELL, price=12, qty=3)
    fills = book.market(agent=2, side=BUY, qty=10)
    assert [(f.price, f.qty) for f in fills] == [(10, 2), (12, 3)]
    assert book.resting_orders().shape == (0, 5)  # the 5 unfilled shares do not rest
    assert book.best_ask == N_TICKS and book.best_bid == -1
    assert book.position(2) == 5 and book.cash(2) == -(10 * 2 + 12 * 3)
    assert book.position(0) == -2 and book.cash(0) == 20
    assert book.position(1) == -3 and book.cash(1) == 36
    assert book.state[S_TRADED_QTY] == 5


def test_market_order_on_empty_side_has_no_fills(book: OrderBook) -> None:
    book.limit(agent=0, side=BUY, price=5, qty=2)
    assert book.market(agent=1, side=BUY, qty=3) == []
    assert rows(book)[0][1:] == (0, BUY, 5, 2)
    assert book.accounts.tolist() == [[0, 0]] * N_AGENTS


def test_marketable_limit_rests_remainder_at_its_price(book: OrderBook) -> None:
    book.limit(agent=0, side=SELL, price=10, qty=2)
    book.limit(agent=1, side=SELL, price=11, qty=3)
    oid = book.limit(agent=2, side=BUY, price=11, qty=10)
    assert [(f.price, f.qty, f.taker_id) for f in book.last_fills()] == [(10, 2, oid), (11, 3, oid)]
    assert rows(book) == [(oid, 2, BUY, 11, 5)]
    assert book.best_bid == 11 and book.best_ask == N_TICKS


def test_marketable_limit_does_not_trade_through_its_price(book: OrderBook) -> None:
    book.limit(agent=0, side=SELL, price=10, qty=2)
    far = book.limit(agent=1, side=SELL, price=12, qty=3)
    oid = book.limit(agent=2, side=BUY, price=11, qty=10)
    assert [(f.price, f.qty) for f in book.last_fills()] == [(10, 2)]
    assert rows(book) == sorted([(far, 1, SELL, 12, 3), (oid, 2, BUY, 11, 8)])
    assert (book.best_bid, book.best_ask) == (11, 12)


def test_fully_filled_limit_order_does_not_rest(book: OrderBook) -> None:
    maker = book.limit(agent=0, side=BUY, price=8, qty=5)
    oid = book.limit(agent=1, side=SELL, price=7, qty=5)
    assert [(f.maker_id, f.taker_id, f.price, f.qty) for f in book.last_fills()] == [(maker, oid, 8, 5)]
    assert book.resting_orders().shape == (0, 5)
    assert (book.best_bid, book.best_ask) == (-1, N_TICKS)
    with pytest.raises(UnknownOrderError):
        book.cancel(oid)


def test_last_fills_resets_per_order(book: OrderBook) -> None:
    book.limit(agent=0, side=SELL, price=10, qty=2)
    assert len(book.market(agent=1, side=BUY, qty=1)) == 1
    book.limit(agent=0, side=SELL, price=15, qty=1)
    assert book.last_fills() == []


def test_market_sweep_of_every_resting_order_records_every_fill() -> None:
    book = OrderBook(n_ticks=N_TICKS, capacity=8, n_agents=2, fill_capacity=1)
    for price in range(10, 17):
        book.limit(agent=0, side=SELL, price=price, qty=1)
    fills = book.market(agent=1, side=BUY, qty=100)
    assert [f.price for f in fills] == list(range(10, 17))
    assert book.position(1) == 7


def test_order_ids_are_unique_when_slots_are_reused(book: OrderBook) -> None:
    seen = set()
    for _ in range(40):  # > capacity: slots are recycled
        oid = book.limit(agent=0, side=BUY, price=3, qty=1)
        assert oid not in seen
        seen.add(oid)
        assert book.cancel(oid) == 1
    old = min(seen)
    with pytest.raises(UnknownOrderError):
        book.cancel(old)


# --------------------------------------------------------------------------- cancel


def test_partial_cancel_keeps_order_and_priority(book: OrderBook) -> None:
    head = book.limit(agent=0, side=BUY, price=6, qty=5)
    behind = book.limit(agent=1, side=BUY, price=6, qty=5)
    assert book.cancel(head, 3) == 3
    assert rows(book) == sorted([(head, 0, BUY, 6, 2), (behind, 1, BUY, 6, 5)])
    assert book.levels[6, L_BID + L_QTY] == 7 and book.best_bid == 6
    fills = book.market(agent=2, side=SELL, qty=3)
    assert [(f.maker_id, f.qty) for f in fills] == [(head, 2), (behind, 1)]


@pytest.mark.parametrize("qty", [0, 5, 9])
def test_full_cancel_removes_order_and_moves_best(book: OrderBook, qty: int) -> None:
    inner = book.limit(agent=0, side=SELL, price=9, qty=5)
    book.limit(agent=1, side=SELL, price=13, qty=1)
    assert book.cancel(inner, qty) == 5  # qty 0 or >= the remainder: everything
    assert book.best_ask == 13
    assert book.levels[9, L_ASK + L_QTY] == 0
    assert [r[3] for r in rows(book)] == [13]


def test_cancel_last_bid_empties_side(book: OrderBook) -> None:
    oid = book.limit(agent=0, side=BUY, price=4, qty=1)
    book.cancel(oid)
    assert book.best_bid == -1


def test_cancel_behind_best_keeps_best(book: OrderBook) -> None:
    book.limit(agent=0, side=BUY, price=8, qty=1)
    deep = book.limit(agent=0, side=BUY, price=4, qty=1)
    book.cancel(deep)
    assert book.best_bid == 8


def test_unknown_cancel_raises_and_is_counted(book: OrderBook) -> None:
    with pytest.raises(UnknownOrderError, match=literal(_UNKNOWN_ORDER.format(12345))):
        book.cancel(12345)
    assert book.unknown_cancels == 1
    assert book.cancel(12345, missing_ok=True) == 0
    assert book.cancel(-1, missing_ok=True) == 0
    assert book.unknown_cancels == 3


def test_cancel_of_finished_orders_is_unknown(book: OrderBook) -> None:
    cancelled = book.limit(agent=0, side=BUY, price=4, qty=1)
    book.cancel(cancelled)
    filled = book.limit(agent=0, side=BUY, price=5, qty=1)
    book.market(agent=1, side=SELL, qty=1)
    for oid in (cancelled, filled):
        with pytest.raises(UnknownOrderError, match=literal(_UNKNOWN_ORDER.format(oid))):
            book.cancel(oid)
    assert book.unknown_cancels == 2


def test_unknown_order_error_is_a_key_error() -> None:
    assert issubclass(UnknownOrderError, KeyError)


# --------------------------------------------------------------------------- self-trade prevention


def test_self_trade_prevention_cancels_resting_order_of_market_taker(book: OrderBook) -> None:
    own = book.limit(agent=0, side=SELL, price=10, qty=5)
    other = book.limit(agent=1, side=SELL, price=10, qty=3)
    fills = book.market(agent=0, side=BUY, qty=4)
    assert [(f.maker_id, f.qty, f.maker_agent) for f in fills] == [(other, 3, 1)]
    assert book.self_trades_prevented == 1
    assert book.resting_orders().shape == (0, 5)  # own order gone, 1 share discarded
    assert book.position(0) == 3 and book.position(1) == -3
    with pytest.raises(UnknownOrderError):
        book.cancel(own)


def test_self_trade_prevention_on_limit_order_rests_the_new_order(book: OrderBook) -> None:
    own = book.limit(agent=0, side=SELL, price=10, qty=5)
    oid = book.limit(agent=0, side=BUY, price=10, qty=2)
    assert book.last_fills() == []
    assert rows(book) == [(oid, 0, BUY, 10, 2)]
    assert (book.best_bid, book.best_ask) == (10, N_TICKS)
    assert book.self_trades_prevented == 1
    assert book.accounts.tolist() == [[0, 0]] * N_AGENTS
    assert book.cancel(own, missing_ok=True) == 0


def test_self_trade_prevention_only_touches_orders_it_reaches(book: OrderBook) -> None:
    other = book.limit(agent=1, side=BUY, price=8, qty=2)
    own = book.limit(agent=0, side=BUY, price=8, qty=2)
    book.market(agent=0, side=SELL, qty=2)  # filled by `other` before reaching `own`
    assert book.self_trades_prevented == 0
    assert rows(book) == [(own, 0, BUY, 8, 2)]
    with pytest.raises(UnknownOrderError):
        book.cancel(other)


# --------------------------------------------------------------------------- snapshot


def test_l2_snapshot_aggregates_levels_and_pads_missing(book: OrderBook) -> None:
    book.limit(agent=0, side=BUY, price=8, qty=3)
    book.limit(agent=1, side=BUY, price=8, qty=2)
    book.limit(agent=0, side=BUY, price=6, qty=4)
    book.limit(agent=1, side=SELL, price=11, qty=1)
    book.limit(agent=2, side=SELL, price=14, qty=7)
    snap = book.l2(3)
    assert snap.dtype == np.int64
    assert snap.tolist() == [[8, 5, 11, 1], [6, 4, 14, 7], [-1, 0, -1, 0]]


def test_l2_snapshot_of_empty_book(book: OrderBook) -> None:
    assert book.l2(2).tolist() == [[-1, 0, -1, 0]] * 2


def test_l2_snapshot_skips_emptied_levels(book: OrderBook) -> None:
    book.limit(agent=0, side=SELL, price=10, qty=1)
    middle = book.limit(agent=0, side=SELL, price=11, qty=1)
    book.limit(agent=0, side=SELL, price=12, qty=1)
    book.cancel(middle)
    assert book.l2(3)[:, 2:].tolist() == [[10, 1], [12, 1], [-1, 0]]


# --------------------------------------------------------------------------- event log


def test_event_log_rows_follow_lobster_types_and_directions(book: OrderBook) -> None:
    ask = book.limit(agent=0, side=SELL, price=10, qty=5)      # t=1 submit
    bid = book.limit(agent=1, side=BUY, price=7, qty=4)        # t=2 submit
    assert book.cancel(bid, 1) == 1                            # t=3 partial cancel
    book.market(agent=2, side=BUY, qty=2)                      # t=4 execute ask
    buy = book.limit(agent=2, side=BUY, price=10, qty=6)       # t=5 execute 3, submit 3
    book.cancel(bid)                                           # t=6 delete
    book.limit(agent=2, side=SELL, price=10, qty=1)            # t=7 STP delete + submit
    assert book.events().tolist() == [
        [1, EV_SUBMIT, ask, 5, 10, SELL],
        [2, EV_SUBMIT, bid, 4, 7, BUY],
        [3, EV_CANCEL, bid, 1, 7, BUY],
        [4, EV_EXECUTE, ask, 2, 10, SELL],
        [5, EV_EXECUTE, ask, 3, 10, SELL],
        [5, EV_SUBMIT, buy, 3, 10, BUY],
        [6, EV_DELETE, bid, 3, 7, BUY],
        [7, EV_DELETE, buy, 3, 10, BUY],
        [7, EV_SUBMIT, book.resting_orders()[0, 0], 1, 10, SELL],
    ]
    assert (EV_SUBMIT, EV_CANCEL, EV_DELETE, EV_EXECUTE) == (1, 2, 3, 4)


def test_event_log_disabled_by_default() -> None:
    book = OrderBook(n_ticks=N_TICKS, capacity=4, n_agents=2)
    book.limit(agent=0, side=BUY, price=3, qty=1)
    assert book.events().shape == (0, 6)


def test_reset_empties_book_accounts_and_counters(book: OrderBook) -> None:
    book.limit(agent=0, side=SELL, price=10, qty=5)
    book.market(agent=1, side=BUY, qty=2)
    book.cancel(999, missing_ok=True)
    book.reset()
    assert book.resting_orders().shape == (0, 5)
    assert (book.best_bid, book.best_ask, book.unknown_cancels) == (-1, N_TICKS, 0)
    assert book.accounts.tolist() == [[0, 0]] * N_AGENTS
    assert book.events().shape == (0, 6)


def test_docstring_example_runs() -> None:
    failures, _ = doctest.testmod(book_module, verbose=False, report=False, raise_on_error=False)
    assert failures == 0


# --------------------------------------------------------------------------- pool full


def test_pool_full_raises_with_message() -> None:
    book = OrderBook(n_ticks=N_TICKS, capacity=2, n_agents=2)
    book.limit(agent=0, side=BUY, price=3, qty=1)
    book.limit(agent=0, side=BUY, price=4, qty=1)
    before = book.resting_orders()
    with pytest.raises(RuntimeError, match=literal(_POOL_FULL.format(2))):
        book.limit(agent=1, side=SELL, price=9, qty=1)
    np.testing.assert_array_equal(book.resting_orders(), before)
    assert book.state[S_REJECTED] == 1
    book.cancel(int(before[0, 0]))
    book.limit(agent=1, side=SELL, price=9, qty=1)  # room again


# --------------------------------------------------------------------------- bad arguments


@pytest.mark.parametrize("side", [0, 2, -2, np.int64(3)])
def test_bad_side_value(book: OrderBook, side: int) -> None:
    with pytest.raises(ValueError, match=bad("side", SIDE_CHOICES, int(side))):
        book.limit(agent=0, side=side, price=5, qty=1)
    with pytest.raises(ValueError, match=bad("side", SIDE_CHOICES, int(side))):
        book.market(agent=0, side=side, qty=1)


@pytest.mark.parametrize("side", [1.0, True, np.bool_(True), "1", None])
def test_bad_side_type(book: OrderBook, side: object) -> None:
    with pytest.raises(TypeError, match=bad("side", "an int", side)):
        book.limit(agent=0, side=side, price=5, qty=1)
    with pytest.raises(TypeError, match=bad("side", "an int", side)):
        book.market(agent=0, side=side, qty=1)


@pytest.mark.parametrize("qty", [0, -3, np.int64(0)])
def test_bad_qty_value(book: OrderBook, qty: int) -> None:
    with pytest.raises(ValueError, match=bad("qty", "an int >= 1", qty)):
        book.limit(agent=0, side=BUY, price=5, qty=qty)
    with pytest.raises(ValueError, match=bad("qty", "an int >= 1", qty)):
        book.market(agent=0, side=BUY, qty=qty)


@pytest.mark.parametrize("qty", [1.5, 2.0, True, np.bool_(True), "3"])
def test_bad_qty_type(book: OrderBook, qty: object) -> None:
    with pytest.raises(TypeError, match=bad("qty", "an int >= 1", qty)):
        book.limit(agent=0, side=BUY, price=5, qty=qty)
    with pytest.raises(TypeError, match=bad("qty", "an int >= 1", qty)):
        book.market(agent=0, side=BUY, qty=qty)
    with pytest.raises(TypeError, match=bad("qty", "an int >= 0", qty)):
        book.cancel(0, qty)


def test_negative_cancel_qty_is_an_error_not_a_full_cancel(book: OrderBook) -> None:
    oid = book.limit(agent=0, side=BUY, price=5, qty=4)
    with pytest.raises(ValueError, match=bad("qty", "an int >= 0", -3)):
        book.cancel(oid, -3)
    assert book.l2(1)[0, 1] == 4


@pytest.mark.parametrize("price", [-1, N_TICKS, N_TICKS + 7])
def test_bad_price_value(book: OrderBook, price: int) -> None:
    with pytest.raises(ValueError, match=bad("price", f"an int in [0, {N_TICKS - 1}]", price)):
        book.limit(agent=0, side=BUY, price=price, qty=1)


@pytest.mark.parametrize("price", [5.0, False, "5", {1}])
def test_bad_price_type(book: OrderBook, price: object) -> None:
    with pytest.raises(TypeError, match=bad("price", f"an int in [0, {N_TICKS - 1}]", price)):
        book.limit(agent=0, side=BUY, price=price, qty=1)


@pytest.mark.parametrize("agent", [-1, N_AGENTS])
def test_bad_agent_value(book: OrderBook, agent: int) -> None:
    with pytest.raises(ValueError, match=bad("agent", f"an int in [0, {N_AGENTS - 1}]", agent)):
        book.limit(agent=agent, side=BUY, price=5, qty=1)
    with pytest.raises(ValueError, match=bad("agent", f"an int in [0, {N_AGENTS - 1}]", agent)):
        book.market(agent=agent, side=BUY, qty=1)


@pytest.mark.parametrize("agent", [0.0, True, None, {1}, "a{"])
def test_bad_agent_type(book: OrderBook, agent: object) -> None:
    # {1} and "a{" carry braces in their repr: the message must still be built verbatim
    with pytest.raises(TypeError, match=bad("agent", f"an int in [0, {N_AGENTS - 1}]", agent)):
        book.limit(agent=agent, side=BUY, price=5, qty=1)
    with pytest.raises(TypeError, match=bad("agent", f"an int in [0, {N_AGENTS - 1}]", agent)):
        book.market(agent=agent, side=BUY, qty=1)


@pytest.mark.parametrize("order_id", [1.0, True, "7"])
def test_bad_order_id_type(book: OrderBook, order_id: object) -> None:
    with pytest.raises(TypeError, match=bad("order_id", "an int", order_id)):
        book.cancel(order_id)


def test_rejected_arguments_leave_book_untouched(book: OrderBook) -> None:
    book.limit(agent=0, side=SELL, price=10, qty=5)
    levels, orders, state = book.levels.copy(), book.orders.copy(), book.state.copy()
    for call in (
        lambda: book.limit(agent=1, side=BUY, price=10, qty=0),
        lambda: book.limit(agent=1, side=BUY, price=N_TICKS, qty=1),
        lambda: book.market(agent=N_AGENTS, side=BUY, qty=1),
        lambda: book.market(agent=1, side=3, qty=1),
        lambda: book.cancel(1.5),
    ):
        with pytest.raises((ValueError, TypeError)):
            call()
    np.testing.assert_array_equal(book.levels, levels)
    np.testing.assert_array_equal(book.orders, orders)
    np.testing.assert_array_equal(book.state, state)


def test_numpy_integers_are_accepted(book: OrderBook) -> None:
    oid = book.limit(agent=np.int32(1), side=np.int64(SELL), price=np.int16(9), qty=np.uint8(4))
    assert rows(book) == [(oid, 1, SELL, 9, 4)]
    assert book.cancel(np.int64(oid), np.int64(1)) == 1


@pytest.mark.parametrize("n_ticks", [1, 0, -5])
def test_bad_n_ticks_value(n_ticks: int) -> None:
    with pytest.raises(ValueError, match=bad("n_ticks", "an int >= 2", n_ticks)):
        OrderBook(n_ticks=n_ticks, capacity=4, n_agents=1)


@pytest.mark.parametrize("capacity", [0, -1])
def test_bad_capacity_value(capacity: int) -> None:
    with pytest.raises(ValueError, match=bad("capacity", "an int >= 1", capacity)):
        OrderBook(n_ticks=8, capacity=capacity, n_agents=1)


@pytest.mark.parametrize("n_agents", [0, -2])
def test_bad_n_agents_value(n_agents: int) -> None:
    with pytest.raises(ValueError, match=bad("n_agents", "an int >= 1", n_agents)):
        OrderBook(n_ticks=8, capacity=4, n_agents=n_agents)


@pytest.mark.parametrize(
    ("kwargs", "name", "expected", "value"),
    [
        ({"n_ticks": 7.9}, "n_ticks", "an int >= 2", 7.9),
        ({"n_ticks": "64"}, "n_ticks", "an int >= 2", "64"),
        ({"capacity": 4.0}, "capacity", "an int >= 1", 4.0),
        ({"capacity": True}, "capacity", "an int >= 1", True),
        ({"n_agents": 2.5}, "n_agents", "an int >= 1", 2.5),
        ({"n_agents": None}, "n_agents", "an int >= 1", None),
        ({"log_capacity": 8.0}, "log_capacity", "an int >= 0", 8.0),
        ({"fill_capacity": 16.5}, "fill_capacity", "an int", 16.5),
    ],
)
def test_bad_constructor_types(kwargs: dict, name: str, expected: str, value: object) -> None:
    args = {"n_ticks": 8, "capacity": 4, "n_agents": 1, **kwargs}
    with pytest.raises(TypeError, match=bad(name, expected, value)):
        OrderBook(**args)


def test_bad_log_capacity_value() -> None:
    with pytest.raises(ValueError, match=bad("log_capacity", "an int >= 0", -1)):
        OrderBook(n_ticks=8, capacity=4, n_agents=1, log_capacity=-1)


def test_smallest_valid_book() -> None:
    book = OrderBook(n_ticks=np.int64(2), capacity=1, n_agents=1)
    oid = book.limit(agent=0, side=BUY, price=1, qty=1)
    assert (book.best_bid, book.best_ask) == (1, 2)
    book.cancel(oid)


# --------------------------------------------------------------------------- kernels used by historical replay


def test_add_resting_rests_without_matching(book: OrderBook) -> None:
    a = book
    bid = add_resting(a.levels, a.orders, a.state, a.log, 0, BUY, 10, 3)
    ask = add_resting(a.levels, a.orders, a.state, a.log, 1, SELL, 9, 2)  # a recorded crossed book
    assert rows(a) == sorted([(bid, 0, BUY, 10, 3), (ask, 1, SELL, 9, 2)])
    assert (a.best_bid, a.best_ask) == (10, 9)
    assert a.accounts.tolist() == [[0, 0]] * N_AGENTS
    assert add_resting(a.levels, a.orders, a.state, a.log, 0, BUY, N_TICKS, 1) == ERR_PRICE
    assert add_resting(a.levels, a.orders, a.state, a.log, 0, BUY, 3, 0) == ERR_QTY
    assert [r[1] for r in a.events().tolist()] == [EV_SUBMIT, EV_SUBMIT]


def test_crossed_tick_keeps_bid_and_ask_apart(book: OrderBook) -> None:
    """A recorded bid and ask at the same tick: a market buy takes the ask only, never the bid."""
    a = book
    bid = add_resting(a.levels, a.orders, a.state, a.log, 0, BUY, 10, 3)
    ask = add_resting(a.levels, a.orders, a.state, a.log, 1, SELL, 10, 2)
    assert a.levels[10, L_BID + L_QTY] == 3 and a.levels[10, L_ASK + L_QTY] == 2
    assert a.l2(1).tolist() == [[10, 3, 10, 2]]
    fills = a.market(agent=2, side=BUY, qty=5)
    assert [(f.maker_id, f.price, f.qty, f.maker_agent) for f in fills] == [(ask, 10, 2, 1)]
    assert rows(a) == [(bid, 0, BUY, 10, 3)]
    assert (a.best_bid, a.best_ask) == (10, N_TICKS)
    fills = a.market(agent=2, side=SELL, qty=1)
    assert [(f.maker_id, f.qty) for f in fills] == [(bid, 1)]
    assert a.levels[10, L_BID + L_QTY] == 2 and a.levels[10, L_ASK + L_QTY] == 0
    assert (a.position(2), a.cash(2)) == (2 - 1, -20 + 10)


def test_side_block() -> None:
    assert (side_block(BUY), side_block(SELL)) == (L_BID, L_ASK)
    assert book_module.N_LEVEL_COLS == 6


def test_remove_range_deletes_one_side_only(book: OrderBook) -> None:
    a = book
    low = a.limit(agent=0, side=BUY, price=3, qty=1)
    for price, qty in ((5, 2), (5, 3), (7, 4)):
        a.limit(agent=0, side=BUY, price=price, qty=qty)
    ask = add_resting(a.levels, a.orders, a.state, a.log, 1, SELL, 5, 9)  # crossed, at a removed bid tick
    assert remove_range(a.levels, a.orders, a.state, a.log, BUY, 4, 99) == (3, 2 + 3 + 4)
    assert rows(a) == sorted([(low, 0, BUY, 3, 1), (ask, 1, SELL, 5, 9)])
    assert (a.best_bid, a.best_ask) == (3, 5)
    assert a.levels[5, L_BID + L_QTY] == 0 and a.levels[5, L_ASK + L_QTY] == 9
    assert [r[1] for r in a.events().tolist()[-3:]] == [EV_DELETE] * 3
    assert remove_range(a.levels, a.orders, a.state, a.log, SELL, -5, 4) == (0, 0)
    assert remove_range(a.levels, a.orders, a.state, a.log, SELL, -5, N_TICKS + 5) == (1, 9)
    assert a.best_ask == N_TICKS


def test_remove_ahead_keeps_the_order_and_what_follows(book: OrderBook) -> None:
    a = book
    first = a.limit(agent=0, side=SELL, price=9, qty=2)
    second = a.limit(agent=1, side=SELL, price=9, qty=3)
    third = a.limit(agent=0, side=SELL, price=9, qty=4)
    slot = third % a.orders.shape[0]
    assert remove_ahead(a.levels, a.orders, a.state, a.log, slot) == (2, 5)
    assert rows(a) == [(third, 0, SELL, 9, 4)] and a.levels[9, L_ASK + L_QTY] == 4
    assert remove_ahead(a.levels, a.orders, a.state, a.log, slot) == (0, 0)
    assert first not in a.resting_orders()[:, 0] and second not in a.resting_orders()[:, 0]



def test_execute_resting_partial_full_capped_and_unknown(book: OrderBook) -> None:
    a = book
    ask = a.limit(agent=0, side=SELL, price=10, qty=5)
    a.limit(agent=0, side=SELL, price=12, qty=1)
    args = (a.levels, a.orders, a.state, a.accounts, a.fills, a.log)
    a.state[S_N_FILLS] = 0
    assert execute_resting(*args, ask, 2, 1) == 2
    assert a.last_fills() == [Fill(ask, -1, 10, 2, 0, 1, BUY)]
    assert rows(a)[0][1:] == (0, SELL, 10, 3)
    assert execute_resting(*args, ask, 99, 1) == 3  # capped at what rests
    assert a.best_ask == 12
    assert (a.position(1), a.cash(1)) == (5, -50)
    assert (a.position(0), a.cash(0)) == (-5, 50)
    assert execute_resting(*args, ask, 1, 1) == -1
    assert a.state[S_UNKNOWN_EXECUTIONS] == 1
    assert [r[1:] for r in a.events().tolist()[-2:]] == [[EV_EXECUTE, ask, 2, 10, SELL], [EV_EXECUTE, ask, 3, 10, SELL]]


@pytest.mark.parametrize("side", [BUY, SELL])
def test_execute_resting_behind_the_best_keeps_the_best(book: OrderBook, side: int) -> None:
    best, deep = (9, 4) if side == BUY else (11, 16)
    book.limit(agent=0, side=side, price=best, qty=1)
    behind = book.limit(agent=0, side=side, price=deep, qty=2)
    args = (book.levels, book.orders, book.state, book.accounts, book.fills, book.log)
    assert execute_resting(*args, behind, 2, 1) == 2  # empties a level that is not the best
    assert (book.best_bid if side == BUY else book.best_ask) == best
    assert book.l2(2)[0].tolist() == ([best, 1, -1, 0] if side == BUY else [-1, 0, best, 1])


@pytest.mark.parametrize("qty", [0, -3])
def test_execute_resting_rejects_non_positive_qty(book: OrderBook, qty: int) -> None:
    bid = book.limit(agent=0, side=BUY, price=7, qty=4)
    args = (book.levels, book.orders, book.state, book.accounts, book.fills, book.log)
    book.state[S_N_FILLS] = 0
    assert execute_resting(*args, bid, qty, 1) == ERR_QTY
    assert rows(book) == [(bid, 0, BUY, 7, 4)]
    assert book.levels[7, L_BID + L_QTY] == 4
    assert book.accounts.tolist() == [[0, 0]] * N_AGENTS
    assert book.last_fills() == []


def test_submit_kernel_error_codes_and_message_counter(book: OrderBook) -> None:
    a = book
    args = (a.levels, a.orders, a.state, a.accounts, a.fills, a.log)
    assert submit(*args, 0, BUY, 3, 0, False) == ERR_QTY
    assert submit(*args, 0, BUY, -1, 1, False) == ERR_PRICE
    assert submit(*args, 0, BUY, N_TICKS, 1, False) == ERR_PRICE
    assert a.state[S_N_MESSAGES] == 3 and a.state[S_TIME] == 3
    small = OrderBook(n_ticks=4, capacity=1, n_agents=1)
    s = (small.levels, small.orders, small.state, small.accounts, small.fills, small.log)
    assert submit(*s, 0, BUY, 1, 1, False) >= 0
    assert submit(*s, 0, BUY, 1, 1, False) == ERR_POOL_FULL
