"""HistoricalSource implementations: no look-ahead, simulated execution, factory, real files."""

from __future__ import annotations

import re
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from janus_env import historical as hist
from janus_env.book import BUY, SELL
from janus_env.checks import BAD_VALUE, NEED_RESET_FOR
from janus_env.data import DataFormatError, L2Snapshots, read_l2_snapshots, read_lobster, read_ohlcv
from janus_env.data import validation as v
from janus_env.samples import sample_path
from janus_env.historical import (
    HistoricalSource,
    L2SnapshotSource,
    LOBSTERSource,
    OHLCVSource,
    RecordedBookSource,
    load_source,
    walk_book,
)

DATA_DIR = Path(__file__).resolve().parents[1] / "data"
BAD_KIND_CSV = "Expected `kind` to be one of ('l2', 'ohlcv', 'lobster'), got 'csv'"
L2_HEAD = DATA_DIR / "btc_book_15_levels_head.csv"
HOURLY = DATA_DIR / "btc_usd_hourly_head.csv"
GOOGL = DATA_DIR / "STOCKS_GOOGL_head.csv"
FOREX = DATA_DIR / "FOREX_EURUSD_1H_ASK_head.csv"
COINBASE = DATA_DIR / "coinbase_btc_usd_daily_head.csv"
LOB_MSG = DATA_DIR / "JANUS_2024-01-02_34200000_57600000_message_5.csv"
LOB_OB = DATA_DIR / "JANUS_2024-01-02_34200000_57600000_orderbook_5.csv"
NAN = np.nan


def same(a: np.ndarray, b: np.ndarray) -> None:
    np.testing.assert_array_equal(a, b)  # NaN == NaN here


# --------------------------------------------------------------------------- no look-ahead


def test_l2_no_look_ahead(tmp_path: Path) -> None:
    full = L2SnapshotSource(L2_HEAD, n_levels=5)
    raw = pd.read_csv(L2_HEAD)
    for t in (0, 3, 7):
        full.reset(t)
        truncated = tmp_path / f"l2_{t}.csv"
        raw.iloc[: t + 1].to_csv(truncated, index=False)
        mutated = tmp_path / f"l2_mut_{t}.csv"
        changed = raw.copy()
        changed.loc[t + 1 :, ["midpoint", "buys", "sells"]] *= 3.0
        changed.to_csv(mutated, index=False)
        for path in (truncated, mutated):
            other = L2SnapshotSource(path, n_levels=5)
            other.reset(t)
            same(other.book(), full.book())
            assert other.traded() == full.traded()
    walked = L2SnapshotSource(L2_HEAD, n_levels=5)
    walked.reset(0)
    for _ in range(7):
        walked.advance()
    same(walked.book(), full.book())


def test_ohlcv_no_look_ahead() -> None:
    bars = read_ohlcv(GOOGL)
    full = OHLCVSource(bars, n_levels=4)
    for t in range(len(bars)):
        full.reset(t)
        cut = OHLCVSource(bars.head(t + 1), n_levels=4)
        cut.reset(t)
        same(cut.book(), full.book())
        assert cut.traded() == full.traded()
        mutated = replace(bars, close=np.where(np.arange(len(bars)) > t, bars.high, bars.close))
        other = OHLCVSource(mutated, n_levels=4)
        other.reset(t)
        same(other.book(), full.book())


def test_lobster_no_look_ahead_by_truncation() -> None:
    data = read_lobster(LOB_MSG)
    full = LOBSTERSource(data, step_messages=40, n_levels=5)
    assert len(full) == 562 // 40
    for t in (0, 5, len(full) - 1):
        full.reset(t)
        cut = LOBSTERSource(data.head(int(full.bounds[t])), step_messages=40, n_levels=5)
        assert len(cut) == t + 1
        cut.reset(t)
        same(cut.book(), full.book())
        assert cut.traded() == full.traded()


