"""The case file over HTTP (API.md, "The case file"): uploading a document, listing and reading
them, downloading one.

An upload is read as it arrives: the multipart body is parsed as a stream (python-multipart's
push parser), and the file's bytes go straight into the document store, which seals them segment
by segment, counts them (413 past the limit, nothing more read) and decides the content type from
them (415). No part of the file is ever held whole, spooled in clear or put in a workflow payload:
the case records only the document's metadata and digest, through its ``add_document`` update,
whose validator has the last word (a case closed meanwhile). Whatever fails after the content was
stored — a field at fault, the case refusing — removes it again; a crash in between leaves an
orphan, which ``Documents.sweep`` removes (docs/operations.md).

Who may: read — whoever may read the case (the same 401 → 404 → 403 as the case view); upload —
an authority whose role acts in the case, a court or an executing authority only with the
``measure_id`` of a measure routed to it (or that it authorises), and only while the case is open
(409, answered before the body is read: the whole upload is not taken in to be refused)."""

from __future__ import annotations

import asyncio
import hashlib
import json
import re
import zipfile
from collections.abc import AsyncIterator, Callable
from contextlib import aclosing
from datetime import datetime, timedelta, timezone
from typing import Any
from urllib.parse import quote

import structlog
from fastapi import APIRouter, Request
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, TypeAdapter, ValidationError
from python_multipart.multipart import MultipartParser, parse_options_header

from api.acts import take
from api.auth import ROLES_IN, Caller, deny
from api.errors import ApiError, conflict, invalid, problems_of
from api.found import Found, find_case, read_case
from domain.assistance import manifest_bytes
from domain.documents import DocumentRecord, Language, Title, type_problem
from domain.reference import Authority
from stores.signing import sign_detached
from stores.documents import (
    DocumentEmpty, DocumentError, DocumentsUnavailable, DocumentTooLarge, StoredDocument,
    UnsupportedContent,
)
from workflows.kinds import ASSISTANCE, KINDS, TRANSFER, CaseKind

log = structlog.get_logger("treatyflow.api")

router = APIRouter(tags=["documents"])
UPLOAD_PATH = re.compile(r"^(/v1)?/(transfers|assistance-requests)/[^/]+/documents$")
"""The uploads (the API's and the web application's forms): the body limit lets them through to the
document store's own limit, read as a stream."""
FIELDS = {"type", "title", "language", "measure_id"}
FIELD_BYTES = 1_000  # a form field's value (the title's 200 characters in any script fit)
MULTIPART_OVERHEAD = 64 * 1024  # what the form may add to the file's bytes: parts' headers and fields


class DocumentList(BaseModel):
    items: list[DocumentRecord]


