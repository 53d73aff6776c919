"""Property-based fuzzing over the app's own OpenAPI schema (schemathesis 4.x), bounded so that CI
stays fast: every operation, data that fits the schema and data that does not, over real HTTP,
authenticated as a central authority. No answer may be a 5xx, and every answer whose status the
schema documents must match the documented schema.

The app under test is the session's app (dev mode, demo keys, the session's dev server and
worker) served once more with a rate limit the fuzzer cannot reach, so that it neither meets 429s
nor drains the shared app's budget for the other tests.

The POST routes read their bodies themselves (api/body.py), so the schema declares no request
body for any of them. To fuzz bodies anyway, the test adds to its copy of the schema the bodies of
the two routes that open cases (the request models' own JSON schemas) and of the codec endpoints
(Temporal's Payloads JSON). Bodies that open cases are only generated *invalid* (a valid one would
start a real case on the session's worker) and must be refused with a 4xx (a batch: each of its
lines refused, in its 200); the acts on a case are
left without bodies, since a generated reference finds no case and is answered 404 before any
body is read.

The codec endpoints take the operators' credential alone (an authority's key is refused 403 before
the body is read), so the fuzz app is configured with an operator token (``operator_token_hash``)
and the fuzzer sends that token to the /codec paths, the demo key of kz-gpo everywhere else: the
codec bodies are fuzzed, not refused at the door."""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import json
import secrets
import time
from collections import Counter
from typing import Any

import httpx
import pytest
import pytest_asyncio

import schemathesis  # noqa: E402 - a dev dependency: missing means the suite fails, never skips

from hypothesis import HealthCheck, Phase, given, settings  # noqa: E402
from schemathesis.checks import not_a_server_error, response_schema_conformance  # noqa: E402
from schemathesis.generation.modes import GenerationMode  # noqa: E402

from tests.support import key, serve  # noqa: E402

pytestmark = pytest.mark.asyncio(loop_scope="session")

AUTH = key("kz-gpo")
# the operators' token of the fuzz app (Settings.operator_token_hash holds its SHA-256 hex): the
# codec endpoints take it alone, never an authority's key
OPERATOR_TOKEN = f"fuzz-operator-{secrets.token_hex(16)}"
OPERATOR = {"Authorization": f"Bearer {OPERATOR_TOKEN}"}
EXAMPLES = 12  # per operation and generation mode
BUDGET = 60.0  # seconds for the whole run; operations beyond it are reported, not silently dropped


@schemathesis.serializer("application/x-ndjson")
def ndjson_body(ctx: Any, value: Any) -> bytes:
    """The batch's body (POST /v1/transfers/batch): the generated list as one JSON value a line
    (anything else generated for it, as one line)."""
    return b"".join(json.dumps(line).encode() + b"\n" for line in (value if isinstance(value, list) else [value]))


@schemathesis.deserializer("application/x-ndjson")
def ndjson_lines(ctx: Any, response: Any) -> list[Any]:
    """The batch's answer: its lines, each checked against the documented result."""
    return [json.loads(line) for line in response.content.split(b"\n") if line.strip()]


def every_line_refused(response: Any) -> bool:
    """A batch answers 200 with a result a line: refused when no line opened (or found) a case."""
    if not "".join(response.headers.get("content-type", [])).startswith("application/x-ndjson"):  # values are lists
        return False
    return all(line["result"] in ("invalid", "refused") for line in ndjson_lines(None, response))


def credential(path: str) -> dict[str, str]:
    """The credential the fuzzer sends to ``path``: the operators' token to the codec."""
    return OPERATOR if path.startswith("/codec") else AUTH


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def fuzz_url(dev_env, dev_settings):
    from api.app import create_app

    settings = dataclasses.replace(dev_settings, dev_mode=True, rate_limit=1e9, api_timeout=5.0,
                                   operator_token_hash=hashlib.sha256(OPERATOR_TOKEN.encode()).hexdigest())
    async with serve(create_app(settings, dev_env.client)) as url:
        yield url


PAYLOADS = {
    "type": "object",
    "properties": {"payloads": {"type": "array", "maxItems": 4, "items": {
        "type": "object",
        "properties": {"metadata": {"type": "object", "additionalProperties": {"type": "string", "format": "byte"}},
                       "data": {"type": "string", "format": "byte"}}}}},
}
NEGATIVE_ONLY = {"/v1/transfers", "/v1/assistance-requests", "/v1/transfers/batch"}


def with_bodies(raw: dict[str, Any]) -> dict[str, Any]:
    """The schema with request bodies for the codec routes (Temporal's Payloads shape); the /v1
    routes document their own bodies."""
    schema = json.loads(json.dumps(raw))
    for path in ("/codec/decode", "/codec/encode"):
        schema["paths"][path]["post"]["requestBody"] = {
            "required": True, "content": {"application/json": {"schema": dict(PAYLOADS)}}}
    return schema


@dataclasses.dataclass
class Finding:
    operation: str
    mode: str
    status: int
    request: str
    problem: str


