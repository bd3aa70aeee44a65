"""LOBSTER loading, validation, replay through our engine, and the writer round trip.

The committed fixture under ``tests/data`` is regenerated with::

    PYTHONPATH=. python tests/janus_env/test_data_lobster.py
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import numpy as np
import pytest

from janus_env.book import BUY, SELL, S_N_LOG, OrderBook
from janus_env.checks import BAD_VALUE
from janus_env.data import DataFormatError, LOBSTERData, read_lobster, replay_lobster, write_lobster
from janus_env.data import lobster as lob
from janus_env.data import lobster_replay as replay_mod
from janus_env.data import lobster_write as write_mod
from janus_env.data import validation as v

DATA_DIR = Path(__file__).resolve().parents[1] / "data"
FIXTURE_STEM = "JANUS_2024-01-02_34200000_57600000"
FIXTURE_LEVELS = 5
FIXTURE_ORDERS = 500
FIXTURE_SEED = 7


# --------------------------------------------------------------------------- helpers


def engine_stream(n_orders: int, seed: int, n_levels: int = 5) -> tuple[OrderBook, list[tuple[int, np.ndarray]]]:
    """Drive a fresh book with seeded random limit/market/cancel orders from 4 agents.

    Returns the book (``events()`` holds its log) and, after every call, the
    number of logged events so far and the book's L2 snapshot in ticks.
    """
    rng = np.random.default_rng(seed)
    book = OrderBook(n_ticks=256, capacity=4096, n_agents=4, log_capacity=20 * n_orders + 16)
    center = 128
    live: list[int] = []
    checkpoints: list[tuple[int, np.ndarray]] = []
    for _ in range(n_orders):
        u = rng.random()
        agent = int(rng.integers(4))
        side = BUY if rng.random() < 0.5 else SELL
        if u < 0.55 or not live:
            offset = int(rng.geometric(0.3)) - 2  # -1: crosses the spread now and then
            live.append(book.limit(agent, side, center - side * offset, int(rng.integers(1, 30))))
        elif u < 0.72:
            book.market(agent, side, int(rng.integers(1, 60)))
        else:
            oid = live.pop(int(rng.integers(len(live))))
            partial = int(rng.integers(0, 8)) if rng.random() < 0.5 else 0
            book.cancel(oid, partial, missing_ok=True)
        if rng.random() < 0.02:
            center += int(rng.integers(-3, 4))
        checkpoints.append((int(book.state[S_N_LOG]), book.l2(n_levels)))
    return book, checkpoints


def fixture_paths(directory: Path = DATA_DIR) -> tuple[Path, Path]:
    """The LOBSTER fixture's message and orderbook files."""
    return (
        directory / f"{FIXTURE_STEM}_message_{FIXTURE_LEVELS}.csv",
        directory / f"{FIXTURE_STEM}_orderbook_{FIXTURE_LEVELS}.csv",
    )


def write_fixture(directory: Path = DATA_DIR) -> tuple[Path, Path]:
    """(Re)generate the LOBSTER fixture in ``directory``."""
    book, _ = engine_stream(FIXTURE_ORDERS, FIXTURE_SEED, FIXTURE_LEVELS)
    messages, orderbook = fixture_paths(directory)
    write_lobster(book.events(), messages, orderbook, n_levels=FIXTURE_LEVELS)
    return messages, orderbook


GOOD = [
    "34200.001,1,11,10,1000100,1",
    "34200.002,1,12,5,1000300,-1",
    "34200.003,2,11,4,1000100,1",
    "34200.004,4,12,2,1000300,-1",
    "34200.005,3,11,6,1000100,1",
]


