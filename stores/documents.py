"""The case file's documents: the contents of the judgments, declarations, letters, orders and
evidence uploaded to a case, kept here, outside the workflow history (which records only a
document's metadata and digest), encrypted at rest with the payload codec's keys.

Two backends behind one interface (``Documents``), chosen by ``open_documents`` from the values it
is given, as for the archive: files under a directory (the embedded default,
``<data dir>/documents``) or PostgreSQL (a URL, by default the archive's: tables ``documents`` and
``document_segments``). A store is given its keys, its directory or URL and its size limit; it
never reads the configuration.

**Streamed.** ``write`` takes the content as an async iterator of byte chunks (what a loop over
``UploadFile.read`` gives: ``read_chunks``) and never holds more than about one 64 KiB segment of
it: it computes the SHA-256 of the plaintext as the content passes, refuses it
(``DocumentTooLarge``) as soon as it passes the limit, without reading the rest, and refuses an
empty one (``DocumentEmpty``). ``read`` yields the plaintext segment by segment, each verified
before it is given out.

**Content type, decided from the content** (never from a name or the client's header): PDF, PNG,
JPEG, TIFF, UTF-8 plain text, OpenDocument text and Office Open XML text (docx); anything else is
``UnsupportedContent``. The first 8 KiB go to the library ``filetype`` (PyPI), chosen over the
others for these reasons:

- ``python-magic`` wraps the system's libmagic, which the image (python:3.11-slim) lacks: a
  dependency pip cannot install;
- ``puremagic`` (1.30, the version the registry serves) identifies by header and footer and ranks
  candidates by the length of what matched: from the bytes alone it called an OpenDocument text,
  and a plain ZIP archive, "docx", and ranked FDF level with PDF;
- ``filetype`` is pure Python with no dependency, looks at the first 8192 bytes only (what a
  stream gives first) and named every binary sample right. Its last release is from 2022, but the
  signatures of these formats do not change.

What ``filetype`` cannot settle is checked here. ODT and DOCX are ZIP archives, and filetype's
answer for them is a guess from the names of the first entries (a macro-enabled .docm, or any ZIP
with a ``word/`` entry, would pass as docx); so a content that begins as a ZIP is judged once it is
all stored (sealed, not yet visible), through its central directory as office suites read it:
OpenDocument text has a ``mimetype`` entry saying so and a ``content.xml``; docx has a
``[Content_Types].xml`` whose main document part is WordprocessingML's and present, and no macros.
The directory's size and entry count are bounded before it is read, an entry's bytes are read to a
bound, and an XML with a DOCTYPE is refused (so no entity is ever expanded). filetype has no text
detection: any other content is taken as text if the whole of it is valid UTF-8 without control
characters other than tab, line feed, form feed and carriage return (checked incrementally, and
refused at the first bad byte: an ELF or PE executable, an archive or an image of another format
fails within its first bytes). What filetype says of such a content is only what it looks like:
several of its signatures are two or three letters that ordinary text begins with (it calls
"BMI report" a BMP and "MZ is" a Windows program). So text is text whatever it is written in —
HTML, RTF, PostScript or a shell script is stored as text/plain and served as that.

**Encryption at rest.** Each document has its own AES-256-GCM key, derived with HKDF-SHA256 from
the codec key that is current when it is written, a random 16-byte salt and the document id; the
key id is kept with the document, and any configured key opens the documents written under it, so
keys rotate as the codec's do (a document stays readable while its key is configured). The
plaintext is sealed in segments of 64 KiB (the STREAM construction, as in Tink's streaming AEAD):
segment *i*'s nonce is a random 7-byte prefix of the document, *i* (4 bytes) and a flag byte (1 for
the last segment, else 0), and its associated data names the format, the document id, the key id,
*i* and the flag, so a changed byte, a dropped, reordered or repeated segment, a segment moved from
another document, or a content cut at a segment boundary fails to open. The metadata
(``StoredDocument``, with the SHA-256) is sealed too, under flag 2, and what is kept in clear beside
it for finding and sweeping documents (case kind and reference, size, content type, key id,
stored-at time) must agree with it, so the clear fields cannot be changed either. The digest is
kept sealed only: in clear it would confirm a guessed document to anyone holding a copy of the
store. Nothing personal is kept here: no file name, title or uploader (the workflow's record holds
them); case references are not personal data.

**Written once, never half.** A document id (``doc-`` and 26 random base32 characters) is written
once; a second write to it is ``DocumentExists`` and leaves the first content as it was. Files: the
content is sealed into a temporary file (mode 0600) in the directory it will live in, fsynced, and
linked to its name with ``os.link``, which never replaces a file; then the directory is fsynced.
PostgreSQL: the upload is sealed into a temporary file under the spool directory first (so no
transaction stays open while a client uploads, and ZIPs can be judged), then the metadata row and
every segment row are inserted in one transaction (a plain INSERT: a second one for the id is a
unique violation). A failure anywhere leaves nothing, or a complete document. A document stored
whose case never recorded it (a crash between the store and the workflow) is removed later by
``sweep``, which also removes what a killed writer left in the spool."""

from __future__ import annotations

import asyncio
import base64
import codecs
import contextlib
import hashlib
import io
import json
import os
import re
import secrets
import struct
import tempfile
import zipfile
import zlib
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable, Collection, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, BinaryIO, Literal, NamedTuple, Protocol
from xml.etree import ElementTree

import filetype
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationError

from stores.pooled import DEFAULT_SIZE, WAIT_SECONDS, Pool, Unreachable

