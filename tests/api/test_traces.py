"""Traces (treatyflow/tracing.py): one trace from an HTTP request's server span through the
Temporal client's call to the workflow's spans and its activities', over real HTTP against the
session's dev server, with an API and a worker of their own whose spans go to an in-memory
exporter; what leaves is scrubbed (no query string, no client address, no exception message);
OTLP/HTTP when configured, nothing at all when not."""

from __future__ import annotations

import asyncio
import dataclasses
import sys
import uuid
from collections.abc import AsyncIterator, Callable

import httpx
import pytest
import pytest_asyncio
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from tests.support import REPO, Receiver, key, poll, serve
from treatyflow.client import connect
from treatyflow.config import Settings
from treatyflow.samples import transfer_body
from treatyflow.tracing import Tracing, scrubbing, traced
from web.app import create_app
from worker import create_worker

pytestmark = pytest.mark.asyncio(loop_scope="session")


@dataclasses.dataclass
class Traced:
    url: str
    exporter: InMemorySpanExporter
    tracing: Tracing

    async def spans(self, done: Callable[[list[ReadableSpan]], bool]) -> list[ReadableSpan]:
        """The spans exported so far, once ``done`` holds of them (the worker's end a moment
        after the answer)."""
        async def exported() -> list[ReadableSpan]:
            self.tracing.flush()
            return list(self.exporter.get_finished_spans())

        return await poll(exported, done, timeout=10)


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def traced_api(dev_env, dev_settings, tmp_path_factory) -> AsyncIterator[Traced]:
    """The product's app and a worker on a task queue of their own, both traced to one in-memory
    exporter; the app's Temporal client is connected as `treatyflow api` connects it (with the
    interceptor), the worker is given the tracing as `treatyflow worker` gives it."""
    exporter = InMemorySpanExporter()
    tracing = Tracing.to(exporter, "treatyflow-test")
    settings = dataclasses.replace(dev_settings, task_queue=f"traces-{uuid.uuid4().hex[:8]}", dev_mode=True,
                                   data_dir=tmp_path_factory.mktemp("traces-data"),
                                   temporal_address=dev_env.client.service_client.config.target_host,
                                   temporal_namespace=dev_env.client.namespace)
    client = await connect(settings, tracing=tracing)
    assert traced(client) and not traced(dev_env.client)
    async with create_worker(dev_env.client, settings, tracing=tracing):
        async with serve(create_app(settings, client, tracing)) as url:
            yield Traced(url, exporter, tracing)
    tracing.shutdown()


def named(spans: list[ReadableSpan], name: str) -> list[ReadableSpan]:
    return [s for s in spans if s.name == name]


async def test_one_trace_from_the_request_through_the_workflow_to_its_activities(traced_api):
    body = transfer_body()
    async with httpx.AsyncClient(base_url=traced_api.url, headers=key("kz-gpo")) as http:
        opened = await http.post("/v1/transfers", json=body)
    assert opened.status_code == 201, opened.text
    workflow_id = f"transfer:{body['reference']}"

    def complete(spans: list[ReadableSpan]) -> bool:
        ours = [s for s in spans if (s.attributes or {}).get("temporalWorkflowID") == workflow_id]
        return {"RunWorkflow:Transfer", "RunActivity:resolve_treaty",
                "RunActivity:check_eligibility"} <= {s.name for s in ours}

    spans = await traced_api.spans(complete)
    [start] = [s for s in named(spans, "StartUpdateWithStartWorkflow:Transfer")
               if s.attributes["temporalWorkflowID"] == workflow_id]
    trace = [s for s in spans if s.context.trace_id == start.context.trace_id]
    by_id = {s.context.span_id: s for s in trace}

    def parent(span: ReadableSpan) -> ReadableSpan:
        assert span.parent is not None and span.parent.trace_id == start.context.trace_id, span.name
        return by_id[span.parent.span_id]

    # the Temporal client's call, inside the request's server span
    server = parent(start)
    assert server.name == "POST /v1/transfers" and server.kind == SpanKind.SERVER
    assert start.kind == SpanKind.CLIENT
    # the workflow, in the worker, under that call
    [run] = named(trace, "RunWorkflow:Transfer")
    assert parent(run) is start and run.attributes["temporalWorkflowID"] == workflow_id
    # each intake activity: scheduled by the workflow, run by the worker, in the same trace
    for activity in ("resolve_treaty", "check_eligibility"):
        [ran] = named(trace, f"RunActivity:{activity}")
        scheduled = parent(ran)
        assert scheduled.name == f"StartActivity:{activity}" and parent(scheduled) is start
        assert ran.kind == SpanKind.SERVER and ran.attributes["temporalWorkflowID"] == workflow_id
    # the request's own span: route, method, status; the path (a reference is no personal data)
    assert server.parent is None
    assert server.attributes["http.route"] == "/v1/transfers"
    assert server.attributes.get("http.status_code", server.attributes.get("http.response.status_code")) == 201
    assert {s.resource.attributes["service.name"] for s in trace} == {"treatyflow-test"}


