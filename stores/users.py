"""The user accounts of the web application: caseworkers, each of one authority of the directory,
signing in with a user name and a password.

Two backends, chosen by ``open_users`` from the values it is given, as for the archive: one file
under the data directory (the embedded default: ``users.json``, owner-only, written atomically)
or PostgreSQL (a URL, table ``users``, for several hosts). Passwords are kept only as argon2id
hashes (argon2-cffi, the library's default parameters); nothing here logs a password or a hash,
and a user's repr leaves the hash out."""

from __future__ import annotations

import asyncio
import fcntl
import json
import os
import re
import tempfile
from collections.abc import Callable
from datetime import datetime, timezone
from functools import cache
from pathlib import Path
from typing import TypeVar

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from domain.reference import reference

USERNAME = re.compile(r"^[a-z][a-z0-9._-]{2,31}$")
MIN_PASSWORD = 12  # characters
HASHER = PasswordHasher()  # argon2id, RFC 9106's low-memory profile: t=3, m=64 MiB, p=4

T = TypeVar("T")


class User(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, hide_input_in_errors=True)

    username: str = Field(pattern=USERNAME.pattern)
    authority: str  # an authority id of the directory, checked when the user is added
    display_name: str = Field(min_length=1, max_length=100)
    senior: bool = False  # may assign work to colleagues
    disabled: bool = False  # may not sign in
    # None: the user signs in only through the identity provider (``users add --no-password``)
    password_hash: str | None = Field(default=None, pattern=r"^\$argon2id\$", repr=False)
    # the identity provider's "<issuer> <sub>" of this user, bound at their first sign-in through it:
    # the provider's user name may change hands, its subject never does
    oidc_subject: str | None = None
    created_at: AwareDatetime
    password_changed_at: AwareDatetime


class UserExists(ValueError):
    """A user name that is already taken."""


class UserNotFound(LookupError):
    """No user of that name."""


class UnknownAuthority(ValueError):
    """An authority id that is not in the directory."""


class PasswordPolicyError(ValueError):
    """A password that may not be used, with what to do instead."""


class UsersFileError(ValueError):
    """A users file that cannot be used (its permissions, its content)."""


class UsersUnavailable(ConnectionError):
    """The users database cannot be reached."""


# ---- passwords ----------------------------------------------------------------------------------

def check_password_policy(username: str, password: str) -> None:
    if len(password) < MIN_PASSWORD:
        raise PasswordPolicyError(f"the password must be at least {MIN_PASSWORD} characters long; "
                                  "a few unrelated words make a good one")
    if password.casefold() == username.casefold():
        raise PasswordPolicyError("the password must not be the user name")


def hash_password(password: str) -> str:
    return HASHER.hash(password)


def _verify(password_hash: str, password: str) -> bool:
    try:
        return HASHER.verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


def verify_password(user: User, password: str) -> bool:
    """Whether ``password`` is ``user``'s; always False for a disabled user or one without a
    password (after the same work)."""
    return _verify(user.password_hash or _dummy_hash(), password) and bool(user.password_hash) and not user.disabled


def needs_rehash(user: User) -> bool:
    """Whether ``user``'s hash was made with other parameters than the hasher's current ones."""
    return bool(user.password_hash) and HASHER.check_needs_rehash(user.password_hash)


@cache
def _dummy_hash() -> str:
    """What an unknown user name is verified against, with the hasher's parameters."""
    return HASHER.hash("treatyflow: no such user")


def check_authority(authority_id: str) -> None:
    """UnknownAuthority unless ``authority_id`` is in the directory."""
    if reference().authority(authority_id) is None:
        raise UnknownAuthority(f"authority {authority_id!r} is not in the directory "
                               "(domain/data/authorities.json); give an id such as kz-gpo")


def new_user(username: str, *, authority: str, display_name: str, password: str | None, senior: bool = False,
             now: datetime | None = None) -> User:
    """A user to add, its password checked against the policy and hashed (None: no password, the
    user signs in through the identity provider only)."""
    if not USERNAME.match(username):
        raise ValueError(f"user name {username!r}: 3 to 32 characters, a lower-case letter first, then "
                         "lower-case letters, digits, '.', '_' or '-'")
    if password is not None:
        check_password_policy(username, password)
    now = now or datetime.now(timezone.utc)
    return User(username=username, authority=authority, display_name=display_name, senior=senior,
                password_hash=hash_password(password) if password is not None else None, created_at=now,
                password_changed_at=now)


