"""/v1/stats over real HTTP against the session's app (its stats cache and count gate as
configured): the overdue count of each kind, and the registry figures of the caller's own state.

Overdue, honestly: a deadline given as a date ends at the end of that day (UTC), so a request
whose ``respond_by`` is today is not overdue today (the API says so), and the API refuses a
``respond_by`` in the past. A request whose ``respond_by`` passed yesterday, as if it had waited
since, is filed through the client library (treatyflow.cases), which the API itself uses: once
accepted, each of its measures is overdue at once (its view says so) without waiting days. Each
overdue measure counts once; the request itself, which waits for no one while its measures
execute, adds nothing.

The registry figures are checked against domain/data/treaties.json read here, on its own.

The caseload figures (by stage and partner, overdue by action and partner, the time spent in each
stage) are listed from visibility like the counts, for Hungary's transfers to Italy: no other test
has cases of Hungary, so its figures are this test's cases alone. Their times are the engine's
clock, checked against the wall clock of this test around each act."""

from __future__ import annotations

import asyncio
import json
import time
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.api.helpers import http, today  # noqa: F401 - http is a fixture
from domain.assistance import AssistanceRequest
from tests.support import key, poll
from treatyflow.cases import open_assistance
from treatyflow.samples import BASE, assistance_body, transfer_body

pytestmark = pytest.mark.asyncio(loop_scope="session")

TREATIES_JSON = Path(__file__).resolve().parents[2] / "domain" / "data" / "treaties.json"


def evidence() -> list[dict[str, str]]:
    return [{"item_id": "e1", "description": "d", "sha256": "ab" * 32, "collected_on": today().isoformat()}]


async def stats(http: httpx.AsyncClient, authority: str) -> dict[str, Any]:
    r = await http.get("/v1/stats", headers=key(authority))
    assert r.status_code == 200, r.text
    return r.json()


def overdue(answer: dict[str, Any], kind: str = "assistance") -> int:
    return answer["kinds"][kind]["overdue"]


async def request_view(http: httpx.AsyncClient, reference: str) -> dict[str, Any]:
    r = await http.get(f"/v1/assistance-requests/{reference}", headers=key("kz-gpo"))
    assert r.status_code == 200, r.text
    return r.json()


# ---- overdue -----------------------------------------------------------------------------------

async def test_every_kind_counts_its_overdue_cases(http):
    for authority, kinds in (("kz-gpo", {"transfer", "assistance"}), ("kz-penal", {"transfer"}),
                             ("kz-court", {"assistance"})):
        answer = await stats(http, authority)
        assert set(answer["kinds"]) == kinds
        for kind in kinds:
            assert isinstance(overdue(answer, kind), int) and overdue(answer, kind) >= 0, answer


async def file_past_due_request(dev_client, dev_settings, **changes) -> str:
    """FR asks KZ; received three days ago, respond_by yesterday: filed through the client library."""
    body = assistance_body(requesting_state="FR", requested_state="KZ",
                           received_on=(today() - timedelta(days=3)).isoformat(),
                           respond_by=(today() - timedelta(days=1)).isoformat(), **changes)
    await open_assistance(dev_client, AssistanceRequest.model_validate(body), "fr-moj", dev_settings.task_queue)
    return body["reference"]


