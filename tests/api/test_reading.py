"""Reading over real HTTP: the case view (live and from the archive), the lists with their filters
and pages, the inbox as the authorities' work moves on, the treaty registry, the statistics, and
the operations endpoints. Lists, the inbox and the statistics read the eventually consistent
visibility store: they are polled for a few seconds."""

from __future__ import annotations

import json
import re
from datetime import date, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.api import helpers
from tests.api.helpers import AUTHORITIES, NOT_FINAL, case_at, closed, decide, open_case, today, view
from tests.support import key, poll
from treatyflow.samples import BASE, transfer_body

pytestmark = pytest.mark.asyncio(loop_scope="session")
http = helpers.http  # the fixture: one paced client for the module

CONDITIONS = {"nationality", "final_judgment", "remaining_term", "dual_criminality", "financial_obligations",
              "pending_proceedings"}
VIEW_FIELDS = {"reference", "kind", "stage", "outcome", "grounds", "treaty", "events", "pending_actions",
               "overdue", "opened_at", "eligibility", "release_date", "decisions"}
TREATIES = json.loads((Path(__file__).parents[2] / "domain/data/treaties.json").read_text())["treaties"]


def timestamp(value: str) -> datetime:
    """An ISO 8601 timestamp with its zone."""
    parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    assert parsed.tzinfo is not None, value
    return parsed


async def listed(http: httpx.AsyncClient, authority: str, **params: Any) -> dict[str, Any]:
    r = await http.get("/v1/transfers", params=params, headers=key(authority))
    assert r.status_code == 200, r.text
    return r.json()


async def inbox(http: httpx.AsyncClient, authority: str) -> dict[str, dict[str, Any]]:
    r = await http.get("/v1/inbox", headers=key(authority))
    assert r.status_code == 200, r.text
    return {item["reference"]: item for item in r.json()["items"]}


def references(answer: dict[str, Any]) -> list[str]:
    return [item["reference"] for item in answer["items"]]


# ---- the case view --------------------------------------------------------------------------


async def test_the_case_view_carries_every_field(http):
    reference = await open_case(http)
    case = await view(http, reference, by="uz-penal")
    assert VIEW_FIELDS <= set(case), VIEW_FIELDS - set(case)
    assert (case["reference"], case["kind"], case["stage"], case["outcome"], case["grounds"], case["treaty"]) == \
        (reference, "transfer", "awaiting_consents", None, [], "kz-uz-transfer-2021")
    assert timestamp(case["opened_at"]).date() == today()
    assert case["overdue"] is False
    assert case["decisions"] == []
    # full term: 5 years from 2024-01-15, less 120 days of pre-trial credit
    assert case["release_date"] == "2028-09-17"

    assert {c["condition"] for c in case["eligibility"]} == CONDITIONS and len(case["eligibility"]) == 6
    for condition in case["eligibility"]:
        assert set(condition) >= {"condition", "outcome", "detail", "basis"}
        assert condition["outcome"] == "satisfied", condition
        assert condition["basis"], condition

    assert sorted((p["authority"], p["action"]) for p in case["pending_actions"]) == \
        [("kz-gpo", "decide"), ("uz-gpo", "decide")]
    for pending in case["pending_actions"]:
        assert set(pending) >= {"authority", "action", "measure_id", "due_on"}
        assert pending["measure_id"] is None
        assert date.fromisoformat(pending["due_on"]) > today()

    assert case["events"], "no audit trail"
    for event in case["events"]:
        assert set(event) >= {"at", "actor", "action", "detail"}
        timestamp(event["at"])
        assert event["actor"] == "system" or re.fullmatch(r"[a-z]{2}-[a-z]+", event["actor"]), event
    assert (case["events"][0]["actor"], case["events"][0]["action"]) == ("kz-gpo", "case_opened")
    assert BASE["person"]["full_name"] not in json.dumps(case["events"])


