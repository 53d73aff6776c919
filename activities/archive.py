"""The archive of closed cases: the record the API reads once a workflow is gone. File-based by
default: one file per case under the archive directory, written atomically; writing the same
case again with the same content changes nothing. With a codec (every deployment: the clients'
payload codec), each record is encrypted at rest with the current key, like the case's payloads
in Temporal, so a copy of the archive directory holds ciphertext only."""

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

from treatyflow.codec import EncryptionCodec

from domain.case import ArchivedCase


class ArchiveReceipt(BaseModel):
    location: str
    sha256: str
    written: bool  # False when an identical record was already there


class FileArchive:
    def __init__(self, root: Path, codec: PayloadCodec | None = None) -> None:
        self.root = root
        self.codec = codec if isinstance(codec, EncryptionCodec) else None

    def path_of(self, kind: str, reference: str) -> Path:
        return self.root / kind / f"{reference}.json"

    def read(self, kind: str, reference: str) -> ArchivedCase | None:
        path = self.path_of(kind, reference)
        return ArchivedCase.model_validate_json(self.plaintext(path.read_bytes())) if path.exists() else None

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

    def write(self, case: ArchivedCase) -> ArchiveReceipt:
        body = json.dumps(case.model_dump(mode="json"), sort_keys=True, ensure_ascii=False).encode()
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

    @activity.defn(name="archive_case")
    async def archive_case(self, case: ArchivedCase) -> ArchiveReceipt:
        receipt = self.write(case)
        activity.logger.info("case archived", extra={"reference": case.reference, "kind": case.kind,
                                                     "written": receipt.written})
        return receipt
