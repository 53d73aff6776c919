"""The document store (stores/documents.py) on both backends through one fixture: files under a
temporary directory and PostgreSQL on a real server (tests/support/postgres.py), a fresh database
for each test. The samples are built here, small and real: a PDF with its cross-reference table, a
PNG with its checksums, a TIFF with its directory, ODT and DOCX packages as office suites write
them."""

from __future__ import annotations

import asyncio
import dataclasses
import base64
import bz2
import hashlib
import io
import os
import struct
import subprocess
import sys
import textwrap
import tracemalloc
import uuid
import zipfile
import zlib
from collections.abc import AsyncIterator, Iterable
from datetime import datetime, timedelta, timezone

import psycopg
import pytest

import stores.documents as documents
from stores.documents import (DOCX, HEADER_BYTES, JPEG, ODT, PDF, PNG, SEGMENT_BYTES, TEXT, TIFF, DocumentCorrupt,
                              DocumentEmpty, DocumentExists, DocumentKeyMissing, DocumentNotFound, Documents,
                              DocumentTooLarge, FileDocuments, PostgresDocuments, UnsupportedContent,
                              content_type_of, new_document_id, open_documents, read_chunks)
from tests.support.postgres import postgres_url  # noqa: F401 - the fixture
from tests.support.processes import REPO, base_env
from treatyflow.codec import CodecKeys
from treatyflow.config import Settings

KEY_A, KEY_B = os.urandom(32), os.urandom(32)
KEYS_A = CodecKeys(current="a", keys={"a": KEY_A})
CASE = {"kind": "transfer", "reference": "KZ-2025-0042"}
MiB = 1_048_576


# ---- samples ----------------------------------------------------------------------------------

def pdf() -> bytes:
    objects = [b"<< /Type /Catalog /Pages 2 0 R >>", b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
               b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] >>"]
    out, offsets = bytearray(b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n"), []
    for number, body in enumerate(objects, 1):
        offsets.append(len(out))
        out += b"%d 0 obj\n%s\nendobj\n" % (number, body)
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % offset for offset in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, xref)
    return bytes(out)


def png() -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 1, 1, 8, 0, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(b"\x00\x80")) + chunk(b"IEND", b""))


def jpeg() -> bytes:
    """Start of image, a JFIF APP0 segment, a quantisation table, end of image."""
    app0 = b"JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00"
    dqt = b"\x00" + bytes(range(1, 65))
    return (b"\xff\xd8" + b"\xff\xe0" + struct.pack(">H", len(app0) + 2) + app0
            + b"\xff\xdb" + struct.pack(">H", len(dqt) + 2) + dqt + b"\xff\xd9")


def tiff() -> bytes:
    """A 1×1 grey pixel, little-endian: header, one image file directory, the pixel."""
    short, long_ = 3, 4
    entries = [(256, short, 1), (257, short, 1), (258, short, 8), (259, short, 1), (262, short, 1),
               (273, long_, None), (277, short, 1), (278, short, 1), (279, long_, 1)]
    pixel_at = 8 + 2 + 12 * len(entries) + 4
    ifd = struct.pack("<H", len(entries))
    for tag, kind, value in entries:
        value = pixel_at if value is None else value
        ifd += struct.pack("<HHI", tag, kind, 1) + (struct.pack("<HH", value, 0) if kind == short
                                                     else struct.pack("<I", value))
    return b"II*\x00" + struct.pack("<I", 8) + ifd + struct.pack("<I", 0) + b"\x80"


def zipped(entries: Iterable[tuple[str, bytes]], stored_first: bool = False) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for number, (name, data) in enumerate(entries):
            method = zipfile.ZIP_STORED if stored_first and number == 0 else zipfile.ZIP_DEFLATED
            archive.writestr(zipfile.ZipInfo(name, (2025, 1, 1, 0, 0, 0)), data, compress_type=method)
    return buffer.getvalue()


def odt() -> bytes:
    return zipped([
        ("mimetype", ODT.encode()),
        ("content.xml", b'<?xml version="1.0" encoding="UTF-8"?><office:document-content '
                        b'xmlns:office="urn:oasis:names:tc:opendocument:xmlns:office:1.0"><office:body>'
                        b'<office:text/></office:body></office:document-content>'),
        ("META-INF/manifest.xml", b'<?xml version="1.0" encoding="UTF-8"?><manifest:manifest '
                                  b'xmlns:manifest="urn:oasis:names:tc:opendocument:xmlns:manifest:1.0"/>'),
    ], stored_first=True)


