"""How long cases stay in each stage: the median and p90 the caseload figures give (nearest rank),
and the StageTimes a case keeps and publishes (domain/caseload.py)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import get_args

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from domain.assistance import AssistanceStage
from domain.caseload import StageTimes, nearest_rank, read_stage_times, spread
from domain.transfer import TransferStage

T0 = datetime(2026, 12, 1, 9, 0, tzinfo=timezone.utc)
DAY = timedelta(days=1)
TRANSFER = get_args(TransferStage)


@pytest.mark.parametrize(("samples", "median", "p90"), [
    ([7], 7, 7),
    ([1, 2, 3, 4, 5, 6, 7, 8, 9, 10], 5, 9),  # ranks ceil(5) and ceil(9)
    ([4, 1, 3, 2], 2, 4),  # unsorted; an even count's median is the lower middle value
    ([10, 20], 10, 20),
    ([5] * 19 + [1000], 5, 5),  # one slow case of twenty does not move the p90
    ([5] * 18 + [1000] * 2, 5, 5),  # two of twenty: p90 is the 18th
    ([5] * 17 + [1000] * 3, 5, 1000),  # three: the 18th value is a slow one
])
def test_median_and_p90_by_nearest_rank(samples, median, p90):
    assert spread(samples).model_dump() == {"cases": len(samples), "median": median, "p90": p90}


def test_no_samples_no_spread():
    assert spread([]) is None


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(min_value=0, max_value=10**9), min_size=1, max_size=200), st.sampled_from([50, 90]))
def test_nearest_rank_is_the_smallest_value_with_that_share_at_or_below_it(samples, percent):
    ordered = sorted(samples)
    value = nearest_rank(ordered, percent)
    assert value in samples
    assert sum(s <= value for s in samples) * 100 >= percent * len(samples)
    assert sum(s < value for s in samples) * 100 < percent * len(samples)


def test_a_case_keeps_the_time_of_each_stage_it_left_and_sums_a_stage_visited_twice():
    times = StageTimes()
    times.enter("under_review", T0)
    times.enter("awaiting_information", T0 + 2 * DAY)
    times.enter("under_review", T0 + 5 * DAY + timedelta(seconds=1.9))
    times.enter("under_review", T0 + 6 * DAY)  # the stage it is in: nothing changes
    stages = get_args(AssistanceStage)
    assert times.value(stages) == f"0=172800 1=259201 0@{int((T0 + 5 * DAY).timestamp()) + 1}"
    times.enter("executing", T0 + 7 * DAY + timedelta(seconds=0.5))
    times.enter("completed", T0 + 10 * DAY, closing=True)
    # under_review: 2 days, then 2 days minus 1.9 s; whole seconds of the sum
    assert times.value(stages) == "0=345598 1=259201 3=259199"
    assert times.current is None


def test_a_value_reads_back_as_it_was_written():
    times = StageTimes()
    for day, stage in enumerate(("checking_eligibility", "awaiting_declaration", "checking_eligibility",
                                 "awaiting_consents")):
        times.enter(stage, T0 + day * DAY)
    read = read_stage_times(times.value(TRANSFER), TRANSFER)
    assert read.spent == {"checking_eligibility": 2 * DAY, "awaiting_declaration": DAY}
    assert (read.current, read.entered) == ("awaiting_consents", T0 + 3 * DAY)
    assert read_stage_times("", TRANSFER) == StageTimes()


@pytest.mark.parametrize("value", ["9=100", "0=1 x", "0=-5", "a@1", "0~3", "3@", "0=1.5"])
def test_a_value_this_code_never_wrote_is_left_out(value):
    assert read_stage_times(value, TRANSFER) is None


@pytest.mark.parametrize("stages", [TRANSFER, get_args(AssistanceStage)], ids=["transfer", "assistance"])
def test_the_longest_value_a_case_can_reach_fits_a_keyword(stages):
    """PostgreSQL visibility keeps a Keyword in VARCHAR(255): every stage left after ten digits of
    seconds (317 years), and a current stage entered in 2286, still fit."""
    times = StageTimes(spent={s: timedelta(seconds=9_999_999_999) for s in stages}, current=stages[-1],
                       entered=datetime(2286, 11, 20, tzinfo=timezone.utc))
    assert len(times.value(stages)) < 255
