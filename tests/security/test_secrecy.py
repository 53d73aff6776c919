"""Proof of secrecy. A transfer (to its handover), a withdrawn transfer and a request for mutual
legal assistance (through an information loop, a court's authorisation and evidence, to its
manifest) run through the HTTP API with distinctive names, dates of birth, facts, notes and
evidence descriptions. Then nothing outside the encrypted payloads may hold any of them: the raw
histories read without the codec, the search attributes and memo (describe and the visibility
list), every log record the worker and the API emitted, the API's metrics page and the worker's
SDK metrics, every span the API and the worker exported (traces on, a name search among the
requests), the webhook bodies, the archive (encrypted at rest). With the key, the same histories
yield every value, and the API's case view shows the notes and evidence it serves."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import re
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import pytest_asyncio
import structlog
from google.protobuf.message import Message
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from temporalio.api.common.v1 import Payload
from temporalio.client import Client

from activities.notify import Notifier, Webhook, Webhooks
from api.app import create_app
from tests.api.helpers import today
from tests.conftest import CODEC_KEYS, DATA_CONVERTER
from tests.support import Delivery, Receiver, free_port, key, poll, serve
from treatyflow.client import PLAIN_CONVERTER, connect, metrics_runtime
from treatyflow.codec import ENCODING
from treatyflow.samples import BASE, assistance_body, transfer_body
from treatyflow.tracing import Tracing
from worker import create_worker
from workflows.assistance import OpenAssistance
from workflows.transfer import OpenTransfer

pytestmark = pytest.mark.asyncio(loop_scope="session")

# ---- the distinctive values ---------------------------------------------------------------------

NAME = "Zhanargul Secretova-Testbek"
BORN = "1973-07-19"
COURT = "Secret Court of Testing"
OFFENCE = "embezzled the orphanage fund"
OBLIGATION = "restitution to the Zvezdochka orphanage"
KZ_NOTE = "Secretova has served half in Vellichor colony"
UZ_NOTE = "Testbek family guarantees housing in Thistlecombe"
WITHDRAWAL_REASON = "Zhanargul prefers to stay near the Quillfeather clinic"

PURPOSE = "Trace the Kestrel money"
FACTS = "Payments routed via Kestrel Holdings Ltd by Bexley Quornwood"
ASSISTANCE_OFFENCE = "defrauded the Marrowgate pension scheme"
MEASURES = [
    {"id": "m1", "kind": "identify_bank_accounts", "description": "Accounts of Kestrel Holdings Ltd at Brindlemoor",
     "subject": "Bexley Quornwood personally"},
    {"id": "m2", "kind": "search", "description": "Search the Kestrel office on Larkspire avenue",
     "subject": "Kestrel Holdings Ltd premises"},
    {"id": "m3", "kind": "interrogation", "description": "Hear Quornwood about the Kestrel transfers",
     "subject": "Bexley Quornwood as witness"},
]
QUESTIONS = "Is Bexley Quornwood the director of Kestrel?"
ANSWER = "Quornwood has directed Kestrel Holdings since 2019"
REVIEW_NOTE = "Accepted: the Marrowgate losses are documented"
AUTHORISATION_NOTE = "Authorised: search the Kestrel premises at Larkspire"
EVIDENCE = {
    "m1": ("kz-afm", "ledger of Kestrel Holdings"),
    "m2": ("kz-police", "hard drive seized at the Kestrel office"),
    "m3": ("kz-police", "transcript of the Quornwood hearing"),
}
RESULT_NOTE = "Quornwood accounts frozen at Brindlemoor"
# the case file: a document's title, file name and content (plain text, so a leak would read as is)
DOCUMENTS = {  # case kind -> (title, filename, content)
    "transfer": ("Medical report on Zhanargul from Harrowgate clinic", "Harrowgate-Pellwether-report.txt",
                 "Harrowgate clinic: Zhanargul Secretova is fit to travel, signed Dr Pellwether"),
    "assistance": ("Ledger page of Kestrel at Brindlemoor", "Kestrel-ledger-Wyvernholt.txt",
                   "Wyvernholt branch ledger: Kestrel Holdings paid Quornwood 40,000"),
}

# what the request carries (the "case file") and what the acts carry
REQUEST_VALUES = [NAME, BORN, COURT, OFFENCE, OBLIGATION, PURPOSE, FACTS, ASSISTANCE_OFFENCE,
                  *(m["description"] for m in MEASURES), *(m["subject"] for m in MEASURES)]
ACT_VALUES = [KZ_NOTE, UZ_NOTE, WITHDRAWAL_REASON, QUESTIONS, ANSWER, REVIEW_NOTE, AUTHORISATION_NOTE,
              *(d for _, d in EVIDENCE.values()), RESULT_NOTE, *(d[i] for d in DOCUMENTS.values() for i in (0, 1))]
SECRETS = REQUEST_VALUES + ACT_VALUES
CONTENTS = [d[2] for d in DOCUMENTS.values()]  # never in a history at all: only sealed in the document store
# single words, so that a value cut, re-cased or reformatted is still caught
TOKENS = ["Zhanargul", "Secretova", "Testbek", BORN, "Secret Court", "orphanage", "Zvezdochka", "Vellichor",
          "Thistlecombe", "Quillfeather", "Kestrel", "Quornwood", "Marrowgate", "Brindlemoor", "Larkspire",
          "Harrowgate", "Pellwether", "Wyvernholt"]
assert all(any(t in s for s in SECRETS) for t in TOKENS)
assert all(any(t in s for t in TOKENS) for s in SECRETS + CONTENTS)  # every value has a token of its own


def found_in(text: str | bytes, values: list[str] | None = None) -> list[str]:
    """The values and tokens that occur in ``text`` (bytes as UTF-8, case-insensitively)."""
    if isinstance(text, bytes):
        text = text.decode("utf-8", errors="replace")
    lowered = text.lower()
    return [v for v in [*(values or SECRETS + CONTENTS), *TOKENS] if v.lower() in lowered]


# ---- capturing what the worker and the API write -----------------------------------------------

class LogCapture(logging.Handler):
    """Every stdlib log record, at every level, as its formatted line (message, exception, stack)
    followed by every attribute of the record (``extra`` fields, the SDK's workflow and activity
    context, args)."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []
        self.plain = logging.Formatter("%(name)s %(levelname)s %(message)s")

    def emit(self, record: logging.LogRecord) -> None:
        if record.name == "httpx" and "/v1/transfers?name=" in record.getMessage():
            return  # the test's own client logging the name search it sends (the API logs no query)
        try:
            line = self.plain.format(record)
        except Exception as exc:  # noqa: BLE001 - a record that cannot format is still kept
            line = f"{record.name} {record.msg!r} {record.args!r} (unformattable: {exc!r})"
        self.lines.append(f"{line} {record.__dict__!r}")