# --------------------------------------------------------------------------- round trip


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_round_trip_snapshot_for_snapshot(tmp_path: Path, seed: int) -> None:
    book, checkpoints = engine_stream(1500, seed, n_levels=5)
    events = book.events()
    assert set(np.unique(events[:, 1])) == {1, 2, 3, 4}  # every engine event type occurs
    msg, ob = tmp_path / "x_message_5.csv", tmp_path / "x_orderbook_5.csv"
    written = write_lobster(events, msg, ob, n_levels=5)
    assert written.messages == len(events) and written.unknown_cancels == written.unknown_executions == 0

    data = read_lobster(msg, ob)
    assert len(data) == len(events)
    np.testing.assert_array_equal(data.type, events[:, 1])
    np.testing.assert_array_equal(data.order_id, events[:, 2])
    np.testing.assert_array_equal(data.size, events[:, 3])
    np.testing.assert_array_equal(data.price, 1_000_000 + 100 * events[:, 4])
    np.testing.assert_array_equal(data.direction, events[:, 5])

    # the orderbook file equals the original engine's book after every call ...
    grid = replay_mod.PriceGrid(origin=1_000_000, tick_size=100, n_ticks=256)
    for n_events, l2 in checkpoints:
        if n_events:
            want = replay_mod.to_orderbook_layout(l2[None], grid)[0]
            np.testing.assert_array_equal(data.orderbook[n_events - 1], want)
    # ... and a fresh engine replaying the read-back messages reproduces it after EVERY event
    report, rows = replay_lobster(data, snapshots=True, chunk=97)
    np.testing.assert_array_equal(rows, data.orderbook)
    assert report.snapshot_mismatches == 0 and report.first_mismatch == 0
    assert report.messages == len(events)
    assert report.unknown_cancels == report.unknown_executions == report.rejected == 0
    assert report.crossed == report.capped_executions == report.duplicate_ids == 0
    counts = np.bincount(events[:, 1], minlength=5)
    assert (report.submissions, report.cancellations, report.deletions, report.executions) == tuple(counts[1:5])
    executed = events[events[:, 1] == 4]
    assert report.buy_volume == executed[executed[:, 5] == SELL, 3].sum()
    assert report.sell_volume == executed[executed[:, 5] == BUY, 3].sum()


def test_replay_detects_a_different_orderbook(tmp_path: Path) -> None:
    msg, ob = fixture_paths()
    data = read_lobster(msg, ob)
    changed = data.orderbook.copy()
    changed[100, 1] += 1  # ask size at level 1 after message 101
    report, _ = replay_lobster(LOBSTERData(**{**data.__dict__, "orderbook": changed}))
    assert report.snapshot_mismatches == 1 and report.first_mismatch == 101


def test_fixture_is_reproducible(tmp_path: Path) -> None:
    for committed, fresh in zip(fixture_paths(), write_fixture(tmp_path)):
        assert committed.read_bytes() == fresh.read_bytes(), f"regenerate {committed.name}"


def test_fixture_replays_exactly() -> None:
    data = read_lobster(*fixture_paths())
    report, _ = replay_lobster(data)
    assert report.snapshot_mismatches == 0 and report.messages == len(data) == 562
    assert data.n_levels == FIXTURE_LEVELS


# --------------------------------------------------------------------------- mid-day files


def test_mid_day_file_counts_unknown_orders(tmp_path: Path, write_rows) -> None:
    rows = [
        "34200.0,2,901,5,1000000,1",   # partial cancel of an order from before the file
        "34200.1,1,1,10,1000000,1",    # known bid 100.00 x 10
        "34200.2,3,902,7,1000100,-1",  # delete of an unknown ask
        "34200.3,4,903,3,1000200,-1",  # execution of an unknown ask (buyer-initiated)
        "34200.4,1,2,8,1000300,-1",    # known ask 100.03 x 8
        "34200.5,4,2,3,1000300,-1",    # execution of a known ask
        "34200.6,5,0,4,1000150,1",     # hidden execution of a bid (seller-initiated)
        "34200.7,6,0,20,1000150,1",    # cross trade
        "34200.8,7,0,0,-1,-1",         # halt
        "34200.9,4,904,2,1000000,1",   # execution of an unknown bid
        "34201.0,2,1,4,1000000,1",     # partial cancel of a known bid
        "34201.1,3,905,1,1000000,1",   # delete of an unknown bid
        "34201.2,4,2,9,1000300,-1",    # execution larger than what rests (5): capped
        "34201.3,3,2,5,1000300,-1",    # delete of an order that is gone: unknown
    ]  # fmt: skip
    data = read_lobster(write_rows(tmp_path / "mid.csv", rows))
    replayer = replay_mod.LOBSTERReplayer(data)
    replayer.replay_to(len(data))
    r = replayer.report()
    assert r.messages == 14
    assert r.unknown_cancels == 4  # 901, 902, 905, and 2 after it was used up
    assert r.unknown_executions == 2  # 903, 904
    assert r.hidden_executions == 1 and r.cross_trades == 1 and r.halts == 1
    assert r.capped_executions == 1 and r.rejected == 0 and r.crossed == 0
    assert (r.submissions, r.cancellations, r.deletions, r.executions) == (2, 2, 3, 4)
    assert r.buy_volume == 3 + 3 + 9 and r.sell_volume == 4 + 2 and r.cross_volume == 20
    l2 = replayer.l2(2)
    g = replayer.grid
    assert g.to_price(l2[0, 0]) == 1_000_000 and l2[0, 1] == 6  # bid 10 - 4 cancelled
    assert l2[0, 2] == -1  # the ask was executed 3 + 5 and is gone


