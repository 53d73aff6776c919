"""`treatyflow backup DIR` and `treatyflow restore DIR` (treatyflow/backup.py).

The drill (``test_the_drill``) does what docs/operations.md asks of an operator testing a
restore: the product started as `make run` starts it, cases of both kinds closed (a transfer
transferred with a document uploaded, one refused, one withdrawn, a request for assistance
completed) and left open mid-way (consents, the declaration, measures), a backup taken while it
runs, the machine "lost" (every process SIGKILLed), the backup restored into a fresh data
directory and the product started there on other ports; then every closed case reads back
identical through the API (view and trail, documents and their bytes, the archive record that an
identical re-opening answers from, the signed export) and every open case is driven to its end.

The backup is taken once no activity is running (checked on the engine): the engine's snapshot is
then a state the restored product goes on from at once, where an activity caught mid-flight
would wait out its 30 s start-to-close timeout before it is retried. The engine writes its own
bookkeeping all the time anyway; that a copy taken under a busy writer holds every commit made
before it, the WAL's included, and whole transactions only, is ``test_an_online_copy_...``.

The other tests work on a data directory made here, without a product: seconds in all."""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import shutil
import signal
import sqlite3
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import httpx
import pytest
from temporalio.api.common.v1 import Payload

from stores.signing import SigningKeys
from tests.shell.test_up import REPO, free_ports, running_up, up_env
from treatyflow import backup as backups
from treatyflow.codec import CodecKeys, EncryptionCodec
from treatyflow.config import Settings
from treatyflow.devserver import SQLITE_PRAGMAS, dev_server_command
from treatyflow.samples import assistance_body, key, transfer_body

CLI = [sys.executable, "-m", "treatyflow.cli"]


