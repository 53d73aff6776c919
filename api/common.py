"""The inbox, the treaty registry and the statistics."""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from datetime import date, datetime, timezone
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from temporalio.api.enums.v1 import WorkflowExecutionStatus
from temporalio.api.workflow.v1 import WorkflowExecutionInfo
from temporalio.common import SearchAttributeKey
from temporalio.service import RPCError

from api.auth import ROLES_IN, Caller
from api.errors import not_found, unavailable
from api.listing import Inbox, Whose, inbox, quoted
from domain.caseload import read_stage_times, spread
from domain.reference import Authority, Rule, Treaty
from workflows import search_attributes as sa
from workflows.kinds import KINDS, MEASURE_ACTIONS, MEASURE_KIND, CaseKind

router = APIRouter(prefix="/v1", tags=["common"])


def treaty_json(treaty) -> dict[str, Any]:
    return {**treaty.model_dump(mode="json", exclude_none=True), "verified": treaty.verified}


def over_http() -> None:
    """What an internal keyword of a route is when the route is called over HTTP: nothing (a
    dependency without parameters: no query parameter, nothing in the OpenAPI document)."""
    return None


@router.get("/inbox", response_model=Inbox)
async def read_inbox(request: Request, who: Caller, page_size: Annotated[int, Query(ge=1, le=200)] = 50,
                     page_token: str | None = None,
                     whose: Annotated[Whose | None, Depends(over_http)] = None) -> Inbox:
    # whose: the web application's "mine" or "unassigned", in-process only (API.md fixes the HTTP
    # query parameters; a docstring here would be the route's public description)
    return await inbox(request, who, page_size, page_token, whose)


