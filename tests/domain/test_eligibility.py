"""Transfer eligibility, all at once (DOMAIN.md): every condition is evaluated and reported with
its basis, and a refusal carries all failing grounds, not the first one."""

from __future__ import annotations

import copy
import dataclasses
from datetime import date
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from domain.eligibility import Eligibility, assess_eligibility, release_date_of
from domain.reference import ArticleTable, Criminalisation, Treaty, reference
from domain.transfer import TransferRequest
from treatyflow import samples

CONDITIONS = ["nationality", "final_judgment", "remaining_term", "dual_criminality",
              "financial_obligations", "pending_proceedings"]
GROUNDS = ["not_national", "judgment_not_final", "insufficient_remaining_term", "no_dual_criminality",
           "outstanding_financial_obligations", "proceedings_pending"]
RECEIVED = date(2026, 11, 20)
FAST = settings(max_examples=100, deadline=None)

# The API.md example (the sample transfer): KZ→UZ, a UZ citizen, final judgment for theft, 5 years
# from 2024-01-15 with 120 days of pre-trial credit.
BASE: dict[str, Any] = {**samples.BASE, "reference": "KZ-UZ-2026-0001"}
UNSETTLED = {"description": "fine", "amount": "1500.00", "currency": "KZT", "settled": False}
SETTLED = {"description": "fine", "amount": "200.00", "currency": "KZT", "settled": True}


def request(**changes: Any) -> TransferRequest:
    """The base request with top-level fields replaced; nested dicts are merged one level deep."""
    body = copy.deepcopy(BASE)
    for key, value in changes.items():
        if isinstance(value, dict) and isinstance(body.get(key), dict):
            body[key] = {**body[key], **value}
        else:
            body[key] = value
    return TransferRequest.model_validate(body)


@pytest.fixture(scope="module")
def ref():
    return reference()


def treaty(treaty_id: str) -> Treaty:
    found = reference().treaty(treaty_id)
    assert found is not None, treaty_id
    return found


def assess(req: TransferRequest, treaty_id: str = "kz-uz-transfer-2021", received_on: date = RECEIVED,
           ref=None) -> Eligibility:
    return assess_eligibility(req, treaty(treaty_id), ref or reference(), received_on)


def no_0209_in_kazakhstan():
    """The shipped data with a Kazakhstan where 0209 is simply not criminal (the real data sends
    it to review, insult being still a crime): a KZ-UZ case whose dual criminality fails, the
    only treaty whose six conditions can all fail."""
    shipped = reference()
    kz = Criminalisation.model_validate({"state": "KZ", "not_criminal": [
        {"code": "0209", "source": "test fixture", "verified": True}]})
    return dataclasses.replace(shipped, criminalisation={**shipped.criminalisation, "KZ": kz})


def outcome(result: Eligibility, condition: str) -> str:
    return next(c.outcome for c in result.conditions if c.condition == condition)


def check_shape(result: Eligibility) -> None:
    assert [c.condition for c in result.conditions] == CONDITIONS
    assert all(c.basis.strip() for c in result.conditions)


# --- the happy path -------------------------------------------------------------------------


def test_happy_path_kz_to_uz(ref):
    result = assess(request())
    check_shape(result)
    assert result.grounds == []
    assert result.needs_review is False
    assert all(c.outcome == "satisfied" for c in result.conditions)
    assert result.release_date == date(2028, 9, 17)
    assert release_date_of(request()) == date(2028, 9, 17)


def test_the_basis_cites_the_governing_treaty(ref):
    result = assess(request())
    rules = treaty("kz-uz-transfer-2021").transfer
    by_condition = {c.condition: c.basis for c in result.conditions}
    assert by_condition["remaining_term"] == rules.min_remaining_months.source
    assert by_condition["nationality"] == rules.exclusive_nationality.source
    sources = {getattr(rules, name).source for name in type(rules).model_fields}
    assert set(by_condition.values()) <= sources


