"""/v1/assistance-requests: file a request for mutual legal assistance, read it, list them, and
the acts of API.md (review, information, withdrawal on the request; authorisation and result on
a measure, which runs as its own workflow)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request, Response
from temporalio.client import WorkflowHandle, WorkflowUpdateFailedError
from temporalio.service import RPCError

from api.auth import caller, deny
from api.body import parse, utc_today
from api.engine import act_refused, closed_meanwhile, within
from api.errors import conflict, not_found
from api.found import Found, find_case, open_or_find
from api.listing import CaseList, list_cases
from domain.assistance import (
    AssistanceRequest, AssistanceStage, AssistanceView, AssistanceWithdrawal, Authorisation, InformationAnswer,
    MeasureResult, MeasureView, Review, authorising_court,
)
from domain.intake import assistance_problems, reference_problems
from domain.reference import Authority
from treatyflow.cases import act as act_on, assistance_handle, measure_handle, open_assistance
from workflows.assistance import AssistanceWorkflow
from workflows.measure import MeasureWorkflow

router = APIRouter(prefix="/v1/assistance-requests", tags=["assistance"])
Caller = Annotated[Authority, Depends(caller)]
CENTRAL = "central_authority"


async def find(request: Request, who: Authority, reference: str) -> Found:
    return await find_case(request, who, "assistance", reference,
                           assistance_handle(request.app.state.client, reference), AssistanceView,
                           AssistanceWorkflow.view)


@router.post("", response_model=AssistanceView, status_code=201,
             responses={200: {"description": "the same request again: the existing case"}})
async def file_request(request: Request, response: Response, who: Caller) -> Any:
    if who.role != CENTRAL:
        raise deny(request, who, "only a central authority files a request for assistance")
    body = await parse(request, AssistanceRequest)
    if who.state != body.requesting_state:
        raise deny(request, who, "a request is filed by the requesting state's central authority", body.reference)
    today = utc_today()
    body = body.model_copy(update={"received_on": body.received_on or today})
    return await open_or_find(request, response, who, "assistance", body,
                              reference_problems(body.reference, who.state)
                              + assistance_problems(body, today, request.app.state.reference), open_assistance,
                              AssistanceView)


@router.get("", response_model=CaseList)
async def list_requests(request: Request, who: Caller, stage: AssistanceStage | None = None,
                        state: Annotated[str | None, Query(pattern=r"^[A-Z]{2}$")] = None,
                        page_size: Annotated[int, Query(ge=1, le=200)] = 50,
                        page_token: str | None = None) -> CaseList:
    # Lists name every request of the state, confidential ones included: central authorities only.
    # Courts and executing authorities find their measures in their inbox.
    if who.role != CENTRAL:
        raise deny(request, who, "lists of assistance requests are for central authorities; see /v1/inbox")
    return await list_cases(request, "assistance", who, stage=stage, partner=state, page_size=page_size,
                            page_token=page_token)


@router.get("/{reference}", response_model=AssistanceView)
async def read_request(request: Request, reference: str, who: Caller) -> AssistanceView:
    return (await find(request, who, reference)).view


async def act(request: Request, who: Authority, reference: str, found: Found, handle: WorkflowHandle,
              update: Any, body: Any, view: Any) -> Any:
    if not found.live:
        raise conflict(f"the request is closed ({found.view.stage})")
    try:
        return await within(request.app.state.settings.api_timeout, act_on(handle, update, who.id, body, view))
    except WorkflowUpdateFailedError as err:
        raise act_refused(err) from None
    except RPCError as err:
        if closed_meanwhile(err):
            raise conflict("the request or measure is closed") from None
        raise


async def request_act(request: Request, who: Authority, reference: str, update: Any, model: type,
                      allowed: Callable[[AssistanceView], bool], what: str) -> AssistanceView:
    found = await find(request, who, reference)
    if not allowed(found.view):
        raise deny(request, who, f"{who.id} may not {what} in this request", reference)
    body = await parse(request, model)
    return await act(request, who, reference, found, found.handle, update, body, AssistanceWorkflow.view)


@router.post("/{reference}/review", response_model=AssistanceView)
async def review(request: Request, reference: str, who: Caller) -> AssistanceView:
    return await request_act(request, who, reference, AssistanceWorkflow.record_review, Review,
                             lambda v: who.role == CENTRAL and who.state == v.requested_state, "review")


@router.post("/{reference}/information", response_model=AssistanceView)
async def answer_information(request: Request, reference: str, who: Caller) -> AssistanceView:
    return await request_act(request, who, reference, AssistanceWorkflow.record_information, InformationAnswer,
                             lambda v: who.role == CENTRAL and who.state == v.requesting_state, "answer")


@router.post("/{reference}/withdrawal", response_model=AssistanceView)
async def withdraw(request: Request, reference: str, who: Caller) -> AssistanceView:
    return await request_act(request, who, reference, AssistanceWorkflow.withdraw, AssistanceWithdrawal,
                             lambda v: who.role == CENTRAL and who.state == v.requesting_state, "withdraw")


async def measure_act(request: Request, who: Authority, reference: str, measure_id: str, update: Any, model: type,
                      allowed: Callable[[MeasureView, AssistanceView], bool], what: str) -> AssistanceView:
    found = await find(request, who, reference)
    measure = next((m for m in found.view.measures if m.id == measure_id), None)
    if measure is None:
        raise not_found("measure")
    if not allowed(measure, found.view):
        raise deny(request, who, f"{who.id} may not {what} measure {measure_id}", reference)
    body = await parse(request, model)
    if measure.stage in ("not_permitted", "pending", "cancelled"):
        raise conflict(f"measure {measure_id} is {measure.stage}")
    changed: MeasureView = await act(request, who, reference, found,
                                     measure_handle(request.app.state.client, reference, measure_id), update, body,
                                     MeasureWorkflow.view)
    return with_measure(found.view if not found.live else
                        await within(request.app.state.settings.api_timeout, found.handle.query(AssistanceWorkflow.view)),
                        changed)


def with_measure(view: AssistanceView, changed: MeasureView) -> AssistanceView:
    """The request's view with a measure as the measure itself answered: the request learns it by a
    signal that may still be on its way."""
    current = next(m for m in view.measures if m.id == changed.id)
    if current.revision >= changed.revision:
        return view
    measures = [changed.model_copy(update={"pending_actions": [], "events": []}) if m.id == changed.id else m
                for m in view.measures]
    pending = [p for p in view.pending_actions if p.measure_id != changed.id] + list(changed.pending_actions)
    events = sorted([*view.events, *(e for e in changed.events if e not in view.events)], key=lambda e: e.at)
    return view.model_copy(update={"measures": measures, "pending_actions": pending, "events": events,
                                   "overdue": any(p.overdue for p in pending)})


@router.post("/{reference}/measures/{measure_id}/authorisation", response_model=AssistanceView)
async def authorise(request: Request, reference: str, measure_id: str, who: Caller) -> AssistanceView:
    court = authorising_court(request.app.state.reference, who.state)
    return await measure_act(request, who, reference, measure_id, MeasureWorkflow.authorise, Authorisation,
                             lambda m, v: who.state == v.requested_state and who.id == court, "authorise")


@router.post("/{reference}/measures/{measure_id}/result", response_model=AssistanceView)
async def report_result(request: Request, reference: str, measure_id: str, who: Caller) -> AssistanceView:
    return await measure_act(
        request, who, reference, measure_id, MeasureWorkflow.report_result, MeasureResult,
        lambda m, v: who.state == v.requested_state and (who.id == m.assigned_to or who.role == CENTRAL),
        "report the result of")
