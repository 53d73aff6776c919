"""The pages of the web application and the forms they post.

Every page is rendered on the server and every form posts, then redirects (303) to the page that
shows its effect; nothing needs JavaScript. A page reads and acts through the API's own route
functions, called in-process with the signed-in authority (``through_api``): never HTTP to
itself, and never a rule of its own about who may do what, so the web app can never allow what
the API refuses. An ``ApiError`` of the API becomes what a person can act on: a 422's problems
beside their fields with what was typed kept, a 409 as a message saying what happened, a 503 as
"try again in a moment"."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

import structlog
from fastapi import APIRouter, Request, Response
from fastapi.responses import HTMLResponse, RedirectResponse
from fastapi.templating import Jinja2Templates
from pydantic import TypeAdapter, ValidationError
from starlette.datastructures import FormData
from temporalio.client import WorkflowUpdateFailedError
from temporalio.service import RPCError, RPCStatusCode

from api import assistance, common, documents, transfers
from api.body import utc_today
from api.engine import act_refused, within
from api.errors import ApiError
from api.found import REFERENCE
from api.limits import TokenBucket
from api.listing import Inbox, Whose, assignment_index
from domain.assistance import MeasureId
from domain.case import Actor, Assignment
from domain.documents import DOCUMENT_TYPES
from domain.reference import Authority
from stores.users import authenticate
from treatyflow.cases import case_handle, measure_handle
from web.i18n import LANGUAGES, Language, negotiate
from web.labels import LABELS, TRANSFER_STAGES, N_
from web.messages import in_language
from web.session import CSRF_FIELD, Session, csrf_valid, keep, read_session
from workflows.case import Procedure
from workflows.kinds import ASSISTANCE, KINDS, TRANSFER

log = structlog.get_logger("treatyflow.web")

router = APIRouter(include_in_schema=False)
templates = Jinja2Templates(directory=Path(__file__).parent / "templates")
CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; form-action 'self'; "
       "frame-ancestors 'none'; base-uri 'none'; object-src 'none'")


class SignInRequired(Exception):
    """The page needs a signed-in authority: to the sign-in page, and back afterwards."""

    def __init__(self, next_path: str) -> None:
        self.next_path = next_path


# ---- rendering ------------------------------------------------------------------------------------

def language_of(request: Request, session: Session) -> Language:
    return Language(session.lang or negotiate(request.headers.get("accept-language", "")))


def render(request: Request, template: str, status: int = 200, **context: Any) -> HTMLResponse:
    response = templates.TemplateResponse(request, template, page_context(request, **context), status_code=status)
    return secured(request, response)


def page_context(request: Request, **context: Any) -> dict[str, Any]:
    """What every page's template is given besides ``context`` (a page rendered at once, and one
    streamed as it is rendered: web/importing.py)."""
    session = read_session(request)
    lang = language_of(request, session)

    def label(code: str | None) -> str:
        if not code:
            return "—"
        return lang.gettext(LABELS[code]) if code in LABELS else code.replace("_", " ")

    authority = request.app.state.reference.authority(session.authority) if session.authority else None
    if context.get("errors"):  # the API's words, in the page's language where a template knows them
        context["errors"] = {field: in_language(message, lang) for field, message in context["errors"].items()}
    return {"translated": lambda message: in_language(message, lang),
            "session": session, "who": authority, "lang": lang, "_": lang.gettext, "ngettext": lang.ngettext,
            "label": label, "csrf": session.csrf,
            "csrf_field": CSRF_FIELD, "languages": LANGUAGES, "dev_mode": request.app.state.settings.dev_mode,
            **context}


def secured(request: Request, response: Response) -> Response:
    response.headers["Content-Security-Policy"] = CSP
    response.headers["Cache-Control"] = "no-store"
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Referrer-Policy"] = "same-origin"
    return keep(request, response)


def redirect(request: Request, url: str, session: Session | None = None) -> Response:
    return keep(request, RedirectResponse(url, status_code=303), session)


def local(path: str | None, default: str = "/inbox") -> str:
    """A path of this site to go back to (never another site's: no open redirect)."""
    if not path or not path.startswith("/") or path.startswith("//") or "\\" in path or urlsplit(path).netloc:
        return default
    return path


# ---- who is signed in, and forms -----------------------------------------------------------------

async def signed_in(request: Request) -> Authority:
    """The authority the session acts for; a person's session holds only while their account is
    enabled and still of that authority (a disabled account is signed out at its next request)."""
    session = read_session(request)
    authority = request.app.state.reference.authority(session.authority) if session.authority else None
    if authority is not None and session.user is not None:
        user = await request.app.state.users.get(session.user)
        if user is None or user.disabled or user.authority != authority.id:
            authority = None
    if authority is None:
        raise SignInRequired(request.url.path + (f"?{request.url.query}" if request.url.query else ""))
    request.state.authority = authority
    request.state.user = session.user  # recorded beside the authority in the audit trail
    request.app.state.limiter.check(authority.id)  # the API's own limit, per authority
    structlog.contextvars.bind_contextvars(authority=authority.id)
    return authority


def require_csrf(request: Request, token: Any) -> None:
    """403, and nothing done, unless ``token`` is the session's CSRF token."""
    if not csrf_valid(read_session(request), token):
        raise ApiError(403, "csrf", "This form has expired or did not come from this site. Open the page again "
                                    "and send the form from there.")


async def posted(request: Request) -> FormData:
    """The form, once its CSRF token is the session's; else 403 and nothing done."""
    form = await request.form()
    require_csrf(request, form.get(CSRF_FIELD))
    return form


def through_api(request: Request, body: dict[str, Any] | None = None) -> Request:
    """The request as the API's route functions read it: the same app and caller, the body as
    JSON (the web's form, turned into the API's body)."""
    raw = json.dumps(body or {}).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(raw)).encode())]
    scope = {**request.scope, "method": "POST" if body is not None else "GET", "headers": headers,
             "query_string": b""}

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": raw, "more_body": False}

    return Request(scope, receive)


