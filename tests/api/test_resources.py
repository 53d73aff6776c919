"""What one client may cost the API and the engine, over real HTTP:

- the body limit: an oversized body — chunked without a Content-Length, or declared — is refused
  with 413 before any key is looked at, without the API process holding it (its RSS, read from
  /proc, hardly moves); the API runs here as its own process (`treatyflow api`, dev mode, against
  the session's dev server), so that its memory is its own;
- /v1/stats: a flood of stats calls from five authorities, each within its rate limit, leaves
  another authority's case reads about as fast as without it: one computation per scope within
  the cache age, single flight, at most TREATYFLOW_STATS_CONCURRENCY counts at once;
- stats are scoped by role: a prison service sees no assistance counts, a court's assistance counts
  leave confidential requests out."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import socket
import statistics
import sys
import threading
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import pytest_asyncio

from tests.api.counting import CountingClient
from tests.api.helpers import Pacer, open_case
from tests.conftest import CODEC_KEYS
from tests.support import Processes, base_env, codec_keys_env, free_port, key, poll, serve, until
from treatyflow.samples import assistance_body

pytestmark = pytest.mark.asyncio(loop_scope="session")

MiB = 1 << 20
CHUNK = 64 * 1024
OVERSIZED = 400 * MiB
RSS_GROWTH_ALLOWED = 50 * MiB


# ---- the API as its own process ---------------------------------------------------------------------

def rss(pid: int) -> int:
    """The resident set of process ``pid`` in bytes (/proc/<pid>/status, VmRSS)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError(f"no VmRSS for {pid}")


class PeakRss:
    """The highest RSS of ``pid`` while the block runs, sampled every 10 ms by a thread."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.peak = rss(pid)
        self.done = threading.Event()
        self.thread = threading.Thread(target=self.sample, daemon=True)

    def sample(self) -> None:
        while not self.done.wait(0.01):
            self.peak = max(self.peak, rss(self.pid))

    def __enter__(self) -> PeakRss:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.done.set()
        self.thread.join()
        self.peak = max(self.peak, rss(self.pid))


@dataclasses.dataclass
class ApiProcess:
    url: str
    pid: int
    port: int
    limit: int


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def api_process(dev_env, tmp_path_factory) -> AsyncIterator[ApiProcess]:
    """`treatyflow api` in dev mode on a free port, against the session's dev server, with the
    session's codec key (start-up checks that it reads the newest case)."""
    root = tmp_path_factory.mktemp("api-process")
    (root / "logs").mkdir()
    procs = Processes(root / "logs")
    port = free_port()
    env = base_env()
    env.update({
        "TREATYFLOW_MODE": "dev",
        "TEMPORAL_ADDRESS": dev_env.client.service_client.config.target_host,
        "TEMPORAL_NAMESPACE": dev_env.client.namespace,
        "TREATYFLOW_API_HOST": "127.0.0.1",
        "TREATYFLOW_API_PORT": str(port),
        "TREATYFLOW_DATA_DIR": str(root / "data"),
        "TREATYFLOW_CODEC_KEYS": codec_keys_env(CODEC_KEYS),
        "TREATYFLOW_LOG_LEVEL": "WARNING",
    })
    proc = procs.spawn("api", [sys.executable, "-m", "treatyflow.cli", "api"], env)
    url = f"http://127.0.0.1:{port}"
    try:
        async with httpx.AsyncClient(base_url=url, timeout=2) as http:
            async def up() -> bool:
                if not proc.alive():
                    raise AssertionError(f"the API exited:\n{proc.log_text()[-3000:]}")
                try:
                    return (await http.get("/healthz")).status_code == 200
                except httpx.TransportError:
                    return False
            await until(up, "the API process to answer /healthz", 30)
        yield ApiProcess(url, proc.pid, port, 1_048_576)
    finally:
        procs.close()


async def chunks(total: int, sent: list[int]) -> AsyncIterator[bytes]:
    """``total`` bytes in 64 KiB chunks (httpx sends them chunked: no Content-Length), counting
    what left."""
    block = b"x" * CHUNK
    while sent[0] < total:
        part = block[:min(CHUNK, total - sent[0])]
        sent[0] += len(part)
        yield part


def too_large(response: httpx.Response | dict[str, Any]) -> None:
    answer = response if isinstance(response, dict) else response.json()
    error = answer["error"]
    assert (error["status"], error["code"]) == (413, "too_large"), answer
    assert set(error) == {"status", "code", "message", "fields"}


