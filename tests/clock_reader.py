"""A workflow that reads the real clock, in a module of its own (the sandbox imports it afresh for
each run): tests/workflows/test_determinism.py shows the production runner still fails it."""

from datetime import datetime

from temporalio import workflow


@workflow.defn(name="ReadsTheClock")
class ReadsTheClock:
    @workflow.run
    async def run(self) -> str:
        return str(datetime.now())
