"""Calendar arithmetic of sentences (DOMAIN.md, "Remaining term (transfer)"): the full-term end
is start + (12·years + months) in one clamped step, then + days, then − credits; the remaining
term is satisfied iff the full-term end ≥ received_on + the treaty minimum in months."""

from __future__ import annotations

import calendar
from datetime import date, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from domain.term import add_months, full_term_end, remaining_term_satisfied

DATES = st.dates(min_value=date(1900, 1, 1), max_value=date(2200, 12, 31))
MONTHS = st.integers(min_value=0, max_value=1200)
SMALL = st.integers(min_value=0, max_value=3650)
FAST = settings(max_examples=200, deadline=None)


def month_index(d: date) -> int:
    return d.year * 12 + d.month - 1


def oracle_add_months(start: date, months: int) -> date:
    """Independent oracle: walk the calendar month by month (without touching the day), then clamp
    the day to the target month's length once."""
    year, month = start.year, start.month
    for _ in range(months):
        month += 1
        if month == 13:
            year, month = year + 1, 1
    return date(year, month, min(start.day, calendar.monthrange(year, month)[1]))


# --- add_months -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("start", "months", "expected"),
    [
        (date(2024, 1, 31), 1, date(2024, 2, 29)),   # leap February: clamp to the 29th
        (date(2023, 1, 31), 1, date(2023, 2, 28)),   # common February: clamp to the 28th
        (date(2024, 2, 29), 13, date(2025, 3, 29)),  # DOMAIN.md: + 1 year 1 month
        (date(2024, 2, 29), 12, date(2025, 2, 28)),
        (date(2024, 1, 31), 2, date(2024, 3, 31)),   # one step: not Jan 31 → Feb 29 → Mar 29
        (date(2024, 8, 31), 1, date(2024, 9, 30)),
        (date(2024, 12, 15), 1, date(2025, 1, 15)),  # year rollover
        (date(2024, 3, 10), 0, date(2024, 3, 10)),
    ],
)
def test_add_months_examples(start, months, expected):
    assert add_months(start, months) == expected


@FAST
@given(DATES, MONTHS)
def test_add_months_moves_the_month_index_and_clamps_the_day_once(d, m):
    result = add_months(d, m)
    assert month_index(result) == month_index(d) + m
    assert result.day == min(d.day, calendar.monthrange(result.year, result.month)[1])
    assert result == oracle_add_months(d, m)


@FAST
@given(DATES)
def test_add_zero_months_is_identity(d):
    assert add_months(d, 0) == d


@FAST
@given(DATES, MONTHS, MONTHS)
def test_add_months_is_monotonic_in_months(d, m1, m2):
    m1, m2 = sorted((m1, m2))
    assert add_months(d, m1) <= add_months(d, m2)


@FAST
@given(DATES, DATES, MONTHS)
def test_add_months_is_monotonic_in_the_start_date(d1, d2, m):
    d1, d2 = sorted((d1, d2))
    assert add_months(d1, m) <= add_months(d2, m)


# --- full_term_end --------------------------------------------------------------------------


def test_full_term_end_one_year_one_month_from_leap_day():
    assert full_term_end(date(2024, 2, 29), 1, 1, 0) == date(2025, 3, 29)


def test_full_term_end_one_month_from_january_31():
    assert full_term_end(date(2024, 1, 31), 0, 1, 0) == date(2024, 2, 29)


def test_years_and_months_are_added_in_one_clamped_step():
    # 2024-01-31 + 2 months must be 2024-03-31, not a twice-clamped 2024-03-29 (via 2024-02-29);
    # + 1 year 1 month = 13 months in one step: 2025-02-28.
    assert full_term_end(date(2024, 1, 31), 0, 2, 0) == date(2024, 3, 31)
    assert full_term_end(date(2024, 1, 31), 1, 1, 0) == date(2025, 2, 28)


def test_days_are_added_after_the_months():
    # months first: 2024-01-30 + 1 month = 2024-02-29, + 1 day = 2024-03-01;
    # days first would give 2024-01-31 + 1 month = 2024-02-29.
    assert full_term_end(date(2024, 1, 30), 0, 1, 1) == date(2024, 3, 1)


