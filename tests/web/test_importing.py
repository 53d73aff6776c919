"""Importing a list of applicants through the web application, over real HTTP against the
session's app, server and worker: what refuses a whole file (a column not the template's, a file
past the limit) opens nothing and says why; the templates download in both languages and read
back empty; a prison service is refused by the API's rule; a confirm that is not the preview's
opens nothing, and a repeated one nothing new; the import is an audit event naming the person,
with no personal data. The preview and the confirm in the browser are in
test_browser_importing.py."""

from __future__ import annotations

import hashlib
import io
import re
import uuid

import httpx
import pytest
import structlog
from openpyxl import load_workbook

from domain.applicants import read_applicants, template_columns, write_applicants
from stores.users import new_user, open_users
from tests.web.test_forms import PASSWORD, csrf_of, signed_in
from treatyflow.samples import transfer_body

pytestmark = pytest.mark.asyncio(loop_scope="session")

XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


def fresh() -> str:
    return f"KZ-IMP-{uuid.uuid4().hex[:8]}"


def alert_of(html: str) -> str:
    return re.search(r'role="alert">([^<]+)<', html).group(1)


async def upload(client: httpx.AsyncClient, token: str, content: bytes, name: str = "list.csv") -> httpx.Response:
    return await client.post("/transfers/import", data={"csrf_token": token}, files={"file": (name, content)},
                             timeout=60)


async def exists(client: httpx.AsyncClient, reference: str) -> bool:
    answer = await client.get(f"/v1/transfers/{reference}", headers={"Authorization": "Bearer demo-kz-gpo"})
    assert answer.status_code in (200, 404), answer.text
    return answer.status_code == 200


async def test_a_column_not_the_templates_refuses_the_whole_file_and_opens_nothing(api_url):
    refs = [fresh(), fresh()]
    good = write_applicants([transfer_body(reference=r) for r in refs], "en", "csv")
    misspelt = good.replace(b"person_full_name", b"person_fullname", 1)
    async with httpx.AsyncClient(base_url=api_url) as client:
        token = await signed_in(client, "demo-kz-gpo")
        answer = await upload(client, token, misspelt)
        assert answer.status_code == 422
        assert alert_of(answer.text).startswith("the file has columns the template does not: person_fullname")
        assert 'name="rows"' not in answer.text  # no preview, nothing to confirm
        # the same refusal in Russian, on a Russian page
        ru = await client.post("/transfers/import", data={"csrf_token": token},
                               files={"file": ("list.csv", misspelt)}, headers={"Accept-Language": "ru"})
        assert ru.status_code == 422 and alert_of(ru.text).startswith("в файле есть столбцы, которых нет в шаблоне: "
                                                                      "person_fullname")
        assert [await exists(client, r) for r in refs] == [False, False]


async def test_the_templates_download_in_both_languages_and_read_back_empty(api_url):
    async with httpx.AsyncClient(base_url=api_url) as client:
        await signed_in(client, "demo-kz-gpo")
        page = await client.get("/transfers/import")
        assert page.status_code == 200
        for language in ("en", "ru"):
            headings = [c.code if language == "en" else c.russian for c in template_columns()]
            for form, media_type in (("xlsx", XLSX), ("csv", "text/csv; charset=utf-8")):
                link = f"/transfers/import/template.{form}?language={language}"
                assert f'href="{link.replace("&", "&amp;")}"' in page.text
                answer = await client.get(link)
                assert answer.status_code == 200 and answer.headers["content-type"] == media_type
                assert answer.headers["content-disposition"] == \
                    f'attachment; filename="treatyflow-applicants-{language}.{form}"'
                applicants = read_applicants(answer.content)
                assert applicants.rows == [] and applicants.language == language
                if form == "xlsx":
                    sheet = load_workbook(io.BytesIO(answer.content), read_only=True).worksheets[0]
                    assert [c.value for c in next(sheet.iter_rows(max_row=1))] == headings
                else:
                    assert answer.content.decode("utf-8-sig").splitlines()[0] == \
                        ("," if language == "en" else ";").join(headings)


async def test_a_prison_service_is_refused_by_the_apis_rule(api_url):
    async with httpx.AsyncClient(base_url=api_url) as client:
        token = await signed_in(client, "demo-kz-penal")
        transfers = await client.get("/transfers")
        assert 'href="/transfers/import"' not in transfers.text
        for answer in (await client.get("/transfers/import"),
                       await upload(client, token, write_applicants([transfer_body(reference=fresh())]))):
            assert answer.status_code == 403
            assert alert_of(answer.text) == "only the central authority of KZ (kz-gpo) may open transfer cases"