# ---- the run ------------------------------------------------------------------------------------

@dataclasses.dataclass
class Run:
    client: Client
    transfer: str
    withdrawn: str
    assistance: str
    workflow_ids: list[str]
    views: dict[str, dict[str, Any]]
    metrics: str
    worker_metrics: str
    log_lines: list[str]
    structlog_events: list[dict[str, Any]]
    deliveries: list[Delivery]
    archive_dir: Path
    data_dir: Path
    spans: list[ReadableSpan]  # as exported (scrubbed: treatyflow/tracing.py)
    raw_spans: list[ReadableSpan]  # as the instrumentations recorded them, never exported (the control)


WEBHOOK_AUTHORITIES = ("kz-gpo", "uz-gpo", "fr-moj", "kz-court")


async def ok(response: httpx.Response, status: int = 200) -> dict[str, Any]:
    assert response.status_code == status, response.text
    return response.json()


async def drive_transfer(http: httpx.AsyncClient) -> str:
    body = transfer_body(
        person={"full_name": NAME, "date_of_birth": BORN, "citizenships": ["UZ"]},
        judgment={**BASE["judgment"], "court": COURT,
                  "offences": [{"article": "188", "iccs": "0502", "description": OFFENCE}]},
        financial_obligations=[{"description": OBLIGATION, "amount": "1500.00", "currency": "KZT", "settled": True}],
    )
    ref = body["reference"]
    opened = await ok(await http.post("/v1/transfers", json=body, headers=key("kz-gpo")), 201)
    assert opened["stage"] == "awaiting_consents", opened
    await ok(await http.get("/v1/transfers", params={"name": NAME}, headers=key("kz-gpo")))  # a name in a URL
    await ok(await http.post(f"/v1/transfers/{ref}/decisions", headers=key("kz-gpo"),
                             json={"state": "KZ", "decision": "consent", "note": KZ_NOTE}))
    moved = await ok(await http.post(f"/v1/transfers/{ref}/decisions", headers=key("uz-gpo"),
                                     json={"state": "UZ", "decision": "consent", "note": UZ_NOTE}))
    assert moved["stage"] == "awaiting_handover", moved

    async def current() -> dict[str, Any]:
        return await ok(await http.get(f"/v1/transfers/{ref}", headers=key("kz-gpo")))

    await add_document(http, f"/v1/transfers/{ref}", "kz-penal", "transfer", type="medical_report")
    arranged = await poll(current, lambda v: v["handover"] is not None, timeout=10)
    assert arranged["handover"], arranged
    done = await ok(await http.post(f"/v1/transfers/{ref}/handover", headers=key("uz-penal"),
                                    json={"completed_on": today().isoformat(),
                                          "place": arranged["handover"]["place"]}))
    assert done["stage"] == "transferred", done
    return ref