@router.get("/treaties")
async def list_treaties(request: Request, who: Caller) -> dict[str, Any]:
    """The registry as loaded, and its size (``Reference.registry_counts``)."""
    ref = request.app.state.reference
    return {"items": [treaty_json(t) for t in ref.treaties], **ref.registry_counts()}


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
    together: however often authorities call it, stats cannot take the engine from others' reads.

    Per kind: ``total``, ``by_stage``, ``by_outcome``, ``by_partner`` and ``overdue`` (open cases
    whose nearest deadline has passed; for assistance, each measure whose action is overdue counts
    once, as the request itself waits for no one while its measures execute). ``registry``: the
    size of the whole treaty registry as ``GET /v1/treaties`` gives it (``treaties``,
    ``treaties_verified``, ``partner_states``, ``rules``, ``rules_verified``), the caller state's
    partners in it (``partners``, ``partner_countries``), and ``in_force``: the treaties in force today that the
    caller's state is a party to, by kind, with their ids, partner states and verified rules.

    The caseload figures of each kind (``caseload_of``) come from listing the scope's cases, shared
    the same way for TREATYFLOW_CASELOAD_MAX_AGE seconds (``caseload_as_of``) through the same gate."""
    app = request.app.state
    scope = stats_scope(who)
    timeout = app.settings.api_timeout
    counts, caseload = await asyncio.gather(
        app.stats_cache.get(scope, lambda: count_scope(app, scope), timeout=timeout),
        app.caseload_cache.get(scope, lambda: caseload_of(app, scope), timeout=timeout), return_exceptions=True)
    if isinstance(counts, BaseException):
        if isinstance(counts, (asyncio.TimeoutError, RPCError)):
            raise unavailable("the statistics could not be counted in time; try again") from None
        raise counts
    if isinstance(caseload, BaseException):
        if not isinstance(caseload, (asyncio.TimeoutError, RPCError)):
            raise caseload
        # the listing is late (it goes on for the next caller): the counts, with the last caseload
        # figures of the scope however old (``caseload_as_of`` says), or none yet
        kept = app.caseload_cache.values.get(scope)
        caseload = kept[1] if kept else {"as_of": None, "kinds": {}}
    return {**counts, "caseload_as_of": caseload["as_of"],
            "kinds": {kind: {**figures, **caseload["kinds"].get(kind, {})} for kind, figures in counts["kinds"].items()}}


def stats_scope(who: Authority) -> tuple[str, tuple[str, ...], bool]:
    """What the caller may see counted: its state, the kinds its role has a part in, and whether
    confidential assistance requests count (central authorities only)."""
    return who.state, tuple(k for k in KINDS if who.role in ROLES_IN[k]), who.role == "central_authority"


def cases_query(kind: str, state: str, confidential: bool) -> str:
    """Every case of ``kind`` of ``state`` the caller's scope counts, open or closed (while the
    engine retains it): without ``confidential``, only requests that are not confidential."""
    query = f"CaseKind = {quoted(kind)} AND CaseStates = {quoted(state)}"
    if kind == "assistance" and not confidential:
        query += f" AND {sa.CASE_CONFIDENTIAL.name} = false"
    return query


def overdue_query(kind: str, state: str, confidential: bool, now: datetime) -> str:
    """Open cases of ``kind`` of ``state`` whose nearest deadline (ActionDueAt) lies before ``now``.
    For assistance, the measures too (CaseKind ``assistance_measure``: each its own workflow, so each
    counts once): a request waits for no one while its measures execute, so its overdue work is
    theirs, never counted twice. Without ``confidential``, only what carries CaseConfidential =
    false counts (confidential requests, and measures that do not carry the flag, never do)."""
    cases = f"CaseKind = {quoted(kind)}" if kind != "assistance" \
        else f"(CaseKind = {quoted(kind)} OR CaseKind = {quoted(MEASURE_KIND)})"
    query = (f"{cases} AND CaseStates = {quoted(state)} AND ExecutionStatus = 'Running' "
             f"AND {sa.ACTION_DUE_AT.name} < {quoted(now.strftime('%Y-%m-%dT%H:%M:%SZ'))}")
    if kind == "assistance" and not confidential:
        query += f" AND {sa.CASE_CONFIDENTIAL.name} = false"
    return query


def rules_of(treaty: Treaty) -> list[Rule[Any]]:
    """The operative rules the registry records for a treaty (default deadlines not counted)."""
    return treaty.recorded_rules


def registry_of(treaties: tuple[Treaty, ...], state: str, today: date) -> dict[str, Any]:
    """The treaties in force on ``today`` that ``state`` is a party to, by kind (in force as the
    resolver has it: no recorded entry into force, or one on or before the day)."""
    def figures(chosen: list[Treaty]) -> dict[str, Any]:
        rules = [r for t in chosen for r in rules_of(t)]
        return {"treaties": len(chosen), "ids": sorted(t.id for t in chosen),
                "partners": sorted({p for t in chosen for p in t.parties} - {state}),
                "verified": sum(t.verified for t in chosen),  # treaties whose every rule is verified
                "rules": {"verified": sum(r.verified for r in rules), "total": len(rules)}}

    mine = [t for t in treaties
            if state in t.parties and (t.in_force_on is None or t.in_force_on <= today)]
    return {**figures(mine),
            "by_kind": {kind: figures([t for t in mine if t.kind == kind]) for kind in ("transfer", "assistance")}}


async def count_scope(app: Any, scope: tuple[str, tuple[str, ...], bool]) -> dict[str, Any]:
    """One scope's counts (one count per value: SQL visibility groups only by execution status),
    through the app's count gate, within the API timeout."""
    state, kinds, confidential = scope
    ref = app.reference
    gate = app.count_gate
    partners = sorted({p for t in ref.treaties if state in t.parties for p in t.parties} - {state})

    async def count(query: str) -> int:
        return await gate.count(app.client, query)

    result: dict[str, Any] = {"state": state, "kinds": {}}
    now = datetime.now(timezone.utc)
    async with asyncio.timeout(app.settings.api_timeout):
        for kind in kinds:
            stages = KINDS[kind].stages
            base = cases_query(kind, state, confidential)
            total, overdue, *by_value = await asyncio.gather(
                count(base), count(overdue_query(kind, state, confidential, now)),
                *(count(f"{base} AND CaseStage = {quoted(s)}") for s in stages),
                *(count(f"{base} AND CaseStates = {quoted(p)}") for p in partners))
            by_stage, by_partner = by_value[:len(stages)], by_value[len(stages):]
            result["kinds"][kind] = {
                "total": total,
                "overdue": overdue,
                "by_stage": {s: n for s, n in zip(stages, by_stage) if n},
                "by_outcome": {s: n for s, n in zip(stages, by_stage) if n and s in KINDS[kind].terminal},
                "by_partner": {p: n for p, n in zip(partners, by_partner) if n},
            }
    result["registry"] = {**ref.registry_counts(), "partner_countries": len(partners),
                          "partners": partners, "in_force": registry_of(ref.treaties, state, now.date())}
    result["as_of"] = now.isoformat(timespec="seconds")
    return result