async def test_the_view_shows_decisions_and_the_refusal_grounds(http):
    reference = await open_case(http)
    await decide(http, reference, "KZ")
    case = await decide(http, reference, "UZ", "refuse", ["sovereignty_or_security"])
    assert (case["stage"], case["outcome"], case["grounds"]) == ("refused", "refused", ["sovereignty_or_security"])
    assert case["pending_actions"] == []
    decisions = {d["state"]: d for d in case["decisions"]}
    assert set(decisions) == {"KZ", "UZ"}
    for d in decisions.values():
        assert set(d) >= {"state", "decision", "grounds", "note", "authority", "at"}
        timestamp(d["at"])
    assert (decisions["KZ"]["decision"], decisions["KZ"]["authority"], decisions["KZ"]["grounds"]) == \
        ("consent", "kz-gpo", [])
    assert (decisions["UZ"]["decision"], decisions["UZ"]["authority"], decisions["UZ"]["grounds"]) == \
        ("refuse", "uz-gpo", ["sovereignty_or_security"])


async def test_a_case_refused_at_intake_shows_the_failed_conditions(http):
    body = transfer_body(judgment=NOT_FINAL)
    r = await http.post("/v1/transfers", json=body, headers=key("kz-gpo"))
    assert r.status_code == 201, r.text
    case = r.json()
    assert (case["stage"], case["outcome"], case["grounds"]) == ("refused", "refused", ["judgment_not_final"])
    failed = [c["condition"] for c in case["eligibility"] if c["outcome"] == "failed"]
    assert failed == ["final_judgment"]
    assert case["pending_actions"] == [] and case["overdue"] is False
    assert (await view(http, body["reference"]))["grounds"] == ["judgment_not_final"]


async def test_a_closed_case_is_read_from_the_archive(http, dev_client):
    reference = await open_case(http)
    r = await http.post(f"/v1/transfers/{reference}/withdrawal", headers=key("kz-penal"),
                        json={"withdrawn_on": today().isoformat(), "reason": "the person withdrew consent"})
    assert r.status_code == 200, r.text
    live = await poll(lambda: view(http, reference),
                      lambda v: (v["stage"], v["outcome"]) == ("withdrawn", "withdrawn"))
    assert (live["stage"], live["outcome"], live["grounds"]) == ("withdrawn", "withdrawn", [])
    await closed(dev_client, reference)  # the workflow has finished: only the archive is left

    for authority in ("kz-gpo", "kz-penal", "uz-gpo", "uz-penal"):
        archived = await view(http, reference, by=authority)
        assert {k: v for k, v in archived.items() if k not in ("events", "documents")} == \
            {k: v for k, v in live.items() if k not in ("events", "documents")}
        # the same case file, and the closing letter to the person, written as the case closes
        assert archived["documents"][:len(live["documents"])] == live["documents"]
        assert [d["type"] for d in archived["documents"]] == ["person_notice"] * 2
        # the same audit trail (notices delivered after the archiving may extend the live one)
        shared = min(len(archived["events"]), len(live["events"]))
        assert archived["events"][:shared] == live["events"][:shared]
        assert "case_closed" in [e["action"] for e in archived["events"]]
        assert any(e["action"] == "withdrawn" and e["actor"] == "kz-penal" for e in archived["events"])
    # the archive is as discreet as the live case
    hidden = await http.get(f"/v1/transfers/{reference}", headers=key("fr-moj"))
    nonexistent = await http.get("/v1/transfers/NOPE-never-opened", headers=key("fr-moj"))
    assert hidden.status_code == nonexistent.status_code == 404 and hidden.json() == nonexistent.json()
    assert (await http.get(f"/v1/transfers/{reference}", headers=key("kz-court"))).status_code == 403


# ---- lists ---------------------------------------------------------------------------------


