"""/v1/assistance-requests: file a request for mutual legal assistance, read it, list them, and
the acts of API.md (review, information, withdrawal on the request; authorisation and result on
a measure, which runs as its own workflow)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response

from api.acts import May, act, acting, posts, take
from api.auth import Caller, deny
from api.body import parse, utc_today
from api.engine import within
from api.errors import conflict, invalid, not_found
from api.found import find_case, open_or_find
from api.listing import CaseList, list_cases
from domain.assistance import (
    AssistanceRequest, AssistanceStage, AssistanceView, AssistanceWithdrawal, Authorisation, InformationAnswer,
    MeasureResult, MeasureView, Review, authorising_court,
)
from domain.intake import assistance_problems, reference_problems
from domain.reference import Authority
from treatyflow.cases import measure_handle
from workflows.assistance import AssistanceWorkflow
from workflows.kinds import ASSISTANCE
from workflows.measure import MeasureWorkflow
from workflows.rejection import only, or_list

router = APIRouter(prefix="/v1/assistance-requests", tags=["assistance"])
CENTRAL = "central_authority"


@posts(router, "", AssistanceRequest, response_model=AssistanceView, status_code=201,
             responses={200: {"description": "the same request again: the existing case"}})
async def file_request(request: Request, response: Response, who: Caller) -> Any:
    if who.role != CENTRAL:
        raise deny(request, who, only("file a request for assistance", acting(request, who.state, {CENTRAL})))
    body = await parse(request, AssistanceRequest)
    if who.state != body.requesting_state:
        raise deny(request, who, f"{who.id} files requests of {who.state} only: requesting_state must be {who.state}",
                   body.reference)
    today, received_today = utc_today(), body.received_on is None
    body = body.model_copy(update={"received_on": body.received_on or today})
    return await open_or_find(request, response, who, ASSISTANCE, body,
                              reference_problems(body.reference, who.state)
                              + assistance_problems(body, today, request.app.state.reference),
                              received_today=received_today)


@router.get("", response_model=CaseList)
async def list_requests(request: Request, who: Caller, stage: AssistanceStage | None = None,
                        state: Annotated[str | None, Query(pattern=r"^[A-Z]{2}$")] = None,
                        page_size: Annotated[int, Query(ge=1, le=200)] = 50,
                        page_token: str | None = None) -> CaseList:
    # Lists name every request of the state, confidential ones included: central authorities only.
    # Courts and executing authorities find their measures in their inbox.
    if who.role != CENTRAL:
        raise deny(request, who, f"only central authorities list requests for assistance: {who.id} finds the "
                                 "measures awaiting it in /v1/inbox")
    return await list_cases(request, "assistance", who, stage=stage, partner=state, page_size=page_size,
                            page_token=page_token)


@router.get("/{reference}", response_model=AssistanceView)
async def read_request(request: Request, reference: str, who: Caller) -> AssistanceView:
    return (await find_case(request, who, ASSISTANCE, reference)).view


def central_of(side: str) -> May:
    """The central authority of the request's ``side`` state (requesting, requested)."""
    return May(frozenset({CENTRAL}), side)


@posts(router, "/{reference}/review", Review, response_model=AssistanceView)
async def review(request: Request, reference: str, who: Caller) -> AssistanceView:
    return await act(request, who, ASSISTANCE, reference, AssistanceWorkflow.record_review, Review,
                     central_of("requested"), "review this request")


@posts(router, "/{reference}/information", InformationAnswer, response_model=AssistanceView)
async def answer_information(request: Request, reference: str, who: Caller) -> AssistanceView:
    return await act(request, who, ASSISTANCE, reference, AssistanceWorkflow.record_information, InformationAnswer,
                     central_of("requesting"), "answer the questions of this request")


@posts(router, "/{reference}/withdrawal", AssistanceWithdrawal, response_model=AssistanceView)
async def withdraw(request: Request, reference: str, who: Caller) -> AssistanceView:
    return await act(request, who, ASSISTANCE, reference, AssistanceWorkflow.withdraw, AssistanceWithdrawal,
                     central_of("requesting"), "withdraw this request")