async def add_document(http: httpx.AsyncClient, path: str, by: str, kind: str, **fields: str) -> dict[str, Any]:
    title, filename, content = DOCUMENTS[kind]
    return await ok(await http.post(f"{path}/documents", headers=key(by), data={"title": title, **fields},
                                    files={"file": (filename, content.encode(), "text/plain")}), 201)


async def drive_withdrawn_transfer(http: httpx.AsyncClient) -> str:
    body = transfer_body(person={"full_name": NAME, "date_of_birth": BORN, "citizenships": ["UZ"]},
                         judgment={**BASE["judgment"], "court": COURT,
                                   "offences": [{"article": "188", "iccs": "0502", "description": OFFENCE}]})
    ref = body["reference"]
    await ok(await http.post("/v1/transfers", json=body, headers=key("kz-gpo")), 201)
    done = await ok(await http.post(f"/v1/transfers/{ref}/withdrawal", headers=key("kz-gpo"),
                                    json={"withdrawn_on": today().isoformat(), "reason": WITHDRAWAL_REASON}))
    assert done["stage"] == "withdrawn", done
    return ref


async def drive_assistance(http: httpx.AsyncClient) -> str:
    body = assistance_body(purpose=PURPOSE, facts=FACTS, measures=MEASURES,
                           offences=[{"article": "313-1", "iccs": "0701", "description": ASSISTANCE_OFFENCE}])
    ref = body["reference"]
    path = f"/v1/assistance-requests/{ref}"

    async def current() -> dict[str, Any]:
        return await ok(await http.get(path, headers=key("fr-moj")))

    def stage_of(view: dict[str, Any], measure: str) -> str:
        return next(m["stage"] for m in view["measures"] if m["id"] == measure)

    opened = await ok(await http.post("/v1/assistance-requests", json=body, headers=key("fr-moj")), 201)
    assert opened["stage"] == "under_review", opened
    asked = await ok(await http.post(f"{path}/review", headers=key("kz-gpo"),
                                     json={"decision": "request_information", "questions": QUESTIONS}))
    assert asked["stage"] == "awaiting_information", asked
    answered = await ok(await http.post(f"{path}/information", headers=key("fr-moj"), json={"answers": ANSWER}))
    assert answered["stage"] == "under_review", answered
    accepted = await ok(await http.post(f"{path}/review", headers=key("kz-gpo"),
                                        json={"decision": "accept", "note": REVIEW_NOTE}))
    assert accepted["stage"] == "executing", accepted

    started = await poll(current, lambda v: stage_of(v, "m2") == "awaiting_authorisation"
                         and stage_of(v, "m1") == stage_of(v, "m3") == "executing", timeout=10)
    assert stage_of(started, "m2") == "awaiting_authorisation", started
    await ok(await http.post(f"{path}/measures/m2/authorisation", headers=key("kz-court"),
                             json={"granted": True, "note": AUTHORISATION_NOTE}))
    authorised = await poll(current, lambda v: stage_of(v, "m2") == "executing", timeout=10)
    assert stage_of(authorised, "m2") == "executing", authorised
    ledger = await add_document(http, path, "kz-afm", "assistance", type="evidence", measure_id="m1")
    for measure, (who, description) in EVIDENCE.items():
        evidence = [{"item_id": f"{measure}-e1", "description": description, "sha256": uuid.uuid4().hex * 2,
                     "collected_on": today().isoformat()}]
        if measure == "m1":  # evidence by document: its stored digest
            evidence = [{**evidence[0], "sha256": None, "document_id": ledger["document_id"]}]
        await ok(await http.post(f"{path}/measures/{measure}/result", headers=key(who),
                                 json={"outcome": "executed", "evidence": evidence, "note": RESULT_NOTE}))
    completed = await poll(current, lambda v: v["stage"] == "completed", timeout=15)
    assert completed["stage"] == "completed", completed
    return ref


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def run(dev_env, dev_settings, tmp_path_factory) -> AsyncIterator[Run]:
    capture = LogCapture()
    root = logging.getLogger()
    level = root.level
    root.addHandler(capture)
    root.setLevel(logging.DEBUG)
    archive_dir = Path(tmp_path_factory.mktemp("secrecy-archive"))
    data_dir = Path(tmp_path_factory.mktemp("secrecy-data"))  # the document store: <data dir>/documents
    metrics_address = f"127.0.0.1:{free_port()}"
    # traces on, as OTEL_EXPORTER_OTLP_ENDPOINT turns them on, to an in-memory exporter instead
    exporter, raw = InMemorySpanExporter(), InMemorySpanExporter()
    tracing = Tracing.to(exporter, "treatyflow-secrecy")
    tracing.provider.add_span_processor(SimpleSpanProcessor(raw))
    settings = dataclasses.replace(dev_settings, task_queue=f"secrecy-{uuid.uuid4().hex[:8]}", dev_mode=True,
                                   archive_dir=archive_dir, data_dir=data_dir, documents_dir=data_dir / "documents",
                                   api_timeout=10.0,
                                   temporal_address=dev_env.client.service_client.config.target_host,
                                   temporal_namespace=dev_env.client.namespace)
    try:
        with structlog.testing.capture_logs() as events, Receiver() as receiver:
            notifier = Notifier(Webhooks({a: Webhook(url=receiver.url(f"/{a}"), secret=f"{a}-webhook-secret-0123456")
                                          for a in WEBHOOK_AUTHORITIES}))
            # the worker as `treatyflow worker` builds it: its own client, with the SDK's metrics served
            worker_client = await connect(settings, runtime=metrics_runtime(metrics_address))
            worker = create_worker(worker_client, settings, activity_overrides=[notifier.notify], tracing=tracing)
            # the API with its own client, traced as `treatyflow api` connects it
            api_client = await connect(settings, tracing=tracing)
            async with worker, serve(create_app(settings, api_client, tracing)) as url:
                async with httpx.AsyncClient(base_url=url, timeout=30) as http:
                    transfer, withdrawn, assistance = await asyncio.gather(
                        drive_transfer(http), drive_withdrawn_transfer(http), drive_assistance(http))
                    ids = [f"transfer:{transfer}", f"transfer:{withdrawn}", f"assistance:{assistance}",
                           *(f"assistance:{assistance}:{m['id']}" for m in MEASURES)]
                    for workflow_id in ids:  # closed and archived
                        await asyncio.wait_for(dev_env.client.get_workflow_handle(workflow_id).result(), 30)
                    views = {
                        "transfer": await ok(await http.get(f"/v1/transfers/{transfer}", headers=key("uz-gpo"))),
                        "withdrawn": await ok(await http.get(f"/v1/transfers/{withdrawn}", headers=key("kz-gpo"))),
                        "assistance": await ok(await http.get(f"/v1/assistance-requests/{assistance}",
                                                              headers=key("fr-moj"))),
                    }
                    metrics = (await http.get("/metrics")).text
                    worker_metrics = (await http.get(f"http://{metrics_address}/metrics")).text
            await notifier.aclose()
            deliveries = receiver.received()
    finally:
        root.removeHandler(capture)
        root.setLevel(level)
        tracing.shutdown()
    yield Run(dev_env.client, transfer, withdrawn, assistance, ids, views, metrics, worker_metrics,
              list(capture.lines), list(events), deliveries, archive_dir, data_dir,
              list(exporter.get_finished_spans()), list(raw.get_finished_spans()))


