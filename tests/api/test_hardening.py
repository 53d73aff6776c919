"""The attacks of a hostile or careless authority on the landed API, each replayed: a case must
not be wedged, bloated or revealed by anything a client sends (API.md, Conventions)."""

from __future__ import annotations

import asyncio
import hashlib
from typing import Any

import httpx
import pytest
from temporalio.client import Client

from tests.api.helpers import AUTHORITIES, PACER, case_at, http, today, view  # noqa: F401
from tests.support import key, poll
from treatyflow.samples import assistance_body, transfer_body

pytestmark = pytest.mark.asyncio(loop_scope="session")


async def history_size(client: Client, workflow_id: str) -> tuple[int, int]:
    """(events, bytes) of a case's history, as the server counts them."""
    info = (await client.get_workflow_handle(workflow_id).describe()).raw_description.workflow_execution_info
    return info.history_length, info.history_size_bytes


async def settled_history(client: Client, workflow_id: str) -> tuple[int, int]:
    """The history's size once the case has done what the last act set off (notices, ...)."""
    last = await history_size(client, workflow_id)
    while True:
        await asyncio.sleep(0.5)
        now = await history_size(client, workflow_id)
        if now == last:
            return now
        last = now


# ---- 1. a repeat changes nothing, its history included ------------------------------------------


async def test_repeating_a_post_adds_nothing_to_the_case_history(http, dev_client):
    body = transfer_body(judgment={**transfer_body()["judgment"], "offences": [
        {"article": "188", "iccs": "0502", "description": "Theft " + "x" * 9_000} for _ in range(50)]})
    first = await http.post("/v1/transfers", json=body, headers=key("kz-gpo"))
    assert first.status_code == 201, first.text
    workflow_id = f"transfer:{body['reference']}"
    before = await settled_history(dev_client, workflow_id)
    for _ in range(40):  # the attack terminated the case at its 38th repeat
        again = await http.post("/v1/transfers", json=body, headers=key("kz-gpo"))
        assert again.status_code == 200, again.text
        assert again.json()["stage"] == "awaiting_consents"
    assert await history_size(dev_client, workflow_id) == before
    other = await http.post("/v1/transfers", json={**body, "received_on": "2026-11-19"}, headers=key("kz-gpo"))
    assert other.status_code == 409, other.text
    assert await history_size(dev_client, workflow_id) == before
    # the case still acts
    r = await http.post(f"/v1/transfers/{body['reference']}/decisions", headers=key("uz-gpo"),
                        json={"state": "UZ", "decision": "consent"})
    assert r.status_code == 200, r.text


async def test_an_act_adds_only_itself_to_the_history(http, dev_client):
    """An act's answer is read by query: the history grows by the act, not by the whole view."""
    reference = await case_at(http, "awaiting_consents")
    workflow_id = f"transfer:{reference}"
    _, before = await settled_history(dev_client, workflow_id)
    r = await http.post(f"/v1/transfers/{reference}/decisions", headers=key("uz-gpo"),
                        json={"state": "UZ", "decision": "consent", "note": "n" * 5_000})
    assert r.status_code == 200 and [d["state"] for d in r.json()["decisions"]] == ["UZ"], r.text
    _, after = await settled_history(dev_client, workflow_id)
    assert after - before < 5_000 + len(r.content) // 2, (before, after, len(r.content))


# ---- 2. valid-looking input that wedged cases is refused at the door ----------------------------


@pytest.mark.parametrize("changes, field", [
    ({"sentence": {"start_date": "0001-01-01", "years": 5, "pretrial_credit_days": 36_600}}, "sentence.start_date"),
    ({"judgment": {**transfer_body()["judgment"], "offences": [
        {"article": "188", "iccs": "0502", "description": "Theft"}] * 51}}, "judgment.offences"),
])
async def test_input_past_the_bounds_is_a_422_naming_the_field(http, changes, field):
    body = transfer_body(**changes)
    r = await http.post("/v1/transfers", json=body, headers=key("kz-gpo"))
    assert r.status_code == 422, r.text
    assert any(f.startswith(field) for f in r.json()["error"]["fields"]), r.text
    missing = await http.get(f"/v1/transfers/{body['reference']}", headers=key("kz-gpo"))
    assert missing.status_code == 404  # nothing was opened


async def executing_request(http: httpx.AsyncClient, **changes: Any) -> str:
    body = assistance_body(**changes)
    r = await http.post("/v1/assistance-requests", json=body, headers=key("fr-moj"))
    assert r.status_code == 201, r.text
    r = await http.post(f"/v1/assistance-requests/{body['reference']}/review", headers=key("kz-gpo"),
                        json={"decision": "accept"})
    assert r.status_code == 200 and r.json()["stage"] == "executing", r.text
    return body["reference"]


