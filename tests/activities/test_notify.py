"""The ``notify`` activity against a real HTTP receiver on loopback: CloudEvents body, signature,
idempotency across retries, the retryable and the permanent failures; and the webhooks
configuration's validation. ``Receiver`` (tests.support) is shared with the dev-server tests."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterator
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

import httpx
import pytest
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

from activities.notify import Notifier, Webhook, WebhookConfigError, Webhooks, retry_after
from domain.case import Notice
from tests.support import Receiver, signed_with
from treatyflow.config import Settings
from worker import activities

SECRET = "kz-gpo-shared-secret-0123456789"
OTHER_SECRET = "someone-elses-secret-0123456789"


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with Receiver() as r:
        yield r


def notice(**changes) -> Notice:
    fields = dict(kind="transfer", reference="T-0001", event="action_requested", recipient="kz-gpo",
                  stage="awaiting_consents", action="decide", due_on=date(2027, 1, 19),
                  notice_id="transfer:T-0001/run-1/0", at=datetime(2026, 12, 20, 10, 30, 5, 123456, timezone.utc))
    return Notice(**(fields | changes))


def notifier_for(receiver: Receiver, recipient: str = "kz-gpo", secret: str = SECRET) -> Notifier:
    return Notifier(Webhooks({recipient: Webhook(url=receiver.url(), secret=secret)}))


def environment(attempt: int = 1, scheduled: datetime | None = None) -> ActivityEnvironment:
    env = ActivityEnvironment()
    env.info = dataclasses.replace(
        env.info, activity_type="notify", attempt=attempt,
        scheduled_time=scheduled or env.info.scheduled_time,
        current_attempt_scheduled_time=(scheduled or env.info.scheduled_time) + timedelta(seconds=attempt))
    return env


# ---- delivery ---------------------------------------------------------------------------------

async def test_a_notice_is_delivered_as_a_signed_cloud_event(receiver):
    notifier = notifier_for(receiver)
    await environment().run(notifier.notify, notice())
    await notifier.aclose()

    [delivery] = receiver.received()
    assert delivery.path == "/hooks"
    assert delivery.headers["content-type"] == "application/cloudevents+json"
    assert delivery.headers["idempotency-key"] == "transfer:T-0001/run-1/0"
    assert delivery.headers["x-treatyflow-attempt"] == "1"
    assert delivery.event == {
        "specversion": "1.0",
        "id": "transfer:T-0001/run-1/0",
        "source": "urn:treatyflow",
        "type": "org.treatyflow.transfer.action_requested",
        "subject": "T-0001",
        "time": "2026-12-20T10:30:05.123456Z",
        "datacontenttype": "application/json",
        "data": {"kind": "transfer", "reference": "T-0001", "event": "action_requested", "recipient": "kz-gpo",
                 "stage": "awaiting_consents", "action": "decide", "measure_id": None, "due_on": "2027-01-19"},
    }
    # serialised deterministically: sorted keys, no spaces
    assert delivery.body == json.dumps(delivery.event, sort_keys=True, separators=(",", ":")).encode()
    datetime.fromisoformat(delivery.event["time"])  # ISO 8601 with its zone


async def test_the_signature_verifies_with_the_authoritys_secret_only(receiver):
    notifier = notifier_for(receiver)
    await environment().run(notifier.notify, notice())
    await notifier.aclose()
    [delivery] = receiver.received()
    assert delivery.headers["x-treatyflow-signature"].startswith("sha256=")
    assert signed_with(delivery, SECRET)
    assert not signed_with(delivery, OTHER_SECRET)
    assert not signed_with(dataclasses.replace(delivery, body=delivery.body.replace(b"decide", b"refuse")), SECRET)


async def test_every_attempt_at_the_same_notice_sends_the_same_bytes(receiver):
    notifier = notifier_for(receiver)
    await environment(attempt=1).run(notifier.notify, notice())
    await environment(attempt=4).run(notifier.notify, notice())
    await notifier.aclose()
    first, retry = receiver.received()
    assert first.body == retry.body
    assert first.headers["idempotency-key"] == retry.headers["idempotency-key"] == "transfer:T-0001/run-1/0"
    assert first.headers["x-treatyflow-signature"] == retry.headers["x-treatyflow-signature"]
    assert (first.headers["x-treatyflow-attempt"], retry.headers["x-treatyflow-attempt"]) == ("1", "4")


async def test_a_notice_without_its_time_takes_the_activitys_scheduled_time_not_the_clock(receiver):
    scheduled = datetime(2026, 12, 21, 8, 0, tzinfo=timezone.utc)
    notifier = notifier_for(receiver)
    await environment(attempt=1, scheduled=scheduled).run(notifier.notify, notice(at=None))
    await environment(attempt=2, scheduled=scheduled).run(notifier.notify, notice(at=None))
    await notifier.aclose()
    first, retry = receiver.received()
    assert first.event["time"] == "2026-12-21T08:00:00Z"
    assert first.body == retry.body


async def test_the_event_type_names_kind_and_event_and_data_carries_no_more_than_the_notice(receiver):
    notifier = notifier_for(receiver)
    await environment().run(notifier.notify, notice(kind="assistance", event="reminder", action="report_result",
                                                    measure_id="M-2", stage="executing"))
    await notifier.aclose()
    event = receiver.received()[0].event
    assert event["type"] == "org.treatyflow.assistance.reminder"
    assert set(event["data"]) == {"kind", "reference", "event", "recipient", "stage", "action", "measure_id",
                                  "due_on"}
    assert event["data"]["measure_id"] == "M-2"


async def test_an_authority_without_a_webhook_gets_nothing_sent(receiver):
    notifier = notifier_for(receiver, recipient="uz-gpo")
    await environment().run(notifier.notify, notice(recipient="kz-gpo"))
    await environment().run(Notifier(Webhooks()).notify, notice())
    await notifier.aclose()
    assert receiver.received() == []


# ---- failures ---------------------------------------------------------------------------------

@pytest.mark.parametrize("status", [500, 502, 503, 408, 429])
async def test_a_receiver_in_trouble_gives_a_retryable_error(receiver, status):
    receiver.fail_first(1, status)
    notifier = notifier_for(receiver)
    with pytest.raises(ApplicationError) as failed:
        await environment().run(notifier.notify, notice())
    await notifier.aclose()
    assert not failed.value.non_retryable
    assert failed.value.type == "webhook_unavailable"
    assert str(status) in failed.value.message


async def test_a_retry_after_header_sets_the_next_retry_delay_capped():
    assert retry_after(httpx.Response(429, headers={"Retry-After": "30"})) == timedelta(seconds=30)
    assert retry_after(httpx.Response(503, headers={"Retry-After": "86400"})) == timedelta(minutes=10)
    assert retry_after(httpx.Response(503, headers={"Retry-After": "Wed, 21 Oct 2026 07:28:00 GMT"})) is None
    assert retry_after(httpx.Response(503)) is None


@pytest.mark.parametrize("status", [400, 401, 403, 404, 410, 422])
async def test_a_rejection_is_permanent(receiver, status):
    receiver.fail_first(1, status)
    notifier = notifier_for(receiver)
    with pytest.raises(ApplicationError) as failed:
        await environment().run(notifier.notify, notice())
    await notifier.aclose()
    assert failed.value.non_retryable
    assert failed.value.type == "webhook_rejected"


async def test_an_unreachable_receiver_gives_a_retryable_error(receiver):
    url = receiver.url()
    receiver.server.shutdown()
    receiver.server.server_close()  # nothing listens on that port any more
    notifier = Notifier(Webhooks({"kz-gpo": Webhook(url=url, secret=SECRET)}))
    with pytest.raises(ApplicationError) as failed:
        await environment().run(notifier.notify, notice())
    await notifier.aclose()
    assert not failed.value.non_retryable
    assert failed.value.type == "webhook_unreachable"


async def test_one_http_client_serves_every_delivery(receiver):
    notifier = notifier_for(receiver)
    await environment().run(notifier.notify, notice())
    client = notifier.client
    await environment().run(notifier.notify, notice(notice_id="transfer:T-0001/run-1/1"))
    assert notifier.client is client
    await notifier.aclose()
    assert len(receiver.received()) == 2


# ---- configuration ----------------------------------------------------------------------------

def write(tmp_path: Path, content) -> Path:
    path = tmp_path / "webhooks.json"
    path.write_text(content if isinstance(content, str) else json.dumps(content))
    return path


def test_the_webhooks_file_is_loaded(tmp_path):
    path = write(tmp_path, {"kz-gpo": {"url": "https://gpo.example.kz/treatyflow", "secret": SECRET},
                            "uz-gpo": {"url": "http://10.0.0.5:8080/hooks", "secret": OTHER_SECRET}})
    webhooks = Webhooks.load(path)
    assert webhooks.get("kz-gpo").url == "https://gpo.example.kz/treatyflow"
    assert webhooks.get("kz-gpo").secret.get_secret_value() == SECRET
    assert webhooks.get("kz-penal") is None
    assert SECRET not in repr(webhooks.get("kz-gpo")) and SECRET not in repr(webhooks)


def test_no_file_means_no_webhooks():
    assert len(Webhooks.load(None)) == 0


@pytest.mark.parametrize(("content", "named"), [
    ({"kz-gpo": {"url": "ftp://gpo.example.kz/x", "secret": SECRET}}, ["'kz-gpo'", "url", "http"]),
    ({"kz-gpo": {"url": "gpo.example.kz/x", "secret": SECRET}}, ["'kz-gpo'", "url"]),
    ({"kz-gpo": {"url": "https:///no-host", "secret": SECRET}}, ["'kz-gpo'", "url", "host"]),
    ({"kz-gpo": {"url": "https://gpo.example.kz/x", "secret": "short"}}, ["'kz-gpo'", "secret", "16"]),
    ({"kz-gpo": {"url": "https://gpo.example.kz/x", "secret": ""}}, ["'kz-gpo'", "secret"]),
    ({"kz-gpo": {"url": "https://gpo.example.kz/x"}}, ["'kz-gpo'", "secret", "required"]),
    ({"kz-gpo": {"url": "https://gpo.example.kz/x", "secret": SECRET, "secrte": "x"}}, ["'kz-gpo'", "secrte"]),
    ({"kz-gpo": "https://gpo.example.kz/x"}, ["'kz-gpo'"]),
    ({"kz-gp0": {"url": "https://gpo.example.kz/x", "secret": SECRET}}, ["'kz-gp0'", "directory"]),
    ({"KZ-GPO": {"url": "https://gpo.example.kz/x", "secret": SECRET}}, ["'KZ-GPO'", "authority id"]),
    ({"kazakhstan": {"url": "https://gpo.example.kz/x", "secret": SECRET}}, ["'kazakhstan'", "authority id"]),
    ([{"url": "https://gpo.example.kz/x", "secret": SECRET}], ["expected an object"]),
])
def test_an_invalid_entry_is_named(tmp_path, content, named):
    path = write(tmp_path, {"uz-gpo": {"url": "https://gpo.example.uz/x", "secret": OTHER_SECRET}, **content}
                 if isinstance(content, dict) else content)
    with pytest.raises(WebhookConfigError) as failed:
        Webhooks.load(path)
    message = str(failed.value)
    assert str(path) in message
    for part in named:
        assert part in message, message
    assert SECRET not in message


def test_an_unreadable_or_malformed_file_is_named(tmp_path):
    with pytest.raises(WebhookConfigError, match="cannot be read"):
        Webhooks.load(tmp_path / "missing.json")
    with pytest.raises(WebhookConfigError, match="not valid JSON"):
        Webhooks.load(write(tmp_path, "{not json"))


def test_the_setting_comes_from_the_environment(tmp_path):
    assert Settings.from_env({}).webhooks_file is None
    assert Settings.from_env({"TREATYFLOW_WEBHOOKS_FILE": "/etc/treatyflow/webhooks.json"}).webhooks_file == \
        Path("/etc/treatyflow/webhooks.json")


def test_the_worker_refuses_to_start_with_a_bad_webhooks_file(tmp_path):
    bad = write(tmp_path, {"kz-gpo": {"url": "https://gpo.example.kz/x", "secret": "short"}})
    with pytest.raises(WebhookConfigError, match="kz-gpo"):
        activities(Settings(archive_dir=tmp_path / "archive", webhooks_file=bad))
    names = [fn.__temporal_activity_definition.name for fn in activities(Settings(archive_dir=tmp_path / "a"))]
    assert "notify" in names
