"""LOBSTER reconstruction: initial state, stale-order rules, revealed levels, pseudo ids, extra columns, fidelity.

Ground truth comes from two places: the shipped real sample (the first 999
messages of LOBSTER's AAPL 2012-06-21 sample day, whose orderbook file is the
true 10-level book after each message) and truncated files cut from complete
engine streams by :func:`visible_messages` (exact truth, and the two things a
real file hides: orders deeper than its levels and orders from before it).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import gymnasium as gym
import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import envs_registry  # noqa: F401  (registers Janus-LOB-v0)
from janus_env.book import BUY, EV_DELETE, EV_EXECUTE, O_AGENT, O_QTY, O_SIDE, SELL
from janus_env.data import (
    DataFormatError,
    LOBSTERData,
    drifting_order_flow,
    read_lobster,
    replay_lobster,
    write_lobster,
)
from janus_env.data import lobster as lob
from janus_env.data import lobster_replay as replay_mod
from janus_env.data import lobster_write as write_mod
from janus_env.data import validation as v
from janus_env.historical import LOBSTERSource, load_source, sniff_format
from janus_env.samples import sample_path

AAPL = sample_path("lobster_aapl")
AAPL_BOOK = sample_path("lobster_aapl_orderbook")
EMPTY_LEVEL = "9999999999,0,-9999999999,0"
NO_BID = "-9999999999,0"


def best_levels(rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(best ask, best bid) prices of LOBSTER orderbook rows."""
    return rows[:, 0], rows[:, 2]


def never_crossed(rows: np.ndarray) -> bool:
    ask, bid = best_levels(rows)
    both = (ask != lob.EMPTY_ASK) & (bid != lob.EMPTY_BID)
    return bool((bid[both] < ask[both]).all())


def executions_at_best(data: LOBSTERData, rows: np.ndarray, before_first: np.ndarray) -> int:
    """Type 4 messages priced at the replayed best of their side *before* them (from the snapshots).

    ``before_first``: the orderbook-layout top level before message 0 (ask px, ask qty, bid px, bid qty).
    """
    before = np.vstack([before_first[None], rows[:-1, :4]])
    ex = data.type == EV_EXECUTE
    best = np.where(data.direction == BUY, before[:, 2], before[:, 0])
    return int((ex & (best == data.price)).sum())




def events_data(events: np.ndarray) -> LOBSTERData:
    grid = replay_mod.PriceGrid(origin=1_000_000, tick_size=100, n_ticks=1024)
    return LOBSTERData(
        time=34_200.0 + events[:, 0] * 1e-3, type=events[:, 1].copy(), order_id=events[:, 2].copy(),
        size=events[:, 3].copy(), price=grid.to_price(events[:, 4]), direction=events[:, 5].copy(),
    )  # fmt: skip


# --------------------------------------------------------------------------- the real AAPL sample


@pytest.fixture(scope="module")
def aapl() -> LOBSTERData:
    return read_lobster(AAPL, AAPL_BOOK)


@pytest.fixture(scope="module")
def aapl_replay(aapl: LOBSTERData) -> tuple[replay_mod.ReplayReport, np.ndarray]:
    return replay_lobster(aapl, snapshots=True)


def test_aapl_top_of_book_matches_the_orderbook_file(aapl: LOBSTERData, aapl_replay) -> None:
    """Issue 12's acceptance: best bid/ask price and size equal the file on >= 99% of rows (measured 999 / 999)."""
    report, rows = aapl_replay
    truth = aapl.orderbook
    top = (rows[:, :4] == truth[:, :4]).all(axis=1)
    assert report.messages == len(aapl) == 999
    assert report.top_mismatches == int((~top).sum())
    assert top.mean() >= 0.99
    assert top.all()  # measured: every row
    assert report.unknown_cancels == report.unknown_executions == report.capped_executions == 0


def test_aapl_all_levels_match_and_the_copied_cells_are_only_level_10(aapl: LOBSTERData, aapl_replay) -> None:
    """All 10 levels match on every row; rule 4 copied only level-10 cells, and every other cell matches too."""
    report, rows = aapl_replay
    truth = aapl.orderbook
    assert report.snapshot_mismatches == int((~(rows == truth).all(axis=1)).sum()) == 0
    ask, bid = replay_mod.revealed_cells(truth)
    assert report.revealed_levels == int(ask.sum() + bid.sum()) == 318  # 176 ask, 142 bid
    assert set(np.nonzero(ask)[1]) == set(np.nonzero(bid)[1]) == {9}  # only the 10th level, never the top
    copied = np.zeros_like(truth, dtype=bool)
    copied[:, 0::4], copied[:, 1::4] = ask, ask
    copied[:, 2::4], copied[:, 3::4] = bid, bid
    copied[0] = True  # row 0 is the initial state
    assert int(copied.sum()) == 2 * 318 + 40
    assert (rows[~copied] == truth[~copied]).all()  # the 39,284 cells it never copied: all equal


