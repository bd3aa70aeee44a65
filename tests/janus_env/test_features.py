"""Market features (``janus_env.features``): hand examples and hypothesis checks.

``volume_buckets`` is checked against an exact ``Fraction`` re-implementation
of the bucket split, and the incremental numba ``vpin_update`` against
``vpin(*volume_buckets(...))`` over the last ``n`` buckets after every trade.
Trade volumes are integers so that both sides agree exactly on how many
buckets are complete.
"""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from janus_env.features import (
    N_VPIN_SCALARS,
    V_N_FULL,
    depth_imbalance,
    microprice,
    mid_price,
    realized_volatility,
    spread,
    volume_buckets,
    vpin,
    vpin_update,
    vpin_value,
)

# --------------------------------------------------------------------------- VPIN


def test_vpin_hand_example() -> None:
    # |3 − 1| + |1 − 3| + |2 − 2| = 4 over 12 shares
    assert vpin([3, 1, 2], [1, 3, 2]) == pytest.approx(4 / 12)


def test_vpin_one_sided_and_balanced() -> None:
    assert vpin([5, 5], [0, 0]) == 1.0
    assert vpin([0, 5], [5, 0]) == 1.0
    assert vpin([2, 2], [2, 2]) == 0.0


def test_vpin_without_volume_is_zero() -> None:
    assert vpin([], []) == 0.0
    assert vpin([0, 0], [0, 0]) == 0.0


def test_volume_buckets_splits_trades_across_buckets() -> None:
    # cumulative volume: trade 0 covers [0, 4) all buy, trade 1 [4, 10) all sell,
    # trade 2 [10, 16) all buy; buckets of 5 → [0,5) [5,10) [10,15), 1 share left over
    buy, sell = volume_buckets([4, 0, 6], [0, 6, 0], 5)
    np.testing.assert_allclose(buy, [4, 0, 5])
    np.testing.assert_allclose(sell, [1, 5, 0])
    assert vpin(buy, sell) == pytest.approx((3 + 5 + 5) / 15)


def test_volume_buckets_splits_a_mixed_trade_pro_rata() -> None:
    # one trade of 3 buy + 1 sell, buckets of 2: each bucket gets 3/4 buy
    buy, sell = volume_buckets([3], [1], 2)
    np.testing.assert_allclose(buy, [1.5, 1.5])
    np.testing.assert_allclose(sell, [0.5, 0.5])


def test_volume_buckets_trade_on_exact_boundary_and_zero_trades() -> None:
    buy, sell = volume_buckets([2, 0, 0, 1], [0, 0, 2, 1], 2)
    np.testing.assert_allclose(buy, [2, 0, 1])
    np.testing.assert_allclose(sell, [0, 2, 1])


def test_volume_buckets_without_a_complete_bucket() -> None:
    for buy, sell in (([], []), ([1], [1]), ([0, 0], [0, 0])):
        b, s = volume_buckets(buy, sell, 5)
        assert b.shape == (0,) and s.shape == (0,)


def reference_buckets(buy: list[int], sell: list[int], bucket: int) -> tuple[list[Fraction], list[Fraction], Fraction]:
    """Exact bucket split: complete buckets' buy/sell volume and the buy volume left over."""
    out_buy: list[Fraction] = []
    out_sell: list[Fraction] = []
    cur_b = cur_s = Fraction(0)
    for b, s in zip(buy, sell):
        b, s = Fraction(b), Fraction(s)
        while b + s > 0:
            room = bucket - cur_b - cur_s
            take = min(room, b + s)
            frac = take / (b + s)
            cur_b, cur_s, b, s = cur_b + b * frac, cur_s + s * frac, b - b * frac, s - s * frac
            if cur_b + cur_s == bucket:
                out_buy.append(cur_b)
                out_sell.append(cur_s)
                cur_b = cur_s = Fraction(0)
    return out_buy, out_sell, cur_b


trades = st.lists(st.tuples(st.integers(0, 12), st.integers(0, 12)), min_size=1, max_size=60)


@settings(max_examples=150, deadline=None)
@given(trades, st.integers(1, 20))
def test_volume_buckets_conserve_volume(trade_list: list[tuple[int, int]], bucket: int) -> None:
    buy = [b for b, _ in trade_list]
    sell = [s for _, s in trade_list]
    bb, bs = volume_buckets(np.array(buy, dtype=np.int64), np.array(sell, dtype=np.int64), bucket)
    total = sum(buy) + sum(sell)
    n = total // bucket
    assert bb.shape == bs.shape == (n,)
    # every complete bucket holds exactly `bucket` shares, none negative
    np.testing.assert_allclose(bb + bs, np.full(n, bucket), rtol=0, atol=1e-9)
    assert (bb >= -1e-9).all() and (bs >= -1e-9).all()
    # the split equals the exact one, and buckets + leftover conserve the buy volume
    ref_b, ref_s, left_b = reference_buckets(buy, sell, bucket)
    np.testing.assert_allclose(bb, [float(x) for x in ref_b], rtol=0, atol=1e-9)
    np.testing.assert_allclose(bs, [float(x) for x in ref_s], rtol=0, atol=1e-9)
    assert float(bb.sum()) + float(left_b) == pytest.approx(sum(buy), abs=1e-9)
    assert float(bb.sum() + bs.sum()) == pytest.approx(total - total % bucket, abs=1e-9)


