"""Opening and moving cases from a client (the API, the CLI, tests, benchmarks): the workflow
id from the reference, update-with-start for a synchronous intake, updates for acts."""

from __future__ import annotations

from temporalio.client import Client, WithStartWorkflowOperation, WorkflowHandle
from temporalio.common import SearchAttributePair, TypedSearchAttributes, WorkflowIDConflictPolicy

from domain.transfer import TransferRequest, TransferView
from workflows import search_attributes as sa
from workflows.transfer import OpenTransfer, TransferWorkflow, transfer_workflow_id


async def open_transfer(client: Client, request: TransferRequest, opened_by: str, task_queue: str) -> TransferView:
    """Start the case (or find the one already running under that reference) and answer once its
    intake has run: the view shows a waiting stage or ``refused``."""
    start = WithStartWorkflowOperation(
        TransferWorkflow.run, OpenTransfer(request=request, opened_by=opened_by),
        id=transfer_workflow_id(request.reference), task_queue=task_queue,
        id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
        search_attributes=TypedSearchAttributes([
            SearchAttributePair(sa.CASE_KIND, "transfer"),
            SearchAttributePair(sa.CASE_STATES, [request.sentencing_state, request.administering_state]),
        ]),
        static_summary=f"Transfer {request.reference}: {request.sentencing_state} → {request.administering_state}",
    )
    return await client.execute_update_with_start_workflow(TransferWorkflow.opened, start_workflow_operation=start)


def transfer_handle(client: Client, reference: str) -> WorkflowHandle:
    return client.get_workflow_handle_for(TransferWorkflow.run, transfer_workflow_id(reference))
