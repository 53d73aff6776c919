"""What the fault tests share beyond tests.support (the webhook receiver, the dev server,
subprocesses ended by their owner): the codec key every process is given, the worker as a
subprocess, and readers of a workflow's history (pending timers, activity attempts and failures)."""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import Awaitable
from dataclasses import dataclass
from datetime import timezone
from pathlib import Path
from typing import Any, TypeVar

from temporalio.api.enums.v1 import EventType
from temporalio.api.history.v1 import HistoryEvent
from temporalio.client import Client, WorkflowHandle

from stores.signing import SigningKeys, directory_states
from tests.support import DevServer, Proc, Processes, base_env, codec_keys_env
from treatyflow.codec import CodecKeys

T = TypeVar("T")

# One random codec key for the fault tests, given to every process through the environment.
KEYS = CodecKeys(current="faults", keys={"faults": os.urandom(32)})
KEYS_ENV = codec_keys_env(KEYS)
# and the states' signing keys, the same for every worker and API of the fault tests
SIGNING_KEYS_ENV = SigningKeys.generate(directory_states()).to_json()


async def bounded(call: Awaitable[T], seconds: float, what: str) -> T:
    try:
        return await asyncio.wait_for(call, timeout=seconds)
    except asyncio.TimeoutError:
        raise AssertionError(f"timed out after {seconds:.0f} s waiting for {what}") from None


def worker_env(server: DevServer, task_queue: str, data_dir: Path, *, webhooks: Path | None = None,
               archive_dir: Path | None = None, **extra: str) -> dict[str, str]:
    env = base_env()
    env.update({
        "TEMPORAL_ADDRESS": server.address,
        "TREATYFLOW_TASK_QUEUE": task_queue,
        "TREATYFLOW_CODEC_KEYS": KEYS_ENV,
        "TREATYFLOW_SIGNING_KEYS": SIGNING_KEYS_ENV,
        "TREATYFLOW_DATA_DIR": str(data_dir),
        "TREATYFLOW_ARCHIVE_DIR": str(archive_dir or data_dir / "archive"),
        "TREATYFLOW_LOG_LEVEL": "INFO",
        "TREATYFLOW_GRACEFUL_SHUTDOWN": "10",  # production's 45 s would only lengthen these tests
    })
    if webhooks is not None:
        env["TREATYFLOW_WEBHOOKS_FILE"] = str(webhooks)
    env.update(extra)
    return env


CLI = [sys.executable, "-m", "treatyflow.cli"]


async def start_worker(procs: Processes, env: dict[str, str], name: str = "worker") -> Proc:
    """``treatyflow worker`` as a subprocess, once it has connected and started polling."""
    proc = procs.spawn(name, [*CLI, "worker"], env)
    await proc.logged("worker started")
    return proc


# ---- a workflow's history -------------------------------------------------------------------------

async def history(handle: WorkflowHandle) -> list[HistoryEvent]:
    return list((await handle.fetch_history()).events)


def pending_timers(events: list[HistoryEvent]) -> dict[str, HistoryEvent]:
    """Timers started and neither fired nor cancelled, by timer id."""
    started = {e.timer_started_event_attributes.timer_id: e for e in events
               if e.event_type == EventType.EVENT_TYPE_TIMER_STARTED}
    for e in events:
        if e.event_type == EventType.EVENT_TYPE_TIMER_FIRED:
            started.pop(e.timer_fired_event_attributes.timer_id, None)
        elif e.event_type == EventType.EVENT_TYPE_TIMER_CANCELED:
            started.pop(e.timer_canceled_event_attributes.timer_id, None)
    return started


@dataclass
class ActivityRun:
    """One scheduled activity and how it ended in history (retries are not in history: the
    attempt of its ActivityTaskStarted event is the last one)."""

    name: str
    scheduled: HistoryEvent
    started: HistoryEvent | None = None
    closed: HistoryEvent | None = None
    input: Any = None

    @property
    def outcome(self) -> str | None:
        return None if self.closed is None else EventType.Name(self.closed.event_type).removeprefix(
            "EVENT_TYPE_ACTIVITY_TASK_").lower()

    @property
    def attempt(self) -> int:
        return self.started.activity_task_started_event_attributes.attempt if self.started else 0

    @property
    def identity(self) -> str:
        return self.started.activity_task_started_event_attributes.identity if self.started else ""


def activity_runs(events: list[HistoryEvent], name: str | None = None) -> list[ActivityRun]:
    runs: dict[int, ActivityRun] = {}
    for e in events:
        if e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
            runs[e.event_id] = ActivityRun(e.activity_task_scheduled_event_attributes.activity_type.name, e)
        elif e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_STARTED:
            runs[e.activity_task_started_event_attributes.scheduled_event_id].started = e
        else:
            for attr in ("activity_task_completed_event_attributes", "activity_task_failed_event_attributes",
                         "activity_task_timed_out_event_attributes", "activity_task_canceled_event_attributes"):
                if e.HasField(attr):
                    runs[getattr(e, attr).scheduled_event_id].closed = e
    return [r for r in runs.values() if name is None or r.name == name]


async def notice_of(client: Client, run: ActivityRun) -> Any:
    """The Notice a ``notify`` activity was scheduled with (decoded with the test key)."""
    from domain.case import Notice

    payloads = run.scheduled.activity_task_scheduled_event_attributes.input.payloads
    [notice] = await client.data_converter.decode(payloads, [Notice])
    return notice


def pending_activities(description: Any) -> list[Any]:
    return list(description.raw_description.pending_activities)


async def snapshot(handle: WorkflowHandle, query: Any | None = None) -> dict[str, Any]:
    """What a case shows from outside: its status, search attributes, pending timers (id → started
    event id, duration, fire time) and, through a worker, its view without the notice events
    (a notice delivered meanwhile adds one) and without the letters to the sentenced person (the
    same)."""
    from workflows import search_attributes

    described = await handle.describe()
    timers = {tid: (e.event_id, e.timer_started_event_attributes.start_to_fire_timeout.ToTimedelta(),
                    e.event_time.ToDatetime(timezone.utc)
                    + e.timer_started_event_attributes.start_to_fire_timeout.ToTimedelta())
              for tid, e in pending_timers(await history(handle)).items()}
    state: dict[str, Any] = {
        "status": described.status,
        "attributes": {k.name: described.typed_search_attributes.get(k) for k in search_attributes.ALL},
        "timers": timers,
    }
    if query is not None:
        view = (await handle.query(query)).model_dump(mode="json")
        view["events"] = [e for e in view.get("events", []) if not e["action"].startswith("notice_")
                          and not (e["action"] == "document_added" and e["actor"] == "system")]
        # the letters to the person are written in the background like the notices: one may land meanwhile
        view["documents"] = [d for d in view.get("documents", []) if d["type"] != "person_notice"]
        state["view"] = view
    return state