def problems(error: ApiError) -> dict[str, str]:
    """A 422's messages by field (each begins with its field); other errors under ``""``."""
    if error.status != 422 or not error.fields:
        return {"": error.message}
    parts = error.message.split("; ")
    return {field: part for field, part in zip(error.fields, parts)} if len(parts) == len(error.fields) \
        else {"": error.message}


# ---- signing in ---------------------------------------------------------------------------------

@router.get("/")
async def home(request: Request) -> Response:
    return redirect(request, "/inbox" if read_session(request).signed_in else "/sign-in")


@router.get("/sign-in")
async def sign_in_page(request: Request, next: str | None = None) -> Response:
    return render(request, "sign_in.html", next=local(next), demo=demo_authorities(request))


def demo_authorities(request: Request) -> list[Authority]:
    if not request.app.state.settings.dev_mode:
        return []
    return sorted(request.app.state.reference.authorities, key=lambda a: (a.state, a.role, a.id))


class SignInLimits:
    """Failed sign-ins allowed per account and per address (token buckets, refilled over
    ``seconds``): guessing a password or a key costs its guesser time, whoever it targets and
    wherever it comes from, while people who sign in rightly are never held up (an office behind
    one address included)."""

    KEPT = 10_000  # buckets kept per kind; beyond, those refilled (nothing held against them) go

    def __init__(self, per_account: int = 5, per_address: int = 20, seconds: float = 300.0) -> None:
        self.accounts: dict[str, TokenBucket] = {}
        self.addresses: dict[str, TokenBucket] = {}
        self.per_account, self.per_address, self.seconds = per_account, per_address, seconds

    def buckets(self, account: str, address: str) -> list[TokenBucket]:
        def bucket(buckets: dict[str, TokenBucket], key: str, size: int) -> TokenBucket:
            if len(buckets) > self.KEPT:
                for name in [k for k, b in buckets.items() if b.now() >= b.capacity]:
                    del buckets[name]
            return buckets.setdefault(key, TokenBucket(size / self.seconds, size, tokens=size))
        return [bucket(self.addresses, address, self.per_address),
                *([bucket(self.accounts, account, self.per_account)] if account else [])]

    def blocked(self, account: str, address: str) -> bool:
        return any(b.now() < 1 for b in self.buckets(account, address))

    def failed(self, account: str, address: str) -> None:
        for b in self.buckets(account, address):
            b.take()


