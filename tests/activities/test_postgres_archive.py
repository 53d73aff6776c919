"""The PostgreSQL archive against a real PostgreSQL server that this test run starts itself, from
the Debian package (installed here with apt-get when it is missing), on a free loopback port
(tests/support/postgres.py)."""

from __future__ import annotations

import asyncio
import ipaddress
import os
import shutil
import tempfile
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path

import psycopg
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from temporalio.exceptions import ApplicationError

from domain.case import ArchivedCase
from stores.archive import PostgresArchive, open_archive
from tests.conftest import DATA_CONVERTER
from tests.support import free_port, until
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
    await archive.close()


async def test_an_unreachable_database_is_a_retryable_error_with_a_type():
    port = free_port()  # nothing listens there
    archive = PostgresArchive(f"postgresql://nobody@127.0.0.1:{port}/none", CODEC, wait=1)
    with pytest.raises(ApplicationError) as err:
        await archive.read("transfer", "X")
    await archive.close()
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
    reader = PostgresArchive(postgres_url, CODEC)
    archived = await reader.read("transfer", request.reference)
    await reader.close()
    assert archived is not None and archived.view["stage"] == "refused"
    assert archived.view["grounds"] == ["not_national"] and opening.view.stage == "refused"
    assert not list(tmp_path.iterdir())  # nothing went to the file archive


async def test_concurrent_writes_share_the_pool_of_connections(postgres_url):
    """A worker runs up to 100 activities at once; the archive holds at most its pool's size of
    connections to the server however many write at once (TREATYFLOW_ARCHIVE_POOL_SIZE), counted
    by the server itself (pg_stat_activity), and none once it is closed."""
    database = f"pool_{uuid.uuid4().hex[:12]}"
    async with await psycopg.AsyncConnection.connect(postgres_url, autocommit=True) as conn:
        await conn.execute(f"CREATE DATABASE {database}")
    url = postgres_url.rsplit("/", 1)[0] + f"/{database}"
    archive = open_archive(url=url, directory=Path("unused"), codec=CODEC, pool_size=3)
    counting = "SELECT pid FROM pg_stat_activity WHERE datname = %s AND application_name = 'treatyflow-archive'"
    seen: set[int] = set()
    peak = 0
    done = asyncio.Event()

    async def watch() -> None:
        nonlocal peak
        async with await psycopg.AsyncConnection.connect(postgres_url, autocommit=True) as conn:
            while not done.is_set():
                pids = [row[0] for row in await (await conn.execute(counting, (database,))).fetchall()]
                seen.update(pids)
                peak = max(peak, len(pids))
                await asyncio.sleep(0.005)

    watcher = asyncio.create_task(watch())
    try:
        records = [case(f"POOL-{i:03d}-{uuid.uuid4().hex[:6]}") for i in range(60)]
        receipts = await asyncio.gather(*(archive.write(record) for record in records))
        assert all(r.written for r in receipts)
        assert [await archive.read("transfer", r.reference) for r in records[:3]] == records[:3]
    finally:
        done.set()
        await watcher
    async with await psycopg.AsyncConnection.connect(postgres_url, autocommit=True) as conn:
        held = [row[0] for row in await (await conn.execute(counting, (database,))).fetchall()]
        seen.update(held)
        assert 1 <= peak <= 3 and 1 <= len(held) <= 3 and len(seen) <= 3, (peak, held, seen)
        assert archive.pool.stats().get("requests_queued", 0) > 0  # more writes at once than connections
        await archive.close()

        async def none_left() -> bool:  # a backend ends a moment after its client closed the connection
            return await (await conn.execute(counting, (database,))).fetchall() == []
        await until(none_left, "the pool's connections to end", 10, every=0.05)