def test_aapl_replay_reads_only_row_0_and_the_revealed_cells(aapl: LOBSTERData, aapl_replay) -> None:
    """Changing any size the rules do not read changes nothing; changing a later revealed cell changes nothing before it."""
    _, rows = aapl_replay
    ask, bid = replay_mod.revealed_cells(aapl.orderbook)
    read = np.zeros_like(aapl.orderbook, dtype=bool)
    read[:, 1::4], read[:, 3::4] = ask, bid
    read[0] = True
    sizes = np.zeros_like(read)
    sizes[:, 1::4] = sizes[:, 3::4] = True
    changed = aapl.orderbook.copy()
    unread = sizes & ~read & (changed > 0)
    changed[unread] += 7
    _, again = replay_lobster(replace(aapl, orderbook=changed), snapshots=True)
    np.testing.assert_array_equal(again, rows)
    # no look-ahead: the level that comes into view after message 146 (line 147) read with another size
    k = 146
    assert bid[k, 9] and aapl.orderbook[k, 38:40].tolist() == [5854000, 50]
    changed = aapl.orderbook.copy()
    changed[k, 39] = 20
    _, again = replay_lobster(replace(aapl, orderbook=changed), snapshots=True)
    np.testing.assert_array_equal(again[:k], rows[:k])  # rows before it never read row 146
    assert again[k, 39] == 20 and again[k, 38] == 5854000  # and row 146 is the one that shows it


def test_aapl_without_revealed_levels(aapl: LOBSTERData) -> None:
    """Rule 4 off: top of book on 955 of 999 rows; the other 44 are unannounced depth that came into view.

    The 44 (rows 440-486, bid side) hold four orders that rested deeper than
    10 levels when placed (ids 13419503, 3790155, 4725582, 12695153): the
    message file first names them when they execute (messages 447-449, 487,
    0-based). The first, a bid of 50 at 58.54, came
    into view as the 10th bid level after message 146 (a bid deletion at
    58.551): only the orderbook file shows it, and rule 4 reads it there.
    """
    report, rows = replay_lobster(aapl, snapshots=True, reveal_levels=False)
    truth = aapl.orderbook
    top = (rows[:, :4] == truth[:, :4]).all(axis=1)
    assert report.top_mismatches == int((~top).sum()) == 44  # 955 / 999 = 95.6%
    assert (rows[:, :2] == truth[:, :2]).all()  # the ask side matches on every row
    bad = np.flatnonzero(~top)
    assert bad.min() == 440 and bad.max() == 486
    late = {13419503: 447, 3790155: 448, 4725582: 449, 12695153: 487}
    for oid, row in late.items():
        assert np.flatnonzero(aapl.order_id == oid).tolist() == [row]  # first and only mention: its execution
    assert report.unknown_executions == 4 and report.executions_at_best == 94
    assert 1 - report.snapshot_mismatches / report.messages == pytest.approx(113 / 999)
    assert report.revealed_levels == report.revealed_orders == report.trimmed_orders == 0
    assert (aapl.type[146], aapl.price[146], aapl.direction[146]) == (EV_DELETE, 5855100, BUY)
    assert rows[146, 38:40].tolist() != [5854000, 50] == truth[146, 38:40].tolist()  # missing without rule 4


def test_aapl_never_crossed_and_executions_at_best(aapl: LOBSTERData, aapl_replay) -> None:
    report, rows = aapl_replay
    assert report.crossed_rows == report.crossed == 0 and never_crossed(rows)
    side, price, _ = replay_mod.initial_book(aapl)
    first = np.array([price[side == SELL].min(), 0, price[side == BUY].max(), 0])  # the book before message 0
    at_best = executions_at_best(aapl, rows, first)
    assert at_best == report.executions_at_best
    assert report.executions == 98 and at_best / report.executions >= 0.70  # measured 98 / 98
    assert at_best == 98
    assert report.initial_orders == len(side) == 19
    assert report.stale_crossed_orders == report.stale_executed_orders == report.stale_queue_orders == 0
    assert (report.revealed_orders, report.revealed_qty, report.trimmed_orders, report.trimmed_qty) == (11, 5321, 3, 1265)
    assert report.preexisting_matches == 9  # the four late ids among them


def test_aapl_without_initial_state(aapl: LOBSTERData) -> None:
    """Messages only (no orderbook row 0): still never crossed; top of book on 996 of 999 rows (952 without rule 4)."""
    report, rows = replay_lobster(aapl, snapshots=True, initial_state=False)
    assert report.initial_orders == 0
    assert report.crossed_rows == 0 and never_crossed(rows)
    top = (rows[:, :4] == aapl.orderbook[:, :4]).all(axis=1)
    assert top.mean() == 1 - report.top_mismatches / report.messages
    assert np.flatnonzero(~top).tolist() == [0, 1, 2]  # no ask is known until message 3 submits a better one
    no_reveal, _ = replay_lobster(aapl, initial_state=False, reveal_levels=False)
    assert no_reveal.top_mismatches == 47 and no_reveal.snapshot_mismatches == 999  # 952 / 999; 0 / 999
    assert report.snapshot_mismatches == 248  # 751 / 999: revealed levels fill the depth from the edge
    with_state, _ = replay_lobster(aapl)
    assert with_state.top_mismatches <= report.top_mismatches
    assert with_state.snapshot_mismatches < report.snapshot_mismatches


