"""The archive of closed cases: the record the API reads once a workflow is gone.

Two backends, chosen by configuration (``open_archive``): files under the archive directory (the
embedded default: one file per case, written atomically) or PostgreSQL (``TREATYFLOW_ARCHIVE_URL``,
for several hosts). Writing the same case again with the same content changes nothing. With a codec
(every deployment: the clients' payload codec) each record is encrypted at rest with the current
key, like the case's payloads in Temporal, so a copy of the archive holds ciphertext only."""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path

from pydantic import BaseModel
from temporalio import activity
from temporalio.api.common.v1 import Payload
from temporalio.converter import PayloadCodec
from temporalio.exceptions import ApplicationError

from domain.case import ArchivedCase
from treatyflow.codec import EncryptionCodec
from treatyflow.config import Settings


class ArchiveReceipt(BaseModel):
    location: str
    sha256: str
    written: bool  # False when an identical record was already there


class Archive:
    """What every backend offers: read a closed case, write it once, and the activity."""

    def __init__(self, codec: PayloadCodec | None) -> None:
        self.codec = codec if isinstance(codec, EncryptionCodec) else None

    async def read(self, kind: str, reference: str) -> ArchivedCase | None:
        raise NotImplementedError

    async def write(self, case: ArchivedCase) -> ArchiveReceipt:
        raise NotImplementedError

    @activity.defn(name="archive_case")
    async def archive_case(self, case: ArchivedCase) -> ArchiveReceipt:
        receipt = await self.write(case)
        activity.logger.info("case archived", extra={"reference": case.reference, "kind": case.kind,
                                                     "written": receipt.written})
        return receipt

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
    def __init__(self, root: Path, codec: PayloadCodec | None = None) -> None:
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
            with tempfile.NamedTemporaryFile(dir=path.parent, delete=False, suffix=".tmp") as tmp:
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

    def __init__(self, url: str, codec: PayloadCodec | None = None) -> None:
        super().__init__(codec)
        self.url = url
        self._ready = False

    async def connection(self):
        import psycopg

        try:
            conn = await psycopg.AsyncConnection.connect(self.url, autocommit=True, connect_timeout=10)
        except psycopg.OperationalError as exc:  # unreachable for now: Temporal retries
            raise ApplicationError(f"archive database unreachable: {type(exc).__name__}", type="archive_unavailable")
        if not self._ready:
            await conn.execute(self.SCHEMA)
            self._ready = True
        return conn

    async def read(self, kind: str, reference: str) -> ArchivedCase | None:
        async with await self.connection() as conn:
            row = await (await conn.execute(
                "SELECT record FROM archived_cases WHERE kind = %s AND reference = %s", (kind, reference))).fetchone()
        return ArchivedCase.model_validate_json(self.plaintext(bytes(row[0]))) if row else None

    async def write(self, case: ArchivedCase) -> ArchiveReceipt:
        body = self.canonical(case)
        digest = hashlib.sha256(body).hexdigest()
        location = f"archived_cases/{case.kind}/{case.reference}"
        async with await self.connection() as conn:
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


def open_archive(settings: Settings, codec: PayloadCodec | None) -> Archive:
    """PostgreSQL when TREATYFLOW_ARCHIVE_URL is set, else files under the archive directory."""
    if settings.archive_url:
        return PostgresArchive(settings.archive_url, codec)
    return FileArchive(settings.archive_dir, codec)
