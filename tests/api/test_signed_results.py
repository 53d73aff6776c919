"""Signed results as a requesting state checks them, over real HTTP against the session's app and
worker: a request for assistance driven to `completed`, its `results.signature` verified with an
independent JOSE library (jwcrypto — neither joserfc nor the code that signed) against the JWK set
fetched from `GET /v1/keys` without authentication, over the manifest bytes recomputed from the
view's `results.items` as API.md defines them; one byte changed in the manifest, and it fails."""

from __future__ import annotations

import hashlib
import json
from typing import Any

import httpx
import pytest
from jwcrypto import jwk, jws
from jwcrypto.common import JWException

from domain.reference import reference
from tests.api.helpers import http  # noqa: F401 - fixture
from tests.support import key, poll
from treatyflow.samples import assistance_body, transfer_body

pytestmark = pytest.mark.asyncio(loop_scope="session")

# a description outside ASCII: the manifest's bytes are UTF-8 as they are (ensure_ascii=False)
EVIDENCE = {"m1": ("kz-afm", "Выписка по счёту № 4"), "m2": ("kz-police", "Protokoll der Durchsuchung"),
            "m3": ("kz-police", "Photographs of the premises")}


def manifest_bytes(items: list[dict[str, Any]]) -> bytes:
    """API.md's encoding, written out here rather than taken from the product."""
    return json.dumps(items, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


async def completed_request(http: httpx.AsyncClient) -> dict[str, Any]:
    """France asks Kazakhstan; every measure executed with one evidence item: the completed view."""
    body = assistance_body()
    ref = body["reference"]
    path = f"/v1/assistance-requests/{ref}"

    async def current() -> dict[str, Any]:
        r = await http.get(path, headers=key("fr-moj"))
        assert r.status_code == 200, r.text
        return r.json()

    def stage_of(view: dict[str, Any], measure: str) -> str:
        return next(m["stage"] for m in view["measures"] if m["id"] == measure)

    r = await http.post("/v1/assistance-requests", json=body, headers=key("fr-moj"))
    assert r.status_code == 201, r.text
    r = await http.post(f"{path}/review", json={"decision": "accept"}, headers=key("kz-gpo"))
    assert r.status_code == 200, r.text
    waiting = await poll(current, lambda v: stage_of(v, "m2") == "awaiting_authorisation", timeout=10)
    assert stage_of(waiting, "m2") == "awaiting_authorisation", waiting
    r = await http.post(f"{path}/measures/m2/authorisation", json={"granted": True}, headers=key("kz-court"))
    assert r.status_code == 200, r.text
    await poll(current, lambda v: all(m["stage"] == "executing" for m in v["measures"]), timeout=10)
    for number, (measure, (who, description)) in enumerate(EVIDENCE.items()):
        evidence = [{"item_id": "e1", "description": description, "sha256": hashlib.sha256(measure.encode()).hexdigest(),
                     "collected_on": "2026-11-2" + str(number)}]
        r = await http.post(f"{path}/measures/{measure}/result", json={"outcome": "executed", "evidence": evidence},
                            headers=key(who))
        assert r.status_code == 200, r.text
    done = await poll(current, lambda v: v["results"] is not None, timeout=15)
    assert done["stage"] == "completed" and done["requested_state"] == "KZ", done
    return done


def verifies(token: str, key_set: jwk.JWKSet, payload: bytes) -> bool:
    """The requesting state's check, with jwcrypto: the key the token names, over the detached payload."""
    signed = jws.JWS()
    signed.deserialize(token)
    public = key_set.get_key(signed.jose_header["kid"])
    assert public is not None, f"the JWK set has no key {signed.jose_header['kid']!r}"
    try:
        signed.verify(public, alg="EdDSA", detached_payload=payload)
    except JWException:
        return False
    return True


async def test_the_results_signature_verifies_with_the_published_keys_and_fails_for_a_changed_manifest(http):
    view = await completed_request(http)
    results = view["results"]
    items = results["items"]
    assert [(i["measure_id"], i["item_id"]) for i in items] == [("m1", "e1"), ("m2", "e1"), ("m3", "e1")]
    payload = manifest_bytes(items)
    assert hashlib.sha256(payload).hexdigest() == results["manifest_sha256"]

    published = await http.get("/v1/keys")  # no Authorization header
    assert published.status_code == 200, published.text
    assert published.headers["content-type"].startswith("application/json")
    key_set = jwk.JWKSet.from_json(published.text)

    token = results["signature"]
    header, middle, _ = token.split(".")
    assert middle == "", "a detached payload: header..signature"
    protected = json.loads(jws.base64url_decode(header))
    assert protected["alg"] == "EdDSA"
    named = next(k for k in published.json()["keys"] if k["kid"] == protected["kid"])
    assert named["state"] == view["requested_state"]  # signed by the requested state's key
    assert (named["kty"], named["crv"], named["use"], named["alg"]) == ("OKP", "Ed25519", "sig", "EdDSA")

    assert verifies(token, key_set, payload)

    # one byte of the manifest changed: an item's description, an item's digest
    described = [dict(i) for i in items]
    described[0]["description"] = described[0]["description"].replace("4", "5")
    assert len(manifest_bytes(described)) == len(payload)
    assert not verifies(token, key_set, manifest_bytes(described))
    digested = [dict(i) for i in items]
    digested[1]["sha256"] = ("0" if digested[1]["sha256"][0] != "0" else "1") + digested[1]["sha256"][1:]
    assert not verifies(token, key_set, manifest_bytes(digested))
    # and the bytes as a careless verifier might recompute them (ASCII escapes) are not the manifest
    assert not verifies(token, key_set, json.dumps(items, sort_keys=True, separators=(",", ":")).encode())

    # the requesting state's own reading of the case gives the same signature the requested state sees
    kz = await http.get(f"/v1/assistance-requests/{view['reference']}", headers=key("kz-gpo"))
    assert kz.json()["results"]["signature"] == token


async def test_the_keys_are_every_states_public_keys_without_authentication(http):
    answer = await http.get("/v1/keys")
    assert answer.status_code == 200
    assert "public" in answer.headers["cache-control"]
    keys = answer.json()["keys"]
    # each state of the authority directory has its current key there
    assert {k["state"] for k in keys} == {a.state for a in reference().authorities}
    for published in keys:
        assert set(published) == {"kty", "crv", "x", "kid", "alg", "use", "state"}, published  # no "d"
    assert len({k["kid"] for k in keys}) == len(keys)
    # an authority's key changes nothing, and an unknown one is not refused either: the keys are public
    assert (await http.get("/v1/keys", headers=key("kz-gpo"))).json() == answer.json()
    assert (await http.get("/v1/keys", headers={"Authorization": "Bearer nobody"})).status_code == 200


async def test_the_keys_route_is_documented_as_public(http):
    schema = (await http.get("/openapi.json")).json()
    operation = schema["paths"]["/v1/keys"]["get"]
    assert "security" not in operation and set(operation["responses"]) == {"200"}
    assert operation["responses"]["200"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/KeySet"}
    assert schema["paths"]["/v1/stats"]["get"]["security"] == [{"bearer": []}]  # the others are unchanged


def unzipped(content: bytes) -> dict[str, bytes]:
    import io
    import zipfile

    with zipfile.ZipFile(io.BytesIO(content)) as archive:
        return {name: archive.read(name) for name in archive.namelist()}


def index_holds(files: dict[str, bytes], key_set: jwk.JWKSet) -> bool:
    """The receiving state's check of an export: ``index.jws`` over ``index.json`` with the key it
    names, then every file the index lists, by its size and digest, and no file it does not list."""
    index = files["index.json"]
    if not verifies(files["index.jws"].decode(), key_set, index):
        return False
    listed = {f["name"]: f for f in json.loads(index)["files"]}
    if set(listed) != set(files) - {"index.json", "index.jws"}:
        return False
    return all(len(files[n]) == f["size"] and hashlib.sha256(files[n]).hexdigest() == f["sha256"]
               for n, f in listed.items())


async def test_an_exported_case_file_verifies_and_fails_for_a_changed_byte(http):
    from tests.stores.test_documents import pdf

    view = await completed_request(http)
    ref = view["reference"]
    path = f"/v1/assistance-requests/{ref}"
    r = await http.get(f"{path}/export", headers=key("fr-moj"))
    assert r.status_code == 200 and r.headers["content-type"] == "application/zip", r.text[:300]
    files = unzipped(r.content)
    key_set = jwk.JWKSet.from_json((await http.get("/v1/keys")).text)
    assert {"case.json", "manifest.json", "manifest.jws", "index.json", "index.jws"} <= set(files)
    assert json.loads(files["case.json"])["reference"] == ref
    assert verifies(files["manifest.jws"].decode(), key_set, files["manifest.json"])  # the requested state's
    assert hashlib.sha256(files["manifest.json"]).hexdigest() == view["results"]["manifest_sha256"]
    assert index_holds(files, key_set)
    signer = json.loads(jws.base64url_decode(files["index.jws"].decode().split(".")[0]))["kid"]
    assert next(k for k in json.loads((await http.get("/v1/keys")).text)["keys"] if k["kid"] == signer)["state"] == "FR"
    changed = dict(files, **{"manifest.json": files["manifest.json"].replace(b"e1", b"e2", 1)})
    assert not index_holds(changed, key_set)

    # a transfer's file with its documents: each in the zip as stored; one byte changed, and it fails
    body = transfer_body()
    assert (await http.post("/v1/transfers", json=body, headers=key("kz-gpo"))).status_code == 201
    tpath = f"/v1/transfers/{body['reference']}"
    for title in ("Judgment", "Statement of the sentence served"):
        up = await http.post(f"{tpath}/documents", headers=key("kz-gpo"), data={"type": "judgment", "title": title},
                             files={"file": ("приговор.pdf", pdf(), "application/pdf")})
        assert up.status_code == 201, up.text
    r = await http.get(f"{tpath}/export", headers=key("uz-gpo"))
    files = unzipped(r.content)
    stored = [n for n in files if n.startswith("documents/") and n.endswith("приговор.pdf")]
    assert len(stored) == 2 and all(files[n] == pdf() for n in stored)
    assert any("eligibility-decided" in n for n in files)  # the letter to the person is in the file too
    assert index_holds(files, key_set)
    tampered = bytearray(files[stored[0]])
    tampered[-10] ^= 1
    assert not index_holds(dict(files, **{stored[0]: bytes(tampered)}), key_set)
    assert (await http.get(f"{tpath}/export", headers=key("fr-moj"))).status_code == 404  # a third state