# --------------------------------------------------------------------------- initial state


@pytest.fixture
def lobster_data(tmp_path: Path, write_rows) -> Callable[..., LOBSTERData]:
    """``lobster_data(messages, book=None)``: the rows written to ``t_message_1.csv`` (and ``t_orderbook_1.csv``) in
    ``tmp_path``, read back."""

    def read(messages: list[str], book: list[str] | None = None) -> LOBSTERData:
        msg = write_rows(tmp_path / "t_message_1.csv", messages)
        ob = None if book is None else write_rows(tmp_path / "t_orderbook_1.csv", book)
        return read_lobster(msg, ob)

    return read


@pytest.mark.parametrize(
    ("message", "want"),
    [
        # submission of the best bid: it did not exist before
        ("1.0,1,7,5,1000100,1", [(BUY, 1000000, 4), (SELL, 1000300, 2)]),
        # partial cancel of the best bid: 3 more shares before
        ("1.0,2,7,3,1000100,1", [(BUY, 1000100, 8), (BUY, 1000000, 4), (SELL, 1000300, 2)]),
        # deletion that emptied a level: re-created
        ("1.0,3,7,6,1000200,-1", [(BUY, 1000100, 5), (BUY, 1000000, 4), (SELL, 1000200, 6), (SELL, 1000300, 2)]),
        # execution of the best ask
        ("1.0,4,7,1,1000300,-1", [(BUY, 1000100, 5), (BUY, 1000000, 4), (SELL, 1000300, 3)]),
        # hidden execution: no visible change
        ("1.0,5,0,9,1000200,1", [(BUY, 1000100, 5), (BUY, 1000000, 4), (SELL, 1000300, 2)]),
    ],
)
def test_initial_book_undoes_message_zero(message: str, want: list[tuple], lobster_data) -> None:
    row0 = "1000300,2,1000100,5,9999999999,0,1000000,4"
    data = lobster_data([message], [row0])
    side, price, qty = replay_mod.initial_book(data)
    assert list(zip(side.tolist(), price.tolist(), qty.tolist())) == want
    report, rows = replay_lobster(data, snapshots=True)
    np.testing.assert_array_equal(rows, data.orderbook)  # replaying message 0 from it gives row 0 back
    assert report.initial_orders == len(want) and report.unknown_cancels == report.unknown_executions == 0


def test_submission_of_message_zero_keeps_its_id(lobster_data) -> None:
    book = ["1000300,2,1000100,5", "1000300,2,1000100,3"]
    data = lobster_data(["1.0,1,7,5,1000100,1", "1.1,2,7,2,1000100,1"], book)
    report, rows = replay_lobster(data, snapshots=True)
    np.testing.assert_array_equal(rows, data.orderbook)
    assert report.preexisting_matches == 0 and report.unknown_cancels == 0  # id 7 is known


def test_initial_book_rejects_a_foreign_orderbook(tmp_path: Path, lobster_data, row_error) -> None:
    data = lobster_data(["1.0,1,7,50,1000100,1"], ["1000300,2,1000100,5"])
    problem = replay_mod.SEED_MISSING.format(side="bid", size=50, price=1000100)
    with pytest.raises(DataFormatError, match=row_error(tmp_path / "t_orderbook_1.csv", 1, problem)):
        replay_mod.LOBSTERReplayer(data)
    assert replay_mod.LOBSTERReplayer(data, initial_state=False).report().initial_orders == 0


def test_initial_state_needs_an_orderbook(lobster_data) -> None:
    data = lobster_data(["1.0,1,7,5,1000100,1"])
    with pytest.raises(ValueError, match=re.escape(replay_mod.NO_ORDERBOOK)):
        replay_mod.LOBSTERReplayer(data, initial_state=True)
    with pytest.raises(ValueError, match=re.escape(replay_mod.NO_ORDERBOOK)):
        replay_mod.initial_book(data)
    assert replay_mod.LOBSTERReplayer(data).initial_state is False
    with pytest.raises(TypeError, match=re.escape("Expected `initial_state` to be a bool or None, got 'false'")):
        replay_mod.LOBSTERReplayer(data, initial_state="false")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=re.escape("Expected `remove_stale` to be a bool, got 0")):
        replay_mod.LOBSTERReplayer(data, remove_stale=0)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=re.escape("Expected `remove_stale` to be a bool, got None")):
        replay_mod.LOBSTERReplayer(data, remove_stale=None)  # type: ignore[arg-type]


# --------------------------------------------------------------------------- stale-order rules