def evidence(n: int, text: str = "item") -> list[dict[str, Any]]:
    return [{"item_id": f"e{i}", "description": f"{text} {i}", "sha256": hashlib.sha256(str(i).encode()).hexdigest(),
             "collected_on": today().isoformat()} for i in range(n)]


async def test_a_result_past_200_evidence_items_is_a_422_and_the_request_still_reads(http):
    reference = await executing_request(http)
    over = await http.post(f"/v1/assistance-requests/{reference}/measures/m1/result", headers=key("kz-afm"),
                           json={"outcome": "executed", "evidence": evidence(201)})
    assert over.status_code == 422 and over.json()["error"]["fields"] == ["evidence"], over.text
    # three results of 200 long items would outgrow one payload (the request's view, its manifest,
    # its archived record): each measure has a third of the request's evidence budget
    bulky = await http.post(f"/v1/assistance-requests/{reference}/measures/m1/result", headers=key("kz-afm"),
                            json={"outcome": "executed", "evidence": evidence(200, "d" * 4_500)})
    assert bulky.status_code == 422 and bulky.json()["error"]["fields"] == ["evidence"], bulky.text
    assert "at most 349,525 bytes" in bulky.json()["error"]["message"], bulky.text
    at = await http.post(f"/v1/assistance-requests/{reference}/measures/m1/result", headers=key("kz-afm"),
                         json={"outcome": "executed", "evidence": evidence(200)})
    assert at.status_code == 200, at.text
    for measure in ("m3",):
        r = await http.post(f"/v1/assistance-requests/{reference}/measures/{measure}/result",
                            headers=key("kz-police"), json={"outcome": "executed", "evidence": evidence(200)})
        assert r.status_code == 200, r.text
    read = await http.get(f"/v1/assistance-requests/{reference}", headers=key("fr-moj"))
    assert read.status_code == 200, read.text
    assert [len(m["evidence"]) for m in read.json()["measures"]] == [200, 0, 200]


# ---- 3. races: of two conflicting acts exactly one succeeds ----------------------------------------


async def test_a_handover_and_a_withdrawal_sent_together_never_both_succeed(http):
    for _ in range(6):
        reference = await case_at(http, "awaiting_handover")
        place = (await view(http, reference))["handover"]["place"]
        handover, withdrawal = await asyncio.gather(
            http.post(f"/v1/transfers/{reference}/handover", headers=key("uz-penal"),
                      json={"completed_on": today().isoformat(), "place": place}),
            http.post(f"/v1/transfers/{reference}/withdrawal", headers=key("kz-gpo"),
                      json={"withdrawn_on": today().isoformat(), "reason": "the person withdrew consent"}))
        assert sorted([handover.status_code, withdrawal.status_code]) == [200, 409], (handover.text, withdrawal.text)
        final = await poll(lambda: view(http, reference), lambda v: v["outcome"] is not None)
        if handover.status_code == 200:
            assert final["outcome"] == "transferred", final
        else:
            assert final["outcome"] == "withdrawn" and final["handover"]["completed_on"] is None, final


async def test_two_results_and_a_withdrawal_sent_together_answer_200_or_409(http):
    for _ in range(4):
        reference = await executing_request(http)
        path = f"/v1/assistance-requests/{reference}"
        answers = await asyncio.gather(
            http.post(f"{path}/measures/m1/result", headers=key("kz-afm"),
                      json={"outcome": "executed", "evidence": evidence(1, "first")}),
            http.post(f"{path}/measures/m1/result", headers=key("kz-gpo"), json={"outcome": "not_executed"}),
            http.post(f"{path}/withdrawal", headers=key("fr-moj"), json={"reason": "no longer needed"}))
        statuses = [a.status_code for a in answers]
        assert set(statuses) <= {200, 409}, [a.text for a in answers]
        assert statuses[:2].count(200) <= 1, [a.text for a in answers]
        final = await poll(lambda: http.get(path, headers=key("fr-moj")), lambda r: r.json()["outcome"] is not None)
        assert final.status_code == 200, final.text
        m1 = next(m for m in final.json()["measures"] if m["id"] == "m1")
        if statuses[0] == 200:
            assert m1["stage"] == "executed" and m1["evidence"][0]["description"] == "first 0", m1
        elif statuses[1] == 200:
            assert m1["stage"] == "not_executed", m1
        else:
            assert m1["stage"] == "cancelled", m1
        if statuses[2] == 200:
            assert final.json()["outcome"] == "withdrawn"


# ---- 4. confidentiality: a refused measure reveals the request to no one -----------------------


def expected_reader(authority: str, readers: set[str]) -> int:
    state, role = AUTHORITIES[authority]
    if role == "prison_service":
        return 403  # no part in assistance: the same answer for every reference, before any lookup
    return 200 if authority in readers else 404