def test_lobster_no_look_ahead_by_mutation_with_step_seconds() -> None:
    data = read_lobster(LOB_MSG)
    full = LOBSTERSource(data, step_seconds=0.05, n_levels=5)
    edges = data.time[0] + 0.05 * np.arange(1, len(full) + 1)
    np.testing.assert_array_equal(full.bounds, np.searchsorted(data.time, edges, side="right"))
    for t in (0, 4, 8):
        full.reset(t)
        after = np.arange(len(data)) >= full.bounds[t]
        mutated = replace(
            data,
            type=np.where(after, 4, data.type),  # everything later becomes an execution...
            size=np.where(after, 10**6, data.size),  # ...of huge size
        )
        other = LOBSTERSource(mutated, step_seconds=0.05, n_levels=5)
        other.reset(t)
        same(other.book(), full.book())
        assert other.traded() == full.traded()


def test_lobster_book_matches_orderbook_file() -> None:
    data = read_lobster(LOB_MSG, LOB_OB)
    src = LOBSTERSource(data, step_messages=25, n_levels=5)
    src.reset(0)
    for t in range(len(src)):
        row = data.orderbook[src.bounds[t] - 1].reshape(5, 4)  # ask_px, ask_sz, bid_px, bid_sz
        book = src.book()
        filled = row[:, 0] != 9_999_999_999
        np.testing.assert_allclose(book[filled, 2], row[filled, 0] / 10_000)
        np.testing.assert_array_equal(book[:, 3], np.where(filled, row[:, 1], 0))
        filled = row[:, 2] != -9_999_999_999
        np.testing.assert_allclose(book[filled, 0], row[filled, 2] / 10_000)
        assert np.isnan(book[~filled, 0]).all()
        if t + 1 < len(src):
            src.advance()


# --------------------------------------------------------------------------- execution


def hand_book() -> L2Snapshots:
    first = np.array([[99.0, 2.0, 101.0, 1.0], [98.0, 3.0, 102.0, 2.0], [97.0, 1.0, 104.0, 4.0]])
    second = np.array([[100.0, 1.0, 103.0, 1.0], [NAN, 0.0, 105.0, 1.0], [NAN, 0.0, NAN, 0.0]])
    return L2Snapshots(
        time=None, midpoint=np.array([100.0, 101.5]), book=np.stack([first, second]),
        buy_volume=np.array([1.0, 2.0]), sell_volume=np.array([3.0, 4.0]), path="",
    )  # fmt: skip


def test_execution_walks_levels_with_hand_vwap() -> None:
    src = L2SnapshotSource(hand_book())
    src.reset(0)
    assert src.traded() == (1.0, 3.0) and src.mid() == 100.0
    filled, notional = src.execute(BUY, 2.5)
    assert filled == 2.5 and notional == pytest.approx(1 * 101 + 1.5 * 102)
    assert notional / filled == pytest.approx(254 / 2.5)
    same(src.book()[:, 2:], [[102.0, 0.5], [104.0, 4.0], [NAN, 0.0]])  # the second order sees this
    filled, notional = src.execute(BUY, 10)  # walks the rest and partial-fills
    assert filled == 4.5 and notional == pytest.approx(0.5 * 102 + 4 * 104)
    assert src.execute(BUY, 1.0) == (0.0, 0.0)
    assert np.isnan(src.book()[:, 2]).all()
    filled, notional = src.execute(SELL, 5.5)
    assert filled == 5.5 and notional == pytest.approx(2 * 99 + 3 * 98 + 0.5 * 97)
    assert src.execute(SELL, 0) == (0.0, 0.0)
    src.advance()  # the next snapshot is restored as recorded
    same(src.book(), hand_book().book[1])
    assert src.traded() == (2.0, 4.0)
    src.reset(0)  # and reset restores step 0
    same(src.book(), hand_book().book[0])


def test_walk_book() -> None:
    np.testing.assert_allclose(walk_book(np.array([1.0, 2.0, 3.0]), np.array([2.0, 2.0, 2.0]), 3.0), [2.0, 1.0, 0.0])
    np.testing.assert_allclose(walk_book(np.array([1.0, NAN]), np.array([2.0, 0.0]), 9.0), [2.0, 0.0])