def test_rule_1_crossing_submission_removes_what_it_crosses(lobster_data) -> None:
    rows = [
        "1.0,1,1,5,1000300,-1",  # ask 100.03 x 5
        "1.1,1,2,7,1000400,-1",  # ask 100.04 x 7
        "1.2,1,3,4,1000600,-1",  # ask 100.06 x 4
        "1.3,1,4,9,1000400,1",   # bid 100.04: the asks at 100.03 and 100.04 must be gone
    ]  # fmt: skip
    data = lobster_data(rows)
    report, snaps = replay_lobster(data, snapshots=True, n_levels=2)
    assert (report.stale_crossed_orders, report.stale_crossed_qty) == (2, 12)
    assert snaps[-1].tolist() == [1000600, 4, 1000400, 9, lob.EMPTY_ASK, 0, lob.EMPTY_BID, 0]
    assert report.crossed == report.crossed_rows == 0
    literal, snaps = replay_lobster(data, snapshots=True, n_levels=2, remove_stale=False)
    assert literal.crossed == literal.crossed_rows == 1 and literal.stale_crossed_orders == 0
    assert snaps[-1, :4].tolist() == [1000300, 5, 1000400, 9]  # crossed: bid 100.04 >= ask 100.03


def test_rule_2_execution_at_a_worse_price_removes_better_orders(lobster_data) -> None:
    rows = [
        "1.0,1,1,5,1000000,1",   # bid 100.00 x 5
        "1.1,1,2,6,1000200,1",   # bid 100.02 x 6
        "1.2,1,3,2,1000300,1",   # bid 100.03 x 2
        "1.3,4,1,3,1000000,1",   # execution at 100.00: the bids at 100.02 and 100.03 are gone
        "1.4,4,2,1,1000200,1",   # an execution of a removed order: unknown now
    ]  # fmt: skip
    data = lobster_data(rows)
    report, snaps = replay_lobster(data, snapshots=True, n_levels=1)
    assert (report.stale_executed_orders, report.stale_executed_qty) == (2, 8)
    assert report.executions_at_best == 0 and report.unknown_executions == 1
    assert report.preexisting_matches == 0  # an id once known is never matched by price
    assert snaps[3].tolist() == [lob.EMPTY_ASK, 0, 1000000, 2]
    literal, _ = replay_lobster(data, remove_stale=False)
    assert literal.stale_executed_orders == 0 and literal.unknown_executions == 0


def test_rule_2_execution_removes_the_orders_ahead_in_its_queue(lobster_data) -> None:
    rows = [
        "1.0,1,1,5,1000000,1",   # bid 100.00 x 5 (first in the queue)
        "1.1,1,2,6,1000000,1",   # bid 100.00 x 6
        "1.2,1,3,2,1000000,1",   # bid 100.00 x 2
        "1.3,4,3,1,1000000,1",   # order 3 executes: 1 and 2, ahead of it, must be gone
    ]  # fmt: skip
    data = lobster_data(rows)
    report, snaps = replay_lobster(data, snapshots=True, n_levels=1)
    assert (report.stale_queue_orders, report.stale_queue_qty) == (2, 11)
    assert snaps[-1].tolist() == [lob.EMPTY_ASK, 0, 1000000, 1]
    assert report.executions_at_best == 1 and report.stale_executed_orders == 0
    literal, snaps = replay_lobster(data, snapshots=True, n_levels=1, remove_stale=False)
    assert literal.stale_queue_orders == 0 and snaps[-1].tolist() == [lob.EMPTY_ASK, 0, 1000000, 12]


def test_rule_3_unknown_ids_shrink_the_preexisting_level(lobster_data) -> None:
    rows = [
        "1.0,5,0,2,1000200,1",     # hidden execution: no visible change, so row 1 is the book before it
        "1.1,2,901,3,1000100,1",   # partial cancel of an order from before the file
        "1.2,4,902,2,1000100,1",   # execution of another one (seller-initiated)
        "1.3,3,903,6,1000300,-1",  # deletion of one at the ask
        "1.4,3,904,9,1000500,-1",  # deletion at a price with no pre-existing order: unknown
    ]  # fmt: skip
    book = ["1000300,10,1000100,8", "1000300,10,1000100,5", "1000300,10,1000100,3", "1000300,4,1000100,3",
            "1000300,4,1000100,3"]  # fmt: skip
    data = lobster_data(rows, book)
    report, snaps = replay_lobster(data, snapshots=True)
    np.testing.assert_array_equal(snaps, data.orderbook)
    assert report.initial_orders == 2 and report.preexisting_matches == 3
    assert report.unknown_cancels == 1 and report.unknown_executions == 0 and report.hidden_executions == 1
    literal, snaps = replay_lobster(data, snapshots=True, initial_state=False)
    assert literal.preexisting_matches == 0 and literal.unknown_cancels == 3 and literal.unknown_executions == 1
    empty = [lob.EMPTY_ASK, 0, lob.EMPTY_BID, 0]
    assert snaps.tolist() == [empty] * len(rows)


def test_known_id_consumed_by_the_agent_is_not_matched_by_price(lobster_data) -> None:
    book = ["1000300,10,1000100,8", "1000300,10,1000100,13", "1000300,10,1000100,8"]
    rows = ["1.0,5,0,2,1000200,1", "1.1,1,7,5,1000100,1", "1.2,3,7,5,1000100,1"]
    data = lobster_data(rows, book)
    replayer = replay_mod.LOBSTERReplayer(data)
    replayer.replay_to(2)
    assert replayer.l2(1)[0, 1] == 13  # pre-existing 8 + order 7 x 5
    filled, _ = replayer.market(SELL, 10)  # takes the pre-existing 8 (first in the queue) and 2 of order 7
    assert filled == 10
    replayer.replay_to(3)  # deletion of order 7: its remaining 3 go, nothing else
    assert replayer.l2(1)[0, 1] == 0 and replayer.report().preexisting_matches == 0


