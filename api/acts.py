"""An authority's act on a case, the one way every act route takes it: find the case for the caller
(401 → 404), check who may (403), read the body (422), then the act as a workflow update whose
validator has the last word (its 403, 422 or 409), answering with the case's view once the act
took effect. An act its validator accepts is first tried without finding the case (``attempt``):
anything refused goes the whole way, whose answer is the one of the checks in that order.
``posts`` declares a route with the body model it reads, for the OpenAPI document."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from fastapi import APIRouter, Request
from pydantic import BaseModel
from temporalio.client import WorkflowHandle, WorkflowUpdateFailedError
from temporalio.service import RPCError, RPCStatusCode

from api.auth import deny
from api.body import parse
from api.engine import act_refused, closed_meanwhile, within
from api.errors import ApiError, conflict
from api.found import REFERENCE, Found, find_case, states_of
from domain.reference import Authority
from treatyflow.cases import act as act_on, case_handle
from workflows.kinds import KINDS, CaseKind
from workflows.rejection import only

F = TypeVar("F", bound=Callable[..., Any])
ROLE_ORDER = ("central_authority", "prison_service", "court", "executing_authority")


BODIES: dict[str, type[BaseModel]] = {}  # the body models of the routes, by name (for api/openapi.py)


def posts(router: APIRouter, path: str, model: type[BaseModel], **route: Any) -> Callable[[F], F]:
    """``router.post(path, ...)`` for a route that reads a body of ``model`` (``api.body.parse``
    reads it strictly, so that FastAPI cannot see it): the OpenAPI document shows it."""
    BODIES[model.__name__] = model
    return router.post(path, openapi_extra={"x-body": model.__name__}, **route)


def acting(request: Request, state: str, roles: set[str] | frozenset[str]) -> tuple[str, list[tuple[str, str]]]:
    """The authorities of ``state`` of ``roles`` in the directory, for a message saying who may act."""
    found = [a for a in request.app.state.reference.authorities_of(state) if a.role in roles]
    found.sort(key=lambda a: ROLE_ORDER.index(a.role) if a.role in ROLE_ORDER else len(ROLE_ORDER))
    return state, [(a.role, a.id) for a in found]


@dataclass(frozen=True)
class May:
    """Who may take an act: the authorities of ``roles`` of the case's ``side`` state (the field
    ``{side}_state`` of its view), of either state when ``side`` is None."""

    roles: frozenset[str]
    side: str | None = None

    def __call__(self, who: Authority, view: Any) -> bool:
        return who.role in self.roles and who.state in self.states(view)

    def states(self, view: Any) -> list[str]:
        return [getattr(view, f"{self.side}_state")] if self.side else list(states_of(view))

    def refusal(self, request: Request, what: str, view: Any) -> str:
        return only(what, *(acting(request, s, self.roles) for s in self.states(view)))


def acting_user(request: Request) -> str | None:
    """The person acting for the authority: set by the web application for a signed-in user;
    None through the API (an authority's key names no person)."""
    return getattr(request.state, "user", None)


def raw_json(body: bytes) -> Any:
    """The body as JSON, or None: what it fails of is said by ``parse``."""
    try:
        return json.loads(body)
    except ValueError:
        return None


async def take(request: Request, who: Authority, found: Found, handle: WorkflowHandle, update: Any, body: Any,
               view: Any, meanwhile: str | None = None) -> Any:
    """Run the act as an update of ``handle`` (the case's, or a measure's) and answer its ``view``
    query; ``meanwhile`` names what may have closed meanwhile in the 409 (the case, by default)."""
    noun = f"the {KINDS[found.view.kind].workflow.noun}"
    if not found.live:
        raise conflict(f"{noun} is closed ({found.view.stage}): no more acts are possible on it")
    try:
        return await within(request.app.state.settings.api_timeout,
                            act_on(handle, update, who.id, body, view, acting_user(request)))
    except WorkflowUpdateFailedError as err:
        raise act_refused(err) from None
    except RPCError as err:
        if closed_meanwhile(err):
            raise conflict(f"{meanwhile or noun} has closed: no more acts are possible on it") from None
        raise


async def act(request: Request, who: Authority, kind: CaseKind, reference: str, update: Any, model: type,
              may: May, what: str, check: Callable[[Any, Any], None] | None = None,
              ahead: Callable[[Any, Any], None] | None = None) -> Any:
    """401 → 404 → 403 → 422 → 409, then the act. ``ahead``: a 403 that the raw body decides,
    before the body is validated; ``check``: what the API judges of the valid body against the
    case before the workflow does."""
    if (view := await attempt(request, who, kind, reference, update, model, may)) is not None:
        return view
    found = await find_case(request, who, kind, reference)
    if not may(who, found.view):
        raise deny(request, who, may.refusal(request, what, found.view), reference)
    if ahead:
        ahead(raw_json(await request.body()), found.view)
    body = await parse(request, model)
    if check:
        check(body, found.view)
    return await take(request, who, found, found.handle, update, body, kind.workflow.view)


async def attempt(request: Request, who: Authority, kind: CaseKind, reference: str, update: Any, model: type,
                  may: May) -> Any | None:
    """The act sent to the case at once, with no read before it: the view once it took effect, or
    None when anything refuses it (a role that may not take it, a body that fails, a case closed
    or missing, the validator's refusal), for the whole way to answer. Sound because every case
    act's validator checks the actor against the authorities of the case's states at least as
    strictly as ``may`` and the route's checks do (tests/api/test_permissions.py refuses each act
    to each role and state); a refused update leaves nothing in the history."""
    if who.role not in may.roles or not REFERENCE.match(reference):
        return None
    try:
        body = await parse(request, model)
    except ApiError:
        return None
    handle = case_handle(request.app.state.client, kind, reference)
    try:
        return await within(request.app.state.settings.api_timeout,
                            act_on(handle, update, who.id, body, kind.workflow.view, acting_user(request)))
    except WorkflowUpdateFailedError:
        return None
    except RPCError as err:
        if err.status == RPCStatusCode.NOT_FOUND:  # missing, or closed: the archive decides
            return None
        raise
