"""The case file: what is recorded of a document in its case (API.md, "The case file").

The content itself lives in the document store (``stores/documents.py``), encrypted, outside the
history; the case records only this: what the document is, who added it and when, and the
digest and size the store computed from its bytes."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, StringConstraints

DOCUMENT_TYPES: dict[str, tuple[str, ...]] = {
    "transfer": ("judgment", "sentence_statement", "declaration", "law_text", "medical_report", "translation",
                 "decision", "other"),
    "assistance": ("request_letter", "translation", "court_order", "evidence", "execution_report", "other"),
}
SYSTEM_TYPES: dict[str, tuple[str, ...]] = {"transfer": ("person_notice",), "assistance": ()}
"""Types only the system gives (the letters to the sentenced person): never accepted in an upload."""

TITLE_LIMIT = 200
DocumentId = Annotated[str, StringConstraints(pattern=r"^doc-[a-z2-7]{26}$")]
Title = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=TITLE_LIMIT)]
Language = Annotated[str, StringConstraints(pattern=r"^[a-z]{2}$")]  # ISO 639-1
ContentType = Literal[
    "application/pdf", "image/png", "image/jpeg", "image/tiff", "text/plain",
    "application/vnd.oasis.opendocument.text",
    "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
]


class DocumentRecord(BaseModel):
    """A document of the case as API.md shows it. ``filename`` and ``title`` are as the uploader
    gave them (they may name the person: they travel only in encrypted payloads, never in a log,
    an event's detail or a search attribute); ``uploaded_by`` is the authority id (``system`` for
    a letter the system wrote); the person acting for it in the web application is named by the
    ``document_added`` event of the audit trail."""

    document_id: DocumentId
    type: str
    title: Title
    language: Language | None = None
    measure_id: str | None = None
    filename: str
    content_type: ContentType
    size: int
    sha256: str
    uploaded_by: str
    uploaded_at: datetime


def type_problem(kind: str, value: str) -> str | None:
    """What is wrong with ``value`` as the type of a document uploaded to a case of ``kind``."""
    allowed = DOCUMENT_TYPES[kind]
    if value in allowed:
        return None
    if value in SYSTEM_TYPES[kind]:
        return f"type {value} is written by the system only; give one of {', '.join(allowed)}"
    return f"type must be one of {', '.join(allowed)}"