def test_rule_3_unknown_id_spans_several_preexisting_orders(lobster_data) -> None:
    """An unknown id's shares come off every pre-existing order at its price, in queue order."""
    rows = [
        "1.0,5,0,1,1000200,1",     # hidden: row 1 is the initial state (bid 100.01 x 4)
        "1.1,1,1,9,1000300,1",     # bid 100.03 x 9: 100.01 leaves the 1-level window
        "1.2,3,1,9,1000300,1",     # deleted: 100.01 comes into view with 10 (6 more placed out of view)
        "1.3,4,901,7,1000100,1",   # an unknown order of 7 executes: 4 + 3 off the two pre-existing orders
    ]  # fmt: skip
    book = ["1000500,5,1000100,4", "1000500,5,1000300,9", "1000500,5,1000100,10", "1000500,5,1000100,3"]
    data = lobster_data(rows, book)
    report, snaps = replay_lobster(data, snapshots=True)
    np.testing.assert_array_equal(snaps, data.orderbook)
    assert (report.initial_orders, report.revealed_orders, report.revealed_qty) == (2, 1, 6)
    assert report.preexisting_matches == 1 and report.capped_executions == report.unknown_executions == 0


# --------------------------------------------------------------------------- rule 4: levels revealed at the edge


REVEAL_ROWS = [
    "1.0,1,1,5,1000500,-1",  # ask 100.05 x 5
    "1.1,1,2,4,1000300,-1",  # ask 100.03 x 4: 100.05 leaves the 1-level window
    "1.2,1,3,2,1000200,-1",  # ask 100.02 x 2: 100.03 leaves it too
    # out of view: order 1 deleted, order 2 cancelled down to 1, an ask 100.04 x 6 placed
    "1.3,3,3,2,1000200,-1",  # delete order 3: 100.03 comes into view with 1 (we hold 4: trim 3)
    "1.4,4,2,1,1000300,-1",  # order 2 executes: 100.04 comes into view with 6 (we hold none: add 6)
    "1.5,4,9,6,1000400,-1",  # the unannounced ask executes: no ask left (we still hold order 1: trim 5)
]  # fmt: skip
REVEAL_BOOK = ["1000500,5," + NO_BID, "1000300,4," + NO_BID, "1000200,2," + NO_BID,
               "1000300,1," + NO_BID, "1000400,6," + NO_BID, EMPTY_LEVEL]  # fmt: skip


def test_rule_4_sets_levels_that_come_into_view(lobster_data) -> None:
    data = lobster_data(REVEAL_ROWS, REVEAL_BOOK)
    ask, bid = replay_mod.revealed_cells(data.orderbook)
    assert ask[:, 0].tolist() == [False, False, False, True, True, False] and not bid.any()
    report, snaps = replay_lobster(data, snapshots=True)
    np.testing.assert_array_equal(snaps, data.orderbook)
    assert report.revealed_levels == 2 and (report.revealed_orders, report.revealed_qty) == (1, 6)
    assert (report.trimmed_orders, report.trimmed_qty) == (2, 3 + 5)
    assert report.preexisting_matches == 1 and report.unknown_executions == report.unknown_cancels == 0
    without, snaps = replay_lobster(data, snapshots=True, reveal_levels=False)
    assert without.revealed_levels == without.revealed_orders == without.trimmed_orders == 0
    assert snaps[3, :2].tolist() == [1000300, 4] and snaps[5, :2].tolist() == [1000500, 5]
    assert without.unknown_executions == 1 and without.top_mismatches == 3


def test_rule_4_trims_preexisting_orders_before_recorded_ones(lobster_data) -> None:
    rows = [
        "1.0,5,0,1,1000200,1",   # hidden: row 1 is the initial state (bid 100.01 x 4, pre-existing)
        "1.1,1,1,3,1000100,1",   # bid 100.01 x 3 joins it (order 1)
        "1.2,1,2,9,1000300,1",   # bid 100.03 x 9: 100.01 leaves the window
        "1.3,3,2,9,1000300,1",   # deleted: 100.01 shows 5 (2 left out of view)
    ]  # fmt: skip
    book = ["1000500,5,1000100,4", "1000500,5,1000100,7", "1000500,5,1000300,9", "1000500,5,1000100,5"]
    data = lobster_data(rows, book)
    replayer = replay_mod.LOBSTERReplayer(data)
    replayer.replay_to(len(data))
    assert replayer.l2(1)[0, 1] == 5
    r = replayer.report()
    assert (r.trimmed_orders, r.trimmed_qty, r.revealed_orders) == (1, 2, 0)
    o = replayer.book.orders
    bids = o[(o[:, O_QTY] > 0) & (o[:, O_SIDE] == BUY)]
    assert sorted(map(tuple, bids[:, [O_AGENT, O_QTY]].tolist())) == [
        (replay_mod.RECORDED_AGENT, 3), (replay_mod.PREEXISTING_AGENT, 2)]  # order 1 kept whole  # fmt: skip


