"""/v1/transfers: open a transfer case, read it, list them, and the acts of API.md."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response

from api.acts import May, act, acting, posts
from api.auth import ROLES_IN, Caller, deny
from api.body import parse, utc_today
from api.errors import invalid
from api.found import find_case, open_or_find, read_case as read_any, role_has_no_part, visible
from api.listing import CaseList, list_cases
from domain.intake import reference_problems, transfer_problems
from domain.reference import Authority
from domain.transfer import (
    Declaration, Decision, HandoverConfirmation, LegalReview, TransferRequest, TransferStage, TransferView,
    Withdrawal,
)
from workflows.kinds import TRANSFER
from workflows.rejection import only
from workflows.transfer import TransferWorkflow

router = APIRouter(prefix="/v1/transfers", tags=["transfers"])
CENTRAL, PRISON = "central_authority", "prison_service"


@posts(router, "", TransferRequest, response_model=TransferView, status_code=201,
             responses={200: {"description": "the same request again: the existing case"}})
async def open_case(request: Request, response: Response, who: Caller) -> Any:
    if who.role != CENTRAL:
        raise deny(request, who, only("open a transfer case", acting(request, who.state, {CENTRAL})))
    return await open_transfer(request, response, who, await parse(request, TransferRequest))


async def open_transfer(request: Request, response: Response, who: Authority, body: TransferRequest,
                        opening: bool = True) -> Any:
    """What opening a transfer case is once its body is read: by a single POST, and by each line
    of a batch (api/batch.py), so that a line is judged exactly as a single POST; without
    ``opening``, the same judgement without opening anything (the web application's preview)."""
    if who.state not in (body.sentencing_state, body.administering_state):
        raise deny(request, who, f"{who.id} opens transfers of {who.state} only: sentencing_state or "
                                 f"administering_state must be {who.state}", body.reference)
    today, received_today = utc_today(), body.received_on is None
    body = body.model_copy(update={"received_on": body.received_on or today})
    return await open_or_find(request, response, who, TRANSFER, body,
                              reference_problems(body.reference, who.state)
                              + transfer_problems(body, today, request.app.state.reference)
                              + await previous_case_problems(request, who, body), opening, received_today)


async def previous_case_problems(request: Request, who: Authority, body: TransferRequest) -> list[tuple[str, str]]:
    """``previous_reference`` must name a closed transfer case between the same two states that
    ``who`` may read (a case it may not read is answered as one that does not exist)."""
    previous = body.previous_reference
    if previous is None or previous == body.reference:
        return []  # none, or the request's own problem (domain.transfer)
    found = await read_any(request.app.state, TRANSFER, previous)
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
                         page_token: str | None = None,
                         name: Annotated[str | None, Query(min_length=1, max_length=300)] = None) -> CaseList:
    """``name``: only the cases of the sentenced person of that name, written the same way (letter
    case and spacing aside), found by its blind index."""
    if who.role not in ROLES_IN["transfer"]:
        raise deny(request, who, role_has_no_part(who, "transfer"))
    return await list_cases(request, "transfer", who, stage=stage, partner=state, page_size=page_size,
                            page_token=page_token, name=name)


@router.get("/{reference}", response_model=TransferView)
async def read_case(request: Request, reference: str, who: Caller) -> TransferView:
    return (await find_case(request, who, TRANSFER, reference)).view


@posts(router, "/{reference}/declaration", Declaration, response_model=TransferView)
async def record_declaration(request: Request, reference: str, who: Caller) -> TransferView:
    return await act(request, who, TRANSFER, reference, TransferWorkflow.record_declaration, Declaration,
                     May(frozenset({PRISON, CENTRAL}), "sentencing"), "record the declaration")


@posts(router, "/{reference}/legal-review", LegalReview, response_model=TransferView)
async def record_legal_review(request: Request, reference: str, who: Caller) -> TransferView:
    return await act(request, who, TRANSFER, reference, TransferWorkflow.record_legal_review, LegalReview,
                     May(frozenset({CENTRAL}), "administering"), "record the legal review")


@posts(router, "/{reference}/decisions", Decision, response_model=TransferView)
async def record_decision(request: Request, reference: str, who: Caller) -> TransferView:
    def for_own_state(state: Any, view: TransferView) -> None:
        if state in (view.sentencing_state, view.administering_state) and state != who.state:
            raise deny(request, who, only(f"decide for {state}", acting(request, state, {CENTRAL})), reference)

    def of_the_case(decision: Decision, view: TransferView) -> None:
        if decision.state not in (view.sentencing_state, view.administering_state):
            raise invalid([("state", f"state must be {view.sentencing_state} or {view.administering_state}, "
                                     "a state of this case")])
        for_own_state(decision.state, view)

    return await act(request, who, TRANSFER, reference, TransferWorkflow.record_decision, Decision,
                     May(frozenset({CENTRAL})), "decide", of_the_case,
                     ahead=lambda raw, view: for_own_state(raw.get("state") if isinstance(raw, dict) else None, view))


@posts(router, "/{reference}/handover", HandoverConfirmation, response_model=TransferView)
async def confirm_handover(request: Request, reference: str, who: Caller) -> TransferView:
    return await act(request, who, TRANSFER, reference, TransferWorkflow.confirm_handover, HandoverConfirmation,
                     May(frozenset({PRISON, CENTRAL}), "administering"), "confirm the handover")


@posts(router, "/{reference}/withdrawal", Withdrawal, response_model=TransferView)
async def withdraw(request: Request, reference: str, who: Caller) -> TransferView:
    return await act(request, who, TRANSFER, reference, TransferWorkflow.withdraw, Withdrawal,
                     May(frozenset({PRISON, CENTRAL}), "sentencing"), "withdraw the case")
