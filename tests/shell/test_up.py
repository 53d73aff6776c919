"""`treatyflow up` (what `make run` runs) stops everything on SIGINT, SIGTERM and SIGHUP, its
children die with it however it dies (SIGKILL of `up`, SIGKILL of its parent as of `make`), and a
port already taken, a second `up` on the same data dir or a child that dies while starting is said
in one line on stderr, with a non-zero exit, before anything claims to be up.

Real processes: each test starts at most one `up` (a dev server, a worker, an API: a few seconds on
an idle machine, up to ~90 s on a loaded one), and its `finally` kills by id every process it
recorded, whatever happened."""

from __future__ import annotations

import contextlib
import fcntl
import os
import pty
import random
import signal
import socket
import subprocess
import sys
import termios
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.support import free_ports
from tests.support.processes import cmdline as command, proc_stat as stat

REPO = Path(__file__).resolve().parents[2]
UP = [sys.executable, "-m", "treatyflow.cli", "up"]
# What `make run` is to `up`: its parent, which on SIGINT and SIGHUP waits for it (GNU make's way).
MAKE = [sys.executable, "-c", "import signal, subprocess, sys\n"
        "for sig in (signal.SIGINT, signal.SIGHUP):\n    signal.signal(sig, lambda *_: None)\n"
        "sys.exit(subprocess.call(sys.argv[1:]))"]
BANNER = "treatyflow is up"
START = 90.0  # seconds until the banner
STOP = 60.0  # seconds `up` may take to stop everything after a signal
GONE = 30.0  # seconds the children may take to die after `up` or its parent is SIGKILLed


# ---- processes, read from /proc ---------------------------------------------------------------------

def descendants(root: int) -> dict[int, int]:
    """pid -> start time of every process below ``root``."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit() and (info := stat(int(entry))):
            children.setdefault(info[0], []).append(int(entry))
    found: dict[int, int] = {}
    todo = list(children.get(root, []))
    while todo:
        pid = todo.pop()
        if (info := stat(pid)) is not None:
            found[pid] = info[2]
            todo += children.get(pid, [])
    return found


def parent_of(pid: int) -> int | None:
    info = stat(pid)
    return info[0] if info else None


def alive(pid: int, started: int) -> bool:
    """The same process (not a reused pid), and not a zombie waiting for a reaper."""
    info = stat(pid)
    return info is not None and info[2] == started and info[1] != "Z"


def still_alive(pids: dict[int, int], seconds: float) -> dict[int, str]:
    """Those of ``pids`` still running after up to ``seconds``, with their command lines."""
    deadline = time.monotonic() + seconds
    while True:
        left = {pid: command(pid) for pid, started in pids.items() if alive(pid, started)}
        if not left or time.monotonic() > deadline:
            return left
        time.sleep(0.1)


def kill(pids: dict[int, int]) -> None:
    """SIGKILL each recorded process still running, and its process group when it leads one."""
    for pid, started in pids.items():
        if alive(pid, started):
            with contextlib.suppress(OSError):
                if os.getpgid(pid) == pid:
                    os.killpg(pid, signal.SIGKILL)
                os.kill(pid, signal.SIGKILL)


# ---- `up` as a subprocess ---------------------------------------------------------------------------

def up_env(data_dir: Path, ports: list[int], **extra: str) -> dict[str, str]:
    frontend, ui, api = ports
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TREATYFLOW_", "TEMPORAL_"))}
    return {**env, "TEMPORAL_ADDRESS": f"127.0.0.1:{frontend}", "TREATYFLOW_UI_PORT": str(ui),
            "TREATYFLOW_API_PORT": str(api), "TREATYFLOW_DATA_DIR": str(data_dir), "PYTHONUNBUFFERED": "1",
            **extra}


class Output:
    """Everything written to ``fd`` (a pipe or a pty master), read by a thread so no writer blocks."""

    def __init__(self, fd: int) -> None:
        self.fd, self.data, self.done = fd, bytearray(), threading.Event()
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self) -> None:
        import select

        while not self.done.is_set():
            if select.select([self.fd], [], [], 0.1)[0]:
                try:
                    chunk = os.read(self.fd, 65536)
                except OSError:  # EIO: the pty's other side is closed
                    break
                if not chunk:
                    break
                self.data += chunk
        self.done.set()

    def stop(self) -> None:
        self.done.set()
        self.thread.join(5)

    @property
    def text(self) -> str:
        return self.data.decode(errors="replace")

    def wait_for(self, text: str, seconds: float, running: Callable[[], bool]) -> None:
        deadline = time.monotonic() + seconds
        while text not in self.text:
            assert running(), f"`up` exited before printing {text!r}:\n{self.text[-4000:]}"
            assert time.monotonic() < deadline, f"no {text!r} within {seconds:.0f} s:\n{self.text[-4000:]}"
            time.sleep(0.1)


def take_terminal() -> None:
    """In the child: make its stdin (a pty) its controlling terminal, as a shell's job has one."""
    fcntl.ioctl(0, termios.TIOCSCTTY, 0)


