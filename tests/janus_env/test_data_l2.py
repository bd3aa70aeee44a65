"""L2 snapshot loader: prices from relative distances, notional → shares, validation."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from janus_env.data import DataFormatError, l2_frame, read_l2_snapshots
from janus_env.data import l2 as l2mod
from janus_env.data import validation as v
from janus_env.samples import sample_path

DATA_DIR = Path(__file__).resolve().parents[1] / "data"
HEAD = DATA_DIR / "btc_book_15_levels_head.csv"  # first 8 snapshots of the shared file


def row_error(path: Path, line: int, problem: str) -> str:
    return "^" + re.escape(v.ROW_ERROR.format(file=str(path), line=line, problem=problem)) + "$"


def edited(tmp_path: Path, row: int, column: str, value: object) -> Path:
    frame = pd.read_csv(HEAD, dtype=str, keep_default_na=False)
    frame.loc[row, column] = str(value)
    path = tmp_path / "l2.csv"
    frame.to_csv(path, index=False)
    return path


def test_prices_and_sizes_by_hand() -> None:
    raw = pd.read_csv(HEAD)
    snaps = read_l2_snapshots(HEAD)
    assert snaps.book.shape == (8, 15, 4) and snaps.book.dtype == np.float64
    r = raw.iloc[3]
    mid = r["midpoint"]
    for i in (0, 7, 14):
        bid = mid * (1 + r[f"bids_distance_{i}"])
        ask = mid * (1 + r[f"asks_distance_{i}"])
        np.testing.assert_allclose(snaps.book[3, i], [bid, r[f"bids_notional_{i}"] / bid,
                                                      ask, r[f"asks_notional_{i}"] / ask], rtol=1e-12)  # fmt: skip
    np.testing.assert_allclose(snaps.buy_volume[3], r["buys"] / mid)
    np.testing.assert_allclose(snaps.sell_volume[3], r["sells"] / mid)
    np.testing.assert_allclose(snaps.book[0, 0, 0], 60590.01, atol=1e-6)  # midpoint 60590.015, spread 0.01
    np.testing.assert_allclose(snaps.book[0, 0, 2], 60590.02, atol=1e-6)
    assert snaps.time[0] == np.datetime64("2021-04-17T17:22:00.172344")
    assert list(l2_frame(snaps).columns[:4]) == ["time", "midpoint", "bid_px_0", "bid_qty_0"]


def test_n_levels(tmp_path: Path) -> None:
    assert read_l2_snapshots(HEAD, n_levels=3).book.shape == (8, 3, 4)
    for bad in (0, 16, 2.5):
        with pytest.raises(ValueError, match=re.escape(l2mod.BAD_N_LEVELS.format(15, bad))):
            read_l2_snapshots(HEAD, n_levels=bad)  # type: ignore[arg-type]


def test_empty_level_is_missing_and_packed(tmp_path: Path) -> None:
    path = edited(tmp_path, 2, "asks_notional_1", 0.0)
    snaps = read_l2_snapshots(path, n_levels=4)
    full = read_l2_snapshots(HEAD, n_levels=4)
    np.testing.assert_array_equal(snaps.book[2, :3, 2], full.book[2, [0, 2, 3], 2])
    assert np.isnan(snaps.book[2, 3, 2]) and snaps.book[2, 3, 3] == 0.0


def test_newest_first_file_is_sorted(tmp_path: Path) -> None:
    frame = pd.read_csv(HEAD)
    path = tmp_path / "rev.csv"
    frame.iloc[::-1].to_csv(path, index=False)
    a, b = read_l2_snapshots(path), read_l2_snapshots(HEAD)
    np.testing.assert_array_equal(a.book, b.book)
    np.testing.assert_array_equal(a.time, b.time)


@pytest.mark.parametrize(
    ("row", "column", "value", "problem"),
    [
        (4, "midpoint", "abc", v.NON_NUMERIC.format(column="midpoint", value="abc")),
        (4, "bids_notional_3", "", v.MISSING_VALUE.format(column="bids_notional_3")),
        (4, "midpoint", -1.0, v.NOT_POSITIVE.format(column="midpoint", value=-1.0)),
        (4, "sells", -5.0, v.NEGATIVE.format(column="sells", value=-5.0)),
        (4, "asks_notional_2", -5.0, v.NEGATIVE.format(column="asks_notional_2", value=-5.0)),
        (4, "bids_distance_9", -1.5, l2mod.DISTANCE_BELOW_MINUS_ONE.format(column="bids_distance_9", value=-1.5)),
        (4, "system_time", "not a time", v.BAD_TIME.format(column="system_time", value="not a time")),
        (4, "system_time", "2021-04-17 17:22:00.172344+00:00",
         v.NOT_MONOTONIC.format(value="2021-04-17 17:22:00.172344", order="oldest-first",
                                previous="2021-04-17 17:25:00.172344")),
    ],
)  # fmt: skip
def test_bad_cell_names_file_and_line(tmp_path: Path, row: int, column: str, value: object, problem: str) -> None:
    path = edited(tmp_path, row, column, value)
    with pytest.raises(DataFormatError, match=row_error(path, row + 2, problem)):
        read_l2_snapshots(path)


def test_crossed_book(tmp_path: Path) -> None:
    path = edited(tmp_path, 5, "bids_distance_0", 1e-4)
    raw = pd.read_csv(path)
    mid = raw.loc[5, "midpoint"]
    bid, ask = float(mid * (1 + 1e-4)), float(mid * (1 + raw.loc[5, "asks_distance_0"]))
    with pytest.raises(DataFormatError, match=row_error(path, 7, v.CROSSED_BOOK.format(bid=bid, ask=ask))):
        read_l2_snapshots(path, n_levels=1)


def test_unsorted_levels(tmp_path: Path) -> None:
    raw = pd.read_csv(HEAD)
    path = edited(tmp_path, 1, "asks_distance_2", raw.loc[1, "asks_distance_1"])
    mid = raw.loc[1, "midpoint"]
    price = float(mid * (1 + raw.loc[1, "asks_distance_1"]))
    problem = v.UNSORTED_LEVELS.format(side="ask", level=2, price=price, order="higher", previous=1,
                                       previous_price=price)  # fmt: skip
    with pytest.raises(DataFormatError, match=row_error(path, 3, problem)):
        read_l2_snapshots(path)


def test_missing_columns_are_all_listed(tmp_path: Path) -> None:
    frame = pd.read_csv(HEAD).drop(columns=["buys", "asks_notional_1"])
    frame.columns = [c.upper() for c in frame.columns]  # matching is case-insensitive
    path = tmp_path / "cols.csv"
    frame.to_csv(path, index=False)
    with pytest.raises(DataFormatError, match=re.escape(str(path)) + r": missing column\(s\) buys, asks_notional_1 "):
        read_l2_snapshots(path, n_levels=2)
    with pytest.raises(DataFormatError, match=r"missing column\(s\) buys \(matched"):
        read_l2_snapshots(path, n_levels=1)


def test_uppercase_columns_load(tmp_path: Path) -> None:
    frame = pd.read_csv(HEAD)
    frame.columns = [c.upper() for c in frame.columns]
    path = tmp_path / "upper.csv"
    frame.to_csv(path, index=False)
    np.testing.assert_array_equal(read_l2_snapshots(path).book, read_l2_snapshots(HEAD).book)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=re.escape(v.MISSING_FILE.format(tmp_path / "x.csv"))):
        read_l2_snapshots(tmp_path / "x.csv")


def test_real_sample_loads() -> None:
    snaps = read_l2_snapshots(sample_path("btc_book_15_levels"))
    assert snaps.book.shape == (600, 15, 4)
    assert (np.diff(snaps.time.astype(np.int64)) > 0).all()
    filled = snaps.book[:, :, 1] > 0
    assert (snaps.book[:, 0, 0] < snaps.book[:, 0, 2]).all()
    assert (np.isnan(snaps.book[:, :, 0]) == ~filled).all() and filled.sum() == 600 * 15 - 5
