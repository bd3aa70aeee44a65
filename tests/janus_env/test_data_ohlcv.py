"""OHLCV loader (CryptoDataDownload, Coinbase, gym-anytrading layouts) and the synthetic book."""

from __future__ import annotations

import re
import warnings
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from janus_env.data import DataFormatError, read_ohlcv, split_volume, synthetic_book
from janus_env.data import ohlcv as om
from janus_env.data import validation as v
from janus_env.samples import sample_path

DATA_DIR = Path(__file__).resolve().parents[1] / "data"
HOURLY = DATA_DIR / "btc_usd_hourly_head.csv"  # 6 newest + 6 oldest rows of the shared file
COINBASE = DATA_DIR / "coinbase_btc_usd_daily_head.csv"  # credit line, header, 10 rows
GOOGL = DATA_DIR / "STOCKS_GOOGL_head.csv"  # gym-anytrading STOCKS_GOOGL layout
FOREX = DATA_DIR / "FOREX_EURUSD_1H_ASK_head.csv"  # gym-anytrading FOREX layout (Dukascopy times)


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def test_hourly_newest_first_is_sorted_and_volume_fixed() -> None:
    with pytest.warns(UserWarning, match=re.escape(om.VOLUME_SWAPPED.format(file=str(HOURLY), count=6))):
        bars = read_ohlcv(HOURLY)
    raw = pd.read_csv(HOURLY)
    assert len(bars) == 12 and (np.diff(bars.time.astype(np.int64)) > 0).all()
    np.testing.assert_array_equal(bars.close, raw["close"].to_numpy()[::-1])
    assert bars.time[-1] == np.datetime64("2022-03-01T00:00:00")
    # newest rows: `volume` is BTC; oldest rows store BTC under "Volume USD"
    np.testing.assert_array_equal(bars.volume[-6:], raw["volume"].to_numpy()[:6][::-1])
    np.testing.assert_array_equal(bars.volume[:6], raw["Volume USD"].to_numpy()[6:][::-1])
    assert bars.swapped_volume_rows == 6
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        explicit = read_ohlcv(HOURLY, volume_column="VOLUME")  # case-insensitive, no fixing
    np.testing.assert_array_equal(explicit.volume, raw["volume"].to_numpy()[::-1])


def test_coinbase_credit_line_and_base_volume() -> None:
    bars = read_ohlcv(COINBASE)
    raw = pd.read_csv(COINBASE, skiprows=1)
    assert len(bars) == 10 and bars.swapped_volume_rows == 0
    np.testing.assert_array_equal(bars.volume, raw["volume_btc"].to_numpy()[::-1])  # "volume" is USD there
    assert bars.time[0] == np.datetime64("2019-10-08")


def test_gym_anytrading_layouts() -> None:
    googl = read_ohlcv(GOOGL)
    assert len(googl) == 8 and googl.time[0] == np.datetime64("2009-05-22")
    np.testing.assert_allclose(googl.close[:2], [196.946945, 202.382385])  # Close, not Adj Close
    forex = read_ohlcv(FOREX)
    assert forex.time[0] == np.datetime64("2017-01-01T22:00") and forex.time[2] == np.datetime64("2017-01-02T00:00")
    np.testing.assert_allclose(forex.volume[0], 2391.84)


def test_iso_forex_times(tmp_path: Path) -> None:
    text = FOREX.read_text().replace("01.01.2017 22:00:00.000", "2017-01-01 22:00:00")
    text = text.replace("01.01.2017 23:00:00.000", "2017-01-01 23:00:00")
    text = "\n".join(line if not line[:2].isdigit() or "-" in line[:5] else
                     f"2017-01-{line[:2]} {line[11:19]}" + line[23:] for line in text.splitlines())  # fmt: skip
    bars = read_ohlcv(write(tmp_path / "fx.csv", text + "\n"))
    np.testing.assert_array_equal(bars.time, read_ohlcv(FOREX).time)


def test_case_insensitive_columns(tmp_path: Path) -> None:
    path = write(tmp_path / "up.csv", GOOGL.read_text().replace("Date,Open,High,Low,Close", "DATE,open,HIGH,low,ClOsE"))
    np.testing.assert_array_equal(read_ohlcv(path).close, read_ohlcv(GOOGL).close)


