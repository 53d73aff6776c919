"""The archive of closed cases: the record the API reads once a workflow is gone, written by the
``archive_case`` activity (activities/archive.py).

Two backends, chosen by ``open_archive`` from the values it is given: files under a directory (the
embedded default: one file per case, written atomically) or PostgreSQL (a URL, for several hosts).
Writing the same case again with the same content changes nothing. With a codec that seals records
(every deployment: the clients' payload codec, treatyflow's EncryptionCodec) each record is
encrypted at rest with the current key, like the case's payloads in Temporal, so a copy of the
archive holds ciphertext only. Failures are ApplicationErrors with a type: retryable when the
database is unreachable (``archive_unavailable``), not when the configuration is wrong
(``archive_misconfigured``)."""

from __future__ import annotations

import asyncio
import contextlib
import glob
import hashlib
import json
import os
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from pydantic import BaseModel
from temporalio.api.common.v1 import Payload
from temporalio.converter import PayloadCodec
from temporalio.exceptions import ApplicationError

from domain.case import ArchivedCase
from stores.pooled import DEFAULT_SIZE, WAIT_SECONDS, Pool, Unreachable


@runtime_checkable
class RecordCodec(Protocol):
    """What sealing a record takes: one payload encrypted, one decrypted, synchronously (the
    payload codec of treatyflow's clients offers both)."""

    def encrypt(self, payload: Payload) -> Payload: ...

    def decrypt(self, payload: Payload) -> Payload: ...


class ArchiveReceipt(BaseModel):
    location: str
    sha256: str
    written: bool  # False when an identical record was already there


class Archive:
    """What every backend offers: read a closed case, and write it once."""

    def __init__(self, codec: PayloadCodec | RecordCodec | None) -> None:
        """``codec``: the clients' payload codec; records are sealed when it can seal them
        (``RecordCodec``), else (none, or a codec without encrypt/decrypt) written in clear."""
        self.codec = codec if isinstance(codec, RecordCodec) else None

    async def read(self, kind: str, reference: str) -> ArchivedCase | None:
        raise NotImplementedError

    async def write(self, case: ArchivedCase) -> ArchiveReceipt:
        raise NotImplementedError

    async def close(self) -> None:
        """Let go of what the store holds (a database's connections); files hold nothing."""

    @staticmethod
    def canonical(case: ArchivedCase) -> bytes:
        return json.dumps(case.model_dump(mode="json"), sort_keys=True, ensure_ascii=False).encode()

    def sealed(self, body: bytes) -> bytes:
        if self.codec is None:
            return body
        return self.codec.encrypt(Payload(data=body)).SerializeToString()

    def plaintext(self, stored: bytes) -> bytes:
        if stored.startswith(b"{"):  # written without a codec
            return stored
        if self.codec is None:
            raise ApplicationError("the archive is encrypted and no codec key is configured",
                                   type="archive_misconfigured", non_retryable=True)
        return self.codec.decrypt(Payload.FromString(stored)).data


class FileArchive(Archive):
    def __init__(self, root: Path, codec: PayloadCodec | RecordCodec | None = None) -> None:
        super().__init__(codec)
        self.root = root

    def path_of(self, kind: str, reference: str) -> Path:
        return self.root / kind / f"{reference}.json"

    async def read(self, kind: str, reference: str) -> ArchivedCase | None:
        path = self.path_of(kind, reference)
        return ArchivedCase.model_validate_json(self.plaintext(path.read_bytes())) if path.exists() else None

    async def write(self, case: ArchivedCase) -> ArchiveReceipt:
        body = self.canonical(case)
        digest = hashlib.sha256(body).hexdigest()
        path = self.path_of(case.kind, case.reference)
        if path.exists() and hashlib.sha256(self.plaintext(path.read_bytes())).hexdigest() == digest:
            return ArchiveReceipt(location=str(path), sha256=digest, written=False)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            # a write of this case killed before its rename (the worker SIGKILLed) left its temporary
            # file: this is its retry (one attempt of a case's archiving runs at a time)
            for stale in path.parent.glob(f"{glob.escape(path.stem)}.*.tmp"):
                stale.unlink(missing_ok=True)
            with tempfile.NamedTemporaryFile(dir=path.parent, delete=False, prefix=f"{path.stem}.",
                                             suffix=".tmp") as tmp:
                tmp.write(self.sealed(body))
                tmp.flush()
                os.fsync(tmp.fileno())
            os.replace(tmp.name, path)
        except NotADirectoryError as exc:  # a file where the archive directory should be: retrying won't help
            raise ApplicationError(f"archive directory unusable: {exc.strerror}", type="archive_misconfigured",
                                   non_retryable=True) from None
        return ArchiveReceipt(location=str(path), sha256=digest, written=True)


