"""A webhook receiver or the archive failing for a while: retried with backoff until it works, the
case carrying on meanwhile; a permanently invalid configuration surfaces as a non-retryable error
with a clear type, in the workflow's history (what the Temporal UI shows)."""

from __future__ import annotations

import json
import time
import uuid
from pathlib import Path

import httpx
import pytest
from temporalio.client import Client, WorkflowHandle
from temporalio.exceptions import ApplicationError

from stores.archive import FileArchive
from tests.faults.cases import (
    accept, decide, execute_measures, measures_started, notice_events, open_assistance_case, open_transfer_case,
    reference_of, withdraw_transfer,
)
from tests.faults.support import (
    CLI, activity_runs, bounded, history, notice_of, pending_activities, start_worker, worker_env,
)
from tests.support import DevServer, Processes, Receiver, free_port, key, until
from workflows.assistance import AssistanceWorkflow
from workflows.transfer import TransferWorkflow

pytestmark = pytest.mark.asyncio(loop_scope="session")


def queue() -> str:
    return f"deps-{uuid.uuid4().hex[:8]}"


async def test_a_receiver_failing_for_a_while_gets_every_notice_with_backoff_while_the_case_goes_on(
        server: DevServer, client: Client, procs: Processes, tmp_path: Path) -> None:
    q = queue()
    with Receiver(keep_alive=True) as receiver:
        env = worker_env(server, q, tmp_path, webhooks=receiver.webhooks_file(tmp_path / "hooks.json"))
        await start_worker(procs, env)
        failing_until = time.monotonic() + 5.0  # both webhooks answer 503 for 5 s
        receiver.policy = lambda a: (503 if a.arrived < failing_until else 204, 0.0)
        handle = await open_transfer_case(client, q)
        ref = reference_of(handle)

        # the case does not wait for its notices: a decision is taken while every delivery fails
        decided = await decide(handle, "KZ")
        assert [d.state for d in decided.decisions] == ["KZ"]
        assert time.monotonic() < failing_until and receiver.processed(ref) == {}

        # the UI shows each notice being retried, and why
        async def retried() -> list:
            pending = [p for p in pending_activities(await handle.describe()) if p.activity_type.name == "notify"]
            return pending if len(pending) == 3 and all(p.attempt >= 2 for p in pending) else []
        for p in await until(retried, "the three notices to be retried", 10):
            assert p.last_failure.application_failure_info.type == "webhook_unavailable"
            assert not p.last_failure.application_failure_info.non_retryable

        await until(lambda: len(receiver.processed(ref)) == 3, "every notice delivered once the webhooks answer", 20)
        view = await until(lambda: _notices_recorded(handle, 3), "the deliveries recorded in the case", 10)
        assert notice_events(view) == {"notice_action_requested": 2, "notice_decision_recorded": 1}
        assert view.stage == "awaiting_consents"

        # each notice: the same bytes and key on every attempt, 503 until the webhook works, then 204
        # once; the waits between attempts grow (2 s, then 4 s: backoff coefficient 2)
        for arrivals in receiver.by_key(ref).values():
            assert [a.status for a in arrivals][-1] == 204 and all(a.status == 503 for a in arrivals[:-1])
            assert [a.attempt for a in arrivals] == list(range(1, len(arrivals) + 1))
            assert len({a.body for a in arrivals}) == 1 and len(arrivals) >= 2
            gaps = [b.arrived - a.arrived for a, b in zip(arrivals, arrivals[1:])]
            assert gaps[0] >= 1.5 and all(later > earlier * 1.5 for earlier, later in zip(gaps, gaps[1:])), gaps
        assert max(len(arrivals) for arrivals in receiver.by_key(ref).values()) >= 3

        closed = await withdraw_transfer(handle)
        assert closed.stage == "withdrawn"
        await bounded(handle.result(), 20, "the case to close")


async def _notices_recorded(handle, n: int):
    view = await handle.query(TransferWorkflow.view)
    return view if sum(notice_events(view).values()) >= n else None


