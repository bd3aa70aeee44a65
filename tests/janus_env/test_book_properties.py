"""Hypothesis invariants of the matching engine against a brute-force reference.

Random streams of limit, market, cancel (known, finished and unknown ids) and
recorded-execution messages from several agents go through ``OrderBook`` and
through ``ReferenceBook``, a deliberately naive pure-Python engine (a dict of
resting orders scanned in full for every match: price-time priority,
self-trade prevention by cancelling the resting order). After every message
the engine's internal arrays are checked for the design invariants — never
crossed, level totals and FIFO queues consistent, no negative sizes, unique
ids, zero-sum cash and positions, no leaked pool slots — and its resting
orders, accounts, fills, counters and event log must equal the reference's.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from janus_env.book import (
    BUY,
    EV_CANCEL,
    EV_DELETE,
    EV_EXECUTE,
    EV_SUBMIT,
    L_ASK,
    L_BID,
    L_HEAD,
    L_QTY,
    L_TAIL,
    N_STATE,
    O_FREE,
    O_ID,
    O_NEXT,
    O_PREV,
    O_QTY,
    O_SIDE,
    S_N_FILLS,
    S_N_FREE,
    S_N_MESSAGES,
    S_REJECTED,
    S_STP,
    S_TIME,
    S_TRADED_QTY,
    S_UNKNOWN_EXECUTIONS,
    SELL,
    OrderBook,
    ERR_POOL_FULL,
    UnknownOrderError,
    add_resting,
    execute_resting,
)

N_TICKS = 12
N_AGENTS = 3
CAPACITY = 10  # small enough that streams fill the pool and recycle slots
MAX_OPS = 80


# --------------------------------------------------------------------------- reference engine


@dataclass
class RefOrder:
    agent: int
    side: int
    price: int
    qty: int
    seq: int


@dataclass
class ReferenceBook:
    """Pure-Python price-time-priority book keyed by the engine's order ids."""

    n_agents: int
    orders: dict[int, RefOrder] = field(default_factory=dict)
    cash: list[int] = field(default_factory=list)
    position: list[int] = field(default_factory=list)
    events: list[tuple[int, int, int, int, int, int]] = field(default_factory=list)
    time: int = 0
    seq: int = 0
    stp: int = 0
    unknown_cancels: int = 0
    unknown_executions: int = 0
    rejected: int = 0
    traded: int = 0

    def __post_init__(self) -> None:
        self.cash = [0] * self.n_agents
        self.position = [0] * self.n_agents

    def _settle(self, buyer: int, seller: int, price: int, qty: int) -> None:
        self.cash[buyer] -= price * qty
        self.position[buyer] += qty
        self.cash[seller] += price * qty
        self.position[seller] -= qty
        self.traded += qty

    def _best_maker(self, side: int, limit: float) -> int | None:
        """Id of the resting order an incoming ``side`` order meets first, if it crosses ``limit``."""
        best, best_key = None, None
        for oid, o in self.orders.items():
            if o.side != -side:
                continue
            if (side == BUY and o.price > limit) or (side == SELL and o.price < limit):
                continue
            key = (o.price if side == BUY else -o.price, o.seq)
            if best_key is None or key < best_key:
                best, best_key = oid, key
        return best

    def _match(self, agent: int, side: int, limit: float, qty: int) -> tuple[int, list[tuple]]:
        fills = []
        while qty > 0:
            oid = self._best_maker(side, limit)
            if oid is None:
                break
            o = self.orders[oid]
            if o.agent == agent:  # self-trade prevention: cancel the resting order
                self.stp += 1
                self.events.append((self.time, EV_DELETE, oid, o.qty, o.price, o.side))
                del self.orders[oid]
                continue
            q = min(o.qty, qty)
            self.events.append((self.time, EV_EXECUTE, oid, q, o.price, o.side))
            buyer, seller = (agent, o.agent) if side == BUY else (o.agent, agent)
            self._settle(buyer, seller, o.price, q)
            fills.append((oid, o.price, q, o.agent, agent, side))  # taker id checked apart
            qty -= q
            o.qty -= q
            if o.qty == 0:
                del self.orders[oid]
        return qty, fills

    def pool_full(self, capacity: int) -> bool:
        return len(self.orders) >= capacity

    def reject(self) -> None:
        self.time += 1
        self.rejected += 1

    def limit(self, oid: int, agent: int, side: int, price: int, qty: int) -> list[tuple]:
        self.time += 1
        remaining, fills = self._match(agent, side, price, qty)
        if remaining > 0:
            self.seq += 1
            self.orders[oid] = RefOrder(agent, side, price, remaining, self.seq)
            self.events.append((self.time, EV_SUBMIT, oid, remaining, price, side))
        return fills

    def market(self, agent: int, side: int, qty: int) -> list[tuple]:
        self.time += 1
        _, fills = self._match(agent, side, float("inf") if side == BUY else float("-inf"), qty)
        return fills

    def cancel(self, oid: int, qty: int) -> int:
        """Cancelled quantity, or -1 for an id that is not resting."""
        self.time += 1
        o = self.orders.get(oid)
        if o is None:
            self.unknown_cancels += 1
            return -1
        if qty <= 0 or qty >= o.qty:
            self.events.append((self.time, EV_DELETE, oid, o.qty, o.price, o.side))
            del self.orders[oid]
            return o.qty
        self.events.append((self.time, EV_CANCEL, oid, qty, o.price, o.side))
        o.qty -= qty
        return qty

    def execute(self, oid: int, qty: int, taker: int) -> tuple[int, list[tuple]]:
        """Recorded execution of a resting order (no self-trade prevention)."""
        self.time += 1
        o = self.orders.get(oid)
        if o is None:
            self.unknown_executions += 1
            return -1, []
        q = min(qty, o.qty)
        self.events.append((self.time, EV_EXECUTE, oid, q, o.price, o.side))
        buyer, seller = (o.agent, taker) if o.side == BUY else (taker, o.agent)
        self._settle(buyer, seller, o.price, q)
        o.qty -= q
        if o.qty == 0:
            del self.orders[oid]
        return q, [(oid, o.price, q, o.agent, taker, -o.side)]

    def resting(self) -> list[tuple[int, int, int, int, int]]:
        return sorted((oid, o.agent, o.side, o.price, o.qty) for oid, o in self.orders.items())

    def queue(self, price: int, side: int) -> list[int]:
        """Ids of ``side`` resting at ``price`` in time priority."""
        by_time = sorted(self.orders.items(), key=lambda kv: kv[1].seq)
        return [oid for oid, o in by_time if o.price == price and o.side == side]

    def rest(self, oid: int, agent: int, side: int, price: int, qty: int) -> None:
        """A recorded submission: rests without matching (the book may cross)."""
        self.time += 1
        self.seq += 1
        self.orders[oid] = RefOrder(agent, side, price, qty, self.seq)
        self.events.append((self.time, EV_SUBMIT, oid, qty, price, side))


