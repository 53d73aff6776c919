"""`treatyflow backup DIR` and `treatyflow restore DIR`: the embedded default of `make run` (one
data directory) copied while it runs, and put back into an empty data directory.

**What is copied, and how each piece is kept consistent while the product writes:**

- The engine: the Temporal dev server's SQLite database ``<data dir>/temporal.sqlite``
  (``--db-filename`` in treatyflow/devserver.py), run in WAL mode (``SQLITE_PRAGMAS``): most of
  what was committed lately is in ``temporal.sqlite-wal``, not yet in the main file, so the file is
  never copied as a file. SQLite's online backup API (``sqlite3.Connection.backup``) copies it from
  a read-only connection in one step: one read transaction, so one snapshot of every committed
  transaction, the WAL's included, taken while the server goes on writing (in WAL mode a reader
  never blocks the writer). Executions and visibility are tables of that one file, so they agree.
  The copy is made self-contained (``journal_mode=DELETE``: no WAL beside it) and must pass
  ``PRAGMA integrity_check``.
- The archive of closed cases (stores/archive.py, files): each record is written to a temporary
  file (``*.tmp``) that is then renamed over its name, so a file opened under its name is always
  a whole record, the old one or the new one; temporary files are skipped.
- The document store (stores/documents.py, files): each document is sealed into a temporary file
  (``.doc-*.tmp``) and linked to its name once complete, never rewritten; temporary files are
  skipped.
- The users file (stores/users.py): rewritten whole and renamed into place, read here in one
  ``open``: the old file or the new one, never a mix.

**The order makes the pieces agree with each other:** the engine first, then the archive and the
documents. Everything the engine's snapshot knows was written to the stores before it (a case's
archive record before its workflow closes, a document before the case records it), so the later
copies of the stores hold it. What the stores gained after the snapshot does no harm after a
restore: an archive record of a case the snapshot still shows open is written again when the case
closes again; a document no case recorded is an orphan ``Documents.sweep`` removes.

**The keys** that the embedded default keeps in its data directory, ``codec-keys.json`` (payload,
archive and document encryption: treatyflow/codec.py) and ``signing-keys.json`` (the states'
signing keys: stores/signing.py), are written apart from the data: to ``DIR/keys`` or to
``--keys KEYS_DIR``, with a warning to store them apart. Keys configured in the environment
(``TREATYFLOW_CODEC_KEYS``, ``..._FILE``, ``TREATYFLOW_SIGNING_KEYS``, ``..._FILE``) are not in the
data directory and not in the backup: keep them where the deployment's secrets are kept.

**The manifest** ``DIR/manifest.json`` lists every file with its size and SHA-256, the keys'
files included (the digest of a random key says nothing of it), the treatyflow and Temporal CLI
versions and the time; ``KEYS_DIR/manifest.json`` names the backup its keys belong to. Restore
reads every file against them before it writes anything. Everything written is its owner's only
(directories 0700, files 0600).

Not for clusters: there the engine, the archive, the documents and the users are PostgreSQL
databases, backed up with the database's own tools (docs/operations.md, "Backup and restore")."""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path, PurePosixPath
from typing import TextIO

from treatyflow.config import Settings

FORMAT = "treatyflow-backup/1"
KEYS_FORMAT = "treatyflow-backup-keys/1"
MANIFEST = "manifest.json"
ENGINE = "temporal.sqlite"  # <data dir>/temporal.sqlite: the dev server's --db-filename (treatyflow/devserver.py)
USERS = "users.json"  # <data dir>/users.json: stores/users.py, open_users without a URL
ARCHIVE = "archive"  # the archive's files (TREATYFLOW_ARCHIVE_DIR, by default <data dir>/archive)
DOCUMENTS = "documents"  # the document store's files (TREATYFLOW_DOCUMENTS_DIR, by default <data dir>/documents)
KEYS = "keys"  # DIR/keys unless --keys says where
CODEC_KEYS = "codec-keys.json"  # treatyflow/codec.py, configured_keys in dev mode
SIGNING_KEYS = "signing-keys.json"  # stores/signing.py, FILE_NAME
KEY_FILES = (CODEC_KEYS, SIGNING_KEYS)
LOCK = "up.lock"  # `treatyflow up` holds it while it runs (treatyflow/cli.py, _lock_data_dir)
CHUNK = 1 << 20