# ---- the body limit ---------------------------------------------------------------------------------

@pytest.mark.parametrize("path", ["/v1/transfers", "/v1/assistance-requests", "/codec/decode"])
async def test_a_chunked_oversized_body_without_a_key_is_413_and_never_held(api_process, path):
    """The attack: 400 MiB, chunked, no key. Once the API buffered it whole (RSS 109 → 900 MB)
    before answering 413; now it stops reading past the limit."""
    sent = [0]
    async with httpx.AsyncClient(base_url=api_process.url, timeout=60) as http:
        with PeakRss(api_process.pid) as memory:
            before = memory.peak
            r = await http.post(path, content=chunks(OVERSIZED, sent), headers={"Content-Type": "application/json"})
    assert r.status_code == 413, r.text
    too_large(r)
    assert memory.peak - before < RSS_GROWTH_ALLOWED, \
        f"API RSS grew by {(memory.peak - before) / MiB:.0f} MiB for a refused body ({sent[0] / MiB:.0f} MiB sent)"
    async with httpx.AsyncClient(base_url=api_process.url, timeout=5) as http:
        assert (await http.get("/healthz")).status_code == 200  # and it still answers


def raw_request(port: int, head: bytes, seconds: float = 5.0) -> bytes:
    """Send ``head`` (request line and headers, no body) and read the answer until the server
    closes the connection or ``seconds`` pass."""
    with socket.create_connection(("127.0.0.1", port), timeout=seconds) as s:
        s.sendall(head)
        answer = b""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            try:
                part = s.recv(65536)
            except socket.timeout:
                break
            if not part:
                break
            answer += part
            if b"\r\n\r\n" in answer:
                headers, _, rest = answer.partition(b"\r\n\r\n")
                length = next((int(line.split(b":")[1]) for line in headers.split(b"\r\n")
                               if line.lower().startswith(b"content-length:")), None)
                if length is not None and len(rest) >= length:
                    break
        return answer


@pytest.mark.parametrize("expect", [False, True])
async def test_a_declared_oversized_body_is_413_before_it_is_sent(api_process, expect):
    """Content-Length over the limit: 413 at once, while not one byte of the body was sent (and an
    `Expect: 100-continue` client is never told to send it)."""
    head = (f"POST /v1/transfers HTTP/1.1\r\nHost: 127.0.0.1:{api_process.port}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {OVERSIZED}\r\n"
            + ("Expect: 100-continue\r\n" if expect else "") + "\r\n").encode()
    started = time.monotonic()
    answer = await asyncio.to_thread(raw_request, api_process.port, head)
    assert answer.startswith(b"HTTP/1.1 413 "), answer[:300]
    assert b"100 Continue" not in answer
    too_large(json.loads(answer.partition(b"\r\n\r\n")[2]))
    assert time.monotonic() - started < 4.0  # answered, not waited out


@pytest.mark.parametrize("chunked", [False, True])
async def test_a_body_at_the_limit_is_read_and_one_byte_more_is_413(api_url, dev_settings, chunked):
    """Exactly max_body_bytes reaches the app (here: 422, an unknown field); one byte more is 413,
    with or without a key."""
    limit = dev_settings.max_body_bytes

    def body(size: int) -> bytes:
        raw = b'{"padding": "' + b"a" * (size - len(b'{"padding": ""}')) + b'"}'
        assert len(raw) == size
        return raw

    async def content(raw: bytes) -> AsyncIterator[bytes]:
        for i in range(0, len(raw), CHUNK):
            yield raw[i:i + CHUNK]

    async with httpx.AsyncClient(base_url=api_url, timeout=15) as http:
        for size, headers, expected in ((limit, key("kz-gpo"), 422), (limit + 1, key("kz-gpo"), 413),
                                        (limit + 1, {}, 413)):
            raw = body(size)
            r = await http.post("/v1/transfers", content=content(raw) if chunked else raw,
                                headers={**headers, "Content-Type": "application/json"})
            assert r.status_code == expected, (size, r.status_code, r.text[:300])
            if expected == 413:
                too_large(r)
            else:
                assert "padding" in r.json()["error"]["fields"]


