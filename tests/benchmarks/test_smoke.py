"""The benchmark code, run once with tiny numbers so that it does not rot: every section on its
own dev server, worker and API processes. Only that it completes and reports sane numbers is
checked; speed is the benchmarks' business (`make bench`), never a threshold here."""

from __future__ import annotations

import math

import pytest

from benchmarks.run import GOALS, Options, markdown, run_benchmarks

pytestmark = pytest.mark.asyncio(loop_scope="session")


def positive(value: float) -> bool:
    return isinstance(value, (int, float)) and math.isfinite(value) and value > 0


async def test_every_benchmark_runs_with_tiny_numbers(tmp_path) -> None:
    options = Options.tiny()
    results = await run_benchmarks(options, tmp_path)

    pipeline = results["pipeline"]
    assert pipeline["shape"]["matches"], (
        "the baseline no longer has the transfer's activities and updates; update benchmarks/baseline.py: "
        f"{pipeline['shape']}")
    for side in ("real", "baseline"):
        assert pipeline[side]["cases"] == options.cases
        assert positive(pipeline[side]["cases_per_s"])
        assert positive(pipeline[side]["cpu_ms_per_case"]["worker"])
    assert positive(pipeline["ratio"])

    api = results["api"]
    for side in ("api", "direct"):
        assert api[side]["cases"] == options.api_cases and positive(api[side]["cases_per_s"])
    assert positive(api["ratio"])
    assert api["api"]["latency_ms"]["POST /v1/transfers"]["n"] == options.api_cases
    assert api["serial"]["api_latency_ms"]["POST /v1/transfers/{reference}/handover"]["n"] == options.serial

    capacity = results["capacity"]
    assert capacity["open_cases"] == options.open_cases
    assert positive(capacity["worker_rss_mb"]["open"]) and positive(capacity["db_bytes"]["after"]["total"])
    assert capacity["latency_ms"]["GET /v1/inbox"]["n"] == options.requests
    assert positive(capacity["latency_ms"]["GET /v1/inbox"]["p95_ms"])

    intake = results["intake"]
    assert list(intake["sizes"]) == [str(options.intake)]  # tiny: one batch, of 3
    assert positive(intake["sizes"]["3"]["ratio"]) and intake["others"]["alone_ms"]["n"] == options.probes

    # each goal evaluated, met or not (the batches of 225 and 2,000 are not run with tiny numbers)
    assert set(results["goals"]) == {goal for goal in GOALS if not goal.startswith("batch of ")}
    assert "Ratio transfer/baseline" in markdown(results)
