"""1. Pipeline cost: transfer cases driven through every step to ``transferred`` against the
baseline workflow (the same activities and updates, no logic), on one worker, one server, one
run. Reported as cases/s for each and the ratio real/baseline (goal ≥ 0.9), with the CPU each
process spent per case, which says where the difference goes."""

from __future__ import annotations

import os
import subprocess
from collections import Counter
from dataclasses import dataclass
from typing import Any

from temporalio.api.enums.v1 import EventType
from temporalio.client import Client, WorkflowHandle

from benchmarks.baseline import ACTIVITIES, UPDATES, baseline_workflow_id
from benchmarks.harness import Stack, Timings, cpu_seconds, drive
from benchmarks.lifecycle import baseline, real_direct
from treatyflow.cases import transfer_handle

COUNTED = {
    "activities": EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED,
    "updates": EventType.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_ACCEPTED,
    "workflow_tasks": EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED,
    "timers": EventType.EVENT_TYPE_TIMER_STARTED,
    "search_attribute_upserts": EventType.EVENT_TYPE_UPSERT_WORKFLOW_SEARCH_ATTRIBUTES,
}


@dataclass
class Arm:
    """One side of a comparison: how many cases, the seconds they took, the CPU seconds each
    process spent meanwhile, and the call latencies."""

    cases: int = 0
    seconds: float = 0.0
    timings: Timings | None = None
    cpu: Counter | None = None

    def __post_init__(self) -> None:
        self.timings = Timings() if self.timings is None else self.timings
        self.cpu = Counter() if self.cpu is None else self.cpu

    @property
    def rate(self) -> float:
        return self.cases / self.seconds if self.seconds else 0.0

    def system_cpu_ms(self) -> float:
        """CPU per case of the system under test (everything but the driver), in ms."""
        return sum(s for name, s in self.cpu.items() if name != "driver") * 1000 / self.cases if self.cases else 0.0

    def report(self) -> dict[str, Any]:
        return {"cases": self.cases, "seconds": round(self.seconds, 2), "cases_per_s": round(self.rate, 2),
                "cpu_ms_per_case": {name: round(s * 1000 / self.cases, 1) for name, s in sorted(self.cpu.items())}
                if self.cases else {},
                "system_cpu_ms_per_case": round(self.system_cpu_ms(), 1),
                "latency_ms": self.timings.summary()}


async def measured(arm: Arm, processes: dict[str, subprocess.Popen], count: int, concurrency: int,
                   lifecycle) -> None:
    """Drive ``count`` cases and add them, their time and each process's CPU time to ``arm``."""
    before = {name: cpu_seconds(p.pid) for name, p in processes.items()}
    before["driver"] = sum(os.times()[:2])
    arm.seconds += await drive(count, concurrency, lifecycle)
    arm.cases += count
    for name, p in processes.items():
        arm.cpu[name] += cpu_seconds(p.pid) - before[name]
    arm.cpu["driver"] += sum(os.times()[:2]) - before["driver"]


def rounds_of(total: int, rounds: int) -> list[int]:
    """``total`` cases in ``rounds`` nearly equal rounds (none empty)."""
    rounds = max(1, min(rounds, total))
    return [total // rounds + (1 if i < total % rounds else 0) for i in range(rounds)]


async def history_counts(handle: WorkflowHandle) -> dict[str, int]:
    history = await handle.fetch_history()
    kinds = Counter(e.event_type for e in history.events)
    letters = sum(1 for e in history.events if e.HasField("activity_task_scheduled_event_attributes")
                  and e.activity_task_scheduled_event_attributes.activity_type.name == "write_person_notice")
    return {**{name: kinds[t] for name, t in COUNTED.items()}, "events": len(history.events),
            "history_bytes": sum(e.ByteSize() for e in history.events), "letters": letters}


async def shape(client: Client, real_ref: str, baseline_ref: str) -> dict[str, Any]:
    """What one real case and one baseline case recorded: the baseline is a fair one only if the
    activities and updates are as many — apart from the letters to the sentenced person (0.3.0,
    after the baseline's shape was fixed: the product may do more than the baseline, which never
    grows), counted on their own."""
    real = await history_counts(transfer_handle(client, real_ref))
    base = await history_counts(client.get_workflow_handle(baseline_workflow_id(baseline_ref)))
    matches = (real["activities"] - real["letters"] == base["activities"] == ACTIVITIES
               and real["updates"] == base["updates"] == UPDATES)
    return {"real": real, "baseline": base, "matches": matches}


async def pipeline(stack: Stack, task_queue: str, worker: subprocess.Popen, *, cases: int, concurrency: int,
                   rounds: int, warmup: int) -> dict[str, Any]:
    client = stack.client
    processes = {"worker": worker, "server": stack.server}
    # one of each first, alone: its history is the shape check; then a warm-up of each at full concurrency
    checked = await shape(client, await real_direct(client, task_queue, Timings()),
                          await baseline(client, task_queue, Timings()))
    await drive(warmup, concurrency, lambda i: real_direct(client, task_queue, Timings()))
    await drive(warmup, concurrency, lambda i: baseline(client, task_queue, Timings()))
    real, base = Arm(), Arm()
    for count in rounds_of(cases, rounds):  # alternated, so drift on the machine falls on both
        await measured(real, processes, count, concurrency, lambda i: real_direct(client, task_queue, real.timings))
        await measured(base, processes, count, concurrency, lambda i: baseline(client, task_queue, base.timings))
    return {"concurrency": concurrency, "rounds": len(rounds_of(cases, rounds)), "warmup": warmup,
            "shape": checked, "real": real.report(), "baseline": base.report(),
            "ratio": round(real.rate / base.rate, 3) if base.rate else None,
            "cpu_ratio": cpu_ratio(base, real)}


def cpu_ratio(reference: Arm, measured_arm: Arm) -> float | None:
    """The reference's CPU per case over the measured side's (server, worker, API: not the
    driver): the throughput ratio the machine would show if CPU were all that limited it. Less
    sensitive to other work on a shared machine than the ratio of rates."""
    mine = measured_arm.system_cpu_ms()
    return round(reference.system_cpu_ms() / mine, 3) if mine else None
