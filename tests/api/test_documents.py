"""The case file over real HTTP (API.md, "The case file"): documents uploaded as a stream into the
encrypted store and recorded in their case, listed, read and downloaded with the case view's
visibility; the content type decided from the bytes; 413 past the limit without the rest read;
nothing half-written after any refusal; an executing authority adds documents to its own
measure only."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from tests.api.helpers import case_at, http, open_case  # noqa: F401 - fixture
from tests.stores.test_documents import pdf, png
from tests.support import key, poll
from treatyflow.samples import assistance_body

pytestmark = pytest.mark.asyncio(loop_scope="session")

ELF = b"\x7fELF\x02\x01\x01\x00" + bytes(8) + b"\x02\x00\x3e\x00" + bytes(200)


def stored_files(settings) -> set[str]:
    """The documents the app's file store holds (not its spool)."""
    root = Path(settings.documents_dir)
    return {p.name for p in root.rglob("doc-*") if p.is_file() and "spool" not in p.parts and not p.name.startswith(".")}


def uploaded(view_or_items: dict | list) -> list[dict]:
    """The documents people uploaded (not the letters the system writes to the person)."""
    items = view_or_items["documents"] if isinstance(view_or_items, dict) else view_or_items
    return [d for d in items if d["type"] != "person_notice"]


async def opened_with_its_letter(http: httpx.AsyncClient) -> str:
    """A new KZ→UZ case, once the letter on its eligibility is in its file (written in the
    background: the store's files are compared before and after a refusal only once it is)."""
    ref = await open_case(http)

    async def current() -> dict:
        return (await http.get(f"/v1/transfers/{ref}", headers=key("kz-gpo"))).json()
    view = await poll(current, lambda v: any(d["type"] == "person_notice" for d in v["documents"]), timeout=20)
    assert [d["type"] for d in view["documents"]] == ["person_notice"], view["documents"]
    return ref


async def upload(http: httpx.AsyncClient, path: str, by: str, content: bytes, filename: str = "judgment.pdf",
                 header_type: str = "application/octet-stream", **fields: str) -> httpx.Response:
    form = {"type": "judgment", "title": "Приговор суда", **fields}
    return await http.post(f"{path}/documents", headers=key(by), data=form,
                           files={"file": (filename, content, header_type)})


async def test_a_document_is_stored_recorded_listed_and_downloaded_as_it_was(http, api_settings):
    ref = await open_case(http)
    path = f"/v1/transfers/{ref}"
    content = pdf()
    r = await upload(http, path, "kz-gpo", content, language="ru", header_type="image/png")
    assert r.status_code == 201, r.text
    document = r.json()
    assert {k: document[k] for k in ("type", "title", "language", "measure_id", "filename", "content_type", "size",
                                     "sha256", "uploaded_by")} == {
        "type": "judgment", "title": "Приговор суда", "language": "ru", "measure_id": None,
        "filename": "judgment.pdf", "content_type": "application/pdf", "size": len(content),
        "sha256": hashlib.sha256(content).hexdigest(), "uploaded_by": "kz-gpo"}
    view = (await http.get(path, headers=key("uz-gpo"))).json()  # the other state reads it too
    assert uploaded(view) == [document]
    added = [e for e in view["events"] if e["action"] == "document_added" and e["actor"] != "system"]
    assert [(e["actor"], e["detail"]) for e in added] == [("kz-gpo", f"judgment {document['document_id']}")]
    assert "Приговор" not in str(view["events"])  # the title is in the record, not in the trail
    listed = await http.get(f"{path}/documents", headers=key("uz-gpo"))
    assert uploaded(listed.json()["items"]) == [document]
    one = await http.get(f"{path}/documents/{document['document_id']}", headers=key("kz-gpo"))
    assert one.json() == document
    got = await http.get(f"{path}/documents/{document['document_id']}/content", headers=key("uz-gpo"))
    assert got.status_code == 200 and got.content == content
    assert got.headers["content-type"] == "application/pdf"
    assert got.headers["etag"] == f'"{document["sha256"]}"'
    assert got.headers["content-disposition"].startswith("attachment")
    assert document["document_id"] in stored_files(api_settings)
    assert content not in b"".join(p.read_bytes() for p in Path(api_settings.documents_dir).rglob("doc-*")
                                   if p.is_file())  # encrypted at rest


async def test_a_png_renamed_pdf_is_a_png_and_an_executable_is_refused_with_nothing_kept(http, api_settings):
    ref = await opened_with_its_letter(http)
    path = f"/v1/transfers/{ref}"
    r = await upload(http, path, "kz-gpo", png(), filename="scan.pdf", header_type="application/pdf",
                     type="medical_report", title="Scan")
    assert r.status_code == 201 and r.json()["content_type"] == "image/png", r.text
    before = stored_files(api_settings)
    r = await upload(http, path, "kz-gpo", ELF, filename="judgment.pdf", header_type="application/pdf")
    assert r.status_code == 415, r.text
    assert stored_files(api_settings) == before
    assert len(uploaded((await http.get(path, headers=key("kz-gpo"))).json())) == 1