async def test_a_list_shows_only_the_callers_state_cases(http):
    reference = await open_case(http)
    def shown(answer: dict[str, Any]) -> bool:  # listed, and its latest stage visible
        return any(i["reference"] == reference and i["stage"] == "awaiting_consents" for i in answer["items"])

    mine = await poll(lambda: listed(http, "kz-gpo"), shown)
    assert reference in references(mine)
    assert all("KZ" in item["states"] for item in mine["items"])
    item = next(i for i in mine["items"] if i["reference"] == reference)
    assert (item["kind"], item["stage"], item["treaty"], sorted(item["states"])) == \
        ("transfer", "awaiting_consents", "kz-uz-transfer-2021", ["KZ", "UZ"])
    theirs = await poll(lambda: listed(http, "uz-penal"), lambda a: reference in references(a))
    assert reference in references(theirs)
    for outsider in ("fr-moj", "it-moj", "mc-dsj"):
        answer = await listed(http, outsider)
        assert reference not in references(answer)
        assert all(AUTHORITIES[outsider][0] in item["states"] for item in answer["items"])


async def test_the_stage_and_state_filters(http):
    waiting = await case_at(http, "awaiting_declaration")
    consents = await open_case(http)
    italian = await open_case(http, by="it-moj", administering_state="IT",
                              person={**BASE["person"], "citizenships": ["IT"]})

    by_stage = await poll(lambda: listed(http, "kz-gpo", stage="awaiting_declaration"),
                          lambda a: waiting in references(a))
    assert waiting in references(by_stage)
    assert {item["stage"] for item in by_stage["items"]} == {"awaiting_declaration"}
    other_stage = await listed(http, "kz-gpo", stage="awaiting_consents")
    assert waiting not in references(other_stage)
    assert {item["stage"] for item in other_stage["items"]} <= {"awaiting_consents"}

    with_italy = await poll(lambda: listed(http, "kz-gpo", state="IT"), lambda a: italian in references(a))
    assert italian in references(with_italy)
    assert consents not in references(with_italy) and waiting not in references(with_italy)
    assert all("IT" in item["states"] for item in with_italy["items"])
    with_uzbekistan = await poll(lambda: listed(http, "kz-gpo", state="UZ"),
                                 lambda a: {consents, waiting} <= set(references(a)))
    assert {consents, waiting} <= set(references(with_uzbekistan))
    assert italian not in references(with_uzbekistan)

    both = await listed(http, "kz-gpo", state="UZ", stage="awaiting_declaration")
    assert waiting in references(both) and consents not in references(both)


async def test_an_unknown_stage_is_422(http):
    r = await http.get("/v1/transfers", params={"stage": "pending"}, headers=key("kz-gpo"))
    assert r.status_code == 422, r.text
    assert any(f.endswith("stage") for f in r.json()["error"]["fields"])


async def test_newest_first_within_a_page(http):
    first = await open_case(http)
    second = await open_case(http)
    answer = await poll(lambda: listed(http, "kz-gpo"), lambda a: {first, second} <= set(references(a)))
    refs = references(answer)
    assert refs.index(second) < refs.index(first)
    opened = [timestamp(item["opened_at"]) for item in answer["items"]]
    assert opened == sorted(opened, reverse=True)


async def test_pages_follow_one_another(http):
    await open_case(http)
    await open_case(http)
    first = await poll(lambda: listed(http, "kz-gpo", page_size=1), lambda a: a["next_page_token"] is not None)
    assert len(first["items"]) == 1
    assert first["next_page_token"], first
    second = await listed(http, "kz-gpo", page_size=1, page_token=first["next_page_token"])
    assert len(second["items"]) == 1
    assert second["items"][0]["reference"] != first["items"][0]["reference"]
    # a token answers only the query it came from: not another authority's, not another filter
    for authority, params in (("uz-gpo", {}), ("kz-gpo", {"stage": "refused"})):
        r = await http.get("/v1/transfers", headers=key(authority),
                           params={"page_size": 1, "page_token": first["next_page_token"], **params})
        assert r.status_code == 422, r.text
        assert r.json()["error"]["fields"] == ["page_token"]


