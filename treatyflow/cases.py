"""Opening and moving cases from a client (the API, the CLI, tests, benchmarks): the workflow
id from the reference, update-with-start for a synchronous intake, updates for acts."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from temporalio.client import Client, WithStartWorkflowOperation, WorkflowHandle, WorkflowUpdateFailedError
from temporalio.common import WorkflowIDConflictPolicy, WorkflowIDReusePolicy
from temporalio.exceptions import WorkflowAlreadyStartedError
from temporalio.service import RPCError, RPCStatusCode

from domain.assistance import AssistanceRequest
from domain.case import Actor, RequestSeal
from domain.transfer import TransferRequest, request_digest
from treatyflow.codec import EncryptionCodec
from workflows import rejection
from workflows.case import Opening
from workflows.kinds import ASSISTANCE, TRANSFER, CaseKind
from workflows.measure import MeasureWorkflow, measure_workflow_id


class CaseClosed(Exception):
    """The reference belongs to a case that has closed: read it from the archive."""


class ReferenceTaken(Exception):
    """The reference belongs to a case opened with a different request."""


async def existing_opening(handle: WorkflowHandle, query: Any, seal: RequestSeal) -> Any | None:
    """The case already under this reference, found by query (which adds nothing to its history);
    None when there is none. While its intake runs, wait for it (the caller bounds the wait)."""
    while True:
        try:
            opening = await handle.query(query)
        except RPCError as err:
            if err.status == RPCStatusCode.NOT_FOUND:
                return None
            raise
        if opening.request_sha256 != seal.request_sha256:
            raise ReferenceTaken(handle.id.split(":", 1)[1])
        if opening.intake_done:
            return opening
        await asyncio.sleep(0.1)


async def open_case(client: Client, kind: CaseKind, request: Any, opened_by: str, task_queue: str) -> Opening:
    """Start the case and answer once its intake has run; the starting update carries only the
    request's seal. A case already under that reference refuses the update (which adds nothing to
    its history) and is read by query instead, so a client may repeat an opening any number of
    times. A case opened with a different request raises ReferenceTaken; a closed one is answered
    from its query while the engine retains it, else CaseClosed (a reference is never reused for
    a second case)."""
    workflow_id = kind.workflow_id(request.reference)
    handle = client.get_workflow_handle(workflow_id)
    seal = RequestSeal(request_sha256=request_digest(request))
    start = WithStartWorkflowOperation(
        kind.workflow.run, kind.start(request, opened_by), id=workflow_id, task_queue=task_queue,
        id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING, id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
        search_attributes=kind.start_attributes(request, name_index_key(client)), memo=kind.memo(request),
        static_summary=kind.summary(request))
    try:
        opening = await client.execute_update_with_start_workflow(kind.workflow.opened, seal,
                                                                  start_workflow_operation=start)
    except (WorkflowUpdateFailedError, WorkflowAlreadyStartedError) as err:  # open already, or closed
        if isinstance(err, WorkflowUpdateFailedError) and getattr(err.cause, "type", None) != rejection.OPENED:
            raise
        if isinstance(err, WorkflowAlreadyStartedError):  # the start's own answer, taken (never left unread)
            with contextlib.suppress(WorkflowAlreadyStartedError):
                await start.workflow_handle()
        found = await existing_opening(handle, kind.workflow.opening, seal)
        if found is None:  # gone from the engine: the archive has it
            raise CaseClosed(request.reference) from None
        return found
    if opening.view is None:  # another opening of the same request started it a moment before
        opening.view = await handle.query(kind.workflow.view)
    return opening


async def act(handle: WorkflowHandle, update: Any, actor: str, body: Any, view: Any, user: str | None = None) -> Any:
    """An authority's act on a case (an update whose validator may refuse it), then the case's
    view by query: the act's answer carries no view, so that it adds only itself to the history.
    ``user``: the person acting for ``actor`` (the web application's), recorded beside it. An act
    that meets the case moving to a new run (continue-as-new) is sent again to that run."""
    args = [actor if user is None else Actor(authority=actor, user=user), body]
    for attempt in range(50):
        try:
            await handle.execute_update(update, args=args)
            break
        except WorkflowUpdateFailedError as err:
            if getattr(err.cause, "type", None) != rejection.MOVING or attempt == 49:
                raise
            await asyncio.sleep(0.05)
    return await handle.query(view)


def name_index_key(client: Client) -> bytes | None:
    """The key of the blind index of names (from the current codec key); None for a client that
    encrypts nothing (the recorder of committed histories), which then indexes no name."""
    codec = client.data_converter.payload_codec
    return codec.keys.derived("name index") if isinstance(codec, EncryptionCodec) else None


def case_handle(client: Client, kind: CaseKind, reference: str) -> WorkflowHandle:
    return client.get_workflow_handle_for(kind.workflow.run, kind.workflow_id(reference))


async def open_transfer(client: Client, request: TransferRequest, opened_by: str, task_queue: str) -> Opening:
    return await open_case(client, TRANSFER, request, opened_by, task_queue)


async def open_assistance(client: Client, request: AssistanceRequest, opened_by: str, task_queue: str) -> Opening:
    return await open_case(client, ASSISTANCE, request, opened_by, task_queue)


def transfer_handle(client: Client, reference: str) -> WorkflowHandle:
    return case_handle(client, TRANSFER, reference)


def assistance_handle(client: Client, reference: str) -> WorkflowHandle:
    return case_handle(client, ASSISTANCE, reference)


def measure_handle(client: Client, reference: str, measure_id: str) -> WorkflowHandle:
    return client.get_workflow_handle_for(MeasureWorkflow.run, measure_workflow_id(reference, measure_id))