def certificates(directory: Path) -> tuple[Path, Path, Path, Path]:
    """A CA, a server certificate it signed for 127.0.0.1 and localhost (with its key), and another
    CA: the server's certificate, key and CA, and the other CA's certificate."""
    now = datetime.now(timezone.utc)

    def certificate(subject: str, key, issuer: str, signer, *, ca: bool) -> x509.Certificate:
        builder = (x509.CertificateBuilder().subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
                   .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, issuer)]))
                   .public_key(key.public_key()).serial_number(x509.random_serial_number())
                   .not_valid_before(now - timedelta(minutes=5)).not_valid_after(now + timedelta(days=1))
                   .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
        if not ca:
            builder = builder.add_extension(x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
        return builder.sign(signer, hashes.SHA256())

    pem = serialization.Encoding.PEM
    ca_key, server_key, other_key = (ec.generate_private_key(ec.SECP256R1()) for _ in range(3))
    paths = [directory / name for name in ("server.crt", "server.key", "ca.crt", "other-ca.crt")]
    paths[0].write_bytes(certificate("127.0.0.1", server_key, "test CA", ca_key, ca=False).public_bytes(pem))
    paths[1].write_bytes(server_key.private_bytes(pem, serialization.PrivateFormat.PKCS8,
                                                  serialization.NoEncryption()))
    paths[2].write_bytes(certificate("test CA", ca_key, "test CA", ca_key, ca=True).public_bytes(pem))
    paths[3].write_bytes(certificate("other CA", other_key, "other CA", other_key, ca=True).public_bytes(pem))
    return paths[0], paths[1], paths[2], paths[3]


async def test_a_url_with_sslmode_verify_full_gets_the_servers_certificate_checked(postgres_url):
    """docs/operations.md: the archive URL is handed to psycopg as it is, so
    ``sslmode=verify-full&sslrootcert=...`` holds through the pool: TLS with the server's
    certificate checked against the CA, and a server whose certificate another CA signed is refused."""
    directory = Path(tempfile.mkdtemp(prefix="treatyflow-tls-"))  # beside the server's own: it reads from here
    server_cert, server_key, ca, other_ca = certificates(directory)
    os.chmod(directory, 0o755)
    os.chmod(server_key, 0o600)
    if os.geteuid() == 0:  # the server runs as postgres and reads its certificate and key itself
        for path in (server_cert, server_key):
            shutil.chown(path, "postgres")
    settings = {"ssl_cert_file": str(server_cert), "ssl_key_file": str(server_key), "ssl": "on"}
    async with await psycopg.AsyncConnection.connect(postgres_url, autocommit=True) as conn:
        for name, value in settings.items():
            await conn.execute(f"ALTER SYSTEM SET {name} = '{value}'")
        await conn.execute("SELECT pg_reload_conf()")

    async def ssl_on() -> bool:  # the server reloads its configuration when it gets to it
        async with await psycopg.AsyncConnection.connect(postgres_url, autocommit=True) as conn:
            return (await (await conn.execute("SHOW ssl")).fetchone()) == ("on",)
    await until(ssl_on, "the server to take TLS connections", 10, every=0.1)
    checked = PostgresArchive(f"{postgres_url}?sslmode=verify-full&sslrootcert={ca}", CODEC, wait=5)
    other = PostgresArchive(f"{postgres_url}?sslmode=verify-full&sslrootcert={other_ca}", CODEC, wait=1)
    try:
        record = case(f"TLS-{uuid.uuid4().hex[:8]}")
        assert (await checked.write(record)).written and await checked.read("transfer", record.reference) == record
        async with checked.pool.connection() as conn:
            row = await (await conn.execute("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()")).fetchone()
            assert row == (True,) and conn.info.get_parameters()["sslmode"] == "verify-full"
        with pytest.raises(ApplicationError) as refused:
            await other.read("transfer", record.reference)
        assert refused.value.type == "archive_unavailable"
    finally:
        await checked.close()
        await other.close()
        async with await psycopg.AsyncConnection.connect(postgres_url, autocommit=True, sslmode="disable") as conn:
            for name in settings:
                await conn.execute(f"ALTER SYSTEM RESET {name}")
            await conn.execute("SELECT pg_reload_conf()")
        shutil.rmtree(directory, ignore_errors=True)
