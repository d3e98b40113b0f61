from datetime import date

import pytest

from subscriptions.periods import Period, period_index_on, period_on, period_start


def starts(anchor: date, interval: str, interval_count: int, count: int) -> list[date]:
    return [period_start(anchor, interval, interval_count, index) for index in range(count)]


class TestPeriodStart:
    def test_anchor_31st_non_leap_february(self):
        assert starts(date(2025, 1, 31), "month", 1, 4) == [
            date(2025, 1, 31),
            date(2025, 2, 28),
            date(2025, 3, 31),
            date(2025, 4, 30),
        ]

    def test_anchor_31st_leap_february(self):
        assert starts(date(2028, 1, 31), "month", 1, 4) == [
            date(2028, 1, 31),
            date(2028, 2, 29),
            date(2028, 3, 31),
            date(2028, 4, 30),
        ]

    @pytest.mark.parametrize(
        ("anchor", "february", "march"),
        [
            (date(2025, 1, 30), date(2025, 2, 28), date(2025, 3, 30)),
            (date(2028, 1, 30), date(2028, 2, 29), date(2028, 3, 30)),
            (date(2025, 1, 29), date(2025, 2, 28), date(2025, 3, 29)),
            (date(2028, 1, 29), date(2028, 2, 29), date(2028, 3, 29)),
        ],
        ids=["30th-non-leap", "30th-leap", "29th-non-leap", "29th-leap"],
    )
    def test_anchor_29th_30th_after_february(self, anchor, february, march):
        assert starts(anchor, "month", 1, 3) == [anchor, february, march]

    def test_quarterly_from_month_end(self):
        assert starts(date(2025, 11, 30), "month", 3, 4) == [
            date(2025, 11, 30),
            date(2026, 2, 28),
            date(2026, 5, 30),
            date(2026, 8, 30),
        ]

    def test_weekly_and_fortnightly(self):
        assert starts(date(2026, 1, 5), "week", 1, 3) == [date(2026, 1, 5), date(2026, 1, 12), date(2026, 1, 19)]
        assert starts(date(2026, 1, 5), "week", 2, 3) == [date(2026, 1, 5), date(2026, 1, 19), date(2026, 2, 2)]

    def test_daily_with_count(self):
        assert starts(date(2026, 2, 27), "day", 3, 3) == [date(2026, 2, 27), date(2026, 3, 2), date(2026, 3, 5)]

    def test_yearly_from_leap_day(self):
        assert starts(date(2028, 2, 29), "year", 1, 5) == [
            date(2028, 2, 29),
            date(2029, 2, 28),
            date(2030, 2, 28),
            date(2031, 2, 28),
            date(2032, 2, 29),
        ]

    def test_every_two_years(self):
        assert starts(date(2026, 6, 15), "year", 2, 3) == [date(2026, 6, 15), date(2028, 6, 15), date(2030, 6, 15)]

    def test_unknown_interval_is_rejected(self):
        with pytest.raises(ValueError) as raised:
            period_start(date(2026, 1, 1), "fortnight", 1, 1)

        assert str(raised.value) == "interval 'fortnight' is not one of day, week, month, year"


class TestPeriodOn:
    @pytest.mark.parametrize(
        ("day", "expected"),
        [
            (date(2025, 1, 31), Period(date(2025, 1, 31), date(2025, 2, 28))),
            (date(2025, 2, 27), Period(date(2025, 1, 31), date(2025, 2, 28))),
            (date(2025, 2, 28), Period(date(2025, 2, 28), date(2025, 3, 31))),
            (date(2025, 3, 30), Period(date(2025, 2, 28), date(2025, 3, 31))),
            (date(2025, 3, 31), Period(date(2025, 3, 31), date(2025, 4, 30))),
        ],
    )
    def test_month_end_anchor(self, day, expected):
        assert period_on(date(2025, 1, 31), "month", 1, day) == expected

    def test_day_before_next_year_start_stays_in_period(self):
        assert period_on(date(2028, 2, 29), "year", 1, date(2029, 2, 27)) == Period(date(2028, 2, 29), date(2029, 2, 28))

    def test_weekly_with_count(self):
        assert period_on(date(2026, 1, 5), "week", 2, date(2026, 1, 25)) == Period(date(2026, 1, 19), date(2026, 2, 2))

    def test_index_of_anchor_is_zero(self):
        assert period_index_on(date(2026, 1, 31), "month", 1, date(2026, 1, 31)) == 0

    def test_day_before_anchor_is_rejected(self):
        with pytest.raises(ValueError) as raised:
            period_on(date(2026, 1, 31), "month", 1, date(2026, 1, 30))

        assert str(raised.value) == "day 2026-01-30 precedes the billing anchor 2026-01-31"