def cli(*args: str, env: dict[str, str], stdin: str | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([*CLI, *args], cwd=REPO, env=env, input=stdin, capture_output=True, text=True,
                          timeout=120)


def owner_only(root: Path) -> list[str]:
    """Everything under ``root`` (and itself) that is not its owner's only: 0700 dirs, 0600 files."""
    wrong = []
    for path in [root, *root.rglob("*")]:
        mode = stat.S_IMODE(path.lstat().st_mode)
        if mode != (0o700 if path.is_dir() else 0o600):
            wrong.append(f"{path.relative_to(root.parent)} {oct(mode)}")
    return wrong


def files_of(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in backups.walk_files(root)}


# ---- a data directory without a product ----------------------------------------------------------

engine_rows: dict[Path, sqlite3.Connection] = {}  # each made data directory's engine, open as the server keeps it


def make_data_dir(root: Path) -> Path:
    """A data directory as `make run` leaves it: the engine's SQLite file in WAL mode with rows
    still in its WAL, sealed archive records, documents, a users file and the dev keys, with the
    temporary and lock files of writes in progress beside them."""
    data = root / "data"
    data.mkdir(mode=0o700)
    keys = CodecKeys.create(data / "codec-keys.json")
    SigningKeys.generate(["KZ", "UZ"]).write(data / "signing-keys.json")
    codec = EncryptionCodec(keys)
    for kind, reference in (("transfer", "KZ-1"), ("transfer", "UZ-2"), ("assistance", "FR-3")):
        record = data / "archive" / kind / f"{reference}.json"
        record.parent.mkdir(parents=True, exist_ok=True)
        record.write_bytes(codec.encrypt(Payload(data=json.dumps({"reference": reference}).encode()))
                           .SerializeToString())
    (data / "archive" / "transfer" / "tmpk2j3.tmp").write_bytes(b"half a record")  # a write in progress
    for name in ("doc-ab" + "a" * 24, "doc-ab" + "b" * 24, "doc-cd" + "c" * 24):
        document = data / "documents" / name[4:6] / name
        document.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        document.write_bytes(os.urandom(70_000))
    (data / "documents" / "ab" / ".doc-abzz.x1.tmp").write_bytes(b"an upload in progress")
    (data / "users.json").write_text('{"users": []}')
    (data / "users.json").chmod(0o600)
    (data / "users.json.lock").touch()
    (data / "signing-keys.json.lock").touch()
    (data / "temporal-server.log").write_text("a log\n")
    engine = sqlite3.connect(data / "temporal.sqlite")
    engine.execute("PRAGMA journal_mode=wal")
    engine.execute("PRAGMA wal_autocheckpoint=0")  # every row stays in the WAL, as between checkpoints
    engine.execute("CREATE TABLE executions (id TEXT PRIMARY KEY, state BLOB)")
    engine.executemany("INSERT INTO executions VALUES (?, ?)", [(f"transfer:KZ-{i}", os.urandom(300))
                                                                for i in range(500)])
    engine.commit()
    engine_rows[data] = engine  # kept open (as the server keeps it): the WAL is not checkpointed away
    return data



@pytest.fixture
def data_dir(tmp_path: Path):
    data = make_data_dir(tmp_path)
    try:
        yield data
    finally:
        engine_rows.pop(data).close()


def settings_for(data: Path) -> Settings:
    return Settings.from_env({"TREATYFLOW_DATA_DIR": str(data)})


def quiet(step: Callable[..., Any], *args: Any, **kwargs: Any) -> tuple[Any, str, str]:
    import io

    out, err = io.StringIO(), io.StringIO()
    return step(*args, **kwargs, out=out, err=err), out.getvalue(), err.getvalue()


# ---- the engine's copy --------------------------------------------------------------------------

def test_the_file_backed_up_is_the_dev_servers_database_in_wal_mode(tmp_path: Path) -> None:
    command = dev_server_command(settings_for(tmp_path / "data"))
    assert command[command.index("--db-filename") + 1] == str(tmp_path / "data" / backups.ENGINE)
    assert "journal_mode=wal" in SQLITE_PRAGMAS  # so the latest commits are in temporal.sqlite-wal


WRITER = """
import sqlite3, sys
db = sqlite3.connect(sys.argv[1], isolation_level=None)
db.execute("PRAGMA journal_mode=wal"); db.execute("PRAGMA wal_autocheckpoint=0")
db.execute("CREATE TABLE ledger (id INTEGER PRIMARY KEY, batch INTEGER, amount INTEGER, pad BLOB)")
batch = 0
while True:
    batch += 1
    db.execute("BEGIN IMMEDIATE")
    db.execute("INSERT INTO ledger (batch, amount, pad) VALUES (?, ?, randomblob(2000))", (batch, batch))
    db.execute("INSERT INTO ledger (batch, amount, pad) VALUES (?, ?, randomblob(2000))", (batch, -batch))
    db.execute("COMMIT")
    print(batch, flush=True)
"""


def test_an_online_copy_holds_every_commit_of_the_wal_and_whole_transactions_only(tmp_path: Path) -> None:
    """A writer in another process commits pairs of rows that sum to zero, as fast as it can, all
    of it in the WAL (no checkpoint): each copy taken meanwhile passes its integrity check, holds
    every batch committed before it began, and no half of a batch; the main file alone holds none."""
    database = tmp_path / "temporal.sqlite"
    writer = subprocess.Popen([sys.executable, "-c", WRITER, str(database)], stdout=subprocess.PIPE, text=True)
    committed = [0]

    def follow() -> None:
        assert writer.stdout is not None
        for line in writer.stdout:
            committed[0] = int(line)

    threading.Thread(target=follow, daemon=True).start()
    try:
        deadline = time.monotonic() + 30
        while committed[0] < 300:
            assert writer.poll() is None and time.monotonic() < deadline, "the writer did not get going"
            time.sleep(0.01)
        for attempt in range(3):
            before = committed[0]
            copy = tmp_path / f"copy-{attempt}.sqlite"
            info = backups.copy_engine(database, copy)
            assert info["journal_mode"] == "wal" and info["integrity"] == "ok"
            assert not copy.with_name(copy.name + "-wal").exists()  # the copy stands alone
            with sqlite3.connect(copy) as db:
                rows, total, batches = db.execute("SELECT count(*), sum(amount), max(batch) FROM ledger").fetchone()
            assert total == 0 and rows == 2 * batches, "a transaction copied in part"
            assert batches >= before, f"batch {before} was committed before the copy began; the copy ends at {batches}"
            assert stat.S_IMODE(copy.stat().st_mode) == 0o600
        assert committed[0] > before, "the writer was not writing while the copies were taken"
        main_file_only = tmp_path / "plain-copy.sqlite"
        shutil.copyfile(database, main_file_only)  # what copying the file would have given
        with sqlite3.connect(main_file_only) as db:
            assert db.execute("SELECT count(*) FROM sqlite_master WHERE name = 'ledger'").fetchone()[0] == 0
    finally:
        writer.kill()
        writer.wait()


# ---- backup and restore of a data directory ------------------------------------------------------

def test_backup_and_restore_give_back_every_file_where_up_reads_it(tmp_path: Path, data_dir: Path) -> None:
    target = tmp_path / "backup"
    manifest, out, err = quiet(backups.backup, settings_for(data_dir), target, keys_dir=None, env={})
    assert "WARNING" in err and str(target / "keys") in err and "apart" in err
    listed = {f["path"] for f in manifest["files"]}
    assert listed == {"temporal.sqlite", "users.json", "archive/transfer/KZ-1.json", "archive/transfer/UZ-2.json",
                      "archive/assistance/FR-3.json", *(f"documents/{p.parent.name}/{p.name}"
                                                        for p in (data_dir / "documents").glob("??/doc-*"))}
    assert {f["path"] for f in manifest["keys"]["files"]} == {"codec-keys.json", "signing-keys.json"}
    assert manifest["engine"] == {"journal_mode": "wal", "pages": manifest["engine"]["pages"], "integrity": "ok"}
    assert manifest["treatyflow_version"] == backups.treatyflow_version() and manifest["created_at"].endswith("Z")
    for entry in manifest["files"]:
        copied = (target / entry["path"]).read_bytes()
        assert (len(copied), hashlib.sha256(copied).hexdigest()) == (entry["size"], entry["sha256"])
    assert not list(target.rglob("*.tmp")) and not list(target.rglob("*.lock"))
    assert not (target / "codec-keys.json").exists() and (target / "keys" / "codec-keys.json").exists()
    assert json.loads((target / "keys" / "manifest.json").read_text())["backup_id"] == manifest["backup_id"]
    assert not owner_only(target)

    restored = tmp_path / "restored"
    _, out, err = quiet(backups.restore, settings_for(restored), target, keys_dir=None, env={})
    assert f"verified    {len(manifest['files']) + len(manifest['keys']['files'])} files" in out, out
    before, after = files_of(data_dir), files_of(restored)
    left_out = {"temporal.sqlite", "temporal.sqlite-wal", "temporal.sqlite-shm", "temporal-server.log",
                "users.json.lock", "signing-keys.json.lock", "archive/transfer/tmpk2j3.tmp",
                "documents/ab/.doc-abzz.x1.tmp"}
    assert {k: v for k, v in before.items() if k not in left_out} == {k: v for k, v in after.items()
                                                                      if k not in ("temporal.sqlite", "up.lock")}
    with sqlite3.connect(restored / "temporal.sqlite") as db:
        assert db.execute("SELECT count(*) FROM executions").fetchone()[0] == 500  # every row of the WAL
    assert not owner_only(restored / "archive") and not owner_only(restored / "documents")
    assert stat.S_IMODE(restored.stat().st_mode) == 0o700
    assert not [p for p in restored.iterdir() if p.name.startswith(".")]  # nothing staged is left


def test_the_keys_can_go_to_a_directory_of_their_own(tmp_path: Path, data_dir: Path) -> None:
    target, keys = tmp_path / "backup", tmp_path / "elsewhere" / "keys"
    manifest, _, err = quiet(backups.backup, settings_for(data_dir), target, keys_dir=keys, env={})
    assert not (target / "keys").exists() and sorted(p.name for p in keys.iterdir()) == [
        "codec-keys.json", "manifest.json", "signing-keys.json"]
    assert manifest["keys"]["directory"] is None and str(keys) in err and not owner_only(keys)
    refused, _, err = quiet(backups.run_restore, settings_for(tmp_path / "r1"), target, env={})
    assert refused == 2 and "--keys" in err and not (tmp_path / "r1").exists()
    done, _, _ = quiet(backups.run_restore, settings_for(tmp_path / "r2"), target, keys_dir=keys, env={})
    assert done == 0 and (tmp_path / "r2" / "codec-keys.json").read_bytes() == (keys / "codec-keys.json").read_bytes()


def test_backup_refuses_a_directory_that_is_not_empty_and_writes_nothing(tmp_path: Path, data_dir: Path) -> None:
    target = tmp_path / "backup"
    target.mkdir()
    (target / "something").write_text("mine")
    done = cli("backup", str(target), env=up_env(data_dir, [7233, 8233, 8000]))
    assert done.returncode == 2, done.stderr
    assert done.stderr.count("\n") == 1 and "not empty" in done.stderr and str(target) in done.stderr
    assert [p.name for p in target.iterdir()] == ["something"]
    inside = cli("backup", str(data_dir / "archive" / "b"), env=up_env(data_dir, [7233, 8233, 8000]))
    assert inside.returncode == 2 and "inside" in inside.stderr and not (data_dir / "archive" / "b").exists()


def test_a_backup_that_fails_leaves_nothing_behind(tmp_path: Path, data_dir: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    target, keys = tmp_path / "backup", tmp_path / "keys"
    target.mkdir()
    keys.mkdir()
    real = backups._copy_file

    def disk_full(source: Path, copy: Path, name: str) -> backups.Entry:
        if name == "signing-keys.json":
            raise OSError(28, "No space left on device", str(copy))
        return real(source, copy, name)

    monkeypatch.setattr(backups, "_copy_file", disk_full)
    code, _, err = quiet(backups.run_backup, settings_for(data_dir), target, keys_dir=keys, env={})
    assert code == 1 and "No space left on device" in err, err
    assert not list(target.iterdir()) and not list(keys.iterdir())  # there, empty, as they were


def test_the_commands_say_what_they_do() -> None:
    for command, words in (("backup", ("DIR", "--keys", "new or empty", "apart")),
                           ("restore", ("DIR", "--keys", "empty", "manifest"))):
        done = cli(command, "--help", env=dict(os.environ))
        assert done.returncode == 0 and all(w in done.stdout for w in words), done.stdout
    listed = cli("--help", env=dict(os.environ)).stdout
    assert "backup" in listed and "restore" in listed


def damage(target: Path) -> str:
    record = target / "archive" / "transfer" / "KZ-1.json"
    data = bytearray(record.read_bytes())
    data[10] ^= 1
    record.write_bytes(bytes(data))
    return "differs from the manifest"


def lose_a_document(target: Path) -> str:
    next((target / "documents").glob("??/doc-*")).unlink()
    return "missing"


def other_keys(target: Path) -> str:
    manifest = json.loads((target / "keys" / "manifest.json").read_text())
    (target / "keys" / "manifest.json").write_text(json.dumps({**manifest, "backup_id": "another"}))
    return "another backup"


def escaping_path(target: Path) -> str:
    manifest = json.loads((target / "manifest.json").read_text())
    manifest["files"].append({"path": "archive/../../evil", "size": 1, "sha256": "0" * 64})
    (target / "manifest.json").write_text(json.dumps(manifest))
    return "not a path inside the backup"


def unfinished(target: Path) -> str:
    (target / "manifest.json").unlink()
    return "not a treatyflow backup"


@pytest.mark.parametrize("spoil", [damage, lose_a_document, other_keys, escaping_path, unfinished])
def test_a_damaged_backup_is_refused_before_anything_is_written(tmp_path: Path, data_dir: Path,
                                                                spoil: Callable[[Path], str]) -> None:
    target = tmp_path / "backup"
    quiet(backups.backup, settings_for(data_dir), target, keys_dir=None, env={})
    said = spoil(target)
    code, _, err = quiet(backups.run_restore, settings_for(tmp_path / "restored"), target, env={})
    assert code == 2 and said in err, err
    assert not (tmp_path / "restored").exists()


def test_restore_refuses_a_data_directory_in_use_or_not_empty(tmp_path: Path, data_dir: Path) -> None:
    from treatyflow.cli import _lock_data_dir

    target = tmp_path / "backup"
    quiet(backups.backup, settings_for(data_dir), target, keys_dir=None, env={})
    code, _, err = quiet(backups.run_restore, settings_for(data_dir), target, env={})
    assert code == 2 and "not empty" in err
    held = tmp_path / "held"
    lock, refused = _lock_data_dir(held)  # as `treatyflow up` holds it
    assert refused is None
    try:
        code, _, err = quiet(backups.run_restore, settings_for(held), target, env={})
        assert code == 2 and f"runs on {held}" in err and f"pid {os.getpid()}" in err, err
        assert [p.name for p in held.iterdir()] == ["up.lock"]
    finally:
        os.close(lock)
    code, _, _ = quiet(backups.run_restore, settings_for(held), target, env={})  # released: only its lock file
    assert code == 0 and (held / "temporal.sqlite").exists()


def test_data_in_postgresql_is_not_this_commands_to_copy(tmp_path: Path, data_dir: Path) -> None:
    settings = Settings.from_env({"TREATYFLOW_DATA_DIR": str(data_dir), "TREATYFLOW_ARCHIVE_URL": "postgresql://x/y"})
    code, _, err = quiet(backups.run_backup, settings, tmp_path / "backup", env={})
    assert code == 2 and "pg_dump" in err and not (tmp_path / "backup").exists()


# ---- the drill ----------------------------------------------------------------------------------

TODAY = datetime.now(timezone.utc).date().isoformat()
DECLARATION = {"signed_on": TODAY, "voluntary": True, "informed_of_consequences": True}
TEXT = "Certified copy of the judgment of the Almaty City Court, 10 May 2024.\n".encode()


class Api:
    """The product's HTTP API, with the demo keys (dev mode); every answer checked."""

    def __init__(self, port: int) -> None:
        self.http = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30)

    def call(self, method: str, path: str, who: str, expect: int = 200, **kwargs: Any) -> httpx.Response:
        r = self.http.request(method, path, headers=key(who), **kwargs)
        assert r.status_code == expect, f"{method} {path} as {who}: {r.status_code} {r.text[:500]}"
        return r

    def until(self, path: str, who: str, done: Callable[[dict], bool], what: str, seconds: float = 30) -> dict:
        deadline = time.monotonic() + seconds
        while not done(view := self.call("GET", path, who).json()):
            assert time.monotonic() < deadline, f"{path}: no {what} within {seconds:.0f} s: {view}"
            time.sleep(0.1)
        return view


def transfer(reference: str) -> str:
    return f"/v1/transfers/{reference}"


def assistance(reference: str) -> str:
    return f"/v1/assistance-requests/{reference}"


def open_transfer(api: Api, stage: str, **changes: Any) -> dict:
    body = transfer_body(**{"received_on": TODAY, "declaration": DECLARATION, **changes})
    view = api.call("POST", "/v1/transfers", "kz-gpo", 201, json=body).json()
    assert view["stage"] == stage, view
    return body


def consent(api: Api, reference: str, state: str) -> dict:
    return api.call("POST", f"{transfer(reference)}/decisions", f"{state.lower()}-gpo",
                    json={"state": state, "decision": "consent"}).json()


def hand_over(api: Api, reference: str) -> None:
    arranged = api.until(transfer(reference), "uz-penal", lambda v: v["handover"] is not None, "handover arranged")
    done = api.call("POST", f"{transfer(reference)}/handover", "uz-penal",
                    json={"completed_on": TODAY, "place": arranged["handover"]["place"]}).json()
    assert done["stage"] == "transferred", done


def upload(api: Api, reference: str, title: str) -> dict:
    return api.call("POST", f"{transfer(reference)}/documents", "kz-gpo", 201,
                    files={"file": ("judgment.txt", TEXT, "text/plain")},
                    data={"type": "judgment", "title": title, "language": "en"}).json()


def result(api: Api, reference: str, measure: str, who: str) -> dict:
    evidence = [{"item_id": f"{measure}-1", "description": f"record of {measure}",
                 "sha256": hashlib.sha256(f"{reference}/{measure}".encode()).hexdigest(), "collected_on": TODAY}]
    return api.call("POST", f"{assistance(reference)}/measures/{measure}/result", who,
                    json={"outcome": "executed", "evidence": evidence}).json()


def open_assistance(api: Api) -> dict:
    body = assistance_body(received_on=TODAY)
    assert api.call("POST", "/v1/assistance-requests", "fr-moj", 201, json=body).json()["stage"] == "under_review"
    api.call("POST", f"{assistance(body['reference'])}/review", "kz-gpo", json={"decision": "accept"})
    api.until(assistance(body["reference"]), "fr-moj", lambda v: all(m["stage"] != "pending" for m in v["measures"]),
              "every measure started")
    return body


def finish_assistance(api: Api, reference: str, started: bool) -> None:
    path = assistance(reference)
    api.call("POST", f"{path}/measures/m2/authorisation", "kz-court", json={"granted": True, "note": "warrant"})
    for measure, who in ((("m1", "kz-afm"),) if not started else ()) + (("m2", "kz-police"), ("m3", "kz-police")):
        result(api, reference, measure, who)
    view = api.until(path, "fr-moj", lambda v: v["results"] is not None, "results")
    assert view["stage"] == "completed", view


def read_closed(api: Api, path: str, body: dict) -> dict[str, Any]:
    """Everything the API says of a closed case: its view (the trail with it), its documents and
    their bytes, the answer to an identical re-opening (from the archive record), its export."""
    view = api.call("GET", path, "kz-gpo").json()
    documents = api.call("GET", f"{path}/documents", "kz-gpo").json()["items"]
    contents = {d["document_id"]: api.call("GET", f"{path}/documents/{d['document_id']}/content", "kz-gpo").content
                for d in documents}
    assert all(hashlib.sha256(c).hexdigest() == d["sha256"] for d, c in zip(documents, contents.values()))
    opener = "fr-moj" if path.startswith("/v1/assistance") else "kz-gpo"
    archived = api.call("POST", path.rsplit("/", 1)[0], opener, 200, json=body).json()
    export = api.call("GET", f"{path}/export", "kz-gpo").content
    return {"view": view, "documents": documents, "contents": contents, "archived": archived, "export": export}


def settle(address: str, seconds: float = 60) -> None:
    """Until no open workflow on the engine has an activity or a workflow task pending."""
    from temporalio.api.workflowservice.v1 import (DescribeWorkflowExecutionRequest,
                                                   ListWorkflowExecutionsRequest)
    from temporalio.client import Client

    async def wait() -> None:
        client = await Client.connect(address)
        service, deadline = client.workflow_service, time.monotonic() + seconds
        while True:
            listed = await service.list_workflow_executions(ListWorkflowExecutionsRequest(
                namespace="default", query='ExecutionStatus = "Running"', page_size=1000))
            busy = []
            for execution in listed.executions:
                described = await service.describe_workflow_execution(DescribeWorkflowExecutionRequest(
                    namespace="default", execution=execution.execution))
                if described.pending_activities or described.HasField("pending_workflow_task"):
                    busy.append(execution.execution.workflow_id)
            if not busy:
                return
            assert time.monotonic() < deadline, f"still working after {seconds:.0f} s: {busy}"
            await asyncio.sleep(0.2)

    asyncio.run(wait())


def test_the_drill(tmp_path: Path) -> None:
    began = time.monotonic()
    first_ports, second_ports = free_ports(3), free_ports(3)
    assert not set(first_ports) & set(second_ports)
    first, second, target = tmp_path / "data", tmp_path / "restored", tmp_path / "backup"
    first_env, second_env = up_env(first, first_ports), up_env(second, second_ports)

    with running_up(first_env) as run:
        api = Api(first_ports[2])
        added = cli("users", "add", "clerk.one", "--authority", "kz-gpo", "--name", "Clerk One", "--password-stdin",
                    env=first_env, stdin="a long enough password\n")
        assert added.returncode == 0, added.stderr
        # closed: transferred (with a document uploaded by hand), refused, withdrawn, assistance completed
        done = open_transfer(api, "awaiting_consents")
        uploaded = upload(api, done["reference"], "Judgment (certified copy)")
        consent(api, done["reference"], "KZ")
        consent(api, done["reference"], "UZ")
        hand_over(api, done["reference"])
        refused = open_transfer(api, "refused", judgment={**done["judgment"], "final": False})
        withdrawn = open_transfer(api, "awaiting_consents")
        api.call("POST", f"{transfer(withdrawn['reference'])}/withdrawal", "kz-gpo",
                 json={"withdrawn_on": TODAY, "reason": "the person withdrew consent"})
        helped = open_assistance(api)
        finish_assistance(api, helped["reference"], started=False)
        # open, mid-way: one consent given (and a document), no declaration yet, one measure of three done
        consenting = open_transfer(api, "awaiting_consents")
        upload(api, consenting["reference"], "Judgment for the consents")
        consent(api, consenting["reference"], "KZ")
        declaring = open_transfer(api, "awaiting_declaration", declaration=None)
        helping = open_assistance(api)
        result(api, helping["reference"], "m1", "kz-afm")
        settle(f"127.0.0.1:{first_ports[0]}")

        closed = {transfer(done["reference"]): done, transfer(refused["reference"]): refused,
                  transfer(withdrawn["reference"]): withdrawn, assistance(helped["reference"]): helped}
        opened = [transfer(consenting["reference"]), transfer(declaring["reference"]), assistance(helping["reference"])]
        before = {path: read_closed(api, path, body) for path, body in closed.items()}
        assert uploaded["document_id"] in before[transfer(done["reference"])]["contents"]
        assert [v["view"]["stage"] for v in before.values()] == ["transferred", "refused", "withdrawn", "completed"]
        open_before = {path: api.call("GET", path, "kz-gpo").json() for path in opened}
        keys_before = api.call("GET", "/v1/keys", "kz-gpo").json()
        assert (first / "temporal.sqlite-wal").stat().st_size > 0  # the latest commits are in the WAL

        backed_up = cli("backup", str(target), env=first_env)  # while it runs
        assert backed_up.returncode == 0, backed_up.stderr
        assert "WARNING" in backed_up.stderr and str(target / "keys") in backed_up.stderr
        manifest = json.loads((target / "manifest.json").read_text())
        assert manifest["engine"]["journal_mode"] == "wal" and manifest["counts"]["archive_records"] == 4
        assert manifest["counts"]["users_file"] and not owner_only(target)
        again = cli("backup", str(target), env=first_env)
        assert again.returncode == 2 and "not empty" in again.stderr
        busy = cli("restore", str(target), env=first_env)
        assert busy.returncode == 2 and f"runs on {first}" in busy.stderr, busy.stderr
        os.kill(run.up_pid, signal.SIGKILL)  # the machine is lost: nothing stops cleanly
    print(f"drill: cases made and backed up in {time.monotonic() - began:.1f} s")

    restored = cli("restore", str(target), env=second_env)
    assert restored.returncode == 0, restored.stderr
    assert "verified" in restored.stdout
    users = cli("users", "list", env=second_env)
    assert users.returncode == 0 and "clerk.one" in users.stdout, users.stdout + users.stderr

    with running_up(second_env):
        api = Api(second_ports[2])
        assert {path: read_closed(api, path, body) for path, body in closed.items()} == before
        assert {path: api.call("GET", path, "kz-gpo").json() for path in opened} == open_before
        assert api.call("GET", "/v1/keys", "kz-gpo").json() == keys_before
        # every open case to its end
        consent(api, consenting["reference"], "UZ")
        hand_over(api, consenting["reference"])
        api.call("POST", f"{transfer(declaring['reference'])}/declaration", "kz-penal", json=DECLARATION)
        consent(api, declaring["reference"], "KZ")
        consent(api, declaring["reference"], "UZ")
        hand_over(api, declaring["reference"])
        finish_assistance(api, helping["reference"], started=True)
        for path, body in ((opened[0], consenting), (opened[1], declaring), (opened[2], helping)):
            kind = "transfer" if path.startswith("/v1/transfers") else "assistance"
            record = second / "archive" / kind / f"{body['reference']}.json"
            deadline = time.monotonic() + 30
            while not record.exists():
                assert time.monotonic() < deadline, f"{path} was never archived"
                time.sleep(0.1)
            ended = read_closed(api, path, body)
            assert ended["view"]["outcome"] in ("transferred", "completed") and ended["archived"] == ended["view"]
        document, = [d for d in api.call("GET", f"{opened[0]}/documents", "kz-gpo").json()["items"]
                     if d["type"] == "judgment"]  # uploaded before the backup, beside the letters
        assert api.call("GET", f"{opened[0]}/documents/{document['document_id']}/content", "kz-gpo").content == TEXT
    print(f"drill: done in {time.monotonic() - began:.1f} s")