MEASURE_CLOSED = {
    "not_permitted": "measure {id} is not permitted ({grounds}): no act is possible on it",
    "pending": "measure {id} is pending: no act is possible on it until the request is accepted",
    "cancelled": "measure {id} is cancelled (the request was withdrawn): no more acts are possible on it",
}


async def measure_act(request: Request, who: Authority, reference: str, measure_id: str, update: Any, model: type,
                      allowed: Callable[[MeasureView, AssistanceView], bool], what: str,
                      acting: Callable[[MeasureView, AssistanceView], list[tuple[str, str]]],
                      resolve: Callable[[Any, AssistanceView], Any] | None = None) -> AssistanceView:
    """``acting``: the (role, authority id) pairs of the requested state who may, for the message;
    ``resolve``: the body completed from the case (422 for what it cannot)."""
    found = await find_case(request, who, ASSISTANCE, reference)
    measure = next((m for m in found.view.measures if m.id == measure_id), None)
    if measure is None:
        raise not_found("measure", "the measures of this request are "
                                   + or_list((m.id for m in found.view.measures), "and"))
    if not allowed(measure, found.view):
        raise deny(request, who, only(f"{what} measure {measure_id}", (found.view.requested_state,
                                                                          acting(measure, found.view))), reference)
    body = await parse(request, model)
    if resolve is not None:
        body = resolve(body, found.view)
    if measure.stage in MEASURE_CLOSED:
        raise conflict(MEASURE_CLOSED[measure.stage].format(id=measure_id, grounds=", ".join(measure.grounds)))
    changed: MeasureView = await take(request, who, found, measure_handle(request.app.state.client, reference,
                                                                         measure_id), update, body,
                                      MeasureWorkflow.view, meanwhile="the request or the measure")
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


@posts(router, "/{reference}/measures/{measure_id}/authorisation", Authorisation, response_model=AssistanceView)
async def authorise(request: Request, reference: str, measure_id: str, who: Caller) -> AssistanceView:
    ref = request.app.state.reference
    court = authorising_court(ref, who.state)

    def courts(m: MeasureView, v: AssistanceView) -> list[tuple[str, str]]:
        by = m.court or authorising_court(ref, v.requested_state)
        return [(getattr(ref.authority(by), "role", "court"), by)]

    return await measure_act(request, who, reference, measure_id, MeasureWorkflow.authorise, Authorisation,
                             lambda m, v: who.state == v.requested_state and who.id == court, "authorise", courts)


@posts(router, "/{reference}/measures/{measure_id}/result", MeasureResult, response_model=AssistanceView)
async def report_result(request: Request, reference: str, measure_id: str, who: Caller) -> AssistanceView:
    ref = request.app.state.reference

    def reporters(m: MeasureView, v: AssistanceView) -> list[tuple[str, str]]:
        assigned = [(getattr(ref.authority(m.assigned_to), "role", "executing_authority"), m.assigned_to)] \
            if m.assigned_to else []
        return assigned + acting(request, v.requested_state, {CENTRAL})[1]

    def with_documents(result: MeasureResult, view: AssistanceView) -> MeasureResult:
        """Each item naming a document: that evidence document of this measure, and its stored digest."""
        evidence = {d.document_id: d for d in view.documents if d.type == "evidence" and d.measure_id == measure_id}
        items, problems = [], []
        for number, item in enumerate(result.evidence):
            if item.document_id is not None:
                document = evidence.get(item.document_id)
                if document is None:
                    problems.append((f"evidence.{number}.document_id",
                                     f"evidence.{number}.document_id names no evidence document of measure "
                                     f"{measure_id}: upload it to the case file with type evidence and this "
                                     "measure_id first"))
                elif item.sha256 is not None and item.sha256 != document.sha256:
                    problems.append((f"evidence.{number}.sha256", f"evidence.{number}.sha256 differs from the "
                                                                  "digest of the document it names"))
                else:
                    item = item.model_copy(update={"sha256": document.sha256})
            items.append(item)
        if problems:
            raise invalid(problems)
        return result.model_copy(update={"evidence": items})

    return await measure_act(
        request, who, reference, measure_id, MeasureWorkflow.report_result, MeasureResult,
        lambda m, v: who.state == v.requested_state and (who.id == m.assigned_to or who.role == CENTRAL),
        "report the result of", reporters, resolve=with_documents)
