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
    for bad, error in ((0, ValueError), (16, ValueError), (2.5, TypeError), (True, TypeError)):
        with pytest.raises(error, match=re.escape(f"Expected `n_levels` to be an int in [1, 15], got {bad!r}")):
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
def test_bad_cell_names_file_and_line(tmp_path: Path, row: int, column: str, value: object, problem: str,
                                      row_error) -> None:
    path = edited(tmp_path, row, column, value)
    with pytest.raises(DataFormatError, match=row_error(path, row + 2, problem)):
        read_l2_snapshots(path)


def test_crossed_book(tmp_path: Path, row_error) -> None:
    path = edited(tmp_path, 5, "bids_distance_0", 1e-4)
    raw = pd.read_csv(path)
    mid = raw.loc[5, "midpoint"]
    bid, ask = float(mid * (1 + 1e-4)), float(mid * (1 + raw.loc[5, "asks_distance_0"]))
    with pytest.raises(DataFormatError, match=row_error(path, 7, v.CROSSED_BOOK.format(bid=bid, ask=ask))):
        read_l2_snapshots(path, n_levels=1)


def test_unsorted_levels(tmp_path: Path, row_error) -> None:
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


# --------------------------------------------------------------------------- absolute layout (bid1_price, ...)

ABS = DATA_DIR / "btc_l2_5_levels_absolute.csv"  # first 12 snapshots of btc_book_15_levels, 5 levels, absolute


def test_absolute_layout_by_hand() -> None:
    raw = pd.read_csv(ABS)
    snaps = read_l2_snapshots(ABS)
    assert snaps.book.shape == (12, 5, 4)
    for side, px, q in (("bid", 0, 1), ("ask", 2, 3)):
        for i in range(5):
            np.testing.assert_array_equal(snaps.book[:, i, px], raw[f"{side}{i + 1}_price"])
            np.testing.assert_array_equal(snaps.book[:, i, q], raw[f"{side}{i + 1}_size"])
    np.testing.assert_array_equal(snaps.midpoint, (raw["bid1_price"] + raw["ask1_price"]) / 2)
    np.testing.assert_array_equal(snaps.time, pd.to_datetime(raw["timestamp"], unit="ms").to_numpy())
    assert (snaps.buy_volume == 0).all() and (snaps.sell_volume == 0).all()  # no trade columns in the file
    assert read_l2_snapshots(ABS, n_levels=2).book.shape == (12, 2, 4)
    with pytest.raises(ValueError, match=re.escape("Expected `n_levels` to be an int in [1, 5], got 6")):
        read_l2_snapshots(ABS, n_levels=6)


def test_absolute_agrees_with_the_relative_source() -> None:
    ours = read_l2_snapshots(ABS)
    relative = read_l2_snapshots(sample_path("btc_book_15_levels"), n_levels=5).head(12)
    np.testing.assert_allclose(ours.book[:, :, [0, 2]], relative.book[:, :, [0, 2]], atol=0.005 + 1e-9)  # cents
    np.testing.assert_allclose(ours.book[:, :, [1, 3]], relative.book[:, :, [1, 3]], atol=5e-7 + 1e-12)
    np.testing.assert_allclose(ours.midpoint, relative.midpoint, atol=0.005)


def _renamed(tmp_path: Path, name) -> Path:
    raw = pd.read_csv(ABS)
    cols = {}
    for c in raw.columns[1:]:
        m = re.fullmatch(r"(bid|ask)(\d)_(price|size)", c)
        cols[c] = name(m.group(1), int(m.group(2)), m.group(3))
    path = tmp_path / "renamed.csv"
    raw.rename(columns=cols).to_csv(path, index=False)
    return path


