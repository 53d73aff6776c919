"""The lists, newest opened first across pages (docs/api.md, `GET /v1/transfers`): over real HTTP,
open and closed cases of both kinds opened interleaved in time, some within the same second, walked
page by page with and without filters; then, without a server, the keyset itself (api/listing.py)
over cases opened in the same microsecond and start times bunched in bursts, against a store that
answers in no order at all."""

from __future__ import annotations

import asyncio
import bisect
import random
import re
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from types import SimpleNamespace
from typing import Any

import httpx
import pytest
import pytest_asyncio

from temporalio.api.workflow.v1 import WorkflowExecutionInfo
from temporalio.api.workflowservice.v1 import ListWorkflowExecutionsRequest

from api import listing
from api.errors import ApiError
from tests.api import helpers
from tests.api.helpers import NOT_FINAL, open_case
from tests.support import key, poll
from treatyflow.samples import BASE, assistance_body

pytestmark = pytest.mark.asyncio(loop_scope="session")
http = helpers.http  # the fixture: one paced client for the module

PATHS = {"transfer": "/v1/transfers", "assistance": "/v1/assistance-requests"}


@dataclass
class Opened:
    """The cases the module opened, by kind, in the order they were opened (a tuple for those
    opened at once, within a second), and which of them are closed."""

    name: str  # the sentenced person of every transfer here: `?name=` lists these alone
    order: dict[str, list[str | tuple[str, ...]]] = field(default_factory=lambda: {"transfer": [], "assistance": []})
    closed: set[str] = field(default_factory=set)

    def all(self, kind: str) -> set[str]:
        return {r for step in self.order[kind] for r in (step if isinstance(step, tuple) else (step,))}


