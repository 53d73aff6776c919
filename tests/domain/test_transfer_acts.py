"""Who asked, enforcement in the administering state and the handover point, without Temporal
(domain/transfer.py, domain/eligibility.py): the shapes a client may send, the checks that need
the case, the converted release date, and the comparison of places."""

from __future__ import annotations

import hashlib
import json
from datetime import date

import pytest
from pydantic import ValidationError

from domain.eligibility import release_date_of
from domain.transfer import (
    TO_BE_AGREED, Decision, HandoverConfirmation, Term, TransferRequest, enforcement_problem, handover_problem,
    is_arranged_point, request_digest,
)
from treatyflow.samples import transfer_body, transfer_request

KZ_UZ_POINT = "Zhibek Zholy (KZ) \u2013 Gishtkuprik (UZ) border crossing"


def problem_field(exc: ValidationError) -> str:
    """The field a model-level error names: its message begins with ``field:``."""
    [error] = exc.errors()
    return error["msg"].removeprefix("Value error, ").split(":", 1)[0] if not error["loc"] else \
        ".".join(str(p) for p in error["loc"])


# ---- who asked -------------------------------------------------------------------------------


def test_a_request_says_who_asked_and_defaults_to_the_person():
    assert transfer_request().initiated_by == "sentenced_person"
    assert transfer_request(initiated_by="administering_state").initiated_by == "administering_state"
    with pytest.raises(ValidationError):
        transfer_request(initiated_by="prosecutor")


def test_a_case_cannot_follow_itself():
    body = transfer_body()
    with pytest.raises(ValidationError) as exc:
        TransferRequest.model_validate({**body, "previous_reference": body["reference"]})
    assert problem_field(exc.value) == "previous_reference"


def test_the_digest_of_a_request_opened_before_the_new_fields_is_unchanged():
    """A repeat of a request opened before ``initiated_by`` existed must still be found by its seal."""
    request = transfer_request()
    old = {k: v for k, v in request.model_dump(mode="json").items() if k not in ("initiated_by", "previous_reference")}
    old["person"].pop("language")
    encoded = json.dumps(old, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    assert request_digest(request) == hashlib.sha256(encoded.encode()).hexdigest()
    assert request_digest(request.model_copy(update={"initiated_by": "sentencing_state"})) != request_digest(request)
    assert request_digest(request.model_copy(update={"previous_reference": "KZ-1"})) != request_digest(request)
    english = request.model_copy(update={"person": request.person.model_copy(update={"language": "en"})})
    assert request_digest(english) != request_digest(request)


# ---- enforcement -----------------------------------------------------------------------------


@pytest.mark.parametrize("body, field", [
    ({"decision": "refuse", "grounds": ["state_declined"], "enforcement": "continued"}, "enforcement"),
    ({"decision": "consent", "enforcement": "converted"}, "converted_sentence"),
    ({"decision": "consent", "converted_sentence": {"years": 1}}, "converted_sentence"),
    ({"decision": "consent", "enforcement": "continued", "converted_sentence": {"years": 1}}, "converted_sentence"),
    ({"decision": "consent", "enforcement": "converted", "converted_sentence": {}}, "converted_sentence"),
    ({"decision": "consent", "enforcement": "converted", "converted_sentence": {"years": 101}},
     "converted_sentence.years"),
    ({"decision": "consent", "enforcement": "converted", "converted_sentence": {"months": -1}},
     "converted_sentence.months"),
    ({"decision": "consent", "enforcement": "suspended"}, "enforcement"),
])
def test_the_shape_of_an_enforcement_choice(body, field):
    with pytest.raises(ValidationError) as exc:
        Decision.model_validate({"state": "UZ", **body})
    assert problem_field(exc.value) == field


def test_only_the_administering_state_states_enforcement():
    request = transfer_request()  # KZ sentenced, UZ administers: 5 years
    assert enforcement_problem(Decision(state="UZ", decision="consent", enforcement="continued"), request) is None
    assert enforcement_problem(Decision(state="KZ", decision="consent"), request) is None
    field, message = enforcement_problem(Decision(state="KZ", decision="consent", enforcement="continued"), request)
    assert field == "enforcement" and "administering state (UZ)" in message


@pytest.mark.parametrize("term, aggravates", [
    (Term(years=5), False), (Term(years=4, months=12), False), (Term(years=4, months=11, days=30), False),
    (Term(years=5, days=1), True), (Term(months=61), True), (Term(days=1), False), (Term(days=1827), False), (Term(days=1828), True),
])
def test_a_converted_term_may_not_end_later_than_the_imposed_one(term, aggravates):
    request = transfer_request()  # 5 years from 2024-01-15: 2029-01-15 before credits (1,827 days)
    decision = Decision(state="UZ", decision="consent", enforcement="converted", converted_sentence=term)
    problem = enforcement_problem(decision, request)
    assert (problem is not None and problem[0] == "converted_sentence") == aggravates, problem


def test_an_indeterminate_sentence_may_be_converted_into_any_term():
    request = transfer_request(sentence={"indeterminate": True, "start_date": "2010-01-01"})
    decision = Decision(state="UZ", decision="consent", enforcement="converted", converted_sentence=Term(years=25))
    assert enforcement_problem(decision, request) is None
    assert release_date_of(request) is None
    assert release_date_of(request, Term(years=25)) == date(2035, 1, 1)


def test_a_converted_term_runs_from_the_same_start_with_the_same_credits():
    request = transfer_request()  # 5 years from 2024-01-15, less 120 days of pre-trial credit
    assert release_date_of(request) == date(2028, 9, 17)
    assert release_date_of(request, Term(years=4)) == date(2027, 9, 17)
    assert release_date_of(request, Term(years=3, months=6, days=10)) == date(2027, 3, 27)


# ---- the handover point ------------------------------------------------------------------------


@pytest.mark.parametrize("place, same", [
    (KZ_UZ_POINT, True),
    ("zhibek zholy (kz) - gishtkuprik (uz) border crossing", True),
    ("Zhibek Zholy", True), ("ZHIBEK-ZHOLY", True), ("zhibekzholy", True), ("Zhibek Zholy (KZ)", True),
    ("Gishtkuprik", True), ("Gishtkuprik border crossing", True), ("Zhibek Zholy – Gishtkuprik", True),
    ("Tashkent airport", False), ("Zhibek", False), ("Zhibek Zholy Street, Almaty", False), ("Gisht", False),
])
def test_a_place_is_the_arranged_point_whatever_its_case_spaces_and_dashes_or_one_side_of_it(place, same):
    assert is_arranged_point(place, KZ_UZ_POINT) is same


def test_a_handover_elsewhere_needs_a_note_saying_why():
    elsewhere = HandoverConfirmation(completed_on=date(2026, 12, 1), place="Tashkent airport")
    field, message = handover_problem(elsewhere, KZ_UZ_POINT)
    assert field == "note" and KZ_UZ_POINT in message
    assert handover_problem(elsewhere.model_copy(update={"note": "the crossing was closed"}), KZ_UZ_POINT) is None
    assert handover_problem(elsewhere.model_copy(update={"place": "Gishtkuprik"}), KZ_UZ_POINT) is None
    assert handover_problem(elsewhere, TO_BE_AGREED) is None  # no point named: wherever it took place