async def test_what_is_wrong_with_an_upload_is_named_and_leaves_nothing(http, api_settings):
    ref = await opened_with_its_letter(http)
    path = f"/v1/transfers/{ref}"
    before = stored_files(api_settings)
    cases = [
        ({"title": ""}, "title"), ({"type": "person_notice"}, "type"), ({"type": "court_order"}, "type"),
        ({"language": "Russian"}, "language"), ({"measure_id": "m1"}, "measure_id"), ({"extra": "x"}, "extra"),
    ]
    for fields, field in cases:
        r = await upload(http, path, "kz-gpo", pdf(), **fields)
        assert r.status_code == 422 and r.json()["error"]["fields"] == [field], (fields, r.text)
    r = await upload(http, path, "kz-gpo", b"")
    assert r.status_code == 422 and r.json()["error"]["fields"] == ["file"], r.text
    r = await http.post(f"{path}/documents", headers=key("kz-gpo"), data={"type": "judgment", "title": "No file"})
    assert r.status_code == 422 and r.json()["error"]["fields"] == ["file"], r.text
    r = await http.post(f"{path}/documents", headers=key("kz-gpo"), json={"type": "judgment"})
    assert r.status_code == 422 and r.json()["error"]["fields"] == ["file"], r.text
    two = await http.post(f"{path}/documents", headers=key("kz-gpo"), data={"type": "judgment", "title": "Two"},
                          files=[("file", ("a.pdf", pdf())), ("file", ("b.pdf", pdf()))])
    assert two.status_code == 422 and two.json()["error"]["fields"] == ["file"], two.text
    assert stored_files(api_settings) == before
    assert uploaded((await http.get(path, headers=key("kz-gpo"))).json()) == []


