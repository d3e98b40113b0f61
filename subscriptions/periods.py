"""Billing period arithmetic: half-open ``[start, end)`` periods counted from an anchor date.

Period ``k`` starts at ``anchor + k * interval``, computed from the anchor with
``dateutil.relativedelta`` and never by adding to the previous period. Adding
to the previous period would drift: Jan 31 + 1 month is Feb 28, and Feb 28 +
1 month is Mar 28, while the anchor's day gives Mar 31.
"""

from dataclasses import dataclass
from datetime import date

from dateutil.relativedelta import relativedelta

# relativedelta's keyword for each plan interval.
_RELATIVEDELTA_UNITS = {"day": "days", "week": "weeks", "month": "months", "year": "years"}


@dataclass(frozen=True)
class Period:
    """One billing period; ``end`` is the first day of the next period, not part of this one."""

    start: date
    end: date


def interval_delta(interval: str, interval_count: int, periods: int = 1) -> relativedelta:
    """Return the length of ``periods`` periods of ``interval_count`` ``interval`` units."""
    try:
        unit = _RELATIVEDELTA_UNITS[interval]
    except KeyError:
        raise ValueError(
            f"interval {interval!r} is not one of {', '.join(_RELATIVEDELTA_UNITS)}"
        ) from None
    return relativedelta(**{unit: interval_count * periods})


def period_start(anchor: date, interval: str, interval_count: int, index: int) -> date:
    """Return the start of period ``index``; period 0 starts on ``anchor``.

    relativedelta clamps to the month's last day, so an anchor on Jan 31 gives
    Feb 28 (Feb 29 in a leap year) and then Mar 31.
    """
    return anchor + interval_delta(interval, interval_count, index)


def period_index_on(anchor: date, interval: str, interval_count: int, day: date) -> int:
    """Return the index of the period that contains ``day``, which must not precede ``anchor``."""
    if day < anchor:
        raise ValueError(f"day {day} precedes the billing anchor {anchor}")

    if interval == "day":
        units = (day - anchor).days
    elif interval == "week":
        units = (day - anchor).days // 7
    elif interval == "month":
        units = (day.year - anchor.year) * 12 + day.month - anchor.month
    elif interval == "year":
        units = day.year - anchor.year
    else:
        raise ValueError(f"interval {interval!r} is not one of {', '.join(_RELATIVEDELTA_UNITS)}")

    # Counting calendar months or years overshoots by one period when the
    # day of the month (or the month) of ``day`` has not reached the anchor's.
    index = units // interval_count
    while index > 0 and period_start(anchor, interval, interval_count, index) > day:
        index -= 1
    return index


def period_on(anchor: date, interval: str, interval_count: int, day: date) -> Period:
    """Return the period that contains ``day``, which must not precede ``anchor``."""
    index = period_index_on(anchor, interval, interval_count, day)
    return Period(
        start=period_start(anchor, interval, interval_count, index),
        end=period_start(anchor, interval, interval_count, index + 1),
    )
