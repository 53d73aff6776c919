"""Checks of a request that need the clock or the reference data, so they are not in the models
(a model must validate the same way when a workflow replays it months later)."""

from __future__ import annotations

from datetime import date

from domain.assistance import AssistanceRequest
from domain.reference import Reference
from domain.transfer import TransferRequest

Problem = tuple[str, str]  # (field path, message)


def not_in_future(field: str, day: date | None, today: date) -> list[Problem]:
    return [(field, f"{field} may not lie in the future")] if day and day > today else []


RESPOND_WITHIN_YEARS = 10  # the latest respond_by, after received_on: no timer of millennia


def years_after(day: date, years: int) -> date | None:
    """The same calendar day ``years`` later (29 February → 28 February in a common year); None
    past the last date there is."""
    if day.year + years > date.max.year:
        return None
    try:
        return day.replace(year=day.year + years)
    except ValueError:  # 29 February
        return day.replace(year=day.year + years, day=28)


def unknown_iccs(field: str, code: str) -> Problem:
    return (field, f"{field} must be a code of ICCS 1.0, and {code} is not one: give a listed code, or leave iccs "
                   "out")


def reference_problems(reference: str, opening_state: str) -> list[Problem]:
    """A case's reference begins with the code of the state that opens it and a hyphen
    (``KZ-UZ-2026-0001`` opened by Kazakhstan): no state can occupy or probe another's references."""
    prefix = f"{opening_state}-"
    if reference.startswith(prefix):
        return []
    return [("reference", f"reference must begin with {prefix} (the code of the state that opens the case), "
                          f"such as {prefix}2026-0001")]


def transfer_problems(request: TransferRequest, today: date, ref: Reference) -> list[Problem]:
    """``request.received_on`` must already be set (defaults applied)."""
    problems = not_in_future("received_on", request.received_on, today)
    if request.person.date_of_birth >= today:
        problems.append(("person.date_of_birth", "person.date_of_birth must lie in the past"))
    if request.declaration:
        problems += not_in_future("declaration.signed_on", request.declaration.signed_on, today)
    if request.received_on and request.judgment.date > request.received_on:
        problems.append(("judgment.date", "judgment.date may not lie after received_on"))
    if request.sentence.start_date > (latest_start := date(today.year + 100, 1, 1)):
        problems.append(("sentence.start_date", f"sentence.start_date may not lie after {latest_start}"))
    for i, offence in enumerate(request.judgment.offences):
        if offence.iccs and not ref.iccs.is_valid(offence.iccs):
            problems.append(unknown_iccs(f"judgment.offences.{i}.iccs", offence.iccs))
    return problems


def assistance_problems(request: AssistanceRequest, today: date, ref: Reference) -> list[Problem]:
    """``request.received_on`` must already be set (defaults applied)."""
    problems = not_in_future("received_on", request.received_on, today)
    if request.respond_by:
        if request.received_on and request.respond_by < request.received_on:
            problems.append(("respond_by", "respond_by may not lie before received_on"))
        elif request.respond_by < today:
            problems.append(("respond_by", "respond_by may not lie in the past"))
        elif request.received_on and (latest := years_after(request.received_on, RESPOND_WITHIN_YEARS)) \
                and request.respond_by > latest:
            problems.append(("respond_by", f"respond_by may not lie more than {RESPOND_WITHIN_YEARS} years "
                                           f"after received_on"))
    for i, offence in enumerate(request.offences):
        if offence.iccs and not ref.iccs.is_valid(offence.iccs):
            problems.append(unknown_iccs(f"offences.{i}.iccs", offence.iccs))
    return problems
