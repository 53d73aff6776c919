"""Notices to authorities, delivered outward by webhook.

Every authority that registered a webhook in configuration receives each notice addressed to it
as a CloudEvents 1.0 structured-mode JSON document, signed with HMAC-SHA256 over the exact body
bytes with the authority's secret. The body is byte-identical on every retry of the same notice
(its ``id`` is the notice's stable id, sent again as ``Idempotency-Key``), so a receiver drops
repeats by that id. Temporal retries failed deliveries with backoff; the workflow sends notices in
the background, so a receiver that is down never holds up the case. An authority without a webhook
has the notice recorded (logged here, and as a case event by the workflow) and nothing is sent.

Configuration: ``TREATYFLOW_WEBHOOKS_FILE`` names a JSON file
``{"<authority id>": {"url": "https://...", "secret": "<at least 16 characters>"}}``, validated
when the worker starts. Notices carry references, stages, actions and dates, never personal data;
the logs carry reference, event, recipient, status and attempt, never the body.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
from collections.abc import Mapping
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
from pydantic import BaseModel, ConfigDict, SecretStr, ValidationError, field_validator
from temporalio import activity
from temporalio.exceptions import ApplicationError

from domain.case import Notice
from domain.reference import reference

AUTHORITY_ID = re.compile(r"^[a-z]{2}-[a-z0-9-]{2,30}$")
MIN_SECRET_LENGTH = 16
TIMEOUT = httpx.Timeout(10.0)
MAX_RETRY_AFTER = timedelta(minutes=10)  # the NOTICE retry policy's maximum interval

SIGNATURE_HEADER = "X-Treatyflow-Signature"
ATTEMPT_HEADER = "X-Treatyflow-Attempt"
CONTENT_TYPE = "application/cloudevents+json"
SOURCE = "urn:treatyflow"
# the notice's fields that travel in ``data``; listed, not dumped, so that a field added to the
# model later never leaves the system unnoticed
DATA_FIELDS = ("kind", "reference", "event", "recipient", "stage", "action", "measure_id", "due_on")
RETRYABLE_STATUS = frozenset({408, 429})


class WebhookConfigError(ValueError):
    """The webhooks configuration is unusable; the message names the file and the entry."""


class Webhook(BaseModel):
    """Where one authority receives its notices, and the secret their signature is made with."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    url: str
    secret: SecretStr  # never shown in a repr or a log

    @field_validator("url")
    @classmethod
    def _http_url(cls, url: str) -> str:
        if url != url.strip() or any(c.isspace() for c in url):
            raise ValueError("url must not contain whitespace")
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https"):
            raise ValueError(f"url must be http:// or https://, not {parts.scheme or 'schemeless'}")
        if not parts.hostname:
            raise ValueError("url has no host")
        try:
            parts.port  # noqa: B018 - raises on a malformed port
        except ValueError as exc:
            raise ValueError(f"url has an invalid port: {exc}") from None
        return url

    @field_validator("secret")
    @classmethod
    def _long_enough(cls, secret: SecretStr) -> SecretStr:
        if len(secret.get_secret_value().strip()) < MIN_SECRET_LENGTH:
            raise ValueError(f"secret must have at least {MIN_SECRET_LENGTH} characters")
        return secret


class Webhooks:
    """The registry of webhooks by authority id, as configured."""

    def __init__(self, by_authority: Mapping[str, Webhook] | None = None) -> None:
        self.by_authority: dict[str, Webhook] = dict(by_authority or {})

    def __repr__(self) -> str:
        return f"Webhooks({sorted(self.by_authority)})"

    def __len__(self) -> int:
        return len(self.by_authority)

    def get(self, authority: str) -> Webhook | None:
        return self.by_authority.get(authority)

    @classmethod
    def load(cls, path: Path | None) -> Webhooks:
        """The webhooks in ``path`` (``TREATYFLOW_WEBHOOKS_FILE``); none when no file is configured.
        Raises WebhookConfigError naming the file and the bad entry."""
        if path is None:
            return cls()
        try:
            data = json.loads(Path(path).read_text(encoding="utf-8"))
        except OSError as exc:
            raise WebhookConfigError(f"webhooks file {path}: cannot be read: {exc.strerror or exc}") from None
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise WebhookConfigError(f"webhooks file {path}: not valid JSON: {exc}") from None
        return cls.parse(data, source=f"webhooks file {path}")

    @classmethod
    def parse(cls, data: Any, *, source: str = "webhooks") -> Webhooks:
        if not isinstance(data, dict):
            raise WebhookConfigError(
                f'{source}: expected an object {{"<authority id>": {{"url": ..., "secret": ...}}}}, '
                f"got {type(data).__name__}")
        by_authority: dict[str, Webhook] = {}
        for authority, entry in data.items():
            if not AUTHORITY_ID.fullmatch(authority):
                raise WebhookConfigError(
                    f"{source}: entry {authority!r}: not an authority id (expected {AUTHORITY_ID.pattern})")
            if reference().authority(authority) is None:
                raise WebhookConfigError(f"{source}: entry {authority!r}: not in the authority directory")
            try:
                by_authority[authority] = Webhook.model_validate(entry)
            except ValidationError as exc:
                problems = "; ".join(
                    f"{'.'.join(map(str, e['loc'])) or 'entry'}: {e['msg']}" for e in exc.errors(include_input=False))
                raise WebhookConfigError(f"{source}: entry {authority!r}: {problems}") from None
        return cls(by_authority)


