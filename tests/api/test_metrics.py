"""/metrics: the dashboard's case gauges come from visibility counts, with no reference in any label;
outside dev mode only the operators' token scrapes it (never an authority's key); and the gauges'
counts are made at most once per TREATYFLOW_STATS_MAX_AGE, however often it is scraped."""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import re
import secrets
import time

import httpx
import pytest
import pytest_asyncio

from api.keys import KeyConfigError
from tests.api.counting import CountingClient
from tests.support import key, serve
from treatyflow.samples import transfer_body

pytestmark = pytest.mark.asyncio(loop_scope="session")

OPERATOR_TOKEN = "operator-" + secrets.token_urlsafe(24)
AUTHORITY_KEY = "prod-" + secrets.token_urlsafe(24)  # kz-gpo's key in the production app below


def sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def gauge(text: str, stage: str) -> float:
    found = re.search(rf'^treatyflow_cases\{{kind="transfer",stage="{stage}"\}} (\S+)$', text, re.M)
    return float(found.group(1)) if found else 0.0


async def test_stage_counts_follow_the_cases(api_url):
    """Dev mode (the session's app): /metrics is open, as the whole API is on loopback there."""
    async with httpx.AsyncClient(base_url=api_url) as http:
        before = gauge((await http.get("/metrics")).text, "awaiting_declaration")
        body = transfer_body(declaration=None)
        opened = await http.post("/v1/transfers", json=body, headers=key("kz-gpo"))
        assert opened.status_code == 201
        for _ in range(100):  # visibility is eventually consistent, and the gauges up to the age old
            text = (await http.get("/metrics")).text
            if gauge(text, "awaiting_declaration") == before + 1:
                break
            await asyncio.sleep(0.1)
    assert gauge(text, "awaiting_declaration") == before + 1
    assert "treatyflow_overdue_actions" in text
    assert body["reference"] not in text


# ---- outside dev mode: the operators' token -----------------------------------------------------------

@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def production(dev_env, dev_settings):
    """The app in production mode: one real authority key (kz-gpo), the operators' token hash, a
    client that counts visibility counts, and a cache age longer than a test."""
    from api.app import create_app

    client = CountingClient(dev_env.client)
    settings = dataclasses.replace(dev_settings, dev_mode=False, api_keys=f"kz-gpo:{sha256(AUTHORITY_KEY)}",
                                   operator_token_hash=sha256(OPERATOR_TOKEN), stats_max_age=60.0)
    app = create_app(settings, client)  # type: ignore[arg-type]
    async with serve(app) as url:
        yield url, client, app


@pytest.mark.parametrize("headers", [
    {},
    bearer("not-the-token"),
    bearer("demo-kz-gpo"),  # demo keys do not exist outside dev mode
    {"Authorization": f"Basic {OPERATOR_TOKEN}"},
    {"Authorization": f"Bearer{OPERATOR_TOKEN}"},
    bearer(OPERATOR_TOKEN + "x"),
    bearer(sha256(OPERATOR_TOKEN)),  # the hash is not the token
], ids=["none", "unknown", "demo key", "basic scheme", "no space", "longer", "the hash"])
async def test_metrics_without_the_operators_token_is_401(production, headers):
    url, client, _ = production
    async with httpx.AsyncClient(base_url=url) as http:
        start = client.counts
        r = await http.get("/metrics", headers=headers)
    assert r.status_code == 401, r.text
    assert r.json()["error"]["code"] == "unauthenticated"
    assert r.headers.get("www-authenticate", "").lower().startswith("bearer")
    assert "treatyflow_" not in r.text
    assert client.counts == start  # no count for a refused scrape


async def test_an_authoritys_key_never_scrapes_metrics(production):
    url, _, _ = production
    async with httpx.AsyncClient(base_url=url) as http:
        assert (await http.get("/v1/treaties", headers=bearer(AUTHORITY_KEY))).status_code == 200  # a valid key
        r = await http.get("/metrics", headers=bearer(AUTHORITY_KEY))
    assert r.status_code == 403, r.text
    assert r.json()["error"]["code"] == "forbidden"
    assert "treatyflow_" not in r.text


async def test_the_operators_token_scrapes_metrics(production):
    url, _, _ = production
    async with httpx.AsyncClient(base_url=url) as http:
        r = await http.get("/metrics", headers=bearer(OPERATOR_TOKEN))
    assert r.status_code == 200, r.text
    assert "treatyflow_cases{" in r.text and "treatyflow_overdue_actions" in r.text
    assert r.headers["content-type"].startswith("text/plain")


async def test_a_scrape_flood_makes_one_round_of_counts_per_age(production):
    """The attack: metrics scraped as fast as a client can. The gauges' counts are made once per
    age, in one computation that concurrent scrapes share."""
    url, client, app = production
    app.state.gauge_cache.values.clear()
    async with httpx.AsyncClient(base_url=url, timeout=15) as http:
        start, computations = client.counts, app.state.gauge_cache.computations
        answers = await asyncio.gather(*(http.get("/metrics", headers=bearer(OPERATOR_TOKEN)) for _ in range(50)))
        for _ in range(50):
            answers.append(await http.get("/metrics", headers=bearer(OPERATOR_TOKEN)))
    assert {r.status_code for r in answers} == {200}
    assert app.state.gauge_cache.computations == computations + 1
    from workflows.kinds import KINDS

    assert client.counts - start == sum(len(k.stages) for k in KINDS.values()) + 1  # one count per stage, and overdue
    assert client.peak <= app.state.settings.stats_concurrency


async def test_the_gauges_are_recounted_once_the_age_has_passed(dev_env, dev_settings):
    from api.app import create_app

    client = CountingClient(dev_env.client)
    settings = dataclasses.replace(dev_settings, dev_mode=True, stats_max_age=0.5)
    app = create_app(settings, client)  # type: ignore[arg-type]
    async with serve(app) as url, httpx.AsyncClient(base_url=url, timeout=15) as http:
        until = time.monotonic() + 1.6
        scrapes = 0
        while time.monotonic() < until:
            assert (await http.get("/metrics")).status_code == 200
            scrapes += 1
    computations = app.state.gauge_cache.computations
    assert scrapes > 10
    assert 2 <= computations <= 5, (scrapes, computations)  # about one per half second


# ---- configuration --------------------------------------------------------------------------------------

@pytest.mark.parametrize("configured, problem", [
    ("not-hex", "SHA-256 hex"),
    (sha256("demo-kz-gpo"), "an authority's key"),
    (f"{sha256('fine')},{sha256(AUTHORITY_KEY)}", "an authority's key"),
], ids=["not hex", "a demo key", "a production key"])
async def test_an_operator_token_hash_that_is_not_one_stops_the_api_at_start_up(dev_settings, configured, problem):
    from api.app import create_app

    settings = dataclasses.replace(dev_settings, dev_mode=False, api_keys=f"kz-gpo:{sha256(AUTHORITY_KEY)}",
                                   operator_token_hash=configured)
    with pytest.raises(KeyConfigError, match=problem):
        create_app(settings)


async def test_the_operator_token_is_read_from_the_environment():
    from treatyflow.config import Settings

    settings = Settings.from_env({"TREATYFLOW_OPERATOR_TOKEN_HASH": sha256(OPERATOR_TOKEN),
                                  "TREATYFLOW_STATS_MAX_AGE": "7.5", "TREATYFLOW_STATS_CONCURRENCY": "3"})
    assert (settings.operator_token_hash, settings.stats_max_age, settings.stats_concurrency) == \
        (sha256(OPERATOR_TOKEN), 7.5, 3)
    assert Settings.from_env({}).operator_token_hash == ""
