"""Who may do what, over real HTTP: every action of API.md's transfer half against every authority
of the directory, on a KZ→UZ case in the stage the action needs.

401 without a usable key; 403 for every authority whose role has no part in transfers (a court,
an executing authority), of a party state or a third one, for every reference, existing or not
(the check needs no lookup, so it reveals nothing); 404 for every other authority of a third
state, with exactly the body a nonexistent reference gets; 403 for a party state's authority whose
role may not take the action; 200/201 for the ones that may, with the effect visible in the case. Refused attempts leave the
case untouched and are logged (authority, route template, reference), never with personal data."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest
import structlog

from tests.api import helpers
from tests.api.helpers import AUTHORITIES, case_at, open_case, today, view
from tests.support import key
from treatyflow.samples import BASE, transfer_body

pytestmark = pytest.mark.asyncio(loop_scope="session")
http = helpers.http  # the fixture: one paced client for the module

ACTIONS = ("open", "read", "declaration", "legal-review", "decisions", "handover", "withdrawal", "list")

# The roles with a part in transfers (API.md, "Conventions"). Every other authority gets 403 for
# every action on transfers, before any lookup: its row below is all 403, whichever its state.
TRANSFER_ROLES = frozenset({"central_authority", "prison_service"})
NO_PART = (403,) * len(ACTIONS)

# The permission matrix for a KZ→UZ transfer case (sentencing KZ, administering UZ), for the
# authorities whose role has a part in transfers.
#                 open  read  decl  review decide handover withdraw list
PARTS: dict[str, tuple[int, ...]] = {
    "kz-gpo":    (201,  200,  200,  403,   200,   403,     200,     200),
    "kz-penal":  (403,  200,  200,  403,   403,   403,     200,     200),
    "uz-gpo":    (201,  200,  403,  200,   200,   200,     403,     200),
    "uz-penal":  (403,  200,  403,  403,   403,   200,     403,     200),
    "fr-moj":    (403,  404,  404,  404,   404,   404,     404,     200),
    "fr-penal":  (403,  404,  404,  404,   404,   404,     404,     200),
    "it-moj":    (403,  404,  404,  404,   404,   404,     404,     200),
    "es-moj":    (403,  404,  404,  404,   404,   404,     404,     200),
    "gb-ukca":   (403,  404,  404,  404,   404,   404,     404,     200),
    "hu-moj":    (403,  404,  404,  404,   404,   404,     404,     200),
    "mc-dsj":    (403,  404,  404,  404,   404,   404,     404,     200),
}
NO_PART_IN_TRANSFERS = [a for a, (_, role) in AUTHORITIES.items() if role not in TRANSFER_ROLES]
assert set(PARTS) == set(AUTHORITIES) - set(NO_PART_IN_TRANSFERS)
assert {"kz-court", "kz-afm", "kz-police", "fr-court"} <= set(NO_PART_IN_TRANSFERS)


def expected_row(authority: str) -> tuple[int, ...]:
    """The statuses ``authority`` gets, action by action: the one place the rule that a role with
    no part in transfers gets 403 for everything (party state or not) is applied."""
    return NO_PART if AUTHORITIES[authority][1] not in TRANSFER_ROLES else PARTS[authority]


MATRIX: dict[str, tuple[int, ...]] = {authority: expected_row(authority) for authority in AUTHORITIES}

# The stage each action on an existing case needs.
STAGE_FOR = {"read": "awaiting_consents", "declaration": "awaiting_declaration",
             "legal-review": "awaiting_legal_review", "decisions": "awaiting_consents",
             "handover": "awaiting_handover", "withdrawal": "awaiting_consents"}

# What a successful act leaves the case in.
STAGE_AFTER = {"declaration": "awaiting_consents", "legal-review": "awaiting_consents",
               "decisions": "awaiting_consents", "handover": "transferred", "withdrawal": "withdrawn"}

_shared: dict[tuple[str, str], str] = {}


async def shared_case(http: httpx.AsyncClient, api_url: str, stage: str) -> str:
    """One case per stage for the attempts that must be refused (they change nothing)."""
    if (api_url, stage) not in _shared:
        _shared[(api_url, stage)] = await case_at(http, stage)
    return _shared[(api_url, stage)]


def act_body(action: str, authority: str) -> dict[str, Any] | None:
    on = today().isoformat()
    state = AUTHORITIES[authority][0]
    return {
        "declaration": {"signed_on": on, "voluntary": True, "informed_of_consequences": True},
        "legal-review": {"dual_criminality": "satisfied", "note": "theft is an offence in UZ"},
        "decisions": {"state": state, "decision": "consent"},
        "handover": {"completed_on": on, "place": "Zhibek Zholy - Gishtkuprik"},
        "withdrawal": {"withdrawn_on": on, "reason": "the person withdrew consent"},
    }.get(action)


async def attempt(http: httpx.AsyncClient, action: str, reference: str | None, headers: dict[str, str],
                  authority: str = "kz-gpo", body: dict[str, Any] | None = None) -> httpx.Response:
    if action == "open":
        return await http.post("/v1/transfers", json=body or transfer_body(), headers=headers)
    if action == "list":
        return await http.get("/v1/transfers", headers=headers)
    if action == "read":
        return await http.get(f"/v1/transfers/{reference}", headers=headers)
    return await http.post(f"/v1/transfers/{reference}/{action}", json=body or act_body(action, authority),
                           headers=headers)


def acts(case: dict[str, Any]) -> list[dict[str, Any]]:
    """The case's audit trail without the system's own entries (notices land asynchronously)."""
    return [e for e in case["events"] if e["actor"] != "system"]


def matrix_cases(wanted: set[int]) -> list:
    return [pytest.param(action, authority, status, id=f"{action}-{authority}")
            for authority, row in MATRIX.items() for action, status in zip(ACTIONS, row) if status in wanted]


# ---- allowed ------------------------------------------------------------------------------


@pytest.mark.parametrize(("action", "authority", "status"), matrix_cases({200, 201}))
async def test_allowed(http, api_url, action, authority, status):
    """An authority whose role may take the action takes it, on a case in the stage it needs."""
    state = AUTHORITIES[authority][0]
    if action == "open":
        body = transfer_body(opening_state=state)
        r = await attempt(http, action, None, key(authority), authority, body)
        assert r.status_code == 201, r.text
        assert r.json()["reference"] == body["reference"]
        assert r.json()["stage"] == "awaiting_consents"
        assert (await view(http, body["reference"], by="kz-gpo"))["events"][0]["actor"] == authority
        return
    if action == "list":
        r = await attempt(http, action, None, key(authority), authority)
        assert r.status_code == 200, r.text
        assert all(state in item["states"] for item in r.json()["items"]), r.json()
        return
    if action == "read":
        reference = await shared_case(http, api_url, STAGE_FOR[action])
        r = await attempt(http, action, reference, key(authority), authority)
        assert r.status_code == 200, r.text
        assert r.json()["reference"] == reference
        return
    reference = await case_at(http, STAGE_FOR[action])
    r = await attempt(http, action, reference, key(authority), authority)
    assert r.status_code == status, r.text
    answered = r.json()
    assert answered["stage"] == STAGE_AFTER[action]
    assert any(e["actor"] == authority for e in answered["events"]), answered["events"]
    if action == "decisions":
        assert [(d["state"], d["decision"], d["authority"]) for d in answered["decisions"]] == \
            [(state, "consent", authority)]
    assert (await view(http, reference))["stage"] == STAGE_AFTER[action]


# ---- forbidden to a party state's authority -------------------------------------------------


@pytest.mark.parametrize(("action", "authority", "status"), matrix_cases({403}))
async def test_forbidden(http, api_url, action, authority, status):
    """A party state's authority whose role may not take the action gets 403, and nothing changes
    (opening by a prison service, a court or a third state's authority: no case is created)."""
    if action == "open":
        body = transfer_body()
        r = await attempt(http, action, None, key(authority), authority, body)
        assert r.status_code == 403, r.text
        assert r.json()["error"]["code"] == "forbidden"
        missing = await http.get(f"/v1/transfers/{body['reference']}", headers=key("kz-gpo"))
        assert missing.status_code == 404, "a refused opening created a case"
        return
    if action == "list":
        r = await attempt(http, action, None, key(authority), authority)
        assert r.status_code == 403, r.text
        return
    reference = await shared_case(http, api_url, STAGE_FOR[action])
    before = await view(http, reference)
    r = await attempt(http, action, reference, key(authority), authority)
    assert r.status_code == 403, r.text
    assert r.json()["error"]["code"] == "forbidden"
    after = await view(http, reference)
    assert (after["stage"], after["decisions"], acts(after)) == (before["stage"], before["decisions"], acts(before))


# ---- hidden from a third state ------------------------------------------------------------


@pytest.mark.parametrize(("action", "authority", "status"), matrix_cases({404}))
async def test_third_state_sees_nothing(http, api_url, action, authority, status):
    """A third state's authority gets exactly the answer it would get for a reference that does
    not exist: the case's existence is never revealed."""
    reference = await shared_case(http, api_url, STAGE_FOR[action])
    r = await attempt(http, action, reference, key(authority), authority)
    nonexistent = await attempt(http, action, f"NOPE-{uuid.uuid4().hex[:12]}", key(authority), authority)
    assert r.status_code == nonexistent.status_code == 404, r.text
    assert r.json() == nonexistent.json()
    assert r.headers.get("content-type") == nonexistent.headers.get("content-type")
    assert reference not in r.text


async def test_third_state_lists_none_of_the_parties_cases(http, api_url):
    reference = await shared_case(http, api_url, "awaiting_consents")
    for authority in ("fr-moj", "it-moj", "hu-moj"):
        r = await http.get("/v1/transfers", headers=key(authority))
        assert r.status_code == 200
        assert reference not in r.text
        assert all(AUTHORITIES[authority][0] in item["states"] for item in r.json()["items"])


# ---- no usable key ------------------------------------------------------------------------

BAD_HEADERS = {
    "no key": {},
    "unknown key": {"Authorization": "Bearer demo-nobody"},
    "made-up key": {"Authorization": "Bearer 3f1c0ffee"},
    "basic scheme": {"Authorization": "Basic demo-kz-gpo"},
    "no scheme": {"Authorization": "demo-kz-gpo"},
    "scheme only": {"Authorization": "Bearer"},
}


@pytest.mark.parametrize("action", ACTIONS)
@pytest.mark.parametrize("bad", BAD_HEADERS)
async def test_unauthenticated(http, api_url, action, bad):
    reference = await shared_case(http, api_url, STAGE_FOR.get(action, "awaiting_consents"))
    body = transfer_body() if action == "open" else None
    r = await attempt(http, action, reference, BAD_HEADERS[bad], body=body)
    assert r.status_code == 401, r.text
    assert r.json()["error"]["code"] == "unauthenticated"
    assert r.headers.get("www-authenticate", "").lower().startswith("bearer")
    assert reference not in r.text
    if body:
        assert (await http.get(f"/v1/transfers/{body['reference']}", headers=key("kz-gpo"))).status_code == 404
    elif action != "list":
        assert (await view(http, reference))["stage"] == STAGE_FOR[action]


@pytest.mark.parametrize("path", ["/v1/inbox", "/v1/stats", "/v1/treaties", "/v1/treaties/kz-uz-transfer-2021"])
@pytest.mark.parametrize("bad", ["no key", "unknown key", "basic scheme"])
async def test_the_common_endpoints_need_a_key(http, path, bad):
    r = await http.get(path, headers=BAD_HEADERS[bad])
    assert r.status_code == 401, r.text


# ---- withdrawal at any open stage -------------------------------------------------------------


@pytest.mark.parametrize("stage", ["awaiting_declaration", "awaiting_legal_review", "awaiting_consents",
                                   "awaiting_handover"])
@pytest.mark.parametrize("authority", ["kz-gpo", "kz-penal"])
async def test_the_sentencing_state_may_withdraw_at_any_open_stage(http, stage, authority):
    reference = await case_at(http, stage)
    r = await attempt(http, "withdrawal", reference, key(authority), authority)
    assert r.status_code == 200, r.text
    assert (r.json()["stage"], r.json()["outcome"], r.json()["pending_actions"]) == ("withdrawn", "withdrawn", [])


# ---- particular refusals and the order of checks ---------------------------------------------


@pytest.mark.parametrize(("authority", "for_state"), [("kz-gpo", "UZ"), ("uz-gpo", "KZ")])
async def test_a_central_authority_may_not_decide_for_the_other_state(http, api_url, authority, for_state):
    reference = await shared_case(http, api_url, "awaiting_consents")
    r = await http.post(f"/v1/transfers/{reference}/decisions", headers=key(authority),
                        json={"state": for_state, "decision": "consent"})
    assert r.status_code == 403, r.text
    assert (await view(http, reference))["decisions"] == []


async def test_a_third_state_may_not_open_a_case_between_two_others(http):
    """fr-moj opening KZ→UZ: 403, even with a valid body."""
    body = transfer_body()
    r = await http.post("/v1/transfers", json=body, headers=key("fr-moj"))
    assert r.status_code == 403, r.text
    assert (await http.get(f"/v1/transfers/{body['reference']}", headers=key("kz-gpo"))).status_code == 404


async def test_a_party_central_authority_opens_a_case_in_either_direction(http):
    """uz-gpo opens a UZ→KZ case; a KZ citizen serving in KZ."""
    reference = await open_case(http, by="uz-gpo", sentencing_state="UZ", administering_state="KZ",
                                person={**BASE["person"], "citizenships": ["KZ"]})
    assert (await view(http, reference, by="kz-gpo"))["sentencing_state"] == "UZ"


async def test_401_comes_before_404(http):
    r = await http.get(f"/v1/transfers/NOPE-{uuid.uuid4().hex[:12]}")
    assert r.status_code == 401


@pytest.mark.parametrize("action", [a for a in ACTIONS if a not in ("open", "list")])
@pytest.mark.parametrize("authority", NO_PART_IN_TRANSFERS)
async def test_a_role_with_no_part_in_transfers_gets_403_for_every_reference(http, api_url, authority, action):
    """A court or an executing authority, of a party state or a third one (fr-court): 403 for an
    existing case and for a reference that does not exist alike, with exactly the same body. The
    check needs no lookup, so it comes before the 404 and reveals nothing."""
    reference = await shared_case(http, api_url, STAGE_FOR[action])
    r = await attempt(http, action, reference, key(authority), authority)
    nonexistent = await attempt(http, action, f"NOPE-{uuid.uuid4().hex[:12]}", key(authority), authority)
    malformed = await attempt(http, action, "a'b", key(authority), authority)
    assert r.status_code == nonexistent.status_code == malformed.status_code == 403, r.text
    assert r.json()["error"]["code"] == "forbidden"
    assert r.json() == nonexistent.json() == malformed.json()
    assert r.headers.get("content-type") == nonexistent.headers.get("content-type")
    assert reference not in r.text


@pytest.mark.parametrize(("authority", "action", "reference_stage"), [
    ("kz-penal", "open", None),
    ("kz-court", "decisions", "awaiting_consents"),
    ("uz-penal", "declaration", "awaiting_declaration"),
    ("uz-gpo", "withdrawal", "awaiting_consents"),
])
async def test_403_comes_before_422(http, api_url, authority, action, reference_stage):
    """A forbidden caller learns nothing about the body's validity."""
    reference = await shared_case(http, api_url, reference_stage) if reference_stage else None
    invalid = {"unknown_field": True}
    r = await attempt(http, action, reference, key(authority), authority, invalid)
    assert r.status_code == 403, r.text


async def test_404_comes_before_422(http, api_url):
    reference = await shared_case(http, api_url, "awaiting_consents")
    r = await http.post(f"/v1/transfers/{reference}/decisions", json={"nonsense": 1}, headers=key("fr-moj"))
    assert r.status_code == 404, r.text


# ---- refused attempts are logged --------------------------------------------------------------


async def test_refused_attempts_are_logged_without_personal_data(http, api_url):
    reference = await shared_case(http, api_url, "awaiting_consents")
    declaration_case = await shared_case(http, api_url, "awaiting_declaration")
    body = transfer_body()  # carries the person's name and date of birth
    name, born = body["person"]["full_name"], body["person"]["date_of_birth"]
    with structlog.testing.capture_logs() as logs:
        assert (await http.get(f"/v1/transfers/{reference}")).status_code == 401
        assert (await http.get(f"/v1/transfers/{reference}", headers=key("fr-moj"))).status_code == 404
        assert (await http.get(f"/v1/transfers/{reference}", headers=key("kz-court"))).status_code == 403
        assert (await http.get(f"/v1/transfers/{reference}", headers=key("fr-court"))).status_code == 403
        assert (await http.post("/v1/transfers", json=body, headers=key("fr-moj"))).status_code == 403
        assert (await http.post("/v1/transfers", json=body, headers=key("kz-penal"))).status_code == 403
        r = await http.post(f"/v1/transfers/{declaration_case}/declaration", headers=key("uz-penal"),
                            json=act_body("declaration", "uz-penal"))
        assert r.status_code == 403
    refused = [e for e in logs if e.get("event") == "request refused"]
    seen = {(e.get("status"), e.get("authority"), e.get("route"), e.get("reference")) for e in refused}
    assert {
        (401, None, "/v1/transfers/{reference}", reference),
        (404, "fr-moj", "/v1/transfers/{reference}", reference),
        (403, "kz-court", "/v1/transfers/{reference}", reference),
        (403, "fr-court", "/v1/transfers/{reference}", reference),
        (403, "fr-moj", "/v1/transfers", body["reference"]),
        (403, "uz-penal", "/v1/transfers/{reference}/declaration", declaration_case),
    } <= seen, refused
    assert any(e.get("authority") == "kz-penal" and e.get("route") == "/v1/transfers" for e in refused), refused
    everything = repr(logs)
    assert name not in everything and born not in everything
    assert "Almaty City Court" not in everything
