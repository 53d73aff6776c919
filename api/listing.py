"""Lists, the inbox and the statistics, from the engine's visibility store (search attributes):
never by reading cases one by one."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from functools import cached_property
from typing import Any, Literal

from fastapi import Request
from pydantic import BaseModel
from temporalio.api.workflow.v1 import WorkflowExecutionInfo
from temporalio.api.workflowservice.v1 import ListWorkflowExecutionsRequest
from temporalio.client import WorkflowExecution
from temporalio.common import TypedSearchAttributes
from temporalio.converter import DataConverter, decode_typed_search_attributes

from api.engine import within
from api.errors import invalid
from domain.case import Action, due_day
from domain.names import assignee_index, name_index
from domain.reference import Authority
from workflows import search_attributes as sa
from workflows.kinds import KINDS, MEASURE_ACTIONS, MEASURE_KIND


class CaseSummary(BaseModel):
    kind: Literal["transfer", "assistance"]
    reference: str
    label: str | None = None  # the person's name (transfers), the issuing authority and offence (assistance)
    stage: str | None
    outcome: str | None
    treaty: str | None
    states: list[str]
    opened_at: datetime | None
    action_due_at: datetime | None


class CaseList(BaseModel):
    items: list[CaseSummary]
    next_page_token: str | None


class InboxItem(BaseModel):
    kind: Literal["transfer", "assistance"]
    reference: str
    label: str | None = None  # as in the lists; None for a measure's own item
    assigned_to: str | None = None  # the user of the caller's authority who handles it (the web app's "mine")
    stage: str
    action: Action
    measure_id: str | None = None
    due_on: date | None
    overdue: bool


class Inbox(BaseModel):
    items: list[InboxItem]
    next_page_token: str | None


@dataclass(frozen=True)
class Whose:
    """The web application's filter of the inbox, applied by the visibility query to the whole inbox
    (not by the page to one page of it): ``mine`` (the items ``user`` of the caller's authority has
    taken) or ``unassigned`` (those nobody of it has). Not a query parameter of the HTTP API."""

    show: Literal["mine", "unassigned"]
    user: str | None = None


ASSIGNMENT_INDEX = "assignment index"  # the purpose of the key of the assignments' blind index


def quoted(value: str) -> str:
    """Values in visibility queries come from validated codes, quoted all the same."""
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def reference_of(execution: WorkflowExecution | Listed) -> str:
    return execution.id.split(":", 1)[1]


def token_mac(request: Request, raw: bytes, query: str) -> bytes:
    """Page tokens are signed (with a key derived from the current codec key, the same on every API
    instance) and bound to their query, so a forged or foreign token is a 422, never a call."""
    key = request.app.state.codec.keys.derived("page token")
    return hmac.new(key, raw + b"\0" + query.encode(), hashlib.sha256).digest()[:16]


def signed_token(request: Request, raw: bytes, query: str) -> str:
    return base64.urlsafe_b64encode(raw + token_mac(request, raw, query)).decode()


def token_bytes(request: Request, query: str, page_token: str) -> bytes:
    """What a page token carries, once its signature for ``query`` is checked (422 naming
    ``page_token`` otherwise)."""
    try:
        signed = base64.urlsafe_b64decode(page_token.encode())
    except (binascii.Error, ValueError):
        signed = b""
    token, mac = signed[:-16], signed[-16:]
    if len(signed) <= 16 or not hmac.compare_digest(mac, token_mac(request, token, query)):
        raise invalid([("page_token", "not a page token from a previous answer to this query")])
    return token


async def page(request: Request, query: str, page_size: int, page_token: str | None) -> tuple[list, str | None]:
    """One page of executions in the store's own order (the inbox), newest opened first within the
    page. SQL visibility (the dev server's SQLite, PostgreSQL) accepts no ORDER BY; its own order
    is open cases by start time, newest first, then closed ones by close time, newest first: for
    the inbox, which holds open cases only, newest opened first across pages."""
    app = request.app.state
    token = token_bytes(request, query, page_token) if page_token else None
    listing = app.client.list_workflows(query, page_size=page_size, next_page_token=token)
    await within(app.settings.api_timeout, listing.fetch_next_page())
    nxt = listing.next_page_token
    executions = sorted(listing.current_page or [], key=lambda ex: ex.start_time, reverse=True)
    return executions, signed_token(request, nxt, query) if nxt else None


# ---- the lists: newest opened first across pages -----------------------------------------------
#
# SQL visibility takes no ORDER BY, so the lists page by a keyset over the engine's StartTime (the
# moment the case was opened, to the microsecond, which SQLite and PostgreSQL compare exactly;
# only ``>=``, ``<`` and ``<=`` are used): the token carries the (start time, workflow id) of the
# last item given. A page is the newest cases of a window reaching back in time from there, which
# holds at least a page and one more and at most a page and a half: listed whole, then sorted by
# (start time, workflow id), newest first. The window is first the one the token (or, for a first
# page, the last first page of the same query) says should hold a page, listed at once; when it
# holds too few or too many it is searched for by counting (CountWorkflowExecutions), then listed
# (too few: only what lies beyond it). Only the items a page gives are decoded. Nothing else is
# read: never a case one by one, never the rest of the list.

EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
OLDEST = datetime(2000, 1, 1, tzinfo=timezone.utc)  # before any case: a window reaching it holds them all
FIRST_WIDTH = 86_400_000_000  # a day (µs): how far back the first page of a query never listed looks first
MAX_PROBES = 20  # counts for a page at most: none while hints hold, a dozen for a burst after a long quiet
HINTS = 512  # queries whose first page's window is remembered (per API process)
REST = 0  # a token's width when what is left is no more than a window holds: the next page lists it all


def micros(moment: datetime) -> int:
    return (moment - EPOCH) // timedelta(microseconds=1)


def rfc3339(us: int) -> str:
    return (EPOCH + timedelta(microseconds=us)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class Listed:
    """A case as a list's window gives it: its workflow id and start time read at once (the order
    needs them), its search attributes and memo decoded only for the items a page gives (decoding
    them is most of what a row costs the API)."""

    def __init__(self, info: WorkflowExecutionInfo, converter: DataConverter) -> None:
        self.info, self.converter = info, converter
        self.id = info.execution.workflow_id
        self.start_time = info.start_time.ToDatetime().replace(tzinfo=timezone.utc)

    @cached_property
    def typed_search_attributes(self) -> TypedSearchAttributes:
        return decode_typed_search_attributes(self.info.search_attributes)

    async def memo_value(self, key: str, default: Any = None, *, type_hint: type | None = None) -> Any:
        payload = self.info.memo.fields.get(key)
        if payload is None:
            return default
        return (await self.converter.decode([payload], [type_hint] if type_hint else None))[0]


@dataclass(frozen=True)
class After:
    """Where the next page of a list begins: after the case opened at ``opened`` (µs since the
    epoch: the engine's StartTime) whose workflow id is ``workflow_id``, which ends the page just
    given. ``width``: how far back (µs) a window reaching a page further is expected to reach (what
    was left of the last window, and as much again as it lacks at the density that window showed;
    the search for the next window starts there), or ``REST`` when what is left is no more than a
    window holds."""

    opened: int
    workflow_id: str
    width: int

    def raw(self) -> bytes:
        return f"1 {self.opened} {self.width} {self.workflow_id}".encode()

    @classmethod
    def parse(cls, raw: bytes) -> After:
        """The position of a token this API signed; ValueError for what it never wrote (such as a
        token of the store's own paging, which the lists gave before they kept this order)."""
        version, opened, width, workflow_id = raw.decode().split(" ", 3)
        if version != "1":
            raise ValueError("not a list position")
        return cls(opened=int(opened), workflow_id=workflow_id, width=max(REST, int(width)))

    def comes_before(self, ex: Listed) -> bool:
        """Whether this position comes before ``ex``, newest first: ``ex`` was opened earlier, or
        in the same microsecond with a smaller workflow id."""
        return (micros(ex.start_time), ex.id) < (self.opened, self.workflow_id)


def aim(need: int) -> int:
    """How many cases a window is meant to hold when it must hold ``need``: a little more, so that
    one guessed from the density of the last holds enough most often, yet not many to read more."""
    return need + need // 5 + 2


async def window(count: Callable[[int | None], Awaitable[int]], need: int, most: int, width: int,
                 widest: int, seen: int | None = None) -> tuple[int | None, int]:
    """How far back (µs) a window must reach to hold at least ``need`` cases and at most ``most``:
    ``count(width)`` counts those of a window, ``count(None)`` everything left; the search starts
    at ``width`` (``seen``: what a window that wide is already known to hold); ``widest`` reaches
    back before any case. Returns the width (None: what is left is no more than ``most``, and the
    window is the rest of the list) and what it counted.

    Widening goes by the density a window showed (32-fold from an empty one), narrowing likewise
    (32-fold more while the count stays put); then, between the narrowest window holding too many
    and the widest holding too few, by regula falsi on the count with the Illinois step (the end
    that stays put twice weighs half, so a run of start times bunched at one end still converges),
    and by halving when the two are far apart or nothing is known of where the cases between them
    begin. Out of probes (a burst of cases after a quiet so long that it is found to a microsecond
    in a million), it takes the widest window holding too few: a short page, or an empty one, past
    which the next page goes on."""
    target = aim(need)
    low, low_excess = 0, -target  # the widest window holding too few (count - target: negative)
    high, high_excess = None, 0  # the narrowest holding too many (positive)
    low_found = high_found = 0
    side = 0  # which end moved last (-1 low, 1 high) and how often in a row (its magnitude)
    checked = False  # whether there is more than ``most`` left at all
    stuck = 0  # windows narrowed in a row that held as many as the one before
    width = max(1, min(width, widest))
    for _ in range(MAX_PROBES):
        found = seen if seen is not None else await count(width)
        seen = None
        if need <= found <= most:
            return width, found
        if found < need:
            # the end of the list? asked once the first window was empty or widening found too few again
            if high is None and not checked and (found == 0 or low > 0):
                checked = True
                left = await count(None)
                if left <= most:
                    return None, left
            if width >= widest:  # reaching before any case, still too few: the store changed meanwhile
                return None, found
            low, low_excess, low_found = width, found - target, found
            side = side - 1 if side < 0 else -1
            if side <= -2:
                high_excess /= 2
        else:
            stuck = stuck + 1 if found == high_found else 0  # as many as the wider window: bunched nearer
            high, high_excess, high_found = width, found - target, found
            side = side + 1 if side > 0 else 1
            if side >= 2:
                low_excess /= 2
        if high is None:  # widening
            factor = 32.0 if low_found == 0 else min(1000.0, max(1.5, target / low_found))
            width = min(widest, int(low * factor) + 1)
        elif high - low <= 1:  # as narrow as the engine's clock: cases opened in the same microsecond
            return high, high_found
        elif low == 0:  # narrowing by the density seen, 32-fold more each time the count stays put
            width = max(1, int(high * target / high_found / 32 ** min(stuck, 4)))
        elif high > 8 * low:
            width = int((low * high) ** 0.5)
        elif low_found == 0:  # where the cases begin between the two is unknown: halving
            width = (low + high) // 2
        else:
            width = int(low - low_excess * (high - low) / (high_excess - low_excess))
        if high is not None:
            width = min(high - 1, max(low + 1, width))
    if low > 0 or high is None:  # a short page, or none: either way the next page begins past it
        return low, low_found
    return high, high_found  # only ever too many: cases opened in the same microsecond


def first_page_hints(request: Request) -> OrderedDict[str, int]:
    """Per query, how far back (µs since the epoch) the window of its last first page reached
    (``OLDEST`` when it was the whole list), where the next one is looked for first (a first
    page's window ends now, so a width would go stale as time passes; the moment stays right until
    cases are opened): in memory, for the ``HINTS`` queries listed last."""
    state = request.app.state
    hints = getattr(state, "list_hints", None)
    if hints is None:
        hints = state.list_hints = OrderedDict()
    return hints


def position(request: Request, query: str, page_token: str) -> After:
    try:
        return After.parse(token_bytes(request, query, page_token))
    except (UnicodeDecodeError, ValueError):
        raise invalid([("page_token", "not a page token from a previous answer to this query")]) from None


async def newest_first(request: Request, query: str, page_size: int,
                       page_token: str | None) -> tuple[list[Listed], str | None]:
    """One page of the executions ``query`` finds, newest opened first across pages (the keyset
    above), and the token of the next page (None once nothing is left)."""
    app = request.app.state
    after = position(request, query, page_token) if page_token else None
    hints = first_page_hints(request)
    start = after.opened if after else micros(datetime.now(timezone.utc))  # the window reaches back from here
    need = page_size + 1  # a page and one more: then there is a next page
    most = need + need // 2 + 8  # what a window may hold: a page and a half
    keyset = f" AND StartTime < {quoted(rfc3339(after.opened))}" if after else ""

    def reaching(width: int | None) -> str:
        return f" AND StartTime >= {quoted(rfc3339(start - width))}" if width is not None else ""

    async def count(width: int | None) -> int:
        return (await app.client.count_workflows(f"({query}){keyset}{reaching(width)}")).count

    async def listed(width: int | None, limit: int | None = None,
                     beyond: int | None = None) -> tuple[list[Listed], bool]:
        """The cases of a window after the position, and whether they are all of them (``limit``
        at most); with the keyset's ties (cases opened in the microsecond of the last one given),
        which the workflow id then orders here as it does in the token. ``beyond``: only those
        older than a narrower window reaches (which was listed already)."""
        within_window = f" AND StartTime < {quoted(rfc3339(start - beyond))}" if beyond is not None else \
            f" AND StartTime <= {quoted(rfc3339(after.opened))}" if after else ""
        client, raw, token = app.client, [], b""
        while True:
            answer = await client.workflow_service.list_workflow_executions(ListWorkflowExecutionsRequest(
                namespace=client.namespace, query=f"({query}){within_window}{reaching(width)}",
                next_page_token=token, page_size=limit - len(raw) if limit else min(1000, most + 16)), retry=True)
            raw += [Listed(info, client.data_converter) for info in answer.executions]
            token = answer.next_page_token
            if not token or not answer.executions or (limit and len(raw) >= limit):
                break
        rows = [ex for ex in raw if after is None or after.comes_before(ex)]
        return rows, not limit or len(raw) < limit or not token

    async def search() -> tuple[int | None, int, list[Listed]]:
        """The window of the page (its width, None for the rest of the list), what it holds by
        count, and its cases."""
        if after and after.width == REST:
            rows, _ = await listed(None)
            return None, len(rows), rows
        widest = start - micros(OLDEST)
        hint = after.width if after else (start - hints[query] if query in hints else None)
        seen, known = None, []
        if hint is not None:  # the window the hint gives, listed at once: most often it holds a page
            hint = min(hint, widest)
            rows, complete = await listed(hint, most + 1)
            seen = len(rows) if complete else most + 1
            if need <= seen <= most or (complete and hint == widest):
                return (None if hint == widest else hint), seen, rows
            if complete:  # too few: the wider window found next begins with them
                known = rows
        width, found = await window(count, need, most, hint or FIRST_WIDTH, widest, seen)
        if known and width == hint:
            return width, found, known
        if known and (width is None or width > hint):
            rows, _ = await listed(width, beyond=hint)
            return width, found, known + rows
        rows, _ = await listed(width)
        return width, found, rows

    async def read() -> tuple[list[Listed], str | None]:
        width, found, rows = await search()
        rows.sort(key=lambda ex: (ex.start_time, ex.id), reverse=True)
        given, rest = rows[:page_size], rows[page_size:]
        if width is None:
            if not rest:
                return given, None  # the rest of the list, all given
            following = REST
        elif given:  # what is left of this window and, at the density it showed, as much again as a page lacks
            following = micros(given[-1].start_time) - (start - width) \
                + max(0, aim(need) - len(rest)) * width // max(1, found)
        else:
            following = width
        if after is None:  # where the next first page's search starts
            hints[query] = micros(OLDEST) if width is None else start - width
            hints.move_to_end(query)
            while len(hints) > HINTS:
                hints.popitem(last=False)
        if width is not None:
            following = max(REST + 1, following)
        last = After(opened=micros(given[-1].start_time), workflow_id=given[-1].id, width=following) if given \
            else After(opened=start - width, workflow_id="", width=following)  # the store changed meanwhile
        return given, signed_token(request, last.raw(), query)

    return await within(app.settings.api_timeout, read())


async def label_of(execution: WorkflowExecution | Listed) -> str | None:
    """What a row shows beside the reference: from the case's memo, which the engine keeps
    encrypted and returns with the visibility results (cases opened before 0.3.0 have none)."""
    return await execution.memo_value("label", None, type_hint=str)


def name_search(request: Request, name: str) -> str:
    """The condition finding a person's name: its blind index under every configured codec key
    (a case opened before a key rotation is found too)."""
    keys = request.app.state.codec.keys
    hashes = sorted({name_index(keys.derived("name index", k), name) for k in keys.keys})
    return f"PersonNameIndex IN ({', '.join(quoted(h) for h in hashes)})"


async def list_cases(request: Request, kind: str, who: Authority, *, stage: str | None, partner: str | None,
                     page_size: int, page_token: str | None, name: str | None = None) -> CaseList:
    query = f"CaseKind = {quoted(kind)} AND CaseStates = {quoted(who.state)}"
    if stage:
        query += f" AND CaseStage = {quoted(stage)}"
    if partner:
        query += f" AND CaseStates = {quoted(partner)}"
    if name:
        query += f" AND {name_search(request, name)}"
    executions, token = await newest_first(request, query, page_size, page_token)
    items = []
    for ex in executions:
        attrs = ex.typed_search_attributes
        items.append(CaseSummary(
            kind=kind, reference=reference_of(ex), label=await label_of(ex), stage=attrs.get(sa.CASE_STAGE),
            outcome=attrs.get(sa.CASE_OUTCOME), treaty=attrs.get(sa.TREATY_ID),
            states=list(attrs.get(sa.CASE_STATES) or []), opened_at=ex.start_time,
            action_due_at=attrs.get(sa.ACTION_DUE_AT)))
    return CaseList(items=items, next_page_token=token)


def assignment_index(request: Request, authority: str, user: str) -> str:
    """The blind index an assignment of ``user`` of ``authority`` carries (under the current key)."""
    return assignee_index(request.app.state.codec.keys.derived(ASSIGNMENT_INDEX), authority, user)


def whose_condition(request: Request, who: Authority, whose: Whose) -> str:
    """InboxAssignments holds, for each authority a case awaits, the blind index of who took it or
    ``unassigned:<authority>``: "mine" looks for the index under every configured codec key (an item
    taken before a key rotation is found too), "unassigned" for the marker — both a positive match
    of a KeywordList (no ``!=``, whose SQL semantics take in cases without the attribute)."""
    if whose.show == "unassigned":
        return f"{sa.INBOX_ASSIGNMENTS.name} = {quoted(sa.unassigned(who.id))}"
    assert whose.user is not None
    keys = request.app.state.codec.keys
    hashes = sorted({assignee_index(keys.derived(ASSIGNMENT_INDEX, k), who.id, whose.user) for k in keys.keys})
    return f"{sa.INBOX_ASSIGNMENTS.name} IN ({', '.join(quoted(h) for h in hashes)})"


async def inbox(request: Request, who: Authority, page_size: int, page_token: str | None,
                whose: Whose | None = None) -> Inbox:
    query = f"AwaitingAuthorities = {quoted(who.id)} AND ExecutionStatus = 'Running'"
    if whose is not None:
        query += f" AND {whose_condition(request, who, whose)}"
    executions, token = await page(request, query, page_size, page_token)
    now = datetime.now(timezone.utc)
    items = []
    for ex in executions:
        attrs = ex.typed_search_attributes
        stage = attrs.get(sa.CASE_STAGE) or ""
        due = attrs.get(sa.ACTION_DUE_AT)
        reference, measure_id, kind = reference_of(ex), None, attrs.get(sa.CASE_KIND) or "transfer"
        if kind == MEASURE_KIND:  # a measure's own workflow: assistance:{reference}:{measure_id}
            reference, measure_id = reference.rsplit(":", 1)
            kind, action = "assistance", MEASURE_ACTIONS.get(stage)
        else:
            action = KINDS[kind].actions.get(stage) if kind in KINDS else None
        if action is None:
            continue
        memo = await ex.memo()
        items.append(InboxItem(kind=kind, reference=reference, label=memo.get("label"),
                               assigned_to=(memo.get("assigned") or {}).get(who.id),
                               stage=stage, action=action, measure_id=measure_id,
                               due_on=due_day(due) if due else None, overdue=bool(due and due < now)))
    return Inbox(items=items, next_page_token=token)