@router.post("/sign-in")
async def sign_in(request: Request) -> Response:
    """With a user name and password (a person of an authority), or in any mode with an
    authority's API key (no person named)."""
    form = await posted(request)
    session = read_session(request)
    lang = language_of(request, session)
    next_path = local(str(form.get("next") or ""))
    username, key = text(form, "username").lower(), str(form.get("api_key") or "").strip()
    address = request.client.host if request.client else ""

    def refused(message: str, status: int = 401) -> Response:
        return render(request, "sign_in.html", status=status, next=next_path, demo=demo_authorities(request),
                      failed=message, username=username)

    limits = request.app.state.sign_in_limits
    if limits.blocked(username, address):
        log.warning("sign-in limited", by="password" if username else "api_key")
        return refused(lang.gettext("Too many attempts: wait a few minutes, then try again."), 429)
    if username:
        user = await authenticate(request.app.state.users, username, str(form.get("password") or ""))
        if user is None:
            limits.failed(username, address)
            log.info("sign-in refused", by="password")
            return refused(lang.gettext("The user name or the password is wrong, or the account is disabled."))
        log.info("signed in", authority=user.authority, by="password")
        return redirect(request, next_path, session.signed_in_as(user.authority, user.username))
    authority = request.app.state.keys.authority_for(key) if key else None
    if authority is None:
        limits.failed("", address)
        return refused(lang.gettext("That key is not the key of any authority."))
    log.info("signed in", authority=authority.id, by="api_key")
    return redirect(request, next_path, session.signed_in_as(authority.id, None))


@router.post("/sign-out")
async def sign_out(request: Request) -> Response:
    await posted(request)
    return redirect(request, "/sign-in", read_session(request).signed_out())


@router.post("/language")
async def choose_language(request: Request) -> Response:
    form = await posted(request)
    lang = str(form.get("lang") or "")
    session = read_session(request)
    chosen = Session(csrf=session.csrf, authority=session.authority, user=session.user,
                     lang=lang if lang in LANGUAGES else None)
    return redirect(request, local(str(form.get("next") or "")), chosen)


# ---- the inbox and the lists ----------------------------------------------------------------------

MEASURE_ID = TypeAdapter(MeasureId)
SHOWN = ("mine", "unassigned", "all")


@router.get("/inbox")
async def inbox_page(request: Request, kind: str | None = None, show: str = "all",
                     page_token: str | None = None) -> Response:
    """A page of the inbox as the API gives it (50 items, the soonest due first within the page),
    then the next page. "Mine" and "unassigned" are the API's query over the whole inbox (``Whose``),
    never a filter of one page; signed in with a key, nobody is "me", and "mine" is empty."""
    who = await signed_in(request)
    session = read_session(request)
    show = show if show in SHOWN else "all"
    whose = {"mine": Whose("mine", session.user), "unassigned": Whose("unassigned")}.get(show)
    if show == "mine" and session.user is None:
        inbox = Inbox(items=[], next_page_token=None)
    else:
        inbox = await common.read_inbox(through_api(request), who, page_size=50, page_token=page_token or None,
                                        whose=whose)
    items = sorted((i for i in inbox.items if kind in (None, "", i.kind)),
                   key=lambda i: (i.due_on is None, i.due_on or 0))
    user = await request.app.state.users.get(session.user) if session.user else None
    colleagues = [u.username for u in await request.app.state.users.all()
                  if u.authority == who.id and not u.disabled] if user and user.senior else []
    return render(request, "inbox.html", items=items, kind=kind or "", show=show,
                  colleagues=colleagues, today=utc_today(), next_page_token=inbox.next_page_token)


def valid(adapter: TypeAdapter, value: str) -> bool:
    try:
        adapter.validate_python(value)
    except ValidationError:
        return False
    return True