def plain_client(run: Run) -> Client:
    """The same server, without the codec: what the server, its database and a UI without the
    codec endpoint hold."""
    return Client(run.client.service_client, namespace=run.client.namespace, data_converter=PLAIN_CONVERTER)


# ---- walking protobufs --------------------------------------------------------------------------

def payloads_in(message: Message, path: str = "") -> Iterator[tuple[str, Payload]]:
    """Every Payload anywhere in ``message``, with its field path."""
    if message.DESCRIPTOR.full_name == Payload.DESCRIPTOR.full_name:
        yield path, message
        return
    for field, value in message.ListFields():
        if field.type != field.TYPE_MESSAGE:
            continue
        name = f"{path}.{field.name}" if path else field.name
        if field.message_type.GetOptions().map_entry:
            value_field = field.message_type.fields_by_name["value"]
            if value_field.type == value_field.TYPE_MESSAGE:
                for k, v in value.items():
                    yield from payloads_in(v, f"{name}[{k}]")
        elif field.is_repeated:
            for v in value:
                yield from payloads_in(v, f"{name}[]")
        else:
            yield from payloads_in(value, name)


def leaks_in_proto(message: Message) -> list[str]:
    """Values found anywhere in ``message``: its wire bytes hold every string and bytes field
    (payload data, metadata, failure messages, stack traces) verbatim; its JSON form covers the
    rest. Payload data is also searched on its own, and as base64 in the JSON."""
    import base64

    from google.protobuf import json_format

    wire = message.SerializeToString()
    as_json = json_format.MessageToJson(message)
    leaks = found_in(wire) + found_in(as_json)
    for _, payload in payloads_in(message):
        leaks += found_in(payload.data) + found_in(b"".join(payload.metadata.values()))
    for value in SECRETS:
        if base64.b64encode(value.encode()).decode()[:-4] in as_json:
            leaks.append(f"base64({value})")
    return sorted(set(leaks))


