"""The inbox, the treaty registry and the statistics."""

from __future__ import annotations

import asyncio
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request

from api.auth import caller
from api.engine import within
from api.errors import not_found
from api.listing import Inbox, inbox, quoted
from domain.reference import Authority
from domain.assistance import AssistanceStage
from domain.transfer import TransferStage

router = APIRouter(prefix="/v1", tags=["common"])
Caller = Annotated[Authority, Depends(caller)]

STAGES = {"transfer": list(TransferStage.__args__), "assistance": list(AssistanceStage.__args__)}  # type: ignore[attr-defined]
OUTCOMES = {"transferred", "refused", "withdrawn", "expired", "completed", "partially_completed", "unsuccessful"}


def treaty_json(treaty) -> dict[str, Any]:
    return {**treaty.model_dump(mode="json", exclude_none=True), "verified": treaty.verified}


@router.get("/inbox", response_model=Inbox)
async def read_inbox(request: Request, who: Caller, page_size: Annotated[int, Query(ge=1, le=200)] = 50,
                     page_token: str | None = None) -> Inbox:
    return await inbox(request, who, page_size, page_token)


@router.get("/treaties")
async def list_treaties(request: Request, who: Caller) -> dict[str, Any]:
    return {"items": [treaty_json(t) for t in request.app.state.reference.treaties]}


@router.get("/treaties/{treaty_id}")
async def read_treaty(request: Request, treaty_id: str, who: Caller) -> dict[str, Any]:
    treaty = request.app.state.reference.treaty(treaty_id)
    if treaty is None:
        raise not_found("treaty")
    return treaty_json(treaty)


@router.get("/stats")
async def stats(request: Request, who: Caller) -> dict[str, Any]:
    """Counts of the caller state's cases from visibility counts (one count per value: SQL
    visibility groups only by execution status)."""
    app = request.app.state
    ref = app.reference
    mine = f"CaseStates = {quoted(who.state)}"
    partners = sorted({p for t in ref.treaties if who.state in t.parties for p in t.parties} - {who.state})

    async def count(query: str) -> int:
        return (await within(app.settings.api_timeout, app.client.count_workflows(query))).count

    result: dict[str, Any] = {"state": who.state, "kinds": {}}
    for kind, stages in STAGES.items():
        base = f"CaseKind = {quoted(kind)} AND {mine}"
        by_stage = await asyncio.gather(*(count(f"{base} AND CaseStage = {quoted(s)}") for s in stages))
        by_partner = await asyncio.gather(*(count(f"{base} AND CaseStates = {quoted(p)}") for p in partners))
        result["kinds"][kind] = {
            "total": await count(base),
            "by_stage": {s: n for s, n in zip(stages, by_stage) if n},
            "by_outcome": {s: n for s, n in zip(stages, by_stage) if n and s in OUTCOMES},
            "by_partner": {p: n for p, n in zip(partners, by_partner) if n},
        }
    result["registry"] = {"treaties": len(ref.treaties), "partner_countries": len(partners),
                          "partners": partners}
    return result
