"""A central authority's list of applicants for transfer, one row a case, in the file it already
keeps (CSV or XLSX): read into transfer requests as the API takes them (one JSON object a row, the
lines of ``POST /v1/transfers/batch``), and written back (the template is an empty list).

The columns are those of docs/api.md ("Bulk intake"), each under an English code or a Russian
heading; the repeated groups (offences, financial obligations, pending proceedings) are numbered
from 1. A cell is turned into what the request's field takes only where that is unambiguous (a
spreadsheet date, ``31.12.2024``, ``yes``/``да``, a whole number); anything else is passed on as
written, so that the API judges every row exactly as a single POST and names the field at fault:
``column_of`` turns that field back into the file's own column.

A file is refused whole — never read in part — when it is not CSV or XLSX, too large, holds more
than ``MAX_ROWS`` cases, or has a column that is not the template's (a misspelt heading would
otherwise drop what was written under it without a word)."""

from __future__ import annotations

import csv
import io
import re
import zipfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from typing import Any, Literal

MAX_ROWS = 2_000  # cases in one file, as in one batch (API.md)
MAX_BYTES = 16 * 1_048_576  # of the file, as of one batch's body (API.md)
MAX_XLSX_UNPACKED = 64 * 1_048_576  # what an XLSX may unpack to: no zip bomb is opened
MAX_SHEET_ROWS = MAX_ROWS * 2 + 1_000  # rows of a worksheet, blank ones included: a sheet is never read for ever

Language = Literal["en", "ru"]
Format = Literal["csv", "xlsx"]
Kind = Literal["text", "date", "bool", "int", "list", "amount"]


class FileRefused(ValueError):
    """The whole file is refused (nothing in it is opened); the message says why, in English
    (web/messages.py knows its Russian)."""


@dataclass(frozen=True)
class Column:
    code: str  # the heading of the English template; ``{n}`` in a repeated group
    path: str  # the request's field, as the API's problems name it; ``{i}`` is n - 1
    kind: Kind
    russian: str  # the heading of the Russian template
    meaning: str  # for docs/api.md and the template's notes
    required: bool = False  # a file without this column is refused whole

    def numbered(self, n: int) -> Column:
        return Column(self.code.format(n=n), self.path.format(i=n - 1), self.kind, self.russian.format(n=n),
                      self.meaning, self.required and n == 1)


COLUMNS: tuple[Column, ...] = (
    Column("reference", "reference", "text", "Номер дела",
           "the case's reference: your state's code, a hyphen, then 1–61 of A-Z a-z 0-9 . _ -", True),
    Column("sentencing_state", "sentencing_state", "text", "Государство вынесения приговора",
           "two-letter code of the state that convicted, such as KZ", True),
    Column("administering_state", "administering_state", "text", "Государство исполнения приговора",
           "two-letter code of the state where the sentence is to be served, such as UZ", True),
    Column("received_on", "received_on", "date", "Дата поступления", "date the application was received; "
           "today when empty"),
    Column("initiated_by", "initiated_by", "text", "Инициатор",
           "sentenced_person (when empty), sentencing_state or administering_state"),
    Column("previous_reference", "previous_reference", "text", "Номер предыдущего дела",
           "an earlier, closed transfer case between the same states that this one follows"),
    Column("person_full_name", "person.full_name", "text", "Фамилия, имя, отчество",
           "the sentenced person's full name", True),
    Column("person_date_of_birth", "person.date_of_birth", "date", "Дата рождения", "date of birth", True),
    Column("person_citizenships", "person.citizenships", "list", "Гражданство",
           "country codes separated by spaces or commas, such as UZ or UZ KZ", True),
    Column("person_language", "person.language", "text", "Язык писем",
           "ru (when empty) or en: the language of the letters to the person"),
    Column("judgment_court", "judgment.court", "text", "Суд", "the court that passed the judgment", True),
    Column("judgment_date", "judgment.date", "date", "Дата приговора", "date of the judgment", True),
    Column("judgment_final", "judgment.final", "bool", "Приговор вступил в силу",
           "yes or no: whether the judgment is final", True),
    Column("sentence_start_date", "sentence.start_date", "date", "Начало срока", "start of the sentence", True),
    Column("sentence_indeterminate", "sentence.indeterminate", "bool", "Пожизненно",
           "yes for a life sentence (then no years, months or days); no when empty"),
    Column("sentence_years", "sentence.years", "int", "Лет", "years of the term"),
    Column("sentence_months", "sentence.months", "int", "Месяцев", "months of the term"),
    Column("sentence_days", "sentence.days", "int", "Дней", "days of the term"),
    Column("sentence_pretrial_credit_days", "sentence.pretrial_credit_days", "int", "Зачтено дней",
           "days of pre-trial detention credited"),
    Column("sentence_remission_days", "sentence.remission_days", "int", "Дней сокращения", "days of remission"),
    Column("declaration_signed_on", "declaration.signed_on", "date", "Дата заявления",
           "date the person signed the declaration of intent; leave the three declaration columns empty "
           "when it has not been made (the case then waits for it)"),
    Column("declaration_voluntary", "declaration.voluntary", "bool", "Заявление добровольное",
           "yes when the declaration was made voluntarily"),
    Column("declaration_informed_of_consequences", "declaration.informed_of_consequences", "bool",
           "Осуждённый уведомлён о последствиях", "yes when the person was informed of its consequences"),
)