async def test_a_file_past_16_mib_is_refused_with_its_reason(api_url):
    async with httpx.AsyncClient(base_url=api_url) as client:
        token = await signed_in(client, "demo-kz-gpo")
        answer = await upload(client, token, b"reference\n" + b"x" * (16 * 1_048_576 + 1))
        assert answer.status_code == 413
        assert alert_of(answer.text) == "the file is larger than 16 MiB: split it into files of at most 2,000 cases"


async def test_a_confirm_that_is_not_the_previews_opens_nothing(api_url):
    ref = fresh()
    async with httpx.AsyncClient(base_url=api_url) as client, httpx.AsyncClient(base_url=api_url) as other:
        token = await signed_in(client, "demo-kz-gpo")
        preview = await upload(client, token, write_applicants([transfer_body(reference=ref)]))
        assert preview.status_code == 200, preview.text[-2000:]
        rows = re.search(r'name="rows" value="([^"]+)"', preview.text).group(1)
        changed = rows[:40] + ("A" if rows[40] != "A" else "B") + rows[41:]
        answer = await client.post("/transfers/import/confirm", data={"csrf_token": token, "rows": changed})
        assert answer.status_code == 400 and "not the one the preview gave" in alert_of(answer.text)
        other_token = await signed_in(other, "demo-kz-gpo")  # the same authority, another session
        answer = await other.post("/transfers/import/confirm", data={"csrf_token": other_token, "rows": rows})
        assert answer.status_code == 400 and "another session" in alert_of(answer.text)
        answer = await client.post("/transfers/import/confirm", data={"csrf_token": "forged", "rows": rows})
        assert answer.status_code == 403
        assert not await exists(client, ref)


async def test_an_import_is_an_audit_event_naming_the_person_and_a_repeat_opens_nothing_new(api_url, api_settings):
    users = open_users(None, api_settings.data_dir)
    await users.add(new_user("i.importer", authority="kz-gpo", display_name="Ivan Importer", password=PASSWORD))
    line = transfer_body(reference=fresh(), person={"full_name": "Гульнара Импортова", "date_of_birth": "1979-06-13",
                                                    "citizenships": ["UZ"]})
    file = write_applicants([line], "ru", "xlsx")
    async with httpx.AsyncClient(base_url=api_url) as client:
        page = await client.get("/sign-in")
        assert (await client.post("/sign-in", data={"csrf_token": csrf_of(page.text), "username": "i.importer",
                                                     "password": PASSWORD})).status_code == 303
        token = csrf_of((await client.get("/transfers/import")).text)
        with structlog.testing.capture_logs() as logs:
            preview = await upload(client, token, file, "заявители.xlsx")
            rows = re.search(r'name="rows" value="([^"]+)"', preview.text).group(1)
            opened = await client.post("/transfers/import/confirm", data={"csrf_token": token, "rows": rows})
            again = await client.post("/transfers/import/confirm", data={"csrf_token": token, "rows": rows})
        assert opened.status_code == 200 and f'href="/transfers/{line["reference"]}">' in opened.text
        assert "Case opened" in opened.text and "Existed already" not in opened.text
        assert "Existed already: nothing new" in again.text and "Case opened" not in again.text
        assert await exists(client, line["reference"])
    audited = [(e["authority"], e["user"], e["lines"], e.get("created"), e.get("existing"), e["complete"], e["sha256"])
               for e in logs if e.get("event") == "transfer batch"]
    digest = hashlib.sha256(file).hexdigest()
    assert audited == [("kz-gpo", "i.importer", 1, 1, None, True, digest),
                       ("kz-gpo", "i.importer", 1, None, 1, True, digest)]
    assert not [e for e in logs if "Импортова" in str(e) or "1979-06-13" in str(e)]


async def test_a_reference_twice_in_one_file_previews_as_the_confirm_will_judge_it(api_url):
    """Nothing is opened by the preview, yet a second row of the same reference is shown as it
    will be once the first is opened: the same request exists already, another is refused."""
    first = transfer_body(reference=fresh())
    other = {**first, "person": {**first["person"], "full_name": "Someone Else"}}
    async with httpx.AsyncClient(base_url=api_url) as client:
        token = await signed_in(client, "demo-kz-gpo")
        answer = await upload(client, token, write_applicants([first, first, other], "en", "csv"))
        assert answer.status_code == 200, answer.text
        rows = re.findall(r"<tr[^>]*>\s*<td>(\d+)</td>.*?</tr>", answer.text, re.S)
        assert rows == ["2", "3", "4"]
        shown = [re.search(r"(Will be opened|Exists already: nothing new|Cannot be opened)", row).group(1)
                 for row in re.findall(r"<tr[^>]*>\s*<td>\d+</td>(.*?)</tr>", answer.text, re.S)]
        assert shown == ["Will be opened", "Exists already: nothing new", "Cannot be opened"]
        assert not await exists(client, first["reference"])