@router.post("/inbox/assign")
async def assign(request: Request) -> Response:
    """Take an item ("I'll handle this"), give it back, or — a senior user — give it to a colleague
    of the same authority. The case records it in its audit trail, with the person who did it."""
    who = await signed_in(request)
    form = await posted(request)
    session = read_session(request)
    lang = language_of(request, session)
    action, reference, measure_id = text(form, "action"), text(form, "reference"), text(form, "measure_id")
    if session.user is None:
        raise ApiError(403, "forbidden", lang.gettext("Items are taken by a person: sign in with your user name."))
    target: str | None = {"take": session.user, "give_back": None}.get(action, text(form, "user"))
    if action == "assign":
        me, colleague = await request.app.state.users.get(session.user), await request.app.state.users.get(target)
        if not (me and me.senior) or colleague is None or colleague.disabled or colleague.authority != who.id:
            raise ApiError(403, "forbidden", lang.gettext("Only a senior user gives items to a colleague of the same "
                                                          "authority."))
    kind = KINDS.get(text(form, "kind"))
    if kind is None or not REFERENCE.match(reference) or (measure_id and not valid(MEASURE_ID, measure_id)):
        raise ApiError(404, "not_found", "no such case")
    client = request.app.state.client
    handle = measure_handle(client, reference, measure_id) if measure_id else case_handle(client, kind, reference)
    # the blind index of who now handles it (the key stays here: the workflow publishes the hash)
    assignment = Assignment(user=target, index=assignment_index(request, who.id, target) if target else None)
    try:
        await within(request.app.state.settings.api_timeout, handle.execute_update(
            Procedure.assign, args=[Actor(authority=who.id, user=session.user), assignment]))
    except WorkflowUpdateFailedError as err:
        raise act_refused(err) from None
    except RPCError as err:
        if err.status == RPCStatusCode.NOT_FOUND:
            raise ApiError(404, "not_found", "no such case") from None
        raise
    return redirect(request, f"/inbox?show={quote(text(form, 'show') or 'all')}")


@router.get("/transfers")
async def transfers_page(request: Request, stage: str | None = None, state: str | None = None,
                         page_token: str | None = None, name: str | None = None) -> Response:
    who = await signed_in(request)
    cases = await transfers.list_transfers(through_api(request), who, stage=stage or None, state=state or None,
                                           page_size=50, page_token=page_token or None,
                                           name=(name or "").strip()[:300] or None)
    lang = language_of(request, read_session(request))
    return render(request, "cases.html", cases=cases, stage=stage or "", state=state or "", path="/transfers",
                  title=lang.gettext("Transfers"), new_link=lang.gettext("Open a transfer"), name=name or "",
                  import_link=lang.gettext("Import a list of applicants"),
                  label_heading=lang.gettext("Sentenced person"),
                  stages=[*TRANSFER_STAGES, "transferred", "refused", "withdrawn", "expired"])


# ---- opening a transfer ---------------------------------------------------------------------------

NUMBERS = ("sentence.years", "sentence.months", "sentence.days", "sentence.pretrial_credit_days",
           "sentence.remission_days")


def rows_of(form: FormData | None, field: str, thing: str) -> list[int]:
    """The rows of ``thing`` (offence, measure) in the form (their numbers in the hidden ``field``),
    after its add or remove button (``add_<thing>``, ``remove_<thing>:<row>``); at least one row."""
    rows = [int(r) for r in form.getlist(field) if str(r).isdigit()] if form else [0]
    action = str(form.get("action") or "") if form else ""
    if action == f"add_{thing}":
        rows.append(max(rows, default=-1) + 1)
    elif action.startswith(f"remove_{thing}:") and len(rows) > 1:
        rows = [r for r in rows if str(r) != action.split(":", 1)[1]]
    return rows or [0]


def offence_rows(form: FormData | None) -> list[int]:
    return rows_of(form, "row", "offence")