def test_the_remaining_term_is_judged_on_the_received_on_passed_in():
    # release 2028-09-17; KZ-UZ requires 12 months
    req = request()  # its own received_on is 2026-11-20
    assert outcome(assess(req, received_on=date(2027, 9, 17)), "remaining_term") == "satisfied"  # exactly 12
    late = assess(req, received_on=date(2027, 9, 18))
    assert outcome(late, "remaining_term") == "failed"
    assert late.grounds == ["insufficient_remaining_term"]


def test_the_treaty_minimum_applies(ref):
    # 2 years from 2025-06-01 → release 2027-06-01; on 2026-11-20 about 6.4 months remain:
    # enough for ETS 112 (6 months), not for KZ-UZ (12 months).
    sentence = {"start_date": "2025-06-01", "years": 2, "pretrial_credit_days": 0}
    short = assess(request(sentence=sentence))
    assert short.grounds == ["insufficient_remaining_term"]
    fr_it = request(sentencing_state="FR", administering_state="IT", person={"citizenships": ["IT"]},
                    sentence=sentence)
    assert assess(fr_it, "coe-ets-112").grounds == []


# --- every failing ground at once -----------------------------------------------------------


def test_all_failing_grounds_are_reported_at_once():
    req = request(
        sentencing_state="UZ", administering_state="KZ",
        person={"citizenships": ["UZ"]},                                  # not a KZ citizen
        judgment={"final": False,                                          # not final
                  "offences": [{"article": "139", "iccs": "0209", "description": "Defamation"}]},
        sentence={"years": 1, "pretrial_credit_days": 0},                 # ends 2025-01-15
        financial_obligations=[UNSETTLED],
        pending_proceedings=[{"kind": "trial", "description": "another charge"}],
    )
    result = assess(req, ref=no_0209_in_kazakhstan())
    check_shape(result)
    assert result.grounds == GROUNDS
    assert all(c.outcome == "failed" for c in result.conditions)
    assert result.release_date == date(2025, 1, 15)


# --- nationality ----------------------------------------------------------------------------


@pytest.mark.parametrize("citizenships", [["KZ"], ["RU"], ["KZ", "RU"]])
def test_not_a_citizen_of_the_administering_state(citizenships):
    result = assess(request(person={"citizenships": citizenships}))
    assert outcome(result, "nationality") == "failed"
    assert result.grounds == ["not_national"]


def test_dual_nationals_are_eligible_where_nationality_need_not_be_exclusive():
    result = assess(request(person={"citizenships": ["UZ", "KZ"]}))
    assert outcome(result, "nationality") == "satisfied"
    assert result.grounds == []


@pytest.mark.parametrize(
    ("sentencing", "administering", "citizenships", "expected"),
    [
        ("KZ", "HU", ["KZ", "HU"], "failed"),
        ("KZ", "HU", ["HU", "KZ"], "failed"),
        ("HU", "KZ", ["KZ", "HU"], "failed"),
        ("KZ", "HU", ["HU"], "satisfied"),
        ("HU", "KZ", ["KZ"], "satisfied"),
        ("KZ", "HU", ["HU", "RO"], "satisfied"),  # a non-party's citizenship does not matter
    ],
)
def test_kz_hu_requires_exclusive_nationality(sentencing, administering, citizenships, expected):
    req = request(sentencing_state=sentencing, administering_state=administering,
                  person={"citizenships": citizenships})
    result = assess(req, "kz-hu-transfer-2014")
    assert outcome(result, "nationality") == expected
    assert result.grounds == (["not_national"] if expected == "failed" else [])


def _exclusive_multilateral() -> Treaty:
    raw = treaty("coe-ets-112").model_dump(mode="json")
    raw["id"] = "test-exclusive-multilateral"
    raw["transfer"]["exclusive_nationality"]["value"] = True
    return Treaty.model_validate(raw)