@dataclass(frozen=True)
class Group:
    """Columns repeated for each offence, obligation or proceeding, numbered from 1."""

    path: str  # the request's list
    most: int  # items the request takes at most
    shown: int  # numbered groups in the template
    columns: tuple[Column, ...]


GROUPS: tuple[Group, ...] = (
    Group("judgment.offences", 50, 3, (
        Column("offence_{n}_article", "judgment.offences.{i}.article", "text", "Статья {n}",
               "the article of the sentencing state's criminal code as the court wrote it, such as 188 ч.2 "
               "(at least offence_1_article)", True),
        Column("offence_{n}_iccs", "judgment.offences.{i}.iccs", "text", "Код ICCS {n}", "the offence's ICCS code, "
               "optional"),
        Column("offence_{n}_description", "judgment.offences.{i}.description", "text", "Описание деяния {n}",
               "what the person did, optional"),
    )),
    Group("financial_obligations", 50, 1, (
        Column("obligation_{n}_amount", "financial_obligations.{i}.amount", "amount", "Сумма взыскания {n}",
               "a fine, costs or compensation the judgment imposed, such as 1500.00"),
        Column("obligation_{n}_currency", "financial_obligations.{i}.currency", "text", "Валюта {n}",
               "its currency, such as KZT"),
        Column("obligation_{n}_settled", "financial_obligations.{i}.settled", "bool", "Погашено {n}",
               "yes when it has been paid"),
        Column("obligation_{n}_description", "financial_obligations.{i}.description", "text",
               "Описание взыскания {n}", "what it is, optional"),
    )),
    Group("pending_proceedings", 20, 1, (
        Column("proceeding_{n}_kind", "pending_proceedings.{i}.kind", "text", "Производство {n}",
               "investigation or trial: proceedings still pending against the person"),
        Column("proceeding_{n}_description", "pending_proceedings.{i}.description", "text",
               "Описание производства {n}", "what they are about, optional"),
    )),
)


def template_columns() -> list[Column]:
    """The template's columns, in its order."""
    return [*COLUMNS, *(c.numbered(n) for g in GROUPS for n in range(1, g.shown + 1) for c in g.columns)]


def _folded(heading: str) -> str:
    return " ".join(heading.replace("ё", "е").replace("Ё", "Е").split()).casefold()


_BY_HEADING: dict[str, tuple[Column, Language]] = {}
for _c in COLUMNS:
    _BY_HEADING[_folded(_c.code)], _BY_HEADING[_folded(_c.russian)] = (_c, "en"), (_c, "ru")
_NUMBERED = [(re.compile(re.escape(_folded(c.code)).replace(r"\{n\}", r"(\d{1,3})") + "$"),
              re.compile(re.escape(_folded(c.russian)).replace(r"\{n\}", r"(\d{1,3})") + "$"), g, c)
             for g in GROUPS for c in g.columns]


def column_named(heading: str) -> tuple[Column, Language] | None:
    """The column under ``heading`` (English code or Russian heading, letter case, spacing and ё
    aside) and the language it is in; None for a heading that is not the template's."""
    folded = _folded(heading)
    if folded in _BY_HEADING:
        return _BY_HEADING[folded]
    for english, russian, group, column in _NUMBERED:
        for pattern, language in ((english, "en"), (russian, "ru")):
            if (m := pattern.match(folded)) and 1 <= int(m.group(1)) <= group.most:
                return column.numbered(int(m.group(1))), language  # type: ignore[return-value]
    return None