async def test_a_request_due_today_is_not_overdue_today(http):
    """respond_by today: once accepted, the measures are due today, and not overdue, in the view,
    the inbox and the stats (the deadline ends at the end of the day)."""
    body = assistance_body(requesting_state="FR", requested_state="KZ", received_on=today().isoformat(),
                           respond_by=today().isoformat())
    reference = body["reference"]
    r = await http.post("/v1/assistance-requests", json=body, headers=key("fr-moj"))
    assert r.status_code == 201, r.text
    r = await http.post(f"/v1/assistance-requests/{reference}/review", json={"decision": "accept"},
                        headers=key("kz-gpo"))
    assert r.status_code == 200, r.text
    seen = await poll(lambda: request_view(http, reference),
                      lambda v: {p["measure_id"] for p in v["pending_actions"]} == {"m1", "m2", "m3"})
    due = {p["measure_id"]: (p["due_on"], p["overdue"]) for p in seen["pending_actions"]}
    assert due["m1"] == due["m3"] == (today().isoformat(), False), seen["pending_actions"]
    assert seen["overdue"] is False, seen

    async def inbox_of_afm() -> list[dict[str, Any]]:
        r = await http.get("/v1/inbox", headers=key("kz-afm"))
        assert r.status_code == 200, r.text
        return [i for i in r.json()["items"] if i["reference"] == reference]

    items = await poll(inbox_of_afm, bool, timeout=12.0, every=0.2)  # visibility follows within a second
    assert [(i["measure_id"], i["due_on"], i["overdue"]) for i in items] == [("m1", today().isoformat(), False)]
    r = await http.post(f"/v1/assistance-requests/{reference}/withdrawal", json={"reason": "no longer needed"},
                        headers=key("fr-moj"))
    assert r.status_code == 200, r.text


async def test_an_overdue_measure_counts_once_for_the_states_of_its_request(http, dev_client, dev_settings):
    """FR asks KZ, respond_by yesterday: once accepted, the two measures that need no court (m1, m3)
    execute with a deadline already past; m2 (a search) waits for the court, 30 days. KZ's and FR's
    central authorities count two more overdue actions (not three: the request adds none); UZ,
    not a party, none. Once the results are in, the two are no longer counted."""
    settle = 12.0  # the stats cache is a few seconds old at most; visibility follows within a second
    answers = {a: await stats(http, a) for a in ("kz-gpo", "fr-moj", "uz-gpo")}
    before = {a: overdue(answer) for a, answer in answers.items()}
    reference = await file_past_due_request(dev_client, dev_settings)

    r = await http.post(f"/v1/assistance-requests/{reference}/review", json={"decision": "accept"},
                        headers=key("kz-gpo"))
    assert r.status_code == 200, r.text

    # the case itself says its actions are overdue (the measures' escalation reached the request)
    seen = await poll(lambda: request_view(http, reference),
                      lambda v: {p["measure_id"] for p in v["pending_actions"] if p["overdue"]} == {"m1", "m3"},
                      timeout=settle)
    assert seen["overdue"] is True, seen
    assert {p["measure_id"] for p in seen["pending_actions"] if p["overdue"]} == {"m1", "m3"}, seen
    assert all(not p["overdue"] for p in seen["pending_actions"] if p["measure_id"] == "m2"), seen

    for authority in ("kz-gpo", "fr-moj"):
        after = await poll(lambda: stats(http, authority), lambda a: overdue(a) >= before[authority] + 2,
                           timeout=settle, every=0.5)
        assert overdue(after) == before[authority] + 2, (authority, before[authority], after["kinds"])
        # the caseload's figures say which: two results to report, with that partner
        partner = "FR" if authority == "kz-gpo" else "KZ"
        was = answers[authority]["kinds"]["assistance"]

        def caseload_shows_them(a: dict[str, Any]) -> bool:
            now = a["kinds"]["assistance"]
            return all(now[figure].get(key, 0) == was[figure].get(key, 0) + 2 for figure, key in (
                ("overdue_by_action", "report_result"), ("overdue_by_partner", partner)))

        assert caseload_shows_them(await poll(lambda: stats(http, authority), caseload_shows_them, timeout=settle,
                                              every=0.5)), authority
    assert overdue(await stats(http, "uz-gpo")) == before["uz-gpo"]

    # the results are in: no longer overdue
    peak = {a: before[a] + 2 for a in ("kz-gpo", "fr-moj")}
    for measure, by in (("m1", "kz-afm"), ("m3", "kz-police")):
        r = await http.post(f"/v1/assistance-requests/{reference}/measures/{measure}/result",
                            json={"outcome": "executed", "evidence": evidence()}, headers=key(by))
        assert r.status_code == 200, r.text
    for authority in ("kz-gpo", "fr-moj"):
        done = await poll(lambda: stats(http, authority), lambda a: overdue(a) <= peak[authority] - 2,
                          timeout=settle, every=0.5)
        assert overdue(done) == peak[authority] - 2, (authority, peak[authority], done["kinds"])