def content_types(main: str = documents.WORDPROCESSING_MAIN, part: str = "/word/document.xml") -> bytes:
    return (b'<?xml version="1.0" encoding="UTF-8" standalone="yes"?>'
            b'<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">'
            b'<Default Extension="rels" ContentType="application/vnd.openxmlformats-package.relationships+xml"/>'
            b'<Default Extension="xml" ContentType="application/xml"/>'
            b'<Override PartName="%s" ContentType="%s"/></Types>' % (part.encode(), main.encode()))


RELS = (b'<?xml version="1.0" encoding="UTF-8"?><Relationships '
        b'xmlns="http://schemas.openxmlformats.org/package/2006/relationships"><Relationship Id="rId1" '
        b'Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/officeDocument" '
        b'Target="word/document.xml"/></Relationships>')
WORD = (b'<?xml version="1.0" encoding="UTF-8"?><w:document '
        b'xmlns:w="http://schemas.openxmlformats.org/wordprocessingml/2006/main"><w:body><w:p><w:r><w:t>'
        b'Judgment</w:t></w:r></w:p></w:body></w:document>')


def docx(order: str = "word") -> bytes:
    parts = {"[Content_Types].xml": content_types(), "_rels/.rels": RELS, "word/document.xml": WORD}
    names = (["[Content_Types].xml", "_rels/.rels", "word/document.xml"] if order == "word"
             else ["_rels/.rels", "word/document.xml", "[Content_Types].xml"])  # the types last, as some tools do
    return zipped((name, parts[name]) for name in names)


def elf() -> bytes:
    header = b"\x7fELF\x02\x01\x01\x00" + b"\x00" * 8 + struct.pack("<HHIQQQIHHHHHH", 2, 0x3E, 1, 0x401000, 64, 0,
                                                                     0, 64, 56, 1, 64, 0, 0)
    return header + b"\x00" * 200


ACCEPTED = {
    "pdf": (pdf, PDF), "png": (png, PNG), "jpeg": (jpeg, JPEG), "tiff": (tiff, TIFF), "odt": (odt, ODT),
    "docx": (docx, DOCX), "docx with its types last": (lambda: docx(order="last"), DOCX),
    "utf-8 text": (lambda: "Решение суда № 2-123/2025\r\n\tвступило в силу.\n\f".encode(), TEXT),
    "utf-8 text with a byte order mark": (lambda: "\ufeffSentence served: 3 years\n".encode(), TEXT),
    "long utf-8 text": (lambda: "Ташкент — Астана\n".encode() * 2000, TEXT),
    "text filetype takes for a BMP": (lambda: b"BMI report of the sentenced person\n", TEXT),
    "text filetype takes for a program": (lambda: b"MZ is the code of the requesting court\n", TEXT),
    "RTF, which is text": (lambda: b"{\\rtf1\\ansi\\deff0 {\\fonttbl {\\f0 Times;}}\\f0 Judgment\\par}", TEXT),
}
REFUSED = {
    "an ELF executable": elf,
    "a PE executable": lambda: b"MZ\x90\x00\x03\x00\x00\x00\x04\x00\x00\x00\xff\xff\x00\x00" + b"\x00" * 100,
    "Latin-1 text": lambda: "Décision du tribunal, café\n".encode("latin-1"),
    "text with a NUL": lambda: b"plain text\x00 with a NUL\n",
    "text gone bad after the first 8 KiB": lambda: b"a" * 20_000 + b"\xff" + b"b" * 100,
    "a plain ZIP archive": lambda: zipped([("evidence.txt", b"hello")]),
    "a ZIP with a word/ entry and no types": lambda: zipped([("word/document.xml", WORD)]),
    "a macro-enabled document": lambda: zipped([
        ("[Content_Types].xml", content_types("application/vnd.ms-word.document.macroEnabled.main+xml")),
        ("_rels/.rels", RELS), ("word/document.xml", WORD), ("word/vbaProject.bin", b"\xd0\xcf\x11\xe0")]),
    "a docx whose main part is missing": lambda: zipped([("[Content_Types].xml", content_types()),
                                                         ("_rels/.rels", RELS)]),
    "a docx with a DOCTYPE": lambda: zipped([("[Content_Types].xml", b'<!DOCTYPE x [<!ENTITY a "b">]>'
                                              + content_types()), ("word/document.xml", WORD)]),
    "an EPUB": lambda: zipped([("mimetype", b"application/epub+zip"), ("content.xml", b"<x/>")], stored_first=True),
    "a GIF": lambda: b"GIF89a\x01\x00\x01\x00\x80\x00\x00\xff\xff\xff\x00\x00\x00!\xf9\x04\x01\x00\x00\x00\x00,"
                     b"\x00\x00\x00\x00\x01\x00\x01\x00\x00\x02\x02D\x01\x00;",
    "a bzip2 archive": lambda: bz2.compress(b"evidence " * 100),
    "a ZIP cut short": lambda: zipped([("mimetype", ODT.encode()), ("content.xml", b"<x/>")], stored_first=True)[:-30],
}