# ---- cells into the request's values ------------------------------------------------------------------

TRUE = {"yes", "y", "true", "1", "да", "д", "x", "✓"}
FALSE = {"no", "n", "false", "0", "нет", "н"}
DOTTED_DATE = re.compile(r"^(\d{1,2})\.(\d{1,2})\.(\d{4})$")


def value_of(cell: Any, kind: Kind) -> Any:
    """What the request's field takes for ``cell``, where that is unambiguous; else the cell as
    written (a string), for the API to name the field. None for an empty cell."""
    if cell is None or (isinstance(cell, str) and not cell.strip()):
        return None
    if isinstance(cell, datetime):
        return cell.date().isoformat() if kind == "date" else cell.isoformat()
    if isinstance(cell, date):
        return cell.isoformat()
    if isinstance(cell, bool):
        return cell
    if isinstance(cell, (int, float)):
        if kind == "amount":
            return format(Decimal(str(cell)), "f")
        if kind == "bool" and cell in (0, 1):
            return bool(cell)
        if float(cell).is_integer():
            return int(cell) if kind == "int" else str(int(cell))
        return str(cell)
    text = str(cell).strip()
    if kind == "date" and (m := DOTTED_DATE.match(text)):
        day, month, year = (int(g) for g in m.groups())
        try:
            return date(year, month, day).isoformat()
        except ValueError:
            return text
    if kind == "bool" and text.casefold() in TRUE | FALSE:
        return text.casefold() in TRUE
    if kind == "int" and re.fullmatch(r"[+-]?\d{1,9}", text):
        return int(text)
    if kind == "list":
        return [part for part in re.split(r"[\s,;]+", text) if part]
    if kind == "amount":
        try:
            return format(Decimal(text.replace(" ", "").replace(",", ".")), "f") if text else None
        except InvalidOperation:
            return text
    return text


def _put(request: dict[str, Any], path: str, value: Any) -> None:
    *parents, last = path.split(".")
    node: Any = request
    for part, following in zip(parents, [*parents[1:], last]):
        key: Any = int(part) if part.isdigit() else part
        if isinstance(node, list):
            while len(node) <= key:
                node.append({})
            node = node[key]
        else:
            node = node.setdefault(key, [] if following.isdigit() else {})
    node[last] = value


def _renumbered(request: dict[str, Any], columns: dict[str, str]) -> tuple[dict[str, Any], dict[str, str]]:
    """Numbered groups left empty between filled ones are dropped (offences 1 and 3 filled: two
    offences), and the columns follow: a problem of the second offence names ``offence_3_…``."""
    columns = dict(columns)
    for group in GROUPS:
        items = _list_at(request, group.path)
        kept = [i for i, item in enumerate(items) if item != {}]
        if len(kept) == len(items):
            continue
        *parents, last = group.path.split(".")
        node = request
        for part in parents:
            node = node[part]
        node[last] = [items[i] for i in kept]
        prefix = group.path + "."
        moved = {k: v for k, v in columns.items() if k.startswith(prefix)}
        for k in moved:
            del columns[k]
        for new, old in enumerate(kept):
            for k, heading in moved.items():
                index, _, rest = k[len(prefix):].partition(".")
                if int(index) == old:
                    columns[f"{prefix}{new}.{rest}"] = heading
    return request, columns


# ---- files -----------------------------------------------------------------------------------------

@dataclass
class Row:
    number: int  # the row's number in the file (the headings are row 1)
    request: dict[str, Any]  # the transfer request as the API takes it
    columns: dict[str, str]  # the request's field → the file's heading of its column


@dataclass
class Applicants:
    rows: list[Row]
    language: Language  # of most of the file's headings

    def lines(self) -> bytes:
        """The body of ``POST /v1/transfers/batch``: one JSON line a row, in the file's order."""
        import json

        return b"".join(json.dumps(r.request, ensure_ascii=False).encode() + b"\n" for r in self.rows)


def column_of(field: str, columns: dict[str, str]) -> str:
    """The file's heading of the column that holds ``field`` (a problem's field as the API names
    it), or the field itself where no one column does (``(body)``, a whole list)."""
    parts = field.split(".")
    for end in range(len(parts), 0, -1):
        if (found := columns.get(".".join(parts[:end]))) is not None:
            return found
    # a whole list or object (no offence at all): the first of its columns the file has
    return next((heading for path, heading in columns.items() if path.startswith(field + ".")), field)