# --------------------------------------------------------------------------- streams

agents = st.integers(0, N_AGENTS - 1)
sides = st.sampled_from([BUY, SELL])
limit_ops = st.tuples(st.just("limit"), agents, sides, st.integers(0, N_TICKS - 1), st.integers(1, 8))
market_ops = st.tuples(st.just("market"), agents, sides, st.integers(1, 12))
# target: ("issued", k) picks the k-th issued id modulo their number; ("raw", n) any integer
targets = st.one_of(
    st.tuples(st.just("issued"), st.integers(0, 10_000)),
    st.tuples(st.just("raw"), st.integers(-3, 4 * CAPACITY)),
)
cancel_ops = st.tuples(st.just("cancel"), targets, st.integers(0, 6), st.booleans())
execute_ops = st.tuples(st.just("execute"), targets, st.integers(1, 6), agents)
ops = st.one_of(limit_ops, limit_ops, limit_ops, market_ops, cancel_ops, cancel_ops, execute_ops)
streams = st.lists(ops, min_size=20, max_size=MAX_OPS)


def pick_id(target: tuple[str, int], issued: list[int]) -> int:
    kind, n = target
    if kind == "issued" and issued:
        return issued[n % len(issued)]
    return n


def engine_fills(book: OrderBook) -> list[tuple]:
    return [(f.maker_id, f.price, f.qty, f.maker_agent, f.taker_agent, f.taker_side) for f in book.last_fills()]


# --------------------------------------------------------------------------- invariants