async def test_the_proto_search_would_see_plaintext():
    """The control: a payload that is not encrypted is caught, directly and inside JSON."""
    from temporalio.api.common.v1 import Payloads

    [payload] = PLAIN_CONVERTER.payload_converter.to_payloads([{"facts": FACTS}])
    assert FACTS in leaks_in_proto(Payloads(payloads=[payload]))
    assert "Kestrel" in leaks_in_proto(Payloads(payloads=[payload]))


# ---- the histories ------------------------------------------------------------------------------

async def histories(run: Run, client: Client) -> dict[str, Any]:
    return {wid: await client.get_workflow_handle(wid).fetch_history() for wid in run.workflow_ids}


async def test_the_raw_histories_hold_none_of_the_values(run):
    found = {}
    for workflow_id, history in (await histories(run, plain_client(run))).items():
        assert len(history.events) > 5, workflow_id
        leaks = sorted(set(found_in(history.to_json())) | set(
            leak for event in history.events for leak in leaks_in_proto(event)))
        if leaks:
            found[workflow_id] = leaks
    assert found == {}


async def test_every_payload_of_substance_in_the_histories_is_encrypted(run):
    """Inputs, results, update arguments and results, signals, markers, failures' attributes:
    encrypted under the session's key. Only what the server must read stays plain: search
    attributes (no personal data by design), the SDK's patch markers and the trace context the
    tracing interceptor carries in headers (a W3C traceparent: ids, never baggage); summaries are
    allowed to be plain (reference, states, counts) but are in fact encrypted too."""
    plain_paths: set[str] = set()
    encrypted = traced = 0
    for workflow_id, history in (await histories(run, plain_client(run))).items():
        for event in history.events:
            for path, payload in payloads_in(event):
                if payload.metadata.get("encoding") == ENCODING:
                    assert payload.metadata["encryption-key-id"] == CODEC_KEYS.current.encode()
                    encrypted += 1
                else:
                    generic = path.split("[")[0] if "search_attributes" in path else path.replace("[]", "")
                    plain_paths.add(generic)
                    assert found_in(payload.data) == [], (workflow_id, path)
                    if path.endswith("header.fields[_tracer-data]"):
                        carried = json.loads(payload.data)
                        assert list(carried) == ["traceparent"], (workflow_id, path, carried)
                        assert re.fullmatch(r"00-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}", carried["traceparent"]), carried
                        traced += 1
    assert encrypted > 50 and traced > 20
    # the SDK's own patch markers (a patch id, written by the SDK's core) are plain too
    allowed = ("search_attributes", "user_metadata.summary", "user_metadata.details",
               "marker_recorded_event_attributes.details[patch-data]", "header.fields[_tracer-data]")
    assert {p for p in plain_paths if not any(a in p for a in allowed)} == set(), sorted(plain_paths)