def too_large() -> FileRefused:
    """The refusal of a file past ``MAX_BYTES``: ``read_applicants``'s, and an upload's that is
    refused by its size before it is read whole (the web application's import)."""
    return FileRefused(f"the file is larger than {MAX_BYTES // 1_048_576} MiB: split it into files of at most "
                       f"{MAX_ROWS:,} cases")


def read_applicants(content: bytes) -> Applicants:
    """The rows of a CSV or XLSX file (by its first bytes, not its name); FileRefused for a file
    that cannot be taken whole."""
    if len(content) > MAX_BYTES:
        raise too_large()
    table = _xlsx_rows(content) if content.startswith(b"PK\x03\x04") else _csv_rows(content)
    headings = next(table, None)
    if not headings or not any(h for h in headings):
        raise FileRefused("the file is empty: its first row must hold the template's column headings")
    named: list[tuple[int, Column, str]] = []
    languages: list[str] = []
    unknown: list[str] = []
    for position, heading in enumerate(headings):
        text = "" if heading is None else str(heading).strip()
        if not text:
            continue
        found = column_named(text)
        if found is None:
            unknown.append(text)
            continue
        named.append((position, found[0], text))
        languages.append(found[1])
    if unknown:
        raise FileRefused(f"the file has columns the template does not: {', '.join(unknown[:5])}"
                          f"{' …' if len(unknown) > 5 else ''} — use the template's headings (docs/api.md, "
                          "\"Bulk intake\")")
    paths = [c.path for _, c, _ in named]
    if twice := sorted({p for p in paths if paths.count(p) > 1}):
        headings_of = [h for _, c, h in named if c.path == twice[0]]
        raise FileRefused(f"the file has the same column twice: {' and '.join(headings_of)}")
    missing = [c.code for c in [*COLUMNS, *(g.columns[0].numbered(1) for g in GROUPS[:1])]
               if c.required and c.path not in paths]
    if missing:
        raise FileRefused(f"the file has no column {', '.join(missing)}: every case needs it (the template has "
                          "them all)")
    columns = {c.path: h for _, c, h in named}
    rows: list[Row] = []
    for number, cells in enumerate(table, start=2):
        request: dict[str, Any] = {}
        for position, column, _ in named:
            value = value_of(cells[position] if position < len(cells) else None, column.kind)
            if value is not None:
                _put(request, column.path, value)
        if not request:
            continue  # an empty row: spreadsheets keep them
        if len(rows) == MAX_ROWS:
            raise FileRefused(f"the file holds more than {MAX_ROWS:,} cases: split it into files of at most "
                              f"{MAX_ROWS:,}")
        rows.append(Row(number, *_renumbered(request, columns)))
    language: Language = "ru" if languages.count("ru") > languages.count("en") else "en"
    return Applicants(rows, language)


def _csv_rows(content: bytes) -> Iterator[list[Any]]:
    """UTF-8 (with or without the BOM Excel writes), else Windows-1251 (Excel's CSV in Russian);
    comma, semicolon (Excel's in Russian) or tab, as the heading row has them."""
    try:
        text = content.decode("utf-8-sig")
    except UnicodeDecodeError:
        try:
            text = content.decode("cp1251")
        except UnicodeDecodeError:
            raise FileRefused("the file is neither XLSX nor CSV in UTF-8 or Windows-1251") from None
    if "\x00" in text:
        raise FileRefused("the file is neither XLSX nor CSV in UTF-8 or Windows-1251")
    first = text.split("\n", 1)[0]

    def fits(delimiter: str) -> tuple[int, int]:
        """How many of the headings it splits the first line into are the template's, and how many."""
        headings = next(csv.reader([first], delimiter=delimiter), [])
        return sum(column_named(h) is not None for h in headings if h.strip()), len(headings)

    try:
        # Russian headings hold commas ("Фамилия, имя, отчество"): the separator is the one that
        # gives the template's headings, not the commonest character
        delimiter = max((";", ",", "\t"), key=fits)
        yield from csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    except csv.Error:  # its message may quote the file: never passed on
        raise FileRefused("the CSV file cannot be read: a cell is too long or its quotes do not close") from None


