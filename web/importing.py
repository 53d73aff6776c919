"""Importing a list of applicants in the web application: a central authority uploads the CSV or
XLSX file it already keeps (one row a case, domain/applicants.py), sees what would become of every
row before anything is opened, then confirms — and the cases are opened by the API's own batch
(api/batch.py): each row judged exactly as a single ``POST /v1/transfers``, through the one gate of
every batch, recorded as the same audit event with the person's name.

Who may import is the API's rule (``batch.may_open``), asked before a file is read. The upload is
parsed as it arrives (api.documents.Upload) and never held past ``MAX_BYTES``: a larger file is
refused with the domain's own words, by its declared length before a byte of it is read, or as
soon as its count passes the limit. Nothing of the file is written anywhere: it is read in memory,
and its rows go to the page, to the confirm form, and into the encrypted cases.

The hand-over from the preview to the confirm is the preview page's own hidden field: the lines of
the rows the preview would open (with their rows' numbers in the file), compressed and signed with
a key derived from the codec key (``itsdangerous``, as the session cookie), for this session (its
CSRF token) and this authority, for an hour. The confirm opens exactly those lines, nothing another
hand could change, and needs nothing kept on the server (any instance of the API may answer it); a
repeated confirm opens nothing new, each of its rows answering ``existing``. The preview and the
results are streamed as the rows are judged: a list of 2,000 takes a while, and the page shows each
case as it is decided (never merely as read) instead of keeping a proxy waiting for the whole."""

from __future__ import annotations

import asyncio
import hashlib
import re
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import aclosing
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any
from urllib.parse import parse_qsl

from fastapi import APIRouter, Request, Response
from fastapi.responses import StreamingResponse
from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer

from api import batch, documents
from api.body import read_at_most
from api.errors import ApiError
from domain.applicants import (
    MAX_BYTES, MAX_ROWS, FileRefused, column_of, read_applicants, template_columns, too_large, write_applicants,
)
from domain.reference import Authority
from web.pages import (
    language_of, page_context, render, require_csrf, secured, signed_in, templates, through_api,
)
from web.session import CSRF_FIELD, read_session

router = APIRouter(include_in_schema=False)

PATH = re.compile(r"^/transfers/import(/confirm)?$")
"""The POSTs read here as a stream, each against its own limit, answering a page past it
(api.limits.BodyLimit lets them through: web/app.py)."""
UPLOAD_BYTES = MAX_BYTES + documents.MULTIPART_OVERHEAD  # the file and the form's few fields
# the confirm's hand-over: the lines of the rows to open, compressed, in base64 (4/3): never more
# than the information of a file of MAX_BYTES, so twice it leaves room
CONFIRM_BYTES = 2 * MAX_BYTES
PREVIEW_SECONDS = 3600  # a preview older than this is uploaded again: what it showed may have changed
MEDIA_TYPES = {"csv": "text/csv; charset=utf-8",
               "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"}
PAGES = templates.env.overlay(enable_async=True)  # the same templates, rendered as their rows come


# ---- the upload page and the templates ----------------------------------------------------------

def upload_page(request: Request, status: int = 200, failed: str | None = None) -> Response:
    english = language_of(request, read_session(request)).code == "en"
    return render(request, "transfer_import.html", status=status, failed=failed, most=MAX_ROWS,
                  megabytes=MAX_BYTES // 1_048_576,
                  columns=[(c.code if english else c.russian, c.russian if english else c.code, c)
                           for c in template_columns()])


@router.get("/transfers/import")
async def import_page(request: Request) -> Response:
    who = await signed_in(request)
    batch.may_open(through_api(request), who)
    return upload_page(request)


@lru_cache(maxsize=4)
def template_file(language: str, form: str) -> bytes:
    return write_applicants([], language, form)  # type: ignore[arg-type]


@router.get("/transfers/import/template.{form}")
async def template(request: Request, form: str, language: str = "en") -> Response:
    """The empty list to fill in: headings in English codes or in Russian (the XLSX with a second
    sheet describing each column)."""
    who = await signed_in(request)
    batch.may_open(through_api(request), who)
    if form not in MEDIA_TYPES or language not in ("en", "ru"):
        raise ApiError(404, "not_found", "no such page")
    return secured(request, Response(template_file(language, form), media_type=MEDIA_TYPES[form], headers={
        "Content-Disposition": f'attachment; filename="treatyflow-applicants-{language}.{form}"'}))


# ---- the preview ----------------------------------------------------------------------------------

@router.post("/transfers/import")
async def preview(request: Request) -> Response:
    """The file read (422 with the domain's words when it is refused whole), then every row judged
    as it would be opened, nothing opened; the confirm form when a row would open a case."""
    who = await signed_in(request)
    batch.may_open(through_api(request), who)
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > UPLOAD_BYTES:
        return upload_page(request, 413, str(too_large()))
    lang = language_of(request, read_session(request))
    if not request.headers.get("content-type", "").lower().startswith("multipart/form-data"):
        return upload_page(request, 422, lang.gettext("Choose the file to import."))  # no file could be in it
    chunks: list[bytes] = []
    size = 0
    try:
        upload = documents.Upload(request, more_fields=frozenset({CSRF_FIELD}))
        async with aclosing(upload.content()) as content:
            async for chunk in content:
                size += len(chunk)
                if size > MAX_BYTES:
                    return upload_page(request, 413, str(too_large()))
                chunks.append(chunk)
    except ApiError as error:  # a form not of this page (two files, say): what is wrong with it
        return upload_page(request, error.status, error.message)
    require_csrf(request, upload.fields.get(CSRF_FIELD))
    if not chunks:
        return upload_page(request, 422, lang.gettext("Choose the file to import."))
    file = b"".join(chunks)
    chunks.clear()
    try:
        applicants = await asyncio.to_thread(read_applicants, file)  # a large XLSX takes a moment to unpack
    except FileRefused as refused:
        return upload_page(request, 422, str(refused))
    if not applicants.rows:
        return upload_page(request, 422, lang.gettext("The file has the template's headings but no case below "
                                                      "them."))
    lines = batch.lines_of(applicants.lines())
    judging = Judging(batch.judge_all(through_api(request), who, lines, opening=False),
                      [r.number for r in applicants.rows], [r.columns for r in applicants.rows], lines)
    digest = hashlib.sha256(file).hexdigest()  # the file itself is not kept while the rows are judged
    return streamed(request, "transfer_import_rows.html", judging=judging, preview=True,
                          hand_over=lambda: hand_over(request, who, judging, digest))


