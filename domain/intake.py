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


def transfer_problems(request: TransferRequest, today: date, ref: Reference) -> list[Problem]:
    """``request.received_on`` must already be set (defaults applied)."""
    problems = not_in_future("received_on", request.received_on, today)
    if request.declaration:
        problems += not_in_future("declaration.signed_on", request.declaration.signed_on, today)
    if request.received_on and request.judgment.date > request.received_on:
        problems.append(("judgment.date", "judgment.date may not lie after received_on"))
    if request.sentence.start_date > date(today.year + 100, 1, 1):
        problems.append(("sentence.start_date", "sentence.start_date is implausibly far in the future"))
    for i, offence in enumerate(request.judgment.offences):
        if offence.iccs and not ref.iccs.is_valid(offence.iccs):
            problems.append((f"judgment.offences.{i}.iccs", f"unknown ICCS code {offence.iccs}"))
    return problems


def assistance_problems(request: AssistanceRequest, today: date, ref: Reference) -> list[Problem]:
    """``request.received_on`` must already be set (defaults applied)."""
    problems = not_in_future("received_on", request.received_on, today)
    if request.respond_by:
        if request.received_on and request.respond_by < request.received_on:
            problems.append(("respond_by", "respond_by may not lie before received_on"))
        elif request.respond_by < today:
            problems.append(("respond_by", "respond_by may not lie in the past"))
    for i, offence in enumerate(request.offences):
        if offence.iccs and not ref.iccs.is_valid(offence.iccs):
            problems.append((f"offences.{i}.iccs", f"unknown ICCS code {offence.iccs}"))
    return problems