async def test_a_confidential_request_whose_search_is_not_permitted_hides_from_the_police(http):
    # the offence is unresolved; the reviewer finds no dual criminality, so the search is not permitted
    body = assistance_body(confidential=True,
                           offences=[{"article": "9999", "description": "an offence without ICCS code"}],
                           measures=[{"id": "m1", "kind": "identify_bank_accounts", "description": "Accounts"},
                                     {"id": "m2", "kind": "search", "description": "Search of the office"}])
    r = await http.post("/v1/assistance-requests", json=body, headers=key("fr-moj"))
    assert r.status_code == 201, r.text
    r = await http.post(f"/v1/assistance-requests/{body['reference']}/review", headers=key("kz-gpo"),
                        json={"decision": "accept", "dual_criminality": "not_satisfied"})
    assert r.status_code == 200, r.text
    measures = {m["id"]: m for m in r.json()["measures"]}
    assert (measures["m1"]["assigned_to"], measures["m2"]["stage"], measures["m2"]["assigned_to"]) == (
        "kz-afm", "not_permitted", None), measures
    reference = body["reference"]
    readers = {"fr-moj", "kz-gpo", "kz-afm"}

    async def read_by_everyone() -> dict[str, int]:
        return {a: (await http.get(f"/v1/assistance-requests/{reference}", headers=key(a))).status_code
                for a in AUTHORITIES}

    assert await read_by_everyone() == {a: expected_reader(a, readers) for a in AUTHORITIES}
    missing = {a: (await http.get("/v1/assistance-requests/FR-no-such-case", headers=key(a))).status_code
               for a in AUTHORITIES}
    assert {a: s for a, s in missing.items() if s != 404} == {
        a: 403 for a, (_, role) in AUTHORITIES.items() if role == "prison_service"}
    # and once closed, from the archive
    r = await http.post(f"/v1/assistance-requests/{reference}/withdrawal", headers=key("fr-moj"),
                        json={"reason": "no longer needed"})
    assert r.status_code == 200 and r.json()["stage"] == "withdrawn", r.text
    assert await read_by_everyone() == {a: expected_reader(a, readers) for a in AUTHORITIES}


async def test_a_role_with_no_part_learns_nothing_of_which_cases_exist(http):
    reference = await case_at(http, "awaiting_consents")
    for authority in ("kz-court", "kz-police", "kz-afm"):
        existing = await http.get(f"/v1/transfers/{reference}", headers=key(authority))
        missing = await http.get("/v1/transfers/KZ-no-such-case", headers=key(authority))
        assert (existing.status_code, missing.status_code) == (403, 403)
        assert existing.json()["error"]["message"] == missing.json()["error"]["message"]


# ---- 5. references belong to the state that opens the case -------------------------------------


async def test_a_third_state_cannot_probe_or_occupy_another_states_reference(http):
    reference = await case_at(http, "awaiting_consents")  # KZ-...
    probe = transfer_body(sentencing_state="FR", administering_state="KZ", person={
        "full_name": "A Person", "date_of_birth": "1980-01-01", "citizenships": ["KZ"]})
    probe["reference"] = reference
    r = await http.post("/v1/transfers", json=probe, headers=key("fr-moj"))
    assert r.status_code == 422 and r.json()["error"]["fields"] == ["reference"], r.text
    unused = "KZ-FR-2026-0042"
    occupy = assistance_body(reference=unused)
    r = await http.post("/v1/assistance-requests", json=occupy, headers=key("fr-moj"))
    assert r.status_code == 422 and r.json()["error"]["fields"] == ["reference"], r.text
    r = await http.get(f"/v1/assistance-requests/{unused}", headers=key("kz-gpo"))
    assert r.status_code == 404  # nothing was opened under it


# ---- 6. no 500 from any workflow state ----------------------------------------------------------


async def test_a_case_whose_workflow_cannot_answer_is_a_503_not_a_500(http, dev_client, dev_settings):
    """A workflow under a case's id that the worker cannot run (its task fails at every attempt):
    reads and acts answer 503 with Retry-After."""
    reference = f"KZ-broken-{today().isoformat()}"
    await dev_client.start_workflow("NoSuchWorkflowType", id=f"transfer:{reference}",
                                    task_queue=dev_settings.task_queue)
    try:
        read = await http.get(f"/v1/transfers/{reference}", headers=key("kz-gpo"))
        assert read.status_code == 503 and read.headers["retry-after"], read.text
        act = await http.post(f"/v1/transfers/{reference}/withdrawal", headers=key("kz-gpo"),
                              json={"withdrawn_on": today().isoformat(), "reason": "x"})
        assert act.status_code == 503, act.text
        assert "Traceback" not in read.text + act.text
        metrics = (await http.get("/metrics")).text  # dev mode: open; an alert for the operators
        assert any(line.startswith("treatyflow_engine_errors_total{kind=") and not line.endswith(" 0.0")
                   for line in metrics.splitlines()), metrics
    finally:
        await dev_client.get_workflow_handle(f"transfer:{reference}").terminate()