def transfer_body(form: FormData, who: Authority) -> dict[str, Any]:
    """The API's body from the form: the fields named by their JSON paths, offences by row."""
    body: dict[str, Any] = {"sentencing_state": text(form, "sentencing_state") or who.state,
                            "administering_state": text(form, "administering_state"),
                            "reference": text(form, "reference"), "initiated_by": text(form, "initiated_by")}
    if text(form, "received_on"):
        body["received_on"] = text(form, "received_on")
    body["person"] = {"full_name": text(form, "person.full_name"),
                      "date_of_birth": text(form, "person.date_of_birth"),
                      "citizenships": [c for c in text(form, "person.citizenships").replace(",", " ").split() if c]}
    body["judgment"] = {"court": text(form, "judgment.court"), "date": text(form, "judgment.date"),
                        "final": "judgment.final" in form,
                        "offences": [{"article": text(form, f"offence.{r}.article"),
                                      **({"iccs": text(form, f"offence.{r}.iccs")} if text(form, f"offence.{r}.iccs")
                                         else {}),
                                      "description": text(form, f"offence.{r}.description")}
                                     for r in offence_rows(form) if f"offence.{r}.article" in form]}
    body["sentence"] = {"start_date": text(form, "sentence.start_date"),
                        "indeterminate": "sentence.indeterminate" in form,
                        **{f.split(".")[1]: number(form, f) for f in NUMBERS}}
    if text(form, "declaration.signed_on"):
        body["declaration"] = {"signed_on": text(form, "declaration.signed_on"),
                               "voluntary": "declaration.voluntary" in form,
                               "informed_of_consequences": "declaration.informed_of_consequences" in form}
    return body


def by_form_name(errors: dict[str, str], form: FormData) -> dict[str, str]:
    """The API's field paths as the form names them (``judgment.offences.1.article`` is the
    second row shown)."""
    rows = [int(r) for r in form.getlist("row")]
    named = {}
    for field, message in errors.items():
        parts = field.split(".")
        if parts[:2] == ["judgment", "offences"] and len(parts) > 2 and parts[2].isdigit() \
                and int(parts[2]) < len(rows):
            field = ".".join(["offence", str(rows[int(parts[2])]), *parts[3:]])
        named[field] = message
    return named


def partners(request: Request, who: Authority, kind: str = "transfer") -> list[str]:
    """The states with a treaty of ``kind`` with the caller's state."""
    ref = request.app.state.reference
    return sorted({p for t in ref.treaties if t.kind == kind and who.state in t.parties
                   for p in t.parties if p != who.state})


@router.get("/transfers/new")
async def new_transfer(request: Request) -> Response:
    who = await signed_in(request)
    return render(request, "transfer_new.html", rows=[0], values={}, errors={}, partners=partners(request, who),
                  today=utc_today())


@router.post("/transfers/new")
async def open_transfer(request: Request) -> Response:
    who = await signed_in(request)
    form = await posted(request)
    if str(form.get("action") or "open") != "open":  # a row added or removed: the same form again
        return render(request, "transfer_new.html", rows=offence_rows(form), values=dict(form), errors={},
                      partners=partners(request, who), today=utc_today())
    try:
        view = await transfers.open_case(through_api(request, transfer_body(form, who)), Response(), who)
    except ApiError as error:
        if error.status == 404:
            raise
        return render(request, "transfer_new.html", status=error.status, rows=offence_rows(form), values=dict(form),
                      errors=by_form_name(problems(error), form), partners=partners(request, who), today=utc_today())
    return redirect(request, f"/transfers/{quote(view.reference)}")


# ---- a transfer case ------------------------------------------------------------------------------

ACT_PATHS = {"record_declaration": "declaration", "legal_review": "legal-review", "decide": "decisions",
             "confirm_handover": "handover"}


async def transfer_page(request: Request, reference: str, status: int = 200, **context: Any) -> Response:
    who = await signed_in(request)
    view = await transfers.read_case(through_api(request), reference, who)
    mine = [p.action for p in view.pending_actions if p.authority == who.id]
    withdrawable = (view.stage not in ("transferred", "refused", "withdrawn", "expired")
                    and who.state == view.sentencing_state)
    ref = request.app.state.reference
    treaty = ref.treaty(view.treaty) if view.treaty else None
    grounds = ["not_national", "state_declined",
               *(treaty.transfer.refusal_grounds.value if treaty and treaty.transfer else [])]
    return render(request, "transfer.html", status=status, view=view, acts=mine, withdrawable=withdrawable,
                  paths=ACT_PATHS, grounds=grounds, timeline=timeline(view), today=utc_today(),
                  uploading=documents.may_upload(who, TRANSFER, view), document_types=DOCUMENT_TYPES["transfer"],
                  case_path=f"/transfers/{quote(reference)}",
                  errors=context.pop("errors", {}), values=context.pop("values", {}),
                  form_of=context.pop("form_of", ""), **context)