def _xlsx_rows(content: bytes) -> Iterator[list[Any]]:
    """The first worksheet's values (a formula's last computed value), read as a stream. The
    archive's declared sizes are checked before anything is unpacked, and openpyxl parses with
    defusedxml (installed beside it), so no crafted file can exhaust memory."""
    from openpyxl import load_workbook

    try:
        with zipfile.ZipFile(io.BytesIO(content)) as archive:
            if sum(i.file_size for i in archive.infolist()) > MAX_XLSX_UNPACKED:
                raise FileRefused("the XLSX file unpacks to more than 64 MiB: it cannot be a list of "
                                  f"{MAX_ROWS:,} cases")
        book = load_workbook(io.BytesIO(content), read_only=True, data_only=True)
    except FileRefused:
        raise
    except Exception:  # noqa: BLE001 - whatever openpyxl or zipfile make of a broken file
        raise FileRefused("the file is neither XLSX nor CSV: save it from the template as .xlsx or .csv") from None
    try:
        sheet = book.worksheets[0]
        for count, values in enumerate(sheet.iter_rows(values_only=True)):
            if count > MAX_SHEET_ROWS:  # never read in part: refused whole
                raise FileRefused(f"the worksheet has more than {MAX_SHEET_ROWS:,} rows, blank ones included: "
                                  "delete the rows below the last case")
            yield list(values)
    except FileRefused:
        raise
    except Exception:  # noqa: BLE001 - read-only openpyxl parses as it goes; its messages may quote cells
        raise FileRefused("the XLSX file cannot be read: its sheet or a cell is damaged; save it again from the "
                          "spreadsheet") from None
    finally:
        book.close()


# ---- writing a list (and the empty template) ---------------------------------------------------------

def _cells(request: dict[str, Any], columns: list[Column]) -> list[Any]:
    def at(path: str) -> Any:
        node: Any = request
        for part in path.split("."):
            if isinstance(node, list):
                node = node[int(part)] if int(part) < len(node) else None
            elif isinstance(node, dict):
                node = node.get(part)
            if node is None:
                return None
        return node

    out = []
    for column in columns:
        value = at(column.path)
        if isinstance(value, list):
            value = " ".join(value)
        elif isinstance(value, bool):
            value = "yes" if value else "no"
        out.append(value)
    return out


def write_applicants(requests: Iterable[dict[str, Any]], language: Language = "en", form: Format = "csv") -> bytes:
    """``requests`` (as the API takes them) as a file ``read_applicants`` reads back to the same
    requests; with none, the template. Dates are written as ISO dates, lists space separated,
    yes/no for flags. Every cell is written as text or number, never as a formula."""
    requests = list(requests)
    columns = template_columns()
    for group in GROUPS:  # as many numbered groups as the longest list needs
        longest = max((len(_list_at(r, group.path)) for r in requests), default=0)
        columns += [c.numbered(n) for n in range(group.shown + 1, longest + 1) for c in group.columns]
    headings = [c.code if language == "en" else c.russian for c in columns]
    rows = [_cells(r, columns) for r in requests]
    if form == "csv":
        out = io.StringIO(newline="")
        writer = csv.writer(out, delimiter="," if language == "en" else ";", lineterminator="\r\n")
        writer.writerow(headings)
        writer.writerows([["" if v is None else v for v in row] for row in rows])
        return ("\ufeff" + out.getvalue()).encode()  # the BOM: Excel then reads UTF-8
    return _xlsx(headings, rows, columns, language)


def _list_at(request: dict[str, Any], path: str) -> list[Any]:
    node: Any = request
    for part in path.split("."):
        node = node.get(part, {}) if isinstance(node, dict) else {}
    return node if isinstance(node, list) else []


def _xlsx(headings: list[str], rows: list[list[Any]], columns: list[Column], language: Language) -> bytes:
    from openpyxl import Workbook
    from openpyxl.cell.cell import TYPE_STRING
    from openpyxl.styles import Font

    book = Workbook()
    sheet = book.active
    sheet.title = "applicants" if language == "en" else "заявители"
    sheet.append(headings)
    for cell in sheet[1]:
        cell.font = Font(bold=True)
    for row in rows:
        sheet.append(row)
        for cell in sheet[sheet.max_row]:
            if isinstance(cell.value, str):
                cell.data_type = TYPE_STRING  # "=..." written by a person stays text
    sheet.freeze_panes = "A2"
    notes = book.create_sheet("columns" if language == "en" else "столбцы")
    notes.append(["column", "meaning", "required"] if language == "en" else ["столбец", "значение (англ.)", "обязательный"])
    for column, heading in zip(columns, headings):
        notes.append([heading, column.meaning, "yes" if column.required else ""])
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()
