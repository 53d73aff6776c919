"""Filing a request for assistance from the web application: the form (offence and measure rows
added and removed with buttons, without JavaScript), posted to the API's own route
(``api.assistance.file_request``) as the signed-in central authority, then the request's page; the
API's problems shown beside the fields, with what was typed kept. Who may file is the API's rule
(a central authority of the requesting state): the page only turns its answer into words."""

from __future__ import annotations

from typing import Any, get_args
from urllib.parse import quote

from fastapi import APIRouter, Request, Response
from starlette.datastructures import FormData

from api import assistance
from api.body import utc_today
from api.errors import ApiError
from domain.reference import Authority, MeasureKind
from web.pages import offence_rows, partners, rows_of, posted, problems, redirect, render, signed_in, text, through_api

router = APIRouter(include_in_schema=False)

MEASURE_KINDS: tuple[str, ...] = get_args(MeasureKind)
MEASURE_PARTS = ("id", "kind", "description", "subject")
OFFENCE_PARTS = ("article", "iccs", "description")
# the fields of the form that show their own error (the rows' are named by row)
FIELDS = ("reference", "requested_state", "received_on", "issuing_authority", "purpose", "facts", "urgent",
          "confidential", "respond_by", "offences", "measures")


def measure_rows(form: FormData | None) -> list[int]:
    return rows_of(form, "measure_row", "measure")


def request_body(form: FormData, who: Authority) -> dict[str, Any]:
    """The API's body (``domain.assistance.AssistanceRequest``) from the form, offences and
    measures by row."""
    body: dict[str, Any] = {
        "reference": text(form, "reference"),
        "requesting_state": text(form, "requesting_state") or who.state,
        "requested_state": text(form, "requested_state"),
        "issuing_authority": text(form, "issuing_authority"), "purpose": text(form, "purpose"),
        "facts": text(form, "facts"),
        "offences": [{"article": text(form, f"offence.{r}.article"),
                      **({"iccs": text(form, f"offence.{r}.iccs")} if text(form, f"offence.{r}.iccs") else {}),
                      "description": text(form, f"offence.{r}.description")}
                     for r in offence_rows(form) if f"offence.{r}.article" in form],
        "measures": [{part: text(form, f"measure.{r}.{part}") for part in MEASURE_PARTS}
                     for r in measure_rows(form) if f"measure.{r}.id" in form],
        "urgent": "urgent" in form, "confidential": "confidential" in form}
    for optional in ("received_on", "respond_by"):
        if text(form, optional):
            body[optional] = text(form, optional)
    return body


def by_row_name(errors: dict[str, str], form: FormData) -> dict[str, str]:
    """The API's field paths as the form names them (``measures.1.kind`` is the second measure row
    shown: ``measure.<its row>.kind``); a problem of no field of the form goes with the form's
    own (``""``), so that none is left unsaid."""
    rows = {"offences": ([int(r) for r in form.getlist("row") if str(r).isdigit()], "offence", OFFENCE_PARTS),
            "measures": ([int(r) for r in form.getlist("measure_row") if str(r).isdigit()], "measure",
                         MEASURE_PARTS)}
    named: dict[str, str] = {}
    unplaced: list[str] = []
    for field, message in errors.items():
        parts = field.split(".")
        if parts[0] in rows and len(parts) > 1:
            shown, name, row_parts = rows[parts[0]]
            if parts[1].isdigit() and int(parts[1]) < len(shown) and len(parts) > 2 and parts[2] in row_parts:
                named[".".join([name, str(shown[int(parts[1])]), parts[2]])] = message
                continue
            field = parts[0]  # the row as a whole (an offence or measure that is not an object, say)
        if field in FIELDS:
            named[field] = f"{named[field]}; {message}" if field in named else message
        else:
            unplaced.append(message)
    if unplaced:
        named[""] = "; ".join(unplaced)
    return named


def form_page(request: Request, who: Authority, form: FormData | None = None, status: int = 200,
              errors: dict[str, str] | None = None) -> Response:
    return render(request, "request_new.html", status=status, rows=offence_rows(form),
                  measure_rows=measure_rows(form), values=dict(form) if form else {}, errors=errors or {},
                  partners=partners(request, who, "assistance"), kinds=MEASURE_KINDS, today=utc_today())


@router.get("/assistance-requests/new")
async def new_request(request: Request) -> Response:
    who = await signed_in(request)
    return form_page(request, who)


@router.post("/assistance-requests/new")
async def file_request(request: Request) -> Response:
    who = await signed_in(request)
    form = await posted(request)
    if str(form.get("action") or "file") != "file":  # a row added or removed: the same form again
        return form_page(request, who, form)
    try:
        view = await assistance.file_request(through_api(request, request_body(form, who)), Response(), who)
    except ApiError as error:
        if error.status == 404:
            raise
        return form_page(request, who, form, status=error.status, errors=by_row_name(problems(error), form))
    return redirect(request, f"/assistance-requests/{quote(view.reference)}")