@settings(max_examples=150, deadline=None)
@given(trades, st.integers(1, 20), st.integers(1, 6))
def test_vpin_update_equals_vpin_of_last_buckets(
    trade_list: list[tuple[int, int]], bucket: int, n_buckets: int
) -> None:
    scalars = np.zeros(N_VPIN_SCALARS)
    ring = np.zeros(n_buckets)
    buy: list[int] = []
    sell: list[int] = []
    for b, s in trade_list:
        buy.append(b)
        sell.append(s)
        got = vpin_update(scalars, ring, float(b), float(s), float(bucket))
        bb, bs = volume_buckets(buy, sell, bucket)
        want = vpin(bb[-n_buckets:], bs[-n_buckets:])
        assert got == pytest.approx(want, abs=1e-9)
        assert scalars[V_N_FULL] == len(bb)
        assert vpin_value(scalars, ring, float(bucket)) == got
        assert 0.0 <= got <= 1.0


def test_vpin_update_hand_example() -> None:
    scalars = np.zeros(N_VPIN_SCALARS)
    ring = np.zeros(2)
    assert vpin_update(scalars, ring, 3.0, 0.0, 5.0) == 0.0  # no complete bucket yet
    # bucket 1: 3 buy + 2 sell (|1|); 3 sell carried over
    assert vpin_update(scalars, ring, 0.0, 5.0, 5.0) == pytest.approx(1 / 5)
    # bucket 2: 3 sell + 2 buy (|1|); bucket 3: 5 buy (|5|); window of 2 → (1 + 5) / 10
    assert vpin_update(scalars, ring, 7.0, 0.0, 5.0) == pytest.approx(6 / 10)


# --------------------------------------------------------------------------- book features


def test_mid_price_and_spread() -> None:
    np.testing.assert_allclose(mid_price([10, 99], [12, 100]), [11.0, 99.5])
    np.testing.assert_allclose(spread([10, 99], [12, 100]), [2.0, 1.0])
    assert spread(10, 11) == 1.0


def test_microprice_weights_by_opposite_size() -> None:
    # (bid·Q_ask + ask·Q_bid) / (Q_bid + Q_ask) = (10·3 + 12·1) / 4
    assert microprice(10, 1, 12, 3) == pytest.approx(10.5)
    # heavy bid pushes the microprice towards the ask
    assert microprice(10, 3, 12, 1) == pytest.approx(11.5)
    assert microprice(10, 2, 12, 2) == pytest.approx(11.0)


def test_microprice_falls_back_to_mid_without_size() -> None:
    got = microprice([10, 10], [0, 1], [12, 14], [0, 1])
    np.testing.assert_allclose(got, [11.0, 12.0])


def test_depth_imbalance() -> None:
    assert depth_imbalance([3, 1], [1, 1]) == pytest.approx((4 - 2) / 6)
    assert depth_imbalance([5], [0]) == 1.0
    assert depth_imbalance([0, 0], [2]) == -1.0
    assert depth_imbalance([2], [2]) == 0.0


def test_depth_imbalance_of_empty_book_is_zero() -> None:
    assert depth_imbalance([], []) == 0.0
    assert depth_imbalance([0, 0], [0, 0]) == 0.0


def test_realized_volatility_hand_examples() -> None:
    # log returns +1, −1 → sqrt(mean(1, 1)) = 1
    assert realized_volatility([1.0, math.e, 1.0]) == pytest.approx(1.0)
    r = [math.log(110 / 100), math.log(99 / 110)]
    assert realized_volatility([100, 110, 99]) == pytest.approx(math.sqrt((r[0] ** 2 + r[1] ** 2) / 2))
    assert realized_volatility([5.0, 5.0, 5.0]) == 0.0


def test_realized_volatility_needs_two_prices() -> None:
    assert realized_volatility([]) == 0.0
    assert realized_volatility([100.0]) == 0.0


@settings(max_examples=50, deadline=None)
@given(st.lists(st.floats(1.0, 1e4), min_size=2, max_size=40), st.floats(0.01, 100.0))
def test_realized_volatility_is_scale_free(prices: list[float], scale: float) -> None:
    p = np.array(prices)
    assert realized_volatility(p * scale) == pytest.approx(realized_volatility(p), rel=1e-6, abs=1e-9)
