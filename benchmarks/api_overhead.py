"""2. API overhead: the same lifecycle through the HTTP API (`treatyflow api`, its own process)
and through direct client calls, alternated in one run on one worker. Reported as cases/s for
each and the ratio API/direct (goal ≥ 0.9), with p50/p95 latency per endpoint under load and
one case at a time."""

from __future__ import annotations

import subprocess
from typing import Any

import httpx

from benchmarks.harness import Stack, Timings, drive
from benchmarks.lifecycle import real_direct, real_http
from benchmarks.pipeline import Arm, cpu_ratio, measured, rounds_of


async def api_overhead(stack: Stack, task_queue: str, worker: subprocess.Popen, api: subprocess.Popen, url: str, *,
                       cases: int, concurrency: int, rounds: int, warmup: int, serial: int) -> dict[str, Any]:
    client = stack.client
    processes = {"worker": worker, "server": stack.server, "api": api}
    limits = httpx.Limits(max_connections=concurrency + 10, max_keepalive_connections=concurrency + 10)
    async with httpx.AsyncClient(base_url=url, timeout=60, limits=limits) as http:
        await drive(warmup, concurrency, lambda i: real_http(http, client, Timings()))
        await drive(warmup, concurrency, lambda i: real_direct(client, task_queue, Timings()))
        direct, api_arm = Arm(), Arm()
        for count in rounds_of(cases, rounds):
            await measured(direct, processes, count, concurrency,
                           lambda i: real_direct(client, task_queue, direct.timings))
            await measured(api_arm, processes, count, concurrency, lambda i: real_http(http, client, api_arm.timings))
        # one case at a time: the latency of each call without queueing behind other cases
        alone_direct, alone_api = Timings(), Timings()
        for _ in range(serial):
            await real_direct(client, task_queue, alone_direct)
            await real_http(http, client, alone_api)
    return {"concurrency": concurrency, "rounds": len(rounds_of(cases, rounds)), "warmup": warmup,
            "direct": direct.report(), "api": api_arm.report(),
            "ratio": round(api_arm.rate / direct.rate, 3) if direct.rate else None,
            "cpu_ratio": cpu_ratio(direct, api_arm),
            "serial": {"cases": serial, "direct_latency_ms": alone_direct.summary(),
                       "api_latency_ms": alone_api.summary()}}