async def test_a_confidential_requests_overdue_measures_count_only_for_central_authorities(
        http, dev_client, dev_settings):
    """The same, confidential: KZ's central authority counts its two overdue measures, the court
    and the executing authorities of KZ (who may not see confidential requests counted) do not."""
    before = {a: overdue(await stats(http, a)) for a in ("kz-gpo", "kz-court", "kz-afm")}
    reference = await file_past_due_request(dev_client, dev_settings, confidential=True)
    r = await http.post(f"/v1/assistance-requests/{reference}/review", json={"decision": "accept"},
                        headers=key("kz-gpo"))
    assert r.status_code == 200, r.text
    seen = await poll(lambda: request_view(http, reference), lambda v: v["overdue"], timeout=12.0)
    assert seen["overdue"] is True, seen
    central = await poll(lambda: stats(http, "kz-gpo"), lambda a: overdue(a) >= before["kz-gpo"] + 2,
                         timeout=12.0, every=0.5)
    assert overdue(central) == before["kz-gpo"] + 2, central["kinds"]
    for authority in ("kz-court", "kz-afm"):
        assert overdue(await stats(http, authority)) == before[authority], authority
    r = await http.post(f"/v1/assistance-requests/{reference}/withdrawal", json={"reason": "no longer needed"},
                        headers=key("fr-moj"))
    assert r.status_code == 200, r.text


# ---- the registry of the caller's state ------------------------------------------------------------

def expected_registry(state: str, on: date) -> dict[str, Any]:
    """The figures counted from the JSON file itself: the treaties in force on ``on`` (no recorded
    entry into force, or one on or before the day) that ``state`` is a party to."""
    treaties = json.loads(TREATIES_JSON.read_text(encoding="utf-8"))["treaties"]
    mine = [t for t in treaties if state in t["parties"]
            and (t.get("in_force_on") is None or date.fromisoformat(t["in_force_on"]) <= on)]

    def figures(chosen: list[dict[str, Any]]) -> dict[str, Any]:
        rules = [rule for t in chosen for rule in t[t["kind"]].values()]
        return {"treaties": len(chosen), "ids": sorted(t["id"] for t in chosen),
                "partners": sorted({p for t in chosen for p in t["parties"]} - {state}),
                "verified": sum(all(r["verified"] for r in t[t["kind"]].values()) for t in chosen),
                "rules": {"verified": sum(1 for r in rules if r["verified"]), "total": len(rules)}}

    return {**figures(mine), "by_kind": {k: figures([t for t in mine if t["kind"] == k])
                                         for k in ("transfer", "assistance")}}


async def test_the_registry_figures_are_the_callers_own_states(http):
    on = today()
    answers = {state: await stats(http, authority) for state, authority in
               (("KZ", "kz-gpo"), ("UZ", "uz-gpo"), ("FR", "fr-moj"))}
    for state, answer in answers.items():
        assert answer["registry"]["in_force"] == expected_registry(state, on), state
    kz, uz, fr = (answers[s]["registry"]["in_force"] for s in ("KZ", "UZ", "FR"))
    assert kz != uz and kz != fr and uz != fr
    # what the data says today, spelled out (a change of treaties.json changes these on purpose)
    assert kz["by_kind"]["transfer"]["treaties"] == 16 and kz["by_kind"]["assistance"]["treaties"] == 14
    assert "cis-1998-transfer" in kz["by_kind"]["transfer"]["ids"] and "RU" in kz["partners"]
    assert uz["by_kind"]["transfer"]["ids"] == ["kz-uz-transfer-2021"]  # UZ is no party to the CIS transfer convention
    assert uz["by_kind"]["assistance"]["ids"] == ["cis-1993-minsk-legal-assistance",
                                                  "cis-2002-chisinau-legal-assistance"]
    assert uz["by_kind"]["assistance"]["verified"] == 0 and "KZ" in uz["by_kind"]["assistance"]["partners"]
    assert fr["by_kind"]["transfer"]["ids"] == ["coe-ets-112"]
    assert fr["by_kind"]["transfer"]["partners"] == ["ES", "GB", "HU", "IT"]
    # ETS 112 Art. 3(1) verified (5 of 7), KZ-FR's refusal grounds as reported (1 of 3)
    assert fr["rules"] == {"verified": 6, "total": 10}
    assert kz["rules"]["verified"] < kz["rules"]["total"]
    # the figures are the state's, whatever the caller's role: the registry is public to every one
    assert (await stats(http, "kz-penal"))["registry"] == answers["KZ"]["registry"]
    assert (await stats(http, "kz-court"))["registry"] == answers["KZ"]["registry"]
    # and the fields kept from before
    for answer in answers.values():
        registry = answer["registry"]
        assert registry["treaties"] == len(json.loads(TREATIES_JSON.read_text())["treaties"])
        assert registry["partner_countries"] == len(registry["partners"])


