"""Shared helpers for the HTTP API tests: the demo authorities, a paced client, opening a case
and driving it to a stage (keys, polling and serving come from tests.support)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from datetime import date, datetime, timezone
from typing import Any

import httpx
import pytest_asyncio

from tests.support import key, poll
from treatyflow.samples import BASE, transfer_body

# The demo states' part of the authority directory (domain/data/authorities.json), by id: (state, role).
# The directory also holds the central authorities of the rest of the treaty network (ru-gp, kg-gp,
# cn-moj, ...): the tests that go through every authority go through these demo ones.
AUTHORITIES: dict[str, tuple[str, str]] = {
    "kz-gpo": ("KZ", "central_authority"),
    "kz-penal": ("KZ", "prison_service"),
    "kz-court": ("KZ", "court"),
    "kz-afm": ("KZ", "executing_authority"),
    "kz-police": ("KZ", "executing_authority"),
    "uz-gpo": ("UZ", "central_authority"),
    "uz-penal": ("UZ", "prison_service"),
    "fr-moj": ("FR", "central_authority"),
    "fr-penal": ("FR", "prison_service"),
    "fr-court": ("FR", "court"),
    "it-moj": ("IT", "central_authority"),
    "es-moj": ("ES", "central_authority"),
    "gb-ukca": ("GB", "central_authority"),
    "hu-moj": ("HU", "central_authority"),
    "mc-dsj": ("MC", "central_authority"),
}
THIRD_STATE = [a for a, (s, _) in AUTHORITIES.items() if s not in ("KZ", "UZ")]

# A judgment whose only offence has no ICCS code and an article missing from the KZ table:
# dual criminality needs review, so the case waits in awaiting_legal_review.
UNMAPPED_OFFENCE = {**BASE["judgment"], "offences": [{"article": "9999", "description": "unmapped"}]}
NOT_FINAL = {**BASE["judgment"], "final": False}

STAGES = ("awaiting_declaration", "awaiting_legal_review", "awaiting_consents", "awaiting_handover",
          "transferred", "refused", "withdrawn")


class Pacer:
    """Keeps each authority under the app's rate limit (50 requests/s, burst 50), so tests that
    are not about the limit never meet it: an httpx request hook spacing one key's requests."""

    def __init__(self, per_second: float = 40.0) -> None:
        self.interval = 1 / per_second
        self.next_at: dict[str, float] = {}

    async def __call__(self, request: httpx.Request) -> None:
        who = request.headers.get("authorization")
        if not who:
            return
        now = time.monotonic()
        at = max(now, self.next_at.get(who, 0.0))
        self.next_at[who] = at + self.interval
        if at > now:
            await asyncio.sleep(at - now)


PACER = Pacer()


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def http(api_url: str) -> AsyncIterator[httpx.AsyncClient]:
    """One client per module against the session's app (a client is costly to create), paced."""
    async with httpx.AsyncClient(base_url=api_url, timeout=15, event_hooks={"request": [PACER]}) as client:
        yield client


def today() -> date:
    """'Today' as the API sees it: the UTC date."""
    return datetime.now(timezone.utc).date()


def fields_of(response: httpx.Response) -> list[str]:
    return response.json()["error"]["fields"]


async def open_case(http: httpx.AsyncClient, *, by: str = "kz-gpo", expect_stage: str | None = None,
                    **changes: Any) -> str:
    """Open a KZ→UZ case (the factory's body with ``changes``) and return its reference, which
    begins with the code of ``by``'s state."""
    body = transfer_body(opening_state=AUTHORITIES[by][0], **changes)
    r = await http.post("/v1/transfers", json=body, headers=key(by))
    assert r.status_code == 201, r.text
    if expect_stage:
        assert r.json()["stage"] == expect_stage, r.text
    return body["reference"]


async def view(http: httpx.AsyncClient, reference: str, by: str = "kz-gpo") -> dict[str, Any]:
    r = await http.get(f"/v1/transfers/{reference}", headers=key(by))
    assert r.status_code == 200, r.text
    return r.json()


async def decide(http: httpx.AsyncClient, reference: str, state: str, decision: str = "consent",
                 grounds: list[str] | None = None) -> dict[str, Any]:
    by = {"KZ": "kz-gpo", "UZ": "uz-gpo"}[state]
    r = await http.post(f"/v1/transfers/{reference}/decisions", headers=key(by),
                        json={"state": state, "decision": decision, "grounds": grounds or []})
    assert r.status_code == 200, r.text
    return r.json()


async def case_at(http: httpx.AsyncClient, stage: str) -> str:
    """A fresh KZ→UZ case in ``stage``: one of the waiting stages, or closed as ``transferred``,
    ``refused`` (at intake: the judgment is not final) or ``withdrawn``. For
    ``awaiting_handover`` the handover has been arranged (``handover`` is set)."""
    if stage == "awaiting_declaration":
        return await open_case(http, declaration=None, expect_stage=stage)
    if stage == "awaiting_legal_review":
        return await open_case(http, judgment=UNMAPPED_OFFENCE, expect_stage=stage)
    if stage == "refused":
        return await open_case(http, judgment=NOT_FINAL, expect_stage=stage)
    reference = await open_case(http, expect_stage="awaiting_consents")
    if stage == "awaiting_consents":
        return reference
    if stage == "withdrawn":
        r = await http.post(f"/v1/transfers/{reference}/withdrawal", headers=key("kz-gpo"),
                            json={"withdrawn_on": today().isoformat(), "reason": "the person withdrew consent"})
        assert r.status_code == 200 and r.json()["stage"] == "withdrawn", r.text
        return reference
    await decide(http, reference, "KZ")
    moved = await decide(http, reference, "UZ")
    assert moved["stage"] == "awaiting_handover", moved
    arranged = await poll(lambda: view(http, reference), lambda v: v["handover"] is not None)
    assert arranged["handover"] is not None, "the handover was never arranged"
    if stage == "awaiting_handover":
        return reference
    assert stage == "transferred", stage
    r = await http.post(f"/v1/transfers/{reference}/handover", headers=key("uz-penal"),
                        json={"completed_on": today().isoformat(), "place": arranged["handover"]["place"]})
    assert r.status_code == 200 and r.json()["stage"] == "transferred", r.text
    return reference


async def closed(client: Any, reference: str, timeout: float = 10.0) -> None:
    """Wait until the case's workflow has finished (archived): later reads come from the archive."""
    handle = client.get_workflow_handle(f"transfer:{reference}")
    await asyncio.wait_for(handle.result(), timeout)
