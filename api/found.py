"""Finding a case for a caller — live from the workflow's query while it runs, from the archive
once it is closed; a third state (or anyone a confidential request hides from) gets the same 404
as for a reference that does not exist, a role with no part in the kind gets 403 — and opening
one, idempotently, live or archived."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date
from typing import Any

import structlog
from fastapi import Request, Response
from temporalio.client import WorkflowHandle, WorkflowUpdateFailedError
from temporalio.service import RPCError, RPCStatusCode

from api.auth import ROLES_IN, deny, hide
from api.engine import act_refused, within
from api.errors import conflict, invalid
from domain.reference import Authority
from domain.transfer import request_digest
from treatyflow.cases import CaseClosed, ReferenceTaken, case_handle, open_case
from workflows.kinds import KINDS, CaseKind
from workflows.rejection import a_role, and_list, reference_taken

log = structlog.get_logger("treatyflow.api")

REFERENCE = re.compile(r"^[A-Za-z0-9._-]{3,64}$")  # as domain.transfer.Reference


@dataclass
class Found:
    view: Any
    handle: WorkflowHandle
    live: bool


def role_has_no_part(who: Authority, kind: str) -> str:
    plural = {"central_authority": "central authorities", "prison_service": "prison services", "court": "courts",
              "executing_authority": "executing authorities"}
    roles = and_list(plural[r] for r in sorted(ROLES_IN[kind]))
    return f"{who.id} is {a_role(who.role)}: only {roles} take part in {KINDS[kind].many}"


def states_of(view: Any) -> tuple[str, str]:
    return KINDS[view.kind].states(view)


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


async def read_case(app: Any, kind: CaseKind, reference: str) -> Found | None:
    """The case under ``reference``: live from the workflow's query while it is open, from the
    archive once it has closed (or, closed and not yet archived, the workflow's last view while it
    is retained); None when there is none. One round trip for an open case: the query itself says
    whether the case is open (a terminal stage is closed, or closing), never a describe first."""
    handle = case_handle(app.client, kind, reference)
    try:
        view = await within(app.settings.api_timeout, handle.query(kind.workflow.view))
    except RPCError as err:
        if err.status != RPCStatusCode.NOT_FOUND:
            raise
        view = None
    if view is not None and view.stage not in kind.terminal:
        return Found(view, handle, live=True)
    archived = await app.archive.read(kind.name, reference)
    if archived is None and view is None:
        return None
    return Found(kind.view.model_validate(archived.view) if archived else view, handle, live=False)


async def other_kind_hint(request: Request, who: Authority, kind: CaseKind, reference: str) -> str:
    """For the 404 of ``kind``: ``KZ-1 is a request for assistance, see /v1/assistance-requests/KZ-1``
    when the reference is a case of another kind that ``who`` may read there (by the rules of
    ``find_case``); else nothing. It never depends on a case of ``kind`` (a third state's 404 stays
    the one of a missing case), and a lookup that fails only leaves the hint out."""
    for other in KINDS.values():
        if other is kind or who.role not in ROLES_IN[other.name]:
            continue
        try:
            found = await read_case(request.app.state, other, reference)
        except Exception as exc:  # noqa: BLE001 - a hint, never a reason for the 404 to fail
            log.warning("hint lookup failed", kind=other.name, cause=type(exc).__name__)
            continue
        if found is not None and visible(who, other.name, found.view):
            return f"{reference} is {other.one}, see {other.path}/{reference}"
    return ""


async def find_case(request: Request, who: Authority, kind: CaseKind, reference: str) -> Found:
    if who.role not in ROLES_IN[kind.name]:  # before any lookup: the answer reveals nothing
        raise deny(request, who, role_has_no_part(who, kind.name), reference[:64])
    if not REFERENCE.match(reference):  # no case can have it: the same 404, without asking anyone
        raise hide(request, who, reference[:64], kind.name)
    found = await read_case(request.app.state, kind, reference)
    if found is None or not visible(who, kind.name, found.view):
        raise hide(request, who, reference, kind.name, await other_kind_hint(request, who, kind, reference))
    return found


async def open_or_find(request: Request, response: Response, who: Authority, kind: CaseKind, body: Any,
                       problems: list[tuple[str, str]], opening: bool = True, received_today: bool = False) -> Any:
    """Open the case (201), or answer the existing one for an identical request (200, live or
    from the archive); the same reference with a different request is 409. Without ``opening``
    (a preview), nothing is opened: the status is the one opening would give, the answer None.

    ``received_today``: the client left ``received_on`` out and the API gave it today's date. A
    case opened from the same request on an earlier day (a retry across midnight, a list imported
    again) then holds that day: it is the same request, answered as existing, not a reference
    taken."""
    app = request.app.state
    if problems:
        raise invalid(problems)
    taken = conflict(reference_taken(body.reference))
    digest = request_digest(body)

    def same_request(sha256: str, received_on: date | str) -> bool:
        if sha256 == digest:
            return True
        day = date.fromisoformat(received_on) if isinstance(received_on, str) else received_on
        return received_today and sha256 == request_digest(body.model_copy(update={"received_on": day}))

    async def from_archive() -> Any:
        archived = await app.archive.read(kind.name, body.reference)
        if archived is None:
            return None
        if not same_request(archived.request_sha256, archived.view["received_on"]):
            raise taken
        response.status_code = 200
        return kind.view.model_validate(archived.view)

    async def live() -> tuple[Any, Any] | None:
        """The open case's opening and view (None: no case under the reference)."""
        handle = case_handle(app.client, kind, body.reference)
        try:
            found = await within(app.settings.api_timeout, handle.query(kind.workflow.opening))
        except RPCError as err:
            if err.status != RPCStatusCode.NOT_FOUND:
                raise
            return None
        return found, (await within(app.settings.api_timeout, handle.query(kind.workflow.view)))

    # a case closed long ago may be gone from the engine: the archive is its record
    if (view := await from_archive()) is not None:
        return view
    if not opening:
        found = await live()
        if found is not None and not same_request(found[0].request_sha256, found[1].received_on):
            raise taken
        response.status_code = 201 if found is None else 200
        return None
    try:
        async with app.intake.opening():
            opened = await within(app.settings.api_timeout,
                                  open_case(app.client, kind, body, who.id, app.settings.task_queue))
    except WorkflowUpdateFailedError as err:
        raise act_refused(err) from None
    except ReferenceTaken:
        found = await live() if received_today else None
        if found is None or not same_request(found[0].request_sha256, found[1].received_on):
            raise taken from None
        response.status_code = 200
        return found[1]
    except CaseClosed:  # closed since the archive was read; its record is written before it closes
        if (view := await from_archive()) is None:
            raise taken from None
        return view
    response.status_code = 201 if opened.created else 200
    return opened.view