def test_ohlcv_execution_against_synthetic_book() -> None:
    src = OHLCVSource(GOOGL, n_levels=3, depth_fraction=1e-5, decay=0.5)
    src.reset(2)
    book = src.book()
    want = book[0, 3] + 0.5 * book[1, 3]
    filled, notional = src.execute(BUY, want)
    assert filled == pytest.approx(want)
    assert notional == pytest.approx(book[0, 2] * book[0, 3] + book[1, 2] * 0.5 * book[1, 3])
    filled, _ = src.execute(BUY, 1e9)
    assert filled == pytest.approx(0.5 * book[1, 3] + book[2, 3])
    bars = read_ohlcv(GOOGL)
    buy, sell = src.traded()
    assert buy + sell == pytest.approx(bars.volume[2])
    assert buy == pytest.approx(bars.volume[2] * (bars.close[2] - bars.low[2]) / (bars.high[2] - bars.low[2]))


LOB_ROWS = [
    "1.0,1,1,5,1010000,-1",   # ask 101.00 x 5
    "1.1,1,2,10,1010200,-1",  # ask 101.02 x 10
    "1.2,1,3,4,1009800,1",    # bid 100.98 x 4
    "1.3,1,4,6,1009500,1",    # bid 100.95 x 6     <- step 0
    "1.4,4,1,2,1010000,-1",   # recorded execution of ask 1 (the agent took it all)
    "1.5,2,2,3,1010200,-1",   # recorded partial cancel of ask 2 (the agent took it all)
    "1.6,1,5,7,1010500,-1",   # ask 101.05 x 7
    "1.7,3,3,4,1009800,1",    # delete bid 3          <- step 1
    "1.8,4,4,2,1009500,1",    # execution of bid 4 (seller-initiated)
    "1.9,5,0,3,1009900,-1",   # hidden execution (buyer-initiated)
    "2.0,6,0,8,1010000,1",    # cross trade: half each side
    "2.1,7,0,0,-1,-1",        # halt                  <- step 2
]  # fmt: skip


def test_lobster_execution_consumes_recorded_orders(tmp_path: Path) -> None:
    path = tmp_path / "hand_message_1.csv"
    path.write_text("\n".join(LOB_ROWS) + "\n")
    src = LOBSTERSource(path, step_messages=4, n_levels=3)
    assert len(src) == 3 and src.tick_size == 0.01
    src.reset(0)
    same(src.book(), [[100.98, 4, 101.00, 5], [100.95, 6, 101.02, 10], [NAN, 0, NAN, 0]])
    filled, notional = src.execute(BUY, 8.9)  # whole shares only: 8
    assert filled == 8 and notional == pytest.approx(5 * 101.00 + 3 * 101.02)
    same(src.book()[:, 2:], [[101.02, 7], [NAN, 0], [NAN, 0]])
    filled, notional = src.execute(BUY, 20)  # partial: only 7 left
    assert filled == 7 and notional == pytest.approx(7 * 101.02)
    src.advance()
    same(src.book(), [[100.95, 6, 101.05, 7], [NAN, 0, NAN, 0], [NAN, 0, NAN, 0]])
    assert src.traded() == (2.0, 0.0)  # the recorded execution still counts
    report = src.report()
    assert report.unknown_executions == 1 and report.unknown_cancels == 1
    src.advance()
    assert src.traded() == (3.0 + 4.0, 2.0 + 4.0)
    filled, notional = src.execute(SELL, 10)
    assert filled == 4 and notional == pytest.approx(4 * 100.95)
    with pytest.raises(IndexError, match=re.escape(hist.PAST_END.format(2, 3))):
        src.advance()
    src.reset(0)  # a fresh replay: the agent's consumption is gone
    same(src.book(), [[100.98, 4, 101.00, 5], [100.95, 6, 101.02, 10], [NAN, 0, NAN, 0]])
    assert src.report().unknown_executions == 0


# --------------------------------------------------------------------------- errors


@pytest.mark.parametrize("make", [lambda: L2SnapshotSource(hand_book()), lambda: OHLCVSource(GOOGL),
                                  lambda: LOBSTERSource(LOB_MSG)])  # fmt: skip