@pytest.mark.parametrize(
    "name",
    [lambda s, i, f: f"{s}_{f}_{i}", lambda s, i, f: f"{s.upper()}PRICE{i}" if f == "price" else f"{s}Qty{i}",
     lambda s, i, f: f"{s}s[{i - 1}].{'price' if f == 'price' else 'amount'}",
     lambda s, i, f: f"{s}_{'px' if f == 'price' else 'qty'}_{i - 1}"],
    ids=["bid_price_1", "BIDPRICE1", "bids[0].price", "bid_px_0"],
)  # fmt: skip
def test_absolute_name_variants(tmp_path: Path, name) -> None:
    np.testing.assert_array_equal(read_l2_snapshots(_renamed(tmp_path, name)).book, read_l2_snapshots(ABS).book)


def test_column_templates(tmp_path: Path) -> None:
    path = _renamed(tmp_path, lambda s, i, f: f"{s[0].upper()}{'P' if f == 'price' else 'S'}{i}")
    templates = {"bid_price": "BP{level}", "bid_size": "BS{level}", "ask_price": "AP{level}", "ask_size": "AS{level}"}
    snaps = read_l2_snapshots(path, columns={**templates, "time": "timestamp"})
    np.testing.assert_array_equal(snaps.book, read_l2_snapshots(ABS).book)
    with pytest.raises(ValueError, match=re.escape(l2mod.BAD_TEMPLATE.format("bid_price", "BP1"))):
        read_l2_snapshots(path, columns={**templates, "bid_price": "BP1"})
    with pytest.raises(ValueError, match=re.escape(l2mod.TEMPLATES_TOGETHER.format(list(l2mod.LEVEL_KEYS),
                                                                                    ["bid_price"]))):
        read_l2_snapshots(path, columns={"bid_price": "BP{level}"})
    with pytest.raises(ValueError, match=re.escape(l2mod.BAD_COLUMNS_KEY.format(list(l2mod.COLUMN_KEYS), "mid"))):
        read_l2_snapshots(path, columns={"mid": "m"})
    with pytest.raises(DataFormatError, match=r"missing column\(s\) bp\{level\}"):
        read_l2_snapshots(ABS, columns={k: v.lower() for k, v in templates.items()})


def test_l2_frame_reads_back(tmp_path: Path) -> None:
    snaps = read_l2_snapshots(HEAD)
    path = tmp_path / "frame.csv"
    l2_frame(snaps).to_csv(path, index=False)
    back = read_l2_snapshots(path)
    np.testing.assert_array_equal(back.book, snaps.book)
    np.testing.assert_array_equal(back.buy_volume, snaps.buy_volume)
    np.testing.assert_array_equal(back.time, snaps.time)


def test_trade_volume_columns(tmp_path: Path) -> None:
    raw = pd.read_csv(ABS)
    raw["buy_volume"] = np.arange(12) * 0.5
    raw["Sell_Qty"] = 1.0
    path = tmp_path / "vol.csv"
    raw.to_csv(path, index=False)
    snaps = read_l2_snapshots(path)
    np.testing.assert_array_equal(snaps.buy_volume, np.arange(12) * 0.5)
    np.testing.assert_array_equal(snaps.sell_volume, np.ones(12))
    raw.drop(columns=["Sell_Qty"]).to_csv(path, index=False)
    with pytest.raises(DataFormatError, match=re.escape(l2mod.VOLUMES_TOGETHER.format(
            file=path, found="buy_volume", other="sell_volume"))):  # fmt: skip
        read_l2_snapshots(path)


def test_zero_size_level_is_missing_and_packed(tmp_path: Path) -> None:
    raw = pd.read_csv(ABS)
    raw.loc[3, "bid2_size"] = 0.0
    raw.loc[3, "bid2_price"] = 0.0  # padding price of an empty level is not used
    path = tmp_path / "gap.csv"
    raw.to_csv(path, index=False)
    got, full = read_l2_snapshots(path), read_l2_snapshots(ABS)
    np.testing.assert_array_equal(got.book[3, :4, :2], full.book[3, [0, 2, 3, 4], :2])
    assert np.isnan(got.book[3, 4, 0]) and got.book[3, 4, 1] == 0.0


