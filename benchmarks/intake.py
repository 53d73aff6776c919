"""4. Bulk intake: opening a list of applicants through ``POST /v1/transfers/batch`` against the
same number of single ``POST /v1/transfers`` in the same run, on the same API, worker and server
(goal: the batch ≥ 3× faster), and what a batch of the largest size does to another authority's
single POSTs sent meanwhile (p95 during the batch against the same authority's p95 alone).

The single POSTs are sent one after the other, as a central authority without the batch sends
its list (a script or a person, one case at a time); the same singles eight at a time are
reported too, as a client that parallelises would send them. Every case is opened without a
declaration, so each stops after its intake, waiting for it: what is measured is the intake
alone, and no side leaves work behind for the next."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import httpx

from benchmarks.harness import Timings, drive, summary_ms
from tests.support import key
from treatyflow.samples import transfer_body

PARALLEL_SINGLES = 8  # a client that parallelises its single POSTs


def applicant(state: str = "KZ") -> dict[str, Any]:
    return transfer_body(opening_state=state, declaration=None)


async def single(http: httpx.AsyncClient, timings: Timings, authority: str = "kz-gpo", state: str = "KZ") -> None:
    r = await timings.timed("POST /v1/transfers", http.post("/v1/transfers", json=applicant(state),
                                                            headers=key(authority)))
    if r.status_code != 201:
        raise RuntimeError(f"POST /v1/transfers: {r.status_code} {r.text[:300]}")


async def batch(http: httpx.AsyncClient, count: int) -> float:
    """One batch of ``count`` new applicants; its seconds, from sending to the last result line."""
    body = b"".join(json.dumps(applicant()).encode() + b"\n" for _ in range(count))
    started = time.perf_counter()
    r = await http.post("/v1/transfers/batch", content=body,
                        headers={**key("kz-gpo"), "content-type": "application/x-ndjson"})
    seconds = time.perf_counter() - started
    results = [json.loads(line) for line in r.text.splitlines()]
    created = sum(line["result"] == "created" for line in results)
    if r.status_code != 200 or created != count:
        raise RuntimeError(f"POST /v1/transfers/batch: {r.status_code}, {created} of {count} created: "
                           f"{[line for line in results if line['result'] != 'created'][:3]}")
    return seconds


async def intake(url: str, *, sizes: tuple[int, ...], probes: int) -> dict[str, Any]:
    out: dict[str, Any] = {"sizes": {}}
    async with httpx.AsyncClient(base_url=url, timeout=600) as http:
        await drive(min(10, probes), 1, lambda i: single(http, Timings()))  # warm both paths
        await batch(http, min(10, probes))
        for count in sizes:
            one_by_one, parallel = Timings(), Timings()
            singles_s = await drive(count, 1, lambda i: single(http, one_by_one))
            batch_s = await batch(http, count)
            parallel_s = await drive(count, PARALLEL_SINGLES, lambda i: single(http, parallel))
            out["sizes"][str(count)] = {
                "singles_s": round(singles_s, 2), "batch_s": round(batch_s, 2), "parallel_singles_s": round(parallel_s, 2),
                "ratio": round(singles_s / batch_s, 2), "ratio_parallel": round(parallel_s / batch_s, 2),
                "single_latency_ms": one_by_one.summary()["POST /v1/transfers"],
                "batch_cases_per_s": round(count / batch_s, 1)}
        # another authority's single POSTs, one at a time: alone, then while the largest batch runs
        alone, during = Timings(), Timings()
        await drive(probes, 1, lambda i: single(http, alone, "uz-gpo", "UZ"))
        running = asyncio.create_task(batch(http, max(sizes)))
        while not running.done():
            await single(http, during, "uz-gpo", "UZ")
        await running
    out["others"] = {"alone_ms": alone.summary()["POST /v1/transfers"],
                     "during_batch_ms": summary_ms(during.get("POST /v1/transfers", []))}
    others = out["others"]
    others["ratio"] = round(others["during_batch_ms"]["p95_ms"] / others["alone_ms"]["p95_ms"], 2) \
        if others["during_batch_ms"]["n"] else None
    return out