def test_errors(make) -> None:
    src: HistoricalSource = make()
    for method, call in (("book", src.book), ("traded", src.traded), ("advance", src.advance),
                         ("execute", lambda: src.execute(BUY, 1.0))):  # fmt: skip
        with pytest.raises(RuntimeError, match=re.escape(NEED_RESET_FOR.format(method))):
            call()
    for start, error in ((-1, ValueError), (len(src), ValueError), (1.5, TypeError), (True, TypeError)):
        message = BAD_VALUE.format(name="start", expected=f"an int in [0, {len(src) - 1}]", value=start)
        with pytest.raises(error, match=re.escape(message)):
            src.reset(start)  # type: ignore[arg-type]
    src.reset(len(src) - 1)
    for side in (0, 2):
        with pytest.raises(ValueError, match=re.escape(f"Expected `side` to be one of (1, -1), got {side}")):
            src.execute(side, 1.0)
    for side in (True, 1.0):
        with pytest.raises(TypeError, match=re.escape(f"Expected `side` to be an int, got {side!r}")):
            src.execute(side, 1.0)  # type: ignore[arg-type]
    for qty, error in ((-1.0, ValueError), (float("nan"), ValueError), (float("inf"), ValueError),
                       ("x", TypeError), (True, TypeError)):  # fmt: skip
        with pytest.raises(error, match=re.escape(f"Expected `qty` to be a finite number >= 0, got {qty!r}")):
            src.execute(BUY, qty)  # type: ignore[arg-type]
    if isinstance(src, RecordedBookSource):  # the recorded books fill on a quantity grid
        for step, error in ((0.0, ValueError), (float("nan"), ValueError), ("0.01", TypeError)):
            message = f"Expected `qty_step` to be a finite number > 0 or None, got {step!r}"
            with pytest.raises(error, match=re.escape(message)):
                src.execute(BUY, 1.0, qty_step=step)  # type: ignore[arg-type]
    with pytest.raises(IndexError, match=re.escape(hist.PAST_END.format(len(src) - 1, len(src)))):
        src.advance()
    assert src.book().shape == (src.n_levels, 4) and src.book().dtype == np.float64


def test_lobster_source_arguments() -> None:
    with pytest.raises(ValueError, match=re.escape(hist.BAD_STEP_ARGS.format(10, 1.0))):
        LOBSTERSource(LOB_MSG, step_messages=10, step_seconds=1.0)
    with pytest.raises(ValueError, match=re.escape("Expected `step_messages` to be an int >= 1 or None, got 0")):
        LOBSTERSource(LOB_MSG, step_messages=0)
    with pytest.raises(TypeError, match=re.escape("Expected `step_messages` to be an int >= 1 or None, got 10.5")):
        LOBSTERSource(LOB_MSG, step_messages=10.5)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=re.escape("Expected `step_seconds` to be a finite number > 0 or None, "
                                                   "got -1.0")):  # fmt: skip
        LOBSTERSource(LOB_MSG, step_seconds=-1.0)
    with pytest.raises(ValueError, match=re.escape("Expected `tick_size` to be a finite number > 0, got nan")):
        LOBSTERSource(LOB_MSG, tick_size=float("nan"))
    with pytest.raises(TypeError, match=re.escape("Expected `n_levels` to be an int >= 1, got 2.0")):
        LOBSTERSource(LOB_MSG, n_levels=2.0)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=re.escape(hist.BAD_TICK.format(0.00015))):
        LOBSTERSource(LOB_MSG, tick_size=0.00015)
    with pytest.raises(ValueError, match=re.escape(hist.TOO_SHORT.format(562))):
        LOBSTERSource(LOB_MSG, step_messages=1000)


# --------------------------------------------------------------------------- factory