def _abs_edit(tmp_path: Path, row: int, changes: dict[str, object]) -> Path:
    frame = pd.read_csv(ABS, dtype=str, keep_default_na=False)
    for column, value in changes.items():
        frame.loc[row, column] = str(value)
    path = tmp_path / "abs.csv"
    frame.to_csv(path, index=False)
    return path


_ROW4 = {k: float(x) for k, x in pd.read_csv(ABS).iloc[4].items()}


@pytest.mark.parametrize(
    ("changes", "problem"),
    [
        ({"bid3_size": ""}, v.MISSING_VALUE.format(column="bid3_size")),
        ({"ask2_price": "nan"}, v.MISSING_VALUE.format(column="ask2_price")),
        ({"ask2_price": "inf"}, v.NOT_FINITE.format(column="ask2_price", value=np.inf)),
        ({"ask5_size": "x"}, v.NON_NUMERIC.format(column="ask5_size", value="x")),
        ({"bid4_size": -0.5}, v.NEGATIVE.format(column="bid4_size", value=-0.5)),
        ({"ask1_price": 0.0}, v.NOT_POSITIVE.format(column="ask1_price", value=0.0)),
        ({"bid1_price": _ROW4["ask1_price"] + 1}, v.CROSSED_BOOK.format(bid=_ROW4["ask1_price"] + 1,
                                                                          ask=_ROW4["ask1_price"])),
        ({"ask3_price": _ROW4["ask2_price"]}, v.UNSORTED_LEVELS.format(
            side="ask", level=3, price=_ROW4["ask2_price"], order="higher", previous=2,
            previous_price=_ROW4["ask2_price"])),
        ({**{f"bid{i}_size": 0 for i in range(1, 6)}}, l2mod.ONE_SIDED.format(side="bid")),
        ({"timestamp": "1618680120172"}, v.NOT_MONOTONIC.format(
            value="2021-04-17 17:22:00.172", order="oldest-first", previous="2021-04-17 17:25:00.172")),
    ],
)  # fmt: skip
def test_absolute_bad_rows_name_file_and_line(tmp_path: Path, changes: dict, problem: str, row_error) -> None:
    path = _abs_edit(tmp_path, 4, changes)
    with pytest.raises(DataFormatError, match=row_error(path, 6, problem)):
        read_l2_snapshots(path)


def test_unsorted_check_skips_empty_levels(tmp_path: Path, row_error) -> None:
    # level 3 empty: level 4 is compared with level 2
    path = _abs_edit(tmp_path, 1, {"bid3_size": 0, "bid4_price": _ROW4["bid1_price"] + 5.0})
    raw = pd.read_csv(path)
    problem = v.UNSORTED_LEVELS.format(side="bid", level=4, price=float(raw.loc[1, "bid4_price"]), order="lower",
                                       previous=2, previous_price=float(raw.loc[1, "bid2_price"]))  # fmt: skip
    with pytest.raises(DataFormatError, match=row_error(path, 3, problem)):
        read_l2_snapshots(path)


def test_no_level_columns(tmp_path: Path) -> None:
    path = tmp_path / "none.csv"
    path.write_text("time,price\n1,2\n")
    problem = v.MISSING_COLUMNS.format(missing=l2mod.NO_LEVELS, found="time, price")
    with pytest.raises(DataFormatError, match="^" + re.escape(v.FILE_ERROR.format(file=path, problem=problem)) + "$"):
        read_l2_snapshots(path)


# --------------------------------------------------------------------------- snapshots built from arrays


def _hand() -> dict[str, object]:
    first = [[99.0, 2.0, 101.0, 1.0], [98.0, 3.0, 102.0, 2.0]]
    second = [[100.0, 1.0, 103.0, 1.0], [np.nan, 0.0, 105.0, 1.0]]
    return {"time": np.array(["2024-01-01T00:00", "2024-01-01T00:01"], dtype="datetime64[ns]"),
            "midpoint": np.array([100.0, 101.5]), "book": np.array([first, second]),
            "buy_volume": np.array([1.0, 2.0]), "sell_volume": np.array([3.0, 4.0])}  # fmt: skip