BACKUP_DESCRIPTION = """Back up the embedded default (`make run`, `treatyflow up`) of the data directory
TREATYFLOW_DATA_DIR (.data), while it runs or not, into DIR (new, or an empty directory):

  DIR/temporal.sqlite   the engine's database: a consistent online copy (SQLite's backup API, the
                        WAL included), never the file copied while the server writes it
  DIR/archive/          the archive of closed cases (TREATYFLOW_ARCHIVE_DIR)
  DIR/documents/        the document store (TREATYFLOW_DOCUMENTS_DIR)
  DIR/users.json        the users of the web application
  DIR/manifest.json     every file's size and SHA-256, the versions, the time: restore checks them
  DIR/keys/             codec-keys.json and signing-keys.json, or KEYS_DIR with --keys

The keys decrypt every case: store them apart from the data (a warning says so). Everything written
is its owner's only (0700/0600). Exit 2 when refused (DIR not empty, data in PostgreSQL), 1 when it
fails (what was written is removed). Logs and lock files are not copied. docs/operations.md,
"Backup and restore"."""

RESTORE_DESCRIPTION = """Restore a backup made by `treatyflow backup` into the data directory
TREATYFLOW_DATA_DIR (.data): it must be empty (or absent) and no `treatyflow up` may run on it (its
lock, up.lock, is taken while the restore writes). Every file is read against DIR/manifest.json,
the keys (DIR/keys, or KEYS_DIR with --keys) against it too, before anything is written; then each
goes where `treatyflow up` reads it: the engine's database, the archive (TREATYFLOW_ARCHIVE_DIR),
the documents (TREATYFLOW_DOCUMENTS_DIR), the users file and the key files. Exit 2 when refused,
with nothing written; then start the product on it: `make run`, or TREATYFLOW_DATA_DIR=... treatyflow up."""

KEYS_WARNING = ("WARNING: {keys} holds the keys that decrypt every case and sign its results. Store it apart "
                "from the data backup (another medium, another place), encrypted, readable by its owner only: "
                "without it the backup cannot be read, and whoever has both can read every case.")


class Refused(Exception):
    """Nothing to do as asked (exit 2): said in one line, nothing written."""


class Failed(Exception):
    """Something went wrong while writing (exit 1): what was written is removed again."""


@dataclass(frozen=True)
class Entry:
    """A file of the backup: its path (POSIX, relative to DIR or to the keys' directory)."""

    path: str
    size: int
    sha256: str

    def as_json(self) -> dict[str, object]:
        return {"path": self.path, "size": self.size, "sha256": self.sha256}


@dataclass
class Written:
    """What this command created, removed again if it fails."""

    paths: list[Path] = field(default_factory=list)

    def undo(self) -> None:
        for path in reversed(self.paths):
            with contextlib.suppress(OSError):
                if path.is_dir() and not path.is_symlink():
                    shutil.rmtree(path)
                else:
                    path.unlink()


# ---- the command line's two entry points --------------------------------------------------------

def run_backup(settings: Settings, target: Path, *, keys_dir: Path | None = None,
               env: Mapping[str, str] | None = None, out: TextIO | None = None, err: TextIO | None = None) -> int:
    """`treatyflow backup DIR [--keys KEYS_DIR]`: 0 when done, 2 refused, 1 failed."""
    return _run(lambda: backup(settings, target, keys_dir=keys_dir, env=os.environ if env is None else env,
                               out=out or sys.stdout, err=err or sys.stderr), err or sys.stderr)


def run_restore(settings: Settings, source: Path, *, keys_dir: Path | None = None,
                env: Mapping[str, str] | None = None, out: TextIO | None = None, err: TextIO | None = None) -> int:
    """`treatyflow restore DIR [--keys KEYS_DIR]`: 0 when done, 2 refused, 1 failed."""
    return _run(lambda: restore(settings, source, keys_dir=keys_dir, env=os.environ if env is None else env,
                                out=out or sys.stdout, err=err or sys.stderr), err or sys.stderr)


