"""The one rule for numbers (ledger-spec §1).

Every amount, price and size is an integer in a fixed decimal scale. A derived amount is computed
exactly as a rational and rounded half to even once, at the end. No float or Decimal ever enters.
"""

from __future__ import annotations

# Amounts, balances, prices and sizes are Avro decimal(38, 0): |v| < 10^38.
VALUE_LIMIT = 10**38
# Counters, epochs, timestamps, ppm and ppb are Avro long.
LONG_MIN = -(2**63)
LONG_MAX = 2**63 - 1
PPM = 10**6
PPB = 10**9


def rhe(numerator: int, denominator: int) -> int:
    """Round numerator/denominator half to even; denominator > 0."""
    if denominator == 1:  # most markets' scales are exact: skip the division
        return numerator
    assert denominator > 0
    quotient, remainder = divmod(numerator, denominator)  # floor division: 0 <= remainder < den
    twice = 2 * remainder
    if twice > denominator or (twice == denominator and quotient & 1):
        return quotient + 1
    return quotient


class Scale:
    """Converts price x size products of one market into settlement minor units.

    `factor_num / factor_den` is 10^settlement_decimals / 10^(price_decimals + size_decimals),
    reduced so that the common case (one of them is 1) costs a single multiply or division.
    """

    __slots__ = ("factor_den", "factor_num")

    def __init__(self, settlement_decimals: int, price_decimals: int, size_decimals: int) -> None:
        shift = settlement_decimals - price_decimals - size_decimals
        self.factor_num = 10**shift if shift >= 0 else 1
        self.factor_den = 10**-shift if shift < 0 else 1

    def notional(self, size: int, price: int) -> int:
        """rhe(|size| * price * 10^sd / 10^(pd + zd))."""
        return rhe(abs(size) * price * self.factor_num, self.factor_den)

    def pnl(self, size: int, entry_price: int, exit_price: int) -> int:
        """rhe(size * (exit - entry) * 10^sd / 10^(pd + zd)); size signed (+ long, - short)."""
        return rhe(size * (exit_price - entry_price) * self.factor_num, self.factor_den)

    def funding(self, size: int, price: int, rate_ppb: int) -> int:
        """Magnitude of a funding payment, rounded before it is signed so longs and shorts net."""
        return rhe(abs(size) * price * abs(rate_ppb) * self.factor_num, self.factor_den * PPB)


def ppm_of(amount: int, ratio_ppm: int) -> int:
    """rhe(amount * ratio_ppm / 10^6): margins and penalties, from an already rounded notional."""
    return rhe(amount * ratio_ppm, PPM)


def average_entry(size: int, entry_price: int, added: int, fill_price: int) -> int:
    """Weighted entry price after an increase: rhe((|s| e + |q| p) / (|s| + |q|))."""
    held, extra = abs(size), abs(added)
    return rhe(held * entry_price + extra * fill_price, held + extra)