async def test_newest_first_across_pages(http, dev_client):
    """Two KZ→ES cases, the newer one refused (closed) at intake: es-moj's pages of one case each
    still list the newer first (the store's own order puts every open case before every closed
    one; tests/api/test_list_order.py walks longer lists)."""
    older = await open_case(http, by="es-moj", administering_state="ES",
                            person={**BASE["person"], "citizenships": ["ES"]})
    newer = await open_case(http, by="es-moj", administering_state="ES", judgment=NOT_FINAL,
                            person={**BASE["person"], "citizenships": ["ES"]}, expect_stage="refused")
    await closed(dev_client, newer)
    query = f"WorkflowId = 'transfer:{newer}' AND ExecutionStatus = 'Completed'"
    shown_closed = await poll(lambda: dev_client.count_workflows(query), lambda c: c.count == 1)
    assert shown_closed.count == 1, "the visibility store never showed the refused case closed"
    await poll(lambda: listed(http, "es-moj"), lambda a: {older, newer} <= set(references(a)))
    walked: list[str] = []
    token = None
    for _ in range(20):
        page = await listed(http, "es-moj", page_size=1, **({"page_token": token} if token else {}))
        walked += references(page)
        token = page["next_page_token"]
        if not token or {older, newer} <= set(walked):
            break
    assert walked.index(newer) < walked.index(older), walked


# ---- the inbox -----------------------------------------------------------------------------


async def test_the_inbox_follows_the_decisions(http):
    reference = await open_case(http)
    case = await view(http, reference)
    due = {p["authority"]: p["due_on"] for p in case["pending_actions"]}
    for authority in ("kz-gpo", "uz-gpo"):
        items = await poll(lambda: inbox(http, authority), lambda i: reference in i)
        assert reference in items, f"not in {authority}'s inbox"
        item = items[reference]
        assert (item["kind"], item["stage"], item["action"], item["measure_id"], item["overdue"]) == \
            ("transfer", "awaiting_consents", "decide", None, False)
        assert item["due_on"] == due[authority]
    assert reference not in await inbox(http, "uz-penal")

    await decide(http, reference, "UZ")
    uz = await poll(lambda: inbox(http, "uz-gpo"), lambda i: reference not in i)
    assert reference not in uz
    kz = await inbox(http, "kz-gpo")
    assert reference in kz and kz[reference]["action"] == "decide"

    await decide(http, reference, "KZ")
    handover = await poll(lambda: inbox(http, "uz-penal"), lambda i: reference in i)
    assert reference in handover
    assert (handover[reference]["stage"], handover[reference]["action"]) == ("awaiting_handover", "confirm_handover")
    assert handover[reference]["due_on"]
    assert reference not in await inbox(http, "kz-gpo")
    assert reference not in await inbox(http, "uz-gpo")
    assert reference not in await inbox(http, "kz-penal")


async def test_a_case_awaiting_the_declaration_is_in_the_prison_services_inbox(http):
    reference = await case_at(http, "awaiting_declaration")
    items = await poll(lambda: inbox(http, "kz-penal"), lambda i: reference in i)
    assert reference in items
    assert (items[reference]["action"], items[reference]["stage"]) == ("record_declaration", "awaiting_declaration")
    assert items[reference]["due_on"]
    assert reference not in await inbox(http, "kz-gpo")
    assert reference not in await inbox(http, "uz-penal")
    # once recorded (by the central authority, which may also do it), it leaves the inbox
    r = await http.post(f"/v1/transfers/{reference}/declaration", headers=key("kz-gpo"),
                        json={"signed_on": today().isoformat(), "voluntary": True, "informed_of_consequences": True})
    assert r.status_code == 200, r.text
    gone = await poll(lambda: inbox(http, "kz-penal"), lambda i: reference not in i)
    assert reference not in gone


async def test_a_case_awaiting_legal_review_is_in_the_administering_central_authoritys_inbox(http):
    reference = await case_at(http, "awaiting_legal_review")
    items = await poll(lambda: inbox(http, "uz-gpo"), lambda i: reference in i)
    assert reference in items and items[reference]["action"] == "legal_review"
    assert reference not in await inbox(http, "kz-gpo")


# ---- the treaty registry --------------------------------------------------------------------