def test_load_source_sniffs(tmp_path: Path) -> None:
    assert isinstance(load_source(L2_HEAD), L2SnapshotSource)
    for path in (HOURLY, GOOGL, FOREX, COINBASE):
        with pytest.warns(UserWarning) if path == HOURLY else _no_warning():
            assert isinstance(load_source(path), OHLCVSource)
    lob = load_source(LOB_MSG, step_messages=50)
    assert isinstance(lob, LOBSTERSource) and lob.data.orderbook_path == str(LOB_OB)  # sibling found
    assert isinstance(load_source((LOB_MSG, LOB_OB)), LOBSTERSource)
    spec = load_source({"path": L2_HEAD, "kind": "l2", "n_levels": 3})
    assert isinstance(spec, L2SnapshotSource) and spec.n_levels == 3
    assert load_source({"path": GOOGL}, n_levels=2).n_levels == 2
    assert isinstance(load_source(read_l2_snapshots(L2_HEAD)), L2SnapshotSource)
    assert load_source(spec) is spec
    with pytest.raises(DataFormatError, match=re.escape(v.FILE_ERROR.format(file=LOB_OB, problem=hist.ORDERBOOK_GIVEN))):
        load_source(LOB_OB)
    junk = tmp_path / "junk.csv"
    junk.write_text("a,b\n1,2\n")
    with pytest.raises(DataFormatError, match=re.escape(v.FILE_ERROR.format(file=junk, problem=hist.UNKNOWN_FORMAT))):
        load_source(junk)
    with pytest.raises(ValueError, match=re.escape(BAD_KIND_CSV)):
        load_source({"path": GOOGL, "kind": "csv"})
    with pytest.raises(TypeError, match=re.escape(hist.BAD_SPEC.format(42))):
        load_source(42)
    with pytest.raises(FileNotFoundError, match=re.escape(v.MISSING_FILE.format(tmp_path / "gone.csv"))):
        load_source(tmp_path / "gone.csv")


class _no_warning:
    def __enter__(self) -> None:
        import warnings

        self._ctx = warnings.catch_warnings()
        self._ctx.__enter__()
        warnings.simplefilter("error")

    def __exit__(self, *exc: object) -> None:
        self._ctx.__exit__(*exc)


# --------------------------------------------------------------------------- real files


@pytest.mark.parametrize(
    ("name", "kind", "steps"),
    [("btc_book_15_levels", L2SnapshotSource, 600), ("btc_usd_hourly", OHLCVSource, 5000),
     ("btc_usd_daily", OHLCVSource, 1770)],
)  # fmt: skip
def test_real_samples(name: str, kind: type, steps: int) -> None:
    src = load_source(sample_path(name))
    assert isinstance(src, kind) and len(src) == steps
    src.reset(len(src) - 5)
    for _ in range(4):
        book = src.book()
        assert book.shape == (src.n_levels, 4)
        assert book[0, 0] < book[0, 2]
        buy, sell = src.traded()
        assert buy >= 0 and sell >= 0
        depth = book[:, 3].sum()
        filled, notional = src.execute(BUY, 2 * depth)  # more than the book holds: partial
        assert filled == pytest.approx(depth) and notional / filled >= book[0, 2]
        src.advance()


# --------------------------------------------------------------------------- data options (wide OHLCV, absolute L2)

WIDE = DATA_DIR / "wide_btc_eth_hourly.csv"
L2_ABS = DATA_DIR / "btc_l2_5_levels_absolute.csv"


def test_sniff_new_layouts(tmp_path: Path) -> None:
    assert hist.sniff_format(WIDE) == "ohlcv" and hist.sniff_format(L2_ABS) == "l2"
    odd = tmp_path / "odd.csv"
    odd.write_text("when,o,h,l,last,qty\n2024-01-01,1,2,0.5,1.5,3\n2024-01-02,1,2,0.5,1.5,3\n")
    with pytest.raises(DataFormatError, match=re.escape(hist.UNKNOWN_FORMAT)):
        hist.sniff_format(odd)
    columns = {"time": "when", "open": "o", "high": "h", "low": "l", "close": "last", "volume": "qty"}
    assert hist.sniff_format(odd, {"columns": columns}) == "ohlcv"
    src = load_source({"path": odd, "columns": columns})
    assert isinstance(src, OHLCVSource) and src.data.close.tolist() == [1.5, 1.5]


