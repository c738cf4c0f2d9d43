"""The number rule (ledger-spec §1) and the risk brackets built on it."""

from __future__ import annotations

from fractions import Fraction

from hypothesis import given
from hypothesis import strategies as st

from streams.core.numbers import Scale, average_entry, ppm_of, rhe
from streams.core.risk_index import long_bracket, short_bracket


def _reference_rhe(value: Fraction) -> int:
    return round(value)  # Python's round() on a Fraction is exact and rounds half to even


@given(st.integers(-(10**40), 10**40), st.integers(1, 10**20))
def test_rhe_is_exact_half_to_even(numerator: int, denominator: int) -> None:
    assert rhe(numerator, denominator) == _reference_rhe(Fraction(numerator, denominator))


def test_rhe_golden_ties() -> None:
    assert [rhe(n, 2) for n in (-5, -3, -1, 1, 3, 5)] == [-2, -2, 0, 0, 2, 2]


def test_notional_pnl_funding_golden() -> None:
    scale = Scale(6, 2, 3)  # USDT 6, price 2, size 3: factor 10
    assert scale.notional(-100, 5_000_000) == 5_000_000_000
    assert scale.pnl(-100, 5_000_000, 4_900_000) == 100_000_000
    assert scale.funding(-3, 5_000_500, -100_000) == 15_002  # 3 * 5_000_500 * 10^5 / 10^8 = 15_001.5
    assert Scale(0, 2, 3).notional(1, 150_000) == 2  # 1.5 -> 2
    assert Scale(18, 0, 0).notional(2, 3) == 6 * 10**18
    assert ppm_of(2_500, 1_000) == 2  # 2.5 -> 2
    assert average_entry(-1, 100, -1, 101) == 100


def _trouble(size: int, entry: int, margin: int, ratio_ppm: int, scale: Scale, mark: int) -> bool:
    equity = margin + scale.pnl(size, entry, mark)
    return equity < ppm_of(scale.notional(size, mark), ratio_ppm)


_decimals = st.integers(0, 8)


@given(
    st.integers(1, 10**6), st.integers(1, 10**7), st.integers(-(10**9), 10**10), st.integers(1, 10**6),
    _decimals, _decimals, _decimals, st.integers(1, 2 * 10**7),
)
def test_long_bracket_outside_is_certain(size, entry, margin, ratio_ppm, sd, pd, zd, mark) -> None:
    scale = Scale(sd, pd, zd)
    hi, lo = long_bracket(size, entry, margin, ratio_ppm, scale)
    if mark >= hi:
        assert not _trouble(size, entry, margin, ratio_ppm, scale, mark)
    if mark < lo:
        assert _trouble(size, entry, margin, ratio_ppm, scale, mark)


@given(
    st.integers(1, 10**6), st.integers(1, 10**7), st.integers(-(10**9), 10**10), st.integers(1, 10**6),
    _decimals, _decimals, _decimals, st.integers(1, 2 * 10**7),
)
def test_short_bracket_outside_is_certain(held, entry, margin, ratio_ppm, sd, pd, zd, mark) -> None:
    scale = Scale(sd, pd, zd)
    t, u = short_bracket(-held, entry, margin, ratio_ppm, scale)
    if mark < t:
        assert not _trouble(-held, entry, margin, ratio_ppm, scale, mark)
    if mark > u:
        assert _trouble(-held, entry, margin, ratio_ppm, scale, mark)


def test_brackets_are_narrow_for_ordinary_positions() -> None:
    # 0.1 BTC long from 50_000.00 on 600 USDT: maintenance crossed between 46_315.78 and 46_315.80
    hi, lo = long_bracket(100, 5_000_000, 600_000_000, 50_000, Scale(6, 2, 3))
    assert hi - lo <= 1
    assert _trouble(100, 5_000_000, 600_000_000, 50_000, Scale(6, 2, 3), lo - 1)
    assert not _trouble(100, 5_000_000, 600_000_000, 50_000, Scale(6, 2, 3), hi)
