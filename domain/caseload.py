"""How long cases stay in each stage: what a case keeps of it (``StageTimes``), how that is written
in the search attribute of the same name, and the median and 90th percentile the caseload figures
give. Pure: the workflows keep the times, the API reads them back from visibility lists.

The search attribute's value is a Keyword (PostgreSQL visibility stores it as VARCHAR(255)), so it
holds stage indexes and whole seconds, never names: ``0=86400 1=3600 3@1765100000`` — for each
stage the case has left, its index in the kind's stages (the order of the view's ``stage``
literal, which is so part of the value: a new stage goes at its end) and the whole seconds it spent there in all (a stage visited twice: the sum), then the
stage it is in with the moment it entered it (seconds since the epoch, UTC). A closed case has no
``@`` item: no time is spent in a terminal stage. At most one ``=`` item per stage and one ``@``
item, each at most 14 characters with its space (two digits of index, ten of seconds until 2286):
a kind of up to 16 stages stays under 255 characters whatever its cases do (tests/domain)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import datetime, timedelta, timezone

from pydantic import BaseModel

EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


class StageTimes(BaseModel):
    """What a case spent in the stages it has left (``spent``, by stage), and the stage it is in
    with the moment it entered it (``current``, ``entered``; None once closed)."""

    spent: dict[str, timedelta] = {}
    current: str | None = None
    entered: datetime | None = None

    def enter(self, stage: str, at: datetime, *, closing: bool = False) -> None:
        """The case is in ``stage`` from ``at`` (nothing changes if it already was); ``closing``:
        a terminal stage, where no time is spent, so it is not kept as the current one."""
        if stage == self.current:
            return
        if self.current is not None and self.entered is not None:
            self.spent[self.current] = self.spent.get(self.current, timedelta()) + (at - self.entered)
        self.current, self.entered = (None, None) if closing else (stage, at)

    def value(self, stages: Sequence[str]) -> str:
        """The search attribute's value (the module's docstring); ``stages``: the kind's, in order."""
        items = [f"{stages.index(s)}={int(t.total_seconds())}" for s, t in
                 sorted(self.spent.items(), key=lambda st: stages.index(st[0]))]
        if self.current is not None and self.entered is not None:
            items.append(f"{stages.index(self.current)}@{(self.entered - EPOCH) // timedelta(seconds=1)}")
        return " ".join(items)


def read_stage_times(value: str, stages: Sequence[str]) -> StageTimes | None:
    """The times a StageTimes value holds (whole seconds), or None for a value this code never
    wrote (an index beyond ``stages``, a malformed item): such a case is left out of the times."""
    read = StageTimes()
    for item in value.split():
        index, mark, number = item.partition("=") if "=" in item else item.partition("@")
        if not (mark and index.isdigit() and number.isdigit() and int(index) < len(stages)):
            return None
        stage = stages[int(index)]
        if mark == "=":
            read.spent[stage] = timedelta(seconds=int(number))
        else:
            read.current, read.entered = stage, EPOCH + timedelta(seconds=int(number))
    return read


class Spread(BaseModel):
    """How long: the number of cases, and the median and 90th percentile (nearest rank) of their
    times, in the unit given (whole seconds in the API)."""

    cases: int
    median: int
    p90: int


def nearest_rank(ordered: Sequence[int], percent: int) -> int:
    """The ``percent``-th percentile by the nearest-rank method: the smallest value at least
    ``percent`` % of the values are not greater than (always one of the values; the median of an
    even number is the lower middle one)."""
    return ordered[max(1, math.ceil(percent * len(ordered) / 100)) - 1]


def spread(samples: Sequence[int]) -> Spread | None:
    """The count, median and p90 of ``samples``; None when there are none."""
    if not samples:
        return None
    ordered = sorted(samples)
    return Spread(cases=len(ordered), median=nearest_rank(ordered, 50), p90=nearest_rank(ordered, 90))