def test_missing_columns_listed(tmp_path: Path) -> None:
    path = write(tmp_path / "m.csv", "Date,Open,High,Low,Close\n2020-01-01,1,2,0.5,1.5\n")
    problem = v.MISSING_COLUMNS.format(missing="volume", found="Date, Open, High, Low, Close")
    with pytest.raises(DataFormatError, match="^" + re.escape(v.FILE_ERROR.format(file=path, problem=problem))):
        read_ohlcv(path)
    path = write(tmp_path / "n.csv", "Open,High,Low,Close,Vol\n1,2,0.5,1.5,3\n")
    missing = "/".join(om.TIME_ALIASES)
    problem = v.MISSING_COLUMNS.format(missing=missing, found="Open, High, Low, Close, Vol")
    with pytest.raises(DataFormatError, match="^" + re.escape(v.FILE_ERROR.format(file=path, problem=problem))):
        read_ohlcv(path)
    path = write(tmp_path / "o.csv", "Date,Open,Low,Volume\n2020-01-01,1,0.5,3\n")
    problem = v.MISSING_COLUMNS.format(missing="open, high, low, close", found="Date, Open, Low, Volume")
    with pytest.raises(DataFormatError, match="^" + re.escape(v.FILE_ERROR.format(file=path, problem=problem))):
        read_ohlcv(path)


GOOGL_ROW = "2009-05-27,203.023026,206.136139,202.607605,202.982986,202.982986,6062500"


@pytest.mark.parametrize(
    ("row", "problem"),
    [
        ("2009-05-27,203.0,206.1,202.6,abc,202.9,6062500", v.NON_NUMERIC.format(column="close", value="abc")),
        ("2009-05-27,203.0,206.1,202.6,,202.9,6062500", v.MISSING_VALUE.format(column="close")),
        ("2009-05-27,203.0,206.1,202.6,NaN,202.9,6062500", v.MISSING_VALUE.format(column="close")),
        ("2009-05-27,203.0,201.0,202.6,202.9,202.9,6062500", v.HIGH_BELOW_LOW.format(high=201.0, low=202.6)),
        ("2009-05-27,203.0,206.1,202.6,210.0,202.9,6062500",
         v.OUTSIDE_RANGE.format(column="close", value=210.0, low=202.6, high=206.1)),
        ("2009-05-27,203.0,206.1,202.6,202.9,202.9,-5", v.NEGATIVE.format(column="volume", value=-5.0)),
        ("2009-05-27,203.0,206.1,-1.0,202.9,202.9,5", v.NOT_POSITIVE.format(column="low", value=-1.0)),
        ("2009-13-45,203.0,206.1,202.6,202.9,202.9,5", v.BAD_TIME.format(column="Date", value="2009-13-45")),
        ("2009-05-26,203.0,206.1,202.6,202.9,202.9,5", v.DUPLICATE_TIME.format(value="2009-05-26")),
        ("2009-05-25,203.0,206.1,202.6,202.9,202.9,5",
         v.NOT_MONOTONIC.format(value="2009-05-25", order="oldest-first", previous="2009-05-26")),
    ],
)  # fmt: skip
def test_bad_row_names_file_and_line(tmp_path: Path, row: str, problem: str, row_error) -> None:
    path = write(tmp_path / "googl.csv", GOOGL.read_text().replace(GOOGL_ROW, row))
    with pytest.raises(DataFormatError, match=row_error(path, 4, problem)):
        read_ohlcv(path)


def test_line_numbers_count_the_credit_line(tmp_path: Path, row_error) -> None:
    lines = COINBASE.read_text().splitlines()
    fields = lines[4].split(",")
    fields[3] = str(float(fields[4]) - 1)  # high below low on the third data row = file line 5
    lines[4] = ",".join(fields)
    path = write(tmp_path / "cb.csv", "\n".join(lines) + "\n")
    problem = v.HIGH_BELOW_LOW.format(high=float(fields[3]), low=float(fields[4]))
    with pytest.raises(DataFormatError, match=row_error(path, 5, problem)):
        read_ohlcv(path)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=re.escape(v.MISSING_FILE.format(tmp_path / "none.csv"))):
        read_ohlcv(tmp_path / "none.csv")