class PostgresArchive(Archive):
    """Closed cases in PostgreSQL, for workers and APIs on several hosts. One row per case;
    the record is stored sealed (encrypted with the codec) as bytea."""

    SCHEMA = """
        CREATE TABLE IF NOT EXISTS archived_cases (
            kind text NOT NULL,
            reference text NOT NULL,
            closed_at timestamptz NOT NULL,
            record bytea NOT NULL,
            archived_at timestamptz NOT NULL DEFAULT now(),
            PRIMARY KEY (kind, reference)
        )"""

    def __init__(self, url: str, codec: PayloadCodec | RecordCodec | None = None, *, pool_size: int = DEFAULT_SIZE,
                 wait: float = WAIT_SECONDS) -> None:
        """``pool_size``: the most connections this store holds at once (TREATYFLOW_ARCHIVE_POOL_SIZE);
        ``wait``: how long a write waits for one before it fails as ``archive_unavailable``."""
        super().__init__(codec)
        self.url = url
        self.pool = Pool(url, name="treatyflow-archive", size=pool_size, wait=wait)
        self._ready = False
        self._schema_lock = asyncio.Lock()

    @contextlib.asynccontextmanager
    async def connection(self) -> AsyncIterator[Any]:
        try:
            async with self.pool.connection() as conn:
                if not self._ready:
                    async with self._schema_lock, conn.transaction():  # first uses at once (and other
                        # processes') would each create the table: CREATE ... IF NOT EXISTS is not atomic
                        await conn.execute("SELECT pg_advisory_xact_lock(hashtext('treatyflow.archive'))")
                        await conn.execute(self.SCHEMA)
                    self._ready = True
                yield conn
        except Unreachable as exc:  # unreachable for now: Temporal retries (never the URL: it may hold a password)
            raise ApplicationError(f"archive database unreachable: {exc}", type="archive_unavailable") from None

    async def close(self) -> None:
        await self.pool.close()

    async def read(self, kind: str, reference: str) -> ArchivedCase | None:
        async with self.connection() as conn:
            row = await (await conn.execute(
                "SELECT record FROM archived_cases WHERE kind = %s AND reference = %s", (kind, reference))).fetchone()
        return ArchivedCase.model_validate_json(self.plaintext(bytes(row[0]))) if row else None

    async def write(self, case: ArchivedCase) -> ArchiveReceipt:
        body = self.canonical(case)
        digest = hashlib.sha256(body).hexdigest()
        location = f"archived_cases/{case.kind}/{case.reference}"
        async with self.connection() as conn:
            async with conn.transaction():
                row = await (await conn.execute(
                    "SELECT record FROM archived_cases WHERE kind = %s AND reference = %s FOR UPDATE",
                    (case.kind, case.reference))).fetchone()
                if row and hashlib.sha256(self.plaintext(bytes(row[0]))).hexdigest() == digest:
                    return ArchiveReceipt(location=location, sha256=digest, written=False)
                await conn.execute(
                    "INSERT INTO archived_cases (kind, reference, closed_at, record) VALUES (%s, %s, %s, %s) "
                    "ON CONFLICT (kind, reference) DO UPDATE SET closed_at = EXCLUDED.closed_at, "
                    "record = EXCLUDED.record, archived_at = now()",
                    (case.kind, case.reference, case.closed_at, self.sealed(body)))
        return ArchiveReceipt(location=location, sha256=digest, written=True)


def open_archive(*, url: str | None, directory: Path, codec: PayloadCodec | RecordCodec | None,
                 pool_size: int = DEFAULT_SIZE) -> Archive:
    """PostgreSQL at ``url`` when there is one (TREATYFLOW_ARCHIVE_URL), through a pool of at most
    ``pool_size`` connections (TREATYFLOW_ARCHIVE_POOL_SIZE), else files under ``directory``
    (TREATYFLOW_ARCHIVE_DIR)."""
    if url:
        return PostgresArchive(url, codec, pool_size=pool_size)
    return FileArchive(directory, codec)