def with_password(user: User, password: str, now: datetime | None = None) -> User:
    """``user`` with a new password, checked against the policy and hashed."""
    check_password_policy(user.username, password)
    return user.model_copy(update={"password_hash": hash_password(password),
                                   "password_changed_at": now or datetime.now(timezone.utc)})


async def authenticate(store: Users, username: str, password: str) -> User | None:
    """The user ``username`` if ``password`` is theirs and they are not disabled, else None. An
    unknown name costs one verification too (against a dummy hash), so the time taken does not
    tell which names exist. A hash made with older parameters is replaced on success, unless the
    password changed meanwhile (and nothing else of the user is written back). The hashing (tens
    of milliseconds of CPU by design) runs in a thread: the event loop serves others meanwhile."""
    user = await store.get(username) if USERNAME.match(username) else None
    if user is None:
        await asyncio.to_thread(_verify, _dummy_hash(), password)
        return None
    if not await asyncio.to_thread(verify_password, user, password):
        return None
    if needs_rehash(user):
        old, new = user.password_hash, await asyncio.to_thread(hash_password, password)
        user = await store.update(username, lambda current: current.model_copy(update={"password_hash": new})
                                  if current.password_hash == old else current)
    return user


# ---- the stores ---------------------------------------------------------------------------------

class Users:
    """What every backend offers."""

    async def get(self, username: str) -> User | None:
        raise NotImplementedError

    async def add(self, user: User) -> None:
        """Add a new user of an authority of the directory; UserExists if the name is taken."""
        check_authority(user.authority)
        await self._insert(user)

    async def replace(self, user: User) -> None:
        """Store ``user`` over the user of the same name; UserNotFound if there is none."""
        await self.update(user.username, lambda _: user)

    async def update(self, username: str, change: Callable[[User], User]) -> User:
        """Store ``change(user)`` over the user ``username``, read and written as one step (no
        other change comes in between), and return it; UserNotFound if there is none."""
        raise NotImplementedError

    async def all(self) -> list[User]:
        """Every user, sorted by user name."""
        raise NotImplementedError

    async def _insert(self, user: User) -> None:
        raise NotImplementedError


class FileUsers(Users):
    """``{"users": [...]}`` in one file, owner-only. Every change reads the file, changes it and
    writes it again atomically, under an asyncio lock (this process) and an flock on
    ``<file>.lock`` (other processes: the CLI while the API runs), so no change is lost."""

    def __init__(self, path: Path) -> None:
        if path.exists() and path.stat().st_mode & 0o077:
            raise UsersFileError(f"{path}: the users file must be readable by its owner only (chmod 600)")
        self.path = path
        self._lock = asyncio.Lock()

    def _read(self) -> dict[str, User]:
        try:
            records = json.loads(self.path.read_bytes())["users"] if self.path.exists() else []
            return {u.username: u for u in map(User.model_validate, records)}
        except (ValueError, KeyError, TypeError) as exc:  # no content in the message: it holds hashes
            raise UsersFileError(f"{self.path}: not a users file ({type(exc).__name__})") from None

    def _write(self, users: dict[str, User]) -> None:
        body = json.dumps({"users": [users[name].model_dump(mode="json") for name in sorted(users)]},
                          indent=1, ensure_ascii=False).encode()
        with tempfile.NamedTemporaryFile(dir=self.path.parent, delete=False, suffix=".tmp") as tmp:  # mode 0600
            tmp.write(body)
            tmp.flush()
            os.fsync(tmp.fileno())
        os.replace(tmp.name, self.path)
        directory = os.open(self.path.parent, os.O_RDONLY)
        try:
            os.fsync(directory)  # the rename itself survives a crash
        finally:
            os.close(directory)

    def _change(self, change: Callable[[dict[str, User]], T]) -> T:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path.with_name(self.path.name + ".lock"), os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            users = self._read()
            result = change(users)
            self._write(users)
            return result
        finally:
            os.close(fd)  # releases the lock

    async def _changed(self, change: Callable[[dict[str, User]], T]) -> T:
        async with self._lock:
            return await asyncio.to_thread(self._change, change)  # flock may wait on another process

    async def get(self, username: str) -> User | None:
        return self._read().get(username)

    async def all(self) -> list[User]:
        users = self._read()
        return [users[name] for name in sorted(users)]

    async def _insert(self, user: User) -> None:
        def insert(users: dict[str, User]) -> None:
            if user.username in users:
                raise UserExists(f"user {user.username!r} already exists")
            users[user.username] = user
        await self._changed(insert)

    async def update(self, username: str, change: Callable[[User], User]) -> User:
        def update(users: dict[str, User]) -> User:
            if username not in users:
                raise UserNotFound(f"no user {username!r}")
            users[username] = _same_name(username, change(users[username]))
            return users[username]
        return await self._changed(update)


