"""The benchmark's worker: the production worker (``worker.create_worker``: the same workflows,
activities and settings) with the baseline workflow and its activities added, so the real cases
and the baseline run on one worker with one configuration. Run as its own process, like
`treatyflow worker`, with the same environment: ``python -m benchmarks.worker``.

To measure a change to the worker before making it, ``TREATYFLOW_BENCH_VARIANT`` (``run.py
--variant``) passes extra options to the worker, comma-separated:

- ``cache=N``: ``max_cached_workflows=N`` (instead of ``TREATYFLOW_WORKFLOW_CACHE``, default 500);
- ``passthrough=MOD+MOD``: the default sandbox, with these modules passed through (imported once,
  not again for each workflow run; the product worker passes ``workflows`` through already), e.g.
  ``passthrough=workflows+domain``;
- ``passthrough-all``: the sandbox with every module passed through (the runtime guard then
  checks nothing: it does not reach calls made inside passed-through modules);
- ``unsandboxed``: no sandbox at all (the bound of what the sandbox costs);
- ``sandbox-default``: the SDK's default sandbox, nothing passed through (the worker before 0.2.0);
- ``bytecode``: no option here; the harness lets Python cache bytecode (see ``harness.Stack.env``);
- a name of ``benchmarks.experiments.EXPERIMENTS`` (``no-publish``, ``no-deadlines``,
  ``no-summaries``, ``no-letters``): that experimental
  subclass is registered in place of the real workflow it changes."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from typing import Any
from unittest.mock import patch

from temporalio import activity, workflow
from temporalio.client import Client
from temporalio.worker import UnsandboxedWorkflowRunner, Worker
from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner, SandboxRestrictions

from benchmarks.baseline import BASELINE_ACTIVITIES, BaselineTransfer
from benchmarks.experiments import EXPERIMENTS
from treatyflow.client import connect
from treatyflow.config import Settings
from treatyflow.logging import configure_logging
import worker as production


def variant_options(variant: str) -> dict[str, Any]:
    options: dict[str, Any] = {}
    for part in filter(None, (p.strip() for p in variant.split(","))):
        name, _, value = part.partition("=")
        if name == "cache":
            options["max_cached_workflows"] = int(value)
        elif name == "passthrough":
            options["workflow_runner"] = SandboxedWorkflowRunner(
                restrictions=SandboxRestrictions.default.with_passthrough_modules(*value.split("+")))
        elif name == "passthrough-all":
            options["workflow_runner"] = SandboxedWorkflowRunner(
                restrictions=SandboxRestrictions.default.with_passthrough_all_modules())
        elif name == "unsandboxed":
            options["workflow_runner"] = UnsandboxedWorkflowRunner()
        elif name == "sandbox-default":
            options["workflow_runner"] = SandboxedWorkflowRunner()
        elif name != "bytecode" and name not in EXPERIMENTS:
            raise ValueError(f"unknown worker variant {part!r}")
    return options


def variant_workflows(variant: str, workflows: list[type]) -> list[type]:
    """The worker's workflows, with the variant's experiments in place of the real ones."""
    for part in filter(None, (p.strip() for p in variant.split(","))):
        if part in EXPERIMENTS:
            real, experiment = EXPERIMENTS[part]
            workflows = [experiment if w is real else w for w in workflows]
    return workflows


def bench_worker(client: Client, settings: Settings, variant: str = "") -> Worker:
    """``create_worker`` itself, with the baseline's workflow added to its list and the baseline's
    activities given as overrides (their names are new, so they are added and replace nothing);
    a variant's options are added to the ``Worker`` it creates."""
    workflows = variant_workflows(variant, [*production.WORKFLOWS, BaselineTransfer])
    options = variant_options(variant)

    def worker_with_options(*args: Any, **kwargs: Any) -> Worker:  # the variant's options win
        return Worker(*args, **{**kwargs, **options})

    with patch.object(production, "WORKFLOWS", workflows), patch.object(production, "Worker", worker_with_options):
        return production.create_worker(client, settings, activity_overrides=BASELINE_ACTIVITIES)


async def run(settings: Settings) -> None:
    client = await connect(settings)
    worker = bench_worker(client, settings, os.environ.get("TREATYFLOW_BENCH_VARIANT", ""))
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    async with worker:
        await stop.wait()


def main() -> None:
    settings = Settings.from_env()
    configure_logging(settings.log_level)
    workflow.logger.workflow_info_on_message = False  # as worker.main
    activity.logger.activity_info_on_message = False
    asyncio.run(run(settings))
    sys.stderr.flush()  # leave at once, as `treatyflow worker` does (temporalio/sdk-python#300)
    os._exit(0)


if __name__ == "__main__":
    main()
