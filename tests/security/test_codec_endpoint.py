"""The codec endpoints of the Temporal UI over real HTTP: who may call them (the operators'
credential, TREATYFLOW_OPERATOR_TOKEN_HASH; in dev mode also loopback with one of the UI's
origins and no credential — never an authority's key, of any role or state: a state's key decodes
nothing, not even its own cases' payloads), CORS for the UI origins only, errors without stack
traces, and the same codec as the workers'."""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import os
from typing import Any

import httpx
import pytest
import pytest_asyncio
from google.protobuf import json_format
from pydantic import BaseModel
from temporalio.api.common.v1 import Payload, Payloads

from tests.conftest import CODEC_KEYS, DATA_CONVERTER
from tests.support import key, serve
from treatyflow.client import PLAIN_CONVERTER
from treatyflow.codec import ENCODING, KEY_ID, CodecKeys, EncryptionCodec
from treatyflow.samples import BASE, transfer_body

pytestmark = pytest.mark.asyncio(loop_scope="session")

OTHER_ORIGIN = "http://evil.example:8233"
NAME = "Zhanargul Secretova-Testbek"
UI_ORIGINS = ["http://localhost:8233", "http://127.0.0.1:8233"]  # the dev UI, under either loopback name
OPERATOR_TOKEN = "operator-" + hashlib.sha256(os.urandom(16)).hexdigest()[:32]
OPERATOR = {"Authorization": f"Bearer {OPERATOR_TOKEN}"}
EVERY_ROLE = ["kz-gpo", "uz-gpo", "fr-moj", "kz-penal", "kz-court", "kz-afm", "uz-penal", "fr-court"]


class Person(BaseModel):
    full_name: str
    date_of_birth: str


PERSON = Person(full_name=NAME, date_of_birth="1973-07-19")


def as_json(payloads: list[Payload]) -> dict[str, Any]:
    """What the Temporal UI sends: protobuf JSON, bytes in base64."""
    return json_format.MessageToDict(Payloads(payloads=payloads))


def from_json(answer: dict[str, Any]) -> list[Payload]:
    return list(json_format.ParseDict(answer, Payloads()).payloads)


async def encrypted_person() -> list[Payload]:
    payloads = await DATA_CONVERTER.encode([PERSON])
    assert payloads[0].metadata["encoding"] == ENCODING
    return payloads


@pytest_asyncio.fixture(loop_scope="session")
async def http(api_url) -> httpx.AsyncClient:
    async with httpx.AsyncClient(base_url=api_url, timeout=15) as client:
        yield client


@pytest.fixture
def ui_origin(dev_settings) -> str:
    return dev_settings.ui_origin


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def operator_url(dev_env, dev_settings):
    """The session's app (dev mode) served once more with the operators' token configured."""
    from api.app import create_app

    settings = dataclasses.replace(dev_settings, dev_mode=True,
                                   operator_token_hash=hashlib.sha256(OPERATOR_TOKEN.encode()).hexdigest())
    async with serve(create_app(settings, dev_env.client)) as url:
        yield url


@pytest_asyncio.fixture(loop_scope="session")
async def operator(operator_url) -> httpx.AsyncClient:
    async with httpx.AsyncClient(base_url=operator_url, timeout=15) as client:
        yield client


def person_of(response: httpx.Response) -> Person:
    assert response.status_code == 200, response.text
    [decoded] = from_json(response.json())
    assert decoded.metadata["encoding"] == b"json/plain"
    return PLAIN_CONVERTER.payload_converter.from_payloads([decoded], [Person])[0]


def no_stack_trace(response: httpx.Response) -> None:
    text = response.text
    for marker in ("Traceback", 'File "', "line ", "Error:", "site-packages", "/work/"):
        assert marker not in text, text


# ---- who may call -----------------------------------------------------------------------------

@pytest.mark.parametrize("path", ["/codec/decode", "/codec/encode"])
async def test_no_credential_and_no_origin_is_401(http, path):
    r = await http.post(path, json=as_json(await encrypted_person()))
    assert r.status_code == 401, r.text
    assert r.json()["error"]["code"] == "unauthenticated"
    assert NAME not in r.text


@pytest.mark.parametrize("origin", UI_ORIGINS)
async def test_the_dev_ui_origin_from_loopback_decodes_without_a_credential(http, ui_origin, origin):
    """In dev mode the UI is opened as http://localhost:8233 or http://127.0.0.1:8233: both are the
    configured UI (port 8233), both decode from loopback."""
    assert ui_origin == "http://localhost:8233"
    r = await http.post("/codec/decode", json=as_json(await encrypted_person()), headers={"Origin": origin})
    assert person_of(r) == PERSON
    assert r.headers.get("access-control-allow-origin") == origin