async def test_with_the_key_the_histories_yield_every_value(run):
    """The values are there, in the encrypted payloads, and the key reads them all."""
    codec = DATA_CONVERTER.payload_codec
    assert codec is not None
    decoded = b""
    started: dict[str, Payload] = {}
    for workflow_id, history in (await histories(run, plain_client(run))).items():
        started[workflow_id] = history.events[0].workflow_execution_started_event_attributes.input.payloads[0]
        for event in history.events:
            for _, payload in payloads_in(event):
                if payload.metadata.get("encoding") == ENCODING:
                    [inner] = await codec.decode([payload])
                    decoded += inner.data + b"\n"
    assert sorted(set(SECRETS) - set(found_in(decoded))) == []
    assert [c for c in CONTENTS if c.encode() in decoded] == []  # a document's content: not even sealed in a history

    [opening] = await DATA_CONVERTER.decode([started[f"transfer:{run.transfer}"]], [OpenTransfer])
    assert opening.request.person.full_name == NAME and str(opening.request.person.date_of_birth) == BORN
    [request] = await DATA_CONVERTER.decode([started[f"assistance:{run.assistance}"]], [OpenAssistance])
    assert request.request.facts == FACTS
    with pytest.raises(Exception):  # without the codec the same payload is not readable
        await PLAIN_CONVERTER.decode([started[f"transfer:{run.transfer}"]], [OpenTransfer])


async def test_a_client_with_the_codec_reads_the_request(run):
    handle = run.client.get_workflow_handle(f"transfer:{run.transfer}")
    history = await handle.fetch_history()
    payload = history.events[0].workflow_execution_started_event_attributes.input.payloads[0]
    [opening] = await run.client.data_converter.decode([payload], [OpenTransfer])
    assert opening.request.judgment.court == COURT
    assert opening.request.judgment.offences[0].description == OFFENCE


# ---- visibility ---------------------------------------------------------------------------------

async def test_describe_shows_no_value(run):
    client = plain_client(run)
    found = {}
    for workflow_id in run.workflow_ids:
        description = await client.get_workflow_handle(workflow_id).describe()
        shown = (str(description.typed_search_attributes) + repr(description.search_attributes)
                 + repr(description.raw_description) + workflow_id + (description.task_queue or ""))
        try:
            shown += repr(await description.memo())
        except Exception as exc:  # noqa: BLE001 - an encrypted memo cannot be read without the codec
            shown += repr(exc)
        leaks = set(found_in(shown)) | set(leaks_in_proto(description.raw_description))
        if leaks:
            found[workflow_id] = sorted(leaks)
    assert found == {}


async def test_the_visibility_list_shows_no_value(run):
    client = plain_client(run)
    seen = []
    query = (f"WorkflowId = 'transfer:{run.transfer}' OR WorkflowId = 'transfer:{run.withdrawn}' "
             f"OR WorkflowId STARTS_WITH 'assistance:{run.assistance}'")

    async def listed() -> list:
        return [e async for e in client.list_workflows(query)]

    executions = await poll(listed, lambda found: len(found) == len(run.workflow_ids), timeout=10)
    assert sorted(e.id for e in executions) == sorted(run.workflow_ids)
    for e in executions:
        shown = str(e.typed_search_attributes) + repr(e.search_attributes) + repr(e.raw_info)
        try:
            shown += repr(await e.memo())
        except Exception as exc:  # noqa: BLE001
            shown += repr(exc)
        seen += found_in(shown) + leaks_in_proto(e.raw_info)
    assert sorted(set(seen)) == []
    kinds = {e.id: e.typed_search_attributes for e in executions}
    assert any("transfer" in str(v) for v in kinds.values())  # the attributes are there, plain