def test_resubmitted_id_is_counted(tmp_path: Path, write_rows) -> None:
    rows = ["1.0,1,5,10,1000000,1", "2.0,1,5,3,1000100,1", "3.0,3,5,3,1000100,1"]
    data = read_lobster(write_rows(tmp_path / "dup.csv", rows))
    report, _ = replay_lobster(data)
    assert report.duplicate_ids == 1 and report.unknown_cancels == 0


# --------------------------------------------------------------------------- grid and capacity


def test_price_grid_margin_and_mapping() -> None:
    g = replay_mod.price_grid(np.array([1_000_000, 1_005_000]), tick_size=100, margin_ticks=3)
    assert g == replay_mod.PriceGrid(origin=999_700, tick_size=100, n_ticks=51 + 6)
    np.testing.assert_array_equal(g.to_ticks(np.array([999_700, 1_000_000, 1_005_000])), [0, 3, 53])
    np.testing.assert_array_equal(g.to_price(g.to_ticks(np.array([1_002_300]))), [1_002_300])
    assert replay_mod.price_grid(np.array([1_000_000])).n_ticks == 1 + 2 * 64


@pytest.mark.parametrize(("tick", "error"), [(0, ValueError), (-100, ValueError), (1.5, TypeError),
                                             (True, TypeError), (100.0, TypeError)])
def test_bad_tick(tick: object, error: type) -> None:
    message = BAD_VALUE.format(name="tick_size", expected="an int >= 1", value=tick)
    with pytest.raises(error, match=re.escape(message)):
        replay_mod.price_grid(np.array([1_000_000]), tick_size=tick)  # type: ignore[arg-type]


def test_off_grid_price_names_the_line(tmp_path: Path, write_rows, row_error) -> None:
    path = write_rows(tmp_path / "m.csv", ["1.0,1,1,10,1000000,1", "2.0,1,2,10,1000050,-1"])
    data = read_lobster(path)
    problem = replay_mod.OFF_GRID.format(price=1000050, origin=1000000 - 64 * 100, tick=100)
    with pytest.raises(DataFormatError, match=row_error(path, 2, problem)):
        replay_mod.LOBSTERReplayer(data)
    assert replay_mod.LOBSTERReplayer(data, tick_size=50).grid.tick_size == 50


def test_capacity_bound_matches_replay() -> None:
    data = read_lobster(*fixture_paths())
    replayer = replay_mod.LOBSTERReplayer(data)
    bound = replayer.book.orders.shape[0] - 64
    live = []
    replayer.reset()
    for stop in range(1, len(data) + 1):
        replayer.replay_to(stop)
        live.append(int((replayer.book.orders[:, 4] > 0).sum()))
    # room for one synthetic order per level that comes into view (rule 4); the complete fixture needs none
    revealed = sum(int(m.sum()) for m in replay_mod.revealed_cells(data.orderbook))
    assert revealed > 0 and replayer.report().revealed_levels == revealed
    assert replayer.report().revealed_orders == replayer.report().trimmed_orders == 0
    assert bound == max(live) + revealed


# --------------------------------------------------------------------------- validation


@pytest.mark.parametrize(
    ("row", "problem"),
    [
        ("34200.003,2,11,x4,1000100,1", v.NON_NUMERIC.format(column="size", value="x4")),
        ("34200.003,2,11,,1000100,1", v.MISSING_VALUE.format(column="size")),
        ("nan,2,11,4,1000100,1", v.MISSING_VALUE.format(column="time")),
        ("34200.003,2,11,4.5,1000100,1", v.NOT_INTEGER.format(column="size", value=4.5)),
        ("34200.003,2,11,-4,1000100,1", v.NEGATIVE.format(column="size", value=-4)),
        ("34200.003,9,11,4,1000100,1", lob.BAD_EVENT_TYPE.format(value=9)),
        ("34200.003,2,11,4,1000100,0", lob.BAD_DIRECTION.format(value=0)),
        ("34200.003,2,11,0,1000100,1", lob.ZERO_SIZE.format(type=2)),
        ("34200.003,2,11,4,0,1", v.NOT_POSITIVE.format(column="price", value=0)),
        ("34200.003,2,-11,4,1000100,1", lob.NEGATIVE_ID.format(type=2, value=-11)),
        ("34200.003,4,-1,4,1000100,1", lob.NEGATIVE_ID.format(type=4, value=-1)),
        ("34200.003,5,0,4,1000100,0", lob.BAD_DIRECTION.format(value=0)),
        ("34200.0015,2,11,4,1000100,1", v.TIME_DECREASES.format(value=34200.0015, previous=34200.002)),
        ("inf,2,11,4,1000100,1", v.NOT_FINITE.format(column="time", value=float("inf"))),
    ],
)
def test_bad_message_row_names_file_and_line(tmp_path: Path, row: str, problem: str, write_rows, row_error) -> None:
    rows = GOOD[:2] + [row] + GOOD[3:]
    path = write_rows(tmp_path / "bad_message.csv", rows)
    with pytest.raises(DataFormatError, match=row_error(path, 3, problem)):
        lob.read_lobster_messages(path)


