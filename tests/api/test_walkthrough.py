"""The README's curl walkthrough, run as written, and the `treatyflow demo` scenario, both against
the real API over HTTP with a real worker."""

from __future__ import annotations

import asyncio
import contextlib
import io
import re
import subprocess
import uuid
from pathlib import Path

import httpx
import pytest

from tests.support import key
from treatyflow.demo import run_demo

pytestmark = pytest.mark.asyncio(loop_scope="session")
README = Path(__file__).parents[2] / "README.md"


def walkthrough() -> str:
    text = README.read_text()
    section = text[text.index("## Walkthrough"):]
    return re.search(r"```sh\n(.*?)```", section, re.S).group(1)


async def test_the_readme_walkthrough_runs_as_written(api_url):
    ref = f"KZ-UZ-README-{uuid.uuid4().hex[:8]}"
    process = await asyncio.create_subprocess_exec(
        "bash", "-e", "-o", "pipefail", "-c", walkthrough(), env={"API": api_url, "REF": ref, "PATH": "/usr/bin:/bin"},
        stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    out, err = await asyncio.wait_for(process.communicate(), timeout=60)
    assert process.returncode == 0, err.decode()
    assert out.decode().strip().endswith("404")  # the third state learns nothing
    async with httpx.AsyncClient(base_url=api_url) as http:
        view = (await http.get(f"/v1/transfers/{ref}", headers=key("kz-gpo"))).json()
    assert view["stage"] == "transferred"
    assert [d["state"] for d in view["decisions"]] == ["UZ", "KZ"]


async def test_the_demo_drives_its_cases_to_their_stages(api_url, dev_settings):
    output = io.StringIO()
    with contextlib.redirect_stdout(output):
        code = await asyncio.to_thread(run_demo, api_url, dev_settings)
    text = output.getvalue()
    assert code == 0, text
    final = text[text.index("Where the cases stand:"):]
    stages = re.findall(r"KZ-UZ-DEMO-\d+-(\d)\s+(\w+)\s+http://\S+/workflows/transfer:KZ-UZ-DEMO-", final)
    assert dict(stages) == {"1": "transferred", "2": "refused", "3": "awaiting_declaration"}
    assert re.search(r"FR-KZ-DEMO-\d+\s+completed\s+http://\S+/workflows/assistance:FR-KZ-DEMO-", final)
    assert re.search(r"evidence manifest: 3 items, sha256 [0-9a-f]{64}", text)
    assert "outstanding_financial_obligations" in text
    assert "Demo Person" not in text and "1985-03-02" not in text
