"""The user accounts (stores/users.py) on both backends through one fixture: the file under a
temporary data directory and PostgreSQL on a real server (tests/support/postgres.py), a fresh
database for each test."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from datetime import datetime, timedelta, timezone
from pathlib import Path

import psycopg
import pytest
from argon2 import PasswordHasher

import stores.users as accounts
from stores.users import (FileUsers, PasswordPolicyError, PostgresUsers, UnknownAuthority, User, UserExists,
                          UserNotFound, Users, UsersFileError, authenticate, needs_rehash, new_user, open_users,
                          verify_password, with_password)
from tests.support.postgres import postgres_url  # noqa: F401 - the fixture
from treatyflow.config import Settings

PASSWORD = "correct horse battery staple"
OTHER_PASSWORD = "another long passphrase"


def aigerim(**changes) -> User:
    return new_user(changes.pop("username", "aigerim.n"), authority=changes.pop("authority", "kz-gpo"),
                    display_name="Aigerim Nurlanovna", password=changes.pop("password", PASSWORD), **changes)


@pytest.fixture(params=["file", "postgres"])
async def store(request, tmp_path) -> AsyncIterator[Users]:
    if request.param == "file":
        yield open_users(None, tmp_path)
        return
    server = request.getfixturevalue("postgres_url")
    database = f"users_{uuid.uuid4().hex[:12]}"
    async with await psycopg.AsyncConnection.connect(server, autocommit=True) as conn:
        await conn.execute(f"CREATE DATABASE {database}")
    yield open_users(server.rsplit("/", 1)[0] + f"/{database}", tmp_path)


async def stored_text(store: Users) -> str:
    """Everything the backend keeps, as it keeps it."""
    if isinstance(store, FileUsers):
        return store.path.read_text()
    async with await psycopg.AsyncConnection.connect(store.url) as conn:
        rows = await (await conn.execute("SELECT username, record::text, updated_at::text FROM users")).fetchall()
    return "\n".join(" ".join(row) for row in rows)


class CountingHasher:
    """The module's PasswordHasher, counting the verifications."""

    def __init__(self, inner: PasswordHasher) -> None:
        self.inner, self.verified = inner, []

    def verify(self, password_hash: str, password: str) -> bool:
        self.verified.append(password_hash)
        return self.inner.verify(password_hash, password)

    def __getattr__(self, name: str):
        return getattr(self.inner, name)


@pytest.fixture
def hasher(monkeypatch) -> CountingHasher:
    counting = CountingHasher(accounts.HASHER)
    monkeypatch.setattr(accounts, "HASHER", counting)
    return counting


# ---- the store --------------------------------------------------------------------------------

async def test_a_user_is_added_read_replaced_and_listed(store):
    user = aigerim(senior=True)
    await store.add(user)
    assert await store.get("aigerim.n") == user and await store.get("nobody") is None
    disabled = user.model_copy(update={"disabled": True})
    await store.replace(disabled)
    assert await store.get("aigerim.n") == disabled
    for name in ("zhanna", "ab_c", "abc", "ab.c", "ab-c"):
        await store.add(aigerim(username=name, authority="uz-penal"))
    assert [u.username for u in await store.all()] == sorted(["aigerim.n", "zhanna", "ab_c", "abc", "ab.c", "ab-c"])


async def test_a_taken_name_an_unknown_user_and_an_unknown_authority_are_refused(store):
    await store.add(aigerim())
    with pytest.raises(UserExists, match="aigerim.n"):
        await store.add(aigerim())
    with pytest.raises(UserNotFound, match="zhanna"):
        await store.replace(aigerim(username="zhanna"))
    with pytest.raises(UnknownAuthority, match="kz-nowhere.*directory") as refused:
        await store.add(aigerim(username="zhanna", authority="kz-nowhere"))
    assert isinstance(refused.value, ValueError)
    assert [u.username for u in await store.all()] == ["aigerim.n"]