@dataclass
class Up:
    process: subprocess.Popen  # `up`, or the shell standing in for `make` above it
    output: Output
    terminal: int | None  # the pty master, when `up` runs in a terminal
    up_pid: int = 0
    recorded: dict[int, int] = field(default_factory=dict)  # `up` and everything under it
    closed: bool = False

    def hang_up(self) -> None:
        """Close the terminal: the kernel sends SIGHUP to its session leader, `up`."""
        assert self.terminal is not None
        self.output.stop()
        os.close(self.terminal)
        self.closed = True

    def record(self) -> dict[int, int]:
        """`up`'s dev server, worker and API, from /proc (their descendants too)."""
        children = descendants(self.up_pid)
        commands = " | ".join(command(pid) for pid in children)
        for expected in ("temporal server start-dev", "treatyflow.cli worker", "treatyflow.cli api"):
            assert expected in commands, f"no {expected!r} under `up`: {commands}"
        self.recorded.update(children)
        return children


@contextlib.contextmanager
def running_up(env: dict[str, str], *, terminal: bool = False, under_make: bool = False) -> Iterator[Up]:
    """`up` (under a parent standing for `make`, or not; in a terminal it leads, or with a pipe for
    its output) started and printing its banner; on leaving, every process recorded under it is
    SIGKILLed (by id, its process group too) and the terminal closed, whatever happened."""
    cmd = MAKE + UP if under_make else UP
    if terminal:
        master, slave = pty.openpty()
        process = subprocess.Popen(cmd, cwd=REPO, env=env, stdin=slave, stdout=slave, stderr=slave,
                                   start_new_session=True, preexec_fn=take_terminal)
        os.close(slave)
        handle = Up(process, Output(master), master)
    else:
        read, write = os.pipe()
        process = subprocess.Popen(cmd, cwd=REPO, env=env, stdin=subprocess.DEVNULL, stdout=write,
                                   stderr=subprocess.STDOUT, start_new_session=True)
        os.close(write)
        handle = Up(process, Output(read), None)
    output = handle.output
    try:
        if under_make:
            deadline = time.monotonic() + 10
            while not (under := [pid for pid in descendants(process.pid) if parent_of(pid) == process.pid]):
                assert time.monotonic() < deadline, "the parent did not start `up`"
                time.sleep(0.02)
            handle.up_pid = under[0]
        else:
            handle.up_pid = process.pid
        handle.recorded[handle.up_pid] = stat(handle.up_pid)[2]  # type: ignore[index]
        output.wait_for(BANNER, START, lambda: process.poll() is None)
        handle.record()
        yield handle
    finally:
        if process.poll() is None:
            handle.recorded.update(descendants(process.pid))
            process.kill()
        kill(handle.recorded)
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(10)
        output.stop()
        if not handle.closed:
            os.close(output.fd)