def _run(step: Callable[[], None], err: TextIO) -> int:
    try:
        step()
        return 0
    except Refused as refused:
        print(f"treatyflow: {refused}", file=err, flush=True)
        return 2
    except (Failed, OSError, sqlite3.Error) as failed:
        print(f"treatyflow: {failed if isinstance(failed, Failed) else _said(failed)}", file=err, flush=True)
        return 1


def _said(error: BaseException) -> str:
    if isinstance(error, OSError) and error.filename:
        return f"{error.strerror or type(error).__name__}: {error.filename}"
    return f"{type(error).__name__}: {error}"


# ---- backup -------------------------------------------------------------------------------------

def backup(settings: Settings, target: Path, *, keys_dir: Path | None, env: Mapping[str, str],
           out: TextIO, err: TextIO) -> dict[str, object]:
    """Copy the data directory of ``settings`` into ``target`` (new or empty) and its keys into
    ``keys_dir`` (``target/keys`` by default); return the manifest. Refused before anything is
    written when a target is not empty or the data is not the embedded default's."""
    _embedded_only(settings, "backup")
    data_dir = settings.data_dir.resolve()
    engine = data_dir / ENGINE
    if not engine.is_file():
        raise Refused(f"no engine database at {engine}: nothing to back up (TREATYFLOW_DATA_DIR names the data "
                      "directory of `make run`, .data by default)")
    target = target.expanduser().resolve()
    keys_apart = keys_dir is not None
    keys_dir = keys_dir.expanduser().resolve() if keys_dir is not None else target / KEYS
    for inside in (data_dir, settings.archive_dir.resolve(), settings.documents_dir.resolve()):
        for what, path in (("the backup", target), ("the keys", keys_dir)):
            if path == inside or inside in path.parents:
                raise Refused(f"{path} is inside {inside}, which it would copy: write {what} elsewhere")
    if keys_apart and (keys_dir == target or target in keys_dir.parents or keys_dir in target.parents):
        raise Refused(f"--keys {keys_dir}: the keys go apart from the data, neither in the backup directory nor "
                      f"around it (leave --keys out for {target / KEYS})")
    _check_empty(target, "the backup directory")
    if keys_apart:
        _check_empty(keys_dir, "the keys directory")

    written = Written()
    try:
        created = datetime.now(timezone.utc)
        _make_dir(target, written)
        # 1. the engine first (the stores hold whatever its snapshot knows: see the module's docstring)
        written.paths += [target / f"{ENGINE}{suffix}" for suffix in ("", "-journal", "-wal", "-shm")]
        engine_info = copy_engine(engine, target / ENGINE)
        files = [_entry(target, ENGINE)]
        # 2. the stores' files, each written once or atomically
        archive = _copy_tree(settings.archive_dir, target / ARCHIVE, ARCHIVE, written)
        documents = _copy_tree(settings.documents_dir, target / DOCUMENTS, DOCUMENTS, written, skip_dirs=("spool",))
        files += archive + documents
        users = data_dir / USERS
        if users.is_file():
            written.paths.append(target / USERS)
            files.append(_copy_file(users, target / USERS, USERS))
        # 3. the keys, apart
        key_entries: list[Entry] = []
        key_notes = _keys_elsewhere(env, data_dir)
        for name in KEY_FILES:
            if (data_dir / name).is_file():
                if not key_entries:
                    _make_dir(keys_dir, written, parents=keys_apart)
                written.paths.append(keys_dir / name)
                key_entries.append(_copy_file(data_dir / name, keys_dir / name, name))
        unreadable = _unopened_records(target / ARCHIVE, keys_dir / CODEC_KEYS) if key_entries else 0
        manifest: dict[str, object] = {
            "format": FORMAT,
            "backup_id": str(uuid.uuid4()),
            "created_at": created.isoformat().replace("+00:00", "Z"),
            "finished_at": datetime.now(timezone.utc).isoformat().replace("+00:00", "Z"),
            "treatyflow_version": treatyflow_version(),
            "temporal_cli": temporal_cli_version(),
            "data_dir": str(data_dir),
            "engine": engine_info,
            "counts": {"archive_records": len(archive), "documents": len(documents),
                       "users_file": users.is_file(), "key_files": len(key_entries)},
            "files": [e.as_json() for e in files],
            "keys": {"directory": KEYS if not keys_apart else None,
                     "files": [e.as_json() for e in key_entries]},
        }
        written.paths += [keys_dir / MANIFEST, target / MANIFEST]
        if key_entries:
            _write_json(keys_dir / MANIFEST, {
                "format": KEYS_FORMAT, "backup_id": manifest["backup_id"], "created_at": manifest["created_at"],
                "data_dir": str(data_dir), "files": [e.as_json() for e in key_entries]})
        _write_json(target / MANIFEST, manifest)  # last: a directory without it is no backup
    except BaseException:
        written.undo()
        raise
    say = lambda line: print(line, file=out, flush=True)  # noqa: E731
    say(f"treatyflow backup of {data_dir} into {target}")
    say(f"  engine      {ENGINE}: {files[0].size} bytes, a consistent online copy (SQLite backup API, journal "
        f"{engine_info['journal_mode']}, integrity {engine_info['integrity']})")
    say(f"  archive     {len(archive)} records of closed cases")
    say(f"  documents   {len(documents)} documents")
    say(f"  users       {USERS if users.is_file() else 'none (no users file)'}")
    say(f"  keys        {', '.join(e.path for e in key_entries) or 'none in the data directory'}"
        + (f" in {keys_dir}" if key_entries else ""))
    say(f"  manifest    {target / MANIFEST} (size and SHA-256 of every file; treatyflow "
        f"{manifest['treatyflow_version']}, {manifest['created_at']})")
    for note in key_notes:
        print(f"treatyflow: {note}", file=err, flush=True)
    if unreadable:
        print(f"WARNING: {unreadable} archive records do not open with {keys_dir / CODEC_KEYS}: the keys in use "
              "may be configured elsewhere (TREATYFLOW_CODEC_KEYS); back those up too.", file=err, flush=True)
    if key_entries:
        print(KEYS_WARNING.format(keys=keys_dir), file=err, flush=True)
    else:
        print("WARNING: no key file in the data directory, so none in the backup: without the codec keys in use "
              "the backup cannot be read.", file=err, flush=True)
    return manifest


