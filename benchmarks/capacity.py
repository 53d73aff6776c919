"""3. Open-case capacity: N cases opened and left waiting for consent, on a fresh production
worker (`treatyflow worker`, its own process and task queue); then the worker's resident memory
(/proc/<pid>/status), the server's SQLite files, and the latency of the inbox, the list and a
case read through the API with that many cases open, and of the web application's inbox and case
pages, rendered, for a signed-in session (goals: worker RSS ≤ 250 MB; inbox, list and case read p95
≤ 75, 100 and 75 ms; engine storage ≤ 25 kB a case; the two pages ≤ 150 ms). Beside the engine
storage, as many baseline cases opened to the same point on the same server: the bare engine's
storage for a case of that shape."""

from __future__ import annotations

import asyncio
import random
import re
import subprocess
import time
from typing import Any

import httpx

from benchmarks.harness import Stack, Timings, drive, proc_status, settle
from benchmarks.lifecycle import Unexpected, expect, open_baseline
from tests.support import key
from treatyflow.cases import open_transfer
from treatyflow.samples import transfer_request


async def visible(stack: Stack, query: str, count: int, timeout: float = 120.0) -> float:
    """Wait until the visibility store counts ``count`` executions for ``query``; seconds waited."""
    started = time.monotonic()
    while (await stack.client.count_workflows(query)).count < count:
        if time.monotonic() - started > timeout:
            raise Unexpected(f"visibility shows fewer than {count} for {query} after {timeout}s")
        await asyncio.sleep(0.5)
    return time.monotonic() - started


async def signed_in(browser: httpx.AsyncClient, authority: str) -> None:
    """Sign ``browser`` in to the web application with the authority's demo key (dev mode)."""
    form = await browser.get("/sign-in")
    token = re.search(r'name="csrf_token" value="([^"]+)"', form.text).group(1)
    answer = await browser.post("/sign-in", data={"csrf_token": token, "api_key": f"demo-{authority}"})
    expect(answer.status_code == 303, f"signing in to the web application: {answer.status_code}")


async def capacity(stack: Stack, url: str, worker: subprocess.Popen, *, open_cases: int, concurrency: int,
                   requests: int, task_queue: str = "capacity") -> dict[str, Any]:
    """``worker``: a fresh worker process polling ``task_queue`` (`treatyflow worker`, or
    ``benchmarks.worker`` for a variant), which has run nothing yet."""
    client = stack.client
    await settle([worker.pid])
    idle = proc_status(worker.pid)
    db_before = stack.db_bytes()
    references: list[str] = []
    opening = Timings()

    async def open_one(_: int) -> None:
        request = transfer_request()
        opened = await opening.timed("open_transfer", open_transfer(client, request, "kz-gpo", task_queue))
        expect(opened.view.stage == "awaiting_consents", f"opened in {opened.view.stage}")
        references.append(request.reference)

    seconds = await drive(open_cases, concurrency, open_one)
    waiting = f"TaskQueue = '{task_queue}' AND ExecutionStatus = 'Running' AND CaseStage = 'awaiting_consents'"
    visibility_lag = await visible(stack, waiting, open_cases)
    settled = await settle([worker.pid, stack.server.pid])  # the consent notices delivered, nothing running
    loaded = proc_status(worker.pid)
    server = proc_status(stack.server.pid)
    db_after = stack.db_bytes()

    reads = Timings()
    picks = random.Random(7)
    async with httpx.AsyncClient(base_url=url, timeout=60) as http:
        async def get(name: str, path: str, by: str, params: dict | None = None) -> dict:
            r = await reads.timed(name, http.get(path, headers=key(by), params=params))
            expect(r.status_code == 200, f"GET {path}: {r.status_code} {r.text[:300]}")
            return r.json()

        inbox = await get("warm-up", "/v1/inbox", "kz-gpo")
        expect(len(inbox["items"]) == min(50, open_cases), f"the inbox shows {len(inbox['items'])} items")
        for _ in range(requests):
            await get("GET /v1/inbox", "/v1/inbox", "kz-gpo")
        for _ in range(requests):
            await get("GET /v1/transfers", "/v1/transfers", "kz-gpo")
        for _ in range(requests):
            await get("GET /v1/transfers?stage=awaiting_consents", "/v1/transfers", "uz-gpo",
                      {"stage": "awaiting_consents"})
        # a later page: the token of page 5 (50 cases a page, fewer when there are not 250), read again and again
        size, token = min(50, max(1, open_cases // 5)), None
        for _ in range(4):
            listed = await get("warm-up", "/v1/transfers", "kz-gpo",
                               {"page_size": size, **({"page_token": token} if token else {})})
            token = listed["next_page_token"]
            expect(bool(token), f"the list of {open_cases} cases ends before page 5 ({size} a page)")
        fifth = {"page_size": size, "page_token": token}
        for _ in range(requests):
            page = await get("GET /v1/transfers?page_token=... (page 5)", "/v1/transfers", "kz-gpo", fifth)
            expect(len(page["items"]) == size, f"page 5 holds {len(page['items'])} cases, not {size}")
        for _ in range(requests):  # a case read live: a query, answered from the worker's cache or by replay
            await get("GET /v1/transfers/{reference}", f"/v1/transfers/{picks.choice(references)}", "uz-gpo")
        reads.pop("warm-up")
    for page, by, path in (("GET /inbox (page)", "kz-gpo", lambda: "/inbox"),
                           ("GET /transfers/{reference} (page)", "uz-gpo",
                            lambda: f"/transfers/{picks.choice(references)}")):
        async with httpx.AsyncClient(base_url=url, timeout=60) as browser:  # a person's session, rendered pages
            await signed_in(browser, by)
            for _ in range(requests):
                r = await reads.timed(page, browser.get(path()))
                expect(r.status_code == 200 and "<main" in r.text, f"{page}: {r.status_code} {r.text[:300]}")
    after_reads = proc_status(worker.pid)
    return {
        "open_cases": open_cases, "concurrency": concurrency,
        "opening": {"seconds": round(seconds, 1), "cases_per_s": round(open_cases / seconds, 1),
                    "latency_ms": opening.summary()},
        "visibility_lag_s": round(visibility_lag, 1), "settle_s": round(settled, 1),
        "worker_rss_mb": {"idle": idle["VmRSS"], "open": loaded["VmRSS"], "after_reads": after_reads["VmRSS"],
                          "peak": after_reads["VmHWM"]},
        "server_rss_mb": server,
        "db_bytes": {"before": db_before, "after": db_after, "growth": db_after["total"] - db_before["total"],
                     "growth_per_case": round((db_after["total"] - db_before["total"]) / open_cases)},
        "latency_ms": reads.summary(),
    }


async def baseline_storage(stack: Stack, task_queue: str, *, open_cases: int, concurrency: int) -> dict[str, Any]:
    """The bare engine's storage for the same number of open cases: baseline cases (same 13
    activities, updates, encrypted payloads and timeouts; no content) opened on the same server and
    left waiting for consent, as the capacity benchmark leaves the real ones. The SQLite growth per
    case is the floor any case of this shape costs on this server."""
    before = stack.db_bytes()["total"]

    async def open_one(_: int) -> None:
        await open_baseline(stack.client, task_queue, Timings())

    await drive(open_cases, concurrency, open_one)
    await settle([stack.server.pid])  # its consent notices delivered, nothing running
    growth = stack.db_bytes()["total"] - before
    return {"open_cases": open_cases, "growth": growth, "growth_per_case": round(growth / open_cases)}
