"""Intake steps that read the reference data: which treaty governs, who acts for each state,
and transfer eligibility. Run as activities so the result is recorded in the case history and a
later change of the registry never changes a running case."""

from __future__ import annotations

from datetime import date
from typing import Literal

from pydantic import BaseModel
from temporalio import activity
from temporalio.exceptions import ApplicationError

from domain.assistance import AssistanceRequest, MeasureView, scope
from domain.eligibility import Eligibility, assess_eligibility
from domain.parties import StateAuthorities, state_authorities
from domain.reference import Treaty, reference
from domain.transfer import TransferRequest
from domain.treaties import resolve_treaty as resolve


INCOMPUTABLE = "incomputable_case_data"  # retrying cannot mend it: a person must look at the case


def permanent(err: Exception, what: str) -> ApplicationError:
    """A rule that cannot be computed for this case's data (a date out of range, an authority
    missing from the directory): never retried, the case shows it to a person."""
    return ApplicationError(f"{what} could not be computed: {type(err).__name__}", type=INCOMPUTABLE,
                            non_retryable=True)


class TreatyQuestion(BaseModel):
    kind: Literal["transfer", "assistance"]
    states: tuple[str, str]
    received_on: date


class TreatyAnswer(BaseModel):
    treaty: Treaty | None
    authorities: list[StateAuthorities]


@activity.defn(name="resolve_treaty")
async def resolve_treaty(question: TreatyQuestion) -> TreatyAnswer:
    ref = reference()
    treaty = resolve(ref.treaties, question.kind, *question.states, question.received_on)
    known = [s for s in question.states if any(a.role == "central_authority" for a in ref.authorities_of(s))]
    return TreatyAnswer(treaty=treaty, authorities=[state_authorities(ref, s) for s in known])


class EligibilityQuestion(BaseModel):
    request: TransferRequest
    treaty_id: str
    received_on: date


@activity.defn(name="check_eligibility")
async def check_eligibility(question: EligibilityQuestion) -> Eligibility:
    ref = reference()
    treaty = ref.treaty(question.treaty_id)
    if treaty is None:
        raise ApplicationError(f"treaty {question.treaty_id} is not in the registry", type="unknown_treaty",
                               non_retryable=True)
    try:
        return assess_eligibility(question.request, treaty, ref, question.received_on)
    except (ArithmeticError, ValueError, LookupError) as err:
        raise permanent(err, "eligibility") from None


class ScopeQuestion(BaseModel):
    request: AssistanceRequest
    treaty_id: str


@activity.defn(name="check_assistance_scope")
async def check_assistance_scope(question: ScopeQuestion) -> list[MeasureView]:
    """Each measure against the treaty (covered; dual criminality for the coercive ones it names),
    routed to its executing authority and, if coercive, to the court that authorises it."""
    ref = reference()
    treaty = ref.treaty(question.treaty_id)
    if treaty is None or treaty.kind != "assistance":
        raise ApplicationError(f"treaty {question.treaty_id} is not an assistance treaty in the registry",
                               type="unknown_treaty", non_retryable=True)
    try:
        return scope(question.request, treaty, ref)
    except (ArithmeticError, ValueError, LookupError) as err:
        raise permanent(err, "the scope of the request") from None
