"""The `treatyflow` command line."""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import os
import signal
import subprocess
import sys
import time

from treatyflow.config import Settings

DESCRIPTION = """treatyflow: durable workflows for international cooperation in criminal matters.

Configuration comes from the environment (defaults in brackets):
  Temporal      TEMPORAL_ADDRESS [localhost:7233], TEMPORAL_NAMESPACE [default], TEMPORAL_API_KEY,
                TEMPORAL_TLS, TEMPORAL_TLS_SERVER_CA_CERT_PATH, TEMPORAL_TLS_CLIENT_CERT_PATH,
                TEMPORAL_TLS_CLIENT_KEY_PATH, TEMPORAL_TLS_SERVER_NAME
  worker        TREATYFLOW_TASK_QUEUE [treatyflow], TREATYFLOW_WORKER_METRICS [off; e.g. 0.0.0.0:9000],
                TREATYFLOW_WEBHOOKS_FILE [none], TREATYFLOW_WORKFLOW_CACHE [500 cases in memory]
  data          TREATYFLOW_DATA_DIR [.data], TREATYFLOW_ARCHIVE_DIR [<data dir>/archive],
                TREATYFLOW_ARCHIVE_URL [none; postgresql://... for a shared archive],
                TREATYFLOW_RETENTION_DAYS [3650]
  keys          TREATYFLOW_CODEC_KEYS or TREATYFLOW_CODEC_KEYS_FILE [dev: <data dir>/codec-keys.json],
                TREATYFLOW_API_KEYS or TREATYFLOW_API_KEYS_FILE (SHA-256 hashes), TREATYFLOW_MODE [production;
                `up` sets dev: demo keys demo-<authority id>]
  API           TREATYFLOW_API_HOST [127.0.0.1], TREATYFLOW_API_PORT [8000], TREATYFLOW_API_TIMEOUT [10],
                TREATYFLOW_RATE_LIMIT [50/s], TREATYFLOW_MAX_BODY_BYTES [1048576],
                TREATYFLOW_STATS_MAX_AGE [3 s: how old /v1/stats and the /metrics gauges may be],
                TREATYFLOW_STATS_CONCURRENCY [2 visibility counts at once for stats and metrics],
                TREATYFLOW_UI_ORIGIN [http://localhost:8233; comma separated; a loopback origin admits
                localhost and 127.0.0.1 alike], TREATYFLOW_UI_PORT [8233]
  operators     TREATYFLOW_OPERATOR_TOKEN_HASH [none: SHA-256 hex of the operators' token, comma
                separated; the only credential of /metrics outside dev mode and of the codec endpoints]
  logs          TREATYFLOW_LOG_LEVEL [INFO]
Security and keys: docs/security.md. Deployment: docs/operations.md."""


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="treatyflow", description=DESCRIPTION,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    commands.add_parser("up", help="the product on this machine (what `make run` runs): the embedded Temporal "
                                   "dev server (SQLite under the data dir, UI), the worker and the API in dev "
                                   "mode, until Ctrl-C")
    commands.add_parser("worker", help="run a worker against TEMPORAL_ADDRESS until SIGINT/SIGTERM")
    commands.add_parser("api", help="serve the HTTP API on TREATYFLOW_API_HOST:TREATYFLOW_API_PORT "
                                    "(127.0.0.1:8000) until SIGINT/SIGTERM")
    demo = commands.add_parser("demo", help="drive Kazakhstan–Uzbekistan transfers and a France → Kazakhstan "
                                            "request for assistance through the running API (start `make run` "
                                            "first)")
    demo.add_argument("--api", default=None, help="API base URL (default http://TREATYFLOW_API_HOST:PORT)")
    commands.add_parser("server", help="run only the embedded Temporal dev server until Ctrl-C")
    commands.add_parser("setup", help="prepare the namespace of a Temporal cluster (TEMPORAL_ADDRESS, "
                                      "TEMPORAL_NAMESPACE, TEMPORAL_TLS_*, TEMPORAL_API_KEY): register the search "
                                      "attributes and set the retention; safe to run again")
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
    elif args.command == "demo":
        from treatyflow.demo import run_demo

        code = run_demo(args.api or f"http://{settings.api_host}:{settings.api_port}", settings)
    else:
        code = up(settings, with_worker=args.command == "up")
    # A process that used a Temporal client can abort while the interpreter finalizes
    # (temporalio/sdk-python#300): flush and leave at once.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def up(settings: Settings, *, with_worker: bool) -> int:
    """Start the dev server (and the worker) as separate processes, as production runs them;
    stop them in order (worker first) on Ctrl-C or SIGTERM."""
    from treatyflow.client import codec_keys
    from treatyflow.devserver import raise_retention, start_dev_server, wait_until_reachable

    stopping = False

    def stop(*_: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    if with_worker and os.environ.get("TREATYFLOW_MODE", "dev") == "dev":
        settings = dataclasses.replace(settings, dev_mode=True)
    codec_keys(settings)  # the local key file exists (or fails loudly) before anything starts
    server = start_dev_server(settings)
    children: list[subprocess.Popen] = [server]
    try:
        async def prepare() -> None:
            client = await wait_until_reachable(settings)
            await raise_retention(client, settings.temporal_namespace, settings.retention_days)

        asyncio.run(prepare())
        if with_worker:
            env = {**os.environ, "TREATYFLOW_MODE": os.environ.get("TREATYFLOW_MODE", "dev")}
            for command in ("worker", "api"):  # stopped in this order: the API drains before the worker goes
                children.insert(0, subprocess.Popen([sys.executable, "-m", "treatyflow.cli", command], env=env,
                                                    start_new_session=True))
        host = settings.temporal_address.rsplit(":", 1)[0]
        print(f"\ntreatyflow is up (data in {settings.data_dir.resolve()})\n"
              f"  Temporal UI:       http://{host}:{settings.ui_port}\n"
              f"  Temporal frontend: {settings.temporal_address} (namespace {settings.temporal_namespace})\n"
              f"  worker:            {'running on task queue ' + settings.task_queue if with_worker else 'not started'}\n"
              + (f"  API:               http://{settings.api_host}:{settings.api_port}/v1 "
                 f"(docs: http://{settings.api_host}:{settings.api_port}/docs)\n"
                 "  demo keys:         Authorization: Bearer demo-<authority id>, e.g. demo-kz-gpo, demo-uz-gpo,\n"
                 "                     demo-kz-penal, demo-uz-penal (dev mode only)\n"
                 "  try:               .venv/bin/treatyflow demo\n" if with_worker else "") +
              f"  archive:           {settings.archive_dir.resolve()}\n"
              f"  server log:        {settings.data_dir.resolve() / 'temporal-server.log'}\n"
              "Ctrl-C stops everything; the next start finds every open case where it was.\n", flush=True)
        while not stopping and all(c.poll() is None for c in children):
            time.sleep(0.5)
        return 0 if stopping else 1
    finally:
        for child in children:  # worker first, then the server
            if child.poll() is None:
                child.send_signal(signal.SIGTERM)
                try:
                    child.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    child.kill()
        print("treatyflow stopped.", flush=True)


async def setup(settings: Settings) -> int:
    """Idempotent: search attributes already there and a retention already set are left as they are."""
    from temporalio.client import Client
    from temporalio.envconfig import ClientConfig

    from treatyflow.devserver import raise_retention, register_search_attributes

    options = ClientConfig.load_client_connect_config()
    options["target_host"], options["namespace"] = settings.temporal_address, settings.temporal_namespace
    client = await Client.connect(**options)  # no payloads are read or written: no codec needed
    await register_search_attributes(client, settings.temporal_namespace)
    await raise_retention(client, settings.temporal_namespace, settings.retention_days)
    print(f"namespace {settings.temporal_namespace} at {settings.temporal_address}: search attributes "
          f"registered, retention {settings.retention_days} days", flush=True)
    return 0


def serve_api(settings: Settings) -> int:
    """uvicorn with the app; on SIGINT/SIGTERM it stops accepting and drains in-flight requests."""
    import uvicorn

    from api.app import create_app
    from treatyflow.logging import configure_logging

    configure_logging(settings.log_level)
    uvicorn.run(create_app(settings), host=settings.api_host, port=settings.api_port, log_config=None,
                timeout_graceful_shutdown=int(settings.api_timeout) + 5, access_log=False)
    return 0


if __name__ == "__main__":
    main()
