"""What each part of a real case costs against the baseline, measured by taking it away: each is a
subclass of a real workflow, registered under the real one's name in the benchmark worker when its
variant is asked for (``python -m benchmarks.run --variant no-publish``). None is a change to make:
each removes something a user needs (see benchmarks/RESULTS.md). Only for fresh benchmark servers:
the commands they emit differ from the real workflow's, so they must never meet its histories."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from domain.transfer import TransferView

from workflows.transfer import OpenTransfer, TransferWorkflow


@workflow.defn(name="Transfer")
class TransferWithoutPublishing(TransferWorkflow):
    """No search attributes and no current details at all: lists, the inbox, stats and the overdue
    query read them."""

    @workflow.init
    def __init__(self, case: OpenTransfer) -> None:
        super().__init__(case)

    @workflow.run
    async def run(self, case: OpenTransfer) -> TransferView:
        return await super().run(case)

    def publish(self) -> None:
        pass


@workflow.defn(name="Transfer")
class TransferWithoutDeadlines(TransferWorkflow):
    """Waiting for people without a timer: no reminder, no deadline, no escalation."""

    @workflow.init
    def __init__(self, case: OpenTransfer) -> None:
        super().__init__(case)

    @workflow.run
    async def run(self, case: OpenTransfer) -> TransferView:
        return await super().run(case)

    @staticmethod
    async def wait_until(ready: Callable[[], bool], moment: datetime, what: str) -> bool:
        await workflow.wait_condition(ready)
        return True


def without_summary(real: Any) -> Any:
    def call(*args: Any, summary: str | None = None, **kwargs: Any) -> Any:
        return real(*args, **kwargs)
    return call


@workflow.defn(name="Transfer")
class TransferWithoutSummaries(TransferWorkflow):
    """Activities without the summary the Temporal UI shows for each step (``Notify kz-gpo:
    decision_recorded``): each summary is an encrypted payload in its event. The first case drops
    the argument for the whole worker process (the variant's worker runs nothing else that passes
    one)."""

    @workflow.init
    def __init__(self, case: OpenTransfer) -> None:
        if not getattr(workflow, "_without_summaries", False):
            workflow._without_summaries = True  # type: ignore[attr-defined]
            workflow.execute_activity = without_summary(workflow.execute_activity)  # type: ignore[assignment]
            workflow.execute_activity_method = without_summary(workflow.execute_activity_method)  # type: ignore[assignment]
        super().__init__(case)

    @workflow.run
    async def run(self, case: OpenTransfer) -> TransferView:
        return await super().run(case)


@workflow.defn(name="Transfer")
class TransferWithoutLetters(TransferWorkflow):
    """No letter to the sentenced person (ETS 112 Art. 4(5): he is to be told in writing of each
    decision): five activities, their rendering and their stored documents fewer a transferred case."""

    @workflow.init
    def __init__(self, case: OpenTransfer) -> None:
        super().__init__(case)

    @workflow.run
    async def run(self, case: OpenTransfer) -> TransferView:
        return await super().run(case)

    def write_to_person(self, occasion: Any) -> None:
        pass


# variant name → (the real workflow it replaces, the experiment)
EXPERIMENTS = {"no-publish": (TransferWorkflow, TransferWithoutPublishing),
               "no-deadlines": (TransferWorkflow, TransferWithoutDeadlines),
               "no-summaries": (TransferWorkflow, TransferWithoutSummaries),
               "no-letters": (TransferWorkflow, TransferWithoutLetters)}
