"""The worker process killed with SIGKILL in the middle of cases, and started again; two workers on
one task queue, one of them killed.

Webhook receivers hold their answer to a first attempt for a few seconds, so notices are in flight
(``notify`` activities running) when a worker dies; a killed attempt is retried once its 30 s
start-to-close timeout has passed. The receivers count deliveries by Idempotency-Key the way a real
receiver drops repeats. The two-worker scenario runs in the background, beside the single-worker
one, so that their 30 s waits overlap."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest
import pytest_asyncio
from temporalio.client import Client, WorkflowExecutionStatus, WorkflowHandle

from stores.archive import ArchiveReceipt, FileArchive
from tests.faults.cases import (
    accept, confirm_handover, decide, execute_measures, handover_arranged, measures_started, notice_events,
    open_assistance_case, open_transfer_case, outcome, reference_of, withdraw_assistance,
)
from tests.faults.support import (
    activity_runs, bounded, history, pending_activities, snapshot, start_worker, worker_env,
)
from tests.support import DevServer, Proc, Processes, Receiver, until
from treatyflow.cases import measure_handle
from workflows.assistance import AssistanceWorkflow
from workflows.measure import MeasureWorkflow
from workflows.transfer import TransferWorkflow

pytestmark = pytest.mark.asyncio(loop_scope="session")

HOLD = 3.0  # seconds a receiver holds its answer to a first attempt: a notice is in flight that long
KILLED_ATTEMPT_RETRY = 30 + 2 + 10  # start-to-close of a killed attempt, the retry interval, margin


def in_flight(receiver: Receiver, ref: str, event: str) -> list:
    return [a for a in receiver.in_flight(ref) if a.notice[0] == event]


async def letter_stored(handle: WorkflowHandle) -> bool:
    view = await handle.query(TransferWorkflow.view)
    return any(d.type == "person_notice" for d in view.documents)


def archive_files(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file())


class Faults:
    """Kills the current worker of a task queue at a named point and starts a new one; checks that
    the cases, seen from the server alone and then through the new worker, are where they were."""

    def __init__(self, procs: Processes, env: dict[str, str]) -> None:
        self.procs = procs
        self.env = env
        self.workers: list[Proc] = []
        self.points: list[str] = []
        self.began = time.monotonic()

    async def start(self) -> None:
        self.workers.append(await start_worker(self.procs, self.env, f"worker-{len(self.workers) + 1}"))

    async def kill_and_restart(self, point: str, cases: list[tuple[WorkflowHandle, object]]) -> None:
        before = [await snapshot(h, q) for h, q in cases]
        self.workers[-1].kill()
        self.points.append(point)
        print(f"killed at {time.monotonic() - self.began:.1f} s: {point}")
        # with no worker at all, the server keeps each case running, its timers pending
        for (handle, _), seen in zip(cases, before):
            now = await snapshot(handle)
            assert now["status"] == WorkflowExecutionStatus.RUNNING, (point, handle.id)
            assert (now["attributes"], now["timers"]) == (seen["attributes"], seen["timers"]), (point, handle.id)
        await self.start()
        print(f"restarted at {time.monotonic() - self.began:.1f} s")  # (the first query then waits out
        # the dead worker's sticky queue: 10 s)
        # through the new worker: the same stage, pending actions with the same due dates, same timers
        for (handle, query), seen in zip(cases, before):
            assert await snapshot(handle, query) == seen, (point, handle.id)


def hold_all_but_measures(arrival) -> tuple[int, float]:
    """Every first attempt held HOLD seconds except the measures' notices: a measure workflow ends
    only once its notices are delivered, and a killed attempt would hold its request up for 30 s."""
    return 204, 0.0 if arrival.event["data"]["measure_id"] or arrival.attempt > 1 else HOLD


async def both_kinds(client: Client, queue: str, receiver: Receiver, archive: Path,
                     fault: Callable[[str, list], Awaitable[None]] | None) -> dict[str, object]:
    """A transfer to its handover and a request for assistance through its three measures, with
    ``fault`` called at two points: (1) both cases waiting on a person, reminder timers pending,
    consent and review requests in flight; (2) the transfer closing (archive written, closing
    notices in flight) while the request's measures wait on the court and the executing
    authorities, each measure with its reminder timer pending."""
    t, a = await asyncio.gather(open_transfer_case(client, queue), open_assistance_case(client, queue))
    t_ref, a_ref = reference_of(t), reference_of(a)
    measures = [measure_handle(client, a_ref, m) for m in ("m1", "m2", "m3")]

    await until(lambda: len(in_flight(receiver, t_ref, "action_requested")) == 2
                and len(in_flight(receiver, a_ref, "action_requested")) == 1, "the requests for action in flight")
    # the eligibility letter stored before the fault: a letter killed in flight holds the case's
    # archive back by its 30 s start-to-close timeout, past the closing notices this test watches
    # (letters are rendered in a process of the worker's own, which a loaded machine starts slowly)
    await until(lambda: letter_stored(t), "the eligibility letter", 60)
    if fault:
        await fault("waiting on a person, reminder timers pending, notify in flight",
                    [(t, TransferWorkflow.view), (a, AssistanceWorkflow.view)])

    async def to_the_handover() -> None:
        await decide(t, "KZ")
        await decide(t, "UZ")
        await handover_arranged(t)
        await confirm_handover(t)

    async def to_the_measures() -> None:
        await accept(a)
        await measures_started(a)

    await asyncio.gather(to_the_handover(), to_the_measures())
    archived = {t_ref: archive / "transfer" / f"{t_ref}.json", a_ref: archive / "assistance" / f"{a_ref}.json"}
    await until(lambda: archived[t_ref].exists() and len(in_flight(receiver, t_ref, "case_closed")) == 2,
                "the transfer's archive and closing notices",
                # the case archives once its letters to the person are stored: a letter whose attempt
                # died with the first worker is retried only after its start-to-close timeout
                KILLED_ATTEMPT_RETRY + 150)
    written = {t_ref: (archived[t_ref].stat().st_ino, archived[t_ref].stat().st_mtime_ns)}
    if fault:
        await fault("transfer closing (archive written, notify in flight); measures waiting, timers pending",
                    [(t, TransferWorkflow.view), (a, AssistanceWorkflow.view),
                     *[(m, MeasureWorkflow.view) for m in measures]])

    await execute_measures(client, a)
    await until(lambda: archived[a_ref].exists(), "the request's archive", 60)
    written[a_ref] = (archived[a_ref].stat().st_ino, archived[a_ref].stat().st_mtime_ns)
    t_view, a_view = await bounded(asyncio.gather(t.result(), a.result()), KILLED_ATTEMPT_RETRY + 20,
                                   "both cases to close")
    return {"handles": (t, a), "views": (t_view, a_view), "archived": archived, "written": written}


async def test_sigkill_mid_case_reaches_the_same_end_without_duplicates(
        server: DevServer, client: Client, procs: Processes, tmp_path: Path,
        two_workers_meanwhile: asyncio.Task) -> None:  # (started alongside, checked by its own test)
    with Receiver(keep_alive=True) as faulted_rx, Receiver(keep_alive=True) as control_rx:
        faulted_rx.policy = control_rx.policy = hold_all_but_measures
        envs = {}
        for name, rx in (("faulted", faulted_rx), ("control", control_rx)):
            (tmp_path / name).mkdir()
            envs[name] = worker_env(server, f"{name}-{uuid.uuid4().hex[:8]}", tmp_path / name,
                                    webhooks=rx.webhooks_file(tmp_path / name / "hooks.json"))
        faults = Faults(procs, envs["faulted"])
        await asyncio.gather(faults.start(), start_worker(procs, envs["control"], "control-worker"))
        control, faulted = await asyncio.gather(
            both_kinds(client, envs["control"]["TREATYFLOW_TASK_QUEUE"], control_rx,
                       tmp_path / "control" / "archive", None),
            both_kinds(client, envs["faulted"]["TREATYFLOW_TASK_QUEUE"], faulted_rx,
                       tmp_path / "faulted" / "archive", faults.kill_and_restart))
        await asyncio.sleep(0.5)  # the last answers leave the receivers
        print(f"both cases closed at {time.monotonic() - faults.began:.1f} s")

    assert len(faults.points) == 2 and len(faults.workers) == 3

    # the same end as without the fault: stage, outcome, decisions, handover, measures, evidence
    # manifest, and the same audit trail (as a multiset of actor, action, detail)
    for with_fault, without in zip(faulted["views"], control["views"]):
        assert outcome(with_fault) == outcome(without)
    t_view, a_view = faulted["views"]
    assert (t_view.stage, a_view.stage) == ("transferred", "completed")

    # every notice reached its receiver and was acted on once: one Idempotency-Key per notice,
    # the same bytes on every repeat; repeats happened (deliveries cut short by the kills)
    processed = faulted_rx.processed()
    assert sum(notice_events(v)["notice_failed"] for v in faulted["views"]) == 0
    # each notice in a trail was delivered once; a measure may also deliver notices after its end
    assert len(processed) >= sum(sum(notice_events(v).values()) for v in faulted["views"])
    assert Counter(a.notice for a in processed.values()) == Counter(a.notice for a in control_rx.processed().values())
    repeats = {k: arrivals for k, arrivals in faulted_rx.by_key().items() if len(arrivals) > 1}
    assert len(repeats) >= 5, "the kills should have cut deliveries short"  # 3 at the first, 2 at the second
    for arrivals in faulted_rx.by_key().values():
        assert len({a.body for a in arrivals}) == 1
        assert [a.attempt for a in arrivals] == sorted(a.attempt for a in arrivals)

    # no archive written twice: one file per case, never replaced since its first write, no
    # temporary file left; archive_case completed once per case in history
    archive_root = tmp_path / "faulted" / "archive"
    assert archive_files(archive_root) == sorted(faulted["archived"].values())
    for ref, path in faulted["archived"].items():
        assert (path.stat().st_ino, path.stat().st_mtime_ns) == faulted["written"][ref]
    store = FileArchive(archive_root, client.data_converter.payload_codec)
    for handle, view in zip(faulted["handles"], faulted["views"]):
        kind, ref = handle.id.split(":", 1)
        assert (await store.read(kind, ref)).view["outcome"] == view.outcome
        [run] = activity_runs(await history(handle), "archive_case")
        assert run.outcome == "completed"
        [receipt] = await client.data_converter.decode(
            run.closed.activity_task_completed_event_attributes.result.payloads, [ArchiveReceipt])
        assert receipt.written == (run.attempt == 1)


async def two_workers_one_killed(server: DevServer, procs: Processes, tmp_path: Path) -> dict[str, object]:
    """Workers A and B on one task queue; A is killed (SIGKILL) while it runs activities of the
    cases (notices in flight, handovers being arranged right after the second consent); B alone
    takes every case to its end."""
    client = await server.connect()
    queue = f"pair-{uuid.uuid4().hex[:8]}"
    with Receiver(keep_alive=True) as receiver:
        receiver.policy = lambda arrival: (204, 2.0 if arrival.attempt == 1 else 0.0)
        env = worker_env(server, queue, tmp_path, webhooks=receiver.webhooks_file(tmp_path / "hooks.json"))
        a, b = await asyncio.gather(start_worker(procs, env, "worker-a"), start_worker(procs, env, "worker-b"))
        transfers = list(await asyncio.gather(*[open_transfer_case(client, queue) for _ in range(4)]))
        requests = list(await asyncio.gather(*[open_assistance_case(client, queue) for _ in range(2)]))
        cases = transfers + requests
        # two transfers get both consents: their handover is being arranged as A is killed
        await asyncio.gather(*(decide(t, "KZ") for t in transfers[:2]))
        await asyncio.gather(*(decide(t, "UZ") for t in transfers[:2]))

        async def a_is_running_activities() -> bool:
            for handle in cases:
                if any(p.last_worker_identity.startswith(a.identity_prefix) and p.state == 2  # STARTED
                       for p in pending_activities(await handle.describe())):
                    return True
            return False
        await until(a_is_running_activities, "worker A to be running activities of these cases", 10)
        a.kill()

        # B alone takes every case to its end
        async def transfer_to_the_end(handle: WorkflowHandle, decided: bool) -> None:
            if not decided:
                await decide(handle, "KZ")
                await decide(handle, "UZ")
            await handover_arranged(handle, KILLED_ATTEMPT_RETRY)
            await confirm_handover(handle)

        async def request_to_the_end(handle: WorkflowHandle) -> None:
            await accept(handle)
            await measures_started(handle)
            await execute_measures(client, handle)

        await bounded(asyncio.gather(*(transfer_to_the_end(t, i < 2) for i, t in enumerate(transfers)),
                                     request_to_the_end(requests[0]), withdraw_assistance(requests[1])),
                      KILLED_ATTEMPT_RETRY + 15, "the acts")
        views = await bounded(asyncio.gather(*(h.result() for h in cases)), KILLED_ATTEMPT_RETRY + 20,
                              "every case to close")
        await asyncio.sleep(0.5)
        b_alive = b.alive()
    histories = [await history(h) for h in cases]
    return {"workers": (a, b), "b_alive": b_alive, "views": views, "receiver": receiver, "histories": histories,
            "archive": tmp_path / "archive"}


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def two_workers_meanwhile(server: DevServer, tmp_path_factory: pytest.TempPathFactory
                                ) -> AsyncIterator[asyncio.Task]:
    """The two-worker scenario, started in the background as the module begins: it spends most of
    its time waiting for killed attempts to time out (30 s), as the single-worker test does, so the
    two run side by side. Its own processes are killed when the module ends, whatever happened."""
    tmp = tmp_path_factory.mktemp("two-workers")
    (tmp / "logs").mkdir()
    procs = Processes(tmp / "logs")
    task = asyncio.create_task(two_workers_one_killed(server, procs, tmp))
    try:
        yield task
    finally:
        if not task.done():
            task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        procs.close()
        print(procs.report())


async def test_two_workers_on_one_queue_one_killed_the_other_finishes_the_work(
        two_workers_meanwhile: asyncio.Task) -> None:
    run = await bounded(asyncio.shield(two_workers_meanwhile), 2 * KILLED_ATTEMPT_RETRY + 30,
                        "the two-worker scenario")
    a, b = run["workers"]
    views, receiver = run["views"], run["receiver"]
    assert run["b_alive"]
    assert [v.stage for v in views] == ["transferred"] * 4 + ["completed", "withdrawn"]
    processed = receiver.processed()
    assert sum(notice_events(v)["notice_failed"] for v in views) == 0
    # every notice a request's or transfer's trail records was delivered once; a measure also
    # delivers the notices it sends after telling the request its end (those stay in its own trail)
    assert len(processed) >= sum(sum(notice_events(v).values()) for v in views)
    cases = {f"transfer:{v.reference}" if v.kind == "transfer" else f"assistance:{v.reference}" for v in views}
    assert all(any(key.startswith(case + "/") or key.startswith(case + ":") for case in cases) for key in processed)
    assert len(archive_files(run["archive"])) == len(views)

    # A's unfinished activities were finished by B (a later attempt), and workflow tasks of cases
    # that A had been running went to B
    taken_over, moved = 0, 0
    for events in run["histories"]:
        for activity in activity_runs(events):
            assert activity.outcome == "completed", (activity.name, activity.outcome)
            if activity.attempt > 1:
                assert activity.identity.startswith(b.identity_prefix)
                taken_over += 1
        workers = [e.workflow_task_started_event_attributes.identity for e in events
                   if e.HasField("workflow_task_started_event_attributes")]
        if any(w.startswith(a.identity_prefix) for w in workers) and workers[-1].startswith(b.identity_prefix):
            moved += 1
    assert taken_over >= 1 and moved >= 1