class Upload:
    """A multipart body parsed as it arrives: the form's fields, and the one file's bytes yielded
    as ``content()`` is iterated (the document store pulls them)."""

    def __init__(self, request: Request, more_fields: frozenset[str] = frozenset(),
                 fields: dict[str, str] | None = None) -> None:
        kind, options = parse_options_header(request.headers.get("content-type", ""))
        boundary = options.get(b"boundary")
        if kind != b"multipart/form-data" or not boundary:
            raise invalid([("file", "file is required: send the document as multipart/form-data, with one field "
                                    "file and the fields type and title")])
        self.request = request
        self.allowed = FIELDS | more_fields
        self.fields: dict[str, str] = {} if fields is None else fields
        self.filename: str | None = None
        self.files = 0
        self._pending: list[bytes] = []
        self._part: dict[str, Any] = {}
        self._header_field = b""
        self._header_value = b""
        self._value = bytearray()
        self.problem: ApiError | None = None
        self.parser = MultipartParser(boundary, {
            "on_part_begin": self._begin, "on_part_data": self._data, "on_part_end": self._end,
            "on_header_field": self._header_field_data, "on_header_value": self._header_value_data,
            "on_header_end": self._header_end})

    # the parser's callbacks (synchronous, called from ``write`` below)
    def _begin(self) -> None:
        self._part, self._value = {}, bytearray()

    def _header_field_data(self, data: bytes, start: int, end: int) -> None:
        self._header_field += data[start:end]

    def _header_value_data(self, data: bytes, start: int, end: int) -> None:
        self._header_value += data[start:end]

    def _header_end(self) -> None:
        if self._header_field.lower() == b"content-disposition":
            _, options = parse_options_header(self._header_value)
            self._part = {"name": options.get(b"name", b"").decode("utf-8", "replace"),
                          "filename": options.get(b"filename")}
            if self._part["filename"] is not None:
                self.files += 1
                if self.files > 1:
                    self.fail(invalid([("file", "file: send exactly one file")]))
                self.filename = self._part["filename"].decode("utf-8", "replace")
        self._header_field, self._header_value = b"", b""

    def _data(self, data: bytes, start: int, end: int) -> None:
        if self.problem is not None:
            return
        if self._part.get("filename") is not None:
            if self._part["name"] != "file":
                self.fail(invalid([(self._part["name"] or "file", "only the field file may hold a file")]))
            else:
                self._pending.append(data[start:end])
            return
        self._value += data[start:end]
        if len(self._value) > FIELD_BYTES:
            self.fail(invalid([(self._part.get("name") or "(body)", f"{self._part.get('name')} is too long")]))

    def _end(self) -> None:
        name = self._part.get("name", "")
        if self._part.get("filename") is None and self.problem is None:
            if name not in self.allowed:
                self.fail(invalid([(name or "(body)", f"{name or 'a field'} is not a field of a document upload; "
                                                      f"send file, {', '.join(sorted(FIELDS))}")]))
            elif name in self.fields:
                self.fail(invalid([(name, f"{name} is given twice")]))
            else:
                self.fields[name] = self._value.decode("utf-8", "replace")

    def fail(self, problem: ApiError) -> None:
        self.problem = self.problem or problem

    async def content(self) -> AsyncIterator[bytes]:
        """The file's bytes as the body arrives; the whole body is parsed by the time it ends."""
        async for chunk in self.request.stream():
            self.parser.write(chunk)
            if self.problem is not None:
                raise self.problem
            while self._pending:
                yield self._pending.pop(0)
        self.parser.finalize()
        if self.problem is not None:
            raise self.problem
        while self._pending:
            yield self._pending.pop(0)


def documents_of(view: Any) -> list[DocumentRecord]:
    return list(getattr(view, "documents", []) or [])


def measure_of(view: Any, measure_id: str | None) -> Any | None:
    return next((m for m in getattr(view, "measures", []) if m.id == measure_id), None)


def may_upload_to_measure(who: Authority, measure: Any) -> bool:
    return who.role == "central_authority" or who.id in (measure.assigned_to, measure.court)


def may_upload(who: Authority, kind: CaseKind, view: Any) -> list[str] | None:
    """What ``who`` (who may read the case) may add documents to now: None for nothing; else the
    measures it may name (a transfer's: ``[]``; a central authority may also name none)."""
    if view.outcome is not None or who.role not in ROLES_IN[kind.name]:
        return None
    if kind is TRANSFER or who.role == "central_authority":
        return [m.id for m in getattr(view, "measures", [])]
    return [m.id for m in view.measures if may_upload_to_measure(who, m)] or None


def upload_problems(kind: CaseKind, view: Any, fields: dict[str, str]) -> list[tuple[str, str]]:
    problems: list[tuple[str, str]] = []
    if (problem := type_problem(kind.name, fields.get("type", ""))) is not None:
        problems.append(("type", "type is required" if not fields.get("type") else problem))
    for field, adapter, required in (("title", TypeAdapter(Title), True), ("language", TypeAdapter(Language), False)):
        if not fields.get(field) and not required:  # an empty field of a form: not given
            continue
        try:
            adapter.validate_python(fields.get(field, ""))
        except ValidationError as exc:
            message = problems_of(exc, (field,))[0][1] if field in fields else f"{field} is required"
            problems.append((field, message if field != "language" else
                             "language must be an ISO 639-1 code of two lower-case letters, such as ru"))
    measure_id = fields.get("measure_id") or None
    if kind is TRANSFER and measure_id is not None:
        problems.append(("measure_id", "measure_id is for a document of a request for assistance's measure"))
    elif measure_id is not None and measure_of(view, measure_id) is None:
        problems.append(("measure_id", f"measure_id names no measure of this request: give one of "
                                       f"{', '.join(m.id for m in view.measures)}"))
    return problems