def timeline(view: Any) -> list[tuple[str, str]]:
    """The procedure's stages with ``done``, ``current`` or ``to_come`` (a closed case: its end)."""
    passed = {e.detail for e in view.events if e.action == "stage_entered"}
    if view.stage not in TRANSFER_STAGES:
        return [(s, "done") for s in TRANSFER_STAGES if s in passed] + [(view.stage, "current")]
    at = TRANSFER_STAGES.index(view.stage)
    return [(s, "done") for s in TRANSFER_STAGES[:at] if s in passed] + [(view.stage, "current")] + \
        [(s, "to_come") for s in TRANSFER_STAGES[at + 1:] if s != "awaiting_legal_review"]


@router.get("/transfers/{reference}")
async def transfer(request: Request, reference: str) -> Response:
    return await transfer_page(request, reference, flash=flash_of(request, TRANSFER_ACTS))


def text(form: FormData, name: str) -> str:
    return str(form.get(name) or "").strip()


def number(form: FormData, name: str) -> int | str:
    value = text(form, name)
    return int(value) if value.isdigit() else (value or 0)


def declaration_body(form: FormData, who: Authority) -> dict[str, Any]:
    return {"signed_on": text(form, "signed_on"), "voluntary": "voluntary" in form,
            "informed_of_consequences": "informed_of_consequences" in form}


def legal_review_body(form: FormData, who: Authority) -> dict[str, Any]:
    return {"dual_criminality": text(form, "dual_criminality"), "note": text(form, "note")}


def decision_body(form: FormData, who: Authority) -> dict[str, Any]:
    body: dict[str, Any] = {"state": who.state, "decision": text(form, "decision"),
                            "grounds": [str(g) for g in form.getlist("grounds")], "note": text(form, "note")}
    if text(form, "enforcement"):
        body["enforcement"] = text(form, "enforcement")
    if body.get("enforcement") == "converted":
        body["converted_sentence"] = {k: number(form, f"converted_sentence.{k}") for k in ("years", "months", "days")}
    return body


def handover_body(form: FormData, who: Authority) -> dict[str, Any]:
    return {"completed_on": text(form, "completed_on"), "place": text(form, "place"), "note": text(form, "note")}


def withdrawal_body(form: FormData, who: Authority) -> dict[str, Any]:
    return {"withdrawn_on": text(form, "withdrawn_on"), "reason": text(form, "reason")}


# an act of the web app: the API's route, the form → its body, what the page says once it is done
Act = tuple[Callable[..., Awaitable[Any]], Callable[[FormData, Authority], dict[str, Any]], str]
TRANSFER_ACTS: dict[str, Act] = {
    "declaration": (transfers.record_declaration, declaration_body, N_("Declaration recorded.")),
    "legal-review": (transfers.record_legal_review, legal_review_body, N_("Legal review recorded.")),
    "decisions": (transfers.record_decision, decision_body, N_("Decision recorded.")),
    "handover": (transfers.confirm_handover, handover_body, N_("Handover confirmed.")),
    "withdrawal": (transfers.withdraw, withdrawal_body, N_("Case withdrawn.")),
}


DOCUMENT_ADDED = N_("Document added.")  # after web/case_file.py's upload (?done=documents)


def flash_of(request: Request, acts: dict[str, Act]) -> str | None:
    """What the page says once an act (``?done=<act>``) or an upload took effect."""
    done = request.query_params.get("done", "")
    return DOCUMENT_ADDED if done == "documents" else acts[done][2] if done in acts else None


