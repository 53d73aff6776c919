"""Helpers shared by the workflow tests."""

from temporalio.client import WorkflowHandle, WorkflowUpdateFailedError
from temporalio.exceptions import ApplicationError
from temporalio.service import RPCError

from api.engine import closed_meanwhile


async def assert_conflict(handle: WorkflowHandle, update, actor: str, body) -> None:
    """A conflict: refused by the workflow's validator while it is still open, or, once it has
    closed, by the server ("workflow execution already completed" or "aborted by closing workflow",
    which the API answers 409)."""
    try:
        await handle.execute_update(update, args=[actor, body])
    except WorkflowUpdateFailedError as failed:
        assert isinstance(failed.cause, ApplicationError) and failed.cause.type == "conflict", failed.cause
    except RPCError as err:
        assert closed_meanwhile(err), err
    else:
        raise AssertionError("the act was accepted")