async def upload(request: Request, who: Authority, kind: CaseKind, reference: str,
                 check_fields: Callable[[dict[str, str]], None] | None = None,
                 more_fields: frozenset[str] = frozenset(), seen: dict[str, str] | None = None) -> DocumentRecord:
    """401 → 404 → 403 → 409 before the body is read; then the body, streamed into the store (413,
    415, 422 for an empty file), the fields (422; ``check_fields`` of them and ``more_fields``:
    the web application's CSRF token; ``seen``: filled with the fields as they are read, for a form
    shown again with what was typed), and the record in the case. Anything refused after the
    content was stored removes it."""
    found = await find_case(request, who, kind, reference)
    if who.role in ("court", "executing_authority") and not any(
            may_upload_to_measure(who, m) for m in found.view.measures):
        raise deny(request, who, f"{who.id} adds documents only to the measures routed to it or that it "
                                 "authorises, and this request has none", reference)
    if not found.live:
        raise conflict(f"the {kind.workflow.noun} is closed ({found.view.stage}): no more documents can be added")
    declared = request.headers.get("content-length", "")
    limit = request.app.state.settings.document_limit_bytes
    if declared.isdigit() and int(declared) > limit + MULTIPART_OVERHEAD:
        raise too_large(limit)
    store = request.app.state.documents
    form = Upload(request, more_fields, {} if seen is None else seen)
    try:
        stored = await store.write(form.content(), kind=kind.name, reference=reference)
    except DocumentTooLarge:
        raise too_large(limit) from None
    except DocumentEmpty:
        raise invalid([("file", "file is required: send the document in the field file" if form.files == 0
                        else "file may not be empty")]) from None
    except UnsupportedContent:
        raise ApiError(415, "unsupported_media_type", "file must be a PDF, PNG, JPEG, TIFF, UTF-8 plain text, "
                                                      "OpenDocument text or Office Open XML (docx) document") from None
    except DocumentsUnavailable:
        raise ApiError(503, "unavailable", "the document store cannot be reached; try again",
                       headers={"Retry-After": "5"}, cause="documents") from None
    try:
        if check_fields is not None:
            check_fields(form.fields)
        return await record(request, who, kind, found, stored, form)
    except BaseException:
        await store.remove(stored.document_id)
        raise


async def record(request: Request, who: Authority, kind: CaseKind, found: Found, stored: StoredDocument,
                 form: Upload) -> DocumentRecord:
    fields, view = form.fields, found.view
    if problems := upload_problems(kind, view, fields):
        raise invalid(problems)
    measure_id = fields.get("measure_id") or None
    if who.role in ("court", "executing_authority"):
        measure = measure_of(view, measure_id)
        if measure is None or not may_upload_to_measure(who, measure):
            raise deny(request, who, f"{who.id} adds documents only to the measures routed to it or that it "
                                     "authorises: give the measure_id of one of them", found.view.reference)
    document = DocumentRecord(
        document_id=stored.document_id, type=fields["type"], title=TypeAdapter(Title).validate_python(fields["title"]),
        language=fields.get("language") or None, measure_id=measure_id,
        filename=(form.filename or "document")[:255], content_type=stored.content_type, size=stored.size,
        sha256=stored.sha256, uploaded_by=who.id, uploaded_at=datetime.now(timezone.utc))
    workflow = kind.workflow
    await take(request, who, found, found.handle, workflow.add_document, document, workflow.view)
    log.info("document added", reference=view.reference, document_id=document.document_id, type=document.type,
             size=document.size)
    return document


SWEEP_EVERY = timedelta(hours=1)
ORPHANS_AFTER = timedelta(hours=1)  # far longer than an upload takes from store to case


async def sweep_orphans(app: Any, older_than: timedelta = ORPHANS_AFTER) -> list[str]:
    """Remove the contents stored more than ``older_than`` ago that their case does not record (a
    crash between the store and the case): the ids removed. A case that cannot be read now (the
    engine unreachable) stops the sweep with nothing more removed."""
    async def recorded(kind: str, reference: str) -> set[str]:
        found = await read_case(app, KINDS[kind], reference)
        return {d.document_id for d in documents_of(found.view)} if found else set()

    swept = await app.documents.sweep(recorded, older_than=older_than)
    if swept.removed or swept.leftovers:
        log.warning("orphan documents removed", documents=len(swept.removed), unfinished_writes=swept.leftovers)
    return swept.removed