DEFAULT_LIMIT = 20 * 1_048_576  # bytes (TREATYFLOW_DOCUMENT_LIMIT_BYTES)
SEGMENT_BYTES = 64 * 1024  # plaintext bytes per sealed segment
TAG_BYTES = 16
SALT_BYTES = 16
PREFIX_BYTES = 7
FORMAT = "treatyflow-document/1"
HEADER_BYTES = 4096  # files: the clear header block before the first segment
MAGIC = FORMAT.encode() + b"\n"
DOCUMENT_ID = re.compile(r"^doc-[a-z2-7]{26}$")
REFERENCE = re.compile(r"^[A-Za-z0-9._-]{3,64}$")  # a case reference, as domain.transfer.Reference
KINDS = ("transfer", "assistance")
SEGMENT, FINAL, INFO = 0, 1, 2  # the flag byte of a nonce
INFO_INDEX = 0xFFFFFFFF  # the counter of the metadata's nonce: never a segment's

PDF = "application/pdf"
PNG = "image/png"
JPEG = "image/jpeg"
TIFF = "image/tiff"
TEXT = "text/plain"  # always UTF-8: serve it as text/plain; charset=utf-8
ODT = "application/vnd.oasis.opendocument.text"
DOCX = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
CONTENT_TYPES = (PDF, PNG, JPEG, TIFF, TEXT, ODT, DOCX)


# ---- what the store answers and refuses ---------------------------------------------------------

class DocumentError(Exception):
    """Anything the document store refuses or cannot do. No message holds any of a content."""


class DocumentRefused(DocumentError, ValueError):
    """A content that may not be stored (an upload's fault, never the store's)."""


class DocumentTooLarge(DocumentRefused):
    """Over the size limit (the API's 413); the rest of the content was not read."""

    def __init__(self, limit: int) -> None:
        super().__init__(f"the document is larger than the limit of {limit} bytes")
        self.limit = limit


class DocumentEmpty(DocumentRefused):
    """No content at all (the API's 422)."""

    def __init__(self) -> None:
        super().__init__("the document is empty")


class UnsupportedContent(DocumentRefused):
    """A content of a type the case file does not take (the API's 415)."""

    def __init__(self, why: str) -> None:
        super().__init__("the document is not a PDF, PNG, JPEG or TIFF image, UTF-8 plain text, OpenDocument "
                         f"text or Office Open XML text document: {why}")


class DocumentExists(DocumentError):
    """A document of that id is already stored; it was left as it was."""

    def __init__(self, document_id: str) -> None:
        super().__init__(f"document {document_id} is already stored")
        self.document_id = document_id


class DocumentNotFound(DocumentError, LookupError):
    """No document of that id in that case."""


class DocumentCorrupt(DocumentError):
    """A stored document that fails its integrity check: changed, cut short, extended or mixed."""


class DocumentKeyMissing(DocumentError):
    """A document sealed under a key id that is not configured (removed too early)."""


class DocumentsUnavailable(DocumentError, ConnectionError):
    """The documents database cannot be reached for now."""


class DocumentKeys(Protocol):
    """What the store takes of the payload codec's keys (``treatyflow.codec.CodecKeys`` is one):
    the id of the current key, which seals new documents, and every configured key by id."""

    @property
    def current(self) -> str: ...

    @property
    def keys(self) -> Mapping[str, bytes]: ...