def test_synthetic_book_model() -> None:
    h, lo, c, vol = 105.0, 95.0, 101.0, 1000.0
    book = synthetic_book(h, lo, c, vol, n_levels=4, tick_size=0.01, spread_fraction=0.05, depth_fraction=0.1, decay=0.5)
    assert book.shape == (4, 4)
    # spread = 0.05 * 10 = 0.5 around the close; spacing = range / (2 n) = 1.25
    np.testing.assert_allclose(book[:, 0], [100.75, 99.5, 98.25, 97.0])
    np.testing.assert_allclose(book[:, 2], [101.25, 102.5, 103.75, 105.0])
    q0 = 0.1 * 1000 * 0.5 / (1 - 0.5**4)
    np.testing.assert_allclose(book[:, 1], q0 * 0.5 ** np.arange(4))
    np.testing.assert_allclose(book[:, 1].sum(), 100.0)
    np.testing.assert_array_equal(book[:, 1], book[:, 3])
    ticks = np.round(book[:, [0, 2]] / 0.01)
    np.testing.assert_allclose(book[:, [0, 2]], ticks * 0.01, atol=1e-9)


def test_synthetic_book_edge_cases() -> None:
    flat = synthetic_book(10.0, 10.0, 10.0, 50.0, n_levels=3, tick_size=0.5)
    np.testing.assert_allclose(flat[:, 0], [9.5, 9.0, 8.5])  # one-tick spread floor and spacing
    np.testing.assert_allclose(flat[:, 2], [10.5, 11.0, 11.5])
    empty = synthetic_book(10.0, 9.0, 9.5, 0.0, n_levels=2)
    assert np.isnan(empty[:, [0, 2]]).all() and (empty[:, [1, 3]] == 0).all()
    low = synthetic_book(0.03, 0.01, 0.02, 10.0, n_levels=4, tick_size=0.01)
    assert np.isnan(low[1:, 0]).all() and (low[1:, 1] == 0).all() and low[0, 0] == pytest.approx(0.01)
    many = synthetic_book(np.array([2.0, 3.0]), np.array([1.0, 2.0]), np.array([1.5, 2.5]), np.array([1.0, 2.0]))
    assert many.shape == (2, 10, 4)


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [({"n_levels": 0}, ValueError, "Expected `n_levels` to be an int >= 1, got 0"),
     ({"n_levels": 2.0}, TypeError, "Expected `n_levels` to be an int >= 1, got 2.0"),
     ({"tick_size": 0.0}, ValueError, "Expected `tick_size` to be a finite number > 0, got 0.0"),
     ({"decay": -1.0}, ValueError, "Expected `decay` to be a finite number > 0, got -1.0"),
     ({"spread_fraction": -0.1}, ValueError, "Expected `spread_fraction` to be a finite number >= 0, got -0.1"),
     ({"level_fraction": float("nan")}, ValueError,
      "Expected `level_fraction` to be a finite number >= 0 or None, got nan")],
)  # fmt: skip
def test_bad_book_args(kwargs: dict, error: type, message: str) -> None:
    with pytest.raises(error, match=re.escape(message)):
        synthetic_book(2.0, 1.0, 1.5, 10.0, **kwargs)


def test_split_volume() -> None:
    buy, sell = split_volume(np.array([10.0, 5.0]), np.array([6.0, 5.0]), np.array([9.0, 5.0]), np.array([100.0, 8.0]))
    np.testing.assert_allclose(buy, [75.0, 4.0])
    np.testing.assert_allclose(sell, [25.0, 4.0])


def test_real_samples_load() -> None:
    hourly = read_ohlcv(sample_path("btc_usd_hourly"))
    assert len(hourly) == 5000 and hourly.swapped_volume_rows == 0
    assert (np.diff(hourly.time.astype(np.int64)) == 3600 * 10**9).all()
    notional = hourly.volume * hourly.close  # base volume in BTC: notional below $1bn per hour
    assert notional.max() < 1e9
    daily = read_ohlcv(sample_path("btc_usd_daily"))
    assert len(daily) == 1770 and daily.time[0] == np.datetime64("2014-12-01")


# --------------------------------------------------------------------------- wide / long files, column mapping

WIDE = DATA_DIR / "wide_btc_eth_hourly.csv"  # hand-made: date + BTC:open..BTC:volume + ETH:open..ETH:volume, 12 rows
FIELDS = ("open", "high", "low", "close", "volume")


