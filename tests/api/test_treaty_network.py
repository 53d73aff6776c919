"""The treaty network beyond the demo, over real HTTP against the session's app (DOMAIN.md, "The
treaty network beyond the demo"): cases with Russia or Kyrgyzstan run under the CIS transfer
convention of 1998, a request between Uzbekistan and Kazakhstan under the CIS legal-assistance
conventions (Chisinau 2002, which supersedes Minsk 1993 between their common parties), an Uzbek
conviction for insult goes to legal review in Kazakhstan instead of being refused, and
``GET /v1/treaties`` counts what it loads. The counts are checked against
domain/data/treaties.json read here, on its own."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.api.helpers import http, open_case, today, view  # noqa: F401 - http is a fixture
from tests.support import key
from treatyflow.samples import BASE, assistance_body

pytestmark = pytest.mark.asyncio(loop_scope="session")

TREATIES_JSON = Path(__file__).resolve().parents[2] / "domain" / "data" / "treaties.json"


def shipped() -> list[dict[str, Any]]:
    return json.loads(TREATIES_JSON.read_text(encoding="utf-8"))["treaties"]


async def withdraw_transfer(http: httpx.AsyncClient, reference: str, by: str) -> None:
    r = await http.post(f"/v1/transfers/{reference}/withdrawal", headers=key(by),
                        json={"withdrawn_on": today().isoformat(), "reason": "test case closed"})
    assert r.status_code == 200 and r.json()["stage"] == "withdrawn", r.text


@pytest.mark.parametrize(("state", "central_authority"), [("RU", "ru-gp"), ("KG", "kg-gp")])
async def test_a_transfer_from_kazakhstan_to_a_cis_state_runs_under_the_cis_convention(http, state,
                                                                                       central_authority):
    reference = await open_case(http, administering_state=state, expect_stage="awaiting_consents",
                                person={**BASE["person"], "citizenships": [state]})
    case = await view(http, reference)
    assert case["treaty"] == "cis-1998-transfer"
    conditions = {c["condition"]: c for c in case["eligibility"]}
    assert all(c["outcome"] in ("satisfied", "not_applicable") for c in conditions.values()), conditions
    assert "CIS Convention (1998)" in conditions["remaining_term"]["basis"]
    # the convention lists the compensation of damage: the obligations are checked (none here)
    assert conditions["financial_obligations"]["outcome"] == "satisfied"
    assert conditions["pending_proceedings"]["outcome"] == "not_applicable"
    # the partner's central authority, from the directory, reads the case and is awaited
    assert (await view(http, reference, by=central_authority))["treaty"] == "cis-1998-transfer"
    assert {a["authority"] for a in case["pending_actions"]} == {"kz-gpo", central_authority}
    await withdraw_transfer(http, reference, "kz-gpo")


async def test_a_transfer_between_kazakhstan_and_france_still_has_no_treaty(http):
    reference = await open_case(http, administering_state="FR", expect_stage="refused",
                                person={**BASE["person"], "citizenships": ["FR"]})
    case = await view(http, reference)
    assert (case["treaty"], case["grounds"]) == (None, ["no_treaty"])


async def test_an_uzbek_conviction_for_insult_goes_to_legal_review_in_kazakhstan(http):
    """UZ art. 140 (insult) is ICCS 0209 in the Uzbek table: defamation left the Kazakh criminal
    code, insult did not, so the Kazakh central authority reviews the conduct; nothing is refused."""
    insult = {**BASE["judgment"], "court": "Tashkent City Court",
              "offences": [{"article": "140", "description": "Insult"}]}
    reference = await open_case(http, by="uz-gpo", sentencing_state="UZ", administering_state="KZ",
                                person={**BASE["person"], "citizenships": ["KZ"]}, judgment=insult,
                                expect_stage="awaiting_legal_review")
    case = await view(http, reference, by="kz-gpo")
    assert case["treaty"] == "kz-uz-transfer-2021" and case["grounds"] == []
    dual = next(c for c in case["eligibility"] if c["condition"] == "dual_criminality")
    assert dual["outcome"] == "needs_review" and "0209" in dual["detail"], dual
    await withdraw_transfer(http, reference, "uz-gpo")


async def test_an_uzbek_request_for_assistance_to_kazakhstan_runs_under_a_cis_convention(http):
    body = assistance_body(requesting_state="UZ", issuing_authority="Prosecutor General's Office, Tashkent")
    r = await http.post("/v1/assistance-requests", json=body, headers=key("uz-gpo"))
    assert r.status_code == 201, r.text
    request = r.json()
    # both states are parties to Chisinau 2002 and to Minsk 1993: Chisinau supersedes Minsk
    assert request["treaty"] == "cis-2002-chisinau-legal-assistance", request
    assert request["stage"] == "under_review" and request["grounds"] == [], request
    assert all(m["stage"] == "pending" for m in request["measures"]), request["measures"]
    r = await http.get(f"/v1/assistance-requests/{body['reference']}", headers=key("kz-gpo"))
    assert r.status_code == 200 and r.json()["treaty"] == "cis-2002-chisinau-legal-assistance", r.text
    r = await http.post(f"/v1/assistance-requests/{body['reference']}/withdrawal", headers=key("uz-gpo"),
                        json={"reason": "test request closed"})
    assert r.status_code == 200, r.text


async def test_the_treaty_list_counts_what_it_loads(http):
    treaties = shipped()
    rules = [rule for t in treaties for rule in t[t["kind"]].values()]
    expected = {
        "treaties": len(treaties),
        "treaties_verified": sum(all(r["verified"] for r in t[t["kind"]].values()) for t in treaties),
        "partner_states": len({p for t in treaties for p in t["parties"]}),
        "rules": len(rules),
        "rules_verified": sum(1 for r in rules if r["verified"]),
    }
    r = await http.get("/v1/treaties", headers=key("kz-penal"))
    assert r.status_code == 200, r.text
    answer = r.json()
    assert {k: answer[k] for k in expected} == expected
    assert set(answer) == {"items", *expected}
    # the items are the registry as loaded, the network's conventions among them
    items = {t["id"]: t for t in answer["items"]}
    assert set(items) == {t["id"] for t in treaties}
    assert {"cis-1993-minsk-legal-assistance", "cis-2002-chisinau-legal-assistance", "cis-1998-transfer"} <= set(items)
    assert items["cis-2002-chisinau-legal-assistance"]["supersedes"] == ["cis-1993-minsk-legal-assistance"]
    assert items["kz-uz-transfer-2021"]["supersedes"] == []
    # the counts the data gives today, spelled out (a change of treaties.json changes these on purpose)
    assert expected["partner_states"] > 20 and 0 < expected["rules_verified"] < expected["rules"]
    # the statistics' registry carries the same counts of the whole registry, whoever asks
    r = await http.get("/v1/stats", headers=key("uz-gpo"))
    assert r.status_code == 200, r.text
    registry = r.json()["registry"]
    assert {k: registry[k] for k in expected} == expected
    assert "KZ" in registry["partners"] and registry["partner_countries"] == len(registry["partners"])