async def test_requests_under_the_limit_work_unchanged(api_url):
    async with httpx.AsyncClient(base_url=api_url, timeout=15, event_hooks={"request": [Pacer()]}) as http:
        reference = await open_case(http)
        again = await http.get(f"/v1/transfers/{reference}", headers=key("kz-gpo"))
        assert again.status_code == 200, again.text
        empty = await http.post(f"/v1/transfers/{reference}/withdrawal", headers=key("kz-gpo"))
        assert empty.status_code == 415, empty.text  # no body at all: read as before


# ---- /v1/stats under a flood --------------------------------------------------------------------------

FLOODERS = ("uz-gpo", "fr-moj", "it-moj", "es-moj", "hu-moj")
CALLS_EACH = 40
READS = 20


def p95(samples: list[float]) -> float:
    return statistics.quantiles(samples, n=20, method="inclusive")[18]


@pytest_asyncio.fixture(loop_scope="session")
async def counted(dev_env, dev_settings) -> AsyncIterator[tuple[str, CountingClient, Any]]:
    """The session's app served once more, over a client that counts visibility counts, with a
    cache age longer than the test (every stats call of a scope within it shares one
    computation)."""
    from api.app import create_app

    # only the stats' counts: the reader's list of transfers pages by a keyset that counts too when
    # the window it remembers misses (how often depends on what the store holds); its counts are the
    # list's query in parentheses (api/listing.py), which no stats count is
    client = CountingClient(dev_env.client, ignore=lambda query: query.startswith("(CaseKind = 'transfer'"))
    settings = dataclasses.replace(dev_settings, dev_mode=True, api_timeout=10.0, stats_max_age=60.0)
    app = create_app(settings, client)  # type: ignore[arg-type]
    async with serve(app) as url:
        yield url, client, app


async def test_a_stats_flood_leaves_other_reads_fast(counted):
    url, client, app = counted
    pacer = Pacer()  # every authority within its rate limit
    # the reader has its own connections: it waits for the API, never for the flood's connections
    async with httpx.AsyncClient(base_url=url, timeout=15, event_hooks={"request": [pacer]}) as http, \
            httpx.AsyncClient(base_url=url, timeout=15, event_hooks={"request": [pacer]},
                              limits=httpx.Limits(max_connections=None)) as flooder:
        reference = await open_case(http)  # a KZ–UZ transfer that kz-gpo reads

        async def read() -> float:
            """kz-gpo reads the case, and its list of transfers (visibility, as the counts)."""
            started = time.perf_counter()
            r = await http.get(f"/v1/transfers/{reference}", headers=key("kz-gpo"))
            assert r.status_code == 200, r.text
            r = await http.get("/v1/transfers", params={"state": "UZ", "page_size": 5}, headers=key("kz-gpo"))
            assert r.status_code == 200, r.text
            return time.perf_counter() - started

        await read()  # warm
        quiet = []
        for _ in range(READS):
            quiet.append(await read())
            await asyncio.sleep(0.05)

        before = client.counts

        async def flood(authority: str) -> list[httpx.Response]:
            return await asyncio.gather(*(flooder.get("/v1/stats", headers=key(authority))
                                          for _ in range(CALLS_EACH)))

        flooding = asyncio.gather(*(flood(a) for a in FLOODERS))
        await asyncio.sleep(0.05)  # the flood is under way
        busy = []
        for _ in range(READS):
            busy.append(await read())
            await asyncio.sleep(0.05)
        answers = [r for each in await flooding for r in each]
        flood_counts = client.counts - before
    print(f"case reads: p95 {p95(quiet) * 1000:.1f} ms quiet, {p95(busy) * 1000:.1f} ms under the flood; "
          f"{flood_counts} counts for {len(answers)} stats calls, "
          f"{statistics.mean(client.seconds) * 1000:.1f} ms each on average")

    # another authority's reads: about as fast as without the flood (a generous bound: this machine
    # also runs the dev server, the worker and the flood's clients; without the cache and the
    # gate, the reads took seconds and stats answered 503)
    assert p95(busy) < 10 * p95(quiet) + 0.5, (f"p95 {p95(busy) * 1000:.0f} ms under the flood against "
                                               f"{p95(quiet) * 1000:.0f} ms without")
    assert all(r.status_code == 200 for r in answers), {r.status_code for r in answers}
    assert len(answers) == len(FLOODERS) * CALLS_EACH
    # the flood cost one computation per scope (single flight, within the age)
    assert app.state.stats_cache.computations == len(FLOODERS)
    one_each = 0
    app.state.stats_cache.values.clear()
    async with httpx.AsyncClient(base_url=url, timeout=15) as http:
        for authority in FLOODERS:
            start = client.counts
            assert (await http.get("/v1/stats", headers=key(authority))).status_code == 200
            one_each += client.counts - start
    assert flood_counts == one_each, (flood_counts, one_each)
    assert client.peak <= app.state.settings.stats_concurrency


