"""The `treatyflow` command line."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import getpass
import os
import signal
import subprocess
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, TextIO, TypeVar

from treatyflow.config import Settings
from treatyflow.supervisor import Child, Supervisor, exit_status, stop_in_order

if TYPE_CHECKING:
    from temporalio.client import Client

T = TypeVar("T")

DESCRIPTION = """treatyflow: durable workflows for international cooperation in criminal matters.

Configuration comes from the environment (defaults in brackets):
  Temporal      TEMPORAL_ADDRESS [localhost:7233], TEMPORAL_NAMESPACE [default], TEMPORAL_API_KEY,
                TEMPORAL_TLS, TEMPORAL_TLS_SERVER_CA_CERT_PATH, TEMPORAL_TLS_CLIENT_CERT_PATH,
                TEMPORAL_TLS_CLIENT_KEY_PATH, TEMPORAL_TLS_SERVER_NAME
  worker        TREATYFLOW_TASK_QUEUE [treatyflow], TREATYFLOW_WORKER_METRICS [off; e.g. 0.0.0.0:9000:
                /metrics, /healthz, /readyz],
                TREATYFLOW_WEBHOOKS_FILE [none], TREATYFLOW_WORKFLOW_CACHE [500 cases in memory]
  data          TREATYFLOW_DATA_DIR [.data], TREATYFLOW_ARCHIVE_DIR [<data dir>/archive],
                TREATYFLOW_ARCHIVE_URL [none; postgresql://... for a shared archive],
                TREATYFLOW_USERS_URL [the archive's URL; none: <data dir>/users.json],
                TREATYFLOW_DOCUMENTS_DIR [<data dir>/documents], TREATYFLOW_DOCUMENTS_URL [the archive's
                URL; none: files], TREATYFLOW_DOCUMENT_LIMIT_BYTES [20971520],
                TREATYFLOW_RETENTION_DAYS [60: days the engine keeps a closed case; the archive keeps it],
                TREATYFLOW_ARCHIVE_POOL_SIZE [4], TREATYFLOW_DOCUMENTS_POOL_SIZE [4] (PostgreSQL connections per
                process at most)
  keys          TREATYFLOW_CODEC_KEYS or TREATYFLOW_CODEC_KEYS_FILE [dev: <data dir>/codec-keys.json],
                TREATYFLOW_API_KEYS or TREATYFLOW_API_KEYS_FILE (SHA-256 hashes), TREATYFLOW_MODE [production;
                `up` sets dev: demo keys demo-<authority id>], the states' signing keys TREATYFLOW_SIGNING_KEYS
                or TREATYFLOW_SIGNING_KEYS_FILE [dev: <data dir>/signing-keys.json]
  API           TREATYFLOW_API_HOST [127.0.0.1], TREATYFLOW_API_PORT [8000], TREATYFLOW_API_TIMEOUT [10],
                TREATYFLOW_RATE_LIMIT [50/s], TREATYFLOW_MAX_BODY_BYTES [1048576],
                TREATYFLOW_STATS_MAX_AGE [3 s: how old /v1/stats and the /metrics gauges may be],
                TREATYFLOW_STATS_CONCURRENCY [2 visibility counts at once for stats and metrics],
                TREATYFLOW_CASELOAD_MAX_AGE [60 s: how old the caseload figures of /v1/stats may be],
                TREATYFLOW_BATCH_CONCURRENCY [8 cases the batches of POST /v1/transfers/batch open at once,
                all batches together],
                TREATYFLOW_UI_ORIGIN [http://localhost:8233; comma separated; a loopback origin admits
                localhost and 127.0.0.1 alike], TREATYFLOW_UI_PORT [8233]
  import        TREATYFLOW_API_KEY [none: the authority's key `import` sends; or --key-file]
  web sign-in   TREATYFLOW_OIDC_ISSUER [none: passwords and keys only], TREATYFLOW_OIDC_CLIENT_ID,
                TREATYFLOW_OIDC_CLIENT_SECRET or TREATYFLOW_OIDC_CLIENT_SECRET_FILE, TREATYFLOW_OIDC_NAME,
                TREATYFLOW_OIDC_USERNAME_CLAIM [preferred_username], TREATYFLOW_OIDC_REDIRECT_URL
                [<the request's site>/sign-in/oidc/callback]
  operators     TREATYFLOW_OPERATOR_TOKEN_HASH [none: SHA-256 hex of the operators' token, comma
                separated; the only credential of /metrics outside dev mode and of the codec endpoints],
                the operators' SSO access tokens for the codec endpoints: TREATYFLOW_OPERATOR_OIDC_ISSUER [none:
                off], TREATYFLOW_OPERATOR_OIDC_AUDIENCE, TREATYFLOW_OPERATOR_OIDC_ROLE_CLAIM [roles],
                TREATYFLOW_OPERATOR_OIDC_ROLE [treatyflow-operator]
  logs          TREATYFLOW_LOG_LEVEL [INFO]
  up            TREATYFLOW_RESTART_DELAY [1 s before a process that died is started again, doubling up to 30 s]
  worker        TREATYFLOW_GRACEFUL_SHUTDOWN [45 s (20 s under `up`) for in-flight activities to finish on SIGTERM]
  traces        OTEL_EXPORTER_OTLP_ENDPOINT or OTEL_EXPORTER_OTLP_TRACES_ENDPOINT [none: off; OTLP/HTTP],
                OTEL_SERVICE_NAME [treatyflow-api, treatyflow-worker], the other OTEL_* variables
Security and keys: docs/security.md. Deployment: docs/operations.md."""


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="treatyflow", description=DESCRIPTION,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    commands.add_parser("up", help="the product on this machine (what `make run` runs): the embedded Temporal "
                                   "dev server (SQLite under the data dir, UI), the worker, and the API with the "
                                   "web application in dev mode, each started again after a backoff if it "
                                   "dies, until Ctrl-C")
    commands.add_parser("worker", help="run a worker against TEMPORAL_ADDRESS until SIGINT/SIGTERM")
    commands.add_parser("api", help="serve the HTTP API (/v1) and the web application (/) on "
                                    "TREATYFLOW_API_HOST:TREATYFLOW_API_PORT (127.0.0.1:8000) until SIGINT/SIGTERM")
    demo = commands.add_parser("demo", help="drive Kazakhstan–Uzbekistan transfers and a France → Kazakhstan "
                                            "request for assistance through the running API (start `make run` "
                                            "first)")
    demo.add_argument("--api", default=None, help="API base URL (default http://TREATYFLOW_API_HOST:PORT)")
    commands.add_parser("server", help="run only the embedded Temporal dev server until Ctrl-C")
    commands.add_parser("setup", help="prepare the namespace of a Temporal cluster (TEMPORAL_ADDRESS, "
                                      "TEMPORAL_NAMESPACE, TEMPORAL_TLS_*, TEMPORAL_API_KEY): register the search "
                                      "attributes and set the retention; safe to run again")
    users = commands.add_parser("users", help="the user accounts of the web application, in TREATYFLOW_USERS_URL "
                                              "or <data dir>/users.json (the API need not run); passwords are "
                                              "asked twice on the terminal, or read from stdin, never from argv")
    accounts = users.add_subparsers(dest="users_command", required=True, metavar="COMMAND")
    add = accounts.add_parser("add", help="add a user of an authority of the directory, with a password")
    add.add_argument("username", help="3-32 characters: a lower-case letter, then lower-case letters, digits, . _ -")
    add.add_argument("--authority", required=True, help="the user's authority id, e.g. kz-gpo")
    add.add_argument("--name", required=True, help="the name shown for the user, e.g. \"Aigerim Nurlanovna\"")
    add.add_argument("--senior", action="store_true", help="the user may assign work to colleagues")
    add.add_argument("--no-password", action="store_true",
                     help="no password: the user signs in only through the identity provider (TREATYFLOW_OIDC_*)")
    for name, text in (("disable", "the user can no longer sign in (the account is kept)"),
                       ("enable", "a disabled user can sign in again"),
                       ("reset-password", "give the user a new password"),
                       ("unbind", "forget the identity provider's account bound at the user's first sign-in "
                                  "through it (the next one binds again)")):
        accounts.add_parser(name, help=text).add_argument("username")
    accounts.add_parser("list", help="every user: user name, authority, name, senior, disabled, whether it has a password (never a hash)")
    for name in ("add", "reset-password"):
        accounts.choices[name].add_argument("--password-stdin", action="store_true",
                                            help="read the password from one line of stdin (for scripts) "
                                                 "instead of asking twice on the terminal")
    from treatyflow.importing import IMPORT_DESCRIPTION

    importing = commands.add_parser(
        "import", description=IMPORT_DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter,
        help="open the transfer cases of a list of applicants (CSV or XLSX, the template's columns) through the "
             "running API, with a progress bar and a summary; safe to run again")
    importing.add_argument("file", metavar="FILE", type=Path, help="the list: .csv or .xlsx")
    importing.add_argument("--api", default=None, help="API base URL (default http://TREATYFLOW_API_HOST:PORT)")
    importing.add_argument("--key-file", type=Path, default=None,
                           help="a file holding the authority's API key (default: TREATYFLOW_API_KEY)")
    template = commands.add_parser("template", help="write the empty list of applicants for `import` and the web "
                                                    "application's import: FILE.xlsx or FILE.csv")
    template.add_argument("file", metavar="FILE", type=Path, help="where to write it: .xlsx or .csv")
    template.add_argument("--language", choices=("en", "ru"), default="en", help="the headings' language")
    from treatyflow.backup import BACKUP_DESCRIPTION, RESTORE_DESCRIPTION

    raw = argparse.RawDescriptionHelpFormatter
    backup = commands.add_parser(
        "backup", description=BACKUP_DESCRIPTION, formatter_class=raw,
        help="copy the embedded default's data (the engine's SQLite database, consistently while the product "
             "runs; the archive; the documents; the users) into DIR, new or empty, with a manifest of SHA-256s, "
             "and its keys apart (DIR/keys or --keys): docs/operations.md")
    backup.add_argument("dir", metavar="DIR", help="where the backup goes: a new or empty directory, outside the "
                                                   "data directory (and then off this machine)")
    backup.add_argument("--keys", metavar="KEYS_DIR", type=Path, default=None,
                        help="write the key files (they decrypt every case) into KEYS_DIR, new or empty, instead of "
                             "DIR/keys: somewhere apart from the data")
    restore = commands.add_parser(
        "restore", description=RESTORE_DESCRIPTION, formatter_class=raw,
        help="put a backup made by `treatyflow backup` back into the data directory (TREATYFLOW_DATA_DIR, .data "
             "by default), which must be empty and not in use; every file is checked against the manifest first")
    restore.add_argument("dir", metavar="DIR", help="the backup's directory (with its manifest.json)")
    restore.add_argument("--keys", metavar="KEYS_DIR", type=Path, default=None,
                         help="where the backup's keys were stored apart (default: DIR/keys)")
    args = parser.parse_args(argv)
    settings = Settings.from_env()
    if args.command == "worker":
        import worker

        worker.main()
        code = 0
    elif args.command == "api":
        code = serve_api(settings)
    elif args.command == "setup":
        code = asyncio.run(setup(settings))
    elif args.command == "users":
        code = asyncio.run(manage_users(args, settings))
    elif args.command in ("backup", "restore"):
        from treatyflow import backup as backups

        run = backups.run_backup if args.command == "backup" else backups.run_restore
        code = run(settings, Path(args.dir), keys_dir=args.keys)
    elif args.command == "import":
        from treatyflow.importing import run_import

        code = run_import(args.file, args.api or f"http://{settings.api_host}:{settings.api_port}", args.key_file)
    elif args.command == "template":
        from treatyflow.importing import run_template

        code = run_template(args.file, args.language)
    elif args.command == "demo":
        from treatyflow.demo import run_demo

        code = run_demo(args.api or f"http://{settings.api_host}:{settings.api_port}", settings)
    else:
        code = up(settings, with_worker=args.command == "up")
    # A process that used a Temporal client can abort while the interpreter finalizes
    # (temporalio/sdk-python#300): flush and leave at once (the terminal may be gone: SIGHUP).
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError):
            stream.flush()
    os._exit(code)


def up(settings: Settings, *, with_worker: bool) -> int:
    """Start the dev server (and the worker and the API) as separate processes, as production runs
    them, keep them running (treatyflow/supervisor.py: a child that dies once all are up is said in
    one line and started again after a backoff), and stop them in order (the API first, then the
    worker, then the server) on SIGINT (Ctrl-C), SIGTERM or SIGHUP (the terminal closed). Each child
    dies with this process however it dies (Linux PR_SET_PDEATHSIG), and this process stops them
    when its own parent (`make`) dies. A port already taken, or another `up` on the same data dir,
    is said in one line on stderr, and so is a child exiting while starting: then exit 1 before
    anything claims to be up."""
    from treatyflow.client import codec_keys
    from treatyflow.devserver import start_dev_server, wait_until_reachable
    from treatyflow.namespace import prepare_namespace

    stopping = False

    def stop(*_: object) -> None:
        nonlocal stopping
        stopping = True

    hangup_ignored = signal.getsignal(signal.SIGHUP) == signal.SIG_IGN  # under nohup: stay up, as asked
    for sig in (signal.SIGINT, signal.SIGTERM) + (() if hangup_ignored else (signal.SIGHUP,)):
        signal.signal(sig, stop)
    if not hangup_ignored and not _die_with_parent(signal.SIGTERM, _PARENT_AT_START):
        _say("treatyflow: its parent (make) exited while it started: not starting")  # nobody to be up for
        return 1
    hung_up = (lambda: False) if hangup_ignored else _terminal_hung_up()

    def stop_asked() -> bool:
        """A stop signal, or the terminal closed while only `make` (its session leader) got SIGHUP."""
        return stopping or hung_up()

    if with_worker and os.environ.get("TREATYFLOW_MODE", "dev") == "dev":
        settings = dataclasses.replace(settings, dev_mode=True)
    _lock, refused = _lock_data_dir(settings.data_dir)  # held until this process exits, however it exits
    refused = refused or _first_port_in_use(settings, with_worker)
    if refused:
        _say(refused)
        return 1
    codec_keys(settings)  # the local key file exists (or fails loudly) before anything starts
    if with_worker:  # and the states' signing keys, which the worker and the API read alike
        from stores.signing import configured_signing_keys
        configured_signing_keys(os.environ, settings.data_dir, dev_mode=settings.dev_mode)
    if stop_asked():
        return 0
    log = settings.data_dir.resolve() / "temporal-server.log"  # appended to, run after run
    server = Child("the Temporal dev server", f"its log: {log}", log=log,
                   spawn=lambda: start_dev_server(settings, preexec_fn=_dies_with_this_process(signal.SIGTERM)),
                   ready=lambda: wait_until_reachable(settings, START_TIMEOUT))
    children: list[Child] = [server.start()]
    try:
        async def prepare() -> None:
            """Every child started from this (main) thread: a parent-death signal follows the thread."""
            for attempt in range(1, SERVER_ATTEMPTS + 1):
                try:
                    client = await _while_alive(children, stop_asked, wait_until_reachable(settings, START_TIMEOUT),
                                                f"the Temporal dev server to answer on {settings.temporal_address}")
                    break
                except _StartFailed:
                    # The dev server takes a random port for each internal service (and its HTTP
                    # API, its metrics) by closing a socket bound to port 0 and binding that port
                    # again later: another socket may take it in between. Not one of ours: again.
                    if (attempt == SERVER_ATTEMPTS or server.process.poll() is None
                            or not _lost_a_random_port(server, settings, with_worker)):
                        raise
                    server.start()
            # the dev server registers its --search-attribute list only when it creates its database:
            # an attribute added since (StageTimes, 0.3.0) is registered here, or cases would fail to upsert it
            await _while_alive(children, stop_asked,
                               prepare_namespace(client, settings.temporal_namespace, settings.retention_days),
                               "the search attributes and the retention of the namespace to be set")
            if not with_worker:
                return
            env = {**os.environ, "TREATYFLOW_MODE": os.environ.get("TREATYFLOW_MODE", "dev"),
                   # on this machine a stop waits at most STOP_WAIT for each child: the worker's graceful
                   # shutdown fits in it (production's 45 s is the cluster's, deploy/)
                   "TREATYFLOW_GRACEFUL_SHUTDOWN": os.environ.get("TREATYFLOW_GRACEFUL_SHUTDOWN", "20")}
            for command, name in (("worker", "the worker"), ("api", "the API")):
                children.insert(0, Child(name, "its output is above", spawn=_python_child(command, env),
                                         needs=server).start())  # stopped in list order: the API drains first
            await _while_alive(children, stop_asked, _polling(client, settings, children[1].process.pid),
                               f"the worker to poll task queue {settings.task_queue}")
            await _while_alive(children, stop_asked, _listening(settings.api_host, settings.api_port),
                               f"the API to listen on {settings.api_host}:{settings.api_port}")

        try:
            asyncio.run(prepare())
        except _Stopped:
            return 0
        except _StartFailed as failed:
            _say(str(failed))
            return 1
        host = settings.temporal_address.rsplit(":", 1)[0]
        web = f"http://{settings.api_host}:{settings.api_port}/"
        _say(f"\ntreatyflow is up (data in {settings.data_dir.resolve()})\n"
             + (f"  web application:   {web} (sign in with a demo key, e.g. demo-kz-gpo, or as a user of\n"
                "                     `treatyflow users add`)\n" if with_worker else "") +
             f"  Temporal UI:       http://{host}:{settings.ui_port}\n"
             f"  Temporal frontend: {settings.temporal_address} (namespace {settings.temporal_namespace})\n"
             f"  worker:            {'running on task queue ' + settings.task_queue if with_worker else 'not started'}\n"
             + (f"  API:               http://{settings.api_host}:{settings.api_port}/v1 "
                f"(docs: http://{settings.api_host}:{settings.api_port}/docs)\n"
                "  demo keys:         Authorization: Bearer demo-<authority id>, e.g. demo-kz-gpo, demo-uz-gpo,\n"
                "                     demo-kz-penal, demo-uz-penal (dev mode only)\n"
                "  try:               .venv/bin/treatyflow demo\n" if with_worker else "") +
             f"  archive:           {settings.archive_dir.resolve()}\n"
             f"  server log:        {log}\n"
             "Ctrl-C stops everything; the next start finds every open case where it was.\n", sys.stdout)
        # from here on a child that dies is started again, after a backoff, while the rest runs
        asyncio.run(Supervisor(children, stop_asked=stop_asked, say=_say, first_delay=settings.restart_delay).run())
        return 0
    finally:
        stop_in_order(children)  # the API first, then the worker, then the server
        _say("treatyflow stopped.", sys.stdout)


# ---- what `up` needs ----------------------------------------------------------------------------

START_TIMEOUT = 120.0  # seconds each child may take to become ready (a loaded 2-core machine: ~10-30 s)
SERVER_ATTEMPTS = 3  # starts of the dev server when it loses one of its random ports while starting
PR_SET_PDEATHSIG = 1  # linux/prctl.h
_PARENT_AT_START = os.getppid()  # read at import, before the parent had much time to die


class _StartFailed(Exception):
    """One line for stderr: which child did not start, and where to look."""


class _Stopped(Exception):
    """A stop signal arrived while starting."""


def _say(line: str, stream: TextIO | None = None) -> None:
    """A line for the terminal, which may be gone (SIGHUP): nothing else depends on it."""
    try:
        print(line, file=stream or sys.stderr, flush=True)
    except OSError:
        pass


def _python_child(command: str, env: dict[str, str]) -> Callable[[], subprocess.Popen]:
    """How to start `treatyflow <command>` (the worker, the API) as a child of `up`, in its own
    session (Ctrl-C reaches `up` only), dying with `up`, its output on `up`'s."""
    return lambda: subprocess.Popen([sys.executable, "-m", "treatyflow.cli", command], env=env,
                                    stdin=subprocess.DEVNULL, start_new_session=True,
                                    preexec_fn=_dies_with_this_process(signal.SIGTERM))


def _prctl() -> Callable[..., int] | None:
    if not sys.platform.startswith("linux"):
        return None
    import ctypes

    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None
    prctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong]
    prctl.restype = ctypes.c_int
    return prctl


def _die_with_parent(sig: int, parent: int) -> bool:
    """Have the kernel send ``sig`` to this process when its parent (the thread that started it)
    exits; False when the parent is already gone (the signal would never come)."""
    prctl = _prctl()
    if prctl is not None:
        prctl(PR_SET_PDEATHSIG, sig, 0, 0, 0)
    return os.getppid() == parent


def _dies_with_this_process(sig: int) -> Callable[[], None] | None:
    """A ``preexec_fn``: in the child, between fork and exec, ask for ``sig`` when this process
    exits (even by SIGKILL), and exit at once if it already has. Everything it calls is looked up
    here, in the parent, so the child runs nothing that could wait on a lock of another thread."""
    prctl = _prctl()
    if prctl is None:
        return None
    parent, getppid, exit_now = os.getpid(), os.getppid, os._exit

    def preexec() -> None:
        prctl(PR_SET_PDEATHSIG, sig, 0, 0, 0)
        if getppid() != parent:  # died between fork and prctl
            exit_now(1)
    return preexec


def _terminal_hung_up() -> Callable[[], bool]:
    """Whether the terminal on stdin, stdout or stderr has hung up. The kernel sends SIGHUP only to
    a terminal's session leader: when that is `make` itself (a terminal or task runner starting
    `make run` directly), make waits for its children on SIGHUP and `up` must see the hang-up."""
    import select

    ttys = [fd for fd in (0, 1, 2) if os.isatty(fd)]
    if not ttys:
        return lambda: False
    poller = select.poll()
    for fd in ttys:
        poller.register(fd, 0)  # no input events: only POLLHUP/POLLERR, always reported
    return lambda: any(events & (select.POLLHUP | select.POLLERR) for _, events in poller.poll(0))


def _lock_data_dir(data_dir: Path) -> tuple[int | None, str | None]:
    """An exclusive lock on <data dir>/up.lock with this process's pid in it: a second `up` on the
    same data (one SQLite file, one archive) is refused. The kernel releases it when this process
    exits, however it exits; the file stays."""
    import fcntl

    data_dir.mkdir(parents=True, exist_ok=True)
    path = data_dir.resolve() / "up.lock"
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)  # not inherited by the children
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        other = os.read(fd, 32).decode(errors="replace").strip() or "unknown"
        os.close(fd)
        return None, (f"treatyflow: already running on {data_dir.resolve()} (pid {other}, lock {path}): stop it "
                      "first, or set TREATYFLOW_DATA_DIR to another directory")
    os.ftruncate(fd, 0)
    os.write(fd, f"{os.getpid()}\n".encode())
    return fd, None


def _ports(settings: Settings, with_worker: bool) -> list[tuple[str, str, int]]:
    """(what, host, port) of every fixed port `up` will have bound, read from the dev server's own
    command line. The dev server's other ports (metrics, HTTP API, its internal services) are random
    free ones unless --metrics-port or --http-port is given."""
    from treatyflow.devserver import dev_server_command

    cmd = dev_server_command(settings)

    def arg(flag: str) -> str | None:
        return cmd[cmd.index(flag) + 1] if flag in cmd else None

    ip = arg("--ip") or "localhost"
    ports = [("the Temporal frontend, TEMPORAL_ADDRESS", ip, int(arg("--port") or 7233)),
             ("the Temporal UI, TREATYFLOW_UI_PORT", arg("--ui-ip") or ip, int(arg("--ui-port") or 8233))]
    for flag, what in (("--http-port", "the Temporal HTTP API"), ("--metrics-port", "the Temporal metrics")):
        if arg(flag):
            ports.append((what, ip, int(arg(flag) or 0)))
    if with_worker:
        ports.append(("the API, TREATYFLOW_API_PORT", settings.api_host, settings.api_port))
        if settings.worker_metrics:
            host, port = settings.worker_metrics.rsplit(":", 1)
            ports.append(("the worker metrics, TREATYFLOW_WORKER_METRICS", host.strip("[]") or "0.0.0.0", int(port)))
    return ports


def _first_port_in_use(settings: Settings, with_worker: bool) -> str | None:
    """One line for the first port that cannot be bound now, as its server will bind it."""
    import errno
    import socket

    for what, host, port in _ports(settings, with_worker):
        with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the servers do: TIME_WAIT is free
            try:
                probe.bind((host, port))
            except OSError as err:
                if err.errno == errno.EADDRINUSE:
                    return (f"treatyflow: port {port} on {host} ({what}) is already in use{_holder(port)}: "
                            "stop what holds it or choose another port")
                return f"treatyflow: cannot listen on {host}:{port} ({what}): {err.strerror or err}"
    return None


def _holder(port: int) -> str:
    """`` by pid N (command)`` when a process this user may see listens on ``port`` (Linux /proc)."""
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(table) as rows:
                for row in list(rows)[1:]:
                    fields = row.split()
                    if fields[3] == "0A" and int(fields[1].rsplit(":", 1)[1], 16) == port:  # 0A: LISTEN
                        inodes.add(f"socket:[{fields[9]}]")
        except (OSError, IndexError, ValueError):
            continue
    if not inodes:
        return ""
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            if any(os.readlink(f"/proc/{pid}/fd/{fd}") in inodes for fd in os.listdir(f"/proc/{pid}/fd")):
                with open(f"/proc/{pid}/cmdline", "rb") as cmdline:
                    command = cmdline.read().replace(b"\0", b" ").decode(errors="replace").strip()
                return f" by pid {pid} ({command[:80]})"
        except OSError:
            continue
    return ""


def _lost_a_random_port(child: Child, settings: Settings, with_worker: bool) -> bool:
    """Whether the dev server died on a port in use that is none of `up`'s fixed ports."""
    import re

    ours = {port for _, _, port in _ports(settings, with_worker)}
    taken = {int(port) for line in child.logged()
             for port in re.findall(r"listen tcp \S*:(\d+): bind: address already in use", line)}
    return bool(taken) and not taken & ours


async def _while_alive(children: list[Child], stopping: Callable[[], bool], step: Awaitable[T], what: str,
                       timeout: float = START_TIMEOUT) -> T:
    """``step``'s result, unless a child exits, a stop signal comes or ``timeout`` passes first."""
    loop = asyncio.get_running_loop()
    task = asyncio.ensure_future(step)
    deadline = loop.time() + timeout
    try:
        while True:
            await asyncio.wait({task}, timeout=0.25)
            for child in children:  # also after ``step``: a frontend that answers may be another server's
                if child.process.poll() is not None:
                    raise _StartFailed(f"treatyflow: {child.name} {exit_status(child.process.returncode)} while "
                                       f"starting{child.last_error()} ({child.where})")
            if stopping():
                raise _Stopped
            if task.done():
                try:
                    return task.result()
                except Exception as err:  # noqa: BLE001 - said in one line, with where to look
                    raise _StartFailed(f"treatyflow: waiting for {what} failed: {type(err).__name__}: "
                                       f"{str(err).splitlines()[0] if str(err) else ''}") from None
            if loop.time() > deadline:
                raise _StartFailed(f"treatyflow: gave up waiting {timeout:.0f} s for {what} (see "
                                   f"{children[-1].where.removeprefix('its log: ')} and the output above)")
    finally:
        if not task.done():
            task.cancel()
            with contextlib.suppress(BaseException):
                await task


async def _polling(client: Client, settings: Settings, pid: int) -> None:
    """Until the worker process ``pid`` (Temporal identity ``<pid>@<host>``) polls its task queue."""
    from temporalio.api.enums.v1 import TaskQueueType
    from temporalio.api.taskqueue.v1 import TaskQueue
    from temporalio.api.workflowservice.v1 import DescribeTaskQueueRequest

    request = DescribeTaskQueueRequest(namespace=settings.temporal_namespace,
                                       task_queue=TaskQueue(name=settings.task_queue),
                                       task_queue_type=TaskQueueType.TASK_QUEUE_TYPE_WORKFLOW)
    while not any(poller.identity.startswith(f"{pid}@")
                  for poller in (await client.workflow_service.describe_task_queue(request)).pollers):
        await asyncio.sleep(0.25)


async def _listening(host: str, port: int) -> None:
    """Until ``host:port`` accepts a connection (uvicorn listens once its start-up has connected)."""
    while True:
        try:
            _, writer = await asyncio.open_connection(host, port)
        except OSError:
            await asyncio.sleep(0.25)
            continue
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()
        return


async def setup(settings: Settings) -> int:
    """Idempotent: search attributes already there and a retention already set are left as they are."""
    from treatyflow.client import connect
    from treatyflow.namespace import prepare_namespace

    client = await connect(settings, payloads=False)  # no payloads are read or written: no codec keys needed
    await prepare_namespace(client, settings.temporal_namespace, settings.retention_days)
    print(f"namespace {settings.temporal_namespace} at {settings.temporal_address}: search attributes "
          f"registered, retention {settings.retention_days} days", flush=True)
    return 0


async def manage_users(args: argparse.Namespace, settings: Settings) -> int:
    """`treatyflow users ...` on the store itself: one line on stdout when done (a table for
    `list`), one line on stderr and exit 1 when refused. Never a password or a hash."""
    from pydantic import ValidationError

    from stores.users import UserExists, UserNotFound, check_authority, new_user, open_users, with_password

    command, name = args.users_command, getattr(args, "username", None)
    try:
        store = open_users(settings.users_url, settings.data_dir)
        if command == "list":
            _print_users(await store.all())
        elif command == "add":
            check_authority(args.authority)  # before the password is asked for
            if await store.get(name) is not None:
                raise UserExists(f"user {name!r} already exists")
            user = new_user(name, authority=args.authority, display_name=args.name, senior=args.senior,
                            password=None if args.no_password else _new_password(args))
            await store.add(user)
            print(f"user {name} added ({user.authority}{', senior' if user.senior else ''})")
        elif command in ("disable", "enable"):
            await store.update(name, lambda user: user.model_copy(update={"disabled": command == "disable"}))
            print(f"user {name} {command}d")
        elif command == "unbind":
            await store.update(name, lambda user: user.model_copy(update={"oidc_subject": None}))
            print(f"user {name}: no identity provider account bound")
        else:  # reset-password
            user = await store.get(name)
            if user is None:
                raise UserNotFound(f"no user {name!r}")
            changed = with_password(user, _new_password(args))
            await store.update(name, lambda current: current.model_copy(update={  # anything else as it is now
                "password_hash": changed.password_hash, "password_changed_at": changed.password_changed_at}))
            print(f"user {name}: password changed")
        return 0
    except ValidationError as err:
        _say("treatyflow: " + "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in err.errors()))
    except (ValueError, LookupError, OSError, EOFError) as err:
        _say(f"treatyflow: {str(err).splitlines()[0] if str(err) else type(err).__name__}")
    return 1


def _new_password(args: argparse.Namespace) -> str:
    """One line of stdin (--password-stdin), else asked twice on the terminal, never echoed."""
    if args.password_stdin:
        return sys.stdin.readline().removesuffix("\n").removesuffix("\r")
    if not sys.stdin.isatty():
        raise ValueError("no terminal to ask for the password: give it on stdin with --password-stdin")
    password = getpass.getpass("password: ")
    if getpass.getpass("the same password again: ") != password:
        raise ValueError("the two passwords differ; nothing was changed")
    return password


def _print_users(users: list) -> None:
    if not users:
        print("no users yet: add one with `treatyflow users add`")
        return
    rows = [("USERNAME", "AUTHORITY", "NAME", "SENIOR", "DISABLED", "PASSWORD")] + [
        (u.username, u.authority, u.display_name, "yes" if u.senior else "no", "yes" if u.disabled else "no",
         "yes" if u.password_hash else "no") for u in users]
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip())


def serve_api(settings: Settings) -> int:
    """uvicorn with the app; on SIGINT/SIGTERM it stops accepting and drains in-flight requests."""
    import uvicorn

    from treatyflow.logging import configure_logging
    from web.app import create_app

    configure_logging(settings.log_level)
    uvicorn.run(create_app(settings), host=settings.api_host, port=settings.api_port, log_config=None,
                timeout_graceful_shutdown=int(settings.api_timeout) + 5, access_log=False)
    return 0


if __name__ == "__main__":
    main()