async def test_an_archive_failing_for_a_while_is_retried_until_it_works_while_the_case_goes_on(
        server: DevServer, client: Client, procs: Processes, tmp_path: Path) -> None:
    q = queue()
    archive = tmp_path / "archive"
    archive.mkdir()
    blocker = archive / "transfer"
    blocker.write_text("not a directory")  # where the transfers' archive directory should be
    with Receiver(keep_alive=True) as receiver:
        env = worker_env(server, q, tmp_path, webhooks=receiver.webhooks_file(tmp_path / "hooks.json"),
                         archive_dir=archive)
        await start_worker(procs, env)
        handle = await open_transfer_case(client, q)
        ref = reference_of(handle)
        closed = await withdraw_transfer(handle)  # the act is taken; the case closes
        assert closed.stage == "withdrawn"

        async def archive_retried() -> list:
            pending = [p for p in pending_activities(await handle.describe()) if p.activity_type.name == "archive_case"]
            return pending if pending and pending[0].attempt >= 3 else []
        [pending] = await until(archive_retried, "archive_case to be retried", 15)
        info = pending.last_failure.application_failure_info
        assert (info.type, info.non_retryable) == ("FileExistsError", False)

        # meanwhile the case is closed for everyone: its view says so, the closing notices go out
        await until(lambda: len(receiver.processed(ref)) == 4, "the closing notices", 15)
        view = await handle.query(TransferWorkflow.view)
        assert (view.stage, view.outcome) == ("withdrawn", "withdrawn")

        blocker.unlink()  # the archive works again
        result = await bounded(handle.result(), 30, "the archive to be written at the next retry")
        assert result.stage == "withdrawn"
        archived = await FileArchive(archive, client.data_converter.payload_codec).read("transfer", ref)
        assert archived is not None and archived.view["stage"] == "withdrawn"
        [run] = activity_runs(await history(handle), "archive_case")
        assert run.outcome == "completed" and run.attempt >= 3


async def test_a_webhook_that_rejects_notices_fails_them_at_once_non_retryable_and_the_case_goes_on(
        server: DevServer, client: Client, procs: Processes, tmp_path: Path) -> None:
    q = queue()
    with Receiver(keep_alive=True) as receiver:
        # a configuration that passes validation, but uz-gpo's endpoint refuses everything with 400
        receiver.policy = lambda a: (400 if a.path == "/uz-gpo" else 204, 0.0)
        env = worker_env(server, q, tmp_path, webhooks=receiver.webhooks_file(tmp_path / "hooks.json"))
        await start_worker(procs, env)
        handle = await open_transfer_case(client, q)
        ref = reference_of(handle)
        await decide(handle, "KZ")
        moved = await decide(handle, "UZ")
        assert moved.stage == "awaiting_handover"
        closed = await withdraw_transfer(handle)
        view = await bounded(handle.result(), 20, "the case to close")
        assert closed.stage == view.stage == "withdrawn"

    # uz-gpo's notices: action requested, KZ's decision recorded, case closed — each tried once
    rejected = [a for a in receiver.received(ref) if a.path == "/uz-gpo"]
    assert sorted(a.notice[0] for a in rejected) == ["action_requested", "case_closed", "decision_recorded"]
    assert all(a.status == 400 and a.attempt == 1 for a in rejected)
    assert len({a.key for a in rejected}) == 3
    failed = [e.detail for e in view.events if e.action == "notice_failed"]
    assert sorted(failed) == ["action_requested to uz-gpo", "case_closed to uz-gpo", "decision_recorded to uz-gpo"]

    # in history (the UI): ActivityTaskFailed, type webhook_rejected, non-retryable
    runs = [r for r in activity_runs(await history(handle), "notify") if r.outcome == "failed"]
    assert len(runs) == 3
    for run in runs:
        failure = run.closed.activity_task_failed_event_attributes.failure
        assert failure.application_failure_info.type == "webhook_rejected"
        assert failure.application_failure_info.non_retryable
        assert failure.message == "Encoded failure"  # the message travels encrypted, the type does not
        decoded = await client.data_converter.decode_failure(failure)
        assert isinstance(decoded, ApplicationError) and "rejected the notice with 400" in decoded.message
        assert (await notice_of(client, run)).recipient == "uz-gpo"