def test_credits_are_subtracted_after_months_and_days():
    # 2024-01-31 + 1 month = 2024-02-29, − 1 day credit = 2024-02-28
    # (credit first would give 2024-01-30 + 1 month = 2024-02-29).
    assert full_term_end(date(2024, 1, 31), 0, 1, 0, pretrial_credit_days=1) == date(2024, 2, 28)
    assert full_term_end(date(2024, 1, 31), 0, 1, 0, remission_days=1) == date(2024, 2, 28)


def test_pretrial_credit_and_remission_both_count():
    # the API example: 5 years from 2024-01-15 with 120 days of pre-trial credit
    assert full_term_end(date(2024, 1, 15), 5, 0, 0, pretrial_credit_days=120) == date(2028, 9, 17)
    assert full_term_end(date(2024, 1, 15), 5, 0, 0, pretrial_credit_days=100, remission_days=20) == date(
        2028, 9, 17)
    assert full_term_end(date(2024, 1, 15), 5, 0, 10, pretrial_credit_days=100, remission_days=30) == date(
        2028, 9, 17)


@FAST
@given(
    DATES,
    st.integers(min_value=0, max_value=60),
    st.integers(min_value=0, max_value=240),
    SMALL, SMALL, SMALL,
)
def test_full_term_end_matches_the_calendar_oracle(start, years, months, days, credit, remission):
    expected = (oracle_add_months(start, 12 * years + months) + timedelta(days=days)
                - timedelta(days=credit + remission))
    assert full_term_end(start, years, months, days, credit, remission) == expected


# --- remaining_term_satisfied ---------------------------------------------------------------


@FAST
@given(DATES, st.integers(min_value=0, max_value=240))
def test_exactly_the_minimum_is_enough_and_one_day_less_is_not(received_on, min_months):
    boundary = add_months(received_on, min_months)
    assert remaining_term_satisfied(boundary, received_on, min_months) is True
    assert remaining_term_satisfied(boundary + timedelta(days=1), received_on, min_months) is True
    assert remaining_term_satisfied(boundary - timedelta(days=1), received_on, min_months) is False


@FAST
@given(DATES, st.integers(min_value=0, max_value=1200))
def test_an_indeterminate_sentence_always_satisfies_the_remaining_term(received_on, min_months):
    assert remaining_term_satisfied(None, received_on, min_months) is True


def test_twelve_months_from_a_leap_day_ends_on_february_28():
    received_on = date(2024, 2, 29)
    assert remaining_term_satisfied(date(2025, 2, 28), received_on, 12) is True
    assert remaining_term_satisfied(date(2025, 2, 27), received_on, 12) is False


def test_twelve_months_is_a_calendar_year_not_365_days():
    # 2023-03-01 + 365 days = 2024-02-29, one day short of the calendar year 2024-03-01.
    received_on = date(2023, 3, 1)
    assert received_on + timedelta(days=365) == date(2024, 2, 29)
    assert remaining_term_satisfied(date(2024, 2, 29), received_on, 12) is False
    assert remaining_term_satisfied(date(2024, 3, 1), received_on, 12) is True


def test_six_months_is_calendar_months_not_183_days():
    # 2025-08-31 + 6 months = 2026-02-28 (clamped), which is only 181 days later.
    received_on = date(2025, 8, 31)
    assert remaining_term_satisfied(date(2026, 2, 28), received_on, 6) is True
    assert remaining_term_satisfied(date(2026, 2, 27), received_on, 6) is False


@FAST
@given(DATES, st.integers(min_value=1, max_value=20))
def test_the_minimum_in_years_never_uses_a_365_day_year(received_on, years):
    # the boundary is the calendar date, whatever the number of leap days in between
    boundary = oracle_add_months(received_on, 12 * years)
    assert remaining_term_satisfied(boundary, received_on, 12 * years) is True
    assert remaining_term_satisfied(boundary - timedelta(days=1), received_on, 12 * years) is False
