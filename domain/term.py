"""Calendar arithmetic for sentences: the full-term end and the remaining-term condition."""

from __future__ import annotations

import calendar
from datetime import date, timedelta


def add_months(start: date, months: int) -> date:
    """Add whole months in one step, clamping the day to the month's last day
    (2024-01-31 + 1 month = 2024-02-29)."""
    index = start.year * 12 + (start.month - 1) + months
    year, month = divmod(index, 12)
    month += 1
    return date(year, month, min(start.day, calendar.monthrange(year, month)[1]))


def full_term_end(start_date: date, years: int, months: int, days: int,
                  pretrial_credit_days: int = 0, remission_days: int = 0) -> date:
    """start + (12·years + months) in one clamped step, then + days, then − credits."""
    end = add_months(start_date, 12 * years + months) + timedelta(days=days)
    return end - timedelta(days=pretrial_credit_days + remission_days)


def remaining_term_satisfied(release_date: date | None, received_on: date, min_months: int) -> bool:
    """At least ``min_months`` left on ``received_on``: release ≥ received_on + min_months.
    ``release_date`` None means an indeterminate sentence, which always satisfies it."""
    return release_date is None or release_date >= add_months(received_on, min_months)
