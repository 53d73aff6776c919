"""Lists, the inbox and the statistics, from the engine's visibility store (search attributes):
never by reading cases one by one."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from dataclasses import dataclass
from datetime import date, datetime, timezone
from typing import Literal

from fastapi import Request
from pydantic import BaseModel
from temporalio.client import WorkflowExecution

from api.engine import within
from api.errors import invalid
from domain.case import Action, due_day
from domain.names import assignee_index, name_index
from domain.reference import Authority
from workflows import search_attributes as sa
from workflows.kinds import KINDS, MEASURE_ACTIONS, MEASURE_KIND


class CaseSummary(BaseModel):
    kind: Literal["transfer", "assistance"]
    reference: str
    label: str | None = None  # the person's name (transfers), the issuing authority and offence (assistance)
    stage: str | None
    outcome: str | None
    treaty: str | None
    states: list[str]
    opened_at: datetime | None
    action_due_at: datetime | None


class CaseList(BaseModel):
    items: list[CaseSummary]
    next_page_token: str | None


class InboxItem(BaseModel):
    kind: Literal["transfer", "assistance"]
    reference: str
    label: str | None = None  # as in the lists; None for a measure's own item
    assigned_to: str | None = None  # the user of the caller's authority who handles it (the web app's "mine")
    stage: str
    action: Action
    measure_id: str | None = None
    due_on: date | None
    overdue: bool


class Inbox(BaseModel):
    items: list[InboxItem]
    next_page_token: str | None


@dataclass(frozen=True)
class Whose:
    """The web application's filter of the inbox, applied by the visibility query to the whole inbox
    (not by the page to one page of it): ``mine`` (the items ``user`` of the caller's authority has
    taken) or ``unassigned`` (those nobody of it has). Not a query parameter of the HTTP API."""

    show: Literal["mine", "unassigned"]
    user: str | None = None


ASSIGNMENT_INDEX = "assignment index"  # the purpose of the key of the assignments' blind index


def quoted(value: str) -> str:
    """Values in visibility queries come from validated codes, quoted all the same."""
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def reference_of(execution: WorkflowExecution) -> str:
    return execution.id.split(":", 1)[1]


def token_mac(request: Request, raw: bytes, query: str) -> bytes:
    """Page tokens are signed (with a key derived from the current codec key, the same on every API
    instance) and bound to their query, so a forged or foreign token is a 422, never a call."""
    key = request.app.state.codec.keys.derived("page token")
    return hmac.new(key, raw + b"\0" + query.encode(), hashlib.sha256).digest()[:16]


async def page(request: Request, query: str, page_size: int, page_token: str | None) -> tuple[list, str | None]:
    """One page of executions, newest opened first within the page. SQL visibility (the dev
    server's SQLite, PostgreSQL) accepts no ORDER BY; its own order is open cases by start time,
    newest first, then closed ones by close time, newest first."""
    app = request.app.state
    token = None
    if page_token:
        try:
            signed = base64.urlsafe_b64decode(page_token.encode())
        except (binascii.Error, ValueError):
            signed = b""
        token, mac = signed[:-16], signed[-16:]
        if len(signed) <= 16 or not hmac.compare_digest(mac, token_mac(request, token, query)):
            raise invalid([("page_token", "not a page token from a previous answer to this query")])
    listing = app.client.list_workflows(query, page_size=page_size, next_page_token=token)
    await within(app.settings.api_timeout, listing.fetch_next_page())
    nxt = listing.next_page_token
    executions = sorted(listing.current_page or [], key=lambda ex: ex.start_time, reverse=True)
    return executions, base64.urlsafe_b64encode(nxt + token_mac(request, nxt, query)).decode() if nxt else None


async def label_of(execution: WorkflowExecution) -> str | None:
    """What a row shows beside the reference: from the case's memo, which the engine keeps
    encrypted and returns with the visibility results (cases opened before 0.3.0 have none)."""
    return await execution.memo_value("label", None, type_hint=str)


def name_search(request: Request, name: str) -> str:
    """The condition finding a person's name: its blind index under every configured codec key
    (a case opened before a key rotation is found too)."""
    keys = request.app.state.codec.keys
    hashes = sorted({name_index(keys.derived("name index", k), name) for k in keys.keys})
    return f"PersonNameIndex IN ({', '.join(quoted(h) for h in hashes)})"


async def list_cases(request: Request, kind: str, who: Authority, *, stage: str | None, partner: str | None,
                     page_size: int, page_token: str | None, name: str | None = None) -> CaseList:
    query = f"CaseKind = {quoted(kind)} AND CaseStates = {quoted(who.state)}"
    if stage:
        query += f" AND CaseStage = {quoted(stage)}"
    if partner:
        query += f" AND CaseStates = {quoted(partner)}"
    if name:
        query += f" AND {name_search(request, name)}"
    executions, token = await page(request, query, page_size, page_token)
    items = []
    for ex in executions:
        attrs = ex.typed_search_attributes
        items.append(CaseSummary(
            kind=kind, reference=reference_of(ex), label=await label_of(ex), stage=attrs.get(sa.CASE_STAGE),
            outcome=attrs.get(sa.CASE_OUTCOME), treaty=attrs.get(sa.TREATY_ID),
            states=list(attrs.get(sa.CASE_STATES) or []), opened_at=ex.start_time,
            action_due_at=attrs.get(sa.ACTION_DUE_AT)))
    return CaseList(items=items, next_page_token=token)


def assignment_index(request: Request, authority: str, user: str) -> str:
    """The blind index an assignment of ``user`` of ``authority`` carries (under the current key)."""
    return assignee_index(request.app.state.codec.keys.derived(ASSIGNMENT_INDEX), authority, user)


def whose_condition(request: Request, who: Authority, whose: Whose) -> str:
    """InboxAssignments holds, for each authority a case awaits, the blind index of who took it or
    ``unassigned:<authority>``: "mine" looks for the index under every configured codec key (an item
    taken before a key rotation is found too), "unassigned" for the marker — both a positive match
    of a KeywordList (no ``!=``, whose SQL semantics take in cases without the attribute)."""
    if whose.show == "unassigned":
        return f"{sa.INBOX_ASSIGNMENTS.name} = {quoted(sa.unassigned(who.id))}"
    assert whose.user is not None
    keys = request.app.state.codec.keys
    hashes = sorted({assignee_index(keys.derived(ASSIGNMENT_INDEX, k), who.id, whose.user) for k in keys.keys})
    return f"{sa.INBOX_ASSIGNMENTS.name} IN ({', '.join(quoted(h) for h in hashes)})"


async def inbox(request: Request, who: Authority, page_size: int, page_token: str | None,
                whose: Whose | None = None) -> Inbox:
    query = f"AwaitingAuthorities = {quoted(who.id)} AND ExecutionStatus = 'Running'"
    if whose is not None:
        query += f" AND {whose_condition(request, who, whose)}"
    executions, token = await page(request, query, page_size, page_token)
    now = datetime.now(timezone.utc)
    items = []
    for ex in executions:
        attrs = ex.typed_search_attributes
        stage = attrs.get(sa.CASE_STAGE) or ""
        due = attrs.get(sa.ACTION_DUE_AT)
        reference, measure_id, kind = reference_of(ex), None, attrs.get(sa.CASE_KIND) or "transfer"
        if kind == MEASURE_KIND:  # a measure's own workflow: assistance:{reference}:{measure_id}
            reference, measure_id = reference.rsplit(":", 1)
            kind, action = "assistance", MEASURE_ACTIONS.get(stage)
        else:
            action = KINDS[kind].actions.get(stage) if kind in KINDS else None
        if action is None:
            continue
        memo = await ex.memo()
        items.append(InboxItem(kind=kind, reference=reference, label=memo.get("label"),
                               assigned_to=(memo.get("assigned") or {}).get(who.id),
                               stage=stage, action=action, measure_id=measure_id,
                               due_on=due_day(due) if due else None, overdue=bool(due and due < now)))
    return Inbox(items=items, next_page_token=token)