# ---- the caseload at a glance ---------------------------------------------------------------------

async def caseload_of(app: Any, scope: tuple[str, tuple[str, ...], bool]) -> dict[str, Any]:
    """One scope's caseload figures, per kind, from two lists of the visibility store (the kind's
    cases, and its overdue cases and measures), reading only their search attributes — never a
    case one by one, never a memo. Each page of a list goes through the app's count gate."""
    state, kinds, confidential = scope
    now = datetime.now(timezone.utc)
    timeout = app.settings.api_timeout

    async def listed(query: str) -> list[WorkflowExecutionInfo]:
        return await app.count_gate.list(app.client, query, timeout)

    result: dict[str, Any] = {"kinds": {}, "as_of": now.isoformat(timespec="seconds")}
    for kind in kinds:
        cases, overdue = await asyncio.gather(listed(cases_query(kind, state, confidential)),
                                              listed(overdue_query(kind, state, confidential, now)))
        result["kinds"][kind] = caseload_figures(KINDS[kind], state, cases, overdue, now)
    return result


def caseload_figures(kind: CaseKind, state: str, cases: list[WorkflowExecutionInfo],
                     overdue: list[WorkflowExecutionInfo], now: datetime) -> dict[str, Any]:
    """``by_stage_and_partner``: the cases in each stage with each partner state (open cases, and
    closed ones while the engine retains them). ``overdue_by_action`` and ``overdue_by_partner``:
    what ``overdue`` counts, by the action awaited and by partner. ``stage_seconds``: for each stage,
    the cases that have left it and the median and p90 of the whole seconds each spent in it (a
    stage visited twice counts its sum); ``current_stage_seconds``: the open cases in each stage and
    how long they have been in it so far. Cases begun before StageTimes existed have no times."""
    by_stage_and_partner: dict[str, Counter[str]] = {}
    left: dict[str, list[int]] = {}
    staying: dict[str, list[int]] = {}
    for info in cases:
        stage, partner = attribute(info, sa.CASE_STAGE), partner_of(attribute(info, sa.CASE_STATES), state)
        if stage is None:
            continue
        by_stage_and_partner.setdefault(stage, Counter())[partner] += 1
        times = read_stage_times(attribute(info, sa.STAGE_TIMES) or "", kind.stages)
        if times is None:
            continue
        for spent_in, spent in times.spent.items():
            left.setdefault(spent_in, []).append(int(spent.total_seconds()))
        if info.status == WorkflowExecutionStatus.WORKFLOW_EXECUTION_STATUS_RUNNING and times.current and times.entered:
            staying.setdefault(times.current, []).append(max(0, int((now - times.entered).total_seconds())))
    by_action: Counter[str] = Counter()
    by_partner: Counter[str] = Counter()
    for info in overdue:
        actions = MEASURE_ACTIONS if attribute(info, sa.CASE_KIND) == MEASURE_KIND else kind.actions
        stage = attribute(info, sa.CASE_STAGE) or ""
        by_action[actions.get(stage, stage)] += 1
        by_partner[partner_of(attribute(info, sa.CASE_STATES), state)] += 1

    def in_stage_order(samples: dict[str, list[int]]) -> dict[str, Any]:
        return {s: spread(samples[s]).model_dump() for s in kind.stages if s in samples}

    return {
        "by_stage_and_partner": {s: dict(sorted(by_stage_and_partner[s].items()))
                                 for s in kind.stages if s in by_stage_and_partner},
        "overdue_by_action": dict(sorted(by_action.items())),
        "overdue_by_partner": dict(sorted(by_partner.items())),
        "stage_seconds": in_stage_order(left),
        "current_stage_seconds": in_stage_order(staying),
    }


def attribute(info: WorkflowExecutionInfo, key: SearchAttributeKey[Any]) -> Any:
    """One Keyword or KeywordList search attribute of a listed execution, decoded alone (its
    payload is JSON): decoding every attribute of every row held the API's event loop 1.2 s for
    10,000 cases, the figures from these few 0.23 s."""
    payload = info.search_attributes.indexed_fields.get(key.name)
    return json.loads(payload.data) if payload is not None and payload.data else None


def partner_of(states: list[str] | None, state: str) -> str:
    """The other state of a case's two (CaseStates)."""
    return next((s for s in states or () if s != state), "—")