async def test_no_workflow_id_or_summary_names_anyone(run):
    """Workflow ids are references; the UI summaries are encrypted like payloads, and even
    decoded they name no one."""
    plain = plain_client(run)
    for workflow_id in run.workflow_ids:
        assert found_in(workflow_id) == []
        with pytest.raises(Exception):  # encrypted: unreadable without the codec
            await (await plain.get_workflow_handle(workflow_id).describe()).static_summary()
        description = await run.client.get_workflow_handle(workflow_id).describe()
        summary = await description.static_summary()
        assert summary and run.assistance in summary or run.transfer in summary or run.withdrawn in summary
        assert found_in(repr(summary) + repr(await description.static_details())) == []


# ---- logs, metrics, webhooks --------------------------------------------------------------------

async def test_every_log_record_of_the_worker_and_the_api_names_no_one(run):
    assert run.log_lines, "no log record was captured"
    # the capture works: the activities' own records are there, with the references
    assert any("notice delivered" in line and run.assistance in line for line in run.log_lines)
    assert any("case archived" in line and run.transfer in line for line in run.log_lines)
    leaking = [line for line in run.log_lines if found_in(line)]
    assert leaking == []
    events = repr(run.structlog_events)
    assert found_in(events) == []


async def test_the_metrics_page_holds_no_value_and_no_reference(run):
    assert "treatyflow_http_requests_total" in run.metrics
    assert found_in(run.metrics) == []
    for reference in (run.transfer, run.withdrawn, run.assistance):
        assert reference not in run.metrics
    assert "/v1/transfers/{reference}" in run.metrics  # labels are route templates


async def test_the_workers_metrics_hold_no_value_and_no_reference(run):
    assert "temporal_" in run.worker_metrics and "activity_type=" in run.worker_metrics  # the SDK's metrics
    assert found_in(run.worker_metrics) == []
    for reference in (run.transfer, run.withdrawn, run.assistance):
        assert reference not in run.worker_metrics


async def test_the_webhook_bodies_hold_no_value(run):
    delivered = {d.path.strip("/") for d in run.deliveries if 200 <= d.status < 300}
    assert delivered == set(WEBHOOK_AUTHORITIES), delivered
    references = {d.event["subject"] for d in run.deliveries}
    assert {run.transfer, run.withdrawn, run.assistance} <= references
    leaking = [(d.path, d.body.decode()) for d in run.deliveries
               if found_in(d.body) or found_in(json.dumps(d.headers))]
    assert leaking == []


# ---- traces -------------------------------------------------------------------------------------

def shown_by(span: ReadableSpan) -> str:
    """Everything a span carries out: name, attributes, events and theirs, status, links', resource."""
    return repr((span.name, dict(span.attributes or {}), [(e.name, dict(e.attributes or {})) for e in span.events],
                 span.status.description, [dict(link.attributes or {}) for link in span.links],
                 dict(span.resource.attributes)))


async def test_every_span_exported_names_no_one(run):
    """Every span the API and the worker exported during the run — as read here and as OTLP
    would send them (the protobuf bytes) — holds none of the values."""
    from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans

    names = {s.name for s in run.spans}
    # the capture works: the requests, the client's calls, the workflows and the activities are there
    assert {"POST /v1/transfers", "GET /v1/transfers", "StartUpdateWithStartWorkflow:Transfer",
            "RunWorkflow:Assistance", "RunWorkflow:AssistanceMeasure", "RunActivity:archive_case",
            "RunActivity:write_person_notice", "RunActivity:notify"} <= names, sorted(names)
    assert {s.attributes.get("temporalWorkflowID") for s in run.spans} >= set(run.workflow_ids)
    leaking = {span.name: found_in(shown_by(span)) for span in run.spans if found_in(shown_by(span))}
    assert leaking == {}
    assert found_in(encode_spans(run.spans).SerializeToString()) == []


async def test_the_name_search_leaves_no_name_in_its_span(run):
    """The control: the instrumentation recorded the search's query string (the name in it),
    and the exported span has the route and the path only."""
    [raw] = [s for s in run.raw_spans if s.name == "GET /v1/transfers"]
    assert "Zhanargul" in found_in(shown_by(raw))
    [exported] = [s for s in run.spans if s.name == "GET /v1/transfers"]
    assert exported.attributes["http.route"] == "/v1/transfers"
    assert exported.attributes.get("http.target", exported.attributes.get("url.path")) == "/v1/transfers"
    assert "url.query" not in exported.attributes


# ---- the archive --------------------------------------------------------------------------------