def test_first_bad_row_wins(tmp_path: Path, write_rows, row_error) -> None:
    rows = GOOD[:1] + ["34200.002,1,12,-5,1000300,-1", "34200.003,8,11,4,1000100,1"] + GOOD[3:]
    path = write_rows(tmp_path / "two_bad.csv", rows)
    with pytest.raises(DataFormatError, match=row_error(path, 2, v.NEGATIVE.format(column="size", value=-5))):
        lob.read_lobster_messages(path)


def test_halt_rows_are_valid(tmp_path: Path, write_rows) -> None:
    frame = lob.read_lobster_messages(write_rows(tmp_path / "halt.csv", GOOD + ["34200.006,7,0,0,-1,-1"]))
    assert frame["type"].tolist()[-1] == 7 and list(frame.columns) == list(lob.MESSAGE_COLUMNS)
    assert frame.dtypes["time"] == np.float64 and frame.dtypes["price"] == np.int64


def test_wrong_column_count(tmp_path: Path, write_rows, row_error) -> None:
    path = write_rows(tmp_path / "seven.csv", [r + ",0" for r in GOOD])
    problem = lob.EXTRA_COLUMNS.format(problem=v.WRONG_FIELD_COUNT.format(expected=6, found=7))
    with pytest.raises(DataFormatError, match=row_error(path, 1, problem)):
        lob.read_lobster_messages(path)
    five = write_rows(tmp_path / "five.csv", [r.rsplit(",", 1)[0] for r in GOOD])
    with pytest.raises(DataFormatError, match=row_error(five, 1, v.WRONG_FIELD_COUNT.format(expected=6, found=5))):
        lob.read_lobster_messages(five, extra_columns="ignore")
    ragged = write_rows(tmp_path / "ragged.csv", GOOD[:3] + [GOOD[3] + ",0"] + GOOD[4:])
    with pytest.raises(DataFormatError, match=re.escape(str(ragged)) + ".*line 4"):
        lob.read_lobster_messages(ragged)


def test_blank_line_is_reported_and_trailing_blank_ignored(tmp_path: Path, write_rows, row_error) -> None:
    assert len(lob.read_lobster_messages(write_rows(tmp_path / "t.csv", GOOD + ["", ""]))) == 5
    path = write_rows(tmp_path / "b.csv", GOOD[:2] + [""] + GOOD[2:])
    with pytest.raises(DataFormatError, match=row_error(path, 3, v.MISSING_VALUE.format(column="time"))):
        lob.read_lobster_messages(path)


def test_missing_and_empty_files(tmp_path: Path) -> None:
    missing = tmp_path / "nope_message_1.csv"
    with pytest.raises(FileNotFoundError, match=re.escape(v.MISSING_FILE.format(missing))):
        read_lobster(missing)
    with pytest.raises(FileNotFoundError, match=re.escape(v.MISSING_FILE.format(missing))):
        read_lobster(fixture_paths()[0], missing)
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    with pytest.raises(DataFormatError, match=re.escape(v.FILE_ERROR.format(file=empty, problem=v.EMPTY_FILE))):
        lob.read_lobster_messages(empty)


EMPTY_LEVEL = "9999999999,0,-9999999999,0"