@pytest.mark.parametrize("origin", [OTHER_ORIGIN, "http://localhost:8234", "http://127.0.0.1:8234",
                                    "https://localhost:8233", "http://localhost:8233/", "http://localhost",
                                    "null", ""])
async def test_any_other_origin_without_a_credential_is_401(http, origin):
    r = await http.post("/codec/decode", json=as_json(await encrypted_person()), headers={"Origin": origin})
    assert r.status_code == 401, r.text
    assert NAME not in r.text


async def test_the_ui_origin_with_a_bad_credential_is_judged_by_the_credential(http, ui_origin):
    """A request that carries Authorization is judged by it, whatever its Origin."""
    body = as_json(await encrypted_person())
    r = await http.post("/codec/decode", json=body, headers={"Origin": ui_origin, "Authorization": "Bearer nope"})
    assert r.status_code == 401, r.text
    for authority in ("kz-penal", "kz-gpo"):
        r = await http.post("/codec/decode", json=body, headers={"Origin": ui_origin, **key(authority)})
        assert r.status_code == 403, r.text
        assert NAME not in r.text


@pytest.mark.parametrize("authority", EVERY_ROLE)
@pytest.mark.parametrize("path", ["/codec/decode", "/codec/encode"])
async def test_an_authoritys_key_of_any_role_is_403(operator, authority, path):
    """A valid key, but not for this: the codec is the operators'. Central authorities included."""
    r = await operator.post(path, json=as_json(await encrypted_person()), headers=key(authority))
    assert r.status_code == 403, r.text
    assert r.json()["error"]["code"] == "forbidden"
    assert NAME not in r.text and "Secretova" not in r.text


async def test_the_operators_token_decodes(operator):
    r = await operator.post("/codec/decode", json=as_json(await encrypted_person()), headers=OPERATOR)
    assert person_of(r) == PERSON
    assert "access-control-allow-origin" not in r.headers


async def test_the_operators_token_from_another_origin_decodes_without_cors(operator):
    """The token is the credential; a foreign page still cannot read the answer (no CORS header)."""
    r = await operator.post("/codec/decode", json=as_json(await encrypted_person()),
                            headers={"Origin": OTHER_ORIGIN, **OPERATOR})
    assert person_of(r) == PERSON
    assert "access-control-allow-origin" not in r.headers


@pytest.mark.parametrize("token", ["-", OPERATOR_TOKEN[:-1], OPERATOR_TOKEN + "0", OPERATOR_TOKEN.upper(),
                                   hashlib.sha256(OPERATOR_TOKEN.encode()).hexdigest()])
async def test_anything_but_the_operators_token_is_401(operator, token):
    r = await operator.post("/codec/decode", json=as_json(await encrypted_person()),
                            headers={"Authorization": f"Bearer {token}"})
    assert r.status_code == 401, r.text
    assert NAME not in r.text


# ---- the attack: a copied ciphertext ----------------------------------------------------------

COPIED_NAME = "Bakhytzhan Copiedov-Ciphertest"


async def stored_input(client, workflow_id: str) -> list[Payload]:
    """The case's opening payloads as the Temporal server stores them (what its database, a backup
    or a screenshot of the UI without the codec hands anyone): ciphertext."""
    handle = client.get_workflow_handle(workflow_id)
    async for event in handle.fetch_history_events():
        payloads = list(event.workflow_execution_started_event_attributes.input.payloads)
        assert payloads and all(p.metadata["encoding"] == ENCODING for p in payloads)
        return payloads
    raise AssertionError(f"no history for {workflow_id}")