def test_load_source_passes_read_options() -> None:
    raw = pd.read_csv(WIDE)
    for spec, kwargs in (({"path": WIDE, "asset": "ETH"}, {}), (WIDE, {"asset": "eth"}),
                         ({"path": str(WIDE), "kind": "ohlcv"}, {"asset": "ETH"})):  # fmt: skip
        src = load_source(spec, **kwargs)
        assert isinstance(src, OHLCVSource) and src.data.asset == "ETH"
        np.testing.assert_array_equal(src.data.close, raw["ETH:close"].to_numpy())
    l2 = load_source({"path": L2_ABS, "n_levels": 3})
    assert isinstance(l2, L2SnapshotSource) and l2.n_levels == 3
    l2.reset(0)
    row = pd.read_csv(L2_ABS).iloc[0]
    same(l2.book()[0], [row["bid1_price"], row["bid1_size"], row["ask1_price"], row["ask1_size"]])


def test_load_source_rejects_unknown_options() -> None:
    accepted = hist.data_options("ohlcv")
    assert {"asset", "columns", "skip_empty_rows", "n_levels", "tick_size"} <= set(accepted)
    assert "asset" not in hist.data_options("l2") and "step_messages" in hist.data_options("lobster")
    assert set(hist.data_options()) >= set(accepted) | set(hist.data_options("lobster"))
    with pytest.raises(ValueError, match="^" + re.escape(hist.BAD_OPTION.format("assett", "ohlcv",
                                                                                  ", ".join(accepted))) + "$"):
        load_source({"path": WIDE, "assett": "ETH"})
    with pytest.raises(ValueError, match=re.escape(hist.BAD_OPTION.format("asset", "l2",
                                                                           ", ".join(hist.data_options("l2"))))):
        load_source(L2_ABS, asset="ETH")
    bars = read_ohlcv(WIDE, asset="BTC")
    with pytest.raises(ValueError, match=re.escape(hist.READ_OPTIONS_NEED_FILE.format(["asset"]))):
        load_source(bars, asset="ETH")
    with pytest.raises(ValueError, match=re.escape(hist.READ_OPTIONS_NEED_FILE.format(["columns"]))):
        L2SnapshotSource(hand_book(), columns={"time": "t"})
    with pytest.raises(ValueError, match=re.escape(BAD_KIND_CSV)):
        hist.data_options("csv")


def test_sample_names_resolve() -> None:
    src = load_source("btc_usd_daily")
    assert isinstance(src, OHLCVSource) and src.data.path == str(sample_path("btc_usd_daily"))
    assert load_source({"path": "btc_book_15_levels", "n_levels": 2}).n_levels == 2
    lob = load_source("lobster_aapl", step_messages=100)
    assert isinstance(lob, LOBSTERSource)
    with pytest.raises(FileNotFoundError, match=re.escape(v.MISSING_FILE.format("btc_usd_weekly"))):
        load_source("btc_usd_weekly")


@pytest.mark.parametrize("layout", ["wide_ohlcv", "absolute_l2"])
def test_env_reads_new_layouts(layout: str, check_all) -> None:
    import gymnasium as gym

    import envs_registry  # noqa: F401

    settings = {"lot": 1, "max_position": 2, "initial_cash": 1e6, "episode_steps": 5, "window": 4}
    data = {"path": str(WIDE), "asset": "ETH"} if layout == "wide_ohlcv" else str(L2_ABS)
    env = gym.make("Janus-LOB-v0", scenario="historical", data=data, **settings)
    check_all(env)
    raw = pd.read_csv(WIDE if layout == "wide_ohlcv" else L2_ABS)
    start = 2
    _, info = env.reset(seed=0, options={"start": start})
    for k in range(3):
        row = raw.iloc[start + settings["window"] - 1 + k]  # the row the decision sees
        if layout == "wide_ohlcv":  # synthetic book around ETH's close (within a tick), ETH's volume
            assert abs(info["mid"] - row["ETH:close"]) <= 0.01 + 1e-9
            assert info["volume"] == pytest.approx(row["ETH:volume"])
        else:
            assert info["mid"] == pytest.approx((row["bid1_price"] + row["ask1_price"]) / 2)
            assert info["spread"] == pytest.approx(row["ask1_price"] - row["bid1_price"])
        _, _, terminated, truncated, info = env.step(0)
        assert not terminated
