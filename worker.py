"""The treatyflow worker: every workflow and activity on one task queue, JSON logs, graceful
shutdown on SIGINT/SIGTERM. Run it with `treatyflow worker` (or `python worker.py`)."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
from typing import Any
from collections.abc import Callable, Sequence
from datetime import timedelta

import httpx
import structlog
from temporalio import activity, workflow
from temporalio.api.enums.v1 import TaskQueueType
from temporalio.api.taskqueue.v1 import TaskQueue
from temporalio.api.workflowservice.v1 import DescribeTaskQueueRequest
from temporalio.client import Client
from temporalio.converter import PayloadCodec
from temporalio.service import RPCError
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
from treatyflow.codec import CodecKeyError
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


def documents(settings: Settings, codec: PayloadCodec | None) -> Documents | None:
    """The case file's store, sealed with the payloads' keys; None for a worker whose payloads are
    not encrypted (some tests): its letters then fail, saying so."""
    keys = getattr(codec, "keys", None) or settings.codec_keys
    if keys is None:
        return None
    return open_documents(url=settings.documents_url, directory=settings.documents_dir, keys=keys,
                          limit=settings.document_limit_bytes, pool_size=settings.documents_pool_size)


def activities(settings: Settings, codec: PayloadCodec | None = None, *,
               notifier: Notifier | None = None, opened: list | None = None) -> list[Callable]:
    """Every activity; an unusable webhooks file raises WebhookConfigError here, at start-up
    (unless the ``notifier`` is given: whoever made it closes it), and missing or unusable signing
    keys SigningKeyError (stores/signing.py: the same ring the API publishes). ``opened``: the
    stores opened for them are added to it, for whoever runs them to close."""
    if notifier is None:
        notifier = Notifier(Webhooks.load(settings.webhooks_file))
    archive = open_archive(url=settings.archive_url, directory=settings.archive_dir, codec=codec,
                           pool_size=settings.archive_pool_size)
    signing = configured_signing_keys(os.environ, settings.data_dir, dev_mode=settings.dev_mode)
    case_file = documents(settings, codec)
    if opened is not None:
        opened += [store for store in (archive, case_file) if store is not None]
    return [resolve_treaty, check_eligibility, arrange_handover, check_assistance_scope,
            Signatory(signing).build_manifest,
            Letters(case_file).write_person_notice,
            notifier.notify,
            Archiver(archive).archive_case]


class CaseWorker(Worker):
    """The SDK's worker, which closes the stores of its activities (their database connections)
    once it has shut down."""

    def __init__(self, *args: Any, stores: list, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.stores = stores

    async def shutdown(self) -> None:
        try:
            await super().shutdown()
        finally:
            for store in self.stores:
                await store.close()


def create_worker(client: Client, settings: Settings, *, activity_overrides: Sequence[Callable] = (),
                  notifier: Notifier | None = None, tracing: Tracing | None = None) -> Worker:
    """The worker; ``activity_overrides`` replace activities of the same name (tests inject faults).
    ``tracing``: workflows and activities continue the trace of whoever started or updated them
    (unless ``client`` carries the tracing interceptor already: the worker has it from there)."""
    codec = client.data_converter.payload_codec  # the archive is encrypted like the payloads
    stores: list = []
    by_name = {fn.__temporal_activity_definition.name: fn  # type: ignore[attr-defined]
               for fn in activities(settings, codec, notifier=notifier, opened=stores)}
    by_name.update({fn.__temporal_activity_definition.name: fn for fn in activity_overrides})  # type: ignore[attr-defined]
    interceptors = [tracing.interceptor()] if tracing and not traced(client) else []
    return CaseWorker(client, stores=stores, task_queue=settings.task_queue, workflows=WORKFLOWS,
                      activities=list(by_name.values()),
                      graceful_shutdown_timeout=timedelta(seconds=settings.graceful_shutdown),
                      max_cached_workflows=settings.workflow_cache,
                      workflow_runner=workflow_runner(traced=bool(tracing) or traced(client)), interceptors=interceptors)


class Readiness:
    """What the worker answers on its metrics port (TREATYFLOW_WORKER_METRICS, host:port):
    ``/metrics``, the SDK's Prometheus metrics (served by the SDK on a loopback port of its own and
    passed on from there); ``/healthz`` 200 while the process runs; ``/readyz`` 200 only once the
    client is connected, the codec keys have read the newest case on the server (``verify_keys``)
    and the server has seen this worker poll its task queue for workflow and activity tasks —
    before that, and once it is stopping, 503 saying which step it is at. A release whose keys
    cannot read the cases never becomes ready (it says why in its log and exits), so a rollout
    cannot replace healthy workers with it. A small HTTP/1.1 server of asyncio's own."""

    def __init__(self, metrics_url: str | None = None) -> None:
        self.step = "connecting to Temporal"
        self.ready = False
        self.metrics_url = metrics_url  # where the SDK serves its metrics (loopback)

    def at(self, step: str, *, ready: bool = False) -> None:
        self.step, self.ready = step, ready

    async def answer(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            line = await asyncio.wait_for(reader.readline(), 5.0)
            while (await asyncio.wait_for(reader.readline(), 5.0)) not in (b"\r\n", b"\n", b""):
                pass  # the headers: nothing in them matters here
            parts = line.decode("latin-1").split()
            path = parts[1].split("?")[0] if len(parts) >= 2 else ""
            content_type = "application/json"
            if path == "/metrics" and self.metrics_url:
                status, data, content_type = await self.metrics()
            elif path == "/healthz":
                status, body = 200, {"status": "ok"}
            elif path == "/readyz":
                status, body = (200, {"status": "ready"}) if self.ready else \
                    (503, {"status": "unavailable", "worker": self.step})
            else:
                status, body = 404, {"status": "not found"}
            if content_type == "application/json":
                data = json.dumps(body).encode()
            reason = {200: "OK", 404: "Not Found", 503: "Service Unavailable"}[status]
            writer.write(f"HTTP/1.1 {status} {reason}\r\nContent-Type: {content_type}\r\n"
                         f"Content-Length: {len(data)}\r\nConnection: close\r\n\r\n".encode() + data)
            await writer.drain()
        except (asyncio.TimeoutError, OSError, UnicodeError):
            pass
        except asyncio.CancelledError:  # the worker is ending: a probe's connection just closes
            pass
        finally:
            writer.close()

    async def metrics(self) -> tuple[int, bytes, str]:
        try:
            async with httpx.AsyncClient(timeout=5.0) as http:
                answer = await http.get(self.metrics_url)
            return answer.status_code, answer.content, answer.headers.get("content-type", "text/plain")
        except httpx.HTTPError:  # the SDK's runtime not up yet (the client connects first)
            return 503, b"the metrics are not served yet\n", "text/plain"

    async def serve(self, bind_address: str) -> asyncio.AbstractServer:
        host, _, port = bind_address.rpartition(":")
        return await asyncio.start_server(self.answer, host.strip("[]") or "0.0.0.0", int(port))


def loopback_port() -> int:
    """A loopback port nothing listens on, for the SDK's own metrics endpoint."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


async def until_polling(client: Client, settings: Settings, identity: str, every: float = 0.2) -> None:
    """Until the server has seen ``identity`` poll the task queue for workflow and for activity tasks."""
    types = (TaskQueueType.TASK_QUEUE_TYPE_WORKFLOW, TaskQueueType.TASK_QUEUE_TYPE_ACTIVITY)
    while True:
        seen = []
        try:
            for kind in types:
                described = await client.workflow_service.describe_task_queue(DescribeTaskQueueRequest(
                    namespace=client.namespace, task_queue=TaskQueue(name=settings.task_queue),
                    task_queue_type=kind))
                seen.append(any(poller.identity == identity for poller in described.pollers))
        except RPCError:  # the server away for a moment: not ready yet
            seen.append(False)
        if all(seen):
            return
        await asyncio.sleep(every)


async def run_worker(settings: Settings) -> None:
    log = structlog.get_logger("treatyflow.worker")
    sdk_metrics = f"127.0.0.1:{loopback_port()}" if settings.worker_metrics else None
    readiness = Readiness(f"http://{sdk_metrics}/metrics" if sdk_metrics else None)
    probes = await readiness.serve(settings.worker_metrics) if settings.worker_metrics else None
    try:
        client = await connect(settings, runtime=metrics_runtime(sdk_metrics) if sdk_metrics else None)
        readiness.at("verifying the codec keys")
        try:
            await verify_keys(client)
        except CodecKeyError as exc:  # never ready: say why, and stop (a configuration to fix)
            log.error("worker not started", problem=str(exc))
            raise SystemExit(1) from None
        readiness.at("starting to poll")
        await run_polling(client, settings, readiness, log)
    finally:
        if probes is not None:
            probes.close()
    log.info("worker stopped")


async def run_polling(client: Client, settings: Settings, readiness: Readiness, log) -> None:
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
            polling = asyncio.create_task(until_polling(client, settings, worker.config()["identity"] or
                                                        client.identity))
            stopping = asyncio.create_task(stop.wait())
            await asyncio.wait({polling, stopping}, return_when=asyncio.FIRST_COMPLETED)
            if polling.done():
                readiness.at("polling", ready=True)
                log.info("worker ready", task_queue=settings.task_queue)
            await stopping
            polling.cancel()
            readiness.at("stopping")
            log.info("worker stopping", graceful_shutdown_seconds=settings.graceful_shutdown)
    finally:
        await notifier.aclose()  # after the graceful shutdown: no delivery is still in flight
        if tracing:
            tracing.shutdown()  # the spans still batched are sent


def main() -> None:
    settings = Settings.from_env()
    configure_logging(settings.log_level)
    workflow.logger.workflow_info_on_message = False
    activity.logger.activity_info_on_message = False
    asyncio.run(run_worker(settings))


if __name__ == "__main__":
    main()
