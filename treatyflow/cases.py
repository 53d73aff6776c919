"""Opening and moving cases from a client (the API, the CLI, tests, benchmarks): the workflow
id from the reference, update-with-start for a synchronous intake, updates for acts."""

from __future__ import annotations

from temporalio.client import Client, WithStartWorkflowOperation, WorkflowHandle
from temporalio.common import (
    SearchAttributePair, TypedSearchAttributes, WorkflowIDConflictPolicy, WorkflowIDReusePolicy,
)
from temporalio.exceptions import WorkflowAlreadyStartedError

from domain.transfer import TransferRequest
from workflows import search_attributes as sa
from workflows.transfer import OpenTransfer, Opening, TransferWorkflow, transfer_workflow_id


class CaseClosed(Exception):
    """The reference belongs to a case that has closed: read it from the archive."""


async def open_transfer(client: Client, request: TransferRequest, opened_by: str, task_queue: str) -> Opening:
    """Start the case, or find the one already running under that reference, and answer once its
    intake has run. A running case opened with a different request answers ``conflict``; a closed
    one raises CaseClosed (a reference is never reused for a second case)."""
    start = WithStartWorkflowOperation(
        TransferWorkflow.run, OpenTransfer(request=request, opened_by=opened_by),
        id=transfer_workflow_id(request.reference), task_queue=task_queue,
        id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
        id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
        search_attributes=TypedSearchAttributes([
            SearchAttributePair(sa.CASE_KIND, "transfer"),
            SearchAttributePair(sa.CASE_STATES, [request.sentencing_state, request.administering_state]),
        ]),
        static_summary=f"Transfer {request.reference}: {request.sentencing_state} → {request.administering_state}",
    )
    try:
        return await client.execute_update_with_start_workflow(
            TransferWorkflow.opened, request, start_workflow_operation=start)
    except WorkflowAlreadyStartedError:
        raise CaseClosed(request.reference) from None


def transfer_handle(client: Client, reference: str) -> WorkflowHandle:
    return client.get_workflow_handle_for(TransferWorkflow.run, transfer_workflow_id(reference))