async def test_an_act_is_a_trace_of_its_own_linked_to_the_case(traced_api):
    body = transfer_body()
    ref = body["reference"]
    async with httpx.AsyncClient(base_url=traced_api.url, headers=key("kz-gpo")) as http:
        assert (await http.post("/v1/transfers", json=body)).status_code == 201
        decided = await http.post(f"/v1/transfers/{ref}/decisions", json={"state": "KZ", "decision": "consent"})
    assert decided.status_code == 200, decided.text

    def handled(spans: list[ReadableSpan]) -> bool:
        return any(s.name == "HandleUpdate:record_decision" and s.attributes.get("temporalWorkflowID") == f"transfer:{ref}"
                   for s in spans)

    spans = await traced_api.spans(handled)
    [server] = [s for s in named(spans, "POST /v1/transfers/{reference}/decisions") if
                s.attributes.get("url.path", s.attributes.get("http.target")) == f"/v1/transfers/{ref}/decisions"]
    [update] = [s for s in named(spans, "StartWorkflowUpdate:record_decision") if s.parent.span_id == server.context.span_id]
    [handling] = [s for s in named(spans, "HandleUpdate:record_decision")
                  if s.attributes["temporalWorkflowID"] == f"transfer:{ref}"]
    # the update's handler runs in the case's trace, linked to the act's request
    assert [link.context.span_id for link in handling.links] == [update.context.span_id]


async def test_a_name_search_records_no_name(traced_api):
    name = f"Tracena Searchova-{uuid.uuid4().hex[:6]}"
    async with httpx.AsyncClient(base_url=traced_api.url, headers=key("kz-gpo")) as http:
        found = await http.get("/v1/transfers", params={"name": name, "limit": 5})
        page = await http.get("/transfers", params={"name": name}, headers={"User-Agent": "Mozilla/5.0 Tracena"})
    assert found.status_code == 200 and page.status_code in (200, 303), (found.text, page.status_code)

    def both(spans: list[ReadableSpan]) -> bool:
        return {"GET /v1/transfers", "GET /transfers"} <= {s.name for s in spans}

    spans = await traced_api.spans(both)
    searches = [s for s in spans if s.name in ("GET /v1/transfers", "GET /transfers")]
    for span in searches:
        shown = repr(span.name) + repr(dict(span.attributes)) + repr([e.attributes for e in span.events])
        assert "Tracena" not in shown and "Searchova" not in shown and "name=" not in shown, shown
        assert span.attributes.get("http.target", span.attributes.get("url.path")) in ("/v1/transfers", "/transfers")
        assert not {"url.query", "http.user_agent", "user_agent.original", "net.peer.ip", "client.address"} & set(
            span.attributes)


