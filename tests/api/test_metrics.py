"""The dashboard's case gauges come from visibility counts at scrape time, with no reference in any label."""

from __future__ import annotations

import asyncio
import re

import httpx
import pytest

from tests.factories import transfer_body

pytestmark = pytest.mark.asyncio(loop_scope="session")


def gauge(text: str, stage: str) -> float:
    found = re.search(rf'^treatyflow_cases\{{kind="transfer",stage="{stage}"\}} (\S+)$', text, re.M)
    return float(found.group(1)) if found else 0.0


async def test_stage_counts_follow_the_cases(api_url):
    async with httpx.AsyncClient(base_url=api_url) as http:
        before = gauge((await http.get("/metrics")).text, "awaiting_declaration")
        body = transfer_body(declaration=None)
        opened = await http.post("/v1/transfers", json=body, headers={"Authorization": "Bearer demo-kz-gpo"})
        assert opened.status_code == 201
        for _ in range(50):  # visibility is eventually consistent
            text = (await http.get("/metrics")).text
            if gauge(text, "awaiting_declaration") == before + 1:
                break
            await asyncio.sleep(0.1)
    assert gauge(text, "awaiting_declaration") == before + 1
    assert "treatyflow_overdue_actions" in text
    assert body["reference"] not in text
