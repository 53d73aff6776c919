"""Every input is bounded (API.md, "Sizes"), so that no case can outgrow what the engine stores
and no sentence can overflow date arithmetic; a reference begins with the opening state's code
(API.md, "References"). Each bound: the value at the limit is accepted, the one just over is
refused with the field named, as the API reports it (api.errors.problems_of)."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from datetime import date, timedelta
from typing import Any

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel, ValidationError

from api.errors import problems_of
from domain.assistance import (
    AssistanceRequest, AssistanceWithdrawal, Authorisation, InformationAnswer, MeasureResult, Review,
)
from domain.eligibility import assess_eligibility, release_date_of
from domain.intake import assistance_problems, reference_problems, transfer_problems
from domain.reference import reference
from domain.term import full_term_end
from domain.transfer import (
    Declaration, Decision, HandoverConfirmation, LegalReview, TransferRequest, Withdrawal,
)
from treatyflow.samples import ASSISTANCE, BASE

REF = reference()
TODAY = date(2026, 11, 20)
SHA = "ab" * 32

TRANSFER = {**BASE, "reference": "KZ-UZ-2026-0001"}
REQUEST = {**ASSISTANCE, "reference": "FR-KZ-2026-0042"}
OFFENCE = BASE["judgment"]["offences"][0]
OBLIGATION = {"description": "court fine", "amount": "1500.00", "currency": "KZT", "settled": True}
PROCEEDING = {"kind": "investigation", "description": "another case"}
EVIDENCE = {"item_id": "e1", "description": "bank statement", "sha256": SHA, "collected_on": "2026-11-02"}
RESULT = {"outcome": "executed", "evidence": [EVIDENCE], "note": ""}
POSTPONE = {"decision": "postpone", "postpone_until": "2027-01-10", "note": "a trial is under way"}
QUESTIONS = {"decision": "request_information", "questions": "Which accounts?", "note": ""}


def measures(n: int) -> list[dict[str, Any]]:
    return [{"id": f"m{i}", "kind": "interrogation", "description": "Hear a witness", "subject": "a witness"}
            for i in range(n)]


def evidence(n: int) -> list[dict[str, Any]]:
    return [{**EVIDENCE, "item_id": f"e{i}"} for i in range(n)]


def setting(body: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    """A copy of ``body`` with the value at a dotted path (list indices as numbers) replaced."""
    body = copy.deepcopy(body)
    *parents, last = path.split(".")
    target: Any = body
    for part in parents:
        target = target[int(part)] if isinstance(target, list) else target[part]
    if isinstance(target, list):
        target[int(last)] = value
    else:
        target[last] = value
    return body


def validate(model: type[BaseModel], body: dict[str, Any]) -> BaseModel:
    """As the API reads a body: strict, from JSON."""
    return model.model_validate_json(json.dumps(body), strict=True)


def problems(model: type[BaseModel], body: dict[str, Any]) -> list[tuple[str, str]]:
    with pytest.raises(ValidationError) as refused:
        validate(model, body)
    return problems_of(refused.value)


# (id, model, base body, field path, value at the limit, value just over it, message)
Sized = Callable[[int], Any]
TEXT, NAME = "may have at most 10,000 characters", "may have at most 300 characters"


def chars(n: int) -> str:
    return "x" * n


BOUNDS: list[tuple[str, type[BaseModel], dict[str, Any], str, Sized, int, str]] = [
    # the transfer request
    ("offences", TransferRequest, TRANSFER, "judgment.offences", lambda n: [OFFENCE] * n, 50,
     "may have at most 50 offences"),
    ("financial obligations", TransferRequest, TRANSFER, "financial_obligations", lambda n: [OBLIGATION] * n, 50,
     "may have at most 50 financial obligations"),
    ("pending proceedings", TransferRequest, TRANSFER, "pending_proceedings", lambda n: [PROCEEDING] * n, 20,
     "may have at most 20 pending proceedings"),
    ("citizenships", TransferRequest, TRANSFER, "person.citizenships", lambda n: ["UZ"] * n, 20,
     "may have at most 20 citizenships"),
    ("full name", TransferRequest, TRANSFER, "person.full_name", chars, 300, NAME),
    ("court", TransferRequest, TRANSFER, "judgment.court", chars, 300, NAME),
    ("offence description", TransferRequest, TRANSFER, "judgment.offences.0.description", chars, 10_000, TEXT),
    ("obligation description", TransferRequest, {**TRANSFER, "financial_obligations": [OBLIGATION]},
     "financial_obligations.0.description", chars, 10_000, TEXT),
    ("proceeding description", TransferRequest, {**TRANSFER, "pending_proceedings": [PROCEEDING]},
     "pending_proceedings.0.description", chars, 10_000, TEXT),
    ("years", TransferRequest, TRANSFER, "sentence.years", int, 100, "may be at most 100 years"),
    ("months", TransferRequest, TRANSFER, "sentence.months", int, 1_200, "may be at most 1,200 months"),
    ("days", TransferRequest, TRANSFER, "sentence.days", int, 36_600, "may be at most 36,600 days"),
    ("pre-trial credit", TransferRequest, TRANSFER, "sentence.pretrial_credit_days", int, 36_600,
     "may be at most 36,600 days"),
    ("remission", TransferRequest, TRANSFER, "sentence.remission_days", int, 36_600, "may be at most 36,600 days"),
    # the acts on a transfer
    ("legal review note", LegalReview, {"dual_criminality": "satisfied", "note": ""}, "note", chars, 10_000, TEXT),
    ("decision note", Decision, {"state": "UZ", "decision": "consent", "note": ""}, "note", chars, 10_000, TEXT),
    ("handover place", HandoverConfirmation, {"completed_on": "2026-11-20", "place": "Zhibek Zholy"}, "place",
     chars, 300, NAME),
    ("withdrawal reason", Withdrawal, {"withdrawn_on": "2026-11-20", "reason": "x"}, "reason", chars, 10_000, TEXT),
    # the assistance request
    ("issuing authority", AssistanceRequest, REQUEST, "issuing_authority", chars, 300, NAME),
    ("purpose", AssistanceRequest, REQUEST, "purpose", chars, 10_000, TEXT),
    ("facts", AssistanceRequest, REQUEST, "facts", chars, 10_000, TEXT),
    ("assistance offences", AssistanceRequest, REQUEST, "offences", lambda n: [OFFENCE] * n, 50,
     "may have at most 50 offences"),
    ("assistance offence description", AssistanceRequest, REQUEST, "offences.0.description", chars, 10_000, TEXT),
    ("measures", AssistanceRequest, REQUEST, "measures", measures, 50, "may have at most 50 measures"),
    ("measure description", AssistanceRequest, REQUEST, "measures.0.description", chars, 10_000, TEXT),
    ("measure subject", AssistanceRequest, REQUEST, "measures.0.subject", chars, 10_000, TEXT),
    # the acts on a request
    ("questions", Review, QUESTIONS, "questions", chars, 10_000, TEXT),
    ("review note", Review, POSTPONE, "note", chars, 10_000, TEXT),
    ("answers", InformationAnswer, {"answers": "x"}, "answers", chars, 10_000, TEXT),
    ("authorisation note", Authorisation, {"granted": True, "note": ""}, "note", chars, 10_000, TEXT),
    ("evidence items", MeasureResult, RESULT, "evidence", evidence, 200, "may have at most 200 evidence items"),
    ("evidence description", MeasureResult, RESULT, "evidence.0.description", chars, 10_000, TEXT),
    ("result note", MeasureResult, RESULT, "note", chars, 10_000, TEXT),
    ("assistance withdrawal reason", AssistanceWithdrawal, {"reason": "x"}, "reason", chars, 10_000, TEXT),
]


@pytest.mark.parametrize(("model", "body", "path", "sized", "limit", "message"),
                         [pytest.param(*row[1:], id=row[0]) for row in BOUNDS])
def test_a_value_at_the_limit_is_accepted_and_one_over_it_is_refused_naming_the_field(
        model, body, path, sized, limit, message):
    validate(model, setting(body, path, sized(limit)))
    assert problems(model, setting(body, path, sized(limit + 1))) == [(path, f"{path} {message}")]


def test_text_is_measured_without_the_surrounding_blanks():
    validate(TransferRequest, setting(TRANSFER, "person.full_name", "  " + "x" * 300 + "\n"))


# ---- dates -----------------------------------------------------------------------------------

# (id, model, base body, field path); the other dates of the body are early enough that the
# cross-field rules (judgment not after receipt, respond_by not before it) hold at 1900-01-01.
EARLY_TRANSFER = {**TRANSFER, "judgment": {**BASE["judgment"], "date": "1900-01-01"}}
DATES: list[tuple[str, type[BaseModel], dict[str, Any], str]] = [
    ("date of birth", TransferRequest, TRANSFER, "person.date_of_birth"),
    ("judgment date", TransferRequest, TRANSFER, "judgment.date"),
    ("sentence start", TransferRequest, TRANSFER, "sentence.start_date"),
    ("declaration signed", TransferRequest, TRANSFER, "declaration.signed_on"),
    ("transfer received", TransferRequest, EARLY_TRANSFER, "received_on"),
    ("declaration act", Declaration, BASE["declaration"], "signed_on"),
    ("handover completed", HandoverConfirmation, {"completed_on": "2026-11-20", "place": "Zhibek Zholy"},
     "completed_on"),
    ("withdrawn", Withdrawal, {"withdrawn_on": "2026-11-20", "reason": "changed mind"}, "withdrawn_on"),
    ("assistance received", AssistanceRequest, REQUEST, "received_on"),
    ("respond by", AssistanceRequest, {**REQUEST, "received_on": "1900-01-01"}, "respond_by"),
    ("postpone until", Review, POSTPONE, "postpone_until"),
    ("evidence collected", MeasureResult, RESULT, "evidence.0.collected_on"),
]


@pytest.mark.parametrize(("model", "body", "path"), [pytest.param(*row[1:], id=row[0]) for row in DATES])
def test_dates_are_from_1900_on(model, body, path):
    validate(model, setting(body, path, "1900-01-01"))
    assert problems(model, setting(body, path, "1899-12-31")) == [(path, f"{path} must be 1900-01-01 or later")]
    assert problems(model, setting(body, path, "0001-01-01")) == [(path, f"{path} must be 1900-01-01 or later")]


def test_the_sentence_of_the_attack_is_refused_by_validation():
    """A sentence begun in year 1 with the largest credits ran the full-term end below date.min:
    the eligibility activity raised OverflowError and was retried for ever."""
    attack = {"indeterminate": False, "start_date": "0001-01-01", "years": 0, "months": 0, "days": 1,
              "pretrial_credit_days": 36_500, "remission_days": 36_500}
    with pytest.raises(OverflowError):
        full_term_end(date(1, 1, 1), 0, 0, 1, 36_500, 36_500)
    assert problems(TransferRequest, {**TRANSFER, "sentence": attack}) == [
        ("sentence.start_date", "sentence.start_date must be 1900-01-01 or later")]


def test_the_earliest_sentence_with_the_largest_credits_still_has_a_release_date():
    sentence = {"indeterminate": False, "start_date": "1900-01-01", "years": 0, "months": 0, "days": 1,
                "pretrial_credit_days": 36_600, "remission_days": 36_600}
    request = validate(TransferRequest, {**TRANSFER, "sentence": sentence})
    assert release_date_of(request) == date(1900, 1, 2) - timedelta(days=73_200)


# ---- the date of birth lies in the past (it needs the clock: intake, not the model) -------------


@pytest.mark.parametrize(("born", "refused"), [
    (TODAY - timedelta(days=1), False), (TODAY, True), (TODAY + timedelta(days=1), True), (date(9999, 12, 31), True),
])
def test_the_date_of_birth_lies_in_the_past(born, refused):
    request = validate(TransferRequest, setting(TRANSFER, "person.date_of_birth", born.isoformat()))
    named = [p for p in transfer_problems(request, TODAY, REF) if p[0] == "person.date_of_birth"]
    assert named == ([("person.date_of_birth", "person.date_of_birth must lie in the past")] if refused else [])


# ---- respond_by lies at most 10 years after received_on (no timer of millennia) ----------------

RESPOND_BY_TOO_LATE = ("respond_by", "respond_by may not lie more than 10 years after received_on")


@pytest.mark.parametrize(("received", "respond_by", "refused"), [
    (date(2026, 11, 1), date(2036, 11, 1), False),  # exactly 10 years: the limit
    (date(2026, 11, 1), date(2036, 11, 2), True),  # a day over it
    (date(2026, 11, 1), date(2027, 2, 1), False),
    (date(2026, 11, 1), date(9999, 12, 31), True),  # the timer of millennia
    (date(2024, 2, 29), date(2034, 2, 28), False),  # from a leap day: 28 February ten years on
    (date(2024, 2, 29), date(2034, 3, 1), True),
])
def test_respond_by_lies_at_most_10_years_after_received_on(received, respond_by, refused):
    today = max(received, TODAY)
    request = validate(AssistanceRequest, {**REQUEST, "received_on": received.isoformat(),
                                           "respond_by": respond_by.isoformat()})
    assert assistance_problems(request, today, REF) == ([RESPOND_BY_TOO_LATE] if refused else [])


def test_respond_by_far_ahead_of_a_received_on_in_the_far_future_does_not_overflow():
    """received_on near the last date there is: only its own problem, no overflow computing the limit."""
    request = validate(AssistanceRequest, {**REQUEST, "received_on": "9995-01-01", "respond_by": "9999-12-31"})
    assert assistance_problems(request, TODAY, REF) == [("received_on", "received_on may not lie in the future")]


# ---- references ------------------------------------------------------------------------------


@pytest.mark.parametrize(("ref", "state", "ok"), [
    ("KZ-UZ-2026-0001", "KZ", True),
    ("FR-KZ-2026-0042", "FR", True),
    ("UZ-KZ-2026-0001", "UZ", True),
    ("KZ-x", "KZ", True),
    ("UZ-KZ-2026-0001", "KZ", False),  # another state's reference
    ("KZ-UZ-2026-0001", "UZ", False),
    ("kz-UZ-2026-0001", "KZ", False),  # the code is upper case
    ("KZUZ-2026-0001", "KZ", False),  # no hyphen after the code
    ("KZ_UZ-2026-0001", "KZ", False),
    ("XKZ-2026-0001", "KZ", False),
    ("T-0123456789ab", "KZ", False),
])
def test_a_reference_begins_with_the_opening_states_code(ref, state, ok):
    expected = [] if ok else [("reference", f"reference must begin with {state}- (the code of the state that "
                                            f"opens the case), such as {state}-2026-0001")]
    assert reference_problems(ref, state) == expected


def test_the_example_of_the_message_is_itself_a_good_reference():
    (_, message), = reference_problems("X-1", "FR")
    example_ref = message.rsplit(" ", 1)[1]
    assert reference_problems(example_ref, "FR") == []
    validate(AssistanceRequest, {**REQUEST, "reference": example_ref})


# ---- no in-bounds sentence overflows the eligibility check ------------------------------------

TREATY = REF.treaty("kz-uz-transfer-2021")
# the latest start transfer_problems lets through (later is "implausibly far in the future")
LATEST_START = date(TODAY.year + 100, 1, 1)
EARLIEST = date(1900, 1, 1)


@st.composite
def sentences(draw) -> dict[str, Any]:
    indeterminate = draw(st.booleans())
    years, months, days = (0, 0, 0) if indeterminate else (
        draw(st.integers(0, 100)), draw(st.integers(0, 1_200)), draw(st.integers(0, 36_600)))
    if not indeterminate and not (years or months or days):
        days = 1
    return {"indeterminate": indeterminate,
            "start_date": draw(st.dates(EARLIEST, LATEST_START)).isoformat(),
            "years": years, "months": months, "days": days,
            "pretrial_credit_days": draw(st.integers(0, 36_600)),
            "remission_days": draw(st.integers(0, 36_600))}


@st.composite
def transfer_requests(draw) -> dict[str, Any]:
    received = draw(st.dates(EARLIEST, TODAY))
    judged = draw(st.dates(EARLIEST, received))
    born = draw(st.dates(EARLIEST, TODAY - timedelta(days=1)))
    return {**TRANSFER, "received_on": received.isoformat(), "sentence": draw(sentences()),
            "person": {**BASE["person"], "date_of_birth": born.isoformat()},
            "judgment": {**BASE["judgment"], "date": judged.isoformat()},
            "declaration": {**BASE["declaration"], "signed_on": draw(st.dates(EARLIEST, TODAY)).isoformat()}}


def extreme(start: date, received: date, years: int, months: int, days: int, credits: int) -> dict[str, Any]:
    return {**TRANSFER, "received_on": received.isoformat(),
            "judgment": {**BASE["judgment"], "date": EARLIEST.isoformat()},
            "sentence": {"indeterminate": False, "start_date": start.isoformat(), "years": years, "months": months,
                         "days": days, "pretrial_credit_days": credits, "remission_days": credits}}


@settings(max_examples=300, deadline=None)
@given(body=transfer_requests())
@example(body=extreme(EARLIEST, EARLIEST, 0, 0, 1, 36_600))  # the earliest end there is
@example(body=extreme(LATEST_START, TODAY, 100, 1_200, 36_600, 0))  # the latest
@example(body=extreme(date(1900, 1, 31), EARLIEST, 0, 1, 0, 0))  # a clamped month end
def test_every_request_that_validates_gets_an_eligibility_assessment(body):
    request = validate(TransferRequest, body)
    assert transfer_problems(request, TODAY, REF) == []
    eligibility = assess_eligibility(request, TREATY, REF, request.received_on)
    assert len(eligibility.conditions) == 6
    assert (eligibility.release_date is None) == request.sentence.indeterminate
