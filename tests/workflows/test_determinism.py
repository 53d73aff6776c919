"""The workflow code is passed through the sandbox (worker.py: imported once, not re-executed for
every run), and so is the domain it calls; the sandbox's runtime guard does not reach passed-
through modules (tried: a workflow in a passed-through package returned `datetime.now()` and a
random number unchecked, the same workflow not passed through failed its task). This static
guard takes its place: no module of `workflows/` or `domain/` reads the clock, draws a
random number, makes an id, sleeps, or touches the network, the environment or a file — except
`domain/reference.py`, which reads the reference data and is called only by activities."""

from __future__ import annotations

import ast
import uuid
from datetime import timedelta
from pathlib import Path

import pytest
from temporalio.client import WorkflowFailureError
from temporalio.worker import Worker

from tests.clock_reader import ReadsTheClock
from worker import workflow_runner

ROOT = Path(__file__).resolve().parents[2]
GUARDED = sorted([*(ROOT / "workflows").glob("*.py"), *(ROOT / "domain").glob("*.py")])
READS_FILES = {ROOT / "domain" / "reference.py"}
# reads the bytes of a list of applicants it is given, in memory (io.BytesIO), never a file; no workflow imports it
IN_MEMORY = {ROOT / "domain" / "applicants.py"}

FORBIDDEN_MODULES = {"random", "secrets", "time", "uuid", "os", "socket", "threading", "subprocess", "httpx",
                     "requests", "urllib", "shutil", "tempfile", "multiprocessing", "signal"}
# calls on these names: the clock, randomness, ids, the environment (``datetime.now()``, ``date.today()``)
CLOCKS = {"datetime", "date", "time", "random", "uuid", "os", "secrets"}
FORBIDDEN_CALLS = {"now", "utcnow", "today", "fromtimestamp", "time", "monotonic", "perf_counter", "sleep",
                   "uuid1", "uuid4", "random", "randint", "choice", "getenv", "urandom"}
FILE_MODULES = {"pathlib", "io"}


def problems(source: str, *, may_read_files: bool = False, in_memory: bool = False) -> list[str]:
    """What makes ``source`` unsafe to run unguarded in a workflow (``in_memory``: ``io``'s
    in-memory buffers are allowed, files still are not)."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import | ast.ImportFrom):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module or ""]
            for name in names:
                top = name.split(".")[0]
                if top in FORBIDDEN_MODULES or (top in FILE_MODULES and not may_read_files
                                                and not (in_memory and top == "io")):
                    found.append(f"line {node.lineno}: imports {name}")
        elif isinstance(node, ast.Call):
            func = node.func
            if isinstance(func, ast.Attribute) and func.attr in FORBIDDEN_CALLS and _name(func.value) in CLOCKS:
                found.append(f"line {node.lineno}: calls {_name(func.value)}.{func.attr}()")
            if isinstance(func, ast.Name) and func.id == "open" and not may_read_files:
                found.append(f"line {node.lineno}: calls open()")
    return found


def _name(node: ast.expr) -> str:
    """``datetime`` for ``datetime`` and for ``datetime.datetime``."""
    return node.id if isinstance(node, ast.Name) else node.attr if isinstance(node, ast.Attribute) else ""


@pytest.mark.parametrize("path", GUARDED, ids=[str(p.relative_to(ROOT)) for p in GUARDED])
def test_no_workflow_or_domain_module_calls_anything_non_deterministic(path: Path):
    assert problems(path.read_text(), may_read_files=path in READS_FILES, in_memory=path in IN_MEMORY) == [], path


@pytest.mark.parametrize("source", [
    "import random\n",
    "from datetime import datetime\nx = datetime.now()\n",
    "import datetime\nx = datetime.date.today()\n",
    "from uuid import uuid4\n",
    "import time\n",
    "x = open('f').read()\n",
    "import os\nos.getenv('A')\n",
    "from pathlib import Path\n",
    "import datetime\nx = datetime.datetime.utcnow()\n",
])
def test_the_guard_catches_each_kind_of_non_deterministic_call(source: str):
    assert problems(source), source


def test_the_guard_lets_the_deterministic_calls_through():
    assert problems("from datetime import time\nfrom temporalio import workflow\nx = workflow.now()\n"
                    "workflow.sleep(1)\nmidnight = time(0)\nself.open('detail')\n") == []


async def test_the_sandbox_still_catches_a_clock_read_in_a_module_it_does_not_pass_through(skipping_env):
    """A workflow module that is not passed through (tests/clock_reader.py): the production
    runner's guard fails the workflow that reads the real clock."""
    client = skipping_env.client
    async with Worker(client, task_queue=(queue := f"guard-{uuid.uuid4().hex[:8]}"), workflows=[ReadsTheClock],
                      workflow_runner=workflow_runner()):
        handle = await client.start_workflow(ReadsTheClock.run, id=queue, task_queue=queue,
                                             execution_timeout=timedelta(seconds=10))
        with pytest.raises(WorkflowFailureError):
            await handle.result()
        history = await handle.fetch_history()
    failures = [str(await client.data_converter.decode_failure(e.workflow_task_failed_event_attributes.failure))
                for e in history.events if e.HasField("workflow_task_failed_event_attributes")]
    assert failures and "Cannot access datetime.datetime.now" in failures[0], failures