async def sweep_hourly(app: Any) -> None:
    """The API's background sweep (every instance: removing an orphan twice is harmless)."""
    while True:
        await asyncio.sleep(SWEEP_EVERY.total_seconds())
        try:
            await sweep_orphans(app)
        except Exception as exc:  # the engine or the store away: the next hour tries again
            log.warning("document sweep failed", problem=type(exc).__name__)


def too_large(limit: int) -> ApiError:
    return ApiError(413, "too_large", f"file may not exceed {limit} bytes")


async def document_of(request: Request, who: Authority, kind: CaseKind, reference: str,
                      document_id: str) -> DocumentRecord:
    view = (await find_case(request, who, kind, reference)).view
    found = next((d for d in documents_of(view) if d.document_id == document_id), None)
    if found is None:
        raise ApiError(404, "not_found", f"the {kind.workflow.noun} {reference} has no document {document_id[:40]}")
    return found


async def content(request: Request, who: Authority, kind: CaseKind, reference: str,
                  document_id: str) -> StreamingResponse:
    document = await document_of(request, who, kind, reference, document_id)
    store = request.app.state.documents
    try:
        stored = await store.info(kind.name, reference, document_id)
    except DocumentError as exc:
        log.error("document unreadable", reference=reference, document_id=document_id, problem=type(exc).__name__)
        raise ApiError(503, "unavailable", "the document cannot be read now; try again",
                       headers={"Retry-After": "5"}, cause="documents") from None
    if stored is None:
        log.error("document missing from the store", reference=reference, document_id=document_id)
        raise ApiError(404, "not_found", f"the content of document {document_id} is not in the store")

    async def body() -> AsyncIterator[bytes]:
        async with aclosing(store.read(kind.name, reference, document_id)) as chunks:
            async for chunk in chunks:
                yield chunk

    media = document.content_type + ("; charset=utf-8" if document.content_type == "text/plain" else "")
    return StreamingResponse(body(), media_type=media, headers={
        "Content-Disposition": f"attachment; filename*=UTF-8''{quote(document.filename, safe='')}",
        "ETag": f'"{document.sha256}"', "Content-Length": str(document.size), "X-Content-Type-Options": "nosniff",
        "Cache-Control": "no-store"})


class _Sink:
    """What ``zipfile`` writes an export into: the bytes written since the last ``take``."""

    def __init__(self) -> None:
        self.parts: list[bytes] = []

    def write(self, data: bytes) -> int:
        self.parts.append(bytes(data))
        return len(data)

    def flush(self) -> None:
        pass

    def take(self) -> bytes:
        out, self.parts = b"".join(self.parts), []
        return out


def canonical(value: Any) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