async def take(request: Request, acts: dict[str, Act], act: str, case_path: str,
               page: Callable[..., Awaitable[Response]], *route_args: str, form_of: str = "", **again: Any) -> Response:
    """The act ``act`` of ``acts`` from its posted form, through the API's route with
    ``route_args`` (reference, measure id): then the case's page with what was done, or the same
    page again with the API's answer beside the form (its fields, what was typed kept)."""
    who = await signed_in(request)
    form = await posted(request)
    if act not in acts:
        raise ApiError(404, "not_found", "no such act")
    route, body_of, _done = acts[act]
    try:
        await route(through_api(request, body_of(form, who)), *route_args, who)
    except ApiError as error:
        if error.status in (404, 403):
            raise
        return await page(request, route_args[0], status=error.status, errors=problems(error), values=dict(form),
                          form_of=form_of or act, **again)
    return redirect(request, f"{case_path}/{quote(route_args[0])}?done={quote(act)}")


@router.post("/transfers/{reference}/{act}")
async def transfer_act(request: Request, reference: str, act: str) -> Response:
    return await take(request, TRANSFER_ACTS, act, "/transfers", transfer_page, reference)


API_PATHS = ("/v1/", "/codec/", "/metrics", "/docs", "/redoc", "/openapi", "/healthz", "/readyz")


def install_errors(app: Any) -> None:
    """Web pages answer errors as pages (the API's answer, its status and message, shown to a
    person); the API's routes keep their JSON answers."""
    for exc_type, handler in list(app.exception_handlers.items()):
        app.add_exception_handler(exc_type, as_page(handler))

    async def on_sign_in_required(request: Request, exc: SignInRequired) -> Response:
        return redirect(request, f"/sign-in?next={quote(exc.next_path)}")

    app.add_exception_handler(SignInRequired, on_sign_in_required)


def as_page(handler: Callable[..., Any]) -> Callable[..., Awaitable[Response]]:
    async def handle(request: Request, exc: Exception) -> Response:
        response = await handler(request, exc)
        if request.url.path.startswith(API_PATHS):
            return response
        error = json.loads(response.body).get("error", {})
        return render(request, "error.html", status=response.status_code,
                      error=ApiError(response.status_code, error.get("code", ""), error.get("message", "")))
    return handle


# ---- requests for assistance ----------------------------------------------------------------------

ASSISTANCE_STAGES = ("under_review", "awaiting_information", "postponed", "executing", "completed",
                     "partially_completed", "unsuccessful", "refused", "withdrawn", "expired")


@router.get("/assistance-requests")
async def requests_page(request: Request, stage: str | None = None, state: str | None = None,
                        page_token: str | None = None) -> Response:
    who = await signed_in(request)
    cases = await assistance.list_requests(through_api(request), who, stage=stage or None, state=state or None,
                                           page_size=50, page_token=page_token or None)
    lang = language_of(request, read_session(request))
    return render(request, "cases.html", cases=cases, stage=stage or "", state=state or "",
                  path="/assistance-requests", title=lang.gettext("Requests for assistance"),
                  new_link=lang.gettext("File a request for assistance"),
                  name=None, label_heading=lang.gettext("Issuing authority and offence"),
                  stages=ASSISTANCE_STAGES)


async def request_page(request: Request, reference: str, status: int = 200, **context: Any) -> Response:
    who = await signed_in(request)
    view = await assistance.read_request(through_api(request), reference, who)
    mine = {(p.action, p.measure_id) for p in view.pending_actions if p.authority == who.id}
    ref = request.app.state.reference
    treaty = ref.treaty(view.treaty) if view.treaty else None
    return render(request, "request.html", status=status, view=view, acts=mine,
                  withdrawable=(view.stage not in ASSISTANCE_STAGES[4:] and who.state == view.requesting_state
                                and who.role == "central_authority"),
                  grounds=treaty.assistance.refusal_grounds.value if treaty and treaty.assistance else [],
                  uploading=documents.may_upload(who, ASSISTANCE, view),
                  document_types=DOCUMENT_TYPES["assistance"], case_path=f"/assistance-requests/{quote(reference)}",
                  today=utc_today(), errors=context.pop("errors", {}), values=context.pop("values", {}),
                  form_of=context.pop("form_of", ""), evidence_rows=context.pop("evidence_rows", [0]), **context)


