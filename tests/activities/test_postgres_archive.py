"""The PostgreSQL archive against a real PostgreSQL server that this test run starts itself, from
the Debian package (installed here with apt-get when it is missing), on a free loopback port
(tests/support/postgres.py)."""

from __future__ import annotations

import uuid
from datetime import datetime, timezone

import psycopg
import pytest
from temporalio.exceptions import ApplicationError

from domain.case import ArchivedCase
from stores.archive import PostgresArchive, open_archive
from tests.conftest import DATA_CONVERTER
from tests.support import free_port
from tests.support.postgres import postgres_url  # noqa: F401 - the fixture
from treatyflow.cases import open_transfer, transfer_handle
from treatyflow.config import Settings
from treatyflow.samples import transfer_request
from worker import create_worker

CODEC = DATA_CONVERTER.payload_codec


def case(reference: str, stage: str = "refused") -> ArchivedCase:
    return ArchivedCase(kind="transfer", reference=reference, closed_at=datetime.now(timezone.utc),
                        view={"reference": reference, "stage": stage, "note": "Aigerim Archivova"},
                        request_sha256="0" * 64)


async def test_a_closed_case_is_written_once_encrypted_and_read_back(postgres_url):
    archive = PostgresArchive(postgres_url, CODEC)
    record = case(f"PG-{uuid.uuid4().hex[:8]}")
    first = await archive.write(record)
    again = await archive.write(record)
    assert first.written and not again.written and first.sha256 == again.sha256
    assert await archive.read("transfer", record.reference) == record
    assert await archive.read("transfer", "PG-NEVER") is None

    async with await psycopg.AsyncConnection.connect(postgres_url) as conn:
        stored = (await (await conn.execute("SELECT record FROM archived_cases WHERE reference = %s",
                                            (record.reference,))).fetchone())[0]
    assert b"Aigerim" not in bytes(stored) and b'"stage"' not in bytes(stored)  # ciphertext at rest

    changed = record.model_copy(update={"view": {**record.view, "stage": "withdrawn"}})
    assert (await archive.write(changed)).written
    assert (await archive.read("transfer", record.reference)).view["stage"] == "withdrawn"


async def test_an_unreachable_database_is_a_retryable_error_with_a_type():
    port = free_port()  # nothing listens there
    with pytest.raises(ApplicationError) as err:
        await PostgresArchive(f"postgresql://nobody@127.0.0.1:{port}/none", CODEC).read("transfer", "X")
    assert err.value.type == "archive_unavailable" and not err.value.non_retryable


def test_the_configuration_chooses_the_backend(postgres_url, tmp_path):
    assert isinstance(open_archive(url=postgres_url, directory=tmp_path, codec=CODEC), PostgresArchive)
    assert not isinstance(open_archive(url=None, directory=tmp_path, codec=CODEC), PostgresArchive)


@pytest.mark.asyncio(loop_scope="session")
async def test_a_worker_archives_into_postgresql(postgres_url, dev_client, tmp_path):
    settings = Settings(task_queue=f"pg-{uuid.uuid4().hex[:8]}", archive_url=postgres_url, archive_dir=tmp_path)
    request = transfer_request(person={"full_name": "Aigerim Archivova", "date_of_birth": "1980-01-01",
                                       "citizenships": ["KZ"]})  # not national: refused at intake
    async with create_worker(dev_client, settings):
        opening = await open_transfer(dev_client, request, "kz-gpo", settings.task_queue)
        await transfer_handle(dev_client, request.reference).result()
    archived = await PostgresArchive(postgres_url, CODEC).read("transfer", request.reference)
    assert archived is not None and archived.view["stage"] == "refused"
    assert archived.view["grounds"] == ["not_national"] and opening.view.stage == "refused"
    assert not list(tmp_path.iterdir())  # nothing went to the file archive
