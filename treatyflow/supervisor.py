"""Keeping the processes of `treatyflow up` running once they are up. A child that exits, however it
exits (a crash, an exit code, the OOM killer's SIGKILL), is said in one line with its exit status
and started again after a backoff — the first delay (TREATYFLOW_RESTART_DELAY, 1 s), doubling at
each death up to 30 s, from the first delay again once it had stayed up a minute — while the others
keep running. A child that needs another (the worker and the API need the Temporal server) starts
again only once that one answers. A stop request is seen within a quarter of a second, also during
a backoff wait; the caller then stops the children in order (``stop_in_order``)."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import signal
import subprocess
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

MAX_DELAY = 30.0  # seconds: the longest wait before a child that keeps dying is started again
STABLE_AFTER = 60.0  # seconds up after which a child's next death waits the first delay again
TICK = 0.25  # seconds between two looks at the children and at the stop request
STOP_WAIT = 30.0  # seconds a child may take to stop after SIGTERM before it is killed (the worker's graceful shutdown: 20 s under `up`)


@dataclasses.dataclass(eq=False)
class Child:
    """One process of `up`, and how to start it again. ``needs``: the child that must be running
    and answering before this one is started again; ``ready``: returns once this child answers after
    a restart (raises to be called again), for those that need it."""

    name: str  # "the worker": the lines that name it read "treatyflow: the worker ..."
    where: str  # where its output goes
    spawn: Callable[[], subprocess.Popen]
    log: Path | None = None  # its own log file, appended to at each start
    needs: Child | None = None
    ready: Callable[[], Awaitable[object]] | None = None
    process: subprocess.Popen = dataclasses.field(init=False)
    log_offset: int = 0  # where this start's part of ``log`` begins
    started_at: float = 0.0

    def start(self) -> Child:
        self.log_offset = self.log.stat().st_size if self.log is not None and self.log.exists() else 0
        self.process = self.spawn()
        self.started_at = time.monotonic()
        return self

    def logged(self) -> list[str]:
        """The lines this start of the child logged (the first 64 KiB of them)."""
        if self.log is None:
            return []
        try:
            with open(self.log, "rb") as f:
                f.seek(self.log_offset)
                text = f.read(65536).decode(errors="replace")
        except OSError:
            return []
        return [line.strip() for line in text.splitlines() if line.strip()]

    def last_error(self) -> str:
        """``: <its error>`` from its log (a port it could not bind, ...), in a few words, or nothing."""
        lines = self.logged()
        for wanted in ("address already in use", "Error", "error", "panic:"):
            if found := [line for line in lines if wanted in line]:
                return f": {found[0][:300]}"
        return f": {lines[-1][:300]}" if lines else ""


def exit_status(code: int) -> str:
    if code < 0:
        try:
            return f"was killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"was killed by signal {-code}"
    return f"exited with code {code}"


class Backoff:
    """The waits before a child is started again: ``first`` doubling up to ``cap``; a child that had
    stayed up ``stable_after`` seconds starts from ``first`` again."""

    def __init__(self, first: float, cap: float = MAX_DELAY, stable_after: float = STABLE_AFTER) -> None:
        self.first, self.cap, self.stable_after = max(first, 0.0), max(cap, first), stable_after
        self.next = self.first

    def after(self, up_for: float) -> float:
        """The wait after a death of a child that had been up ``up_for`` seconds."""
        if up_for >= self.stable_after:
            self.next = self.first
        delay, self.next = self.next, min(self.next * 2, self.cap)
        return delay


@dataclasses.dataclass(eq=False)
class _Watch:
    child: Child
    backoff: Backoff
    restart_at: float | None = None  # set while it is dead and waits to be started again
    answering: bool = True  # it is up from `up`'s start; after a restart, once ``ready`` returned
    probe: asyncio.Task | None = None
    said_waiting: bool = False


class Supervisor:
    """Watches ``children`` (all running and answering when it begins) until ``stop_asked()``."""

    def __init__(self, children: list[Child], *, stop_asked: Callable[[], bool], say: Callable[[str], None],
                 first_delay: float, cap: float = MAX_DELAY, stable_after: float = STABLE_AFTER) -> None:
        self.watches = [_Watch(child, Backoff(first_delay, cap, stable_after)) for child in children]
        self.stop_asked, self.say = stop_asked, say

    async def run(self) -> None:
        try:
            while not self.stop_asked():
                now = time.monotonic()
                for watch in self.watches:
                    if watch.restart_at is None and watch.child.process.poll() is not None:
                        self._died(watch, now)
                for watch in self.watches:
                    if watch.restart_at is not None and now >= watch.restart_at:
                        self._start_again(watch)
                await asyncio.sleep(TICK)
        finally:
            for watch in self.watches:
                await self._cancel_probe(watch)

    def _died(self, watch: _Watch, now: float) -> None:
        child, code = watch.child, watch.child.process.returncode
        delay = watch.backoff.after(now - child.started_at)
        watch.restart_at, watch.answering, watch.said_waiting = now + delay, False, False
        if watch.probe is not None:
            watch.probe.cancel()  # collected by ``_cancel_probe`` once it has stopped
        self.say(f"treatyflow: {child.name} (pid {child.process.pid}) {exit_status(code)}"
                 f"{child.last_error() if code > 0 else ''}; starting it again in {delay:g} s ({child.where})")

    def _start_again(self, watch: _Watch) -> None:
        child = watch.child
        needed = next((w for w in self.watches if w.child is child.needs), None)
        if needed is not None and (needed.restart_at is not None or not needed.answering):
            if not watch.said_waiting:
                self.say(f"treatyflow: {child.name} starts again once {needed.child.name} answers")
                watch.said_waiting = True
            return
        try:
            child.start()
        except OSError as err:  # no process at all (a binary gone, no memory to fork): later, as a death
            self.say(f"treatyflow: {child.name} could not be started again: {err}")
            watch.restart_at = time.monotonic() + watch.backoff.after(0.0)
            return
        watch.restart_at = None
        self.say(f"treatyflow: {child.name} started again (pid {child.process.pid})")
        if child.ready is not None:
            watch.probe = asyncio.ensure_future(self._answering(watch, child.process))

    async def _answering(self, watch: _Watch, process: subprocess.Popen) -> None:
        assert watch.child.ready is not None
        while True:
            try:
                await watch.child.ready()
                break
            except Exception:  # noqa: BLE001 - not yet: ask again (a death cancels this)
                await asyncio.sleep(TICK)
        if watch.child.process is process and process.poll() is None:
            watch.answering = True
            self.say(f"treatyflow: {watch.child.name} answers again")

    @staticmethod
    async def _cancel_probe(watch: _Watch) -> None:
        if watch.probe is not None and not watch.probe.done():
            watch.probe.cancel()
            with contextlib.suppress(BaseException):
                await watch.probe


def stop_in_order(children: list[Child]) -> None:
    """SIGTERM each running child in list order and wait for it (``STOP_WAIT`` s, then SIGKILL);
    a child waiting to be started again is already gone."""
    for child in children:
        if child.process.poll() is None:
            child.process.send_signal(signal.SIGTERM)
            try:
                child.process.wait(timeout=STOP_WAIT)
            except subprocess.TimeoutExpired:
                child.process.kill()
                child.process.wait()
