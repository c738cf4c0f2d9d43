"""Which positions a new mark price can move across a margin line, without scanning them all.

Equity minus a margin requirement is, before rounding, linear in the mark: rising for a long and
falling for a short. Rounding moves each of the three terms by at most 1/2 unit, so the exact value
is within 1.5 units of the linear one. That gives every position, per margin line, a price bracket
outside which its state is certain; the index keeps the bracket ends in sorted lists. A mark update
asks only for the positions whose bracket the new mark could reach, and checks those exactly: the
result equals a check of every position, at O(log n + k) (tests compare the two).
"""

from __future__ import annotations

from collections.abc import Iterable

from sortedcontainers import SortedList

from streams.core.model import Market, Position
from streams.core.numbers import PPM, Scale

# Beyond any price (|price| < 10^38): "always" and "never" as thresholds.
_ALWAYS = 10**60

# A position's index entries: (list number, (threshold, user)) each.
_Entries = tuple[tuple[int, tuple[int, str]], ...]


def _ceil_div(numerator: int, denominator: int) -> int:
    return -((-numerator) // denominator)


def long_bracket(size: int, entry: int, margin: int, ratio_ppm: int, scale: Scale) -> tuple[int, int]:
    """For a long: (hi, lo) with "possibly short of the line" iff mark < hi, "possibly above" iff mark >= lo.

    g(P) = margin + size*(P - entry)*k - size*P*k*r, with k = num/den and r = ratio_ppm/10^6.
    Certainly above the line where g >= 1.5, certainly short of it where g < -1.5.
    """
    num, den = scale.factor_num, scale.factor_den
    slope_den = 2 * size * num * (PPM - ratio_ppm)
    base = 2 * size * entry * num - 2 * margin * den
    if slope_den == 0:  # a 100% margin ratio: equity minus margin does not depend on the mark
        twice_g = -base
        if twice_g >= 3 * den:
            return -_ALWAYS, -_ALWAYS
        if twice_g < -3 * den:
            return _ALWAYS, _ALWAYS
        return _ALWAYS, -_ALWAYS
    hi = _ceil_div((base + 3 * den) * PPM, slope_den)
    lo = _ceil_div((base - 3 * den) * PPM, slope_den)
    return hi, lo


def short_bracket(size: int, entry: int, margin: int, ratio_ppm: int, scale: Scale) -> tuple[int, int]:
    """For a short: (t, u) with "possibly short of the line" iff mark >= t, "possibly above" iff mark <= u."""
    num, den = scale.factor_num, scale.factor_den
    held = -size
    slope_den = 2 * held * num * (PPM + ratio_ppm)
    base = 2 * margin * den + 2 * held * entry * num
    t = (base - 3 * den) * PPM // slope_den + 1
    u = (base + 3 * den) * PPM // slope_den
    return t, u


class MarketRiskIndex:
    """Open positions of one market, ordered by the marks at which their state could change."""

    __slots__ = ("_entries", "_lists")

    # List numbers, by side and by what a list finds: the reduce-only entry lists hold every position
    # not yet reduce-only; the liquidation lists only reduce-only positions not yet in liquidation.
    _LONG_LIQ, _LONG_RO_IN, _LONG_RO_OUT, _SHORT_LIQ, _SHORT_RO_IN, _SHORT_RO_OUT = range(6)

    def __init__(self) -> None:
        self._lists = [SortedList() for _ in range(6)]
        # user -> ((list number, (threshold, user)), ...) as inserted, to remove them later. Tuples,
        # not lists: tuples of numbers and strings leave the garbage collector's lists, and there is
        # one per open position.
        self._entries: dict[str, _Entries] = {}

    def __len__(self) -> int:
        return len(self._entries)

    def open_users(self) -> list[str]:
        return sorted(self._entries)

    def remove(self, user: str) -> None:
        for list_no, item in self._entries.pop(user, ()):
            self._lists[list_no].remove(item)

    def update(self, user: str, position: Position, margin: int, market: Market, scale: Scale) -> None:
        """(Re)index a user after its position, margin or flags changed."""
        self.remove(user)
        entries = self._entries_of(user, position, margin, market, scale)
        if entries:
            lists = self._lists
            for list_no, item in entries:
                lists[list_no].add(item)
            self._entries[user] = entries

    def rebuild(self, positions: Iterable[tuple[str, Position, int]], market: Market, scale: Scale) -> None:
        """Index every (user, position, margin) afresh with one sort per list (funding, risk params)."""
        items: list[list[tuple[int, str]]] = [[] for _ in self._lists]
        self._entries = {}
        for user, position, margin in positions:
            entries = self._entries_of(user, position, margin, market, scale)
            if entries:
                self._entries[user] = entries
                for list_no, item in entries:
                    items[list_no].append(item)
        self._lists = [SortedList(found) for found in items]

    def _entries_of(self, user: str, position: Position, margin: int, market: Market,
                    scale: Scale) -> _Entries:
        size = position.size
        if size == 0:
            return ()
        # A position short of the initial margin line can never be short of the maintenance line
        # without being so too, so a position not yet reduce-only needs only its initial-margin
        # entry: it covers both signals. That keeps healthy positions (most of them) at one entry.
        mm_ppm, im_ppm = market.maintenance_margin_ppm, market.initial_margin_ppm
        entry = position.entry_price
        if size > 0:
            bracket, ro_in, ro_out, liq = long_bracket, self._LONG_RO_IN, self._LONG_RO_OUT, self._LONG_LIQ
        else:
            bracket, ro_in, ro_out, liq = short_bracket, self._SHORT_RO_IN, self._SHORT_RO_OUT, self._SHORT_LIQ
        enter_at, exit_at = bracket(size, entry, margin, im_ppm, scale)
        if not position.reduce_only:
            return ((ro_in, (enter_at, user)),)
        if position.liquidation_id is not None:
            return ((ro_out, (exit_at, user)),)
        return ((ro_out, (exit_at, user)), (liq, (bracket(size, entry, margin, mm_ppm, scale)[0], user)))

    def candidates(self, mark: int) -> list[str]:
        """Users whose state could differ at `mark` from their last check, in user-id order."""
        # Ranges by value (irange), not by position (bisect_left + islice): positions need the
        # SortedList's positional index, which every later add and remove must then maintain.
        lists = self._lists
        found: set[str] = set()
        above = (mark + 1,)  # sorts before every (mark + 1, user): the first threshold > mark
        for list_no in (self._LONG_LIQ, self._LONG_RO_IN):  # threshold > mark
            found.update(user for _, user in lists[list_no].irange(above))
        for list_no in (self._LONG_RO_OUT, self._SHORT_LIQ, self._SHORT_RO_IN):  # threshold <= mark
            found.update(user for _, user in lists[list_no].irange(None, above, (True, False)))
        # threshold >= mark
        found.update(user for _, user in lists[self._SHORT_RO_OUT].irange((mark,)))
        return sorted(found)