def test_wide_file_asset_selection() -> None:
    raw = pd.read_csv(WIDE)
    for asset in ("ETH", "eth", "BTC"):
        bars = read_ohlcv(WIDE, asset=asset)
        assert bars.asset == asset.upper() and len(bars) == 12
        for field in FIELDS:
            np.testing.assert_array_equal(getattr(bars, field), raw[f"{asset.upper()}:{field}"].to_numpy())
        np.testing.assert_array_equal(bars.time, pd.to_datetime(raw["date"]).to_numpy())


def test_wide_file_needs_an_asset(tmp_path: Path) -> None:
    with pytest.raises(DataFormatError, match="^" + re.escape(om.NEED_ASSET.format(file=WIDE, count=2,
                                                                                       assets="BTC, ETH")) + "$"):
        read_ohlcv(WIDE)
    with pytest.raises(DataFormatError, match="^" + re.escape(om.UNKNOWN_ASSET.format(file=WIDE, asset="SOL",
                                                                                          assets="BTC, ETH")) + "$"):
        read_ohlcv(WIDE, asset="SOL")
    with pytest.raises(TypeError, match=re.escape(om.BAD_ASSET.format(["ETH"]))):
        read_ohlcv(WIDE, asset=["ETH"])  # type: ignore[arg-type]


@pytest.mark.parametrize("pattern", ["{field}_{asset}", "{asset}/{field}", "{asset} {field}", "{asset}.{field}"])
def test_wide_name_variants(tmp_path: Path, pattern: str) -> None:
    raw = pd.read_csv(WIDE)
    raw.columns = ["date"] + [pattern.format(asset=c.split(":")[0].lower(), field=c.split(":")[1].upper())
                              for c in raw.columns[1:]]  # fmt: skip
    path = tmp_path / "wide.csv"
    raw.to_csv(path, index=False)
    np.testing.assert_array_equal(read_ohlcv(path, asset="ETH").close, read_ohlcv(WIDE, asset="ETH").close)


def test_wide_file_validates_only_the_chosen_asset(tmp_path: Path, row_error) -> None:
    raw = pd.read_csv(WIDE, dtype=str)
    raw.loc[4, "BTC:close"] = "abc"  # file line 6
    raw.loc[7, "ETH:low"] = "-1"  # file line 9
    path = tmp_path / "wide.csv"
    raw.to_csv(path, index=False)
    with pytest.raises(DataFormatError, match=row_error(path, 6, v.NON_NUMERIC.format(column="close", value="abc"))):
        read_ohlcv(path, asset="BTC")
    with pytest.raises(DataFormatError, match=row_error(path, 9, v.NOT_POSITIVE.format(column="low", value=-1.0))):
        read_ohlcv(path, asset="ETH")


def test_skip_empty_rows(tmp_path: Path, row_error) -> None:
    raw = pd.read_csv(WIDE, dtype=str)
    raw.loc[:2, [f"ETH:{f}" for f in FIELDS]] = ""  # ETH starts trading on the 4th hour
    path = tmp_path / "late.csv"
    raw.to_csv(path, index=False)
    with pytest.raises(DataFormatError, match=row_error(path, 2, v.MISSING_VALUE.format(column="open"))):
        read_ohlcv(path, asset="ETH")
    bars = read_ohlcv(path, asset="ETH", skip_empty_rows=True)
    full = read_ohlcv(WIDE, asset="ETH")
    assert len(bars) == 9 and bars.skipped_rows == 3
    np.testing.assert_array_equal(bars.close, full.close[3:])
    np.testing.assert_array_equal(bars.time, full.time[3:])
    assert read_ohlcv(path, asset="BTC", skip_empty_rows=True).skipped_rows == 0
    raw.loc[5, "ETH:volume"] = ""  # a partly empty row stays an error (file line 7)
    raw.to_csv(path, index=False)
    with pytest.raises(DataFormatError, match=row_error(path, 7, v.MISSING_VALUE.format(column="volume"))):
        read_ohlcv(path, asset="ETH", skip_empty_rows=True)