def test_rule_4_removes_stale_orders_a_revealed_level_crosses(lobster_data) -> None:
    """A garbled file: a bid it never shows, then an ask revealed through it (guarded like rule 1)."""
    rows = ["1.0,1,1,5,1000800,1", "1.1,7,0,0,-1,-1"]  # a bid at 100.08, then a halt (no book change)
    book = ["1000600,1,1000400,1", "1000700,2,1000400,1"]  # the ask window moves out to 100.07
    data = lobster_data(rows, book)
    report, snaps = replay_lobster(data, snapshots=True, initial_state=False)
    assert (report.stale_crossed_orders, report.stale_crossed_qty, report.revealed_orders) == (1, 5, 1)
    assert report.crossed_rows == 0 and snaps[1, :2].tolist() == [1000700, 2]
    literal, _ = replay_lobster(data, initial_state=False, remove_stale=False)
    assert literal.crossed_rows == 1 and literal.stale_crossed_orders == 0


def test_reveal_levels_arguments(lobster_data) -> None:
    data = lobster_data(["1.0,1,7,5,1000100,1"])
    with pytest.raises(ValueError, match=re.escape(replay_mod.NO_ORDERBOOK_REVEAL)):
        replay_mod.LOBSTERReplayer(data, reveal_levels=True)
    with pytest.raises(ValueError, match=re.escape(replay_mod.NO_ORDERBOOK_REVEAL)):
        replay_lobster(data, reveal_levels=True)
    assert replay_mod.LOBSTERReplayer(data).reveal_levels is False
    with pytest.raises(TypeError, match=re.escape("Expected `reveal_levels` to be a bool or None, got 1")):
        replay_mod.LOBSTERReplayer(data, reveal_levels=1)  # type: ignore[arg-type]
    with_book = lobster_data(REVEAL_ROWS, REVEAL_BOOK)
    assert replay_mod.LOBSTERReplayer(with_book).reveal_levels is True
    assert LOBSTERSource(with_book, step_messages=1, reveal_levels=False).report().revealed_levels == 0
    for option, revealed in ((None, 318), (False, 0)):  # a data option of load_source (and so of the CLIs)
        spec = {"path": str(AAPL), "step_messages": 999, **({} if option is None else {"reveal_levels": option})}
        src = load_source(spec)
        src.reset()
        assert src.report().revealed_levels == revealed and src.report().messages == 999


def test_revealed_level_off_the_grid_names_the_line(tmp_path: Path, lobster_data, row_error) -> None:
    rows = ["1.0,1,1,5,1000500,-1", "1.1,1,2,4,1000300,-1", "1.2,3,2,4,1000300,-1"]
    book = ["1000500,5," + NO_BID, "1000300,4," + NO_BID, "1000450,5," + NO_BID]
    data = lobster_data(rows, book)
    origin = replay_mod.LOBSTERReplayer(data, reveal_levels=False).grid.origin
    problem = replay_mod.OFF_GRID.format(price=1000450, origin=origin, tick=100)
    with pytest.raises(DataFormatError, match=row_error(tmp_path / "t_orderbook_1.csv", 3, problem)):
        replay_mod.LOBSTERReplayer(data)
    assert replay_mod.LOBSTERReplayer(data, tick_size=50).reveal_levels is True