async def test_a_span_leaves_scrubbed():
    """What the instrumentations might record and must not leave: the query, the client's
    address, a captured header, an exception's message and stack, a status description."""
    raw, scrubbed = InMemorySpanExporter(), InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(raw))
    provider.add_span_processor(scrubbing(SimpleSpanProcessor(scrubbed)))
    tracer = provider.get_tracer("test")
    with tracer.start_as_current_span("GET /v1/transfers", kind=SpanKind.SERVER, attributes={
            "http.route": "/v1/transfers", "http.method": "GET", "http.status_code": 500,
            "http.target": "/v1/transfers?name=Secretova", "url.query": "name=Secretova",
            "http.url": "http://127.0.0.1:8000/v1/transfers?name=Secretova#x", "net.peer.ip": "10.1.2.3",
            "client.address": "10.1.2.3", "http.user_agent": "Secretova's browser",
            "http.request.header.authorization": ("Bearer demo-kz-gpo",), "case.person": "Secretova"}) as span:
        span.record_exception(ValueError("Secretova was born 1973-07-19"))
        span.set_status(StatusCode.ERROR, "ValueError: Secretova was born 1973-07-19")
    with tracer.start_as_current_span("GET", attributes={"http.target": "/Secretova", "http.method": "GET"}):
        pass  # no route matched: the path is whatever a client typed
    assert "Secretova" in repr([(dict(s.attributes), s.events[:1]) for s in raw.get_finished_spans()])
    first, unrouted = scrubbed.get_finished_spans()
    assert dict(first.attributes) == {"http.route": "/v1/transfers", "http.method": "GET", "http.status_code": 500,
                                      "http.target": "/v1/transfers", "http.url": "http://127.0.0.1:8000/v1/transfers"}
    [event] = first.events
    assert event.name == "exception" and dict(event.attributes) == {"exception.type": "ValueError",
                                                                   "exception.escaped": "False"}
    assert first.status.status_code == StatusCode.ERROR and first.status.description == "ValueError"
    assert dict(unrouted.attributes) == {"http.method": "GET"}


async def test_configured_traces_go_over_otlp_http():
    """The standard variables turn traces on: OTLP/HTTP (protobuf) to the endpoint they name."""
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

    with Receiver() as collector:
        settings = Settings.from_env({"OTEL_EXPORTER_OTLP_ENDPOINT": collector.url(""),
                                      "OTEL_SERVICE_NAME": "treatyflow-otlp-test"})
        assert settings.otlp_traces_endpoint == collector.url("/v1/traces")
        tracing = Tracing.configured(settings, "api")
        assert tracing is not None
        with tracing.provider.get_tracer("test").start_as_current_span("GET /v1/treaties"):
            pass
        tracing.shutdown()
        [delivery] = collector.received()
    assert delivery.path == "/v1/traces" and delivery.headers["content-type"] == "application/x-protobuf"
    request = ExportTraceServiceRequest.FromString(delivery.body)
    [resource] = request.resource_spans
    assert {a.key: a.value.string_value for a in resource.resource.attributes}["service.name"] == "treatyflow-otlp-test"
    assert [s.name for scope in resource.scope_spans for s in scope.spans] == ["GET /v1/treaties"]


async def test_traces_are_off_unless_configured(tmp_path):
    assert Settings.from_env({}).otlp_traces_endpoint is None
    assert Tracing.configured(Settings(), "api") is None
    on = {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318/"}
    assert Settings.from_env(on).otlp_traces_endpoint == "http://collector:4318/v1/traces"
    assert Settings.from_env({**on, "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "https://t:4318/x"}).otlp_traces_endpoint \
        == "https://t:4318/x"
    assert Settings.from_env({**on, "OTEL_SDK_DISABLED": "true"}).otlp_traces_endpoint is None
    assert Settings.from_env({**on, "OTEL_TRACES_EXPORTER": "none"}).otlp_traces_endpoint is None
    # off, the API and the worker load no OpenTelemetry SDK and install no middleware of it
    probe = ("import sys; from pathlib import Path; from web.app import create_app; import worker; "
             "from treatyflow.config import Settings; "
             f"app = create_app(Settings(dev_mode=True, data_dir=Path({str(tmp_path)!r}))); "
             "print(sorted(m for m in sys.modules if m.startswith(('opentelemetry.sdk', 'opentelemetry.instrumentation',"
             " 'temporalio.contrib.opentelemetry')))); print([m.cls.__name__ for m in app.user_middleware])")
    process = await asyncio.create_subprocess_exec(sys.executable, "-c", probe, cwd=REPO,
                                                   stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    stdout, stderr = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode == 0, stderr.decode()
    out = stdout.decode().splitlines()
    assert out[0] == "[]" and "OpenTelemetryMiddleware" not in out[1], out