def timestamp(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


async def transfer(http: httpx.AsyncClient, name: str, closing: bool) -> str:
    """A KZ→UZ transfer of ``name``: waiting for consents, or refused (closed) at intake."""
    person = {**BASE["person"], "full_name": name}
    if closing:
        return await open_case(http, person=person, judgment=NOT_FINAL, expect_stage="refused")
    return await open_case(http, person=person, expect_stage="awaiting_consents")


async def request(http: httpx.AsyncClient, closing: bool) -> str:
    """An IT→KZ request for assistance: under review, or withdrawn (closed) at once."""
    body = assistance_body(requesting_state="IT", requested_state="KZ", issuing_authority="Procura della Repubblica")
    r = await http.post("/v1/assistance-requests", json=body, headers=key("it-moj"))
    assert r.status_code == 201, r.text
    if closing:
        r = await http.post(f"/v1/assistance-requests/{body['reference']}/withdrawal", headers=key("it-moj"),
                            json={"reason": "no longer needed"})
        assert r.status_code == 200 and r.json()["stage"] == "withdrawn", r.text
    return body["reference"]


async def walk(http: httpx.AsyncClient, kind: str, by: str, page_size: int, **params: Any) -> list[dict[str, Any]]:
    """Every item of a list, page after page; every page but the last is full."""
    items: list[dict[str, Any]] = []
    token = None
    for _ in range(500):
        r = await http.get(PATHS[kind], headers=key(by),
                           params={"page_size": page_size, **params, **({"page_token": token} if token else {})})
        assert r.status_code == 200, r.text
        page = r.json()
        token = page["next_page_token"]
        assert len(page["items"]) == page_size or token is None, (len(page["items"]), page_size)
        items += page["items"]
        if token is None:
            return items
    raise AssertionError("the list never ended")


def in_order(items: list[dict[str, Any]]) -> None:
    """Newest opened first (by reference, descending, in the same microsecond), each case once."""
    keys = [(timestamp(i["opened_at"]), i["reference"]) for i in items]
    assert keys == sorted(keys, reverse=True), [f"{k[0].isoformat()} {k[1]}" for k in keys]
    assert len({k[1] for k in keys}) == len(keys), "a case listed twice"


def as_opened(opened: Opened, kind: str, walked: list[str]) -> None:
    """Our cases of ``kind`` come in the reverse of the order they were opened in (those opened at
    once in any order among themselves, but after what was opened before them)."""
    ours = [r for r in walked if r in opened.all(kind)]
    position = {r: i for i, r in enumerate(ours)}
    steps = [step if isinstance(step, tuple) else (step,) for step in opened.order[kind]]
    for older, newer in zip(steps, steps[1:]):
        assert max(position[r] for r in newer) < min(position[r] for r in older), (older, newer, ours)


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def opened(http: httpx.AsyncClient, dev_client) -> AsyncIterator[Opened]:
    """Transfers (kz-gpo, of one person) and requests (it-moj to KZ) opened turn about, each kind
    open and closed in turn, then three of each at once (within a second, open and closed);
    once the engine has closed the closed ones and the lists show them all."""
    cases = Opened(name=f"Listova Poryadkova-{uuid.uuid4().hex[:8]}")

    async def one(kind: str, closing: bool) -> str:
        reference = await (transfer(http, cases.name, closing) if kind == "transfer" else request(http, closing))
        if closing:
            cases.closed.add(reference)
        return reference

    for closing in (False, True, False, True, True, False):
        for kind in ("transfer", "assistance"):
            cases.order[kind].append(await one(kind, closing))
    for kind in ("transfer", "assistance"):
        cases.order[kind].append(tuple(await asyncio.gather(*(one(kind, c) for c in (False, True, False)))))
    cases.order["transfer"].append(await one("transfer", False))
    cases.order["assistance"].append(await one("assistance", True))

    # the engine has closed them (the archive written), and the lists show every one of them closed
    for reference in cases.closed:
        kind = "transfer" if reference in cases.all("transfer") else "assistance"
        await asyncio.wait_for(dev_client.get_workflow_handle(f"{kind}:{reference}").result(), 15)
    shown = {"transfer": {"stage": "refused", "name": cases.name}, "assistance": {"stage": "withdrawn", "state": "KZ"}}
    for kind, params in shown.items():
        by = "kz-gpo" if kind == "transfer" else "it-moj"
        want = cases.all(kind) & cases.closed
        listed = await poll(lambda: walk(http, kind, by, 200, **params),
                            lambda items: want <= {i["reference"] for i in items}, timeout=15)
        assert want <= {i["reference"] for i in listed}
        query = " OR ".join(f"WorkflowId = '{kind}:{r}'" for r in want)
        counted = await poll(lambda: dev_client.count_workflows(f"ExecutionStatus = 'Completed' AND ({query})"),
                             lambda c: c.count == len(want), timeout=15)
        assert counted.count == len(want), "the visibility store never showed them closed"
    transfers = await poll(lambda: walk(http, "transfer", "kz-gpo", 200, name=cases.name),
                           lambda items: len(items) == len(cases.all("transfer")))
    assert {i["reference"] for i in transfers} == cases.all("transfer")
    requests = await poll(lambda: walk(http, "assistance", "it-moj", 200, state="KZ"),
                          lambda items: cases.all("assistance") <= {i["reference"] for i in items})
    assert cases.all("assistance") <= {i["reference"] for i in requests}
    yield cases


async def test_transfers_open_and_closed_newest_first_across_pages(http, opened):
    whole = await walk(http, "transfer", "kz-gpo", 200, name=opened.name)
    in_order(whole)
    at = {i["reference"]: timestamp(i["opened_at"]) for i in whole}
    together = next(step for step in opened.order["transfer"] if isinstance(step, tuple))
    assert max(at[r] for r in together) - min(at[r] for r in together) < timedelta(seconds=1)  # opened together
    as_opened(opened, "transfer", [i["reference"] for i in whole])
    assert {i["reference"] for i in whole if i["stage"] == "refused"} == opened.all("transfer") & opened.closed
    for page_size in (1, 2, 5):
        walked = await walk(http, "transfer", "kz-gpo", page_size, name=opened.name)
        assert [i["reference"] for i in walked] == [i["reference"] for i in whole], page_size
    # the other state's list, and a prison service's: the same order
    for by in ("uz-gpo", "kz-penal"):
        assert [i["reference"] for i in await walk(http, "transfer", by, 3, name=opened.name)] == \
            [i["reference"] for i in whole], by


async def test_a_filtered_list_is_newest_first_across_pages(http, opened):
    whole = [i["reference"] for i in await walk(http, "transfer", "kz-gpo", 200, name=opened.name)]
    for params in ({"stage": "refused"}, {"stage": "awaiting_consents"}, {"state": "UZ"},
                   {"state": "UZ", "stage": "refused"}):
        walked = await walk(http, "transfer", "kz-gpo", 2, name=opened.name, **params)
        in_order(walked)
        stage = params.get("stage")
        assert [i["reference"] for i in walked] == \
            [r for r in whole if stage is None or (stage == "refused") == (r in opened.closed)], params


async def test_requests_open_and_closed_newest_first_across_pages(http, opened):
    """it-moj's list (its requests, and any other test's with Italy), and kz-gpo's withdrawn ones with
    Italy: whatever else they hold, in order, ours as opened."""
    for by, params in (("it-moj", {}), ("it-moj", {"state": "KZ"}), ("kz-gpo", {"state": "IT", "stage": "withdrawn"})):
        whole = await walk(http, "assistance", by, 200, **params)
        in_order(whole)
        ours = [i["reference"] for i in whole if i["reference"] in opened.all("assistance")]
        if "stage" in params:
            assert set(ours) == opened.all("assistance") & opened.closed
        else:
            assert set(ours) == opened.all("assistance")
            as_opened(opened, "assistance", ours)
        walked = await walk(http, "assistance", by, 2, **params)
        assert [i["reference"] for i in walked] == [i["reference"] for i in whole], (by, params)


async def test_a_list_token_is_bound_to_its_query_and_checked(http, opened):
    first = (await http.get("/v1/transfers", headers=key("kz-gpo"),
                            params={"page_size": 2, "name": opened.name})).json()
    token = first["next_page_token"]
    assert token
    flipped = token[:8] + ("A" if token[8] != "A" else "B") + token[9:]  # a character of the position
    for params in ({"page_token": flipped, "name": opened.name}, {"page_token": token},  # another query
                   {"page_token": token, "name": opened.name, "stage": "refused"},
                   {"page_token": "not base64 at all!", "name": opened.name}):
        r = await http.get("/v1/transfers", headers=key("kz-gpo"), params={"page_size": 2, **params})
        assert r.status_code == 422, r.text
        assert r.json()["error"]["fields"] == ["page_token"]
    # another page size: the same query, so the same token goes on from where it was
    r = await http.get("/v1/transfers", headers=key("kz-gpo"), params={"page_size": 5, "page_token": token,
                                                                        "name": opened.name})
    assert r.status_code == 200, r.text
    whole = [i["reference"] for i in await walk(http, "transfer", "kz-gpo", 200, name=opened.name)]
    assert [i["reference"] for i in r.json()["items"]] == whole[2:7]


async def test_the_web_applications_list_pages_follow_the_same_order(api_url, opened):
    """The web app's list pages call the API's routes in-process: the same order, and its "Next
    page" link goes on from there (when kz-gpo has more than a page of transfers by now)."""
    def references(html: str, path: str) -> list[str]:
        return re.findall(rf'<td><a href="{path}/([^"]+)">', html)

    async with httpx.AsyncClient(base_url=api_url, timeout=15) as web:
        form = await web.get("/sign-in")
        csrf = re.search(r'name="csrf_token" value="([^"]+)"', form.text).group(1)
        assert (await web.post("/sign-in", data={"csrf_token": csrf, "api_key": "demo-kz-gpo"})).status_code == 303
        async with httpx.AsyncClient(base_url=api_url, timeout=15) as api:
            by_name = await walk(api, "transfer", "kz-gpo", 200, name=opened.name)
            page = await web.get("/transfers", params={"name": opened.name})
            assert page.status_code == 200
            assert references(page.text, "/transfers") == [i["reference"] for i in by_name]
            html = (await web.get("/transfers")).text
            first = references(html, "/transfers")
            following = re.search(r'<a href="(/transfers\?[^"]*page_token=[^"]+)">', html)
            if following:
                second = references((await web.get(following.group(1).replace("&amp;", "&"))).text, "/transfers")
                assert second and not set(first) & set(second)
                api_pages = await api.get("/v1/transfers", headers=key("kz-gpo"), params={"page_size": 100})
                listed = [i["reference"] for i in api_pages.json()["items"]]
                assert (first + second)[:len(listed)] == listed[:len(first) + len(second)]


# ---- the keyset itself, against a store without order ------------------------------------------

START = re.compile(r"StartTime (<=|<|>=) '([^']+)'")


class Unordered:
    """A visibility store holding ``rows`` (``id``, ``start_time``) that counts and lists what the
    StartTime conditions of a query select, each list in a random order and in pages; it records
    how many rows each list gave before its reader stopped."""

    namespace = "default"
    data_converter = None

    def __init__(self, rows: list[SimpleNamespace], seed: int) -> None:
        self.rows = sorted(rows, key=lambda r: r.start_time)
        self.starts = [r.start_time for r in self.rows]
        self.shuffle = random.Random(seed).shuffle
        self.listed: list[int] = []
        self.counts = 0
        self.workflow_service = self
        self.pages: dict[bytes, list[SimpleNamespace]] = {}

    def select(self, query: str) -> list[SimpleNamespace]:
        first, end = 0, len(self.rows)
        for op, at in START.findall(query):
            moment = datetime.fromisoformat(at.replace("Z", "+00:00"))
            if op == ">=":
                first = max(first, bisect.bisect_left(self.starts, moment))
            else:
                end = min(end, (bisect.bisect_left if op == "<" else bisect.bisect_right)(self.starts, moment))
        return self.rows[first:end]

    async def count_workflows(self, query: str) -> SimpleNamespace:
        self.counts += 1
        return SimpleNamespace(count=len(self.select(query)))

    async def list_workflow_executions(self, request: ListWorkflowExecutionsRequest,
                                       retry: bool = False) -> SimpleNamespace:
        if request.next_page_token:
            rows = self.pages.pop(request.next_page_token)
        else:
            rows = self.select(request.query)
            self.shuffle(rows)
            self.listed.append(0)
        page, rows = rows[:request.page_size], rows[request.page_size:]
        self.listed[-1] += len(page)  # read by the caller
        token = b""
        if rows:
            token = uuid.uuid4().bytes
            self.pages[token] = rows
        executions = []
        for row in page:
            info = WorkflowExecutionInfo()
            info.execution.workflow_id = row.id
            info.start_time.FromDatetime(row.start_time)
            executions.append(info)
        return SimpleNamespace(executions=executions, next_page_token=token)


def request_on(store: Unordered) -> Any:
    keys = SimpleNamespace(derived=lambda purpose: b"the page token key of this test..")
    state = SimpleNamespace(client=store, settings=SimpleNamespace(api_timeout=10.0), codec=SimpleNamespace(keys=keys))
    return SimpleNamespace(app=SimpleNamespace(state=state))


def cases_opened(seed: int) -> list[SimpleNamespace]:
    """Bursts (a hundred cases a second), quiet weeks, and groups opened in the same microsecond."""
    rng = random.Random(seed)
    now = datetime.now(timezone.utc)
    rows, at, n = [], now - timedelta(seconds=30), 0
    for _ in range(12):
        for _ in range(rng.choice((1, 5, 40, 150))):
            at -= timedelta(microseconds=rng.choice((0, 0, 1, 10_000, 2_000_000)))  # 0: the same microsecond
            rows.append(SimpleNamespace(id=f"transfer:KZ-{rng.randrange(10**6):06d}-{n}", start_time=at))
            n += 1
        at -= timedelta(days=rng.choice((0, 1, 40, 400)))
    return rows


@pytest.mark.parametrize("seed", [1, 2, 3])
@pytest.mark.parametrize("page_size", [1, 7, 50])
async def test_the_keyset_walks_every_case_once_in_order(seed, page_size):
    rows = cases_opened(seed)
    store = Unordered(rows, seed)
    request = request_on(store)
    walked, token, short = [], None, 0
    for _ in range(2 * len(rows)):
        given, token = await listing.newest_first(request, "CaseKind = 'transfer'", page_size, token)
        walked += given
        if token is None:
            break
        short += len(given) < page_size
    expected = sorted(rows, key=lambda r: (r.start_time, r.id), reverse=True)
    assert [r.id for r in walked] == [r.id for r in expected]
    # a short page only where the search ran out of counts before a burst after a long quiet (these
    # cases are nothing but bursts and quiets)
    assert short < len(store.listed) / 2
    # each list read a page and a half at most, and the rest of a tie in the microsecond the last
    # page ended in
    most_tied = max(sum(1 for r in rows if r.start_time == s.start_time) for s in rows)
    need = page_size + 1
    assert max(store.listed) <= need + need // 2 + 8 + most_tied, store.listed
    assert store.counts <= len(store.listed) * (listing.MAX_PROBES + 1)


async def test_a_forged_or_foreign_position_is_refused():
    request = request_on(Unordered(cases_opened(4), 4))
    _, token = await listing.newest_first(request, "CaseKind = 'transfer'", 5, None)
    assert token
    raw = listing.After(opened=0, workflow_id="transfer:KZ-x", width=1).raw()
    for forged, query in ((token, "CaseKind = 'assistance'"), (token[:-4] + "AAAA", "CaseKind = 'transfer'"),
                          (listing.signed_token(request, b"a token of the store's own paging", "q"), "q"),
                          (listing.signed_token(request, raw[:-3] + b"\xff\xfe\xfd", "q"), "q")):
        with pytest.raises(ApiError) as refused:
            await listing.newest_first(request, query, 5, forged)
        assert (refused.value.status, refused.value.fields) == (422, ["page_token"])


@pytest.mark.parametrize("cases", [30, 600])
async def test_a_first_page_read_again_is_one_list(cases):
    """The first page of a query already listed: the window it ended with, listed at once, no count
    (a list of no more than a window holds: the whole of it)."""
    store = Unordered(cases_opened(5)[:cases], 5)
    request = request_on(store)
    first, _ = await listing.newest_first(request, "CaseKind = 'transfer'", 20, None)
    counts, lists = store.counts, len(store.listed)
    again, token = await listing.newest_first(request, "CaseKind = 'transfer'", 20, None)
    assert [r.id for r in again] == [r.id for r in first]
    assert (store.counts - counts, len(store.listed) - lists) == (0, 1)
    assert (token is None) == (cases <= 20)