def test_exclusive_nationality_under_a_multilateral_counts_every_other_party(ref):
    # IT→HU under a multilateral requiring exclusive nationality; the person is HU and FR (a party).
    req = request(sentencing_state="IT", administering_state="HU", person={"citizenships": ["HU", "FR"]})
    result = assess_eligibility(req, _exclusive_multilateral(), ref, RECEIVED)
    assert outcome(result, "nationality") == "failed"


def test_exclusive_nationality_under_a_multilateral_counts_the_sentencing_state(ref):
    req = request(sentencing_state="IT", administering_state="HU", person={"citizenships": ["HU", "IT"]})
    result = assess_eligibility(req, _exclusive_multilateral(), ref, RECEIVED)
    assert result.grounds == ["not_national"]


# --- final judgment -------------------------------------------------------------------------


def test_a_judgment_that_is_not_final():
    result = assess(request(judgment={"final": False}))
    assert outcome(result, "final_judgment") == "failed"
    assert result.grounds == ["judgment_not_final"]


# --- remaining term -------------------------------------------------------------------------


def test_indeterminate_sentence_satisfies_the_remaining_term_and_has_no_release_date():
    req = request(sentence={"indeterminate": True, "start_date": "2024-01-15", "years": 0, "months": 0,
                            "days": 0, "pretrial_credit_days": 0, "remission_days": 0})
    result = assess(req)
    assert outcome(result, "remaining_term") == "satisfied"
    assert result.release_date is None
    assert release_date_of(req) is None
    assert result.grounds == []


# --- dual criminality -----------------------------------------------------------------------


def test_defamation_or_insult_into_kazakhstan_needs_review_and_into_uzbekistan_is_satisfied():
    """0209 covers defamation (no longer a crime in KZ) and insult (still one): a lawyer decides."""
    defamation = {"offences": [{"article": "139", "iccs": "0209", "description": "Defamation"}]}
    into_kz = assess(request(sentencing_state="UZ", administering_state="KZ", person={"citizenships": ["KZ"]},
                             judgment=defamation))
    assert outcome(into_kz, "dual_criminality") == "needs_review"
    assert into_kz.needs_review is True and into_kz.grounds == []
    insult = {"offences": [{"article": "140", "description": "Insult"}]}  # UZ art. 140, 0209 by the UZ table
    into_kz = assess(request(sentencing_state="UZ", administering_state="KZ", person={"citizenships": ["KZ"]},
                             judgment=insult))
    assert outcome(into_kz, "dual_criminality") == "needs_review" and into_kz.grounds == []
    into_uz = assess(request(judgment=defamation))
    assert outcome(into_uz, "dual_criminality") == "satisfied"
    assert into_uz.grounds == []


def test_unresolved_offence_needs_review_without_a_ground():
    req = request(judgment={"offences": [{"article": "no-such-article", "description": "?"}]})
    result = assess(req)
    assert outcome(result, "dual_criminality") == "needs_review"
    assert result.needs_review is True
    assert result.grounds == []


def test_a_review_does_not_hide_other_failing_grounds():
    req = request(judgment={"final": False, "offences": [{"article": "no-such-article"}]})
    result = assess(req)
    assert result.needs_review is True
    assert result.grounds == ["judgment_not_final"]


def _table(state: str, mapping: dict[str, str]) -> ArticleTable:
    return ArticleTable.model_validate({
        "state": state, "code": "test", "source": "test fixture",
        "articles": [{"article": a, "iccs": c, "title": a, "verified": True} for a, c in mapping.items()],
    })


