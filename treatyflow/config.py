"""Configuration from the environment, with the embedded defaults of `make run`."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from treatyflow.codec import CodecKeys


@dataclass(frozen=True)
class Settings:
    temporal_address: str = "localhost:7233"
    temporal_namespace: str = "default"
    task_queue: str = "treatyflow"
    data_dir: Path = Path(".data")
    archive_dir: Path = Path(".data/archive")
    archive_url: str | None = None  # postgresql://... : the archive in PostgreSQL instead of files
    # postgresql://... : the user accounts (stores/users.py) in PostgreSQL instead of <data dir>/users.json;
    # by default the archive's URL, so a cluster keeps its users in the same database
    users_url: str | None = None
    # postgresql://... : the case file's documents (stores/documents.py) in PostgreSQL instead of
    # <data dir>/documents; by default the archive's URL, like the users
    documents_dir: Path = Path(".data/documents")  # the document store's files (no documents_url)
    documents_url: str | None = None
    document_limit_bytes: int = 20 * 1_048_576  # the largest document an upload may store (20 MiB)
    # PostgreSQL connections each process holds at most for the archive and for the documents (one
    # pool per store and process; docs/operations.md, "Connection budget")
    archive_pool_size: int = 4
    documents_pool_size: int = 4
    ui_port: int = 8233
    log_level: str = "INFO"
    retention_days: int = 60  # days the engine keeps a closed workflow (the archive keeps the case)
    api_host: str = "127.0.0.1"
    api_port: int = 8000
    dev_mode: bool = False  # demo keys (demo-<authority id>) are accepted only in dev mode
    api_keys: str = ""  # "<authority>:<sha256 hex>,..."
    api_keys_file: Path | None = None  # JSON {"<sha256 hex>": "<authority>"}
    api_timeout: float = 10.0  # seconds a request may wait on Temporal before answering 503
    rate_limit: float = 50.0  # requests per second per authority (burst of the same size)
    max_body_bytes: int = 1_048_576
    webhooks_file: Path | None = None  # JSON {"<authority id>": {"url": ..., "secret": ...}}; none: no webhooks
    workflow_cache: int = 500  # cases a worker keeps in memory (~0.34 MB each); others replay on demand
    # host:port where the worker serves the SDK's Prometheus metrics (/metrics) and its probes
    # (/healthz, /readyz: ready once connected, its codec keys verified and polling)
    worker_metrics: str | None = None
    codec_keys: CodecKeys | None = None  # None: from TREATYFLOW_CODEC_KEYS(_FILE), see treatyflow.codec
    ui_origin: str = "http://localhost:8233"  # the Temporal UI allowed to call the codec endpoints
    # the operators' credential (/metrics outside dev mode, the codec endpoints): SHA-256 hex of the
    # operator token, comma separated (several while one is rotated); never an authority's key
    operator_token_hash: str = ""
    # the operators' access tokens from the identity provider the Temporal UI signs them in with,
    # which the UI forwards to the codec endpoints (api/oidc.py): its issuer (none: off), the
    # tokens' audience, the claim holding their roles (a dotted name reaches into objects) and the
    # role that makes an operator
    operator_oidc_issuer: str | None = None
    operator_oidc_audience: str = ""
    operator_oidc_role_claim: str = "roles"
    operator_oidc_role: str = "treatyflow-operator"
    stats_max_age: float = 3.0  # seconds a /v1/stats answer (and the /metrics case gauges) may be old
    stats_concurrency: int = 2  # visibility counts stats and metrics may run at once, all callers together
    # seconds the caseload figures of /v1/stats (and the web app's statistics) may be old: they list
    # every case of a scope, heavier than its counts
    caseload_max_age: float = 60.0
    # cases the batches of POST /v1/transfers/batch open at once, all batches together (api/batch.py): a
    # batch of 2,000 leaves the engine's intake to others' single POSTs between its own
    batch_concurrency: int = 8
    # signing in to the web application through an identity provider (OpenID Connect), as well as
    # with a password: the issuer's URL, this client's id and secret at it (web/oidc.py)
    oidc_issuer: str | None = None
    oidc_client_id: str = ""
    oidc_client_secret: str = ""
    oidc_name: str = ""  # the provider's name on the sign-in page, e.g. "GPO ID"; none: "your organisation"
    oidc_username_claim: str = "preferred_username"  # the ID token's claim holding the treatyflow user name
    oidc_redirect_url: str | None = None  # <this site>/sign-in/oidc/callback as registered; none: from the request
    # traces (treatyflow/tracing.py), from OpenTelemetry's standard variables: where OTLP/HTTP sends
    # them (none: off), and the service's name (none: treatyflow-api, treatyflow-worker)
    otlp_traces_endpoint: str | None = None
    otel_service_name: str | None = None
    # seconds the worker gives in-flight activities to finish when it stops: longer than the longest
    # activity timeout (30 s), so a rollout cancels no work (deploy/: the pods' grace period outlasts it)
    graceful_shutdown: float = 45.0
    # `treatyflow up`: seconds before a child that died is started again (doubling up to 30 s)
    restart_delay: float = 1.0

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> Settings:
        env = dict(os.environ if env is None else env)
        data_dir = Path(env.get("TREATYFLOW_DATA_DIR", ".data"))
        return cls(
            temporal_address=env.get("TEMPORAL_ADDRESS", cls.temporal_address),
            temporal_namespace=env.get("TEMPORAL_NAMESPACE", cls.temporal_namespace),
            task_queue=env.get("TREATYFLOW_TASK_QUEUE", cls.task_queue),
            data_dir=data_dir,
            archive_dir=Path(env.get("TREATYFLOW_ARCHIVE_DIR", str(data_dir / "archive"))),
            archive_url=env.get("TREATYFLOW_ARCHIVE_URL") or None,
            users_url=env.get("TREATYFLOW_USERS_URL") or env.get("TREATYFLOW_ARCHIVE_URL") or None,
            documents_dir=Path(env.get("TREATYFLOW_DOCUMENTS_DIR", str(data_dir / "documents"))),
            documents_url=env.get("TREATYFLOW_DOCUMENTS_URL") or env.get("TREATYFLOW_ARCHIVE_URL") or None,
            document_limit_bytes=int(env.get("TREATYFLOW_DOCUMENT_LIMIT_BYTES", cls.document_limit_bytes)),
            archive_pool_size=int(env.get("TREATYFLOW_ARCHIVE_POOL_SIZE", cls.archive_pool_size)),
            documents_pool_size=int(env.get("TREATYFLOW_DOCUMENTS_POOL_SIZE", cls.documents_pool_size)),
            ui_port=int(env.get("TREATYFLOW_UI_PORT", cls.ui_port)),
            log_level=env.get("TREATYFLOW_LOG_LEVEL", cls.log_level).upper(),
            retention_days=int(env.get("TREATYFLOW_RETENTION_DAYS", cls.retention_days)),
            api_host=env.get("TREATYFLOW_API_HOST", cls.api_host),
            api_port=int(env.get("TREATYFLOW_API_PORT", cls.api_port)),
            dev_mode=env.get("TREATYFLOW_MODE", "production").lower() == "dev",
            api_keys=env.get("TREATYFLOW_API_KEYS", ""),
            api_keys_file=Path(env["TREATYFLOW_API_KEYS_FILE"]) if env.get("TREATYFLOW_API_KEYS_FILE") else None,
            api_timeout=float(env.get("TREATYFLOW_API_TIMEOUT", cls.api_timeout)),
            rate_limit=float(env.get("TREATYFLOW_RATE_LIMIT", cls.rate_limit)),
            max_body_bytes=int(env.get("TREATYFLOW_MAX_BODY_BYTES", cls.max_body_bytes)),
            ui_origin=env.get("TREATYFLOW_UI_ORIGIN", f"http://localhost:{env.get('TREATYFLOW_UI_PORT', cls.ui_port)}"),
            operator_token_hash=env.get("TREATYFLOW_OPERATOR_TOKEN_HASH", ""),
            operator_oidc_issuer=env.get("TREATYFLOW_OPERATOR_OIDC_ISSUER") or None,
            operator_oidc_audience=env.get("TREATYFLOW_OPERATOR_OIDC_AUDIENCE", ""),
            operator_oidc_role_claim=env.get("TREATYFLOW_OPERATOR_OIDC_ROLE_CLAIM") or cls.operator_oidc_role_claim,
            operator_oidc_role=env.get("TREATYFLOW_OPERATOR_OIDC_ROLE") or cls.operator_oidc_role,
            stats_max_age=float(env.get("TREATYFLOW_STATS_MAX_AGE", cls.stats_max_age)),
            stats_concurrency=int(env.get("TREATYFLOW_STATS_CONCURRENCY", cls.stats_concurrency)),
            caseload_max_age=float(env.get("TREATYFLOW_CASELOAD_MAX_AGE", cls.caseload_max_age)),
            batch_concurrency=int(env.get("TREATYFLOW_BATCH_CONCURRENCY", cls.batch_concurrency)),
            worker_metrics=env.get("TREATYFLOW_WORKER_METRICS") or None,
            workflow_cache=int(env.get("TREATYFLOW_WORKFLOW_CACHE", cls.workflow_cache)),
            webhooks_file=Path(env["TREATYFLOW_WEBHOOKS_FILE"]) if env.get("TREATYFLOW_WEBHOOKS_FILE") else None,
            oidc_issuer=env.get("TREATYFLOW_OIDC_ISSUER") or None,
            oidc_client_id=env.get("TREATYFLOW_OIDC_CLIENT_ID", ""),
            oidc_client_secret=_secret(env, "TREATYFLOW_OIDC_CLIENT_SECRET"),
            oidc_name=env.get("TREATYFLOW_OIDC_NAME", ""),
            oidc_username_claim=env.get("TREATYFLOW_OIDC_USERNAME_CLAIM", cls.oidc_username_claim),
            oidc_redirect_url=env.get("TREATYFLOW_OIDC_REDIRECT_URL") or None,
            otlp_traces_endpoint=_traces_endpoint(env),
            otel_service_name=env.get("OTEL_SERVICE_NAME") or None,
            restart_delay=float(env.get("TREATYFLOW_RESTART_DELAY", cls.restart_delay)),
            graceful_shutdown=float(env.get("TREATYFLOW_GRACEFUL_SHUTDOWN", cls.graceful_shutdown)),
        )


def _secret(env: dict[str, str], name: str) -> str:
    """``name``'s value, or the content of the file ``<name>_FILE`` names (a mounted secret)."""
    if env.get(f"{name}_FILE"):
        return Path(env[f"{name}_FILE"]).read_text().strip()
    return env.get(name, "")


def _traces_endpoint(env: dict[str, str]) -> str | None:
    """Where traces go, read as OpenTelemetry's specification reads its variables: the traces' own
    endpoint as given, else the general one with ``/v1/traces``; none (traces off) without either,
    or with OTEL_SDK_DISABLED=true or OTEL_TRACES_EXPORTER=none."""
    if env.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return None
    if env.get("OTEL_TRACES_EXPORTER", "").strip().lower() == "none":
        return None
    if env.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"):
        return env["OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"]
    if env.get("OTEL_EXPORTER_OTLP_ENDPOINT"):
        return env["OTEL_EXPORTER_OTLP_ENDPOINT"].rstrip("/") + "/v1/traces"
    return None
