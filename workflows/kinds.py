"""The case kinds, one entry each: what the client helpers, the API (its routes, lists, inbox,
stats and OpenAPI) and the CLI need to know of a kind, read from the kind's workflow and models —
never restated. Adding a case kind means a workflow, its models and one entry here."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel
from temporalio.common import SearchAttributePair, TypedSearchAttributes

from domain.assistance import AssistanceRequest, AssistanceView
from domain.case import Action
from domain.names import name_index
from domain.transfer import TransferRequest, TransferView
from workflows import search_attributes as sa
from workflows.assistance import AssistanceWorkflow, OpenAssistance
from workflows.case import CaseWorkflow, Kind
from workflows.measure import MEASURE_KIND, MeasureWorkflow
from workflows.transfer import OpenTransfer, TransferWorkflow


@dataclass(frozen=True)
class CaseKind:
    name: Kind
    workflow: type[CaseWorkflow]
    request: type[BaseModel]
    view: type[BaseModel]
    start: Callable[[Any, str], BaseModel]  # (request, opened_by) → the workflow's input
    summary: Callable[[Any], str]  # the Temporal UI's static summary: references and states only
    label: Callable[[Any], str]  # what lists show of a case beside its reference: kept in its encrypted memo
    person: Callable[[Any], str | None]  # whose name the lists' search finds it by (its blind index)
    path: str  # the collection in the HTTP API
    one: str  # how people read it: "a transfer case"
    many: str  # "transfer cases"

    def workflow_id(self, reference: str) -> str:
        return self.workflow.workflow_id(reference)

    @property
    def state_fields(self) -> tuple[str, str]:
        return self.workflow.state_fields

    @property
    def stages(self) -> tuple[str, ...]:
        return self.workflow.stages

    @property
    def terminal(self) -> frozenset[str]:
        return self.workflow.terminal

    @property
    def actions(self) -> dict[str, Action]:
        return self.workflow.actions

    def states(self, case: Any) -> tuple[str, str]:
        """The two states of a request or a view, in the kind's order."""
        first, second = (getattr(case, f) for f in self.state_fields)
        return first, second

    def memo(self, request: Any) -> dict[str, str]:
        """The case's memo (encrypted by the codec, as every payload): what its rows show."""
        return {"label": self.label(request)}

    def start_attributes(self, request: Any, index_key: bytes | None = None) -> TypedSearchAttributes:
        """Set when the case starts, so that lists and counts find it from its first moment; with
        ``index_key``, the blind index of the person's name too."""
        pairs: list[SearchAttributePair] = [SearchAttributePair(sa.CASE_KIND, self.name),
                                            SearchAttributePair(sa.CASE_STAGE, self.workflow.first_stage),
                                            SearchAttributePair(sa.CASE_STATES, list(self.states(request)))]
        if hasattr(request, "confidential"):
            pairs.append(SearchAttributePair(sa.CASE_CONFIDENTIAL, request.confidential))
        if index_key is not None and (name := self.person(request)):
            pairs.append(SearchAttributePair(sa.PERSON_NAME_INDEX, name_index(index_key, name)))
        return TypedSearchAttributes(pairs)


TRANSFER = CaseKind(
    name="transfer", workflow=TransferWorkflow, request=TransferRequest, view=TransferView,
    start=lambda request, opened_by: OpenTransfer(request=request, opened_by=opened_by),
    summary=lambda r: f"Transfer {r.reference}: {r.sentencing_state} → {r.administering_state}",
    label=lambda r: r.person.full_name, person=lambda r: r.person.full_name,
    path="/v1/transfers", one="a transfer case", many="transfer cases")
ASSISTANCE = CaseKind(
    name="assistance", workflow=AssistanceWorkflow, request=AssistanceRequest, view=AssistanceView,
    start=lambda request, opened_by: OpenAssistance(request=request, opened_by=opened_by),
    summary=lambda r: f"Assistance {r.reference}: {r.requesting_state} → {r.requested_state}, "
                      f"{len(r.measures)} measures",
    label=lambda r: f"{r.issuing_authority} — {r.offences[0].description or r.offences[0].article}",
    person=lambda r: None,
    path="/v1/assistance-requests", one="a request for assistance", many="requests for assistance")
KINDS: dict[str, CaseKind] = {k.name: k for k in (TRANSFER, ASSISTANCE)}

# the inbox also lists the measures of requests, each its own workflow
MEASURE_ACTIONS: dict[str, Action] = MeasureWorkflow.actions
__all__ = ["ASSISTANCE", "KINDS", "MEASURE_ACTIONS", "MEASURE_KIND", "TRANSFER", "CaseKind"]
