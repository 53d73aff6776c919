"""One measure of a mutual-legal-assistance request, as a child workflow of the request.

A coercive measure (search, seizure) first waits for the authorisation of the requested state's
court; then the executing authority it is routed to reports the result, with evidence items.
Every stage change is signalled to the request so that its view and its inbox stay current.
The request cancels an open measure by the ``cancel`` signal when it is withdrawn."""

from __future__ import annotations

import asyncio
from datetime import date

from pydantic import BaseModel
from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from domain.case import Actor, acting
    from domain.assistance import Authorisation, MeasureResult, MeasureStage, MeasureView
    from workflows.rejection import conflict, invalid, not_permitted, only

from workflows.case import CaseWithdrawn, Procedure

MEASURE_KIND = "assistance_measure"  # CaseKind of a measure: lists show requests, the inbox both


EVIDENCE_BUDGET = 1_048_576  # bytes of evidence a request holds in all, shared equally by its measures


def evidence_bytes(result: MeasureResult) -> int:
    return sum(len(e.model_dump_json()) for e in result.evidence)


def measure_workflow_id(reference: str, measure_id: str) -> str:
    return f"assistance:{reference}:{measure_id}"


class MeasureOrder(BaseModel):
    """What the request hands to a measure: everything it needs, no reference data to read."""

    reference: str
    measure: MeasureView
    states: tuple[str, str]  # requesting, requested
    requested_central_authority: str
    authorisation_days: int
    execution_days: int
    execution_due_on: date | None = None  # the request's respond_by: a fixed date, however long the court took
    reminder_days: int
    confidential: bool
    request_workflow_id: str
    # this measure's share of the request's evidence budget (bytes of its items' JSON), so that the
    # request's view, manifest and archived record stay within one payload
    evidence_allowance: int


