"""Finding a case for a caller — live from the workflow's query while it runs, from the archive
once it is closed; a third state (or anyone a confidential request hides from) gets the same 404
as for a reference that does not exist, a role with no part in the kind gets 403 — and opening
one, idempotently, live or archived."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from collections.abc import Awaitable, Callable

import structlog
from fastapi import Request, Response
from pydantic import BaseModel
from temporalio.client import WorkflowExecutionStatus, WorkflowHandle, WorkflowUpdateFailedError
from temporalio.service import RPCError, RPCStatusCode

from api.auth import ROLES_IN, deny, hide
from api.engine import act_refused, within
from api.errors import conflict, invalid
from domain.assistance import AssistanceView
from domain.reference import Authority
from domain.transfer import TransferView, request_digest
from treatyflow.cases import CaseClosed, ReferenceTaken, assistance_handle, transfer_handle
from workflows.assistance import AssistanceWorkflow
from workflows.rejection import a_role, and_list, reference_taken
from workflows.transfer import TransferWorkflow

log = structlog.get_logger("treatyflow.api")

REFERENCE = re.compile(r"^[A-Za-z0-9._-]{3,64}$")  # as domain.transfer.Reference


@dataclass
class Found:
    view: Any
    handle: WorkflowHandle
    live: bool


KINDS = {"transfer": "transfer cases", "assistance": "requests for assistance"}
A_KIND = {"transfer": "a transfer case", "assistance": "a request for assistance"}
PATHS = {"transfer": "/v1/transfers", "assistance": "/v1/assistance-requests"}
OTHER_KIND = {"transfer": "assistance", "assistance": "transfer"}


def role_has_no_part(who: Authority, kind: str) -> str:
    plural = {"central_authority": "central authorities", "prison_service": "prison services", "court": "courts",
              "executing_authority": "executing authorities"}
    roles = and_list(plural[r] for r in sorted(ROLES_IN[kind]))
    return f"{who.id} is {a_role(who.role)}: only {roles} take part in {KINDS[kind]}"


def states_of(view: Any) -> tuple[str, str]:
    if view.kind == "transfer":
        return view.sentencing_state, view.administering_state
    return view.requesting_state, view.requested_state


def may_see_confidential(who: Authority, view: Any) -> bool:
    """A confidential request: the two central authorities, the authorities its permitted measures
    are routed to and the court that authorises its coercive measures. A measure that is
    ``not_permitted`` is routed to no one: it reveals the request to nobody."""
    involved = {a for m in view.measures if m.stage != "not_permitted" for a in (m.assigned_to, m.court)}
    return who.role == "central_authority" or who.id in involved


def visible(who: Authority, kind: str, view: Any) -> bool:
    """Whether ``who`` (of a role with a part in ``kind``) may read the case: an authority of one
    of its two states, and of a confidential request only those ``may_see_confidential`` names."""
    if who.state not in states_of(view):
        return False
    return not (kind == "assistance" and view.confidential and not may_see_confidential(who, view))


async def read_case(app: Any, kind: str, reference: str, handle: WorkflowHandle, view_type: type[BaseModel],
                    query: Any) -> Found | None:
    """The case under ``reference``: live from the workflow's query while it runs, from the archive
    once closed (or, closed and not yet archived, the workflow's last view while it is retained);
    None when there is none."""
    try:
        described = await within(app.settings.api_timeout, handle.describe())
    except RPCError as err:
        if err.status != RPCStatusCode.NOT_FOUND:
            raise
        described = None
    if described is not None and described.status == WorkflowExecutionStatus.RUNNING:
        return Found(await within(app.settings.api_timeout, handle.query(query)), handle, live=True)
    archived = await app.archive.read(kind, reference)
    if archived is None and described is None:
        return None
    view = (view_type.model_validate(archived.view) if archived
            else await within(app.settings.api_timeout, handle.query(query)))
    return Found(view, handle, live=False)


async def other_kind_hint(request: Request, who: Authority, kind: str, reference: str) -> str:
    """For the 404 of ``kind``: ``KZ-1 is a request for assistance, see /v1/assistance-requests/KZ-1``
    when the reference is a case of the other kind that ``who`` may read there (by the rules of
    ``find_case``); else nothing. It never depends on a case of ``kind`` (a third state's 404 stays
    the one of a missing case), and a lookup that fails only leaves the hint out."""
    other = OTHER_KIND[kind]
    if who.role not in ROLES_IN[other]:
        return ""
    app = request.app.state
    if other == "transfer":
        handle, view_type, query = transfer_handle(app.client, reference), TransferView, TransferWorkflow.view
    else:
        handle, view_type, query = assistance_handle(app.client, reference), AssistanceView, AssistanceWorkflow.view
    try:
        found = await read_case(app, other, reference, handle, view_type, query)
    except Exception as exc:  # noqa: BLE001 - a hint, never a reason for the 404 to fail
        log.warning("hint lookup failed", kind=other, cause=type(exc).__name__)
        return ""
    if found is None or not visible(who, other, found.view):
        return ""
    return f"{reference} is {A_KIND[other]}, see {PATHS[other]}/{reference}"


async def find_case(request: Request, who: Authority, kind: str, reference: str, handle: WorkflowHandle,
                    view_type: type[BaseModel], query: Any) -> Found:
    app = request.app.state
    if who.role not in ROLES_IN[kind]:  # before any lookup: the answer reveals nothing
        raise deny(request, who, role_has_no_part(who, kind), reference[:64])
    if not REFERENCE.match(reference):  # no case can have it: the same 404, without asking anyone
        raise hide(request, who, reference[:64], kind)
    found = await read_case(app, kind, reference, handle, view_type, query)
    if found is None or not visible(who, kind, found.view):
        raise hide(request, who, reference, kind, await other_kind_hint(request, who, kind, reference))
    return found


async def open_or_find(request: Request, response: Response, who: Authority, kind: str, body: Any,
                       problems: list[tuple[str, str]], opener: Callable[..., Awaitable[Any]],
                       view_type: type[BaseModel]) -> Any:
    """Open the case (201), or answer the existing one for an identical request (200, live or
    from the archive); the same reference with a different request is 409."""
    app = request.app.state
    if problems:
        raise invalid(problems)
    taken = conflict(reference_taken(body.reference))

    async def from_archive() -> Any:
        archived = await app.archive.read(kind, body.reference)
        if archived is None:
            return None
        if archived.request_sha256 != request_digest(body):
            raise taken
        response.status_code = 200
        return view_type.model_validate(archived.view)

    # a case closed long ago may be gone from the engine: the archive is its record
    if (view := await from_archive()) is not None:
        return view
    try:
        opening = await within(app.settings.api_timeout, opener(app.client, body, who.id, app.settings.task_queue))
    except WorkflowUpdateFailedError as err:
        raise act_refused(err) from None
    except ReferenceTaken:
        raise taken from None
    except CaseClosed:  # closed since the archive was read; its record is written before it closes
        if (view := await from_archive()) is None:
            raise taken from None
        return view
    response.status_code = 201 if opening.created else 200
    return opening.view