def _book_with(t: int, level: int, column: int, value: float) -> dict[str, object]:
    arrays = _hand()
    arrays["book"][t, level, column] = value  # type: ignore[index]
    return arrays


@pytest.mark.parametrize(
    ("arrays", "field", "index", "problem"),
    [
        ({**_hand(), "midpoint": np.array([100.0, np.nan])}, "midpoint", "1", v.A_NOT_FINITE.format(value=np.nan)),
        ({**_hand(), "sell_volume": np.array([-1.0, 0.0])}, "sell_volume", "0", v.A_NEGATIVE.format(value=-1.0)),
        (_book_with(1, 0, 1, np.nan), "book", "1, 0, 1", "bid qty " + v.A_NOT_FINITE.format(value=np.nan)),
        (_book_with(0, 1, 3, -2.0), "book", "0, 1, 3", "ask qty " + v.A_NEGATIVE.format(value=-2.0)),
        (_book_with(0, 1, 2, np.nan), "book", "0, 1, 2", l2mod.A_PRICE_FOR_QTY.format(field="ask price", value=np.nan,
                                                                                     qty=2.0)),
        ({**_hand(), "book": np.array([[[99.0, 2.0, 101.0, 1.0], [98.0, 3.0, 102.0, 2.0]],
                                       [[np.nan, 0.0, 103.0, 1.0], [99.0, 1.0, 105.0, 1.0]]])},
         "book", "1, 1, 1", l2mod.A_AFTER_EMPTY.format(side="bid", qty=1.0)),
        (_book_with(0, 1, 0, 99.5), "book", "0, 1, 0", l2mod.A_UNSORTED.format(side="bid", price=99.5, order="lower",
                                                                               previous=99.0)),
        (_book_with(0, 0, 0, 101.0), "book", "0, 0, 0", l2mod.A_CROSSED.format(bid=101.0, ask=101.0)),
        ({**_hand(), "time": _hand()["time"][::-1].copy()}, "time", "1",
         v.A_NOT_AFTER.format(value="2024-01-01 00:00:00", previous="2024-01-01 00:01:00")),
    ],
)  # fmt: skip
def test_arrays_are_validated(arrays: dict, field: str, index: str, problem: str) -> None:
    message = v.ARRAY_ERROR.format(owner="L2Snapshots", field=field, index=index, problem=problem)
    with pytest.raises(ValueError, match="^" + re.escape(message) + "$"):
        l2mod.L2Snapshots(**arrays)


def test_arrays_shapes() -> None:
    snaps = l2mod.L2Snapshots(**_hand())
    assert snaps.n_levels == 2 and len(snaps.head(1)) == 1 and snaps.levels(1).book.shape == (2, 1, 4)
    assert l2mod.L2Snapshots(**{**_hand(), "time": None}).time is None
    message = v.ARRAY_SHAPE.format(owner="L2Snapshots", field="book", expected="(n, n, 4)", shape=(2, 2, 3))
    with pytest.raises(ValueError, match="^" + re.escape(message) + "$"):
        l2mod.L2Snapshots(**{**_hand(), "book": np.zeros((2, 2, 3))})
    message = v.ARRAY_SHAPE_LIKE.format(owner="L2Snapshots", field="midpoint", expected="(2,)", like="book",
                                        shape=(3,))  # fmt: skip
    with pytest.raises(ValueError, match="^" + re.escape(message) + "$"):
        l2mod.L2Snapshots(**{**_hand(), "midpoint": np.ones(3)})
    with pytest.raises(ValueError, match=re.escape(l2mod.A_NO_LEVELS.format((2, 0, 4)))):
        l2mod.L2Snapshots(**{**_hand(), "book": np.zeros((2, 0, 4))})