async def test_a_copied_ciphertext_of_a_kz_uz_case_decodes_for_no_authority(http, operator, dev_client):
    """A third state's central authority (France) holding a copy of a KZ–UZ case's stored payloads
    gets 403 and learns nothing — not even whether the copy is real; the two parties' own central
    authorities get the same (a state's key decodes nothing); the operators' token reads it."""
    body = transfer_body(person={**BASE["person"], "full_name": COPIED_NAME})
    opened = await http.post("/v1/transfers", json=body, headers=key("kz-gpo"))
    assert opened.status_code == 201, opened.text
    copied = as_json(await stored_input(dev_client, f"transfer:{body['reference']}"))
    garbage = {"payloads": [{"metadata": {"encoding": base64.b64encode(ENCODING).decode()},
                             "data": base64.b64encode(os.urandom(64)).decode()}]}

    refusals = {}
    for authority in ("fr-moj", "it-moj", "kz-gpo", "uz-gpo", "kz-penal"):
        for path in ("/codec/decode", "/codec/encode"):
            r = await operator.post(path, json=copied, headers=key(authority))
            assert r.status_code == 403, (authority, path, r.text)
            assert COPIED_NAME not in r.text and body["reference"] not in r.text
            assert "payloads" not in r.json()
            refusals[(authority, path)] = r.json()
        # the same answer for a real ciphertext and for random bytes: nothing is learnt from it
        fake = await operator.post("/codec/decode", json=garbage, headers=key(authority))
        assert fake.status_code == 403 and fake.json() == refusals[(authority, "/codec/decode")]
    r = await operator.post("/codec/decode", json=copied, headers={"Origin": UI_ORIGINS[0], **key("fr-moj")})
    assert r.status_code == 403 and COPIED_NAME not in r.text  # the UI's origin does not help a key

    decoded = await operator.post("/codec/decode", json=copied, headers=OPERATOR)
    assert decoded.status_code == 200, decoded.text
    assert COPIED_NAME.encode() in b"".join(p.data for p in from_json(decoded.json()))  # it was the real thing


# ---- CORS -------------------------------------------------------------------------------------