@router.get("/assistance-requests/{reference}")
async def request_case(request: Request, reference: str) -> Response:
    return await request_page(request, reference, flash=flash_of(request, REQUEST_ACTS | MEASURE_ACTS))


def review_body(form: FormData, who: Authority) -> dict[str, Any]:
    body: dict[str, Any] = {"decision": text(form, "decision"), "grounds": [str(g) for g in form.getlist("grounds")],
                            "questions": text(form, "questions"), "note": text(form, "note")}
    for optional in ("postpone_until", "dual_criminality"):
        if text(form, optional):
            body[optional] = text(form, optional)
    return body


def information_body(form: FormData, who: Authority) -> dict[str, Any]:
    return {"answers": text(form, "answers")}


def request_withdrawal_body(form: FormData, who: Authority) -> dict[str, Any]:
    return {"reason": text(form, "reason")}


def authorisation_body(form: FormData, who: Authority) -> dict[str, Any]:
    return {"granted": text(form, "granted") == "true", "note": text(form, "note")}


def evidence_rows(form: FormData | None) -> list[int]:
    return rows_of(form, "row", "evidence")


def result_body(form: FormData, who: Authority) -> dict[str, Any]:
    fields = ("item_id", "description", "sha256", "collected_on")
    evidence = [{f: text(form, f"evidence.{r}.{f}") for f in fields}
                for r in evidence_rows(form) if text(form, f"evidence.{r}.item_id")]  # a row left empty: none
    return {"outcome": text(form, "outcome"), "evidence": evidence, "note": text(form, "note")}


REQUEST_ACTS: dict[str, Act] = {
    "review": (assistance.review, review_body, N_("Review recorded.")),
    "information": (assistance.answer_information, information_body, N_("Answers sent.")),
    "withdrawal": (assistance.withdraw, request_withdrawal_body, N_("Request withdrawn.")),
}
MEASURE_ACTS: dict[str, Act] = {
    "authorisation": (assistance.authorise, authorisation_body, N_("Authorisation recorded.")),
    "result": (assistance.report_result, result_body, N_("Result reported.")),
}


@router.post("/assistance-requests/{reference}/{act}")
async def request_act(request: Request, reference: str, act: str) -> Response:
    return await take(request, REQUEST_ACTS, act, "/assistance-requests", request_page, reference)


@router.post("/assistance-requests/{reference}/measures/{measure_id}/{act}")
async def measure_act(request: Request, reference: str, measure_id: str, act: str) -> Response:
    form_of = f"{measure_id}/{act}"
    form = await request.form()
    if act == "result" and str(form.get("action") or "report") != "report":  # an evidence row added or removed
        await posted(request)
        return await request_page(request, reference, values=dict(form), form_of=form_of,
                                  evidence_rows=evidence_rows(form))
    return await take(request, MEASURE_ACTS, act, "/assistance-requests", request_page, reference, measure_id,
                      form_of=form_of, evidence_rows=evidence_rows(form))


# ---- the treaty registry --------------------------------------------------------------------------

@router.get("/treaties")
async def treaties_page(request: Request) -> Response:
    await signed_in(request)
    ref = request.app.state.reference
    return render(request, "treaties.html", treaties=sorted(ref.treaties, key=lambda t: (t.kind, t.id)),
                  counts=ref.registry_counts())


@router.get("/treaties/{treaty_id}")
async def treaty_page(request: Request, treaty_id: str) -> Response:
    await signed_in(request)
    treaty = request.app.state.reference.treaty(treaty_id)
    if treaty is None:
        raise ApiError(404, "not_found", "no such treaty")
    rules = treaty.transfer or treaty.assistance
    return render(request, "treaty.html", treaty=treaty,
                  rules=[(name, rule_value(getattr(rules, name).value), getattr(rules, name))
                         for name in type(rules).model_fields] if rules else [])


def rule_value(value: Any) -> str:
    if hasattr(value, "model_dump"):
        return ", ".join(f"{k}: {v}" for k, v in value.model_dump().items())
    if isinstance(value, list):
        return ", ".join(str(v) for v in value) or "—"
    return str(value)