@workflow.defn(name="AssistanceMeasure")
class MeasureWorkflow(Procedure):
    kind = "assistance"
    search_kind = MEASURE_KIND
    actions = {"awaiting_authorisation": "authorise_measure", "executing": "report_result"}

    @workflow.init
    def __init__(self, order: MeasureOrder) -> None:
        super().__init__(order.reference, order.measure.stage, order.confidential)
        self.order = order
        self.measure = order.measure.model_copy(deep=True)
        self.authorisation: Authorisation | None = None
        self.result: MeasureResult | None = None
        self.cancelled = False
        self.reports: list[asyncio.Task[None]] = []

    @workflow.run
    async def run(self, order: MeasureOrder) -> MeasureView:
        m = self.measure
        try:
            if m.court:
                self.enter("awaiting_authorisation")
                await self.await_acts([m.court], order.authorisation_days, lambda: self.authorisation is not None,
                                      measure_id=m.id)
                assert self.authorisation is not None
                if not self.authorisation.granted:
                    return await self.end("denied")
            self.enter("executing")
            # due all of respond_by (overdue from the next day), however long the court took; else days
            due: int | date = order.execution_due_on or order.execution_days
            await self.await_acts([m.assigned_to or order.requested_central_authority], due,
                                  lambda: self.result is not None, measure_id=m.id)
            assert self.result is not None
            m.evidence = list(self.result.evidence)
            return await self.end(self.result.outcome)
        except CaseWithdrawn:
            return await self.end("cancelled")

    def enter(self, stage: MeasureStage) -> None:
        self.stage = self.measure.stage = stage
        self.publish()

    async def end(self, stage: MeasureStage) -> MeasureView:
        self.pending = []
        self.due_at = None
        self.enter(stage)
        self.publish_changes()  # the request learns the end here, by signal (awaited below)
        await asyncio.gather(*self.reports, *self.notices)
        await workflow.wait_condition(workflow.all_handlers_finished)
        return self.view()

    # ---- acts -------------------------------------------------------------------------------

    @workflow.update
    async def authorise(self, by: str | Actor, authorisation: Authorisation) -> None:
        actor, user = acting(by)
        self.validate_authorisation(actor, authorisation)  # again: acts accepted together run in turn
        self.authorisation = authorisation
        self.record(actor, "authorisation_" + ("granted" if authorisation.granted else "denied"), self.measure.id,
                    user=user)
        await workflow.wait_condition(lambda: self.stage != "awaiting_authorisation")
        await self.request_told()

    @authorise.validator
    def validate_authorisation(self, by: str | Actor, authorisation: Authorisation) -> None:
        actor = acting(by)[0]
        if self.measure.court is None:
            raise conflict(f"measure {self.measure.id} ({self.measure.kind}) needs no authorisation: only a search "
                           "or a seizure does")
        if actor != self.measure.court:
            raise not_permitted(only(f"authorise measure {self.measure.id}", (self.requested_state, [
                (self.role_of(self.measure.court, "court"), self.measure.court)])))
        self.require_stage("awaiting_authorisation", "it can be authorised")
        if self.authorisation is not None:
            raise conflict(f"the authorisation of measure {self.measure.id} is already recorded")

    @workflow.update
    async def report_result(self, by: str | Actor, result: MeasureResult) -> None:
        actor, user = acting(by)
        self.validate_result(actor, result)  # again: acts accepted together run in turn
        self.result = result
        self.record(actor, f"result_{result.outcome}", f"{self.measure.id}: {len(result.evidence)} evidence items",
                    user=user)
        await workflow.wait_condition(lambda: self.stage != "executing")
        await self.request_told()

    async def request_told(self) -> None:
        """An act answers once the request has been told of the change it made (its signal is in the
        request's history), so that a read of the request after the answer shows the act."""
        await asyncio.gather(*self.reports, return_exceptions=True)

    @report_result.validator
    def validate_result(self, by: str | Actor, result: MeasureResult) -> None:
        actor = acting(by)[0]
        central = self.order.requested_central_authority
        if actor not in (self.measure.assigned_to, central):
            may_act = [(self.role_of(self.measure.assigned_to, "executing_authority"), self.measure.assigned_to or ""),
                      ("central_authority", central)]
            raise not_permitted(only(f"report the result of measure {self.measure.id}",
                                     (self.requested_state, may_act)))
        unresolved = [i for i, e in enumerate(result.evidence) if e.sha256 is None]
        if unresolved:  # the API puts a document's stored digest in its item; a client of the engine must too
            field = f"evidence.{unresolved[0]}.sha256"
            raise invalid(field, f"{field} is required: the digest of the evidence document")
        today = workflow.now().date()
        late = [i for i, e in enumerate(result.evidence) if e.collected_on > today]
        if late:
            field = f"evidence.{late[0]}.collected_on"
            raise invalid(field, f"{field} may not lie in the future")
        allowance = self.order.evidence_allowance
        if evidence_bytes(result) > allowance:
            raise invalid("evidence", f"evidence of measure {self.measure.id} may take at most {allowance:,} bytes "
                                      f"(its share of the request's {EVIDENCE_BUDGET:,}): describe the items more "
                                      "briefly")
        self.require_stage("executing", "its result can be reported")
        if self.result is not None:
            raise conflict(f"the result of measure {self.measure.id} is already reported")

    def require_stage(self, stage: MeasureStage, what: str) -> None:
        if self.cancelled:
            raise conflict(f"measure {self.measure.id} is cancelled (the request was withdrawn): no more acts are "
                           "possible on it")
        if self.stage != stage:
            raise conflict(f"measure {self.measure.id} is in stage {self.stage}: {what} only in stage {stage}")

    @property
    def requested_state(self) -> str:
        return self.order.states[1]

    def role_of(self, authority: str | None, role: str) -> str:
        """The role an authority acts in for this measure: its own, or the central authority's
        where the requested state has no authority of that role (the routing fell back to it)."""
        return "central_authority" if authority == self.order.requested_central_authority else role

    @workflow.signal
    def cancel(self) -> None:
        """The request was withdrawn: an open measure becomes ``cancelled``."""
        self.cancelled = True

    @workflow.query
    def view(self) -> MeasureView:
        return self.measure.model_copy(update={"pending_actions": list(self.pending), "events": list(self.events)})

    # ---- Procedure ------------------------------------------------------------------------

    @property
    def states(self) -> tuple[str, str]:
        return self.order.states

    @property
    def reminder_days(self) -> int:
        return self.order.reminder_days

    def withdrawn(self) -> bool:
        """Cancelled by the request, unless its result came first: a reported result stands."""
        return self.cancelled and self.result is None

    def escalation_recipient(self, authority: str) -> str:
        return self.order.requested_central_authority

    def summary(self) -> list[str]:
        return [f"**Measure {self.measure.id}** ({self.measure.kind}) of assistance request {self.reference}",
                f"**Stage:** {self.stage}", *self.waiting_lines(self.pending)]

    def published(self) -> None:
        """As every procedure's, and the request learns every change of this measure by signal (it
        keeps the highest revision)."""
        super().published()
        self.measure.revision += 1
        view = self.view()
        self.reports.append(asyncio.create_task(
            workflow.get_external_workflow_handle(self.order.request_workflow_id).signal("measure_changed", view)))