# --------------------------------------------------------------------------- truncated files with exact truth


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_truncated_files_never_cross_and_execute_at_the_best(seed: int) -> None:
    full = events_data(drifting_order_flow(6000, seed))
    vis = write_mod.visible_messages(full, 10, start=len(full) // 4)
    assert 0 < len(vis) < len(full) - len(full) // 4  # deep events and the first quarter are dropped
    report, rows = replay_lobster(vis, snapshots=True)
    assert report.crossed_rows == 0 and never_crossed(rows)
    assert report.executions_at_best / report.executions >= 0.70  # measured 100% on seeds 0-2
    assert report.stale_crossed_orders + report.stale_executed_orders + report.stale_queue_orders > 0
    top = (rows[:, :4] == vis.orderbook[:, :4]).all(axis=1).mean()
    deep = (rows == vis.orderbook).all(axis=1).mean()
    assert top == 1 - report.top_mismatches / report.messages
    assert top >= 0.95  # measured 96.9% / 96.7% / 97.0% (seeds 0-2)
    literal, rows = replay_lobster(vis, snapshots=True, initial_state=False, remove_stale=False, reveal_levels=False)
    assert literal.crossed_rows > 0 and not never_crossed(rows)  # what the rules prevent
    assert literal.executions_at_best < report.executions_at_best
    assert 1 - literal.top_mismatches / literal.messages < top


@pytest.mark.parametrize("n_levels", [10, 5, 2, 1])
def test_revealed_levels_never_make_a_truncated_file_worse(n_levels: int) -> None:
    """Rule 4 on files with exact truth: top of book and every level match more often, nothing crosses."""
    full = events_data(drifting_order_flow(6000, 0))
    vis = write_mod.visible_messages(full, n_levels, start=len(full) // 4)
    ask, bid = replay_mod.revealed_cells(vis.orderbook)
    assert set(np.nonzero(ask)[1]) == set(np.nonzero(bid)[1]) == {n_levels - 1}  # only the deepest level
    figures = {}
    for reveal in (False, True):
        report, rows = replay_lobster(vis, snapshots=True, reveal_levels=reveal)
        assert report.crossed_rows == 0 and never_crossed(rows)
        top = (rows[:, :4] == vis.orderbook[:, :4]).all(axis=1).mean()
        every = (rows == vis.orderbook).all(axis=1).mean()
        figures[reveal] = (top, every, report.executions_at_best / report.executions, report)
    (top0, all0, best0, r0), (top1, all1, best1, r1) = figures[False], figures[True]
    assert top1 > top0 and all1 > all0 and best1 >= best0
    assert r1.revealed_levels == int(ask.sum() + bid.sum()) and r1.revealed_orders > 0 and r1.trimmed_orders > 0
    assert r1.unknown_cancels + r1.unknown_executions < r0.unknown_cancels + r0.unknown_executions
    # measured (seed 0): 10 levels 87.4% -> 96.9% top, 0.1% -> 76.9% all; 1 level 18.2% -> 99.1%
    assert top1 >= 0.95 and best1 >= 0.99


@settings(max_examples=25, deadline=None)
@given(st.integers(0, 10_000), st.integers(1, 6), st.floats(0.0, 0.5))
def test_any_truncated_file_replays_uncrossed(seed: int, n_levels: int, start_fraction: float) -> None:
    full = events_data(drifting_order_flow(400, seed, spread=0.15))
    vis = write_mod.visible_messages(full, n_levels, start=int(start_fraction * (len(full) - 1)))
    for initial_state, reveal_levels in ((True, True), (True, False), (False, True), (False, False)):
        report, rows = replay_lobster(vis, snapshots=True, initial_state=initial_state, reveal_levels=reveal_levels)
        assert report.crossed_rows == 0 and never_crossed(rows)
        assert report.messages == len(vis)


def test_untruncated_file_replays_exactly() -> None:
    full = events_data(drifting_order_flow(1500, 5))
    vis = write_mod.visible_messages(full, 400)  # every level visible from the first message: nothing hidden
    assert len(vis) == len(full)  # every engine event changes the book somewhere
    report, rows = replay_lobster(vis, snapshots=True)
    assert report.snapshot_mismatches == report.top_mismatches == 0
    assert report.stale_crossed_orders == report.stale_executed_orders == report.stale_queue_orders == 0
    assert report.preexisting_matches == 0 and report.executions_at_best == report.executions
    assert report.revealed_levels == report.revealed_orders == report.trimmed_orders == 0  # no window edge


def test_visible_messages_arguments() -> None:
    full = events_data(drifting_order_flow(50, 0))
    with pytest.raises(ValueError, match=re.escape("Expected `n_levels` to be an int >= 1, got 0")):
        write_mod.visible_messages(full, 0)
    with pytest.raises(ValueError, match=re.escape(f"Expected `start` to be an int in [0, {len(full) - 1}], "
                                                   f"got {len(full)}")):  # fmt: skip
        write_mod.visible_messages(full, 5, start=len(full))
    with pytest.raises(TypeError, match=re.escape("Expected `start` to be an int in [0, ")):
        write_mod.visible_messages(full, 5, start=1.0)  # type: ignore[arg-type]


# --------------------------------------------------------------------------- reading: pseudo ids, extra columns


def test_pseudo_ids_of_cross_trades_and_hidden_executions(tmp_path: Path, write_rows) -> None:
    rows = [
        "34200.1,1,11,10,1000100,1",
        "34200.2,6,-1,500,1000100,-1",  # opening cross, LOBSTER pseudo id -1
        "34200.3,6,-2,300,1000100,1",   # closing cross
        "34200.4,5,-1,7,1000100,1",     # hidden execution with an unknown id
        "34200.5,5,0,3,1000100,-1",     # hidden execution, id 0 (NASDAQ since 2010)
    ]  # fmt: skip
    data = read_lobster(write_rows(tmp_path / "x_message_1.csv", rows))
    report, _ = replay_lobster(data)
    assert report.cross_trades == 2 and report.cross_volume == 800 and report.hidden_executions == 2
    assert report.sell_volume == 7 and report.buy_volume == 3 and report.unknown_executions == 0


def test_extra_columns_option(tmp_path: Path, write_rows, row_error) -> None:
    base = ["34200.1,1,11,10,1000100,1", "34200.2,1,12,5,1000300,-1", "34200.3,4,12,2,1000300,-1"]
    plain = read_lobster(write_rows(tmp_path / "p_message_1.csv", base))
    seven = write_rows(tmp_path / "s_message_1.csv", [r + ",NSDQ" for r in base[:2]] + [base[2] + ",X,9"])
    problem = lob.EXTRA_COLUMNS.format(problem=v.WRONG_FIELD_COUNT.format(expected=6, found=7))
    with pytest.raises(DataFormatError, match=row_error(seven, 1, problem)):
        read_lobster(seven)
    wide = read_lobster(seven, extra_columns="ignore")
    for name in lob.MESSAGE_COLUMNS:
        np.testing.assert_array_equal(getattr(wide, name), getattr(plain, name))
    short = write_rows(tmp_path / "h_message_1.csv", [base[0] + ",0", "34200.2,1,12,5,1000300"])
    with pytest.raises(DataFormatError, match=row_error(short, 2, v.MISSING_VALUE.format(column="direction"))):
        read_lobster(short, extra_columns="ignore")
    bad_cell = write_rows(tmp_path / "c_message_1.csv", [base[0] + ",0", "34200.2,1,12,x5,1000300,-1,0"])
    with pytest.raises(DataFormatError, match=row_error(bad_cell, 2, v.NON_NUMERIC.format(column="size", value="x5"))):
        read_lobster(bad_cell, extra_columns="ignore")
    with pytest.raises(ValueError, match=re.escape("Expected `extra_columns` to be one of ('error', 'ignore'), "
                                                   "got 'drop'")):  # fmt: skip
        read_lobster(seven, extra_columns="drop")
    # through the historical source and the file sniffer
    assert sniff_format(seven) == "lobster"
    with pytest.raises(DataFormatError, match=row_error(seven, 1, problem)):
        load_source(seven, step_messages=1)
    src = load_source(seven, step_messages=1, extra_columns="ignore")
    assert isinstance(src, LOBSTERSource) and len(src) == 3


def test_real_aapl_sample_with_a_seventh_column(tmp_path: Path, aapl: LOBSTERData) -> None:
    msg = tmp_path / "AAPL_2012-06-21_34200000_57600000_message_10.csv"
    msg.write_text("".join(line + ",0\n" for line in AAPL.read_text().splitlines()))
    (tmp_path / "AAPL_2012-06-21_34200000_57600000_orderbook_10.csv").write_bytes(AAPL_BOOK.read_bytes())
    src = load_source({"path": msg, "extra_columns": "ignore", "step_messages": 50})
    assert src.data.orderbook_path is not None and src.report().initial_orders == 19
    np.testing.assert_array_equal(src.data.price, aapl.price)


# --------------------------------------------------------------------------- writer round trip


def test_writer_orderbook_is_read_back_and_replayed_from_its_first_row(tmp_path: Path) -> None:
    events = drifting_order_flow(1500, 3)
    msg, ob = tmp_path / "w_message_5.csv", tmp_path / "w_orderbook_5.csv"
    write_lobster(events, msg, ob, n_levels=5)
    data = read_lobster(msg, ob)  # the reader validates every row the writer emitted
    for initial_state in (False, True):
        report, rows = replay_lobster(data, snapshots=True, initial_state=initial_state)
        np.testing.assert_array_equal(rows, data.orderbook)
        assert report.snapshot_mismatches == report.top_mismatches == 0
        assert report.stale_crossed_orders == report.stale_executed_orders == report.stale_queue_orders == 0
    # a truncated view of the same log, written and read back as CSV
    vis = write_mod.visible_messages(events_data(events), 5, start=300)
    vmsg, vob = tmp_path / "v_message_5.csv", tmp_path / "v_orderbook_5.csv"
    pd.DataFrame({c: getattr(vis, c) for c in lob.MESSAGE_COLUMNS}).to_csv(vmsg, header=False, index=False,
                                                                           float_format="%.9f")  # fmt: skip
    pd.DataFrame(vis.orderbook).to_csv(vob, header=False, index=False)
    back = read_lobster(vmsg, vob)
    np.testing.assert_array_equal(back.orderbook, vis.orderbook)
    np.testing.assert_array_equal(back.order_id, vis.order_id)


# --------------------------------------------------------------------------- the environment


def test_env_uses_the_reconstruction_and_a_random_policy_earns_nothing_absurd() -> None:
    """``data=<message file>`` picks the orderbook sibling; a random policy pays the spread, no more."""
    env = gym.make("Janus-LOB-v0", scenario="historical", data={"path": str(AAPL), "step_messages": 5},
                   window=8, episode_steps=150)  # fmt: skip
    source = env.unwrapped._market.source
    assert isinstance(source, LOBSTERSource) and source.data.orderbook_path == str(AAPL_BOOK)
    returns = []
    for episode in range(4):
        _, info = env.reset(seed=episode)
        rng = np.random.default_rng(100 + episode)
        start, done = info["equity"], False
        while not done:
            _, _, terminated, truncated, info = env.step(int(rng.integers(3)))
            done = terminated or truncated
            book = source.book()
            assert not book[0, 0] >= book[0, 2]  # never crossed (NaN compares False)
        returns.append(info["equity"] / start - 1)
    env.close()
    report = source.report()
    assert report.initial_orders == 19 and report.crossed_rows == 0
    assert -0.06 < float(np.mean(returns)) < 0.0  # measured about -2.8% over 150 steps of 5 messages
