"""Lists of applicants (domain/applicants.py): the template round-trips in both languages and both
formats; what offices really write (Excel's Russian CSV, dotted dates, да/нет, numbers as
numbers) reads as the API takes it; a problem is named by the file's own column; a file that
cannot be taken whole is refused whole."""

from __future__ import annotations

import io
import re
import zipfile

import pytest

from domain.applicants import (
    MAX_ROWS, FileRefused, column_of, read_applicants, template_columns, write_applicants,
)
from domain.transfer import TransferRequest
from treatyflow.samples import transfer_body


def requests() -> list[dict]:
    plain = transfer_body(reference="KZ-IMP-1")
    many = transfer_body(reference="KZ-IMP-2", person={"full_name": "Әлия Сәрсенбайқызы", "date_of_birth": "1990-01-31",
                                                       "citizenships": ["UZ", "KZ"], "language": "en"},
                         financial_obligations=[{"amount": "1500.50", "currency": "KZT", "settled": False,
                                                 "description": "=HYPERLINK(\"x\")"}],
                         pending_proceedings=[{"kind": "trial", "description": ""}])
    many["judgment"]["offences"] = [{"article": f"{188 + n} ч.2", "description": f"offence {n}"} for n in range(5)]
    life = transfer_body(reference="KZ-IMP-3", declaration=None)
    life["sentence"] = {**life["sentence"], "indeterminate": True, "years": 0, "months": 0, "days": 0}
    return [plain, many, life]


@pytest.mark.parametrize("language", ["en", "ru"])
@pytest.mark.parametrize("form", ["csv", "xlsx"])
def test_a_list_written_in_the_template_reads_back_to_the_same_requests(language, form):
    written = requests()
    read = read_applicants(write_applicants(written, language, form))  # type: ignore[arg-type]
    assert read.language == language
    assert [r.number for r in read.rows] == [2, 3, 4]
    assert [TransferRequest.model_validate(r.request, strict=False) for r in read.rows] == \
           [TransferRequest.model_validate(w, strict=False) for w in written]


@pytest.mark.parametrize("language", ["en", "ru"])
@pytest.mark.parametrize("form", ["csv", "xlsx"])
def test_the_empty_template_has_every_column_and_no_case(language, form):
    read = read_applicants(write_applicants([], language, form))  # type: ignore[arg-type]
    assert read.rows == [] and read.language == language


def test_an_excel_csv_in_russian_reads_as_the_api_takes_it():
    """Excel in Russian saves CSV in Windows-1251 with semicolons; offices write 31.12.2024 and да."""
    headings = ["Номер дела", "Государство вынесения приговора", "Государство исполнения приговора",
                "Фамилия, имя, отчество", "Дата рождения", "Гражданство", "Суд", "Дата приговора",
                "Приговор вступил в силу", "Статья 1", "Статья 3", "Начало срока", "Лет", "Сумма взыскания 1",
                "Валюта 1", "Погашено 1"]
    row = ["KZ-IMP-9", "KZ", "UZ", "Каримов Азиз", "02.03.1985", "UZ, KZ", "Алматинский городской суд",
           "10.05.2024", "да", "188 ч.2", "190", "15.01.2024", "5", "1 500,75", "KZT", "нет"]
    content = (";".join(headings) + "\r\n" + ";".join(row) + "\r\n;;;\r\n").encode("cp1251")
    read = read_applicants(content)
    assert read.language == "ru" and len(read.rows) == 1  # the empty row is skipped
    request = read.rows[0].request
    assert request["person"] == {"full_name": "Каримов Азиз", "date_of_birth": "1985-03-02",
                                 "citizenships": ["UZ", "KZ"]}
    assert request["judgment"]["final"] is True and request["judgment"]["date"] == "2024-05-10"
    # offences 1 and 3 filled: two offences, the second named by its own column
    assert [o["article"] for o in request["judgment"]["offences"]] == ["188 ч.2", "190"]
    assert column_of("judgment.offences.1.article", read.rows[0].columns) == "Статья 3"
    assert request["sentence"] == {"start_date": "2024-01-15", "years": 5}
    assert request["financial_obligations"] == [{"amount": "1500.75", "currency": "KZT", "settled": False}]
    TransferRequest.model_validate(request, strict=False)


def test_a_problem_is_named_by_the_files_own_column():
    bad = transfer_body(reference="KZ-IMP-4")
    bad["person"]["date_of_birth"] = "31.02.1985"  # no such day: passed on as written
    bad["sentence"]["years"] = "five"
    read = read_applicants(write_applicants([bad], "ru", "xlsx"))
    request, columns = read.rows[0].request, read.rows[0].columns
    assert request["person"]["date_of_birth"] == "31.02.1985" and request["sentence"]["years"] == "five"
    assert column_of("person.date_of_birth", columns) == "Дата рождения"
    assert column_of("sentence.years", columns) == "Лет"
    assert column_of("person.citizenships.0", columns) == "Гражданство"
    assert column_of("(body)", columns) == "(body)"