class StoredDocument(BaseModel):
    """A stored content's metadata, as sealed with it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    document_id: str = Field(pattern=DOCUMENT_ID.pattern)
    kind: Literal["transfer", "assistance"]
    reference: str = Field(pattern=REFERENCE.pattern)
    size: int = Field(gt=0)
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    content_type: str
    key_id: str
    stored_at: AwareDatetime


class Listed(NamedTuple):
    """A stored document as ``stored`` lists it: from the clear fields, not opened."""

    document_id: str
    kind: str
    reference: str
    stored_at: datetime


@dataclass(frozen=True)
class Swept:
    removed: list[str]  # ids of complete documents no case recorded
    leftovers: int  # temporary files of writes that never finished (a killed process)


def new_document_id() -> str:
    """``doc-`` and 26 characters of base32 (128 random bits): url-safe, the same in any letter case."""
    return "doc-" + base64.b32encode(secrets.token_bytes(16)).decode().rstrip("=").lower()


async def read_chunks(read: Callable[[int], Awaitable[bytes]], size: int = SEGMENT_BYTES) -> AsyncIterator[bytes]:
    """The chunks of an async reader such as ``UploadFile.read``, until it gives ``b""``."""
    while chunk := await read(size):
        yield chunk


def content_type_of(content: bytes) -> str:
    """The content type of a whole content held in memory (a document the system generates), as
    ``write`` decides it; UnsupportedContent or DocumentEmpty otherwise."""
    if not content:
        raise DocumentEmpty()
    sniff = _Sniff()
    sniff.feed(content)
    return sniff.finish(lambda: io.BytesIO(content))


# ---- sealing ------------------------------------------------------------------------------------

class _Seal:
    """The AEAD of one document: its own key, derived from a codec key, its salt and its id."""

    def __init__(self, master: bytes, document_id: str, key_id: str, salt: bytes, prefix: bytes) -> None:
        key = HKDF(algorithm=hashes.SHA256(), length=32, salt=salt,
                   info=b"treatyflow document key\0" + document_id.encode()).derive(master)
        self._aead = AESGCM(key)
        self._prefix = prefix
        self._context = f"{FORMAT}\0{document_id}\0{key_id}\0".encode()

    def _nonce_and_data(self, index: int, flag: int) -> tuple[bytes, bytes]:
        counter = struct.pack(">IB", index, flag)
        return self._prefix + counter, self._context + counter

    def seal(self, index: int, plaintext: bytes, flag: int) -> bytes:
        nonce, associated = self._nonce_and_data(index, flag)
        return self._aead.encrypt(nonce, plaintext, associated)

    def open(self, index: int, sealed: bytes, flag: int) -> bytes:
        nonce, associated = self._nonce_and_data(index, flag)
        try:
            return self._aead.decrypt(nonce, sealed, associated)
        except InvalidTag:
            what = "its metadata" if flag == INFO else f"segment {index}"
            raise DocumentCorrupt(f"a stored document fails its integrity check at {what}") from None


def _segment_lengths(size: int, segment_bytes: int) -> list[int]:
    """The sealed length of each segment of a content of ``size`` bytes."""
    count = -(-size // segment_bytes)
    return [segment_bytes + TAG_BYTES] * (count - 1) + [size - (count - 1) * segment_bytes + TAG_BYTES]


@dataclass(frozen=True)
class _Header:
    """What is kept in clear beside a document's segments (a file's header block, a table row)."""

    document_id: str
    kind: str
    reference: str
    size: int
    content_type: str
    key_id: str
    stored_at: datetime
    segment_bytes: int
    salt: bytes
    prefix: bytes
    info: bytes  # the sealed StoredDocument

    def block(self) -> bytes:
        body = json.dumps({
            "document_id": self.document_id, "kind": self.kind, "reference": self.reference, "size": self.size,
            "content_type": self.content_type, "key_id": self.key_id, "stored_at": self.stored_at.isoformat(),
            "segment_bytes": self.segment_bytes, "salt": base64.b64encode(self.salt).decode(),
            "nonce_prefix": base64.b64encode(self.prefix).decode(), "info": base64.b64encode(self.info).decode(),
        }, sort_keys=True).encode()
        block = MAGIC + struct.pack(">I", len(body)) + body
        if len(block) > HEADER_BYTES:
            raise ValueError("a document header outgrew its block")
        return block.ljust(HEADER_BYTES, b"\0")

    @classmethod
    def from_block(cls, block: bytes) -> _Header:
        try:
            if not block.startswith(MAGIC):
                raise ValueError("not a document file")
            (length,) = struct.unpack_from(">I", block, len(MAGIC))
            fields = json.loads(block[len(MAGIC) + 4:len(MAGIC) + 4 + length])
            return cls(document_id=fields["document_id"], kind=fields["kind"], reference=fields["reference"],
                       size=int(fields["size"]), content_type=fields["content_type"], key_id=fields["key_id"],
                       stored_at=datetime.fromisoformat(fields["stored_at"]),
                       segment_bytes=int(fields["segment_bytes"]), salt=base64.b64decode(fields["salt"]),
                       prefix=base64.b64decode(fields["nonce_prefix"]), info=base64.b64decode(fields["info"]))
        except (ValueError, KeyError, TypeError, struct.error):
            raise DocumentCorrupt("a stored document's header is unreadable") from None

    def lengths(self) -> list[int]:
        if self.size <= 0 or not 0 < self.segment_bytes <= 1 << 24:
            raise DocumentCorrupt("a stored document's header is unreadable")
        return _segment_lengths(self.size, self.segment_bytes)


# ---- sniffing -----------------------------------------------------------------------------------

SNIFF_BYTES = 8192  # what filetype looks at
BY_FILETYPE = {"application/pdf": PDF, "image/png": PNG, "image/apng": PNG, "image/jpeg": JPEG, "image/tiff": TIFF}
NOT_TEXT = re.compile("[\x00-\x08\x0b\x0e-\x1f\x7f-\x9f]")  # control characters (C0 but tab/LF/FF/CR, DEL, C1)
ZIP_ENTRIES = 10_000  # at most, in an ODT or DOCX
ZIP_DIRECTORY_BYTES = 2 * 1_048_576  # the central directory, at most
ZIP_PART_BYTES = 1_048_576  # at most, of an entry read to decide ([Content_Types].xml, mimetype)
CONTENT_TYPES_NS = "{http://schemas.openxmlformats.org/package/2006/content-types}"
WORDPROCESSING_MAIN = "application/vnd.openxmlformats-officedocument.wordprocessingml.document.main+xml"


class _Sniff:
    """A content's type, decided from its first bytes where they suffice, else at its end."""

    def __init__(self) -> None:
        self._head = bytearray()
        self.verdict: str | None = None  # a content type, or "zip" or "text" while the end is awaited
        self._text: codecs.IncrementalDecoder | None = None
        self._looks_like: str | None = None

    def feed(self, chunk: bytes) -> None:
        if self.verdict is None:
            self._head += chunk
            if len(self._head) >= SNIFF_BYTES:
                self._decide()
        elif self.verdict == "text":
            self._check_text(chunk)

    def finish(self, stored: Callable[[], BinaryIO]) -> str:
        """The content type once every byte was fed; ``stored`` gives the whole content, seekable."""
        if self.verdict is None:
            self._decide()
        if self.verdict == "text":
            self._check_text(b"", final=True)
            return TEXT
        if self.verdict == "zip":
            return _zipped_document(stored())
        return self.verdict

    def _decide(self) -> None:
        head, self._head = bytes(self._head), bytearray()
        if head.startswith(b"PK\x03\x04"):
            self.verdict = "zip"
            return
        guess = filetype.guess(head)
        if guess is not None and guess.mime in BY_FILETYPE:
            self.verdict = BY_FILETYPE[guess.mime]
            return
        # anything else must be text; filetype's other answers only say what it looks like (some of
        # its signatures are two or three letters: it calls "BMI report" a BMP, "MZ is" a program)
        self.verdict, self._looks_like = "text", guess.mime if guess is not None else None
        self._text = codecs.getincrementaldecoder("utf-8")("strict")
        self._check_text(head)

    def _check_text(self, chunk: bytes, final: bool = False) -> None:
        assert self._text is not None
        looks_like = f"its content looks like {self._looks_like}" if self._looks_like else "no known format"
        try:
            text = self._text.decode(chunk, final)
        except UnicodeDecodeError:
            raise UnsupportedContent(f"{looks_like}, and not UTF-8 text") from None
        if NOT_TEXT.search(text):
            raise UnsupportedContent(f"{looks_like}, and not plain text (it has control characters)")


