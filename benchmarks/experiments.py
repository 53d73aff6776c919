"""Changes to the product measured before they are made: each is a subclass of a real workflow,
registered under the real one's name in the benchmark worker when its variant is asked for
(``python -m benchmarks.run --variant coalesce-upserts``). Only for fresh benchmark servers: the
commands they emit differ from the real workflow's, so they must never meet its histories."""

from __future__ import annotations

import asyncio

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from domain.transfer import TransferView

from workflows.transfer import OpenTransfer, TransferWorkflow


@workflow.defn(name="Transfer")
class TransferCoalescedUpserts(TransferWorkflow):
    """``publish`` at most once per workflow task: a stage entered and the pending actions set
    right after it in the same task (``enter`` then ``await_acts``) go to the server as one
    search-attribute upsert instead of two. The upsert runs at the end of the task's ready
    callbacks (``call_soon`` on the workflow's deterministic event loop)."""

    @workflow.init
    def __init__(self, case: OpenTransfer) -> None:
        super().__init__(case)
        self._publishing = False

    @workflow.run
    async def run(self, case: OpenTransfer) -> TransferView:
        return await super().run(case)

    def publish(self) -> None:
        if not self._publishing:
            self._publishing = True
            asyncio.get_running_loop().call_soon(self._publish_now)

    def _publish_now(self) -> None:
        self._publishing = False
        TransferWorkflow.publish(self)


@workflow.defn(name="Transfer")
class TransferWithoutPublishing(TransferWorkflow):
    """No search attributes and no current details at all: not a change to make (lists and the
    inbox read them), but the bound of what any change to publishing could save."""

    @workflow.init
    def __init__(self, case: OpenTransfer) -> None:
        super().__init__(case)

    @workflow.run
    async def run(self, case: OpenTransfer) -> TransferView:
        return await super().run(case)

    def publish(self) -> None:
        pass


# variant name → (the real workflow it replaces, the experiment)
EXPERIMENTS = {"coalesce-upserts": (TransferWorkflow, TransferCoalescedUpserts),
               "no-publish": (TransferWorkflow, TransferWithoutPublishing)}