def test_a_file_that_cannot_be_taken_whole_is_refused_whole():
    one = requests()[0]
    with pytest.raises(FileRefused, match="more than 2,000 cases"):
        read_applicants(write_applicants([{**one, "reference": f"KZ-IMP-{n}"} for n in range(MAX_ROWS + 1)]))
    read_applicants(write_applicants([{**one, "reference": f"KZ-IMP-{n}"} for n in range(MAX_ROWS)]))
    header, _, rest = write_applicants([one]).decode("utf-8-sig").partition("\r\n")
    with pytest.raises(FileRefused, match="columns the template does not: full name"):
        read_applicants((header + ",full name\r\n" + rest).encode())
    with pytest.raises(FileRefused, match="no column person_date_of_birth"):
        read_applicants(("\r\n".join(",".join(c for c in line.split(",") if c != "person_date_of_birth")
                                     for line in [header])).encode())
    with pytest.raises(FileRefused, match="the same column twice: reference and Номер дела"):
        read_applicants((header + ",Номер дела\r\n").encode())
    with pytest.raises(FileRefused, match="empty"):
        read_applicants(b"")
    with pytest.raises(FileRefused, match="neither XLSX nor CSV"):
        read_applicants(b"PK\x03\x04 not really a zip")
    with pytest.raises(FileRefused, match="neither XLSX nor CSV"):
        read_applicants(b"\x89PNG\r\n\x1a\n\x00\x00\x00")


def test_an_xlsx_that_unpacks_past_the_limit_is_not_opened():
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("xl/worksheets/sheet1.xml", b"\x00" * (65 * 1_048_576))
    assert len(out.getvalue()) < 1_048_576
    with pytest.raises(FileRefused, match="unpacks to more than 64 MiB"):
        read_applicants(out.getvalue())


def test_a_formula_written_by_a_person_stays_text():
    read = read_applicants(write_applicants(requests(), "en", "xlsx"))
    assert read.rows[1].request["financial_obligations"][0]["description"] == "=HYPERLINK(\"x\")"


def test_the_templates_columns_are_unique_in_both_languages():
    columns = template_columns()
    assert len({c.code for c in columns}) == len({c.russian for c in columns}) == len({c.path for c in columns}) \
        == len(columns)


def test_docs_api_md_lists_every_column_with_its_russian_heading_and_field():
    from pathlib import Path

    from domain.applicants import COLUMNS, GROUPS

    text = (Path(__file__).resolve().parents[2] / "docs" / "api.md").read_text()
    for column in [*COLUMNS, *(c for g in GROUPS for c in g.columns)]:
        code, russian = column.code.replace("{n}", "N"), column.russian.replace("{n}", "N")
        path = column.path.replace("{i}", "N−1")
        assert f"| `{code}` | {russian} | `{path}` |" in text, code


def test_a_russian_csv_is_split_by_its_semicolons_not_by_the_commas_of_its_headings():
    """"Фамилия, имя, отчество" holds two commas: in a short file they outnumber the semicolons,
    and the file must still be read by its headings (here: refused for the columns it lacks, not
    for columns the template does not have)."""
    content = "Номер дела;Фамилия, имя, отчество\r\nKZ-IMP-7;Каримов Азиз\r\n".encode()
    with pytest.raises(FileRefused, match="no column sentencing_state"):
        read_applicants(content)


def test_a_problem_of_a_whole_group_is_named_by_its_first_column():
    read = read_applicants(write_applicants([requests()[0]], "ru", "csv"))
    assert column_of("judgment.offences", read.rows[0].columns) == "Статья 1"


def test_a_damaged_xlsx_is_refused_whole_without_quoting_its_cells():
    """openpyxl's read-only mode parses the sheet as it goes: a damaged cell fails there, with
    the cell in its message; it must be a refusal of the file that says nothing of the cell."""
    content = write_applicants([requests()[0]], "en", "xlsx")
    source = zipfile.ZipFile(io.BytesIO(content))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as damaged:
        for item in source.infolist():
            data = source.read(item.filename)
            if item.filename == "xl/worksheets/sheet1.xml":
                data, count = re.subn(rb'(<c r="[A-Z]+2" t="n"><v>)[^<]*(</v>)', rb"\1Ivanov Aziz\2", data, count=1)
                assert count == 1
            damaged.writestr(item, data)
    with pytest.raises(FileRefused, match="the XLSX file cannot be read") as refused:
        read_applicants(out.getvalue())
    assert "Ivanov" not in str(refused.value)


def test_a_csv_whose_heading_row_holds_a_huge_field_is_refused_without_quoting_it():
    with pytest.raises(FileRefused, match="the CSV file cannot be read") as refused:
        read_applicants(("reference,\"" + "Ivanov" * 40_000 + "\"\r\n").encode())
    assert "Ivanov" not in str(refused.value)


def test_a_worksheet_past_its_rows_is_refused_whole_not_read_in_part():
    from openpyxl import load_workbook

    book = load_workbook(io.BytesIO(write_applicants([requests()[0]], "en", "xlsx")))
    sheet = book.worksheets[0]
    for row in range(3, 6_003):
        sheet.cell(row=row, column=1, value=" ")  # blank to a person, a row to the file
    sheet.cell(row=6_003, column=1, value="KZ-IMP-LAST")
    out = io.BytesIO()
    book.save(out)
    with pytest.raises(FileRefused, match="more than 5,000 rows"):
        read_applicants(out.getvalue())
