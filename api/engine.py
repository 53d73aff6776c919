"""Calls into Temporal with a deadline, and Temporal's answers mapped to HTTP."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import TypeVar

from temporalio.client import WorkflowUpdateFailedError, WorkflowUpdateRPCTimeoutOrCancelledError
from temporalio.exceptions import ApplicationError
from temporalio.service import RPCError, RPCStatusCode

from api.errors import ApiError, conflict, forbidden, invalid, unavailable
from workflows import rejection

T = TypeVar("T")


async def within(seconds: float, call: Awaitable[T]) -> T:
    """The answer of a Temporal call, or 503 with Retry-After when none comes in time
    (no worker running, server unreachable)."""
    try:
        return await asyncio.wait_for(call, timeout=seconds)
    except (asyncio.TimeoutError, WorkflowUpdateRPCTimeoutOrCancelledError):
        raise unavailable() from None
    except RPCError as err:
        if err.status in (RPCStatusCode.UNAVAILABLE, RPCStatusCode.DEADLINE_EXCEEDED, RPCStatusCode.CANCELLED):
            raise unavailable() from None
        raise


def act_refused(err: WorkflowUpdateFailedError) -> ApiError:
    """A validator's rejection → 403/422/409, as the workflow typed it."""
    cause = err.cause
    if isinstance(cause, ApplicationError):
        if cause.type == rejection.NOT_PERMITTED:
            return forbidden(cause.message)
        if cause.type == rejection.INVALID:
            field = cause.details[0].get("field", "(body)") if cause.details and isinstance(cause.details[0], dict) \
                else "(body)"
            return invalid([(field, cause.message)])
        if cause.type == rejection.CONFLICT:
            return conflict(cause.message)
        if cause.type == "AcceptedUpdateCompletedWorkflow":  # the case closed before the act took effect
            return conflict("the case closed before the act could take effect")
    return unavailable("the case could not take the act; try again")


def closed_meanwhile(err: RPCError) -> bool:
    """The server's answer to an act on a workflow that has closed (or closed while the act waited)."""
    message = str(err.message).lower()
    return err.status == RPCStatusCode.NOT_FOUND and ("completed" in message or "closing" in message)