@dataclass
class Shown:
    """A row of the file as the page shows it."""

    number: int  # the row's number in the file (the headings are row 1)
    reference: str | None
    result: str  # api.batch.Judged.result: created, existing, invalid, refused
    problems: list[tuple[str, str]]  # the file's column heading ("" for the row as a whole), the API's message


@dataclass
class Judging:
    """The rows of an import as the API judges them, for a page that shows each as it comes; what
    the page says after them (the totals, the rows the preview would open)."""

    judged: AsyncIterator[batch.Judged]
    numbers: list[int]  # the file's row of each line
    columns: list[dict[str, str]] | None  # each row's fields → the file's headings (None: not known)
    lines: list[bytes]
    skipped: int = 0  # rows of the file the preview did not hand over (problems, or existing already)
    counts: Counter[str] = field(default_factory=Counter)
    to_open: list[tuple[int, str]] = field(default_factory=list)  # (the file's row, its line)

    async def rows(self) -> AsyncIterator[Shown]:
        async with aclosing(self.judged) as judged_lines:
            async for judged in judged_lines:
                self.counts[judged.result] += 1
                number = self.numbers[judged.row - 1]
                if judged.result == "created":
                    self.to_open.append((number, self.lines[judged.row - 1].decode()))
                columns = self.columns[judged.row - 1] if self.columns else {}
                yield Shown(number, judged.reference, judged.result,
                            [("" if f == "(body)" else column_of(f, columns), message)
                             for f, message in judged.problems])


def streamed(request: Request, template: str, **context: Any) -> Response:
    """A page sent as it is rendered, a table row at a time (``PAGES``: the app's templates in
    Jinja's async mode, whose loops wait for each row)."""
    page = PAGES.get_template(template)
    values = {"request": request, **page_context(request, **context)}

    async def html() -> AsyncIterator[str]:
        pending: list[str] = []
        async for piece in page.generate_async(values):
            pending.append(piece)
            if "</tr>" in piece:
                yield "".join(pending)
                pending.clear()
        yield "".join(pending)

    return secured(request, StreamingResponse(html(), media_type="text/html; charset=utf-8"))


# ---- the hand-over, and the confirm ---------------------------------------------------------------

def signer(request: Request) -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(request.app.state.codec.keys.derived("web import"), salt="treatyflow-import")


def hand_over(request: Request, who: Authority, judging: Judging, sha256: str) -> str:
    """What the confirm form carries: the lines the preview would open, for this session and
    authority, signed (and compressed by the serializer)."""
    return signer(request).dumps({"a": who.id, "c": read_session(request).csrf, "f": sha256,
                                  "s": sum(judging.counts.values()) - len(judging.to_open),
                                  "r": judging.to_open})


async def read_form(request: Request, limit: int) -> dict[str, str] | None:
    """A url-encoded form counted as it arrives; None past ``limit`` (nothing more read)."""
    raw = await read_at_most(request, limit)
    return None if raw is None else dict(parse_qsl(raw.decode("latin-1"), keep_blank_values=True, max_num_fields=10))


@router.post("/transfers/import/confirm")
async def confirm(request: Request) -> Response:
    """The lines the preview handed over, opened through the API's batch; the page shows each
    case as it is opened, then the totals."""
    who = await signed_in(request)
    batch.may_open(through_api(request), who)
    try:
        form = await read_form(request, CONFIRM_BYTES)
    except ValueError:  # more fields than the form has: not this page's
        form = {}
    if form is None:
        return upload_page(request, 413, str(too_large()))
    require_csrf(request, form.get(CSRF_FIELD))
    lang = language_of(request, read_session(request))
    try:
        carried = signer(request).loads(form.get("rows", ""), max_age=PREVIEW_SECONDS)
    except SignatureExpired:
        return upload_page(request, 400, lang.gettext("The preview is more than an hour old: upload the file again "
                                                      "to see what each row would do now."))
    except BadSignature:
        return upload_page(request, 400, lang.gettext("The confirmation is not the one the preview gave: nothing "
                                                      "was opened. Upload the file again."))
    if carried.get("a") != who.id or carried.get("c") != read_session(request).csrf:
        return upload_page(request, 400, lang.gettext("The preview was made for another session: nothing was "
                                                      "opened. Upload the file again."))
    rows: list[tuple[int, str]] = [tuple(r) for r in carried["r"]]
    lines = [line.encode() for _, line in rows]
    judging = Judging(batch.open_all(through_api(request), who, lines, carried["f"]), [n for n, _ in rows], None,
                      lines, skipped=carried["s"])
    return streamed(request, "transfer_import_rows.html", judging=judging, preview=False)
