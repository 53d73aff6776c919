"""The case file in the web application: a case page lists its documents, a person adds one through
the page's form (multipart, its CSRF token checked, the person named in the trail) and downloads it;
what the API refuses is shown beside the form with what was typed kept. Over HTTP, and in the browser."""

from __future__ import annotations

import re

import httpx
import pytest
from playwright.async_api import expect

from tests.stores.test_documents import pdf
from tests.web.helpers import assert_accessible, assert_no_page_errors, screenshot
from tests.web.test_forms import csrf_of, reference, signed_in, transfer_form

pytestmark = pytest.mark.asyncio(loop_scope="session")

ELF = b"\x7fELF\x02\x01\x01\x00" + bytes(200)


async def new_case(client: httpx.AsyncClient, token: str) -> str:
    ref = reference()
    opened = await client.post("/transfers/new", data=transfer_form(token, ref))
    assert opened.status_code == 303, opened.text[:300]
    return ref


async def test_a_document_added_through_the_page_is_listed_and_downloads(api_url):
    async with httpx.AsyncClient(base_url=api_url) as client:
        token = await signed_in(client, "demo-kz-gpo")
        ref = await new_case(client, token)
        page = await client.get(f"/transfers/{ref}")
        assert 'enctype="multipart/form-data"' in page.text and 'id="add-document"' in page.text
        added = await client.post(f"/transfers/{ref}/documents", data={"csrf_token": token, "type": "judgment",
                                                                        "title": "Приговор", "language": "ru"},
                                  files={"file": ("приговор.pdf", pdf(), "application/pdf")})
        assert added.status_code == 303 and added.headers["location"] == f"/transfers/{ref}?done=documents"
        page = await client.get(added.headers["location"])
        assert "Document added." in page.text and "Приговор" in page.text and "приговор.pdf" in page.text
        link = re.search(rf'href="(/transfers/{ref}/documents/doc-[a-z2-7]+)" download>Приговор<', page.text).group(1)
        got = await client.get(link)
        assert got.status_code == 200 and got.content == pdf() and got.headers["content-type"] == "application/pdf"
        view = (await client.get(f"/v1/transfers/{ref}", headers={"Authorization": "Bearer demo-uz-gpo"})).json()
        assert [d["title"] for d in view["documents"] if d["type"] != "person_notice"] == ["Приговор"]
        exported = await client.get(f"/transfers/{ref}/export")
        assert exported.status_code == 200 and exported.headers["content-type"] == "application/zip"
        assert pdf() in zipfile_contents(exported.content)


def zipfile_contents(content: bytes) -> list[bytes]:
    import io
    import zipfile

    with zipfile.ZipFile(io.BytesIO(content)) as archive:
        return [archive.read(n) for n in archive.namelist()]


async def test_a_forged_token_adds_nothing_and_a_refusal_is_shown_at_the_form(api_url):
    async with httpx.AsyncClient(base_url=api_url) as client:
        token = await signed_in(client, "demo-kz-gpo")
        ref = await new_case(client, token)
        forged = await client.post(f"/transfers/{ref}/documents", data={"csrf_token": "forged", "type": "judgment",
                                                                         "title": "Forged"},
                                   files={"file": ("a.pdf", pdf(), "application/pdf")})
        assert forged.status_code == 403
        refused = await client.post(f"/transfers/{ref}/documents", data={"csrf_token": token, "type": "judgment",
                                                                          "title": "A program"},
                                    files={"file": ("judgment.pdf", ELF, "application/pdf")})
        assert refused.status_code == 415
        assert 'role="alert"' in refused.text and "must be a PDF" in refused.text
        assert 'value="A program"' in refused.text  # what was typed is kept
        view = (await client.get(f"/v1/transfers/{ref}", headers={"Authorization": "Bearer demo-kz-gpo"})).json()
        assert [d for d in view["documents"] if d["type"] != "person_notice"] == []


async def test_adding_a_document_in_the_browser(context_for, api_url, tmp_path):
    async with httpx.AsyncClient(base_url=api_url) as client:
        ref = await new_case(client, await signed_in(client, "demo-kz-gpo"))
    page = (await context_for("uz-penal")).pages[0]
    await page.goto(f"/transfers/{ref}")
    form = page.locator("form#add-document")
    await form.get_by_label("Type").select_option("medical_report")
    await form.get_by_label("Title").fill("Medical report of 1 December")
    (tmp_path / "report.pdf").write_bytes(pdf())
    await form.get_by_label("File (PDF, PNG, JPEG, TIFF, text, ODT or DOCX)").set_input_files(tmp_path / "report.pdf")
    await form.get_by_role("button", name="Add the document").click()
    await expect(page.get_by_role("status")).to_have_text("Document added.")
    await expect(page.get_by_role("link", name="Medical report of 1 December")).to_be_visible()
    await screenshot(page, "case-page-documents")
    await assert_accessible(page)
    async with page.expect_download() as downloading:
        await page.get_by_role("link", name="Medical report of 1 December").click()
    download = await downloading.value
    assert (await download.path()).read_bytes() == pdf()
    assert_no_page_errors(page)