# ---- the stores -------------------------------------------------------------------------------

@pytest.fixture(params=["file", "postgres"])
async def backend(request, tmp_path):
    """A function giving a store of this test's backend (the same place each time) for keys."""
    if request.param == "file":
        yield lambda keys=KEYS_A, **kw: open_documents(url=None, directory=tmp_path / "documents", keys=keys, **kw)
        return
    server = request.getfixturevalue("postgres_url")
    database = f"documents_{uuid.uuid4().hex[:12]}"
    async with await psycopg.AsyncConnection.connect(server, autocommit=True) as conn:
        await conn.execute(f"CREATE DATABASE {database}")
    url = server.rsplit("/", 1)[0] + f"/{database}"
    opened: list[Documents] = []

    def open_one(keys=KEYS_A, **kw) -> Documents:
        opened.append(open_documents(url=url, directory=tmp_path / "documents", keys=keys, **kw))
        return opened[-1]
    yield open_one
    for store in opened:  # their pools' connections
        await store.close()


@pytest.fixture
def store(backend) -> Documents:
    return backend()


async def chunks(data: bytes, size: int = 65_536) -> AsyncIterator[bytes]:
    for start in range(0, len(data), size):
        yield data[start:start + size]


async def content(store: Documents, document_id: str, case: dict = CASE) -> bytes:
    return b"".join([piece async for piece in store.read(case["kind"], case["reference"], document_id)])


async def kept(store: Documents) -> bytes:
    """Everything the backend keeps, as it keeps it (spool included)."""
    if isinstance(store, FileDocuments):
        files = sorted(p for p in store.root.rglob("*") if p.is_file()) if store.root.exists() else []
        return b"".join(p.read_bytes() for p in files)
    async with await psycopg.AsyncConnection.connect(store.url) as conn:
        rows = await (await conn.execute(
            "SELECT document_id, kind, reference, size, content_type, key_id, stored_at::text, salt, nonce_prefix, "
            "info FROM documents")).fetchall()
        segments = await (await conn.execute("SELECT sealed FROM document_segments")).fetchall()
    spooled = b"".join(p.read_bytes() for p in store.spool.rglob("*") if p.is_file()) if store.spool.exists() else b""
    return b"".join(v if isinstance(v, bytes) else str(v).encode() for row in rows + segments for v in row) + spooled


async def nothing_left(store: Documents) -> bool:
    """No document and no file of a write in progress."""
    listed = [x async for x in store.stored(before=datetime.now(timezone.utc) + timedelta(days=1))]
    return not listed and not await kept(store)


def clear_fields(block: bytes, **changes) -> bytes:
    """A file's header block with its clear fields changed (and rewritten consistently)."""
    return dataclasses.replace(documents._Header.from_block(block), **changes).block()