async def test_an_upload_past_the_limit_is_413_without_the_rest_read(http, api_settings):
    ref = await opened_with_its_letter(http)
    path = f"/v1/transfers/{ref}"
    limit = api_settings.document_limit_bytes
    host, port = str(http.base_url.host), http.base_url.port
    reader, writer = await asyncio.open_connection(host, port)  # a length declared, then only a little sent
    authorization = key("kz-gpo")["Authorization"]
    writer.write(f"POST {path}/documents HTTP/1.1\r\nHost: {host}\r\nAuthorization: {authorization}\r\n"
                 f"Content-Type: multipart/form-data; boundary=x\r\nContent-Length: {limit * 2}\r\n\r\n--x\r\n"
                 .encode())
    await writer.drain()
    status = (await asyncio.wait_for(reader.readline(), 10)).decode()
    writer.close()
    assert status.split()[1] == "413", status
    before = stored_files(api_settings)

    async def endless() -> AsyncIterator[bytes]:  # chunked: no length declared; the store counts
        head = (b'--b\r\nContent-Disposition: form-data; name="type"\r\n\r\njudgment\r\n'
                b'--b\r\nContent-Disposition: form-data; name="title"\r\n\r\nBig\r\n'
                b'--b\r\nContent-Disposition: form-data; name="file"; filename="big.txt"\r\n'
                b"Content-Type: text/plain\r\n\r\n")
        yield head
        chunk = b"a" * 1_048_576
        for _ in range(limit // len(chunk) + 40):
            yield chunk
    try:
        r = await http.post(f"{path}/documents", content=endless(),
                            headers={**key("kz-gpo"), "content-type": "multipart/form-data; boundary=b"})
        assert r.status_code == 413, r.text
    except httpx.RemoteProtocolError:
        pass  # the server answered and closed before the client had sent all: refused either way
    assert stored_files(api_settings) == before
    assert uploaded((await http.get(path, headers=key("kz-gpo"))).json()) == []


async def test_who_may_add_and_read_documents(http):
    ref = await open_case(http)
    path = f"/v1/transfers/{ref}"
    assert (await upload(http, path, "uz-penal", pdf(), type="decision", title="Order")).status_code == 201
    r = await upload(http, path, "fr-moj", pdf())
    assert r.status_code == 404, r.text  # a third state: no such case
    assert (await http.get(f"{path}/documents", headers=key("fr-moj"))).status_code == 404
    assert (await http.get(f"{path}/documents", headers={})).status_code == 401
    done = await case_at(http, "withdrawn")
    r = await upload(http, f"/v1/transfers/{done}", "kz-gpo", pdf())
    assert r.status_code == 409, r.text


async def test_an_executing_authority_adds_documents_to_its_own_measure_only(http):
    body = assistance_body()
    path = f"/v1/assistance-requests/{body['reference']}"
    assert (await http.post("/v1/assistance-requests", json=body, headers=key("fr-moj"))).status_code == 201
    r = await upload(http, path, "fr-moj", pdf(), type="request_letter", title="Request letter", language="fr")
    assert r.status_code == 201, r.text
    r = await http.post(f"{path}/review", json={"decision": "accept"}, headers=key("kz-gpo"))
    assert r.status_code == 200, r.text

    async def current() -> dict:
        return (await http.get(path, headers=key("kz-gpo"))).json()
    view = await poll(current, lambda v: any(m["stage"] == "executing" for m in v["measures"]), timeout=10)
    routed = {m["id"]: m["assigned_to"] for m in view["measures"]}
    assert routed["m1"] == "kz-afm" and routed["m2"] == "kz-police"
    r = await upload(http, path, "kz-afm", pdf(), type="evidence", title="Statement of account", measure_id="m1")
    assert r.status_code == 201 and r.json()["measure_id"] == "m1", r.text
    r = await upload(http, path, "kz-afm", pdf(), type="evidence", title="Not mine", measure_id="m2")
    assert r.status_code == 403, r.text
    r = await upload(http, path, "kz-afm", pdf(), type="evidence", title="No measure")
    assert r.status_code == 403, r.text
    r = await upload(http, path, "kz-afm", pdf(), type="judgment", title="Wrong type", measure_id="m1")
    assert r.status_code == 422 and r.json()["error"]["fields"] == ["type"], r.text
    documents = (await current())["documents"]
    assert [(d["uploaded_by"], d["measure_id"], d["type"]) for d in documents] == [
        ("fr-moj", None, "request_letter"), ("kz-afm", "m1", "evidence")]
    evidence_document, letter = documents[1], documents[0]

    def result(document_id: str, **item: str) -> dict:
        return {"outcome": "executed", "evidence": [
            {"item_id": "e1", "description": "Statement of account", "document_id": document_id,
             "collected_on": "2026-11-20", **item}]}
    for wrong in (letter["document_id"], "doc-" + "a" * 26):  # not an evidence document of m1; none at all
        r = await http.post(f"{path}/measures/m1/result", json=result(wrong), headers=key("kz-afm"))
        assert r.status_code == 422 and r.json()["error"]["fields"] == ["evidence.0.document_id"], r.text
    r = await http.post(f"{path}/measures/m1/result", json=result(evidence_document["document_id"], sha256="0" * 64),
                        headers=key("kz-afm"))
    assert r.status_code == 422 and r.json()["error"]["fields"] == ["evidence.0.sha256"], r.text
    r = await http.post(f"{path}/measures/m1/result", json={"outcome": "executed", "evidence": [
        {"item_id": "e1", "description": "No digest", "collected_on": "2026-11-20"}]}, headers=key("kz-afm"))
    assert r.status_code == 422 and r.json()["error"]["fields"] == ["evidence.0.sha256"], r.text
    r = await http.post(f"{path}/measures/m1/result", json=result(evidence_document["document_id"]),
                        headers=key("kz-afm"))
    assert r.status_code == 200, r.text
    (m1,) = [m for m in r.json()["measures"] if m["id"] == "m1"]
    assert [(e["document_id"], e["sha256"]) for e in m1["evidence"]] == [
        (evidence_document["document_id"], evidence_document["sha256"])]  # the manifest takes this digest


async def test_a_content_stored_but_never_recorded_is_swept_and_recorded_ones_stay(http, dev_env, api_settings):
    """A crash between the store and the case (the content written, the update never sent) leaves
    an orphan; the API's sweep removes it and nothing its case records."""
    from types import SimpleNamespace
    from datetime import timedelta

    from api.documents import sweep_orphans
    from stores.archive import open_archive
    from stores.documents import open_documents
    from treatyflow.client import codec_keys

    ref = await open_case(http)
    recorded = (await upload(http, f"/v1/transfers/{ref}", "kz-gpo", pdf())).json()
    keys = codec_keys(api_settings)
    store = open_documents(url=None, directory=Path(api_settings.documents_dir), keys=keys)

    async def content() -> AsyncIterator[bytes]:
        yield pdf()
    orphan = await store.write(content(), kind="transfer", reference=ref)  # ... and then the API process died
    app = SimpleNamespace(client=dev_env.client, settings=api_settings, documents=store,
                          archive=open_archive(url=None, directory=api_settings.archive_dir,
                                               codec=dev_env.client.data_converter.payload_codec))
    assert await sweep_orphans(app, older_than=timedelta(hours=1)) == []  # too young to be an orphan
    removed = await sweep_orphans(app, older_than=timedelta(0))
    assert orphan.document_id in removed and recorded["document_id"] not in removed
    assert await store.info("transfer", ref, orphan.document_id) is None
    got = await http.get(f"/v1/transfers/{ref}/documents/{recorded['document_id']}/content", headers=key("kz-gpo"))
    assert got.content == pdf()