def _zipped_document(content: BinaryIO) -> str:
    """ODT or DOCX, judged from the ZIP's central directory; UnsupportedContent otherwise."""
    size = content.seek(0, io.SEEK_END)
    tail_bytes = min(size, 22 + 65_535)
    content.seek(size - tail_bytes)
    tail = content.read(tail_bytes)
    end = tail.rfind(b"PK\x05\x06")  # the end of central directory record, as zipfile finds it
    if end < 0 or len(tail) - end < 22:
        raise UnsupportedContent("a ZIP archive without its central directory")
    entries, directory_bytes, directory_at = struct.unpack_from("<HLL", tail, end + 10)
    zip64_locator = end >= 20 and tail[end - 20:end - 16] == b"PK\x06\x07"
    if zip64_locator or entries == 0xFFFF or 0xFFFFFFFF in (directory_bytes, directory_at):
        raise UnsupportedContent("a ZIP64 archive")  # never needed within the limit; its counts are unbounded
    if entries > ZIP_ENTRIES or directory_bytes > ZIP_DIRECTORY_BYTES:
        raise UnsupportedContent("a ZIP archive of too many entries")
    try:
        with zipfile.ZipFile(content) as archive:
            names = set(archive.namelist())
            if len(archive.infolist()) > ZIP_ENTRIES:
                raise UnsupportedContent("a ZIP archive of too many entries")
            if len(names) != len(archive.infolist()):  # which of two entries of a name counts differs by reader
                raise UnsupportedContent("a ZIP archive with two entries of one name")
            if "mimetype" in names:
                if _part(archive, "mimetype").strip() == ODT.encode() and "content.xml" in names:
                    return ODT
                raise UnsupportedContent("an OpenDocument package other than text")
            if "[Content_Types].xml" in names and _is_wordprocessing(_part(archive, "[Content_Types].xml"), names):
                return DOCX
    except (zipfile.BadZipFile, zipfile.LargeZipFile, zlib.error, EOFError, NotImplementedError, RuntimeError,
            KeyError, ValueError, OSError, struct.error, ElementTree.ParseError) as exc:
        if isinstance(exc, UnsupportedContent):
            raise
        raise UnsupportedContent(f"an unreadable ZIP archive ({type(exc).__name__})") from None
    raise UnsupportedContent("a ZIP archive that is neither OpenDocument text nor Office Open XML text")


def _part(archive: zipfile.ZipFile, name: str) -> bytes:
    with archive.open(name) as entry:
        data = entry.read(ZIP_PART_BYTES + 1)
    if len(data) > ZIP_PART_BYTES:
        raise UnsupportedContent(f"a ZIP archive whose {name} is too large")
    return data


def _is_wordprocessing(content_types: bytes, names: Collection[str]) -> bool:
    """Whether ``[Content_Types].xml`` names a WordprocessingML main part that is in the package,
    and the package carries no macros."""
    if b"<!doctype" in content_types.lower():  # no DTD, so no entity to expand (or to fetch)
        raise UnsupportedContent("a package whose [Content_Types].xml has a DOCTYPE")
    root = ElementTree.fromstring(content_types)
    if root.tag != f"{CONTENT_TYPES_NS}Types":
        return False
    if any(name.lower().endswith("vbaproject.bin") for name in names):
        raise UnsupportedContent("an Office Open XML document with macros")
    main = [o.get("PartName", "") for o in root.iter(f"{CONTENT_TYPES_NS}Override")
            if o.get("ContentType") == WORDPROCESSING_MAIN]
    return any(part.lstrip("/") in names for part in main)


class _Plaintext(io.RawIOBase):
    """The plaintext of a sealed, staged content, readable at any offset (as zipfile reads) with
    one segment in memory at a time."""

    def __init__(self, file: BinaryIO, seal: _Seal, size: int, segment_bytes: int) -> None:
        self._file, self._seal, self._size, self._segment_bytes = file, seal, size, segment_bytes
        self._lengths = _segment_lengths(size, segment_bytes)
        self._position = 0
        self._cached: tuple[int, bytes] | None = None

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._position

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._position, io.SEEK_END: self._size}[whence]
        if base + offset < 0:
            raise ValueError("negative seek position")
        self._position = base + offset
        return self._position

    def readinto(self, buffer) -> int:
        if self._position >= self._size:
            return 0
        index, start = divmod(self._position, self._segment_bytes)
        if self._cached is None or self._cached[0] != index:
            self._file.seek(HEADER_BYTES + index * (self._segment_bytes + TAG_BYTES))
            sealed = self._file.read(self._lengths[index])
            self._cached = (index, self._seal.open(index, sealed, FINAL if index == len(self._lengths) - 1
                                                   else SEGMENT))
        piece = self._cached[1][start:start + len(buffer)]
        buffer[:len(piece)] = piece
        self._position += len(piece)
        return len(piece)


# ---- the stores ---------------------------------------------------------------------------------

