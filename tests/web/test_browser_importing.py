"""Importing a list of applicants in a real browser (Debian's chromium through Playwright), as
Kazakhstan's central authority working in Russian: an XLSX with Russian headings, good rows and bad
ones; the preview names each bad row's problem by the file's own column and opens nothing; the
confirm opens the good rows, which are then cases like any other; the same file again would open
nothing new."""

from __future__ import annotations

import copy
import uuid

import httpx
import pytest
from playwright.async_api import Page, expect

from domain.applicants import write_applicants
from tests.web.helpers import seen
from treatyflow.samples import transfer_body

pytestmark = pytest.mark.asyncio(loop_scope="session")


async def found(api_url: str, reference: str) -> bool:
    async with httpx.AsyncClient(base_url=api_url) as api:
        answer = await api.get(f"/v1/transfers/{reference}", headers={"Authorization": "Bearer demo-kz-gpo"})
    assert answer.status_code in (200, 404), answer.text
    return answer.status_code == 200


def row(page: Page, number: int):
    """The preview's or the results' row of the file's row ``number``."""
    return page.locator("table.import tbody tr").filter(has=page.get_by_role("cell", name=str(number), exact=True))


async def upload(page: Page, path, screenshot: str | None = None) -> None:
    await page.goto("/transfers")
    await page.get_by_role("link", name="Импорт списка заявителей").click()
    if screenshot:
        await page.get_by_text("Все столбцы").click()  # the columns' table, opened
        await expect(page.get_by_role("cell", name="Фамилия, имя, отчество")).to_be_visible()
        await seen(page, screenshot)
    await page.get_by_label("Список (CSV или XLSX)").set_input_files(path)
    await page.get_by_role("button", name="Проверить список").click()
    await expect(page.get_by_role("heading", name="Итоги")).to_be_visible()  # every row judged


async def test_a_list_is_previewed_then_opened_and_a_second_import_opens_nothing(context_for, api_url, tmp_path):
    tag = uuid.uuid4().hex[:6]
    good = [transfer_body(reference=f"KZ-IMP-{tag}-{i}") for i in range(3)]
    no_name, bad_birth, bad_iccs = (copy.deepcopy(transfer_body(reference=f"KZ-IMP-{tag}-{b}")) for b in "nbi")
    del no_name["person"]["full_name"]
    bad_birth["person"]["date_of_birth"] = "31.02.1985"
    bad_iccs["judgment"]["offences"][0]["iccs"] = "05x"
    # the file's rows 2..7: good, no name, good, bad date of birth, good, bad ICCS code
    path = tmp_path / "заявители.xlsx"
    path.write_bytes(write_applicants([good[0], no_name, good[1], bad_birth, good[2], bad_iccs], "ru", "xlsx"))
    page = (await context_for("kz-gpo", locale="ru-RU")).pages[0]

    await upload(page, path, screenshot="import-upload-ru")
    await expect(page.get_by_role("heading", name="Предварительный просмотр импорта")).to_be_visible()
    for number in (2, 4, 6):
        await expect(row(page, number)).to_contain_text("Будет открыто")
    for number, problem in ((3, "Столбец «Фамилия, имя, отчество»: person.full_name: значение обязательно"),
                            (5, "Столбец «Дата рождения»: person.date_of_birth: значение должно быть датой вида "
                                "ГГГГ-ММ-ДД, например 2026-03-01"),
                            (7, "Столбец «Код ICCS 1»: judgment.offences.0.iccs: значение должно быть кодом ICCS из 2, "
                                "4, 5 или 6 цифр, например 0501")):
        await expect(row(page, number)).to_contain_text("Есть ошибки: не будет открыто")
        await expect(row(page, number).get_by_role("listitem")).to_have_text(problem)
    await expect(page.locator("dl.totals")).to_contain_text("Будет открыто3")
    await seen(page, "import-preview-ru")
    for line in good:  # the preview opened nothing
        assert not await found(api_url, line["reference"])

    await page.get_by_role("button", name="Открыть 3 дела").click()
    await expect(page.get_by_role("status")).to_have_text("Готово: у каждой отправленной строки выше есть ответ.")
    await expect(page.get_by_role("heading", name="Импорт списка")).to_be_visible()
    for line in good:
        await expect(page.get_by_role("row").filter(has_text=line["reference"])).to_contain_text("Дело открыто")
    await expect(page.locator("dl.totals")).to_contain_text("Открыто дел3")
    await expect(page.get_by_text("Ещё 3 строки файла не отправлялись")).to_be_visible()
    await seen(page, "import-results-ru")
    for line in good:
        assert await found(api_url, line["reference"])
    for line in (no_name, bad_birth, bad_iccs):  # nothing half-opened
        assert not await found(api_url, line["reference"])
    await page.get_by_role("link", name=good[1]["reference"]).click()
    await expect(page.get_by_role("heading", name=f"Дело о передаче {good[1]['reference']}")).to_be_visible()

    await upload(page, path)  # the same file again: nothing would be opened
    for number in (2, 4, 6):
        await expect(row(page, number)).to_contain_text("Уже существует: ничего нового")
    await expect(page.get_by_role("status")).to_have_text("Ни одна строка этого файла не откроет дело.")
    await expect(page.get_by_role("button", name="Открыть", exact=False)).to_have_count(0)
    await seen(page, "import-preview-again-ru")