def check_invariants(book: OrderBook, ref: ReferenceBook, seen_ids: set[int], crossed_ok: bool = False) -> None:
    """The design invariants; ``crossed_ok`` for streams with ``add_resting`` (a recorded, possibly crossed book)."""
    resting = book.resting_orders()
    ids, agent, side, price, qty = (resting[:, j] for j in range(5))

    # no negative sizes anywhere
    assert (book.orders[:, O_QTY] >= 0).all()
    assert (book.levels[:, [L_BID + L_QTY, L_ASK + L_QTY]] >= 0).all()
    assert (qty > 0).all()

    # ids of resting orders are distinct and were issued by this stream
    assert len(set(ids.tolist())) == len(ids)
    assert set(ids.tolist()) <= seen_ids

    # best bid / ask equal the brute-force best of the resting orders, never crossed
    bids, asks = price[side == BUY], price[side == SELL]
    assert book.best_bid == (int(bids.max()) if bids.size else -1)
    assert book.best_ask == (int(asks.min()) if asks.size else N_TICKS)
    if book.best_bid >= 0 and book.best_ask < N_TICKS and not crossed_ok:
        assert book.best_bid < book.best_ask

    # per-side level totals equal the sum of that side's resting quantities (bid and
    # ask quantity never net, even at one tick of a crossed book); a matched book has
    # one side per level
    expected = {}
    for s, block in ((BUY, L_BID), (SELL, L_ASK)):
        expected[s] = np.zeros(N_TICKS, dtype=np.int64)
        np.add.at(expected[s], price[side == s], qty[side == s])
        np.testing.assert_array_equal(book.levels[:, block + L_QTY], expected[s])
    if not crossed_ok:
        for p in range(N_TICKS):
            assert len(set(side[price == p].tolist())) <= 1

    # each level's linked FIFO queue on each side is the reference's time-priority queue
    for p in range(N_TICKS):
        for s, block in ((BUY, L_BID), (SELL, L_ASK)):
            walked, prev, slot = [], -1, book.levels[p, block + L_HEAD]
            while slot >= 0:
                assert book.orders[slot, O_PREV] == prev
                assert book.orders[slot, O_SIDE] == s
                walked.append(int(book.orders[slot, O_ID]))
                prev, slot = slot, book.orders[slot, O_NEXT]
            assert book.levels[p, block + L_TAIL] == prev
            assert walked == ref.queue(p, s)

    # the pool neither leaks nor double-books a slot
    n_free = int(book.state[S_N_FREE])
    free = book.orders[:n_free, O_FREE].tolist()
    live = np.flatnonzero(book.orders[:, O_QTY] > 0).tolist()
    assert sorted(free + live) == list(range(book.orders.shape[0]))

    # L2 snapshot equals the brute-force aggregation
    snap = book.l2(N_TICKS)
    bid_levels = sorted({int(p) for p in bids}, reverse=True)
    ask_levels = sorted({int(p) for p in asks})
    want = np.array([[-1, 0, -1, 0]] * N_TICKS, dtype=np.int64)
    for i, p in enumerate(bid_levels):
        want[i, :2] = (p, expected[BUY][p])
    for i, p in enumerate(ask_levels):
        want[i, 2:] = (p, expected[SELL][p])
    np.testing.assert_array_equal(snap, want)

    # zero-sum accounts: traded quantity equal on both sides, cash conserved (no fees)
    cash, pos = book.accounts[:, 0], book.accounts[:, 1]
    assert pos.sum() == 0
    assert cash.sum() == 0
    for mark in (0, 1, N_TICKS // 2, N_TICKS - 1, 10**6):
        assert int((cash + pos * mark).sum()) == 0

    # everything equals the reference engine
    assert sorted(tuple(r) for r in resting.tolist()) == ref.resting()
    assert book.accounts[:, 0].tolist() == ref.cash
    assert book.accounts[:, 1].tolist() == ref.position
    assert book.state[S_TRADED_QTY] == ref.traded
    assert book.self_trades_prevented == book.state[S_STP] == ref.stp
    assert book.unknown_cancels == ref.unknown_cancels
    assert book.state[S_UNKNOWN_EXECUTIONS] == ref.unknown_executions
    assert book.state[S_REJECTED] == ref.rejected
    assert book.state[S_TIME] == book.state[S_N_MESSAGES] == ref.time
    assert [tuple(r) for r in book.events().tolist()] == ref.events


def run_stream(stream: list[tuple], crossed_ok: bool = False) -> tuple[OrderBook, ReferenceBook]:
    book = OrderBook(n_ticks=N_TICKS, capacity=CAPACITY, n_agents=N_AGENTS, log_capacity=16 * MAX_OPS)
    ref = ReferenceBook(N_AGENTS)
    issued: list[int] = []
    seen_ids: set[int] = set()

    def new_id(oid: int) -> None:
        assert oid >= 0 and oid not in seen_ids, "order ids must be unique across the stream"
        seen_ids.add(oid)
        issued.append(oid)

    for op in stream:
        kind = op[0]
        if kind in ("limit", "market"):
            full = ref.pool_full(CAPACITY)
            try:
                if kind == "limit":
                    _, a, s, p, q = op
                    oid = book.limit(agent=a, side=s, price=p, qty=q)
                else:
                    _, a, s, q = op
                    book.market(agent=a, side=s, qty=q)
            except RuntimeError:
                assert full, "pool-full raised while the pool had room"
                ref.reject()
            else:
                fills = engine_fills(book)
                assert all(f.qty > 0 for f in book.last_fills())
                if kind == "limit":
                    new_id(oid)
                    want = ref.limit(oid, a, s, p, q)
                    assert {f.taker_id for f in book.last_fills()} <= {oid}
                else:
                    want = ref.market(a, s, q)
                    takers = {f.taker_id for f in book.last_fills()}
                    assert len(takers) <= 1
                    for t in takers:
                        new_id(t)
                assert fills == want
        elif kind == "rest":
            _, a, s, p, q = op
            full = ref.pool_full(CAPACITY)
            oid = add_resting(book.levels, book.orders, book.state, book.log, a, s, p, q)
            if full:
                assert oid == ERR_POOL_FULL
                ref.reject()
            else:
                new_id(oid)
                ref.rest(oid, a, s, p, q)
        elif kind == "cancel":
            _, target, q, missing_ok = op
            oid = pick_id(target, issued)
            want = ref.cancel(oid, q)
            if want < 0 and not missing_ok:
                try:
                    book.cancel(oid, q)
                except UnknownOrderError:
                    pass
                else:
                    raise AssertionError(f"cancel of unknown id {oid} did not raise")
            else:
                assert book.cancel(oid, q, missing_ok=missing_ok) == max(want, 0)
        else:
            _, target, q, taker = op
            oid = pick_id(target, issued)
            book.state[S_N_FILLS] = 0
            got = execute_resting(book.levels, book.orders, book.state, book.accounts, book.fills, book.log,
                                  oid, q, taker)
            want, want_fills = ref.execute(oid, q, taker)
            assert got == want
            assert engine_fills(book) == want_fills
            assert all(f.taker_id == -1 for f in book.last_fills())
        check_invariants(book, ref, seen_ids, crossed_ok)
    return book, ref


@settings(max_examples=250, deadline=None)
@given(streams)
def test_book_matches_reference_and_keeps_invariants(stream: list[tuple]) -> None:
    book, ref = run_stream(stream)
    # the final state, once more in plain words: same resting orders and accounts
    assert sorted(tuple(r) for r in book.resting_orders().tolist()) == ref.resting()
    assert book.accounts.tolist() == [list(ca) for ca in zip(ref.cash, ref.position)]


rest_ops = st.tuples(st.just("rest"), agents, sides, st.integers(0, N_TICKS - 1), st.integers(1, 8))
crossed_streams = st.lists(st.one_of(rest_ops, rest_ops, limit_ops, market_ops, cancel_ops, execute_ops),
                           min_size=20, max_size=MAX_OPS)


@settings(max_examples=150, deadline=None)
@given(crossed_streams)
def test_crossed_recorded_book_never_nets_bid_and_ask(stream: list[tuple]) -> None:
    """``add_resting`` may cross the book (replayed messages); bids and asks at one tick stay apart.

    Every fill of an incoming order is against the opposite side only (the
    reference scans resting orders by side), level totals and FIFO queues are
    per side, and the accounts stay zero-sum.
    """
    book, ref = run_stream(stream, crossed_ok=True)
    assert sorted(tuple(r) for r in book.resting_orders().tolist()) == ref.resting()


@settings(max_examples=60, deadline=None)
@given(streams, st.integers(0, 10))
def test_reset_mid_stream_equals_fresh_book(stream: list[tuple], cut: int) -> None:
    """A reset book replays a stream exactly like a fresh one (no state survives reset)."""
    book, _ = run_stream(stream[:cut])
    book.reset()
    fresh = OrderBook(n_ticks=N_TICKS, capacity=CAPACITY, n_agents=N_AGENTS, log_capacity=16 * MAX_OPS)
    assert book.state.tolist() == fresh.state.tolist() and len(fresh.state) == N_STATE
    for ob in (book, fresh):
        for op in stream[cut:]:
            if op[0] == "limit":
                try:
                    ob.limit(agent=op[1], side=op[2], price=op[3], qty=op[4])
                except RuntimeError:
                    pass
            elif op[0] == "market":
                try:
                    ob.market(agent=op[1], side=op[2], qty=op[3])
                except RuntimeError:
                    pass
    np.testing.assert_array_equal(book.resting_orders(), fresh.resting_orders())
    np.testing.assert_array_equal(book.accounts, fresh.accounts)
    np.testing.assert_array_equal(book.levels, fresh.levels)
    np.testing.assert_array_equal(book.events(), fresh.events())