def test_articles_are_read_in_the_sentencing_states_table_and_judged_in_the_administering_state(ref):
    # article "42" is defamation in UZ's code, theft in KZ's: a UZ judgment transferred to KZ is
    # defamation (0209, reviewed in KZ), not theft (0502, satisfied).
    custom = dataclasses.replace(ref, articles={"UZ": _table("UZ", {"42": "0209"}),
                                                "KZ": _table("KZ", {"42": "0502"})})
    uz_to_kz = request(sentencing_state="UZ", administering_state="KZ", person={"citizenships": ["KZ"]},
                       judgment={"offences": [{"article": "42"}]})
    assert outcome(assess(uz_to_kz, ref=custom), "dual_criminality") == "needs_review"
    assert assess(uz_to_kz, ref=dataclasses.replace(no_0209_in_kazakhstan(), articles=custom.articles)).grounds == [
        "no_dual_criminality"]
    kz_to_uz = request(judgment={"offences": [{"article": "42"}]})
    assert outcome(assess(kz_to_uz, ref=custom), "dual_criminality") == "satisfied"


def test_the_dual_criminality_detail_lists_every_offence():
    req = request(judgment={"offences": [{"article": "188", "iccs": "0502"}, {"article": "190", "iccs": "0701"}]})
    detail = next(c.detail for c in assess(req).conditions if c.condition == "dual_criminality")
    assert "188" in detail and "190" in detail


# --- financial obligations and pending proceedings -----------------------------------------


def test_an_unsettled_obligation_fails_and_settled_ones_do_not():
    assert assess(request(financial_obligations=[SETTLED])).grounds == []
    assert assess(request(financial_obligations=[SETTLED, UNSETTLED])).grounds == ["outstanding_financial_obligations"]


@pytest.mark.parametrize("kind", ["investigation", "trial"])
def test_pending_proceedings_fail(kind):
    result = assess(request(pending_proceedings=[{"kind": kind}]))
    assert result.grounds == ["proceedings_pending"]


@pytest.mark.parametrize(
    ("treaty_id", "sentencing", "administering"),
    [("coe-ets-112", "FR", "IT"), ("kz-it-transfer-2013", "KZ", "IT"), ("kz-hu-transfer-2014", "KZ", "HU")],
)
def test_treaties_without_those_grounds_mark_them_not_applicable(treaty_id, sentencing, administering):
    req = request(sentencing_state=sentencing, administering_state=administering,
                  person={"citizenships": [administering]},
                  financial_obligations=[UNSETTLED], pending_proceedings=[{"kind": "trial"}])
    result = assess(req, treaty_id)
    check_shape(result)
    assert outcome(result, "financial_obligations") == "not_applicable"
    assert outcome(result, "pending_proceedings") == "not_applicable"
    assert result.grounds == []
    assert result.needs_review is False


# --- the property: grounds are exactly the toggled failures ---------------------------------


def toggled_request(fail: tuple[bool, bool, bool, bool, bool, bool]) -> TransferRequest:
    """UZ→KZ under KZ-UZ, each condition made to fail independently (0209 failing in KZ as
    ``no_0209_in_kazakhstan`` has it)."""
    nationality, final, term, dual, financial, pending = fail
    return request(
        sentencing_state="UZ", administering_state="KZ",
        person={"citizenships": ["UZ"] if nationality else ["KZ"]},
        judgment={"final": not final,
                  "offences": [{"article": "1", "iccs": "0502"}, {"article": "2", "iccs": "0209" if dual else "0701"}]},
        sentence={"years": 1 if term else 5},
        financial_obligations=[SETTLED, UNSETTLED] if financial else [SETTLED],
        pending_proceedings=[{"kind": "investigation"}] if pending else [],
    )


NO_0209_IN_KZ = no_0209_in_kazakhstan()


@FAST
@given(st.tuples(*[st.booleans()] * 6))
def test_grounds_are_exactly_the_failing_conditions_in_order(fail):
    result = assess(toggled_request(fail), ref=NO_0209_IN_KZ)
    check_shape(result)
    assert result.grounds == [g for g, f in zip(GROUNDS, fail) if f]
    assert [c.outcome for c in result.conditions] == ["failed" if f else "satisfied" for f in fail]
    assert result.needs_review is False
