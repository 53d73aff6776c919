"""The inbox, the treaty registry and the statistics."""

from __future__ import annotations

import asyncio
from datetime import datetime, timezone
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from temporalio.service import RPCError

from api.auth import ROLES_IN, caller
from api.errors import not_found, unavailable
from api.listing import Inbox, inbox, quoted
from domain.reference import Authority
from domain.assistance import AssistanceStage
from domain.transfer import TransferStage
from workflows import search_attributes as sa

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
    """Counts of the caller state's cases from visibility counts, only of the kinds the caller's
    role has a part in (confidential requests only for central authorities). One answer per
    scope (state, kinds, confidential or not) is shared by every caller of that scope for
    TREATYFLOW_STATS_MAX_AGE seconds, computed once at a time (concurrent callers wait for the same
    computation), with at most TREATYFLOW_STATS_CONCURRENCY counts in flight for all callers
    together: however often authorities call it, stats cannot take the engine from others' reads."""
    app = request.app.state
    scope = stats_scope(who)
    try:
        return await app.stats_cache.get(scope, lambda: count_scope(app, scope), timeout=app.settings.api_timeout)
    except (asyncio.TimeoutError, RPCError):
        raise unavailable("the statistics could not be counted in time; try again") from None


def stats_scope(who: Authority) -> tuple[str, tuple[str, ...], bool]:
    """What the caller may see counted: its state, the kinds its role has a part in, and whether
    confidential assistance requests count (central authorities only)."""
    return who.state, tuple(k for k in STAGES if who.role in ROLES_IN[k]), who.role == "central_authority"


async def count_scope(app: Any, scope: tuple[str, tuple[str, ...], bool]) -> dict[str, Any]:
    """One scope's counts (one count per value: SQL visibility groups only by execution status),
    through the app's count gate, within the API timeout."""
    state, kinds, confidential = scope
    ref = app.reference
    gate = app.count_gate
    mine = f"CaseStates = {quoted(state)}"
    partners = sorted({p for t in ref.treaties if state in t.parties for p in t.parties} - {state})

    async def count(query: str) -> int:
        return await gate.count(app.client, query)

    result: dict[str, Any] = {"state": state, "kinds": {}}
    async with asyncio.timeout(app.settings.api_timeout):
        for kind in kinds:
            stages = STAGES[kind]
            base = f"CaseKind = {quoted(kind)} AND {mine}"
            if kind == "assistance" and not confidential:
                base += f" AND {sa.CASE_CONFIDENTIAL.name} = false"
            total, *by_value = await asyncio.gather(
                count(base), *(count(f"{base} AND CaseStage = {quoted(s)}") for s in stages),
                *(count(f"{base} AND CaseStates = {quoted(p)}") for p in partners))
            by_stage, by_partner = by_value[:len(stages)], by_value[len(stages):]
            result["kinds"][kind] = {
                "total": total,
                "by_stage": {s: n for s, n in zip(stages, by_stage) if n},
                "by_outcome": {s: n for s, n in zip(stages, by_stage) if n and s in OUTCOMES},
                "by_partner": {p: n for p, n in zip(partners, by_partner) if n},
            }
    result["registry"] = {"treaties": len(ref.treaties), "partner_countries": len(partners),
                          "partners": partners}
    result["as_of"] = datetime.now(timezone.utc).isoformat(timespec="seconds")
    return result