# ---- the caseload at a glance ---------------------------------------------------------------------

async def open_hu_to_it(http: httpx.AsyncClient) -> tuple[str, float]:
    """A transfer from Hungary to Italy (each state's central authority acts for it), in
    awaiting_consents; the monotonic time its answer came."""
    body = transfer_body(opening_state="HU", sentencing_state="HU", administering_state="IT",
                         person={**BASE["person"], "citizenships": ["IT"]})
    r = await http.post("/v1/transfers", json=body, headers=key("hu-moj"))
    assert r.status_code == 201 and r.json()["stage"] == "awaiting_consents", r.text
    return body["reference"], time.monotonic()


async def both_consent(http: httpx.AsyncClient, reference: str) -> tuple[float, float]:
    """Both decisions; the monotonic times just before the second was sent and once it answered."""
    r = await http.post(f"/v1/transfers/{reference}/decisions", headers=key("hu-moj"),
                        json={"state": "HU", "decision": "consent"})
    assert r.status_code == 200, r.text
    sent = time.monotonic()
    r = await http.post(f"/v1/transfers/{reference}/decisions", headers=key("it-moj"),
                        json={"state": "IT", "decision": "consent"})
    assert r.status_code == 200 and r.json()["stage"] == "awaiting_handover", r.text
    return sent, time.monotonic()