def copy_engine(database: Path, copy: Path) -> dict[str, object]:
    """A consistent copy of the SQLite ``database`` while its server writes it, into the new file
    ``copy``: SQLite's online backup API in one step, from a read-only connection."""
    source = sqlite3.connect(f"{database.resolve().as_uri()}?mode=ro", uri=True, timeout=60)
    try:
        journal_mode = source.execute("PRAGMA journal_mode").fetchone()[0]  # read-only: says, never changes
        os.close(os.open(copy, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
        target = sqlite3.connect(copy)
        try:
            # pages=-1: every page in one step, under one read transaction of the source, which sees
            # the main file and the WAL together as of one commit; the server writes on meanwhile
            source.backup(target, pages=-1)
            target.execute("PRAGMA journal_mode=DELETE")  # the copy stands alone: no -wal beside it
            integrity = [row[0] for row in target.execute("PRAGMA integrity_check")]
            pages = target.execute("PRAGMA page_count").fetchone()[0]
        finally:
            target.close()
    finally:
        source.close()
    if integrity != ["ok"]:
        raise Failed(f"the copy of {database} fails its integrity check: {'; '.join(integrity[:3])}")
    os.chmod(copy, 0o600)
    _fsync(copy)
    return {"journal_mode": journal_mode, "pages": pages, "integrity": "ok"}


def _embedded_only(settings: Settings, command: str) -> None:
    where = [name for name, url in (("TREATYFLOW_ARCHIVE_URL", settings.archive_url),
                                    ("TREATYFLOW_USERS_URL", settings.users_url),
                                    ("TREATYFLOW_DOCUMENTS_URL", settings.documents_url)) if url]
    if where:
        raise Refused(f"`treatyflow {command}` is for the embedded default (one data directory), and "
                      f"{', '.join(where)} puts data in PostgreSQL: back that database up with its own tools "
                      "(pg_dump, point-in-time recovery; docs/operations.md)")


def _keys_elsewhere(env: Mapping[str, str], data_dir: Path) -> list[str]:
    notes = []
    for what, name, default in (("codec keys", "TREATYFLOW_CODEC_KEYS", CODEC_KEYS),
                                ("signing keys", "TREATYFLOW_SIGNING_KEYS", SIGNING_KEYS)):
        if env.get(name):
            notes.append(f"the {what} in use come from {name}, not from the data directory: not in this backup")
        elif env.get(f"{name}_FILE") and Path(env[f"{name}_FILE"]).resolve() != data_dir / default:
            notes.append(f"the {what} in use come from {name}_FILE ({env[f'{name}_FILE']}), not from the data "
                         "directory: not in this backup")
    return notes


def _unopened_records(archive: Path, codec_keys: Path) -> int:
    """How many archive records of the copy the codec key file cannot open (0 without records)."""
    from temporalio.api.common.v1 import Payload

    from treatyflow.codec import CodecKeyError, CodecKeys, EncryptionCodec

    records = [p for p in archive.rglob("*") if p.is_file()] if archive.is_dir() else []
    if not records:
        return 0
    try:
        codec = EncryptionCodec(CodecKeys.load(codec_keys))
    except (CodecKeyError, OSError):
        return len(records)
    failed = 0
    for record in records:
        stored = record.read_bytes()
        if stored.startswith(b"{"):  # written without a codec
            continue
        try:
            codec.decrypt(Payload.FromString(stored))
        except Exception:  # noqa: BLE001 - a wrong key, a foreign file: counted, said once
            failed += 1
    return failed


# ---- restore ------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Placed:
    entry: Entry
    source: Path  # in the backup
    target: Path  # where `treatyflow up` reads it


def restore(settings: Settings, source: Path, *, keys_dir: Path | None, env: Mapping[str, str],
            out: TextIO, err: TextIO) -> dict[str, object]:
    """Put the backup in ``source`` (its keys in ``keys_dir``, ``source/keys`` by default) back
    into the data directory of ``settings``, which must be empty and not in use; return its
    manifest. Every file is read against the manifest before anything is written."""
    _embedded_only(settings, "restore")
    source = source.expanduser().resolve()
    manifest = _read_manifest(source / MANIFEST, FORMAT)
    data_dir = settings.data_dir.resolve()
    archive_dir, documents_dir = settings.archive_dir.resolve(), settings.documents_dir.resolve()

    # where each file goes, from paths checked to stay inside their place
    placed = []
    for entry in _entries(manifest.get("files"), source / MANIFEST):
        top, _, rest = entry.path.partition("/")
        if entry.path in (ENGINE, USERS):
            placed.append(Placed(entry, source / entry.path, data_dir / entry.path))
        elif top == ARCHIVE and rest:
            placed.append(Placed(entry, source / entry.path, archive_dir / rest))
        elif top == DOCUMENTS and rest:
            placed.append(Placed(entry, source / entry.path, documents_dir / rest))
        else:
            raise Refused(f"{source / MANIFEST}: {entry.path!r} is no file of a backup")
    if not any(p.entry.path == ENGINE for p in placed):
        raise Refused(f"{source / MANIFEST}: the backup has no engine database")
    keys = manifest.get("keys") if isinstance(manifest.get("keys"), dict) else {}
    key_entries = _entries(keys.get("files", []), source / MANIFEST)
    if key_entries:
        keys_dir = keys_dir.expanduser().resolve() if keys_dir is not None else source / KEYS
        if not (keys_dir / MANIFEST).is_file():
            raise Refused(f"the keys of this backup are not in {keys_dir}: give --keys with the directory where "
                          "they were stored apart")
        keys_manifest = _read_manifest(keys_dir / MANIFEST, KEYS_FORMAT)
        if keys_manifest.get("backup_id") != manifest.get("backup_id"):
            raise Refused(f"the keys in {keys_dir} belong to another backup (made {keys_manifest.get('created_at')}) "
                          f"than {source} (made {manifest.get('created_at')})")
        for entry in key_entries:
            if entry.path not in KEY_FILES:
                raise Refused(f"{source / MANIFEST}: {entry.path!r} is no key file of a backup")
            placed.append(Placed(entry, keys_dir / entry.path, data_dir / entry.path))

    # where it all goes: empty, and no product running on it
    if (holder := lock_holder(data_dir)) is not None:
        raise Refused(f"a treatyflow product runs on {data_dir} (pid {holder}, lock {data_dir / LOCK}): stop it; "
                      "a restore goes into an empty data directory only")
    for place, what in ((data_dir, "the data directory"), (archive_dir, "the archive directory"),
                        (documents_dir, "the documents directory")):
        _check_empty(place, what, allowed=(LOCK,) if place == data_dir else ())

    # every file against the manifest, before anything is written
    for place in placed:
        _verify(place.source, place.entry)

    from treatyflow.cli import _lock_data_dir  # the lock `treatyflow up` takes: no `up` while this runs

    written = Written()
    data_dir_existed = data_dir.exists()
    lock, refused = _lock_data_dir(data_dir)
    if refused:
        raise Refused(refused.removeprefix("treatyflow: "))
    try:
        os.chmod(data_dir, 0o700)
        for place, what in ((data_dir, "the data directory"), (archive_dir, "the archive directory"),
                            (documents_dir, "the documents directory")):
            _check_empty(place, what, allowed=(LOCK,) if place == data_dir else ())  # again, under the lock
        try:
            _put_back(placed, archive_dir, documents_dir, written)
        except BaseException:
            written.undo()
            if not data_dir_existed:
                with contextlib.suppress(OSError):
                    (data_dir / LOCK).unlink()
                    data_dir.rmdir()
            raise
    finally:
        if lock is not None:
            os.close(lock)

    say = lambda line: print(line, file=out, flush=True)  # noqa: E731
    counts = manifest.get("counts") if isinstance(manifest.get("counts"), dict) else {}
    say(f"treatyflow restore of the backup made {manifest.get('created_at')} (treatyflow "
        f"{manifest.get('treatyflow_version')}) into {data_dir}")
    say(f"  verified    {len(placed)} files against {source / MANIFEST} (sizes and SHA-256)")
    say(f"  engine      {data_dir / ENGINE}")
    say(f"  archive     {counts.get('archive_records', 0)} records in {archive_dir}")
    say(f"  documents   {counts.get('documents', 0)} documents in {documents_dir}")
    say(f"  keys        {', '.join(e.path for e in key_entries) or 'none in the backup'}"
        + (f" in {data_dir}" if key_entries else ""))
    say(f"Start it with TREATYFLOW_DATA_DIR={settings.data_dir} treatyflow up (or `make run` for .data).")
    notes = []
    if manifest.get("treatyflow_version") != treatyflow_version():
        notes.append(f"the backup was made by treatyflow {manifest.get('treatyflow_version')}, this is "
                     f"{treatyflow_version()}: read the release notes before starting it")
    if manifest.get("temporal_cli") and manifest.get("temporal_cli") != temporal_cli_version():
        notes.append(f"the backup's engine was written by {manifest.get('temporal_cli')}, this machine has "
                     f"{temporal_cli_version()}")
    if not key_entries:
        notes.append("the backup holds no keys: configure the codec and signing keys it was made with")
    notes += [n.replace("not in this backup", "used instead of any restored key file")
              for n in _keys_elsewhere(env, data_dir)]
    for note in notes:
        print(f"treatyflow: {note}", file=err, flush=True)
    return manifest


def _put_back(placed: list[Placed], archive_dir: Path, documents_dir: Path, written: Written) -> None:
    """Each file copied beside its place under a temporary name, checked again as it is copied,
    then renamed into place; the archive and the documents are filled as whole directories."""
    stage = f".restoring-{os.getpid()}"
    staged_dirs: dict[Path, Path] = {}
    for directory in (archive_dir, documents_dir):
        if any(directory in p.target.parents for p in placed):
            directory.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            staged = directory.parent / f".{directory.name}{stage}"
            _make_dir(staged, written)
            staged_dirs[directory] = staged
    renames = []
    for place in placed:
        home = next((d for d in staged_dirs if d in place.target.parents), None)
        if home is not None:
            staged = staged_dirs[home] / place.target.relative_to(home)
            for parent in reversed(staged.relative_to(staged_dirs[home]).parents[:-1]):
                (staged_dirs[home] / parent).mkdir(mode=0o700, exist_ok=True)
            copied = _copy_file(place.source, staged, place.entry.path)
        else:
            staged = place.target.with_name(f".{place.target.name}{stage}")
            written.paths.append(staged)
            copied = _copy_file(place.source, staged, place.entry.path)
            renames.append((staged, place.target))
        if copied != place.entry:
            raise Failed(f"{place.source} changed while it was restored: run the restore again")
    for directory, staged in staged_dirs.items():
        with contextlib.suppress(FileNotFoundError):
            directory.rmdir()  # empty (checked): the staged one takes its place
        _fsync_tree(staged)
        os.rename(staged, directory)
        written.paths.append(directory)
    for staged, target in renames:
        os.rename(staged, target)
        written.paths.append(target)
    for directory in {p.target.parent for p in placed} | {d.parent for d in staged_dirs}:
        _fsync(directory)


def lock_holder(data_dir: Path) -> str | None:
    """The pid in ``<data dir>/up.lock`` while a process holds it (`treatyflow up`, a restore),
    else None; the lock is only tried, never kept, and nothing is created."""
    try:
        fd = os.open(data_dir / LOCK, os.O_RDONLY)
    except (FileNotFoundError, NotADirectoryError):
        return None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return os.read(fd, 32).decode(errors="replace").strip() or "unknown"
        return None
    finally:
        os.close(fd)  # releases the lock if it was taken


def _read_manifest(path: Path, expected: str) -> dict:
    try:
        manifest = json.loads(path.read_bytes())
    except FileNotFoundError:
        raise Refused(f"no {path.name} in {path.parent}: not a treatyflow backup (or an unfinished one)") from None
    except (OSError, ValueError) as exc:
        raise Refused(f"{path}: unreadable ({type(exc).__name__})") from None
    if not isinstance(manifest, dict) or manifest.get("format") != expected:
        raise Refused(f"{path}: not a manifest of the format {expected}")
    return manifest


def _entries(items: object, where: Path) -> list[Entry]:
    if not isinstance(items, list):
        raise Refused(f"{where}: no list of files")
    entries: list[Entry] = []
    seen: set[str] = set()
    for item in items:
        try:
            entry = Entry(path=str(item["path"]), size=int(item["size"]), sha256=str(item["sha256"]))
        except (TypeError, KeyError, ValueError):
            raise Refused(f"{where}: a file without path, size and sha256") from None
        parts = PurePosixPath(entry.path).parts
        if (not parts or PurePosixPath(entry.path).is_absolute() or "\\" in entry.path
                or any(part in ("", ".", "..") for part in parts) or str(PurePosixPath(*parts)) != entry.path):
            raise Refused(f"{where}: {entry.path!r} is not a path inside the backup")
        if entry.path in seen:
            raise Refused(f"{where}: {entry.path!r} is listed twice")
        seen.add(entry.path)
        entries.append(entry)
    return entries


def _verify(path: Path, entry: Entry) -> None:
    if not path.is_file() or path.is_symlink():
        raise Refused(f"{path} is missing: the backup is incomplete; nothing was restored")
    size, digest = _digest(path)
    if (size, digest) != (entry.size, entry.sha256):
        raise Refused(f"{path} differs from the manifest ({size} bytes, SHA-256 {digest[:12]}…; the manifest says "
                      f"{entry.size} bytes, {entry.sha256[:12]}…): the backup is damaged; nothing was restored")


# ---- files --------------------------------------------------------------------------------------

def _check_empty(path: Path, what: str, allowed: tuple[str, ...] = ()) -> None:
    if path.is_symlink() or (path.exists() and not path.is_dir()):
        raise Refused(f"{what} {path} exists and is not a directory")
    if path.is_dir():
        others = sorted(p.name for p in path.iterdir() if p.name not in allowed)
        if others:
            raise Refused(f"{what} {path} exists and is not empty ({', '.join(others[:3])}"
                          f"{', ...' if len(others) > 3 else ''}): give a new or empty directory")


def _make_dir(path: Path, written: Written, *, parents: bool = True) -> None:
    """``path`` owner-only; recorded as written unless it was there (empty) already."""
    if path.is_dir():
        os.chmod(path, 0o700)
        return
    if parents:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    path.mkdir(mode=0o700)
    os.chmod(path, 0o700)
    written.paths.append(path)


def _copy_tree(root: Path, into: Path, prefix: str, written: Written, skip_dirs: tuple[str, ...] = ()) -> list[Entry]:
    """Every whole file under ``root`` (not temporary files of writes in progress, not lock files)
    into ``into``, owner-only; a file gone between listing and reading (erased) is left out."""
    entries: list[Entry] = []
    if not root.is_dir():
        return entries
    for directory, dirs, names in os.walk(root):
        dirs[:] = sorted(d for d in dirs if not (Path(directory) == root and d in skip_dirs))
        here = Path(directory)
        for name in sorted(names):
            if name.endswith((".tmp", ".lock")) or not (here / name).is_file() or (here / name).is_symlink():
                continue
            relative = (here / name).relative_to(root)
            target = into / relative
            if not into.is_dir():
                _make_dir(into, written)
            for parent in reversed(relative.parents[:-1]):
                (into / parent).mkdir(mode=0o700, exist_ok=True)
            try:
                entries.append(_copy_file(here / name, target, f"{prefix}/{relative.as_posix()}"))
            except FileNotFoundError as gone:
                if gone.filename != str(here / name):
                    raise
    return entries


def _copy_file(source: Path, target: Path, name: str) -> Entry:
    """``source`` into the new file ``target`` (0600, fsynced), read in one ``open``: the entry of
    what was copied."""
    digest, size = hashlib.sha256(), 0
    with open(source, "rb") as reading:
        fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as writing:
            while chunk := reading.read(CHUNK):
                digest.update(chunk)
                writing.write(chunk)
                size += len(chunk)
            writing.flush()
            os.fsync(writing.fileno())
    return Entry(name, size, digest.hexdigest())


def _entry(root: Path, name: str) -> Entry:
    size, digest = _digest(root / name)
    return Entry(name, size, digest)


def _digest(path: Path) -> tuple[int, str]:
    digest, size = hashlib.sha256(), 0
    with open(path, "rb") as reading:
        while chunk := reading.read(CHUNK):
            digest.update(chunk)
            size += len(chunk)
    return size, digest.hexdigest()


def _write_json(path: Path, value: object) -> None:
    staged = path.with_name(f".{path.name}.tmp")
    fd = os.open(staged, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as writing:
        json.dump(value, writing, indent=1, sort_keys=True)
        writing.write("\n")
        writing.flush()
        os.fsync(writing.fileno())
    os.rename(staged, path)
    _fsync(path.parent)


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_tree(root: Path) -> None:
    for directory, _, _ in os.walk(root):
        _fsync(Path(directory))


def walk_files(root: Path) -> Iterator[Path]:
    """Every regular file under ``root``, sorted (for the tests and the drill)."""
    for directory, dirs, names in os.walk(root):
        dirs.sort()
        for name in sorted(names):
            yield Path(directory) / name


# ---- versions -----------------------------------------------------------------------------------

def treatyflow_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("treatyflow")
    except PackageNotFoundError:
        return "unknown"


def temporal_cli_version() -> str | None:
    """``temporal version ...`` of the CLI that runs the dev server (its SQLite schema is its own)."""
    from treatyflow.devserver import installed_binary

    try:
        done = subprocess.run([installed_binary("temporal"), "--version"], capture_output=True, text=True,
                              timeout=20, stdin=subprocess.DEVNULL)
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout.strip() or None