async def test_concurrent_stats_calls_of_one_scope_share_one_computation(counted):
    """Single flight: 30 calls at once of a scope no one asked yet make one round of counts, and the
    next calls within the age make none."""
    url, client, app = counted
    async with httpx.AsyncClient(base_url=url, timeout=15) as http:
        start, computations = client.counts, app.state.stats_cache.computations
        answers = await asyncio.gather(*(http.get("/v1/stats", headers=key("mc-dsj")) for _ in range(30)))
        assert {r.status_code for r in answers} == {200}
        assert app.state.stats_cache.computations == computations + 1
        once = client.counts - start
        assert 0 < once <= 60
        assert len({json.dumps(r.json(), sort_keys=True) for r in answers}) == 1  # the same answer
        again = await http.get("/v1/stats", headers=key("mc-dsj"))
        assert again.status_code == 200 and client.counts - start == once


# ---- /v1/stats by role ----------------------------------------------------------------------------------

@pytest_asyncio.fixture(loop_scope="session")
async def fresh(dev_env, dev_settings) -> AsyncIterator[tuple[str, CountingClient]]:
    """The app with stats recounted at every call (age 0), to watch counts change."""
    from api.app import create_app

    client = CountingClient(dev_env.client)
    settings = dataclasses.replace(dev_settings, dev_mode=True, stats_max_age=0.0)
    async with serve(create_app(settings, client)) as url:  # type: ignore[arg-type]
        yield url, client


async def stats_of(http: httpx.AsyncClient, authority: str) -> dict[str, Any]:
    r = await http.get("/v1/stats", headers=key(authority))
    assert r.status_code == 200, r.text
    return r.json()


def assistance_total(answer: dict[str, Any]) -> int:
    return answer["kinds"]["assistance"]["total"]


async def test_stats_cover_only_the_kinds_of_the_callers_role(fresh):
    url, client = fresh
    async with httpx.AsyncClient(base_url=url, timeout=15, event_hooks={"request": [Pacer()]}) as http:
        start = client.counts
        penal = await stats_of(http, "kz-penal")
        assert set(penal["kinds"]) == {"transfer"}
        assert all("CaseKind = 'transfer'" in q for q in client.queries[start:])
        start = client.counts
        court = await stats_of(http, "kz-court")
        assert set(court["kinds"]) == {"assistance"}
        assert all("CaseKind = 'assistance'" in q and "CaseConfidential = false" in q for q in client.queries[start:])
        assert set((await stats_of(http, "kz-afm"))["kinds"]) == {"assistance"}
        start = client.counts
        central = await stats_of(http, "kz-gpo")
        assert set(central["kinds"]) == {"transfer", "assistance"}
        assert not any("CaseConfidential" in q for q in client.queries[start:])
        for answer in (penal, court, central):
            assert answer["state"] == "KZ" and answer["registry"]["treaties"] > 0


async def test_a_courts_assistance_counts_leave_confidential_requests_out(fresh):
    url, _ = fresh
    async with httpx.AsyncClient(base_url=url, timeout=15, event_hooks={"request": [Pacer()]}) as http:
        court, central = assistance_total(await stats_of(http, "kz-court")), \
            assistance_total(await stats_of(http, "kz-gpo"))
        for confidential in (True, False):
            r = await http.post("/v1/assistance-requests", json=assistance_body(confidential=confidential),
                                headers=key("fr-moj"))
            assert r.status_code == 201, r.text
        seen = await poll(lambda: stats_of(http, "kz-gpo"), lambda a: assistance_total(a) == central + 2)
        assert assistance_total(seen) == central + 2  # the central authority counts both
        court_seen = await poll(lambda: stats_of(http, "kz-court"), lambda a: assistance_total(a) == court + 1)
        assert assistance_total(court_seen) == court + 1  # the court only the one that is not confidential
        await asyncio.sleep(0.5)  # and it stays so (visibility has caught up with both)
        assert assistance_total(await stats_of(http, "kz-court")) == court + 1
        assert assistance_total(await stats_of(http, "kz-afm")) == court + 1
