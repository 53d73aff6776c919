"""The treatyflow worker: every workflow and activity on one task queue, JSON logs, graceful
shutdown on SIGINT/SIGTERM. Run it with `treatyflow worker` (or `python worker.py`)."""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import Callable, Sequence
from datetime import timedelta

import structlog
from temporalio import activity, workflow
from temporalio.client import Client
from temporalio.converter import PayloadCodec
from temporalio.worker import Worker
from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner, SandboxRestrictions

from activities.archive import Archiver
from activities.handover import arrange_handover
from activities.intake import check_assistance_scope, check_eligibility, resolve_treaty
from activities.letters import Letters
from activities.manifest import Signatory
from activities.notify import Notifier, Webhooks
from stores.archive import open_archive
from stores.documents import Documents, open_documents
from stores.signing import configured_signing_keys
from treatyflow.client import connect, metrics_runtime, verify_keys
from treatyflow.config import Settings
from treatyflow.logging import configure_logging
from treatyflow.tracing import Tracing, traced
from workflows.assistance import AssistanceWorkflow
from workflows.measure import MeasureWorkflow
from workflows.transfer import TransferWorkflow

WORKFLOWS = [TransferWorkflow, AssistanceWorkflow, MeasureWorkflow]
# our workflow package is imported once and shared by every run, not re-executed in each run's
# sandbox (the domain and activity models it uses are passed through by its own imports); the
# sandbox's runtime guard does not reach passed-through code, so tests/workflows/test_determinism.py
# checks those modules statically instead
PASSED_THROUGH = ("workflows",)


def workflow_runner(*, traced: bool = False) -> SandboxedWorkflowRunner:
    """``traced``: OpenTelemetry passed through too, as the SDK's own OpenTelemetry plugin does (the
    tracing interceptor ends its workflow spans inside the sandbox, never while replaying), rather
    than imported anew in each run's sandbox."""
    modules = (*PASSED_THROUGH, "opentelemetry") if traced else PASSED_THROUGH
    return SandboxedWorkflowRunner(restrictions=SandboxRestrictions.default.with_passthrough_modules(*modules))
GRACEFUL_SHUTDOWN = 10.0  # seconds for in-flight activities to finish when the worker stops


def documents(settings: Settings, codec: PayloadCodec | None) -> Documents | None:
    """The case file's store, sealed with the payloads' keys; None for a worker whose payloads are
    not encrypted (some tests): its letters then fail, saying so."""
    keys = getattr(codec, "keys", None) or settings.codec_keys
    if keys is None:
        return None
    return open_documents(url=settings.documents_url, directory=settings.documents_dir, keys=keys,
                          limit=settings.document_limit_bytes)


def activities(settings: Settings, codec: PayloadCodec | None = None, *,
               notifier: Notifier | None = None) -> list[Callable]:
    """Every activity; an unusable webhooks file raises WebhookConfigError here, at start-up
    (unless the ``notifier`` is given: whoever made it closes it), and missing or unusable signing
    keys SigningKeyError (stores/signing.py: the same ring the API publishes)."""
    if notifier is None:
        notifier = Notifier(Webhooks.load(settings.webhooks_file))
    archive = open_archive(url=settings.archive_url, directory=settings.archive_dir, codec=codec)
    signing = configured_signing_keys(os.environ, settings.data_dir, dev_mode=settings.dev_mode)
    return [resolve_treaty, check_eligibility, arrange_handover, check_assistance_scope,
            Signatory(signing).build_manifest,
            Letters(documents(settings, codec)).write_person_notice,
            notifier.notify,
            Archiver(archive).archive_case]


def create_worker(client: Client, settings: Settings, *, activity_overrides: Sequence[Callable] = (),
                  notifier: Notifier | None = None, tracing: Tracing | None = None) -> Worker:
    """The worker; ``activity_overrides`` replace activities of the same name (tests inject faults).
    ``tracing``: workflows and activities continue the trace of whoever started or updated them
    (unless ``client`` carries the tracing interceptor already: the worker has it from there)."""
    codec = client.data_converter.payload_codec  # the archive is encrypted like the payloads
    by_name = {fn.__temporal_activity_definition.name: fn  # type: ignore[attr-defined]
               for fn in activities(settings, codec, notifier=notifier)}
    by_name.update({fn.__temporal_activity_definition.name: fn for fn in activity_overrides})  # type: ignore[attr-defined]
    interceptors = [tracing.interceptor()] if tracing and not traced(client) else []
    return Worker(client, task_queue=settings.task_queue, workflows=WORKFLOWS, activities=list(by_name.values()),
                  graceful_shutdown_timeout=timedelta(seconds=GRACEFUL_SHUTDOWN),
                  max_cached_workflows=settings.workflow_cache,
                  workflow_runner=workflow_runner(traced=bool(tracing) or traced(client)), interceptors=interceptors)


async def run_worker(settings: Settings) -> None:
    log = structlog.get_logger("treatyflow.worker")
    client = await connect(settings, runtime=metrics_runtime(settings.worker_metrics) if settings.worker_metrics
                           else None)
    await verify_keys(client)
    notifier = Notifier(Webhooks.load(settings.webhooks_file))  # its HTTP client is closed once the worker stopped
    tracing = Tracing.configured(settings, "worker")  # None unless an OTLP endpoint is configured
    worker = create_worker(client, settings, notifier=notifier, tracing=tracing)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    log.info("worker started", task_queue=settings.task_queue, address=settings.temporal_address,
             metrics=settings.worker_metrics, traces=settings.otlp_traces_endpoint)
    try:
        async with worker:
            await stop.wait()
            log.info("worker stopping", graceful_shutdown_seconds=GRACEFUL_SHUTDOWN)
    finally:
        await notifier.aclose()  # after the graceful shutdown: no delivery is still in flight
        if tracing:
            tracing.shutdown()  # the spans still batched are sent
    log.info("worker stopped")


def main() -> None:
    settings = Settings.from_env()
    configure_logging(settings.log_level)
    workflow.logger.workflow_info_on_message = False
    activity.logger.activity_info_on_message = False
    asyncio.run(run_worker(settings))


if __name__ == "__main__":
    main()