class Documents:
    """What every backend offers. The case (kind and reference) is part of a document's address:
    reading a document of another case answers as if there were none."""

    def __init__(self, keys: DocumentKeys, *, limit: int = DEFAULT_LIMIT) -> None:
        if keys.current not in keys.keys:
            raise ValueError("the current key is not among the keys")
        if limit <= 0:
            raise ValueError("the document limit must be positive")
        self.keys = keys
        self.limit = limit

    # -- writing

    async def write(self, chunks: AsyncIterable[bytes], *, kind: str, reference: str, limit: int | None = None,
                    document_id: str | None = None) -> StoredDocument:
        """Store a new document of the case ``kind``/``reference`` from ``chunks`` and return its
        metadata. DocumentTooLarge past ``limit`` (the store's by default), DocumentEmpty,
        UnsupportedContent, DocumentExists when ``document_id`` (a new one by default) is taken.
        A failure, the caller's iterator raising included, leaves nothing stored."""
        document_id = document_id or new_document_id()
        _check_address(kind, reference, document_id)
        limit = self.limit if limit is None else limit
        if limit <= 0:
            raise ValueError("the document limit must be positive")
        if await self._exists(document_id):
            raise DocumentExists(document_id)
        directory = self._spool_dir(document_id)
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        descriptor, name = tempfile.mkstemp(prefix=f".{document_id}.", suffix=".tmp", dir=directory)  # mode 0600
        spool = Path(name)
        try:
            with open(descriptor, "w+b") as file:
                header, stored = await self._seal_into(file, chunks, document_id=document_id, kind=kind,
                                                       reference=reference, limit=limit)
                await self._publish(file, spool, header)
            return stored
        finally:
            spool.unlink(missing_ok=True)

    async def _seal_into(self, file: BinaryIO, chunks: AsyncIterable[bytes], *, document_id: str, kind: str,
                         reference: str, limit: int) -> tuple[_Header, StoredDocument]:
        """The content sealed into ``file`` (header block, then segments), and its header."""
        key_id = self.keys.current
        salt, prefix = os.urandom(SALT_BYTES), os.urandom(PREFIX_BYTES)
        seal = _Seal(self.keys.keys[key_id], document_id, key_id, salt, prefix)
        sniff, digest, pending, size, index = _Sniff(), hashlib.sha256(), bytearray(), 0, 0
        file.write(b"\0" * HEADER_BYTES)
        iterator = aiter(chunks)
        try:
            async for chunk in iterator:
                if not isinstance(chunk, (bytes, bytearray, memoryview)):
                    raise TypeError(f"a document's chunks are bytes, not {type(chunk).__name__}")
                size += len(chunk)
                if size > limit:
                    raise DocumentTooLarge(limit)
                digest.update(chunk)
                sniff.feed(chunk)
                pending += chunk
                while len(pending) > SEGMENT_BYTES:  # more follows: not the last segment
                    file.write(seal.seal(index, bytes(pending[:SEGMENT_BYTES]), SEGMENT))
                    del pending[:SEGMENT_BYTES]
                    index += 1
        except BaseException:
            close = getattr(iterator, "aclose", None)
            if close is not None:  # stop the caller's stream now: the rest is never read
                await close()
            raise
        if size == 0:
            raise DocumentEmpty()
        file.write(seal.seal(index, bytes(pending), FINAL))
        del pending
        file.flush()
        content_type = sniff.finish(lambda: io.BufferedReader(_Plaintext(file, seal, size, SEGMENT_BYTES),
                                                              buffer_size=SEGMENT_BYTES))
        stored = StoredDocument(document_id=document_id, kind=kind, reference=reference, size=size,
                                sha256=digest.hexdigest(), content_type=content_type, key_id=key_id,
                                stored_at=datetime.now(timezone.utc))
        info = seal.seal(INFO_INDEX, json.dumps(stored.model_dump(mode="json"), sort_keys=True).encode(), INFO)
        header = _Header(document_id=document_id, kind=kind, reference=reference, size=size,
                         content_type=content_type, key_id=key_id, stored_at=stored.stored_at,
                         segment_bytes=SEGMENT_BYTES, salt=salt, prefix=prefix, info=info)
        file.seek(0)
        file.write(header.block())
        file.flush()
        return header, stored

    # -- reading

    def _opened(self, header: _Header, kind: str, reference: str) -> tuple[StoredDocument, _Seal]:
        """The metadata sealed with a document, checked against its clear fields; the seal that
        opens its segments."""
        if (header.kind, header.reference) != (kind, reference):
            raise DocumentNotFound(f"no document {header.document_id} in {kind} {reference}")
        master = self.keys.keys.get(header.key_id)
        if master is None:
            raise DocumentKeyMissing(f"document {header.document_id} is sealed with key {header.key_id!r}, "
                                     "which is not configured")
        seal = _Seal(master, header.document_id, header.key_id, header.salt, header.prefix)
        try:
            stored = StoredDocument.model_validate_json(seal.open(INFO_INDEX, header.info, INFO))
        except ValidationError:
            raise DocumentCorrupt(f"document {header.document_id}: its metadata is unreadable") from None
        clear = (header.document_id, header.kind, header.reference, header.size, header.content_type,
                 header.key_id, header.stored_at)
        if clear != (stored.document_id, stored.kind, stored.reference, stored.size, stored.content_type,
                     stored.key_id, stored.stored_at):
            raise DocumentCorrupt(f"document {header.document_id}: its clear fields disagree with its sealed ones")
        return stored, seal

    @staticmethod
    async def _plaintext(header: _Header, stored: StoredDocument, seal: _Seal,
                         sealed: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
        lengths = header.lengths()
        digest, index = hashlib.sha256(), 0
        async for segment in sealed:
            if index >= len(lengths) or len(segment) != lengths[index]:
                raise DocumentCorrupt(f"document {header.document_id} does not have the segments it was stored with")
            piece = seal.open(index, segment, FINAL if index == len(lengths) - 1 else SEGMENT)
            digest.update(piece)
            index += 1
            yield piece
        if index != len(lengths) or digest.hexdigest() != stored.sha256:
            raise DocumentCorrupt(f"document {header.document_id} does not have the segments it was stored with")

    async def info(self, kind: str, reference: str, document_id: str) -> StoredDocument | None:
        """The metadata of a document of that case, verified; None if there is none."""
        raise NotImplementedError

    def read(self, kind: str, reference: str, document_id: str) -> AsyncIterator[bytes]:
        """The plaintext of a document of that case, segment by segment, each verified before it is
        given; DocumentNotFound (on the first step), DocumentCorrupt, DocumentKeyMissing."""
        raise NotImplementedError

    # -- sweeping

    async def remove(self, document_id: str) -> bool:
        """Remove a document (an orphan, or a case being erased); whether there was one."""
        raise NotImplementedError

    def stored(self, *, before: datetime) -> AsyncIterator[Listed]:
        """Every document stored before ``before`` (from its clear fields)."""
        raise NotImplementedError

    async def sweep(self, known: Collection[str] | Callable[[str, str], Awaitable[Collection[str]]], *,
                    older_than: timedelta, now: datetime | None = None) -> Swept:
        """Remove every document stored more than ``older_than`` ago that its case does not know,
        and what writes that never finished left behind. ``known``: the ids the cases recorded, or
        an async function giving a case's (kind, reference) recorded ids (asked once per case; if it
        raises, the sweep stops and removes no more). ``older_than`` must exceed the longest time
        between storing a document and recording it in its case (an hour is ample)."""
        cutoff = (now or datetime.now(timezone.utc)) - older_than
        cases: dict[tuple[str, str], Collection[str]] = {}
        orphans = []
        async for listed in self.stored(before=cutoff):
            if callable(known):
                case = (listed.kind, listed.reference)
                if case not in cases:
                    cases[case] = await known(*case)
                recorded = cases[case]
            else:
                recorded = known
            if listed.document_id not in recorded:
                orphans.append(listed.document_id)
        removed = [document_id for document_id in orphans if await self.remove(document_id)]
        return Swept(removed=removed, leftovers=self.remove_leftovers(before=cutoff))

    def remove_leftovers(self, *, before: datetime) -> int:
        """Remove the temporary files of writes that began before ``before`` and never finished (a
        process killed while it wrote: sealed content, never visible); how many. ``sweep`` does this
        too; each process staging uploads (PostgreSQL: its own spool) may do it at start-up."""
        removed = 0
        for path in self._leftovers():
            try:
                if datetime.fromtimestamp(path.stat().st_mtime, timezone.utc) < before:
                    path.unlink()
                    removed += 1
            except FileNotFoundError:
                pass
        return removed

    async def close(self) -> None:
        """Let go of what the store holds (a database's connections); files hold nothing."""

    # -- what a backend provides

    async def _exists(self, document_id: str) -> bool:
        raise NotImplementedError

    def _spool_dir(self, document_id: str) -> Path:
        raise NotImplementedError

    async def _publish(self, file: BinaryIO, spool: Path, header: _Header) -> None:
        """Make the sealed content in ``file`` (at ``spool``) the document; DocumentExists if taken."""
        raise NotImplementedError

    def _leftovers(self) -> Iterable[Path]:
        raise NotImplementedError


def _check_address(kind: str, reference: str, document_id: str) -> None:
    if kind not in KINDS:
        raise ValueError(f"a case kind is one of {', '.join(KINDS)}")
    if not REFERENCE.match(reference):
        raise ValueError("a case reference is 3 to 64 characters of A-Z a-z 0-9 . _ -")
    if not DOCUMENT_ID.match(document_id):
        raise ValueError("a document id is doc- and 26 characters of a-z 2-7")


async def _each(items: Iterable[bytes]) -> AsyncIterator[bytes]:
    for item in items:
        yield item


class FileDocuments(Documents):
    """One file per document, ``<directory>/<two characters of the id>/<document id>``, mode 0600:
    a clear header block of 4 KiB (the format's name, then JSON: the clear fields and the sealed
    metadata), then the sealed segments. Writes in progress are ``.<document id>.<random>.tmp``
    beside it."""

    def __init__(self, root: Path, keys: DocumentKeys, *, limit: int = DEFAULT_LIMIT) -> None:
        super().__init__(keys, limit=limit)
        self.root = root

    def path_of(self, document_id: str) -> Path:
        if not DOCUMENT_ID.match(document_id):  # never a path from anything else
            raise ValueError("a document id is doc- and 26 characters of a-z 2-7")
        return self.root / document_id[4:6] / document_id

    async def _exists(self, document_id: str) -> bool:
        return self.path_of(document_id).exists()

    def _spool_dir(self, document_id: str) -> Path:
        self.root.mkdir(mode=0o700, parents=True, exist_ok=True)
        return self.path_of(document_id).parent

    async def _publish(self, file: BinaryIO, spool: Path, header: _Header) -> None:
        target = self.path_of(header.document_id)

        def publish() -> None:
            os.fsync(file.fileno())
            try:
                os.link(spool, target)  # never replaces: a second write of the id fails here
            except FileExistsError:
                raise DocumentExists(header.document_id) from None
            directory = os.open(target.parent, os.O_RDONLY)
            try:
                os.fsync(directory)  # the new name survives a crash
            finally:
                os.close(directory)

        await asyncio.to_thread(publish)

    def _header(self, file: BinaryIO, document_id: str) -> _Header:
        header = _Header.from_block(file.read(HEADER_BYTES))
        if header.document_id != document_id:
            raise DocumentCorrupt(f"document file {document_id} holds another document")
        return header

    def _open_file(self, document_id: str) -> BinaryIO | None:
        if not DOCUMENT_ID.match(document_id):
            return None
        try:
            return open(self.path_of(document_id), "rb")
        except FileNotFoundError:
            return None

    async def info(self, kind: str, reference: str, document_id: str) -> StoredDocument | None:
        file = self._open_file(document_id)
        if file is None:
            return None
        with file:
            try:
                return self._opened(self._header(file, document_id), kind, reference)[0]
            except DocumentNotFound:
                return None

    async def read(self, kind: str, reference: str, document_id: str) -> AsyncIterator[bytes]:
        file = self._open_file(document_id)
        if file is None:
            raise DocumentNotFound(f"no document {document_id} in {kind} {reference}")
        with file:
            header = self._header(file, document_id)
            stored, seal = self._opened(header, kind, reference)
            lengths = header.lengths()
            if os.fstat(file.fileno()).st_size != HEADER_BYTES + sum(lengths):
                raise DocumentCorrupt(f"document {document_id} does not have the segments it was stored with")
            async for piece in self._plaintext(header, stored, seal, _each(file.read(n) for n in lengths)):
                yield piece

    async def remove(self, document_id: str) -> bool:
        try:
            self.path_of(document_id).unlink()
        except (FileNotFoundError, ValueError):
            return False
        return True

    async def stored(self, *, before: datetime) -> AsyncIterator[Listed]:
        if not self.root.is_dir():
            return
        for path in sorted(self.root.glob("*/doc-*")):
            if not DOCUMENT_ID.match(path.name):
                continue
            try:
                with open(path, "rb") as file:
                    header = self._header(file, path.name)
            except (FileNotFoundError, DocumentCorrupt):
                continue  # removed meanwhile, or not ours to judge: never swept on a guess
            if header.stored_at < before:
                yield Listed(header.document_id, header.kind, header.reference, header.stored_at)

    def _leftovers(self) -> Iterable[Path]:
        return self.root.glob("*/.doc-*.tmp") if self.root.is_dir() else []


class PostgresDocuments(Documents):
    """Documents in PostgreSQL, for APIs on several hosts: a row of clear fields and sealed metadata
    per document (``documents``), its sealed segments in rows of ``document_segments`` (bytea,
    stored without compression: ciphertext does not compress). An upload is sealed into a
    temporary file under ``spool`` first, then inserted in one transaction."""

    SCHEMA = """
        CREATE TABLE IF NOT EXISTS documents (
            document_id text PRIMARY KEY,
            kind text NOT NULL,
            reference text NOT NULL,
            size bigint NOT NULL,
            content_type text NOT NULL,
            key_id text NOT NULL,
            stored_at timestamptz NOT NULL,
            segment_bytes integer NOT NULL,
            salt bytea NOT NULL,
            nonce_prefix bytea NOT NULL,
            info bytea NOT NULL
        );
        CREATE INDEX IF NOT EXISTS documents_by_case ON documents (kind, reference);
        CREATE INDEX IF NOT EXISTS documents_by_stored_at ON documents (stored_at);
        CREATE TABLE IF NOT EXISTS document_segments (
            document_id text NOT NULL REFERENCES documents (document_id) ON DELETE CASCADE,
            segment integer NOT NULL,
            sealed bytea NOT NULL,
            PRIMARY KEY (document_id, segment)
        )"""
    # once, when the table is new: ciphertext does not compress, so TOAST need not try
    UNCOMPRESSED = "ALTER TABLE document_segments ALTER COLUMN sealed SET STORAGE EXTERNAL"
    COLUMNS = ("document_id, kind, reference, size, content_type, key_id, stored_at, segment_bytes, salt, "
               "nonce_prefix, info")
    BATCH = 8  # segments fetched at a time while reading

    def __init__(self, url: str, keys: DocumentKeys, *, limit: int = DEFAULT_LIMIT, spool: Path | None = None,
                 pool_size: int = DEFAULT_SIZE, wait: float = WAIT_SECONDS) -> None:
        """``pool_size``: the most connections this store holds at once
        (TREATYFLOW_DOCUMENTS_POOL_SIZE); ``wait``: how long a call waits for one before it is
        ``DocumentsUnavailable``."""
        super().__init__(keys, limit=limit)
        self.url = url
        self.spool = spool or Path(tempfile.gettempdir()) / "treatyflow-documents"
        self.pool = Pool(url, name="treatyflow-documents", size=pool_size, wait=wait)
        self._ready = False

    @contextlib.asynccontextmanager
    async def connection(self) -> AsyncIterator[Any]:
        try:
            async with self.pool.connection() as conn:
                if not self._ready:
                    async with conn.transaction():  # two first connections at once would both create the tables
                        await conn.execute("SELECT pg_advisory_xact_lock(hashtext('treatyflow.documents'))")
                        row = await (await conn.execute(
                            "SELECT to_regclass('document_segments') IS NOT NULL")).fetchone()
                        await conn.execute(self.SCHEMA)
                        if not row[0]:
                            await conn.execute(self.UNCOMPRESSED)
                    self._ready = True
                yield conn
        except Unreachable as exc:  # never the URL in the message: it may hold a password
            raise DocumentsUnavailable(f"documents database unreachable: {exc}") from None

    async def close(self) -> None:
        await self.pool.close()

    async def _exists(self, document_id: str) -> bool:
        async with self.connection() as conn:
            row = await (await conn.execute("SELECT 1 FROM documents WHERE document_id = %s",
                                            (document_id,))).fetchone()
        return row is not None

    def _spool_dir(self, document_id: str) -> Path:
        return self.spool

    def _spooled(self, file: BinaryIO, header: _Header) -> Iterable[bytes]:
        file.seek(HEADER_BYTES)
        for length in header.lengths():
            yield file.read(length)

    async def _publish(self, file: BinaryIO, spool: Path, header: _Header) -> None:
        import psycopg

        async with self.connection() as conn:
            async with conn.transaction():
                try:
                    await conn.execute(
                        f"INSERT INTO documents ({self.COLUMNS}) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
                        (header.document_id, header.kind, header.reference, header.size, header.content_type,
                         header.key_id, header.stored_at, header.segment_bytes, header.salt, header.prefix,
                         header.info))
                except psycopg.errors.UniqueViolation:
                    raise DocumentExists(header.document_id) from None
                async with conn.cursor() as cursor:
                    async with cursor.copy("COPY document_segments (document_id, segment, sealed) "
                                           "FROM STDIN (FORMAT BINARY)") as copy:
                        copy.set_types(["text", "int4", "bytea"])
                        for index, sealed in enumerate(self._spooled(file, header)):
                            await copy.write_row((header.document_id, index, sealed))

    @staticmethod
    def _header_of(row) -> _Header:
        (document_id, kind, reference, size, content_type, key_id, stored_at, segment_bytes, salt, prefix,
         info) = row
        return _Header(document_id=document_id, kind=kind, reference=reference, size=size,
                       content_type=content_type, key_id=key_id, stored_at=stored_at, segment_bytes=segment_bytes,
                       salt=bytes(salt), prefix=bytes(prefix), info=bytes(info))

    async def _row(self, conn, document_id: str) -> _Header | None:
        row = await (await conn.execute(f"SELECT {self.COLUMNS} FROM documents WHERE document_id = %s",
                                        (document_id,))).fetchone()
        return self._header_of(row) if row else None

    async def info(self, kind: str, reference: str, document_id: str) -> StoredDocument | None:
        if not DOCUMENT_ID.match(document_id):
            return None
        async with self.connection() as conn:
            header = await self._row(conn, document_id)
        if header is None:
            return None
        try:
            return self._opened(header, kind, reference)[0]
        except DocumentNotFound:
            return None

    async def read(self, kind: str, reference: str, document_id: str) -> AsyncIterator[bytes]:
        if not DOCUMENT_ID.match(document_id):
            raise DocumentNotFound(f"no document {document_id} in {kind} {reference}")
        async with self.connection() as conn:
            header = await self._row(conn, document_id)
        if header is None:
            raise DocumentNotFound(f"no document {document_id} in {kind} {reference}")
        stored, seal = self._opened(header, kind, reference)
        async for piece in self._plaintext(header, stored, seal, self._segments(header)):
            yield piece

    async def _segments(self, header: _Header) -> AsyncIterator[bytes]:
        """The sealed segments in order, a few at a time (never the whole content in memory), each
        batch on a connection taken from the pool for it alone: a slow reader (a download to a slow
        client) holds none of the pool's connections while it reads. A document is never rewritten,
        so the batches read one content."""
        count = len(header.lengths())
        for start in range(0, count, self.BATCH):
            async with self.connection() as conn:
                rows = await (await conn.execute(
                    "SELECT segment, sealed FROM document_segments WHERE document_id = %s AND segment >= %s "
                    "AND segment < %s ORDER BY segment", (header.document_id, start, start + self.BATCH))).fetchall()
            for expected, (segment, sealed) in enumerate(rows, start):
                if segment != expected:
                    raise DocumentCorrupt(f"document {header.document_id} does not have the segments it was "
                                          "stored with")
                yield bytes(sealed)
            if len(rows) < min(self.BATCH, count - start):
                raise DocumentCorrupt(f"document {header.document_id} does not have the segments it was stored with")
        async with self.connection() as conn:
            extra = await (await conn.execute(
                "SELECT 1 FROM document_segments WHERE document_id = %s AND segment >= %s",
                (header.document_id, count))).fetchone()
        if extra:
            raise DocumentCorrupt(f"document {header.document_id} does not have the segments it was stored with")

    async def remove(self, document_id: str) -> bool:
        async with self.connection() as conn:
            removed = await conn.execute("DELETE FROM documents WHERE document_id = %s", (document_id,))
        return removed.rowcount > 0

    async def stored(self, *, before: datetime) -> AsyncIterator[Listed]:
        async with self.connection() as conn:
            rows = await (await conn.execute(
                "SELECT document_id, kind, reference, stored_at FROM documents WHERE stored_at < %s "
                "ORDER BY stored_at", (before,))).fetchall()
        for row in rows:
            yield Listed(*row)

    def _leftovers(self) -> Iterable[Path]:
        return self.spool.glob(".doc-*.tmp") if self.spool.is_dir() else []


def open_documents(*, url: str | None, directory: Path, keys: DocumentKeys, limit: int = DEFAULT_LIMIT,
                   pool_size: int = DEFAULT_SIZE) -> Documents:
    """PostgreSQL at ``url`` when there is one (TREATYFLOW_DOCUMENTS_URL, by default the
    archive's), through a pool of at most ``pool_size`` connections (TREATYFLOW_DOCUMENTS_POOL_SIZE),
    staging uploads under ``directory/spool``; else files under ``directory``
    (``<data dir>/documents``). ``keys``: the payload codec's (``Settings.codec_keys``);
    ``limit``: TREATYFLOW_DOCUMENT_LIMIT_BYTES."""
    if url:
        return PostgresDocuments(url, keys, limit=limit, spool=directory / "spool", pool_size=pool_size)
    return FileDocuments(directory, keys, limit=limit)