async def test_an_unusable_webhooks_file_stops_the_worker_at_start_naming_the_entry(
        server: DevServer, procs: Processes, tmp_path: Path) -> None:
    hooks = tmp_path / "hooks.json"
    hooks.write_text(json.dumps({"uz-gpo": {"url": "ftp://127.0.0.1:9/hooks", "secret": "uz-gpo-secret-0123456789"}}))
    proc = procs.spawn("worker", [*CLI, "worker"], worker_env(server, queue(), tmp_path, webhooks=hooks))
    assert await proc.exited(30) != 0
    log = proc.log_text()
    assert "WebhookConfigError" in log and str(hooks) in log and "'uz-gpo'" in log and "http://" in log
    assert "worker started" not in log


async def close_with_an_archive_that_cannot_exist(server: DevServer, client: Client, procs: Processes,
                                                  tmp_path: Path) -> tuple[WorkflowHandle, dict[str, str]]:
    """A transfer withdrawn by a worker whose TREATYFLOW_ARCHIVE_DIR lies under a regular file."""
    (tmp_path / "a-file").write_text("not a directory")
    env = worker_env(server, queue(), tmp_path, archive_dir=tmp_path / "a-file" / "archive")
    await start_worker(procs, env)
    handle = await open_transfer_case(client, env["TREATYFLOW_TASK_QUEUE"])
    assert (await withdraw_transfer(handle)).stage == "withdrawn"
    return handle, env


async def test_an_archive_directory_that_cannot_exist_fails_the_archive_non_retryable_visible_in_history(
        server: DevServer, client: Client, procs: Processes, tmp_path: Path) -> None:
    """TREATYFLOW_ARCHIVE_DIR under a regular file (NotADirectoryError): a configuration that no retry
    will fix. The archive activity fails at once as ``archive_misconfigured``, non-retryable, visible
    in the history; the case records ``archive_failed`` and still closes (readable while retained)."""
    handle, _ = await close_with_an_archive_that_cannot_exist(server, client, procs, tmp_path)
    result = await bounded(handle.result(), 20, "the case's workflow to end")
    assert result.stage == "withdrawn"
    assert [e.detail for e in result.events if e.action == "archive_failed"] == ["archive_misconfigured"]

    [run] = activity_runs(await history(handle), "archive_case")
    failure = run.closed.activity_task_failed_event_attributes.failure
    assert (run.outcome, run.attempt) == ("failed", 1)
    assert failure.application_failure_info.type == "archive_misconfigured"
    assert failure.application_failure_info.non_retryable


async def test_a_case_whose_archive_failed_is_read_from_its_workflow(
        server: DevServer, client: Client, procs: Processes, tmp_path: Path) -> None:
    handle, env = await close_with_an_archive_that_cannot_exist(server, client, procs, tmp_path)
    await bounded(handle.result(), 20, "the case's workflow to end")
    port = free_port()
    procs.spawn("api", [*CLI, "api"], {**env, "TREATYFLOW_MODE": "dev", "TREATYFLOW_API_PORT": str(port)})
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=20,
                                 headers=key("kz-gpo")) as http:
        async def serving() -> bool:
            try:
                return (await http.get("/healthz")).status_code == 200
            except httpx.TransportError:
                return False
        await until(serving, "the API to serve", 30, every=0.2)
        answer = await http.get(f"/v1/transfers/{reference_of(handle)}")
    assert answer.status_code == 200, answer.text  # the workflow's last view, while it is retained
    assert answer.json()["stage"] == "withdrawn"


async def test_a_failing_receiver_does_not_hold_up_a_request_whose_measures_have_all_reported(
        server: DevServer, client: Client, procs: Processes, tmp_path: Path) -> None:
    q = queue()
    with Receiver(keep_alive=True) as receiver:
        receiver.policy = lambda a: (503 if a.path == "/kz-afm" else 204, 0.0)  # m1's executing authority
        env = worker_env(server, q, tmp_path, webhooks=receiver.webhooks_file(tmp_path / "hooks.json"))
        await start_worker(procs, env)
        handle = await open_assistance_case(client, q)
        await accept(handle)
        await measures_started(handle)
        await execute_measures(client, handle)

        async def moved_on():
            view = await handle.query(AssistanceWorkflow.view)
            return view if view.stage != "executing" else None
        view = await until(moved_on, "the request to reach its outcome with every measure reported", 6)
        assert (view.stage, view.outcome) == ("completed", "completed")
        assert view.results is not None and len(view.results.items) == 3
        # all the while, m1's executing authority refused every delivery: its notice is still retried
        assert not [a for a in receiver.received() if a.path == "/kz-afm" and a.status == 204]