class PostgresUsers(Users):
    """User accounts in PostgreSQL, for APIs on several hosts: one row per user."""

    SCHEMA = """
        CREATE TABLE IF NOT EXISTS users (
            username text PRIMARY KEY,
            record jsonb NOT NULL,
            updated_at timestamptz NOT NULL DEFAULT now()
        )"""

    def __init__(self, url: str) -> None:
        self.url = url
        self._ready = False

    async def connection(self):
        import psycopg

        try:
            conn = await psycopg.AsyncConnection.connect(self.url, autocommit=True, connect_timeout=10)
        except psycopg.OperationalError as exc:  # the URL may hold a password: not in the message
            raise UsersUnavailable(f"users database unreachable: {type(exc).__name__}") from None
        if not self._ready:
            async with conn.transaction():  # two first connections at once would both create the table
                await conn.execute("SELECT pg_advisory_xact_lock(hashtext('treatyflow.users'))")
                await conn.execute(self.SCHEMA)
            self._ready = True
        return conn

    async def get(self, username: str) -> User | None:
        async with await self.connection() as conn:
            row = await (await conn.execute("SELECT record FROM users WHERE username = %s", (username,))).fetchone()
        return User.model_validate(row[0]) if row else None

    async def all(self) -> list[User]:
        async with await self.connection() as conn:
            rows = await (await conn.execute('SELECT record FROM users ORDER BY username COLLATE "C"')).fetchall()
        return [User.model_validate(row[0]) for row in rows]

    async def _insert(self, user: User) -> None:
        from psycopg.types.json import Jsonb

        async with await self.connection() as conn:
            inserted = await conn.execute(
                "INSERT INTO users (username, record) VALUES (%s, %s) ON CONFLICT (username) DO NOTHING",
                (user.username, Jsonb(user.model_dump(mode="json"))))
        if inserted.rowcount == 0:
            raise UserExists(f"user {user.username!r} already exists")

    async def update(self, username: str, change: Callable[[User], User]) -> User:
        from psycopg.types.json import Jsonb

        async with await self.connection() as conn:
            async with conn.transaction():
                row = await (await conn.execute("SELECT record FROM users WHERE username = %s FOR UPDATE",
                                                (username,))).fetchone()
                if row is None:
                    raise UserNotFound(f"no user {username!r}")
                user = _same_name(username, change(User.model_validate(row[0])))
                await conn.execute("UPDATE users SET record = %s, updated_at = now() WHERE username = %s",
                                   (Jsonb(user.model_dump(mode="json")), username))
        return user


def _same_name(username: str, user: User) -> User:
    if user.username != username:
        raise ValueError(f"a user cannot be renamed ({username!r} to {user.username!r})")
    return user


def open_users(url: str | None, directory: Path) -> Users:
    """PostgreSQL at ``url`` when there is one (TREATYFLOW_USERS_URL, by default the archive's),
    else ``users.json`` under ``directory`` (TREATYFLOW_DATA_DIR)."""
    if url:
        return PostgresUsers(url)
    return FileUsers(directory / "users.json")