async def tamper(store: Documents, document_id: str, change: str) -> None:
    """Change a stored document behind the store's back: "byte" (one byte of its first segment),
    "last" (drop its last segment), "swap" (its first two segments), "type" (a clear field)."""
    if isinstance(store, FileDocuments):
        path = store.path_of(document_id)
        data = bytearray(path.read_bytes())
        sealed = SEGMENT_BYTES + documents.TAG_BYTES
        if change == "byte":
            data[HEADER_BYTES + 100] ^= 1
        elif change == "last":
            del data[HEADER_BYTES + sealed * ((len(data) - HEADER_BYTES - 1) // sealed):]
        elif change == "swap":
            first, second = HEADER_BYTES, HEADER_BYTES + sealed
            data[first:second], data[second:second + sealed] = data[second:second + sealed], data[first:second]
        elif change == "type":
            data[:HEADER_BYTES] = clear_fields(bytes(data[:HEADER_BYTES]), content_type=PNG)
        path.write_bytes(bytes(data))
        return
    statements = {
        "byte": "UPDATE document_segments SET sealed = set_byte(sealed, 100, get_byte(sealed, 100) # 1) "
                "WHERE document_id = %(id)s AND segment = 0",
        "last": "DELETE FROM document_segments WHERE document_id = %(id)s AND segment = "
                "(SELECT max(segment) FROM document_segments WHERE document_id = %(id)s)",
        "swap": "UPDATE document_segments SET segment = CASE segment WHEN 0 THEN 1 ELSE 0 END "
                "WHERE document_id = %(id)s AND segment IN (0, 1)",
        "type": "UPDATE documents SET content_type = 'image/png' WHERE document_id = %(id)s",
    }
    async with await psycopg.AsyncConnection.connect(store.url, autocommit=True) as conn:
        if change == "swap":  # the primary key is checked per row: move one out of the way first
            await conn.execute("UPDATE document_segments SET segment = -1 WHERE document_id = %(id)s AND segment = 0",
                               {"id": document_id})
            await conn.execute("UPDATE document_segments SET segment = 0 WHERE document_id = %(id)s AND segment = 1",
                               {"id": document_id})
            await conn.execute("UPDATE document_segments SET segment = 1 WHERE document_id = %(id)s AND segment = -1",
                               {"id": document_id})
        else:
            await conn.execute(statements[change], {"id": document_id})


# ---- streaming, limits, digests ---------------------------------------------------------------

async def test_a_20_mib_content_streams_in_and_out_without_ever_being_held_whole(store):
    size, head = 20 * MiB, pdf()
    produced = hashlib.sha256()

    async def upload() -> AsyncIterator[bytes]:  # generated as it is read, like an upload
        produced.update(head)
        yield head
        sent = len(head)
        while sent < size:
            piece = os.urandom(min(65_536, size - sent))
            produced.update(piece)
            sent += len(piece)
            yield piece

    tracemalloc.start()
    try:
        stored = await store.write(upload(), **CASE)
        _, writing = tracemalloc.get_traced_memory()
        tracemalloc.reset_peak()
        read, total = hashlib.sha256(), 0
        async for piece in store.read(CASE["kind"], CASE["reference"], stored.document_id):
            read.update(piece)
            total += len(piece)
        _, reading = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert stored.size == total == size and stored.content_type == PDF
    assert stored.sha256 == produced.hexdigest() == read.hexdigest()
    print(f"peak traced memory: writing {writing / MiB:.2f} MiB, reading {reading / MiB:.2f} MiB")
    assert writing < 3 * MiB and reading < 3 * MiB, (writing, reading)  # a few segments, never 20 MiB
    assert await store.info(CASE["kind"], CASE["reference"], stored.document_id) == stored


@pytest.mark.parametrize("size", [1, SEGMENT_BYTES - 1, SEGMENT_BYTES, SEGMENT_BYTES + 1, 3 * SEGMENT_BYTES])
async def test_any_size_and_any_chunking_reads_back_exactly(store, size):
    data = ("Приговор суда\n" * (size // 10 + 1)).encode()[:size]
    data = data.decode("utf-8", "ignore").encode().ljust(size, b".")

    async def ragged() -> AsyncIterator[bytes]:  # chunks of every size, empty ones included
        at, step = 0, 0
        while at < len(data):
            step = (step * 7 + 13) % 90_001
            yield b""
            yield memoryview(data)[at:at + step]
            at += step

    stored = await store.write(ragged(), **CASE)
    assert await content(store, stored.document_id) == data
    assert stored.size == size and stored.sha256 == hashlib.sha256(data).hexdigest() and stored.content_type == TEXT


async def test_a_content_over_the_limit_is_refused_unread_and_leaves_nothing(backend):
    store = backend(limit=100_000)
    pulled = 0

    async def upload() -> AsyncIterator[bytes]:
        nonlocal pulled
        yield pdf()
        for _ in range(10_000):  # 10 MB offered
            pulled += 1
            yield b"\x00" * 1000

    with pytest.raises(DocumentTooLarge, match="100000 bytes") as refused:
        await store.write(upload(), **CASE)
    assert refused.value.limit == 100_000 and pulled <= 100
    assert await nothing_left(store)
    exact = pdf().ljust(100_000, b" ")
    assert (await store.write(chunks(exact), **CASE)).size == 100_000  # at the limit: stored
    with pytest.raises(DocumentTooLarge):
        await store.write(chunks(exact + b" "), **CASE)
    with pytest.raises(DocumentTooLarge):  # a limit for this write only
        await store.write(chunks(exact), **CASE, limit=99_999)


async def test_an_empty_content_is_refused(store):
    with pytest.raises(DocumentEmpty):
        await store.write(chunks(b""), **CASE)

    async def empties() -> AsyncIterator[bytes]:
        for _ in range(3):
            yield b""

    with pytest.raises(DocumentEmpty):
        await store.write(empties(), **CASE)
    assert await nothing_left(store)
    with pytest.raises(DocumentEmpty):
        content_type_of(b"")


async def test_an_upload_file_read_loop_is_a_content(store):
    upload = io.BytesIO(pdf())

    async def read(size: int) -> bytes:  # as UploadFile.read
        return upload.read(size)

    stored = await store.write(read_chunks(read), **CASE)
    assert await content(store, stored.document_id) == pdf()


# ---- content types ----------------------------------------------------------------------------

@pytest.mark.parametrize("sample", ACCEPTED)
async def test_each_accepted_type_is_decided_from_its_bytes(store, sample):
    make, content_type = ACCEPTED[sample]
    data = make()
    assert content_type_of(data) == content_type
    stored = await store.write(chunks(data, 1000), **CASE)
    assert stored.content_type == content_type and await content(store, stored.document_id) == data


@pytest.mark.parametrize("sample", REFUSED)
async def test_anything_else_is_refused_and_leaves_nothing(store, sample):
    data = REFUSED[sample]()
    with pytest.raises(UnsupportedContent):
        content_type_of(data)
    with pytest.raises(UnsupportedContent) as refused:
        await store.write(chunks(data, 1000), **CASE)
    assert isinstance(refused.value, ValueError) and data[:20].decode("latin-1") not in str(refused.value)
    assert await nothing_left(store)


async def test_an_executable_is_refused_from_its_first_bytes_without_reading_the_rest(store):
    pulled = 0

    async def upload() -> AsyncIterator[bytes]:
        nonlocal pulled
        for piece in [elf()] + [b"\x00" * 4096] * 1000:
            pulled += 1
            yield piece

    with pytest.raises(UnsupportedContent, match="x-executable"):
        await store.write(upload(), **CASE)
    assert pulled < 5


async def test_a_pdf_named_png_is_a_pdf_and_a_png_named_pdf_a_png(store):
    """Nothing but the bytes decides: the store takes no file name and no claimed type at all, so
    what a client calls scan.png is judged by its content."""
    uploaded_as = {"scan.png": pdf(), "judgment.pdf": png()}
    assert content_type_of(uploaded_as["scan.png"]) == PDF and content_type_of(uploaded_as["judgment.pdf"]) == PNG
    assert (await store.write(chunks(uploaded_as["scan.png"]), **CASE)).content_type == PDF
    assert (await store.write(chunks(uploaded_as["judgment.pdf"]), **CASE)).content_type == PNG


# ---- written once -----------------------------------------------------------------------------

async def test_a_second_write_to_an_id_fails_and_keeps_the_first(store):
    document_id = new_document_id()
    first = await store.write(chunks(pdf()), **CASE, document_id=document_id)
    with pytest.raises(DocumentExists, match=document_id):
        await store.write(chunks(png()), **CASE, document_id=document_id)
    with pytest.raises(DocumentExists):  # from another case too: an id is one document
        await store.write(chunks(png()), kind="assistance", reference="UZ-2025-7", document_id=document_id)
    assert await content(store, document_id) == pdf()
    assert await store.info(CASE["kind"], CASE["reference"], document_id) == first


async def test_two_writes_to_one_id_at_once_store_one_of_them_whole(store):
    document_id = new_document_id()
    big_pdf, big_png = pdf().ljust(300_000, b" "), png() + b"\x00" * 300_000
    results = await asyncio.gather(store.write(chunks(big_pdf), **CASE, document_id=document_id),
                                   store.write(chunks(big_png), **CASE, document_id=document_id),
                                   return_exceptions=True)
    assert sorted(type(r).__name__ for r in results) == ["DocumentExists", "StoredDocument"]
    (winner,) = [r for r in results if not isinstance(r, Exception)]
    assert await content(store, document_id) == (big_pdf if winner.content_type == PDF else big_png)


async def test_ids_are_random_and_addresses_are_checked(store):
    ids = {new_document_id() for _ in range(1000)}
    assert len(ids) == 1000 and all(documents.DOCUMENT_ID.match(i) for i in ids)
    for wrong in ({"kind": "extradition", "reference": "KZ-1"}, {"kind": "transfer", "reference": "../../etc"}):
        with pytest.raises(ValueError):
            await store.write(chunks(pdf()), **wrong)
    with pytest.raises(ValueError):
        await store.write(chunks(pdf()), **CASE, document_id="../../passwd")
    assert await store.info("transfer", "KZ-2025-0042", "../../passwd") is None
    with pytest.raises(DocumentNotFound):
        await content(store, "doc-" + "a" * 26)


async def test_a_document_is_read_only_in_its_own_case(store):
    stored = await store.write(chunks(pdf()), **CASE)
    other = {"kind": "transfer", "reference": "KZ-2025-0043"}
    assert await store.info(other["kind"], other["reference"], stored.document_id) is None
    assert await store.info("assistance", CASE["reference"], stored.document_id) is None
    with pytest.raises(DocumentNotFound):
        await content(store, stored.document_id, other)


# ---- sealed at rest ---------------------------------------------------------------------------

async def test_contents_and_digests_are_kept_sealed(store):
    letter = "Осуждённая: Айгерим Нурлановна Сейткали, 1990 г.р.\n".encode() * 100
    stored = await store.write(chunks(letter), **CASE)
    everything = await kept(store)
    assert "Айгерим".encode() not in everything and b"Aigerim" not in everything
    assert stored.sha256.encode() not in everything and bytes.fromhex(stored.sha256) not in everything
    assert CASE["reference"].encode() in everything  # references are not personal data: in clear, for sweeping
    if isinstance(store, FileDocuments):
        assert store.path_of(stored.document_id).stat().st_mode & 0o777 == 0o600


@pytest.mark.parametrize("change", ["byte", "last", "swap", "type"])
async def test_a_changed_cut_or_reordered_document_fails_to_read(store, change):
    data = pdf() + os.urandom(3 * SEGMENT_BYTES)
    stored = await store.write(chunks(data), **CASE)
    await tamper(store, stored.document_id, change)
    with pytest.raises(DocumentCorrupt):
        await content(store, stored.document_id)
    if change == "type":
        with pytest.raises(DocumentCorrupt):
            await store.info(CASE["kind"], CASE["reference"], stored.document_id)


async def test_a_document_cut_at_a_segment_with_its_size_rewritten_fails_too(store):
    """Dropping the last segment and shrinking the clear size to match: the sealed metadata says otherwise."""
    stored = await store.write(chunks(pdf() + os.urandom(2 * SEGMENT_BYTES)), **CASE)
    await tamper(store, stored.document_id, "last")
    if isinstance(store, FileDocuments):
        path = store.path_of(stored.document_id)
        data = path.read_bytes()
        path.write_bytes(clear_fields(data[:HEADER_BYTES], size=2 * SEGMENT_BYTES) + data[HEADER_BYTES:])
    else:
        async with await psycopg.AsyncConnection.connect(store.url, autocommit=True) as conn:
            await conn.execute("UPDATE documents SET size = %s WHERE document_id = %s",
                               (2 * SEGMENT_BYTES, stored.document_id))
    with pytest.raises(DocumentCorrupt):
        await content(store, stored.document_id)


async def test_a_segment_spliced_in_from_another_document_fails_to_read(store):
    """Two documents under the same codec key: a segment of one put in the other's place."""
    first = await store.write(chunks(pdf() + os.urandom(2 * SEGMENT_BYTES)), **CASE)
    second = await store.write(chunks(pdf() + os.urandom(2 * SEGMENT_BYTES)), **CASE)
    if isinstance(store, FileDocuments):
        donor = store.path_of(first.document_id).read_bytes()
        path = store.path_of(second.document_id)
        data = bytearray(path.read_bytes())
        span = slice(HEADER_BYTES, HEADER_BYTES + SEGMENT_BYTES + documents.TAG_BYTES)
        data[span] = donor[span]
        path.write_bytes(bytes(data))
    else:
        async with await psycopg.AsyncConnection.connect(store.url, autocommit=True) as conn:
            await conn.execute("UPDATE document_segments SET sealed = (SELECT sealed FROM document_segments WHERE "
                               "document_id = %s AND segment = 0) WHERE document_id = %s AND segment = 0",
                               (first.document_id, second.document_id))
    with pytest.raises(DocumentCorrupt, match="segment 0"):
        await content(store, second.document_id)
    assert await content(store, first.document_id)


def test_each_segment_is_bound_to_its_place_its_document_and_whether_it_is_the_last():
    """The format itself, below the store's own checks of counts and sizes."""
    salt, prefix = os.urandom(16), os.urandom(7)
    seal = documents._Seal(KEY_A, "doc-" + "a" * 26, "a", salt, prefix)
    middle = seal.seal(1, b"part of a judgment", documents.SEGMENT)
    assert seal.open(1, middle, documents.SEGMENT) == b"part of a judgment"
    with pytest.raises(DocumentCorrupt):  # a content cut after this segment: it was not sealed as the last
        seal.open(1, middle, documents.FINAL)
    with pytest.raises(DocumentCorrupt):  # moved to another place
        seal.open(2, middle, documents.SEGMENT)
    for other in (documents._Seal(KEY_A, "doc-" + "b" * 26, "a", salt, prefix),  # another document
                  documents._Seal(KEY_A, "doc-" + "a" * 26, "b", salt, prefix),  # another key id
                  documents._Seal(KEY_B, "doc-" + "a" * 26, "a", salt, prefix)):  # another key
        with pytest.raises(DocumentCorrupt):
            other.open(1, middle, documents.SEGMENT)


async def test_keys_rotate_a_document_sealed_under_an_old_key_still_reads(backend):
    written = await backend(KEYS_A).write(chunks(pdf()), **CASE)
    assert written.key_id == "a"
    rotated = backend(CodecKeys(current="b", keys={"b": KEY_B, "a": KEY_A}))
    assert await content(rotated, written.document_id) == pdf()
    assert (await rotated.info(CASE["kind"], CASE["reference"], written.document_id)).key_id == "a"
    newer = await rotated.write(chunks(png()), **CASE)
    assert newer.key_id == "b"
    only_b = backend(CodecKeys(current="b", keys={"b": KEY_B}))
    assert await content(only_b, newer.document_id) == png()
    with pytest.raises(DocumentKeyMissing, match="'a'"):
        await content(only_b, written.document_id)
    impostor = backend(CodecKeys(current="a", keys={"a": KEY_B}))  # another key under the same id
    with pytest.raises(DocumentCorrupt):
        await impostor.info(CASE["kind"], CASE["reference"], written.document_id)


# ---- never half-written; sweeping -------------------------------------------------------------

async def test_an_upload_failing_halfway_leaves_nothing(store):
    async def broken() -> AsyncIterator[bytes]:
        yield pdf()
        yield os.urandom(3 * SEGMENT_BYTES)
        raise ConnectionResetError("the client went away")

    with pytest.raises(ConnectionResetError):
        await store.write(broken(), **CASE)
    assert await nothing_left(store)


async def test_a_failure_while_publishing_leaves_nothing(store, monkeypatch):
    if isinstance(store, FileDocuments):
        def no_link(*_):
            raise OSError(28, "No space left on device")
        monkeypatch.setattr(documents.os, "link", no_link)
    else:
        original = PostgresDocuments._spooled

        def spooled(self, file, header):  # the upload breaks off after two segments are inserted
            for number, sealed in enumerate(original(self, file, header)):
                if number == 2:
                    raise OSError("connection lost")
                yield sealed
        monkeypatch.setattr(PostgresDocuments, "_spooled", spooled)
    with pytest.raises(OSError):
        await store.write(chunks(pdf() + os.urandom(5 * SEGMENT_BYTES)), **CASE)
    assert await nothing_left(store)


async def test_a_writer_killed_mid_write_leaves_nothing_readable_and_the_sweep_clears_it(store):
    url = getattr(store, "url", "")
    directory = store.root if isinstance(store, FileDocuments) else store.spool.parent
    script = textwrap.dedent("""
        import asyncio, base64, os, sys
        from pathlib import Path
        from stores.documents import open_documents

        class Keys:
            current = "a"
            keys = {"a": base64.b64decode(os.environ["KEY"])}

        async def upload():
            yield b"%PDF-1.7\\n" + os.urandom(200_000)
            os._exit(3)  # killed halfway: no finally runs

        store = open_documents(url=os.environ["URL"] or None, directory=Path(sys.argv[1]), keys=Keys())
        asyncio.run(store.write(upload(), kind="transfer", reference="KZ-2025-0042"))
    """)
    env = {**base_env(), "KEY": base64.b64encode(KEY_A).decode(), "URL": url}
    killed = subprocess.run([sys.executable, "-c", script, str(directory)], cwd=REPO, env=env, timeout=60,
                            capture_output=True)
    assert killed.returncode == 3, killed.stderr.decode()
    now = datetime.now(timezone.utc)
    assert [x async for x in store.stored(before=now + timedelta(days=1))] == []
    spool = store.root.glob("*/.doc-*.tmp") if isinstance(store, FileDocuments) else store.spool.glob(".doc-*.tmp")
    assert len(list(spool)) == 1  # a sealed temporary file, and nothing else
    assert (await store.sweep(set(), older_than=timedelta(hours=1))).leftovers == 0  # too recent to judge
    swept = await store.sweep(set(), older_than=timedelta(0), now=now + timedelta(seconds=1))
    assert swept.leftovers == 1 and swept.removed == []
    assert await nothing_left(store)


async def test_the_sweep_removes_only_old_documents_no_case_recorded(store):
    recorded = await store.write(chunks(pdf()), **CASE)
    orphan = await store.write(chunks(png()), **CASE)
    elsewhere = await store.write(chunks(tiff()), kind="assistance", reference="UZ-2025-0007")
    later = datetime.now(timezone.utc) + timedelta(seconds=1)

    assert await store.sweep({recorded.document_id}, older_than=timedelta(hours=1)) == documents.Swept([], 0)
    asked = []

    async def known(kind: str, reference: str) -> set[str]:
        asked.append((kind, reference))
        return {recorded.document_id} if kind == "transfer" else {elsewhere.document_id}

    swept = await store.sweep(known, older_than=timedelta(0), now=later)
    assert swept.removed == [orphan.document_id] and sorted(asked) == [("assistance", "UZ-2025-0007"), CASE_TUPLE]
    assert await store.info(CASE["kind"], CASE["reference"], orphan.document_id) is None
    assert await content(store, recorded.document_id) == pdf()
    swept = await store.sweep(set(), older_than=timedelta(0), now=later)
    assert sorted(swept.removed) == sorted([recorded.document_id, elsewhere.document_id]) and swept.leftovers == 0
    assert await nothing_left(store)
    assert await store.remove(recorded.document_id) is False


CASE_TUPLE = (CASE["kind"], CASE["reference"])


async def test_a_sweep_that_cannot_learn_what_a_case_recorded_removes_nothing(store):
    await store.write(chunks(pdf()), **CASE)

    async def unreachable(kind: str, reference: str) -> set[str]:
        raise ConnectionError("Temporal is not answering")

    with pytest.raises(ConnectionError):
        await store.sweep(unreachable, older_than=timedelta(0), now=datetime.now(timezone.utc) + timedelta(seconds=1))
    assert len([x async for x in store.stored(before=datetime.now(timezone.utc) + timedelta(days=1))]) == 1


async def test_first_uses_at_once_from_several_processes_agree(backend):
    """Several API processes starting together: the tables are created once, each write lands."""
    stores = [backend() for _ in range(4)]
    written = await asyncio.gather(*(s.write(chunks(pdf()), **CASE) for s in stores))
    for stored in written:
        assert await content(stores[0], stored.document_id) == pdf()


# ---- configuration ----------------------------------------------------------------------------

def test_the_configuration_chooses_the_backend_and_the_limit(tmp_path):
    assert isinstance(open_documents(url="postgresql://a/b", directory=tmp_path, keys=KEYS_A), PostgresDocuments)
    files = open_documents(url=None, directory=tmp_path / "documents", keys=KEYS_A, limit=5)
    assert isinstance(files, FileDocuments) and files.root == tmp_path / "documents" and files.limit == 5
    assert Settings.from_env({}).documents_url is None
    assert Settings.from_env({}).document_limit_bytes == 20 * MiB
    assert Settings.from_env({"TREATYFLOW_ARCHIVE_URL": "postgresql://a/b"}).documents_url == "postgresql://a/b"
    assert Settings.from_env({"TREATYFLOW_ARCHIVE_URL": "postgresql://a/b",
                              "TREATYFLOW_DOCUMENTS_URL": "postgresql://c/d"}).documents_url == "postgresql://c/d"
    assert Settings.from_env({"TREATYFLOW_DOCUMENT_LIMIT_BYTES": "1000"}).document_limit_bytes == 1000
    with pytest.raises(ValueError):
        open_documents(url=None, directory=tmp_path, keys=KEYS_A, limit=0)


async def test_an_unreachable_database_is_a_typed_error(tmp_path):
    from tests.support.serving import free_port

    store = PostgresDocuments(f"postgresql://nobody:secret@127.0.0.1:{free_port()}/none", KEYS_A, spool=tmp_path,
                              wait=1)  # how long a call waits for a connection of the pool (10 s by default)
    with pytest.raises(documents.DocumentsUnavailable) as unavailable:
        await store.info(CASE["kind"], CASE["reference"], new_document_id())
    assert "secret" not in str(unavailable.value)
