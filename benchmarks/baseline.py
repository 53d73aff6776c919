"""The baseline of the pipeline benchmark: a workflow with the transfer's shape and none of its
logic. It runs as many activities and takes as many updates as a transfer that goes through
every step to ``transferred`` (intake 2, consent notices 2, one notice per decision, handover 1,
handover notices 2 + 1, archive 1, closing notices 2: 13 activities; the opening update and 3
acts: 4 updates), in the same order and with the same timeouts and retry policies, but its
activities do nothing, its payloads are short strings, and it keeps no audit trail, search
attributes or deadlines. Its types and activities are registered under names of their own
(``BaselineTransfer``, ``baseline_step``, ``baseline_notice``), so they never meet the real ones.

The counts are checked against the history of a real case at every run (``benchmarks.pipeline``)."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from temporalio import activity, workflow
from temporalio.common import RetryPolicy

# the same options as workflows.case.STEP and NOTICE (copied, so the baseline imports nothing of ours)
STEP = dict(start_to_close_timeout=timedelta(seconds=30),
            retry_policy=RetryPolicy(initial_interval=timedelta(seconds=1), maximum_interval=timedelta(minutes=5)))
NOTICE = dict(start_to_close_timeout=timedelta(seconds=30), schedule_to_close_timeout=timedelta(days=1),
              retry_policy=RetryPolicy(initial_interval=timedelta(seconds=2), maximum_interval=timedelta(minutes=10)))

# the shape of a transfer driven to `transferred`
INTAKE_STEPS = 2      # resolve_treaty, check_eligibility
CONSENT_NOTICES = 2   # action_requested to each central authority
DECISION_NOTICES = 1  # decision_recorded to the other state, per decision
HANDOVER_STEPS = 1    # arrange_handover
ARRANGED_NOTICES = 3  # handover_arranged to both prison services, action_requested to the receiving one
CLOSING_STEPS = 1     # archive_case
CLOSING_NOTICES = 2   # case_closed to both central authorities
DECISIONS = 2
ACTIVITIES = (INTAKE_STEPS + CONSENT_NOTICES + DECISIONS * DECISION_NOTICES + HANDOVER_STEPS + ARRANGED_NOTICES
              + CLOSING_STEPS + CLOSING_NOTICES)
UPDATES = 1 + DECISIONS + 1  # opened (update-with-start), two decisions, the handover confirmation


def baseline_workflow_id(reference: str) -> str:
    return f"baseline:{reference}"


@activity.defn(name="baseline_step")
async def baseline_step(reference: str) -> str:
    return reference


@activity.defn(name="baseline_notice")
async def baseline_notice(reference: str) -> None:
    return None


BASELINE_ACTIVITIES = [baseline_step, baseline_notice]


@workflow.defn(name="BaselineTransfer")
class BaselineTransfer:
    @workflow.init
    def __init__(self, reference: str) -> None:
        self.reference = reference
        self.stage = "intake"
        self.decisions = 0
        self.arranged = False
        self.confirmed = False
        self.notices: list[asyncio.Task[None]] = []

    @workflow.run
    async def run(self, reference: str) -> str:
        for _ in range(INTAKE_STEPS):
            await self.step()
        self.stage = "consents"
        self.notice(CONSENT_NOTICES)
        await workflow.wait_condition(lambda: self.decisions == DECISIONS)
        self.stage = "handover"
        for _ in range(HANDOVER_STEPS):
            await self.step()
        self.arranged = True
        self.notice(ARRANGED_NOTICES)
        await workflow.wait_condition(lambda: self.confirmed)
        self.stage = "closed"
        self.notice(CLOSING_NOTICES)
        for _ in range(CLOSING_STEPS):
            await self.step()
        await asyncio.gather(*self.notices)
        await workflow.wait_condition(workflow.all_handlers_finished)
        return self.stage

    async def step(self) -> None:
        await workflow.execute_activity("baseline_step", self.reference, result_type=str, **STEP)

    def notice(self, count: int) -> None:
        for _ in range(count):
            self.notices.append(asyncio.create_task(
                workflow.execute_activity("baseline_notice", self.reference, **NOTICE)))

    # the acts answer with the view, as the transfer's do

    @workflow.update
    async def opened(self, reference: str) -> dict[str, object]:
        await workflow.wait_condition(lambda: self.stage != "intake")
        return self.view()

    @workflow.update
    async def decide(self, state: str) -> dict[str, object]:
        self.decisions += 1
        self.notice(DECISION_NOTICES)
        await workflow.wait_condition(lambda: self.decisions < DECISIONS or self.stage != "consents")
        return self.view()

    @workflow.update
    async def confirm(self, place: str) -> dict[str, object]:
        self.confirmed = True
        await workflow.wait_condition(lambda: self.stage == "closed")
        return self.view()

    @workflow.query
    def view(self) -> dict[str, object]:
        return {"stage": self.stage, "arranged": self.arranged}