def _long_file(tmp_path: Path) -> Path:
    """The wide file as a long one: rows alternate BTC, ETH (ETH row k on file line 2k + 3)."""
    raw = pd.read_csv(WIDE)
    rows = [{"date": r["date"], "Ticker": a, **{f: r[f"{a}:{f}"] for f in FIELDS}}
            for _, r in raw.iterrows() for a in ("BTC", "ETH")]  # fmt: skip
    path = tmp_path / "long.csv"
    pd.DataFrame(rows).to_csv(path, index=False)
    return path


def test_long_file_asset_filter(tmp_path: Path, row_error) -> None:
    path = _long_file(tmp_path)
    bars = read_ohlcv(path, asset="eth")
    wide = read_ohlcv(WIDE, asset="ETH")
    assert bars.asset == "ETH"
    for field in ("time",) + FIELDS:
        np.testing.assert_array_equal(getattr(bars, field), getattr(wide, field))
    with pytest.raises(DataFormatError, match="^" + re.escape(om.NEED_ASSET.format(file=path, count=2,
                                                                                       assets="BTC, ETH")) + "$"):
        read_ohlcv(path)
    with pytest.raises(DataFormatError, match=re.escape(om.UNKNOWN_ASSET.format(file=path, asset="X",
                                                                                 assets="BTC, ETH"))):
        read_ohlcv(path, asset="X")
    lines = path.read_text().splitlines()
    fields = lines[2 * 4 + 2].split(",")  # ETH row 4 → file line 11
    assert fields[1] == "ETH"
    fields[5] = str(float(fields[4]) - 1)  # close below low
    lines[2 * 4 + 2] = ",".join(fields)
    path.write_text("\n".join(lines) + "\n")
    problem = v.OUTSIDE_RANGE.format(column="close", value=float(fields[5]), low=float(fields[4]),
                                     high=float(fields[3]))  # fmt: skip
    with pytest.raises(DataFormatError, match=row_error(path, 11, problem)):
        read_ohlcv(path, asset="ETH")
    assert len(read_ohlcv(path, asset="BTC")) == 12


def test_single_symbol_file_and_asset_on_plain_file() -> None:
    with pytest.warns(UserWarning):
        assert len(read_ohlcv(HOURLY, asset="btc/usd")) == 12  # CryptoDataDownload: symbol column "BTC/USD"
    with pytest.raises(DataFormatError, match=re.escape(om.UNKNOWN_ASSET.format(file=COINBASE, asset="ETH",
                                                                                 assets="BTCUSD"))):
        read_ohlcv(COINBASE, asset="ETH")
    problem = om.NO_ASSETS.format(file=GOOGL, asset="GOOGL", aliases=", ".join(om.SYMBOL_ALIASES))
    with pytest.raises(DataFormatError, match="^" + re.escape(problem) + "$"):
        read_ohlcv(GOOGL, asset="GOOGL")


def test_column_mapping(tmp_path: Path) -> None:
    raw = pd.read_csv(GOOGL)
    adjusted = raw.copy()
    adjusted["Adj Close"] = raw["Close"] * 0.5  # make Adj Close differ from Close
    adjusted["Adj Close"] = adjusted["Adj Close"].clip(lower=raw["Low"], upper=raw["High"])
    path = tmp_path / "adj.csv"
    adjusted.to_csv(path, index=False)
    bars = read_ohlcv(path, columns={"close": "adj close"})
    np.testing.assert_array_equal(bars.close, adjusted["Adj Close"].to_numpy())
    renamed = raw.rename(columns={"Date": "Stamp", "Open": "o", "High": "h", "Low": "l", "Close": "c", "Volume": "q"})
    path = tmp_path / "renamed.csv"
    renamed.to_csv(path, index=False)
    mapping = {"time": "Stamp", "open": "o", "high": "h", "low": "l", "close": "c", "volume": "q"}
    got, want = read_ohlcv(path, columns=mapping), read_ohlcv(GOOGL)
    for field in ("time",) + FIELDS:
        np.testing.assert_array_equal(getattr(got, field), getattr(want, field))
    eth = read_ohlcv(WIDE, asset="ETH", columns={"close": "ETH:open"})  # a wide column named in full
    np.testing.assert_array_equal(eth.close, pd.read_csv(WIDE)["ETH:open"].to_numpy())