async def test_the_treaty_registry(http):
    r = await http.get("/v1/treaties", headers=key("kz-penal"))
    assert r.status_code == 200, r.text
    treaties = {t["id"]: t for t in r.json()["items"]}
    assert set(treaties) == {t["id"] for t in TREATIES}
    assert all(isinstance(t["verified"], bool) for t in treaties.values())
    assert treaties["kz-hu-transfer-2014"]["verified"] is False

    one = await http.get("/v1/treaties/kz-uz-transfer-2021", headers=key("uz-gpo"))
    assert one.status_code == 200, one.text
    assert (one.json()["id"], sorted(one.json()["parties"])) == ("kz-uz-transfer-2021", ["KZ", "UZ"])
    assert one.json() == treaties["kz-uz-transfer-2021"]

    missing = await http.get("/v1/treaties/kz-atlantis-1999", headers=key("uz-gpo"))
    assert missing.status_code == 404
    assert missing.json()["error"]["status"] == 404


# ---- statistics ------------------------------------------------------------------------------


async def stats(http: httpx.AsyncClient, authority: str) -> dict[str, Any]:
    r = await http.get("/v1/stats", headers=key(authority))
    assert r.status_code == 200, r.text
    return r.json()


def counts(answer: dict[str, Any]) -> tuple[int, int, int, int, int]:
    transfers = answer["kinds"]["transfer"]
    return (transfers["total"], transfers["by_stage"].get("awaiting_consents", 0),
            transfers["by_stage"].get("refused", 0), transfers["by_outcome"].get("refused", 0),
            transfers["by_partner"].get("KZ", 0))


async def test_stats_count_the_callers_cases_by_stage_outcome_and_partner(http):
    """Spain's view (es-moj): no other test touches Spanish transfers, so the counts are exact."""
    before = counts(await stats(http, "es-moj"))
    spanish = {"administering_state": "ES", "person": {**BASE["person"], "citizenships": ["ES"]}}
    await open_case(http, by="es-moj", expect_stage="awaiting_consents", **spanish)
    await open_case(http, by="es-moj", expect_stage="refused", judgment=NOT_FINAL, **spanish)
    expected = tuple(n + d for n, d in zip(before, (2, 1, 1, 1, 2)))
    after = await poll(lambda: stats(http, "es-moj"), lambda a: counts(a) == expected)
    assert counts(after) == expected
    assert after["state"] == "ES"
    assert after["registry"]["treaties"] == len(TREATIES)
    assert "KZ" in after["registry"]["partners"]
    assert after["registry"]["partner_countries"] == len(after["registry"]["partners"])


# ---- operations ------------------------------------------------------------------------------


async def test_health_and_readiness(http):
    assert (await http.get("/healthz")).status_code == 200
    ready = await http.get("/readyz")
    assert ready.status_code == 200, ready.text
    assert ready.json()["temporal"] == "reachable"


async def test_metrics_use_route_templates_never_references(http):
    reference = await open_case(http)
    assert (await http.get(f"/v1/transfers/{reference}", headers=key("kz-gpo"))).status_code == 200
    assert (await http.get(f"/v1/transfers/{reference}", headers=key("fr-moj"))).status_code == 404
    assert (await http.get(f"/v1/nowhere/{reference}", headers=key("kz-gpo"))).status_code == 404
    r = await http.get("/metrics")
    assert r.status_code == 200
    text = r.text
    assert "treatyflow_http_requests_total" in text
    assert re.search(r'treatyflow_http_requests_total\{[^}]*route="/v1/transfers/\{reference\}"[^}]*status="200"', text) \
        or re.search(r'treatyflow_http_requests_total\{[^}]*status="200"[^}]*route="/v1/transfers/\{reference\}"', text), \
        text
    assert re.search(r'route="/v1/transfers/\{reference\}"[^}]*status="404"|status="404"[^}]*route="/v1/transfers/'
                     r'\{reference\}"', text)
    assert reference not in text
    assert BASE["person"]["full_name"] not in text


async def test_the_api_documentation(http):
    docs = await http.get("/docs")
    assert docs.status_code == 200 and "text/html" in docs.headers["content-type"]
    spec = await http.get("/openapi.json")
    assert spec.status_code == 200
    assert {"/v1/transfers", "/v1/transfers/{reference}", "/v1/inbox", "/v1/stats"} <= set(spec.json()["paths"])
