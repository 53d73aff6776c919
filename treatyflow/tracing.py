"""Traces (OpenTelemetry): one trace from an HTTP request through the Temporal client's call to
the workflow's spans and its activities', exported over OTLP/HTTP. Off unless an OTLP endpoint is
configured (OTEL_EXPORTER_OTLP_TRACES_ENDPOINT or OTEL_EXPORTER_OTLP_ENDPOINT, read by
``treatyflow.config.Settings``); off, no instrumentation is installed, no interceptor runs and the
OpenTelemetry SDK is not even imported.

No personal data leaves in a span: every span passes ``Scrubbing`` before any exporter sees it,
which keeps only the attributes named in ``KEPT`` (HTTP method, route, status, the path without
its query string — a name search's ``?name=`` is never recorded — and the Temporal ids: workflow
ids are case references, docs/security.md), an exception's type but never its message or stack,
and a status description only when it is an exception's type name. The Temporal interceptor
carries the W3C trace context only, never baggage: its header is written into the case's history
in clear, so a caller's baggage must not reach it."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from treatyflow.config import Settings

if TYPE_CHECKING:
    from fastapi import FastAPI
    from opentelemetry.context import Context
    from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor, TracerProvider
    from opentelemetry.sdk.trace.export import SpanExporter
    from temporalio.client import Client
    from temporalio.contrib.opentelemetry import TracingInterceptor

# The attributes a span may carry out of the process, of the FastAPI (ASGI) instrumentation in both
# its old and its stable HTTP conventions, and of the Temporal interceptor. Dropped among others:
# url.query, the client's address and port (a person's, for the web application), the user agent,
# any captured header (OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_* would record Authorization).
KEPT = frozenset({
    "http.method", "http.request.method", "http.route", "http.status_code", "http.response.status_code",
    "http.scheme", "url.scheme", "http.flavor", "network.protocol.version", "http.host", "http.server_name",
    "server.address", "server.port", "net.host.name", "net.host.port", "error.type",
    "temporalWorkflowID", "temporalRunID", "temporalActivityID", "temporalActivityType", "temporalUpdateID",
})
# Kept cut to their path, and only on a span whose request matched a route: a path no route
# matched is whatever a client typed.
PATHS = frozenset({"url.path", "http.target", "http.url", "url.full"})
EXCEPTION_KEPT = frozenset({"exception.type", "exception.escaped"})
TYPE_NAME = re.compile(r"[A-Za-z_][\w.]*")
# Requests not traced: probes, scrapes and static files (regular expressions searched in the URL)
NOT_TRACED = r"/healthz$,/readyz$,/metrics$,/static/"


def without_query(url: str) -> str:
    return url.split("?", 1)[0].split("#", 1)[0]


def scrubbing(inner: SpanProcessor) -> SpanProcessor:
    """A span processor that hands ``inner`` every ended span as it may leave the process (see
    the module's docstring). Its imports are done here, once: a workflow's spans end inside the
    workflow sandbox, where importing is restricted."""
    from opentelemetry.sdk.trace import Event, ReadableSpan, SpanProcessor
    from opentelemetry.trace import Link, Status, StatusCode

    def scrub(span: ReadableSpan) -> ReadableSpan:
        attributes = dict(span.attributes or {})
        kept: dict[str, Any] = {k: v for k, v in attributes.items() if k in KEPT}
        if "http.route" in attributes:
            kept.update({k: without_query(v) for k, v in attributes.items() if k in PATHS and isinstance(v, str)})
        events = [Event(e.name, {k: v for k, v in (e.attributes or {}).items() if k in EXCEPTION_KEPT}, e.timestamp)
                  for e in span.events if e.name == "exception"]
        description = (span.status.description or "").split(":", 1)[0].strip()
        failed = span.status.status_code == StatusCode.ERROR
        status = Status(span.status.status_code, description if failed and TYPE_NAME.fullmatch(description) else None)
        return ReadableSpan(span.name, span.context, span.parent, span.resource, kept, events,
                            [Link(link.context) for link in span.links], span.kind, status=status,
                            start_time=span.start_time, end_time=span.end_time,
                            instrumentation_scope=span.instrumentation_scope)

    class Scrubbing(SpanProcessor):
        def on_start(self, span: Span, parent_context: Context | None = None) -> None:
            inner.on_start(span, parent_context)

        def on_end(self, span: ReadableSpan) -> None:
            inner.on_end(scrub(span))

        def shutdown(self) -> None:
            inner.shutdown()

        def force_flush(self, timeout_millis: int = 30000) -> bool:
            return inner.force_flush(timeout_millis)

    return Scrubbing()


@dataclass
class Tracing:
    """A tracer provider of our own (never the global one), whose spans are scrubbed and then
    batched to an exporter; the FastAPI instrumentation and the Temporal interceptor use it."""

    provider: TracerProvider

    @classmethod
    def configured(cls, settings: Settings, process: str) -> Tracing | None:
        """OTLP/HTTP to ``settings.otlp_traces_endpoint`` (headers, certificates, compression and
        timeout from the standard OTEL_EXPORTER_OTLP_* variables); None when that is not set."""
        if not settings.otlp_traces_endpoint:
            return None
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        return cls.to(OTLPSpanExporter(endpoint=settings.otlp_traces_endpoint),
                      settings.otel_service_name or f"treatyflow-{process}")

    @classmethod
    def to(cls, exporter: SpanExporter, service_name: str) -> Tracing:
        """Spans of a process named ``service_name`` (OTEL_RESOURCE_ATTRIBUTES adds to it), to
        ``exporter`` (tests: an in-memory one)."""
        from opentelemetry.sdk.resources import SERVICE_NAME, Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor

        provider = TracerProvider(resource=Resource.create({SERVICE_NAME: service_name}))
        provider.add_span_processor(scrubbing(BatchSpanProcessor(exporter)))
        return cls(provider)

    def interceptor(self) -> TracingInterceptor:
        """The Temporal SDK's tracing interceptor (client calls, workflows, activities) on this
        provider, carrying the W3C trace context only."""
        from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
        from temporalio.contrib.opentelemetry import TracingInterceptor

        interceptor = TracingInterceptor(self.provider.get_tracer("treatyflow"))
        interceptor.text_map_propagator = TraceContextTextMapPropagator()  # no baggage into histories
        return interceptor

    def instrument(self, app: FastAPI) -> None:
        """FastAPI's instrumentation on ``app``: a server span per request (route, method,
        status), none for the ASGI messages."""
        from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor

        FastAPIInstrumentor.instrument_app(app, tracer_provider=self.provider, excluded_urls=NOT_TRACED,
                                           exclude_spans=["receive", "send"])

    def flush(self) -> None:
        self.provider.force_flush()

    def shutdown(self) -> None:
        """Exports what is still batched and stops."""
        self.provider.shutdown()


def traced(client: Client) -> bool:
    """Whether ``client`` already carries the SDK's tracing interceptor (its workers then have it
    too: it must not be given to them a second time)."""
    interceptors = client.config()["interceptors"]
    return any(type(i).__module__.startswith("temporalio.contrib.opentelemetry") for i in interceptors)
