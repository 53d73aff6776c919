"""The chaos run (`make chaos`, benchmarks/chaos.py) at its smallest: `treatyflow up` on its own data
directory and ports, 6 cases of both kinds through the HTTP API, one SIGKILL each of the worker,
the API and the Temporal server (`up` starts each again), the webhook receiver failing twice for a
few seconds. The run's own checks must all hold: every case at the end its script implies, every
notice received once per idempotency key, one archive record per case, no 500. About 40 s on an
idle machine with 2 cores; the run bounds itself (--timeout, --check-timeout), and the subprocess
is given 300 s before it is killed with everything it started."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_a_small_chaos_run_keeps_every_promise(tmp_path: Path) -> None:
    report = tmp_path / "chaos.json"
    cmd = [sys.executable, "-m", "benchmarks.chaos", "--cases", "6", "--faults", "3", "--seed", "17",
           "--concurrency", "4", "--gap", "0.5", "1.5", "--webhook-windows", "2", "--webhook-seconds", "4",
           "--timeout", "180", "--check-timeout", "90", "--recovery", "90", "--workdir", str(tmp_path / "run"),
           "--json", str(report)]
    # its own session: the harness kills `up` by pid (and `up` dies with it, its children with `up`)
    done = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=300, start_new_session=True)
    assert done.returncode == 0, f"{done.stdout[-6000:]}\n{done.stderr[-3000:]}"
    result = json.loads(report.read_text())
    checks = {c["name"]: c for c in result["checks"]}
    assert all(c["ok"] for c in checks.values()), result["report"]

    ends = checks["every case reached the end its script implies"]["counts"]
    assert ends["cases"] == ends["as scripted"] == 6
    kinds = {case["kind"] for case in result["cases"]}
    assert kinds == {"transfer", "assistance"}

    faults = checks["every fault injected, every process back"]["counts"]
    assert faults["faults"] == 3 and faults["by kind"] == {"api": 1, "server": 1, "worker": 1}
    assert all(f["recovered_after"] is not None and f["new_pid"] != f["pid"] for f in result["faults"])
    assert len(result["windows"]) == 2

    notices = checks["each notice received once per idempotency key"]["counts"]
    sent = notices["notices sent (engine: notify activities)"]
    assert sent > 0 and notices["distinct keys received (acknowledged 2xx)"] == sent
    assert notices["sent, never received"] == notices["received, never sent"] == 0

    archive = checks["each archive record written once"]["counts"]
    assert archive["records"] == archive["closed cases"] == 6 and archive["temporary files left"] == 0

    api = checks["no API call answered 500"]["counts"]
    assert api["500 answers"] == 0 and api["calls answered"] > 6
    print(f"chaos smoke: {result['timings']['total']:.1f} s in all ({result['timings']['load']:.1f} s of load)")