def runner(strategy: Any, label: str, mode: GenerationMode, base_url: str, calls: dict[str, int],
           findings: list[Finding], headers: dict[str, str], statuses: dict[str, Counter], *,
           must_refuse: bool = False) -> Any:
    @settings(max_examples=EXAMPLES, deadline=None, database=None, derandomize=True,
              phases=[Phase.explicit, Phase.generate], suppress_health_check=list(HealthCheck))
    @given(case=strategy)
    def run(case: Any) -> None:
        calls[label] = calls.get(label, 0) + 1
        response = case.call(base_url=base_url, headers=headers, timeout=15)
        statuses.setdefault(f"{label} [{mode.value}]", Counter())[response.status_code] += 1
        try:
            case.validate_response(response, checks=[not_a_server_error, response_schema_conformance],
                                   headers=headers)
        except Exception as exc:  # noqa: BLE001 - collected, every finding is reported
            findings.append(Finding(label, mode.value, response.status_code,
                                    case.as_curl_command(headers=headers), str(exc)[:800]))
            return
        if must_refuse and response.status_code < 400 and not every_line_refused(response):
            findings.append(Finding(label, mode.value, response.status_code, case.as_curl_command(headers=headers),
                                    "a body that violates the schema was accepted"))

    return run


def fuzz(raw_schema: dict[str, Any], base_url: str) -> tuple[list[Finding], dict[str, int], list[str],
                                                              dict[str, Counter]]:
    """Runs in a worker thread (schemathesis calls are blocking) while the event loop serves."""
    schema = schemathesis.openapi.from_dict(raw_schema)
    findings: list[Finding] = []
    calls: dict[str, int] = {}
    skipped: list[str] = []
    statuses: dict[str, Counter] = {}  # by operation and mode: the statuses it answered
    started = time.monotonic()
    for result in schema.get_all_operations():
        operation = result.ok()
        label = f"{operation.method.upper()} {operation.path}"
        negative_only = operation.method.lower() == "post" and operation.path in NEGATIVE_ONLY
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            if mode is GenerationMode.POSITIVE and negative_only:
                skipped.append(f"{label} (positive: would open real cases)")
                continue
            if time.monotonic() - started > BUDGET:
                skipped.append(f"{label} ({mode.value})")
                continue
            try:
                strategy = operation.as_strategy(generation_mode=mode)
            except Exception as exc:  # noqa: BLE001 - nothing to negate in an operation without parameters
                skipped.append(f"{label} ({mode.value}: {type(exc).__name__})")
                continue

            run = runner(strategy, label, mode, base_url, calls, findings, credential(operation.path), statuses,
                         must_refuse=negative_only)
            try:
                run()
            except Exception as exc:  # noqa: BLE001 - e.g. hypothesis found nothing to generate
                if "Unsatisfiable" in type(exc).__name__:
                    skipped.append(f"{label} ({mode.value}: unsatisfiable)")
                else:
                    raise
    return findings, calls, skipped, statuses


async def test_the_schema_fuzz_finds_no_server_error_and_no_schema_violation(fuzz_url):
    async with httpx.AsyncClient(base_url=fuzz_url) as http:
        raw = (await http.get("/openapi.json")).json()
    findings, calls, skipped, statuses = await asyncio.wait_for(
        asyncio.to_thread(fuzz, with_bodies(raw), fuzz_url), BUDGET + 60)
    operations = {f"{m.upper()} {p}" for p, ops in raw["paths"].items() for m in ops}
    assert set(calls) == operations, (sorted(operations - set(calls)), skipped)
    assert findings == [], "\n\n".join(f"{f.operation} [{f.mode}] → {f.status}\n{f.request}\n{f.problem}"
                                       for f in findings)
    # the codec bodies were fuzzed: the operators' token passed the door (negative cases may spoil the
    # credential itself: a 401, never a 403), and the codec both converted payloads and refused
    # malformed ones
    for operation in ("POST /codec/decode", "POST /codec/encode"):
        positive, negative = statuses[f"{operation} [positive]"], statuses[f"{operation} [negative]"]
        assert not {401, 403} & set(positive) and 403 not in negative, (operation, positive, negative)
        assert 200 in positive and 422 in positive + negative, (operation, positive, negative)


async def test_every_v1_post_route_declares_its_body_and_errors(fuzz_url):
    """Bodies are read by api/body.py, invisible to FastAPI: api/openapi.py documents them, and the
    one error shape on every status the API answers."""
    async with httpx.AsyncClient(base_url=fuzz_url) as http:
        raw = (await http.get("/openapi.json")).json()
    posts = sorted(p for p, ops in raw["paths"].items() if "post" in ops and p.startswith("/v1"))
    with_body = sorted(p for p in posts if "requestBody" in raw["paths"][p]["post"])
    assert len(posts) == 15 and with_body == posts  # 12 JSON bodies, the two uploads (multipart), the batch (x-ndjson)
    for path in posts:
        responses = raw["paths"][path]["post"]["responses"]
        assert {"401", "403", "404", "409", "422", "429", "503"} <= set(responses)
        assert responses["422"]["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/Error"}
