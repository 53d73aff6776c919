"""/v1/transfers: open a transfer case, read it, list them, and the acts of API.md."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request, Response
from temporalio.client import WorkflowUpdateFailedError
from temporalio.service import RPCError

from api.auth import ROLES_IN, caller, deny
from api.found import Found, find_case, open_or_find, read_case as read_any, role_has_no_part, visible
from api.body import parse, utc_today
from api.engine import act_refused, closed_meanwhile, within
from api.errors import conflict, invalid
from api.listing import CaseList, list_cases
from domain.intake import transfer_problems, reference_problems
from domain.reference import Authority
from domain.transfer import (
    Declaration, Decision, HandoverConfirmation, LegalReview, TransferRequest, TransferStage, TransferView,
    Withdrawal,
)
from treatyflow.cases import act as act_on, open_transfer, transfer_handle
from workflows.rejection import only
from workflows.transfer import TransferWorkflow

router = APIRouter(prefix="/v1/transfers", tags=["transfers"])
Caller = Annotated[Authority, Depends(caller)]
CENTRAL, PRISON = "central_authority", "prison_service"


async def find(request: Request, who: Authority, reference: str) -> Found:
    return await find_case(request, who, "transfer", reference, transfer_handle(request.app.state.client, reference),
                           TransferView, TransferWorkflow.view)


@router.post("", response_model=TransferView, status_code=201,
             responses={200: {"description": "the same request again: the existing case"}})
async def open_case(request: Request, response: Response, who: Caller) -> Any:
    if who.role != CENTRAL:
        raise deny(request, who, only("open a transfer case", acting(request, who.state, {CENTRAL})))
    body = await parse(request, TransferRequest)
    if who.state not in (body.sentencing_state, body.administering_state):
        raise deny(request, who, f"{who.id} opens transfers of {who.state} only: sentencing_state or "
                                 f"administering_state must be {who.state}", body.reference)
    today = utc_today()
    body = body.model_copy(update={"received_on": body.received_on or today})
    return await open_or_find(request, response, who, "transfer", body,
                              reference_problems(body.reference, who.state)
                              + transfer_problems(body, today, request.app.state.reference)
                              + await previous_case_problems(request, who, body), open_transfer,
                              TransferView)


async def previous_case_problems(request: Request, who: Authority, body: TransferRequest) -> list[tuple[str, str]]:
    """``previous_reference`` must name a closed transfer case between the same two states that
    ``who`` may read (a case it may not read is answered as one that does not exist)."""
    previous = body.previous_reference
    if previous is None or previous == body.reference:
        return []  # none, or the request's own problem (domain.transfer)
    app = request.app.state
    found = await read_any(app, "transfer", previous, transfer_handle(app.client, previous), TransferView,
                           TransferWorkflow.view)
    if found is None or not visible(who, "transfer", found.view):
        return [("previous_reference", f"previous_reference names no transfer case that {who.id} may read: "
                                       f"give the reference of an earlier, closed case")]
    view, states = found.view, {body.sentencing_state, body.administering_state}
    if {view.sentencing_state, view.administering_state} != states:
        return [("previous_reference", f"previous_reference names a case between {view.sentencing_state} and "
                                       f"{view.administering_state}: the earlier case must be between "
                                       f"{body.sentencing_state} and {body.administering_state}")]
    if found.live:
        return [("previous_reference", f"previous_reference names a case still open ({view.stage}): a new case "
                                       "may follow only a closed one")]
    return []


@router.get("", response_model=CaseList)
async def list_transfers(request: Request, who: Caller, stage: TransferStage | None = None,
                         state: Annotated[str | None, Query(pattern=r"^[A-Z]{2}$")] = None,
                         page_size: Annotated[int, Query(ge=1, le=200)] = 50,
                         page_token: str | None = None) -> CaseList:
    if who.role not in ROLES_IN["transfer"]:
        raise deny(request, who, role_has_no_part(who, "transfer"))
    return await list_cases(request, "transfer", who, stage=stage, partner=state, page_size=page_size,
                            page_token=page_token)


@router.get("/{reference}", response_model=TransferView)
async def read_case(request: Request, reference: str, who: Caller) -> TransferView:
    return (await find(request, who, reference)).view


@dataclass(frozen=True)
class May:
    """Who may take an act: the authorities of ``roles`` of the case's ``side`` state (of either
    state when ``side`` is None)."""

    roles: frozenset[str]
    side: str | None

    def __call__(self, who: Authority, view: TransferView) -> bool:
        return who.role in self.roles and (self.side is None or who.state == getattr(view, f"{self.side}_state"))

    def states(self, view: TransferView) -> list[str]:
        return [getattr(view, f"{self.side}_state")] if self.side else [view.sentencing_state, view.administering_state]


def of_state(role_ok: set[str], side: str | None) -> May:
    return May(frozenset(role_ok), side)


ROLE_ORDER = (CENTRAL, PRISON, "court", "executing_authority")


def acting(request: Request, state: str, roles: set[str] | frozenset[str]) -> tuple[str, list[tuple[str, str]]]:
    """The authorities of ``state`` of ``roles`` in the directory, for a message saying who may act."""
    found = [a for a in request.app.state.reference.authorities_of(state) if a.role in roles]
    found.sort(key=lambda a: ROLE_ORDER.index(a.role) if a.role in ROLE_ORDER else len(ROLE_ORDER))
    return state, [(a.role, a.id) for a in found]


async def act(request: Request, who: Authority, reference: str, update: Any, model: type,
              allowed: May, what: str, check: Callable[[Any, TransferView], None] | None = None,
              ahead: Callable[[Any, TransferView], None] | None = None) -> TransferView:
    """401 → 404 → 403 → 422 → 409, then the act as a workflow update whose validator has the
    last word; the answer is the case view once the act took effect."""
    app = request.app.state
    found = await find(request, who, reference)
    if not allowed(who, found.view):
        raise deny(request, who, only(what, *(acting(request, s, allowed.roles) for s in allowed.states(found.view))),
                   reference)
    if ahead:  # a 403 that the body decides, before the body is validated (403 before 422)
        ahead(raw_json(await request.body()), found.view)
    body = await parse(request, model)
    if check:
        check(body, found.view)
    if not found.live:
        raise conflict(f"the case is closed ({found.view.stage}): no more acts are possible on it")
    try:
        return await within(app.settings.api_timeout, act_on(found.handle, update, who.id, body, TransferWorkflow.view))
    except WorkflowUpdateFailedError as err:
        raise act_refused(err) from None
    except RPCError as err:
        if closed_meanwhile(err):
            raise conflict("the case has closed: no more acts are possible on it") from None
        raise


def raw_json(body: bytes) -> Any:
    """The body as JSON, or None: what it fails of is said by ``parse``."""
    try:
        return json.loads(body)
    except ValueError:
        return None


@router.post("/{reference}/declaration", response_model=TransferView)
async def record_declaration(request: Request, reference: str, who: Caller) -> TransferView:
    return await act(request, who, reference, TransferWorkflow.record_declaration, Declaration,
                     of_state({PRISON, CENTRAL}, "sentencing"), "record the declaration")


@router.post("/{reference}/legal-review", response_model=TransferView)
async def record_legal_review(request: Request, reference: str, who: Caller) -> TransferView:
    return await act(request, who, reference, TransferWorkflow.record_legal_review, LegalReview,
                     of_state({CENTRAL}, "administering"), "record the legal review")


@router.post("/{reference}/decisions", response_model=TransferView)
async def record_decision(request: Request, reference: str, who: Caller) -> TransferView:
    def for_own_state(state: Any, view: TransferView) -> None:
        if state in (view.sentencing_state, view.administering_state) and state != who.state:
            raise deny(request, who, only(f"decide for {state}", acting(request, state, {CENTRAL})), reference)

    def of_the_case(decision: Decision, view: TransferView) -> None:
        if decision.state not in (view.sentencing_state, view.administering_state):
            raise invalid([("state", f"state must be {view.sentencing_state} or {view.administering_state}, "
                                     "a state of this case")])
        for_own_state(decision.state, view)

    return await act(request, who, reference, TransferWorkflow.record_decision, Decision,
                     of_state({CENTRAL}, None), "decide", of_the_case,
                     ahead=lambda raw, view: for_own_state(raw.get("state") if isinstance(raw, dict) else None, view))


@router.post("/{reference}/handover", response_model=TransferView)
async def confirm_handover(request: Request, reference: str, who: Caller) -> TransferView:
    return await act(request, who, reference, TransferWorkflow.confirm_handover, HandoverConfirmation,
                     of_state({PRISON, CENTRAL}, "administering"), "confirm the handover")


@router.post("/{reference}/withdrawal", response_model=TransferView)
async def withdraw(request: Request, reference: str, who: Caller) -> TransferView:
    return await act(request, who, reference, TransferWorkflow.withdraw, Withdrawal,
                     of_state({PRISON, CENTRAL}, "sentencing"), "withdraw the case")