async def test_an_update_changes_only_what_it_is_given(store):
    await store.add(aigerim())
    changed = await store.update("aigerim.n", lambda u: u.model_copy(update={"senior": True}))
    assert changed.senior and (await store.get("aigerim.n")) == changed
    with pytest.raises(ValueError, match="renamed"):
        await store.update("aigerim.n", lambda u: u.model_copy(update={"username": "other"}))
    with pytest.raises(UserNotFound):
        await store.update("nobody", lambda u: u)


async def test_two_concurrent_adds_are_both_kept(store):
    first, second = aigerim(), aigerim(username="zhanna")
    await asyncio.gather(store.add(first), store.add(second))
    assert await store.all() == [first, second]


async def test_the_stored_record_holds_an_argon2id_hash_and_never_the_password(store):
    await store.add(aigerim())
    stored = await stored_text(store)
    assert PASSWORD not in stored and "$argon2id$v=19$m=65536,t=3,p=4$" in stored
    assert (await store.get("aigerim.n")).password_hash.startswith("$argon2id$")


def test_the_configuration_chooses_the_backend(postgres_url, tmp_path):
    assert isinstance(open_users(postgres_url, tmp_path), PostgresUsers)
    files = open_users(None, tmp_path)
    assert isinstance(files, FileUsers) and files.path == tmp_path / "users.json"
    assert Settings.from_env({}).users_url is None
    assert Settings.from_env({"TREATYFLOW_ARCHIVE_URL": "postgresql://a/b"}).users_url == "postgresql://a/b"
    assert Settings.from_env({"TREATYFLOW_ARCHIVE_URL": "postgresql://a/b",
                              "TREATYFLOW_USERS_URL": "postgresql://c/d"}).users_url == "postgresql://c/d"


# ---- passwords --------------------------------------------------------------------------------

def test_the_password_policy_says_what_to_do():
    with pytest.raises(PasswordPolicyError, match="at least 12 characters"):
        aigerim(password="short pass")
    with pytest.raises(PasswordPolicyError, match="not be the user name"):
        aigerim(username="aigerim.nurlan", password="Aigerim.Nurlan")
    user = aigerim()
    with pytest.raises(PasswordPolicyError):
        with_password(user, "")
    with pytest.raises(ValueError, match="user name 'Aigerim'"):
        aigerim(username="Aigerim")


def test_a_user_shows_no_hash():
    user = aigerim()
    for text in (repr(user), str(user)):
        assert "password_hash" not in text and user.password_hash not in text and "aigerim.n" in text


def test_a_password_is_verified_without_raising():
    user = aigerim()
    assert verify_password(user, PASSWORD)
    assert not verify_password(user, OTHER_PASSWORD) and not verify_password(user, "")
    assert not verify_password(user.model_copy(update={"disabled": True}), PASSWORD)
    assert not verify_password(user.model_copy(update={"password_hash": "$argon2id$broken"}), PASSWORD)


def test_a_new_password_is_hashed_anew():
    user = aigerim()
    later = datetime.now(timezone.utc) + timedelta(hours=1)
    changed = with_password(user, OTHER_PASSWORD, now=later)
    assert changed.password_hash != user.password_hash and changed.password_changed_at == later
    assert changed.created_at == user.created_at
    assert verify_password(changed, OTHER_PASSWORD) and not verify_password(changed, PASSWORD)


async def test_authenticate_right_wrong_disabled_and_unknown(store, hasher):
    await store.add(aigerim())
    assert (await authenticate(store, "aigerim.n", PASSWORD)).username == "aigerim.n"
    assert await authenticate(store, "aigerim.n", OTHER_PASSWORD) is None
    assert len(hasher.verified) == 2
    await store.update("aigerim.n", lambda u: u.model_copy(update={"disabled": True}))
    assert await authenticate(store, "aigerim.n", PASSWORD) is None
    assert len(hasher.verified) == 3  # a disabled user costs the same
    for unknown in ("nobody.here", "Not A Name"):  # an unknown name costs one verification too
        hasher.verified.clear()
        assert await authenticate(store, unknown, PASSWORD) is None
        assert len(hasher.verified) == 1 and hasher.verified[0].startswith("$argon2id$")


