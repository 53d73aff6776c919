"""`treatyflow users ...` as an operator runs it: a subprocess on a temporary data directory
(TREATYFLOW_DATA_DIR), passwords on stdin (--password-stdin), never in argv or in any output
(``users`` checks the output of every command)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from stores.users import FileUsers, authenticate
from tests.support import REPO, base_env

PASSWORD = "correct horse battery staple"
NEW_PASSWORD = "a different long passphrase"
SHORT = "tooshort1"
PASSWORDS = (PASSWORD, NEW_PASSWORD, SHORT, "Zhanna.K.Long")  # every password these tests give


def without_secrets(*outputs: str) -> None:
    for text in outputs:
        assert "$argon2" not in text and not any(password in text for password in PASSWORDS), text


def users(data: Path, *args: str, password: str | None = None) -> subprocess.CompletedProcess:
    env = {**base_env(), "TREATYFLOW_DATA_DIR": str(data)}
    done = subprocess.run([sys.executable, "-m", "treatyflow.cli", "users", *args], cwd=REPO, env=env,
                          input=None if password is None else password + "\n", capture_output=True, text=True,
                          timeout=60)
    without_secrets(done.stdout, done.stderr)
    return done


def refused(done: subprocess.CompletedProcess, *words: str) -> str:
    """The one line on stderr of a command that exited 1."""
    assert done.returncode == 1 and done.stdout == "", done
    lines = done.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("treatyflow: "), done.stderr
    assert all(word in lines[0] for word in words), lines[0]
    return lines[0]


def succeeded(done: subprocess.CompletedProcess) -> str:
    assert done.returncode == 0 and done.stderr == "", done
    assert len(done.stdout.splitlines()) == 1, done.stdout
    return done.stdout.strip()


def listed(data: Path) -> list[list[str]]:
    done = users(data, "list")
    assert done.returncode == 0 and done.stderr == "", done
    return [line.split() for line in done.stdout.splitlines()]


@pytest.fixture
def data(tmp_path) -> Path:
    """A data directory with two users, added as an operator adds them."""
    added = users(tmp_path, "add", "aigerim.n", "--authority", "kz-gpo", "--name", "Aigerim Nurlanovna", "--senior",
                  "--password-stdin", password=PASSWORD)
    assert succeeded(added) == "user aigerim.n added (kz-gpo, senior)"
    assert succeeded(users(tmp_path, "add", "bekzod", "--authority", "uz-penal", "--name", "Bekzod T.",
                           "--password-stdin", password=NEW_PASSWORD)) == "user bekzod added (uz-penal)"
    return tmp_path


def test_add_and_list(data, tmp_path_factory):
    assert ((data / "users.json").stat().st_mode & 0o777) == 0o600
    assert succeeded(users(tmp_path_factory.mktemp("empty"), "list")).startswith("no users yet")
    assert listed(data) == [["USERNAME", "AUTHORITY", "NAME", "SENIOR", "DISABLED", "PASSWORD"],
                            ["aigerim.n", "kz-gpo", "Aigerim", "Nurlanovna", "yes", "no", "yes"],
                            ["bekzod", "uz-penal", "Bekzod", "T.", "no", "no", "yes"]]


async def test_disable_enable_and_reset_password(data):
    store = FileUsers(data / "users.json")
    assert succeeded(users(data, "disable", "aigerim.n")) == "user aigerim.n disabled"
    assert (await store.get("aigerim.n")).disabled and await authenticate(store, "aigerim.n", PASSWORD) is None
    assert ["aigerim.n", "kz-gpo", "Aigerim", "Nurlanovna", "yes", "yes", "yes"] in listed(data)
    assert succeeded(users(data, "enable", "aigerim.n")) == "user aigerim.n enabled"
    before = await store.get("aigerim.n")
    assert await authenticate(store, "aigerim.n", PASSWORD) == before

    assert succeeded(users(data, "reset-password", "aigerim.n", "--password-stdin", password=NEW_PASSWORD)) == \
        "user aigerim.n: password changed"
    after = await store.get("aigerim.n")
    assert after.password_hash != before.password_hash and after.password_changed_at > before.password_changed_at
    assert after.model_copy(update={"password_hash": before.password_hash,
                                    "password_changed_at": before.password_changed_at}) == before
    assert await authenticate(store, "aigerim.n", NEW_PASSWORD) == after
    assert await authenticate(store, "aigerim.n", PASSWORD) is None


async def test_an_account_for_the_identity_provider_only_has_no_password_and_its_binding_can_be_forgotten(data):
    store = FileUsers(data / "users.json")
    assert succeeded(users(data, "add", "zhanna.k", "--authority", "kz-gpo", "--name", "Zhanna K.",
                           "--no-password")) == "user zhanna.k added (kz-gpo)"  # nothing asked on the terminal
    assert ["zhanna.k", "kz-gpo", "Zhanna", "K.", "no", "no", "no"] in listed(data)
    assert (await store.get("zhanna.k")).password_hash is None
    assert await authenticate(store, "zhanna.k", "") is None and await authenticate(store, "zhanna.k", PASSWORD) is None
    await store.update("zhanna.k", lambda u: u.model_copy(update={"oidc_subject": "https://id.example s-1"}))
    assert succeeded(users(data, "unbind", "zhanna.k")) == "user zhanna.k: no identity provider account bound"
    assert (await store.get("zhanna.k")).oidc_subject is None
    assert succeeded(users(data, "reset-password", "zhanna.k", "--password-stdin", password=NEW_PASSWORD))
    assert await authenticate(store, "zhanna.k", NEW_PASSWORD) is not None  # a password can be given later


def test_what_is_refused_is_said_in_one_line(data):
    before = (data / "users.json").read_bytes()
    refused(users(data, "add", "zhanna", "--authority", "kz-nowhere", "--name", "Zhanna", "--password-stdin",
                  password=PASSWORD), "'kz-nowhere'", "directory")
    refused(users(data, "add", "zhanna", "--authority", "kz-gpo", "--name", "Zhanna", "--password-stdin",
                  password=SHORT), "at least 12 characters")
    refused(users(data, "add", "zhanna.k.long", "--authority", "kz-gpo", "--name", "Zhanna", "--password-stdin",
                  password="Zhanna.K.Long"), "not be the user name")
    refused(users(data, "add", "aigerim.n", "--authority", "kz-gpo", "--name", "Again", "--password-stdin",
                  password=PASSWORD), "'aigerim.n' already exists")
    refused(users(data, "add", "Zhanna K", "--authority", "kz-gpo", "--name", "Zhanna", "--password-stdin",
                  password=PASSWORD), "user name 'Zhanna K'")
    refused(users(data, "add", "zhanna", "--authority", "kz-gpo", "--name", "Z" * 101, "--password-stdin",
                  password=PASSWORD), "display_name")
    refused(users(data, "add", "zhanna", "--authority", "kz-gpo", "--name", "Zhanna", password=PASSWORD),
            "--password-stdin")  # no terminal to ask on
    refused(users(data, "reset-password", "aigerim.n", "--password-stdin", password=SHORT), "at least 12")
    refused(users(data, "disable", "nobody"), "no user 'nobody'")
    refused(users(data, "reset-password", "nobody", "--password-stdin", password=PASSWORD), "no user 'nobody'")
    assert (data / "users.json").read_bytes() == before


def test_a_users_file_others_may_read_is_refused(tmp_path):
    (tmp_path / "users.json").write_text('{"users": []}')
    (tmp_path / "users.json").chmod(0o644)
    refused(users(tmp_path, "list"), "users.json", "chmod 600")


def test_processes_adding_at_once_lose_no_user(tmp_path):
    env = {**base_env(), "TREATYFLOW_DATA_DIR": str(tmp_path)}
    names = [f"clerk{i}" for i in range(6)]
    running = [subprocess.Popen([sys.executable, "-m", "treatyflow.cli", "users", "add", name, "--authority",
                                 "uz-gpo", "--name", name.title(), "--password-stdin"], cwd=REPO, env=env,
                                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
               for name in names]
    for proc in running:
        out, err = proc.communicate(PASSWORD + "\n", timeout=60)
        without_secrets(out, err)
        assert proc.returncode == 0, err
    assert [row[0] for row in listed(tmp_path)[1:]] == names
