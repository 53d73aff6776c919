"""Who is calling, and what each role may do (API.md's permission matrix)."""

from __future__ import annotations

from typing import Annotated

import structlog
from fastapi import Depends, Request

from api.errors import ApiError, forbidden, unauthenticated
from domain.reference import Authority

log = structlog.get_logger("treatyflow.api.auth")

# Roles with a part in each case kind (others of a party state get 403).
ROLES_IN = {
    "transfer": frozenset({"central_authority", "prison_service"}),
    "assistance": frozenset({"central_authority", "court", "executing_authority"}),
}


async def caller(request: Request) -> Authority:
    """The authority whose key is presented; 401 without one."""
    header = request.headers.get("authorization", "")
    scheme, _, key = header.partition(" ")
    authority = request.app.state.keys.authority_for(key.strip()) if scheme.lower() == "bearer" and key else None
    if authority is None:
        refused(request, None, 401)
        raise unauthenticated(dev_example(request))
    request.state.authority = authority
    request.app.state.limiter.check(authority.id)
    structlog.contextvars.bind_contextvars(authority=authority.id)
    return authority


Caller = Annotated[Authority, Depends(caller)]  # a route's parameter: the authority calling


def dev_example(request: Request) -> str | None:
    """In dev mode only: an authority id of the directory, for the 401's hint at the demo keys."""
    app = request.app.state
    if not app.keys.dev_mode or not app.reference.authorities:
        return None
    return app.reference.authorities[0].id


def refused(request: Request, authority: Authority | None, status: int, reference: str | None = None) -> None:
    """Every refused attempt is logged: authority, route template, reference. Never the body."""
    route = request.scope.get("route")
    log.warning("request refused", status=status, authority=authority.id if authority else None,
                route=getattr(route, "path", request.url.path if status == 401 else None),
                method=request.method, reference=reference or request.path_params.get("reference"))


def deny(request: Request, who: Authority, message: str, reference: str | None = None) -> ApiError:
    refused(request, who, 403, reference)
    return forbidden(message)


def hide(request: Request, who: Authority, reference: str, kind: str = "case", hint: str = "") -> ApiError:
    """A third state learns nothing: the same 404 as for a case that does not exist. ``hint``
    (the reference is a case of the other kind, which the caller may read) must not depend on
    whether a case of ``kind`` exists."""
    from api.errors import not_found

    refused(request, who, 404, reference)
    return not_found(kind, hint)