@pytest.mark.parametrize(
    ("row", "problem"),
    [
        ("1000300,5,1000300,5," + EMPTY_LEVEL, v.CROSSED_BOOK.format(bid=1000300, ask=1000300)),
        ("1000300,5,1000100,-5," + EMPTY_LEVEL, v.NEGATIVE.format(column="bid_sz1", value=-5)),
        ("1000300,5,1000100,5,1000200,1,-9999999999,0",
         v.UNSORTED_LEVELS.format(side="ask", level=2, price=1000200, order="higher", previous=1,
                                  previous_price=1000300)),
        ("9999999999,0,1000100,5,1000400,2,-9999999999,0", lob.LEVEL_GAP.format(side="ask", level=2)),
        ("9999999999,3,1000100,5," + EMPTY_LEVEL,
         lob.EMPTY_LEVEL_SIZE.format(side="ask", level=1, price=9999999999, size=3)),
        ("1000300,0,1000100,5," + EMPTY_LEVEL, v.NOT_POSITIVE.format(column="ask_sz1", value=0)),
        ("1000300,5,1000100,abc," + EMPTY_LEVEL, v.NON_NUMERIC.format(column="bid_sz1", value="abc")),
    ],
)  # fmt: skip
def test_bad_orderbook_row(tmp_path: Path, row: str, problem: str, write_rows, row_error) -> None:
    good = "1000300,5,1000100,5," + EMPTY_LEVEL
    path = write_rows(tmp_path / "ob.csv", [good, good, row, good])
    with pytest.raises(DataFormatError, match=row_error(path, 3, problem)):
        lob.read_lobster_orderbook(path)


def test_orderbook_shape_errors(tmp_path: Path, write_rows, row_error) -> None:
    odd = write_rows(tmp_path / "odd.csv", ["1,2,3"])
    with pytest.raises(DataFormatError, match=row_error(odd, 1, lob.BAD_ORDERBOOK_WIDTH.format(found=3))):
        lob.read_lobster_orderbook(odd)
    msg = write_rows(tmp_path / "m.csv", GOOD)
    ob = write_rows(tmp_path / "o.csv", ["1000300,5,1000100,5"] * 4)
    problem = lob.ORDERBOOK_ROWS.format(found=4, messages=str(msg), expected=5)
    with pytest.raises(DataFormatError, match=re.escape(v.FILE_ERROR.format(file=ob, problem=problem))):
        read_lobster(msg, ob)


def test_writer_rejects_bad_events(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=re.escape(write_mod.BAD_EVENTS.format("shape (3, 5)"))):
        write_lobster(np.zeros((3, 5), dtype=np.int64), tmp_path / "m.csv")
    with pytest.raises(TypeError, match=re.escape(write_mod.BAD_EVENTS.format("dtype float64"))):
        write_lobster(np.zeros((3, 6)), tmp_path / "m.csv")
    events = np.array([[1, 1, 5, 3, 10, 1], [2, 6, 0, 3, 10, 1]], dtype=np.int64)
    with pytest.raises(ValueError, match=re.escape(write_mod.BAD_EVENT_LOG_TYPE.format(row=1, value=6))):
        write_lobster(events, tmp_path / "m.csv")
    with pytest.raises(ValueError, match=re.escape("Expected `n_levels` to be an int >= 1, got 0")):
        write_lobster(events[:1], tmp_path / "m.csv", n_levels=0)
    with pytest.raises(TypeError, match=re.escape("Expected `n_levels` to be an int >= 1, got 2.5")):
        write_lobster(events[:1], tmp_path / "m.csv", n_levels=2.5)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=re.escape("Expected `tick_size` to be an int >= 1, got 0.01")):
        write_lobster(events[:1], tmp_path / "m.csv", tick_size=0.01)  # type: ignore[arg-type]


def test_replay_to_bounds() -> None:
    replayer = replay_mod.LOBSTERReplayer(read_lobster(fixture_paths()[0]))
    replayer.replay_to(10)
    with pytest.raises(ValueError, match=re.escape("Expected `stop` to be an int in [10, 562], got 5")):
        replayer.replay_to(5)
    with pytest.raises(ValueError, match=re.escape("Expected `stop` to be an int in [10, 562], got 600")):
        replayer.replay_to(600)
    with pytest.raises(TypeError, match=re.escape("Expected `stop` to be an int in [10, 562], got 20.0")):
        replayer.replay_to(20.0)  # type: ignore[arg-type]
    assert replayer.position == 10  # nothing applied by the rejected calls
    with pytest.raises(ValueError, match=re.escape("Expected `side` to be one of (1, -1), got 0")):
        replayer.market(0, 5)
    with pytest.raises(TypeError, match=re.escape("Expected `qty` to be an int, got 5.0")):
        replayer.market(BUY, 5.0)  # type: ignore[arg-type]


if __name__ == "__main__":
    for p in write_fixture(Path(sys.argv[1]) if len(sys.argv) > 1 else DATA_DIR):
        print(p, p.stat().st_size)