def cloud_event(notice: Notice, issued_at: datetime) -> bytes:
    """The notice as a CloudEvents 1.0 structured-mode JSON document, serialised deterministically:
    the same notice gives the same bytes on every attempt."""
    at = notice.at or issued_at
    if at.tzinfo is None:  # workflow time is UTC; never send a time without its zone
        at = at.replace(tzinfo=timezone.utc)
    document = {
        "specversion": "1.0",
        "id": notice.notice_id,
        "source": SOURCE,
        "type": f"org.treatyflow.{notice.kind}.{notice.event}",
        "subject": notice.reference,
        "time": at.astimezone(timezone.utc).isoformat().replace("+00:00", "Z"),
        "datacontenttype": "application/json",
        "data": notice.model_dump(mode="json", include=set(DATA_FIELDS)),
    }
    return json.dumps(document, sort_keys=True, separators=(",", ":")).encode("utf-8")


def signature(body: bytes, secret: str) -> str:
    """The value of the signature header: ``sha256=`` and the hex HMAC-SHA256 of the body."""
    return "sha256=" + hmac.new(secret.encode("utf-8"), body, hashlib.sha256).hexdigest()


class Notifier:
    """Delivers notices to the authorities' webhooks, over one HTTP client shared by all deliveries."""

    def __init__(self, webhooks: Webhooks, *, timeout: httpx.Timeout = TIMEOUT) -> None:
        self.webhooks = webhooks
        self.timeout = timeout
        self._client: httpx.AsyncClient | None = None

    @property
    def client(self) -> httpx.AsyncClient:
        if self._client is None or self._client.is_closed:
            self._client = httpx.AsyncClient(timeout=self.timeout, follow_redirects=False,
                                             headers={"User-Agent": "treatyflow-notifier"})
        return self._client

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    @activity.defn(name="notify")
    async def notify(self, notice: Notice) -> None:
        info = activity.info()
        log = {"reference": notice.reference, "notice_event": notice.event, "recipient": notice.recipient,
               "attempt": info.attempt}
        webhook = self.webhooks.get(notice.recipient)
        if webhook is None:
            activity.logger.info("notice recorded", extra={**log, "stage": notice.stage, "action": notice.action})
            return
        body = cloud_event(notice, info.scheduled_time)
        headers = {
            "Content-Type": CONTENT_TYPE,
            SIGNATURE_HEADER: signature(body, webhook.secret.get_secret_value()),
            "Idempotency-Key": notice.notice_id,
            ATTEMPT_HEADER: str(info.attempt),
        }
        try:
            response = await self.client.post(webhook.url, content=body, headers=headers)
        except (httpx.InvalidURL, httpx.UnsupportedProtocol) as exc:
            activity.logger.error("notice not delivered: webhook misconfigured", extra=log)
            raise ApplicationError(f"webhook of {notice.recipient} is misconfigured: {type(exc).__name__}",
                                   type="webhook_misconfigured", non_retryable=True) from None
        except httpx.TransportError as exc:
            activity.logger.warning("notice not delivered: webhook unreachable",
                                    extra={**log, "error": type(exc).__name__})
            raise ApplicationError(f"webhook of {notice.recipient} unreachable: {type(exc).__name__}",
                                   type="webhook_unreachable") from None
        status = response.status_code
        log["status"] = status
        if 200 <= status < 300:
            activity.logger.info("notice delivered", extra=log)
            return
        if status >= 500 or status in RETRYABLE_STATUS:
            activity.logger.warning("notice not delivered: webhook unavailable", extra=log)
            raise ApplicationError(f"webhook of {notice.recipient} answered {status}", type="webhook_unavailable",
                                   next_retry_delay=retry_after(response))
        activity.logger.error("notice rejected by the webhook", extra=log)
        raise ApplicationError(f"webhook of {notice.recipient} rejected the notice with {status}",
                               type="webhook_rejected", non_retryable=True)


def retry_after(response: httpx.Response) -> timedelta | None:
    """A ``Retry-After`` given in seconds, capped; otherwise Temporal's own backoff applies."""
    value = response.headers.get("Retry-After", "").strip()
    if not value.isdigit():
        return None
    return min(timedelta(seconds=int(value)), MAX_RETRY_AFTER)