def test_bad_column_mapping() -> None:
    with pytest.raises(ValueError, match=re.escape(om.BAD_COLUMNS_KEY.format(list(om.COLUMN_KEYS), "adj_close"))):
        read_ohlcv(GOOGL, columns={"adj_close": "Adj Close"})
    with pytest.raises(TypeError, match=re.escape(om.BAD_COLUMNS.format(list(om.COLUMN_KEYS), "Adj Close"))):
        read_ohlcv(GOOGL, columns="Adj Close")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=re.escape(om.COLUMNS_CONFLICT.format("volume_column", "volume", "x", "y"))):
        read_ohlcv(GOOGL, columns={"volume": "y"}, volume_column="x")
    problem = v.MISSING_COLUMNS.format(missing="open, high, low, Last",
                                       found="Date, Open, High, Low, Close, Adj Close, Volume")
    with pytest.raises(DataFormatError, match="^" + re.escape(v.FILE_ERROR.format(file=GOOGL, problem=problem)) + "$"):
        read_ohlcv(GOOGL, columns={"close": "Last"})


# --------------------------------------------------------------------------- bars built from arrays


def _arrays() -> dict[str, np.ndarray]:
    bars = read_ohlcv(GOOGL)
    return {f: getattr(bars, f).copy() for f in ("time",) + FIELDS}


def _with(field: str, index: int, value: object) -> dict[str, np.ndarray]:
    arrays = _arrays()
    arrays[field] = arrays[field].astype(object if field == "time" else np.float64)
    arrays[field][index] = value
    if field == "time":
        arrays[field] = arrays[field].astype("datetime64[ns]")
    return arrays


@pytest.mark.parametrize(
    ("field", "index", "value", "problem"),
    [
        ("close", 3, np.nan, lambda a: v.A_NOT_FINITE.format(value=np.nan)),
        ("open", 0, np.inf, lambda a: v.A_NOT_FINITE.format(value=np.inf)),
        ("volume", 5, -1.0, lambda a: v.A_NEGATIVE.format(value=-1.0)),
        ("volume", 2, np.nan, lambda a: v.A_NOT_FINITE.format(value=np.nan)),
        ("low", 1, 0.0, lambda a: v.A_NOT_POSITIVE.format(value=0.0)),
        ("high", 4, 1.0, lambda a: v.HIGH_BELOW_LOW.format(high=1.0, low=float(a["low"][4]))),
        ("close", 6, 1e6, lambda a: v.OUTSIDE_RANGE.format(column="close", value=1e6, low=float(a["low"][6]),
                                                           high=float(a["high"][6]))),
        ("time", 2, np.datetime64("NaT"), lambda a: v.A_MISSING_TIME),
        ("time", 7, np.datetime64("2009-05-22"), lambda a: v.A_NOT_AFTER.format(
            value="2009-05-22 00:00:00", previous=str(pd.Timestamp(a["time"][6])))),
    ],
)  # fmt: skip
def test_arrays_are_validated(field: str, index: int, value: object, problem) -> None:
    arrays = _with(field, index, value)
    message = v.ARRAY_ERROR.format(owner="OHLCVBars", field=field, index=index, problem=problem(arrays))
    with pytest.raises(ValueError, match="^" + re.escape(message) + "$"):
        om.OHLCVBars(**arrays)


def test_arrays_shapes_and_types() -> None:
    arrays = _arrays()
    bars = om.OHLCVBars(**{k: (x.tolist() if k != "time" else x) for k, x in arrays.items()})  # lists convert
    assert bars.close.dtype == np.float64 and len(bars) == 8 and len(bars.head(3)) == 3
    short = {**arrays, "volume": arrays["volume"][:5]}
    message = v.ARRAY_SHAPE_LIKE.format(owner="OHLCVBars", field="volume", expected="(8,)", like="close", shape=(5,))
    with pytest.raises(ValueError, match="^" + re.escape(message) + "$"):
        om.OHLCVBars(**short)
    with pytest.raises(TypeError, match=re.escape(v.ARRAY_TYPE.format(owner="OHLCVBars", field="open",
                                                                     expected="an array of float64", value="abc"))):
        om.OHLCVBars(**{**arrays, "open": "abc"})
    with pytest.raises(ValueError, match=re.escape("OHLCVBars.close[3]: not finite: nan")):  # also via replace()
        replace(bars, close=np.where(np.arange(8) == 3, np.nan, bars.close))
