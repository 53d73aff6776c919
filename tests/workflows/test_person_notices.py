"""The letters to the sentenced person (API.md, "Notices to the sentenced person"): a whole transfer
on the session's dev server with a real worker writes one letter, as a `person_notice` PDF of the
case file in the person's language, when eligibility is decided, when each state decides, when the
handover is arranged and when the case closes; each is stored once, whatever the worker does (a
write that stored its letter and then failed is retried, and finds it there)."""

from __future__ import annotations

import asyncio
import io
import uuid
from datetime import datetime, timezone
from pathlib import Path

import pytest
from pypdf import PdfReader
from temporalio import activity

from activities.letters import Letters, PersonNoticeOrder
from domain.documents import DocumentRecord
from domain.transfer import Decision, HandoverConfirmation
from stores.documents import open_documents
from tests.conftest import CODEC_KEYS
from treatyflow.cases import act, open_transfer, transfer_handle
from treatyflow.config import Settings
from treatyflow.samples import BASE, transfer_request
from worker import create_worker
from workflows.transfer import TransferWorkflow

pytestmark = pytest.mark.asyncio(loop_scope="session")

NAME_RU = "Алиев Рустам Каримович"


def text_of(content: bytes) -> str:
    return " ".join(page.extract_text() for page in PdfReader(io.BytesIO(content)).pages)


async def until(check, seconds: float = 20.0):
    for _ in range(int(seconds * 10)):
        if (found := await check()) is not None:
            return found
        await asyncio.sleep(0.1)
    raise AssertionError("not within the time")


async def test_a_whole_transfer_writes_each_letter_once_in_the_persons_language(dev_client, tmp_path):
    documents_dir = tmp_path / "documents"
    store = open_documents(url=None, directory=documents_dir, keys=CODEC_KEYS)
    written = Letters(store)
    failed_once: set[str] = set()

    @activity.defn(name="write_person_notice")
    async def stored_then_lost(order: PersonNoticeOrder) -> DocumentRecord:
        """The real activity; the first attempt of each letter loses its answer after the store took it."""
        record = await written.write_person_notice(order)
        if order.document_id not in failed_once:
            failed_once.add(order.document_id)
            raise RuntimeError("the worker lost its answer")
        return record

    settings = Settings(task_queue=f"letters-{uuid.uuid4().hex[:8]}", archive_dir=tmp_path / "archive",
                        documents_dir=documents_dir, codec_keys=CODEC_KEYS)
    async with create_worker(dev_client, settings, activity_overrides=[stored_then_lost]):
        request = transfer_request(person={**BASE["person"], "full_name": NAME_RU})
        await open_transfer(dev_client, request, "kz-gpo", settings.task_queue)
        handle = transfer_handle(dev_client, request.reference)
        for actor, state in (("kz-gpo", "KZ"), ("uz-gpo", "UZ")):
            await act(handle, TransferWorkflow.record_decision, actor, Decision(state=state, decision="consent"),
                      TransferWorkflow.view)

        async def arranged():
            view = await handle.query(TransferWorkflow.view)
            return view if view.handover is not None else None
        view = await until(arranged)
        await act(handle, TransferWorkflow.confirm_handover, "uz-penal",
                  HandoverConfirmation(completed_on=datetime.now(timezone.utc).date(), place=view.handover.place),
                  TransferWorkflow.view)
        closed = await asyncio.wait_for(handle.result(), 60)

    letters = [d for d in closed.documents if d.type == "person_notice"]
    # eligibility, KZ's decision, UZ's decision, the handover, the closing — each once
    assert len(letters) == 5, [d.filename for d in letters]
    assert sorted(d.filename.removeprefix(request.reference + "-") for d in letters) == [  # stored as they came
        "case-closed-transferred-ru.pdf", "decision-recorded-kz-ru.pdf", "decision-recorded-uz-ru.pdf",
        "eligibility-decided-ru.pdf", "handover-arranged-ru.pdf"]
    assert all(d.uploaded_by == "system" and d.language == "ru" and d.content_type == "application/pdf"
               for d in letters)
    assert len(failed_once) == 5  # every letter's first answer was lost, and was retried
    stored = sorted(p.name for p in Path(documents_dir).rglob("doc-*") if p.is_file())
    assert stored == sorted(d.document_id for d in letters)  # one stored content per letter, no more
    added = [e for e in closed.events if e.action == "document_added"]
    assert len(added) == 5 and all(e.actor == "system" for e in added)
    assert all(NAME_RU not in e.detail for e in closed.events)
    closing = next(d for d in letters if "case-closed" in d.filename)
    content = b"".join([chunk async for chunk in store.read("transfer", request.reference, closing.document_id)])
    text = text_of(content)
    assert NAME_RU in text and request.reference in text


async def test_a_letter_in_english_when_the_person_reads_english(dev_client, tmp_path):
    documents_dir = tmp_path / "documents"
    settings = Settings(task_queue=f"letters-{uuid.uuid4().hex[:8]}", archive_dir=tmp_path / "archive",
                        documents_dir=documents_dir, codec_keys=CODEC_KEYS)
    async with create_worker(dev_client, settings):
        request = transfer_request(person={**BASE["person"], "language": "en"}, judgment={**BASE["judgment"],
                                                                                           "final": False})
        await open_transfer(dev_client, request, "kz-gpo", settings.task_queue)
        closed = await asyncio.wait_for(transfer_handle(dev_client, request.reference).result(), 60)
    assert closed.outcome == "refused"
    letters = [d for d in closed.documents if d.type == "person_notice"]
    assert [d.filename.removeprefix(request.reference + "-") for d in letters] == [
        "case-closed-refused-en.pdf"]  # one letter, not two saying the same: the closing one names the grounds
    store = open_documents(url=None, directory=documents_dir, keys=CODEC_KEYS)
    text = text_of(b"".join([c async for c in store.read("transfer", request.reference, letters[0].document_id)]))
    assert BASE["person"]["full_name"] in text and "judgment_not_final" in text and "Dear" in text