def preflight(origin: str) -> dict[str, str]:
    return {"Origin": origin, "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "content-type,x-namespace"}


@pytest.mark.parametrize("origin", UI_ORIGINS)
@pytest.mark.parametrize("path", ["/codec/decode", "/codec/encode"])
async def test_a_preflight_from_the_ui_origin_is_allowed(http, origin, path):
    r = await http.options(path, headers=preflight(origin))
    assert r.status_code == 200, r.text
    assert r.headers["access-control-allow-origin"] == origin
    assert "POST" in r.headers["access-control-allow-methods"]
    assert "x-namespace" in r.headers["access-control-allow-headers"].lower()


@pytest.mark.parametrize("origin", [OTHER_ORIGIN, "http://localhost:9999", "http://127.0.0.1:9999", "null"])
async def test_a_preflight_from_another_origin_is_not_allowed(http, origin):
    r = await http.options("/codec/decode", headers=preflight(origin))
    assert r.status_code in (400, 403), r.text
    assert r.headers.get("access-control-allow-origin") in (None, "")
    assert "*" not in r.headers.get("access-control-allow-origin", "")


async def test_no_wildcard_cors_anywhere(http, ui_origin):
    for path in ("/v1/transfers", "/healthz"):
        r = await http.get(path, headers={"Origin": OTHER_ORIGIN, **key("kz-gpo")})
        assert r.headers.get("access-control-allow-origin") is None, (path, r.headers)


# ---- bodies and keys --------------------------------------------------------------------------

@pytest.mark.parametrize("body", [
    b"not json at all",
    b"",
    b"null",
    b'{"payloads": "x"}',
    b'{"payloads": [{"metadata": {"encoding": 5}}]}',
    b'{"unknown": 1}',
    b"[" * 5000,
    b'"\\ud800"',
])
async def test_a_garbage_body_is_422_without_a_stack_trace(operator, body):
    r = await operator.post("/codec/decode", content=body, headers={**OPERATOR, "Content-Type": "application/json"})
    assert r.status_code == 422, r.text
    assert r.json()["error"]["fields"] == ["payloads"]
    no_stack_trace(r)


@pytest.mark.parametrize("path", ["/codec/decode", "/codec/encode"])
async def test_a_body_that_is_not_utf8_is_422(operator, path):
    """Once a 500 (the UTF-8 decoding error escaped convert()); fixed in api/codec.py."""
    r = await operator.post(path, content=b"\xff\xfe{}", headers={**OPERATOR, "Content-Type": "application/json"})
    no_stack_trace(r)
    assert r.status_code == 422, r.text


async def test_a_payload_under_an_unknown_key_is_422_naming_the_key(operator):
    foreign = EncryptionCodec(CodecKeys(current="retired-2019", keys={"retired-2019": os.urandom(32)}))
    payloads = await foreign.encode(await PLAIN_CONVERTER.encode([PERSON]))
    r = await operator.post("/codec/decode", json=as_json(payloads), headers=OPERATOR)
    assert r.status_code == 422, r.text
    error = r.json()["error"]
    assert error["code"] == "unknown_key"
    assert "'retired-2019'" in error["message"] and "not configured" in error["message"]
    assert error["fields"] == ["payloads"]
    no_stack_trace(r)


async def test_a_tampered_payload_is_422_without_a_stack_trace(operator):
    [sealed] = await encrypted_person()
    tampered = Payload(metadata=dict(sealed.metadata), data=sealed.data[:-1] + bytes([sealed.data[-1] ^ 1]))
    relabelled = Payload(metadata={"encoding": ENCODING}, data=sealed.data)  # no key id
    for payloads, code in (([tampered], "undecodable"), ([relabelled], "unknown_key")):
        r = await operator.post("/codec/decode", json=as_json(payloads), headers=OPERATOR)
        assert r.status_code == 422, r.text
        assert r.json()["error"]["code"] == code
        no_stack_trace(r)
        assert NAME not in r.text


async def test_unencrypted_payloads_pass_through_decode(operator):
    payloads = await PLAIN_CONVERTER.encode([PERSON])
    r = await operator.post("/codec/decode", json=as_json(payloads), headers=OPERATOR)
    assert person_of(r) == PERSON


async def test_encode_then_decode_round_trips_with_the_workers_key(http, ui_origin):
    payloads = await PLAIN_CONVERTER.encode([PERSON])
    r = await http.post("/codec/encode", json=as_json(payloads), headers={"Origin": ui_origin})
    assert r.status_code == 200, r.text
    [sealed] = from_json(r.json())
    assert sealed.metadata["encoding"] == ENCODING
    assert sealed.metadata[KEY_ID] == CODEC_KEYS.current.encode()
    assert NAME not in r.text and b"Secretova" not in base64.b64decode(r.json()["payloads"][0]["data"])
    assert await DATA_CONVERTER.decode([sealed], [Person]) == [PERSON]  # the workers' converter reads it
    back = await http.post("/codec/decode", json=r.json(), headers={"Origin": ui_origin})
    assert person_of(back) == PERSON


async def test_many_payloads_keep_their_order(operator):
    people = [Person(full_name=f"{NAME} {i}", date_of_birth="1973-07-19") for i in range(5)]
    sealed = await DATA_CONVERTER.encode(people)
    r = await operator.post("/codec/decode", json=as_json(sealed), headers=OPERATOR)
    assert r.status_code == 200, r.text
    decoded = PLAIN_CONVERTER.payload_converter.from_payloads(from_json(r.json()), [Person] * 5)
    assert decoded == people


# ---- production mode ----------------------------------------------------------------------------

PRODUCTION_KEY = "prod-" + hashlib.sha256(b"kz-gpo codec test").hexdigest()[:24]
PENAL_KEY = "prod-" + hashlib.sha256(b"kz-penal codec test").hexdigest()[:24]


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def production_url(dev_env, dev_settings):
    from api.app import create_app

    settings = dataclasses.replace(
        dev_settings, dev_mode=False,
        api_keys=f"kz-gpo:{hashlib.sha256(PRODUCTION_KEY.encode()).hexdigest()},"
                 f"kz-penal:{hashlib.sha256(PENAL_KEY.encode()).hexdigest()}",
        operator_token_hash=hashlib.sha256(OPERATOR_TOKEN.encode()).hexdigest())
    async with serve(create_app(settings, dev_env.client)) as url:
        yield url


@pytest.mark.parametrize("origin", UI_ORIGINS)
async def test_in_production_the_ui_origin_alone_is_401(production_url, origin):
    async with httpx.AsyncClient(base_url=production_url) as http:
        r = await http.post("/codec/decode", json=as_json(await encrypted_person()), headers={"Origin": origin})
        assert r.status_code == 401, r.text


@pytest.mark.parametrize("authority", ["kz-gpo", "uz-gpo", "kz-penal"])
async def test_in_production_demo_keys_are_401(production_url, ui_origin, authority):
    async with httpx.AsyncClient(base_url=production_url) as http:
        for headers in (key(authority), {**key(authority), "Origin": ui_origin}):
            r = await http.post("/codec/decode", json=as_json(await encrypted_person()), headers=headers)
            assert r.status_code == 401, r.text


async def test_in_production_only_the_operators_token_decodes(production_url):
    async with httpx.AsyncClient(base_url=production_url) as http:
        body = as_json(await encrypted_person())
        for authority_key in (PRODUCTION_KEY, PENAL_KEY):  # a central authority's real key too
            r = await http.post("/codec/decode", json=body, headers={"Authorization": f"Bearer {authority_key}"})
            assert r.status_code == 403, r.text
            assert NAME not in r.text
        r = await http.post("/codec/decode", json=body, headers=OPERATOR)
        assert person_of(r) == PERSON