async def test_the_caseload_by_stage_and_partner_with_the_time_each_stage_took(http):
    """Three transfers HU→IT: A consented after 2 s and handed over, B consented after 3.5 s and
    waiting for its handover, C still waiting for the consents. Hungary's stats show them by stage
    and partner, nothing overdue, and how long the consents took: two cases, the median A's time
    and the p90 B's (nearest rank of two), each at least what passed between the case's opening
    and its second consent here, and at most what passed around them (whole seconds, so one more)."""
    before = (await stats(http, "hu-moj"))["kinds"]["transfer"]
    assert before["by_stage_and_partner"] == {} and before["stage_seconds"] == {}, "Hungary has other cases"
    started = time.monotonic()
    (a, a_open), (b, b_open), (c, _) = [await open_hu_to_it(http) for _ in range(3)]
    await asyncio.sleep(2.0)
    a_sent, a_done = await both_consent(http, a)
    await asyncio.sleep(1.5)
    b_sent, b_done = await both_consent(http, b)
    arranged = await poll(lambda: http.get(f"/v1/transfers/{a}", headers=key("it-moj")),
                          lambda r: r.json()["handover"] is not None)
    r = await http.post(f"/v1/transfers/{a}/handover", headers=key("it-moj"),
                        json={"completed_on": today().isoformat(), "place": arranged.json()["handover"]["place"]})
    assert r.status_code == 200 and r.json()["stage"] == "transferred", r.text

    def shows_all(answer: dict[str, Any]) -> bool:
        return "awaiting_handover" in answer["kinds"]["transfer"]["stage_seconds"]

    answer = await poll(lambda: stats(http, "hu-moj"), shows_all, timeout=12.0, every=0.5)
    figures = answer["kinds"]["transfer"]
    assert figures["by_stage_and_partner"] == {"awaiting_consents": {"IT": 1}, "awaiting_handover": {"IT": 1},
                                               "transferred": {"IT": 1}}, figures
    assert figures["by_stage"] == {"awaiting_consents": 1, "awaiting_handover": 1, "transferred": 1}
    assert figures["overdue"] == 0 and figures["overdue_by_action"] == {} and figures["overdue_by_partner"] == {}

    consents = figures["stage_seconds"]["awaiting_consents"]
    assert consents["cases"] == 2, figures["stage_seconds"]
    assert int(a_sent - a_open) <= consents["median"] <= a_done - started + 1, (consents, a_sent - a_open)
    assert int(b_sent - b_open) <= consents["p90"] <= b_done - started + 1, (consents, b_sent - b_open)
    assert consents["median"] < consents["p90"], consents
    assert figures["stage_seconds"]["checking_eligibility"]["cases"] == 3
    assert figures["stage_seconds"]["awaiting_handover"]["cases"] == 1
    assert list(figures["stage_seconds"]) == ["checking_eligibility", "awaiting_consents", "awaiting_handover"]
    # the open cases, in their stage so far: C waiting for the consents since before A's decisions
    current = figures["current_stage_seconds"]
    assert {s: f["cases"] for s, f in current.items()} == {"awaiting_consents": 1, "awaiting_handover": 1}, current
    assert current["awaiting_consents"]["median"] >= int(b_sent - a_open), current
    assert datetime.fromisoformat(answer["caseload_as_of"]) <= datetime.now(timezone.utc)
    for reference in (b, c):  # no longer waiting
        r = await http.post(f"/v1/transfers/{reference}/withdrawal", headers=key("hu-moj"),
                            json={"withdrawn_on": today().isoformat(), "reason": "the person withdrew consent"})
        assert r.status_code == 200, r.text


async def test_a_late_caseload_listing_never_holds_back_the_counts(dev_env, dev_settings, monkeypatch):
    """The caseload figures list every case of a scope; a listing slower than the API's timeout
    (injected here) must not turn the whole answer into a 503: the counts come, with the last
    caseload figures or, before any, none — and the listing goes on for the next caller."""
    import dataclasses

    from api import common
    from tests.support import serve
    from tests.web.test_forms import signed_in
    from web.app import create_app

    listed = asyncio.Event()

    async def slow_caseload(app: Any, scope: Any) -> dict[str, Any]:
        await asyncio.sleep(2.5)
        listed.set()
        return {"as_of": "2026-12-07T00:00:00+00:00", "kinds": {kind: {"by_stage_and_partner": {}} for kind in scope[1]}}

    monkeypatch.setattr(common, "caseload_of", slow_caseload)
    settings = dataclasses.replace(dev_settings, dev_mode=True, api_timeout=1.0, caseload_max_age=60.0)
    async with serve(create_app(settings, dev_env.client)) as url, httpx.AsyncClient(base_url=url, timeout=15) as client:
        first = await client.get("/v1/stats", headers=key("kz-gpo"))
        assert first.status_code == 200, first.text
        assert first.json()["caseload_as_of"] is None and "total" in first.json()["kinds"]["transfer"]
        # the statistics page shows the counts and says the caseload is coming; its CSV is a "try again"
        await signed_in(client, "demo-kz-gpo")
        page = await client.get("/statistics")
        assert page.status_code == 200 and "The caseload is still being listed" in page.text, page.text[-2000:]
        assert "/statistics.csv" not in page.text
        assert (await client.get("/statistics.csv")).status_code == 503
        await asyncio.wait_for(listed.wait(), 5)  # the listing went on after the answer
        second = await client.get("/v1/stats", headers=key("kz-gpo"))
        assert second.json()["caseload_as_of"] == "2026-12-07T00:00:00+00:00"
        assert second.json()["kinds"]["transfer"]["by_stage_and_partner"] == {}
