"""Notices leave the system by webhook, on the session's local dev server with a real worker whose
``notify`` delivers to a receiver on loopback: signed CloudEvents for each authority, retried by
Temporal while the receiver fails, recognisable by their idempotency key, without personal data,
and never holding up the case."""

from __future__ import annotations

import json
import uuid
from collections import Counter, defaultdict
from datetime import datetime, timezone
from pathlib import Path

import pytest
from temporalio.client import WorkflowHandle

from activities.notify import Notifier, Webhook, Webhooks
from domain.transfer import Decision, TransferView, Withdrawal
from tests.support import Delivery, Receiver, signed_with, until
from treatyflow.cases import act, open_transfer, transfer_handle
from treatyflow.config import Settings
from treatyflow.samples import transfer_request
from worker import create_worker
from workflows.transfer import TransferWorkflow

pytestmark = pytest.mark.asyncio(loop_scope="session")

SECRETS = {"kz-gpo": "kz-gpo-webhook-secret-000000001", "uz-gpo": "uz-gpo-webhook-secret-000000002"}


def settings(tmp_path: Path) -> Settings:
    return Settings(task_queue=f"webhooks-{uuid.uuid4().hex[:8]}", archive_dir=tmp_path / "archive")


def notifier(receiver: Receiver) -> Notifier:
    """Both central authorities registered, each under its own path and secret."""
    return Notifier(Webhooks({authority: Webhook(url=receiver.url(f"/{authority}"), secret=secret)
                              for authority, secret in SECRETS.items()}))


def sent(deliveries: list[Delivery], event: str) -> list[str]:
    """The recipients of the notices of ``event`` among ``deliveries``."""
    return sorted(d.event["data"]["recipient"] for d in deliveries if d.event["data"]["event"] == event)


async def withdraw(handle: WorkflowHandle) -> TransferView:
    """Close the case (so that no case of this test stays open on the shared server) and wait for it."""
    await handle.execute_update(TransferWorkflow.withdraw, args=[
        "kz-gpo", Withdrawal(withdrawn_on=datetime.now(timezone.utc).date(), reason="test over")])
    return await handle.result()


def notice_events(view: TransferView) -> Counter:
    return Counter(e.action for e in view.events if e.action.startswith("notice_"))


async def test_notices_reach_the_authorities_webhooks_retried_while_the_case_carries_on(dev_env, tmp_path):
    request = transfer_request()
    s = settings(tmp_path)
    with Receiver() as receiver:
        receiver.fail_first(2, 500)  # the first attempt at both consent requests fails
        hooks = notifier(receiver)
        async with create_worker(dev_env.client, s, activity_overrides=[hooks.notify]):
            await open_transfer(dev_env.client, request, "kz-gpo", s.task_queue)
            handle = transfer_handle(dev_env.client, request.reference)
            assert (await handle.query(TransferWorkflow.view)).stage == "awaiting_consents"

            await until(lambda: len(receiver.received()) >= 2, "the first, failing deliveries")
            assert [d.status for d in receiver.received()] == [500, 500]
            assert receiver.delivered() == []

            # the case does not wait for its notices: a decision is accepted while they are failing
            decided = await act(handle, TransferWorkflow.record_decision, "kz-gpo",
                                Decision(state="KZ", decision="consent"), TransferWorkflow.view)
            assert [d.state for d in decided.decisions] == ["KZ"]
            assert sent(receiver.delivered(), "action_requested") == []

            # retried by Temporal (initial interval 2 s): both consent requests arrive in the end
            await until(lambda: sent(receiver.delivered(), "action_requested") == ["kz-gpo", "uz-gpo"],
                        "the retried consent requests")
            await until(lambda: sent(receiver.delivered(), "decision_recorded") == ["uz-gpo"],
                        "the notice of KZ's decision")
            closed = await withdraw(handle)
        await hooks.aclose()

    deliveries = receiver.received()
    delivered = receiver.delivered()
    assert sent(delivered, "case_closed") == ["kz-gpo", "uz-gpo"]
    assert notice_events(closed) == {"notice_action_requested": 2, "notice_decision_recorded": 1,
                                     "notice_case_closed": 2}

    # each notice to the authority whose webhook it is, signed with that authority's secret only
    for d in deliveries:
        recipient = d.event["data"]["recipient"]
        assert d.path == f"/{recipient}"
        assert signed_with(d, SECRETS[recipient])
        assert not signed_with(d, SECRETS["uz-gpo" if recipient == "kz-gpo" else "kz-gpo"])
        assert d.headers["content-type"] == "application/cloudevents+json"
        assert d.headers["idempotency-key"] == d.event["id"]
        assert d.event["specversion"] == "1.0" and d.event["source"] == "urn:treatyflow"
        assert d.event["subject"] == request.reference
        assert d.event["type"] == f"org.treatyflow.transfer.{d.event['data']['event']}"

    # a retry is recognisable: the same key and the same bytes again; one distinct key per notice
    by_key: dict[str, list[Delivery]] = defaultdict(list)
    for d in deliveries:
        by_key[d.headers["idempotency-key"]].append(d)
    assert len(by_key) == len(delivered) == 5
    retried = {key: ds for key, ds in by_key.items() if len(ds) > 1}
    assert sorted(ds[0].event["data"]["recipient"] for ds in retried.values()) == ["kz-gpo", "uz-gpo"]
    for ds in retried.values():
        assert [d.status for d in ds] == [500, 204]
        assert [d.headers["x-treatyflow-attempt"] for d in ds] == ["1", "2"]
        assert len({d.body for d in ds}) == 1
    assert all(len([d for d in ds if d.status == 204]) == 1 for ds in by_key.values())

    # references, stages and actions: never the person
    for d in deliveries:
        text = d.body.decode()
        assert request.person.full_name not in text
        assert request.person.date_of_birth.isoformat() not in text
        assert set(json.loads(text)["data"]) == {"kind", "reference", "event", "recipient", "stage", "action",
                                                 "measure_id", "due_on"}


async def test_a_rejected_notice_is_recorded_as_failed_and_the_case_goes_on(dev_env, tmp_path):
    request = transfer_request()
    s = settings(tmp_path)
    with Receiver() as receiver:
        receiver.fail_first(1_000, 400)  # every notice is refused: not worth retrying
        hooks = notifier(receiver)
        async with create_worker(dev_env.client, s, activity_overrides=[hooks.notify]):
            await open_transfer(dev_env.client, request, "kz-gpo", s.task_queue)
            handle = transfer_handle(dev_env.client, request.reference)
            decided = await act(handle, TransferWorkflow.record_decision, "uz-gpo",
                                Decision(state="UZ", decision="consent"), TransferWorkflow.view)
            assert [d.state for d in decided.decisions] == ["UZ"]
            closed = await withdraw(handle)
        await hooks.aclose()

    assert closed.stage == "withdrawn"
    assert notice_events(closed) == {"notice_failed": 5}
    # each notice was tried once: a rejection is not retried
    assert Counter(Counter(d.headers["idempotency-key"] for d in receiver.received()).values()) == {1: 5}
