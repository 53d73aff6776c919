"""Opening and moving cases from a client (the API, the CLI, tests, benchmarks): the workflow
id from the reference, update-with-start for a synchronous intake, updates for acts."""

from __future__ import annotations

from temporalio.client import Client, WithStartWorkflowOperation, WorkflowHandle
from temporalio.common import (
    SearchAttributePair, TypedSearchAttributes, WorkflowIDConflictPolicy, WorkflowIDReusePolicy,
)
from temporalio.exceptions import WorkflowAlreadyStartedError

from domain.assistance import AssistanceRequest
from domain.transfer import TransferRequest
from workflows import search_attributes as sa
from workflows.assistance import AssistanceOpening, AssistanceWorkflow, OpenAssistance, assistance_workflow_id
from workflows.measure import MeasureWorkflow, measure_workflow_id
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


async def open_assistance(client: Client, request: AssistanceRequest, opened_by: str,
                          task_queue: str) -> AssistanceOpening:
    """As ``open_transfer``, for a request for mutual legal assistance."""
    start = WithStartWorkflowOperation(
        AssistanceWorkflow.run, OpenAssistance(request=request, opened_by=opened_by),
        id=assistance_workflow_id(request.reference), task_queue=task_queue,
        id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
        id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
        search_attributes=TypedSearchAttributes([
            SearchAttributePair(sa.CASE_KIND, "assistance"),
            SearchAttributePair(sa.CASE_STATES, [request.requesting_state, request.requested_state]),
        ]),
        static_summary=f"Assistance {request.reference}: {request.requesting_state} → {request.requested_state}, "
                       f"{len(request.measures)} measures",
    )
    try:
        return await client.execute_update_with_start_workflow(
            AssistanceWorkflow.opened, request, start_workflow_operation=start)
    except WorkflowAlreadyStartedError:
        raise CaseClosed(request.reference) from None


def assistance_handle(client: Client, reference: str) -> WorkflowHandle:
    return client.get_workflow_handle_for(AssistanceWorkflow.run, assistance_workflow_id(reference))


def measure_handle(client: Client, reference: str, measure_id: str) -> WorkflowHandle:
    return client.get_workflow_handle_for(MeasureWorkflow.run, measure_workflow_id(reference, measure_id))
