"""Who asked, asking again, enforcement in the administering state and the handover point, over
real HTTP (API.md "Transfer of sentenced persons"; DOMAIN.md "Who asked, and asking again",
"Enforcement in the administering state"): each shown in the view, the audit trail and, once the
case is closed, its archived record."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.api import helpers
from tests.api.helpers import case_at, closed, decide, fields_of, open_case, today, view
from tests.support import key, poll
from treatyflow.samples import transfer_body

pytestmark = pytest.mark.asyncio(loop_scope="session")
http = helpers.http  # the fixture: one paced client for the module

HANDOVER_POINT = "Zhibek Zholy (KZ) \u2013 Gishtkuprik (UZ) border crossing"  # kz-uz-transfer-2021


def events(case: dict[str, Any], action: str) -> list[str]:
    return [e["detail"] for e in case["events"] if e["action"] == action]


async def post(http: httpx.AsyncClient, reference: str, act: str, by: str, body: dict[str, Any]) -> httpx.Response:
    return await http.post(f"/v1/transfers/{reference}/{act}", json=body, headers=key(by))


async def in_handover(http: httpx.AsyncClient) -> str:
    reference = await case_at(http, "awaiting_handover")
    assert (await view(http, reference))["handover"]["place"] == HANDOVER_POINT
    return reference


# ---- who asked, and asking again ------------------------------------------------------------


async def test_a_case_says_who_asked_for_the_transfer(http):
    plain = await view(http, await open_case(http))
    assert (plain["initiated_by"], plain["previous_reference"]) == ("sentenced_person", None)
    asked = await view(http, await open_case(http, by="uz-gpo", initiated_by="administering_state"), by="uz-gpo")
    assert asked["initiated_by"] == "administering_state"
    assert "initiated by the administering state" in events(asked, "case_opened")[0]

    body = transfer_body(initiated_by="the person")
    r = await http.post("/v1/transfers", json=body, headers=key("kz-gpo"))
    assert r.status_code == 422 and fields_of(r) == ["initiated_by"], r.text


async def test_a_new_case_may_follow_a_closed_one_between_the_same_states(http, dev_client):
    earlier = await case_at(http, "refused")
    await closed(dev_client, earlier)
    body = transfer_body(previous_reference=earlier, initiated_by="sentencing_state")
    r = await http.post("/v1/transfers", json=body, headers=key("kz-gpo"))
    assert r.status_code == 201, r.text
    case = r.json()
    assert (case["previous_reference"], case["initiated_by"]) == (earlier, "sentencing_state")
    assert f"following {earlier}" in events(case, "case_opened")[0]
    # the same request again is the same case
    again = await http.post("/v1/transfers", json=body, headers=key("kz-gpo"))
    assert (again.status_code, again.json()["reference"]) == (200, body["reference"])


@pytest.mark.parametrize("which", ["missing", "open", "itself", "other-states", "unreadable"])
async def test_previous_reference_must_name_a_closed_case_of_the_same_states_the_caller_may_read(http, which):
    if which == "missing":
        previous = "KZ-NO-SUCH-CASE-1"
    elif which == "open":
        previous = await open_case(http)
    elif which == "other-states":  # KZ and IT: readable by kz-gpo, but not between KZ and UZ
        previous = await open_case(http, administering_state="IT",
                                   person={**transfer_body()["person"], "citizenships": ["IT"]},
                                   judgment={**transfer_body()["judgment"], "final": False},
                                   expect_stage="refused")
    elif which == "unreadable":  # FR and IT: a case kz-gpo may not read, answered as a missing one
        previous = await open_case(http, by="fr-moj", sentencing_state="FR", administering_state="IT",
                                   person={**transfer_body()["person"], "citizenships": ["IT"]},
                                   judgment={**transfer_body()["judgment"], "final": False},
                                   expect_stage="refused")
    body = transfer_body()
    if which == "itself":
        previous = body["reference"]
    r = await http.post("/v1/transfers", json={**body, "previous_reference": previous}, headers=key("kz-gpo"))
    assert r.status_code == 422 and fields_of(r) == ["previous_reference"], r.text
    message = r.json()["error"]["message"]
    if which in ("missing", "unreadable"):
        assert "names no transfer case that kz-gpo may read" in message, message
    assert (await http.get(f"/v1/transfers/{body['reference']}", headers=key("kz-gpo"))).status_code == 404


# ---- enforcement in the administering state --------------------------------------------------


async def test_a_converted_sentence_moves_the_release_date_and_is_kept_in_the_archive(http, dev_client):
    reference = await open_case(http, expect_stage="awaiting_consents")
    before = await view(http, reference)
    assert (before["release_date"], before["enforcement"]) == ("2028-09-17", None)  # 5 years, less 120 days
    await decide(http, reference, "KZ")
    r = await post(http, reference, "decisions", "uz-gpo",
                   {"state": "UZ", "decision": "consent", "enforcement": "converted",
                    "converted_sentence": {"years": 4, "months": 0, "days": 0}})
    assert r.status_code == 200, r.text
    case = r.json()
    # the converted term runs from the same start date with the same credits: 4 years, less 120 days
    assert (case["enforcement"], case["release_date"]) == ("converted", "2027-09-17")
    uz = next(d for d in case["decisions"] if d["state"] == "UZ")
    assert (uz["enforcement"], uz["converted_sentence"]) == ("converted", {"years": 4, "months": 0, "days": 0})
    assert events(case, "decision_consent")[-1] == "UZ, sentence converted to 4 years, 0 months and 0 days"

    arranged = await poll(lambda: view(http, reference), lambda v: v["handover"] is not None)
    r = await post(http, reference, "handover", "uz-penal",
                   {"completed_on": today().isoformat(), "place": arranged["handover"]["place"]})
    assert r.status_code == 200 and r.json()["stage"] == "transferred", r.text
    await closed(dev_client, reference)
    archived = await view(http, reference, by="uz-gpo")
    assert (archived["enforcement"], archived["release_date"]) == ("converted", "2027-09-17")


async def test_continued_enforcement_keeps_the_imposed_term(http):
    reference = await open_case(http, expect_stage="awaiting_consents")
    r = await post(http, reference, "decisions", "uz-gpo", {"state": "UZ", "decision": "consent",
                                                              "enforcement": "continued"})
    assert r.status_code == 200, r.text
    assert (r.json()["enforcement"], r.json()["release_date"]) == ("continued", "2028-09-17")
    assert events(r.json(), "decision_consent")[-1] == "UZ, enforcement continued"


@pytest.mark.parametrize("by, body, field", [
    pytest.param("kz-gpo", {"state": "KZ", "decision": "consent", "enforcement": "continued"}, "enforcement",
                 id="stated-by-the-sentencing-state"),
    pytest.param("uz-gpo", {"state": "UZ", "decision": "consent", "enforcement": "converted"}, "converted_sentence",
                 id="converted-without-a-term"),
    pytest.param("uz-gpo", {"state": "UZ", "decision": "consent", "enforcement": "continued",
                            "converted_sentence": {"years": 4}}, "converted_sentence", id="term-without-conversion"),
    pytest.param("uz-gpo", {"state": "UZ", "decision": "consent", "enforcement": "converted",
                            "converted_sentence": {"years": 5, "months": 0, "days": 1}}, "converted_sentence",
                 id="aggravating-term"),
    pytest.param("uz-gpo", {"state": "UZ", "decision": "consent", "enforcement": "converted",
                            "converted_sentence": {"years": 0}}, "converted_sentence", id="empty-term"),
    pytest.param("uz-gpo", {"state": "UZ", "decision": "consent", "enforcement": "converted",
                            "converted_sentence": {"years": 101}}, "converted_sentence.years",
                 id="term-over-100-years"),
    pytest.param("uz-gpo", {"state": "UZ", "decision": "refuse", "grounds": ["state_declined"],
                            "enforcement": "continued"}, "enforcement", id="with-a-refusal"),
])
async def test_enforcement_is_the_administering_states_with_its_consent(http, by, body, field):
    reference = await open_case(http, expect_stage="awaiting_consents")
    r = await post(http, reference, "decisions", by, body)
    assert r.status_code == 422 and fields_of(r) == [field], r.text
    case = await view(http, reference)
    assert (case["stage"], case["decisions"], case["release_date"]) == ("awaiting_consents", [], "2028-09-17")


async def test_a_term_equal_to_the_imposed_one_does_not_aggravate_it(http):
    reference = await open_case(http, expect_stage="awaiting_consents")
    r = await post(http, reference, "decisions", "uz-gpo",
                   {"state": "UZ", "decision": "consent", "enforcement": "converted",
                    "converted_sentence": {"years": 4, "months": 12, "days": 0}})
    assert r.status_code == 200, r.text
    assert r.json()["release_date"] == "2028-09-17"


# ---- the handover point -------------------------------------------------------------------------


async def test_a_handover_elsewhere_needs_a_note_and_is_shown_as_a_deviation(http):
    reference = await in_handover(http)
    elsewhere = {"completed_on": today().isoformat(), "place": "Tashkent International Airport"}
    r = await post(http, reference, "handover", "uz-penal", elsewhere)
    assert r.status_code == 422 and fields_of(r) == ["note"], r.text
    assert "Zhibek Zholy" in r.json()["error"]["message"]
    assert (await view(http, reference))["stage"] == "awaiting_handover"

    r = await post(http, reference, "handover", "uz-penal", {**elsewhere, "note": "the crossing was closed by snow"})
    assert r.status_code == 200, r.text
    case = r.json()
    assert case["stage"] == "transferred"
    assert case["handover"] | {"due_on": None} == {
        "place": "Tashkent International Airport", "arranged_place": HANDOVER_POINT, "deviation": True,
        "note": "the crossing was closed by snow", "completed_on": today().isoformat(), "due_on": None}
    assert events(case, "handover_confirmed") == [
        f"completed on {today()} at Tashkent International Airport, a deviation from the arranged point "
        f"({HANDOVER_POINT})"]


@pytest.mark.parametrize("place", ["zhibek zholy", "Gishtkuprik", "ZHIBEK-ZHOLY (KZ)", HANDOVER_POINT,
                                   "Zhibek Zholy - Gishtkuprik border crossing"])
async def test_naming_the_arranged_point_or_one_side_of_it_is_no_deviation(http, place):
    reference = await in_handover(http)
    r = await post(http, reference, "handover", "uz-penal", {"completed_on": today().isoformat(), "place": place})
    assert r.status_code == 200, r.text
    handover = r.json()["handover"]
    assert (handover["place"], handover["deviation"], handover["arranged_place"]) == (place, False, HANDOVER_POINT)