async def export(request: Request, who: Authority, kind: CaseKind, reference: str) -> StreamingResponse:
    """The case file as a zip, streamed as it is written (API.md): ``case.json`` (the view),
    every document under ``documents/``, for a request for assistance with results
    ``manifest.json`` and ``manifest.jws`` (the requested state's signature), and ``index.json``
    (each file's name, size and sha256) with ``index.jws``, signed by the caller's state: the
    state that hands the file over vouches for its index. Nothing is held whole or spooled."""
    view = (await find_case(request, who, kind, reference)).view
    ring, store = request.app.state.signing, request.app.state.documents
    case_json = json.dumps(view.model_dump(mode="json"), indent=1, ensure_ascii=False).encode("utf-8")
    small: list[tuple[str, bytes]] = [("case.json", case_json)]
    results = getattr(view, "results", None)
    if results is not None:
        small.append(("manifest.json", manifest_bytes(results.items)))
        if results.signature:
            small.append(("manifest.jws", results.signature.encode()))
    names = {}
    for document in documents_of(view):  # a name of its own for each, whatever the uploader called it
        safe = re.sub(r"[^\w.\-]+", "_", document.filename, flags=re.UNICODE).strip("._") or "document"
        names[document.document_id] = f"documents/{document.document_id}-{safe[:100]}"
    index = [{"name": name, "size": len(data), "sha256": hashlib.sha256(data).hexdigest()} for name, data in small]
    index += [{"name": names[d.document_id], "size": d.size, "sha256": d.sha256} for d in documents_of(view)]
    index_json = canonical({"reference": reference, "kind": kind.name, "files": index})
    index_jws = sign_detached(ring, who.state, index_json).encode()

    async def body() -> AsyncIterator[bytes]:
        sink = _Sink()
        with zipfile.ZipFile(sink, "w", compression=zipfile.ZIP_DEFLATED) as archive:  # type: ignore[arg-type]
            for name, data in small:
                archive.writestr(zipfile.ZipInfo(name, EXPORT_TIME), data)
                yield sink.take()
            for document in documents_of(view):
                with archive.open(zipfile.ZipInfo(names[document.document_id], EXPORT_TIME), "w") as member:
                    async with aclosing(store.read(kind.name, reference, document.document_id)) as chunks:
                        async for chunk in chunks:
                            member.write(chunk)
                            yield sink.take()
            archive.writestr(zipfile.ZipInfo("index.json", EXPORT_TIME), index_json)
            archive.writestr(zipfile.ZipInfo("index.jws", EXPORT_TIME), index_jws)
        yield sink.take()

    return StreamingResponse(body(), media_type="application/zip", headers={
        "Content-Disposition": f"attachment; filename={kind.name}-{reference}.zip", "Cache-Control": "no-store"})


EXPORT_TIME = (2026, 1, 1, 0, 0, 0)  # every member's date: an export's bytes depend on its content only


def routes(kind: CaseKind, prefix: str) -> None:
    noun = kind.workflow.noun

    @router.post(f"{prefix}/{{reference}}/documents", response_model=DocumentRecord, status_code=201,
                 name=f"upload_{kind.name}_document", summary=f"Add a document to a {noun}",
                 openapi_extra={"requestBody": {"required": True, "content": {"multipart/form-data": {"schema": {
                     "type": "object", "required": ["file", "type", "title"], "properties": {
                         "file": {"type": "string", "format": "binary"}, "type": {"type": "string"},
                         "title": {"type": "string", "minLength": 1, "maxLength": 200},
                         "language": {"type": "string", "pattern": "^[a-z]{2}$"},
                         **({"measure_id": {"type": "string"}} if kind is ASSISTANCE else {})}}}}}})
    async def add(request: Request, reference: str, who: Caller) -> DocumentRecord:
        return await upload(request, who, kind, reference)

    @router.get(f"{prefix}/{{reference}}/documents", response_model=DocumentList,
                name=f"list_{kind.name}_documents", summary=f"The documents of a {noun}")
    async def listed(request: Request, reference: str, who: Caller) -> DocumentList:
        return DocumentList(items=documents_of((await find_case(request, who, kind, reference)).view))

    @router.get(f"{prefix}/{{reference}}/documents/{{document_id}}", response_model=DocumentRecord,
                name=f"read_{kind.name}_document", summary=f"A document of a {noun}")
    async def one(request: Request, reference: str, document_id: str, who: Caller) -> DocumentRecord:
        return await document_of(request, who, kind, reference, document_id)

    @router.get(f"{prefix}/{{reference}}/export", name=f"export_{kind.name}", response_class=StreamingResponse,
                summary=f"The case file of a {noun} as a zip, its index signed",
                responses={200: {"content": {"application/zip": {}}}})
    async def exported(request: Request, reference: str, who: Caller) -> StreamingResponse:
        return await export(request, who, kind, reference)

    @router.get(f"{prefix}/{{reference}}/documents/{{document_id}}/content", name=f"{kind.name}_document_content",
                summary=f"The bytes of a document of a {noun}", response_class=StreamingResponse)
    async def download(request: Request, reference: str, document_id: str, who: Caller) -> StreamingResponse:
        return await content(request, who, kind, reference, document_id)


routes(TRANSFER, "/v1/transfers")
routes(ASSISTANCE, "/v1/assistance-requests")
