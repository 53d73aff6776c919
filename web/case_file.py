"""The case file in the web application: a case page's documents, added through a form (posted as
``multipart/form-data``, read as a stream by the API's own upload function, with the form's CSRF
token checked among its fields before anything is recorded) and downloaded, one by one or the
whole file as the API's signed export."""

from __future__ import annotations

from urllib.parse import quote

from fastapi import APIRouter, Request, Response

from api import documents
from api.errors import ApiError
from web.pages import problems, redirect, request_page, require_csrf, signed_in, transfer_page
from web.session import CSRF_FIELD
from workflows.kinds import ASSISTANCE, TRANSFER

router = APIRouter(include_in_schema=False)
PAGES = {"transfers": (TRANSFER, transfer_page), "assistance-requests": (ASSISTANCE, request_page)}


@router.post("/{cases}/{reference}/documents")
async def add_document(request: Request, cases: str, reference: str) -> Response:
    if cases not in PAGES:
        raise ApiError(404, "not_found", "no such page")
    kind, page = PAGES[cases]
    who = await signed_in(request)
    typed: dict[str, str] = {}
    try:
        await documents.upload(request, who, kind, reference,
                               check_fields=lambda fields: require_csrf(request, fields.get(CSRF_FIELD)),
                               more_fields=frozenset({CSRF_FIELD}), seen=typed)
    except ApiError as error:
        if error.status in (401, 403, 404):
            raise
        typed.pop(CSRF_FIELD, None)
        return await page(request, reference, status=error.status, errors=problems(error), form_of="documents",
                          values=typed)
    return redirect(request, f"/{cases}/{quote(reference)}?done=documents")


@router.get("/{cases}/{reference}/export")
async def export(request: Request, cases: str, reference: str) -> Response:
    if cases not in PAGES:
        raise ApiError(404, "not_found", "no such page")
    who = await signed_in(request)
    return await documents.export(request, who, PAGES[cases][0], reference)


@router.get("/{cases}/{reference}/documents/{document_id}")
async def download(request: Request, cases: str, reference: str, document_id: str) -> Response:
    if cases not in PAGES:
        raise ApiError(404, "not_found", "no such page")
    who = await signed_in(request)
    return await documents.content(request, who, PAGES[cases][0], reference, document_id)
