"""Offence citations as courts write them, over real HTTP (DOMAIN.md, "Dual criminality"): a
KZ→UZ transfer whose offence is cited ``188 ч.2`` without an ICCS code resolves through the KZ
article table; an unknown article is accepted (201) and goes to legal review, never a 422."""

from __future__ import annotations

from typing import Any

import pytest

from tests.api import helpers
from tests.api.helpers import view
from tests.support import key
from treatyflow.samples import BASE, transfer_body

pytestmark = pytest.mark.asyncio(loop_scope="session")
http = helpers.http  # the fixture: one paced client for the module


def judgment_citing(article: str) -> dict[str, Any]:
    return {**BASE["judgment"], "offences": [{"article": article, "description": "Theft"}]}


async def open_citing(http, article: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """Open a KZ→UZ case whose only offence is ``article`` with no ICCS code: (answer, view)."""
    body = transfer_body(judgment=judgment_citing(article))
    r = await http.post("/v1/transfers", json=body, headers=key("kz-gpo"))
    assert r.status_code == 201, r.text
    return r.json(), await view(http, body["reference"])


def condition(case: dict[str, Any], name: str) -> dict[str, Any]:
    return next(c for c in case["eligibility"] if c["condition"] == name)


async def test_a_part_cited_as_courts_write_it_resolves_through_the_article_table(http):
    answer, case = await open_citing(http, "188 ч.2")
    dual = condition(case, "dual_criminality")
    assert dual["outcome"] == "satisfied", dual
    assert "188 ч.2" in dual["detail"], dual  # the citation as written, not its key
    assert "0502" in dual["detail"] and "article_table" in dual["detail"], dual
    assert answer["stage"] == case["stage"] == "awaiting_consents"


async def test_an_article_not_in_the_table_needs_review_and_is_not_an_error(http):
    answer, case = await open_citing(http, "ст. 99999")
    dual = condition(case, "dual_criminality")
    assert dual["outcome"] == "needs_review", dual
    assert "ст. 99999" in dual["detail"], dual
    assert answer["stage"] == case["stage"] == "awaiting_legal_review"