def archive_files(run: Run) -> dict[str, bytes]:
    return {str(f.relative_to(run.archive_dir)): f.read_bytes() for f in sorted(run.archive_dir.rglob("*.json"))}


async def test_every_closed_case_is_archived(run):
    assert set(archive_files(run)) == {f"transfer/{run.transfer}.json", f"transfer/{run.withdrawn}.json",
                                       f"assistance/{run.assistance}.json"}


async def test_the_archive_holds_no_value_in_clear(run):
    """The archive is encrypted at rest: a copy of the directory names no one."""
    found = {name: found_in(stored) for name, stored in archive_files(run).items()}
    assert {n: f for n, f in found.items() if f} == {}
    for name, stored in archive_files(run).items():
        assert not stored.lstrip().startswith(b"{"), name  # not a clear JSON record
        sealed = Payload.FromString(stored)
        assert sealed.metadata["encoding"] == ENCODING, name
        assert sealed.metadata["encryption-key-id"] == CODEC_KEYS.current.encode(), name


async def test_the_document_store_holds_no_value_in_clear(run):
    """Every document's content, title and file name: sealed in the store (or kept only in the
    case's encrypted record), none of them in a stored file's bytes."""
    stored = [f for f in (run.data_dir / "documents").rglob("*") if f.is_file()]
    assert len(stored) >= len(DOCUMENTS), stored
    assert {str(f): found_in(f.read_bytes()) for f in stored if found_in(f.read_bytes())} == {}


async def test_the_documents_read_back_with_the_key(run):
    transfer, assistance = run.views["transfer"], run.views["assistance"]
    uploaded = [d for d in transfer["documents"] if d["type"] != "person_notice"]
    assert [(d["title"], d["filename"]) for d in uploaded] == [DOCUMENTS["transfer"][:2]]
    letters = [d for d in transfer["documents"] if d["type"] == "person_notice"]
    assert len(letters) == 5 and not [d for d in letters if found_in(json.dumps(d, ensure_ascii=False))]
    assert [(d["title"], d["filename"]) for d in assistance["documents"]] == [DOCUMENTS["assistance"][:2]]
    (m1,) = [m for m in assistance["measures"] if m["id"] == "m1"]
    assert m1["evidence"][0]["sha256"] == assistance["documents"][0]["sha256"]


async def test_with_the_key_the_archive_holds_the_views(run):
    """Decrypted with the key, each record is the closed case's view: the notes and evidence
    descriptions it shows, and never the request (no name, date of birth, facts...)."""
    from treatyflow.codec import EncryptionCodec

    codec = EncryptionCodec(CODEC_KEYS)
    records = {name: json.loads(codec.decrypt(Payload.FromString(stored)).data)
               for name, stored in archive_files(run).items()}
    transfer = json.dumps(records[f"transfer/{run.transfer}.json"], ensure_ascii=False)
    assistance = json.dumps(records[f"assistance/{run.assistance}.json"], ensure_ascii=False)
    assert KZ_NOTE in transfer and UZ_NOTE in transfer
    assert all(description in assistance for _, description in EVIDENCE.values())
    clear = {v for record in records.values() for v in SECRETS if v in json.dumps(record, ensure_ascii=False)}
    assert clear & set(REQUEST_VALUES) == set()
    assert records[f"assistance/{run.assistance}.json"]["view"]["stage"] == "completed"
    assert records[f"transfer/{run.withdrawn}.json"]["view"]["stage"] == "withdrawn"


# ---- with the key: the case view ----------------------------------------------------------------

async def test_the_case_views_show_what_they_serve(run):
    """The API decodes with the key: its views show the notes and the evidence (transfer views
    carry no person, by design; a withdrawal's reason is not shown)."""
    transfer = run.views["transfer"]
    assert transfer["stage"] == "transferred"
    assert {d["state"]: d["note"] for d in transfer["decisions"]} == {"KZ": KZ_NOTE, "UZ": UZ_NOTE}
    assert NAME not in json.dumps(transfer) and BORN not in json.dumps(transfer)
    assert run.views["withdrawn"]["stage"] == "withdrawn"
    assistance = run.views["assistance"]
    assert assistance["stage"] == "completed"
    items = {i["item_id"]: i["description"] for i in assistance["results"]["items"]}
    assert items == {f"{m}-e1": d for m, (_, d) in EVIDENCE.items()}