async def test_a_hash_with_older_parameters_is_replaced_when_the_user_signs_in(store):
    weak = PasswordHasher(time_cost=1, memory_cost=8192, parallelism=1)
    old = aigerim().model_copy(update={"password_hash": weak.hash(PASSWORD)})
    await store.add(old)
    assert needs_rehash(old)
    assert await authenticate(store, "aigerim.n", OTHER_PASSWORD) is None
    assert (await store.get("aigerim.n")).password_hash == old.password_hash  # not on a wrong password
    signed_in = await authenticate(store, "aigerim.n", PASSWORD)
    stored = await store.get("aigerim.n")
    assert signed_in == stored and not needs_rehash(stored) and verify_password(stored, PASSWORD)
    assert stored.password_changed_at == old.password_changed_at  # the same password


async def test_a_rehash_does_not_undo_a_change_made_meanwhile(store, monkeypatch):
    weak = PasswordHasher(time_cost=1, memory_cost=8192, parallelism=1)
    stale = aigerim().model_copy(update={"password_hash": weak.hash(PASSWORD)})
    await store.add(stale)
    await store.update("aigerim.n", lambda u: u.model_copy(update={"disabled": True}))  # the CLI, meanwhile

    async def read_before_the_change(username: str) -> User:
        return stale
    monkeypatch.setattr(store, "get", read_before_the_change)
    await authenticate(store, "aigerim.n", PASSWORD)
    monkeypatch.undo()
    stored = await store.get("aigerim.n")
    assert stored.disabled and not needs_rehash(stored)


# ---- the file -----------------------------------------------------------------------------------

async def test_the_file_is_created_for_its_owner_only(tmp_path):
    users = open_users(None, tmp_path / "data")
    await users.add(aigerim())
    assert (users.path.stat().st_mode & 0o777) == 0o600
    assert (users.path.with_name("users.json.lock").stat().st_mode & 0o777) == 0o600
    assert json.loads(users.path.read_text())["users"][0]["username"] == "aigerim.n"
    assert [p.name for p in users.path.parent.iterdir() if p.suffix == ".tmp"] == []


async def test_a_file_others_may_read_is_refused(tmp_path):
    path = tmp_path / "users.json"
    path.write_text('{"users": []}')
    for mode in (0o644, 0o640, 0o604):
        path.chmod(mode)
        with pytest.raises(UsersFileError, match="owner only.*chmod 600"):
            open_users(None, tmp_path)
    path.chmod(0o600)
    assert await open_users(None, tmp_path).all() == []


async def test_a_damaged_file_is_named_without_its_content(tmp_path):
    path = Path(tmp_path / "users.json")
    path.write_text('{"users": [{"username": "aigerim.n", "password_hash": "$argon2id$secret"}]}')
    path.chmod(0o600)
    with pytest.raises(UsersFileError) as refused:
        await open_users(None, tmp_path).get("aigerim.n")
    assert str(path) in str(refused.value) and "secret" not in str(refused.value)


async def test_writers_on_the_same_file_lose_no_update(tmp_path):
    """Several stores on one file (as the API and the CLI are): the flock, not the asyncio lock,
    keeps every add."""
    template = aigerim()
    names = [f"user{i:02d}" for i in range(12)]
    writers = [FileUsers(tmp_path / "users.json") for _ in range(4)]
    await asyncio.gather(*(writers[i % 4].add(template.model_copy(update={"username": name}))
                           for i, name in enumerate(names)))
    assert [u.username for u in await writers[0].all()] == names