def refused(env: dict[str, str]) -> subprocess.CompletedProcess:
    """`up` expected to give up at once; whatever it started is killed if it does not."""
    process = subprocess.Popen(UP, cwd=REPO, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        stdout, stderr = process.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        kill(descendants(process.pid))
        process.kill()
        stdout, stderr = process.communicate()
        pytest.fail(f"`up` did not give up within 60 s:\n{stdout[-3000:]}\n{stderr[-3000:]}")
    return subprocess.CompletedProcess(UP, process.returncode, stdout, stderr)


# ---- the tests ----------------------------------------------------------------------------------------

@pytest.mark.parametrize("how", ["SIGINT: Ctrl-C in its terminal", "SIGTERM", "SIGHUP: its terminal closed",
                                 "SIGHUP: its terminal closed, make its session leader"])
def test_a_stop_signal_stops_up_and_every_child(tmp_path: Path, how: str) -> None:
    """A terminal's hang-up signals only its session leader: when that is `make` (a terminal or a
    task runner starting `make run` itself), make waits for `up`, which must see the hang-up."""
    with running_up(up_env(tmp_path / "data", free_ports(3)), terminal=True,
                    under_make=how.endswith("session leader")) as run:
        assert run.terminal is not None
        children = dict(run.recorded)
        began = time.monotonic()
        if how.startswith("SIGINT"):
            os.write(run.terminal, b"\x03")  # the terminal sends SIGINT to its foreground process group
        elif how == "SIGTERM":
            os.kill(run.up_pid, signal.SIGTERM)
        else:
            run.hang_up()
        try:
            code = run.process.wait(STOP)
        except subprocess.TimeoutExpired:
            pytest.fail(f"`up` still running {STOP:.0f} s after {how}:\n{run.output.text[-3000:]}")
        took = time.monotonic() - began
        assert code == 0, run.output.text[-3000:]
        assert not (left := still_alive(children, 1.0)), f"left running after {how}: {left}"
        if not how.startswith("SIGHUP"):
            run.output.wait_for("treatyflow stopped.", 5, lambda: True)
        print(f"{how}: everything stopped in {took:.1f} s")


@pytest.mark.parametrize("who", ["up", "its parent, make"])
def test_sigkill_leaves_no_child_running(tmp_path: Path, who: str) -> None:
    with running_up(up_env(tmp_path / "data", free_ports(3)), under_make=who != "up") as run:
        began = time.monotonic()
        os.kill(run.process.pid, signal.SIGKILL)
        run.process.wait(10)
        assert not (left := still_alive(run.recorded, GONE)), f"left running after SIGKILL of {who}: {left}"
        print(f"SIGKILL of {who}: everything gone in {time.monotonic() - began:.1f} s")


@pytest.mark.parametrize("which", [0, 1, 2], ids=["frontend", "ui", "api"])
def test_a_port_taken_is_said_in_one_line_before_anything_starts(tmp_path: Path, which: int) -> None:
    ports = free_ports(3)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", ports[which]))
        taken.listen()
        done = refused(up_env(tmp_path / "data", ports))
    assert done.returncode != 0
    assert len(done.stderr.splitlines()) == 1 and str(ports[which]) in done.stderr, done.stderr
    assert "already in use" in done.stderr and BANNER not in done.stdout
    assert not (tmp_path / "data" / "temporal-server.log").exists()  # no server was started


def test_a_second_up_is_refused_in_one_line_while_the_first_runs(tmp_path: Path) -> None:
    ports = free_ports(3)
    with running_up(up_env(tmp_path / "data", ports)) as run:
        same_data = refused(up_env(tmp_path / "data", ports))
        assert same_data.returncode != 0 and BANNER not in same_data.stdout
        assert len(same_data.stderr.splitlines()) == 1, same_data.stderr
        assert "already running" in same_data.stderr and f"pid {run.up_pid}" in same_data.stderr

        same_ports = refused(up_env(tmp_path / "other", ports))  # another data dir: the ports are taken
        assert same_ports.returncode != 0 and BANNER not in same_ports.stdout
        assert len(same_ports.stderr.splitlines()) == 1, same_ports.stderr
        assert f"port {ports[0]} " in same_ports.stderr and "already in use" in same_ports.stderr

        assert all(alive(pid, started) for pid, started in run.recorded.items()), "the first `up` was disturbed"
        os.kill(run.up_pid, signal.SIGTERM)
        assert run.process.wait(STOP) == 0


def test_a_child_dying_while_starting_is_named_without_a_banner(tmp_path: Path) -> None:
    broken = tmp_path / "webhooks.json"
    broken.write_text("{not json")  # the worker refuses it at start-up
    read, write = os.pipe()
    process = subprocess.Popen(UP, cwd=REPO, env=up_env(tmp_path / "data", free_ports(3),
                                                         TREATYFLOW_WEBHOOKS_FILE=str(broken)),
                               stdin=subprocess.DEVNULL, stdout=write, stderr=subprocess.PIPE,
                               start_new_session=True, text=True)
    os.close(write)
    stdout = Output(read)
    recorded: dict[int, int] = {}
    try:
        deadline = time.monotonic() + START
        while process.poll() is None and time.monotonic() < deadline:
            recorded.update(descendants(process.pid))
            time.sleep(0.1)
        _, stderr = process.communicate(timeout=STOP)
        assert process.returncode != 0 and BANNER not in stdout.text
        lines = [line for line in stderr.splitlines() if line.startswith("treatyflow:")]
        assert len(lines) == 1 and "the worker " in lines[0] and "while starting" in lines[0], stderr
        assert not (left := still_alive(recorded, 1.0)), f"left running: {left}"
    finally:
        if process.poll() is None:
            recorded.update(descendants(process.pid))
            process.kill()
        kill(recorded)
        stdout.stop()
        os.close(read)
