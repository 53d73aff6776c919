"""`make bench`: the four benchmarks on one fresh dev server, printed as Markdown for
benchmarks/RESULTS.md (and as JSON with --json).

    python -m benchmarks.run                 # full: 400 pipeline cases, 200 through the API, 10,000 open,
                                             # batches of 225 and 2,000
    python -m benchmarks.run --quick         # CI-sized: 100, 60, 1,000, 225 and 500
    python -m benchmarks.run --cases 50 --open-cases 500 --only pipeline,capacity

Speed is reported as ratios against a baseline measured in the same run; nothing here is a
pass/fail threshold on wall-clock time (the goals are printed as met or missed)."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import sys
import tempfile
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

SECTIONS = ("pipeline", "api", "capacity", "intake")


def history_ratio(results: dict[str, Any]) -> float | None:
    """The bytes of one transferred case's history over the baseline's (the pipeline's shape check)."""
    shape = value_at(results, ("pipeline", "shape"))
    return round(shape["real"]["history_bytes"] / shape["baseline"]["history_bytes"], 2) if shape else None


def storage_kb(results: dict[str, Any]) -> float | None:
    growth = value_at(results, ("capacity", "db_bytes", "growth_per_case"))
    return round(growth / 1000, 1) if growth is not None else None


GOALS = {  # (what, the measured value: its path or a function of the results, comparison, bound)
    "pipeline ratio": (("pipeline", "ratio"), ">=", 0.9),
    "API ratio": (("api", "ratio"), ">=", 0.9),
    "history bytes of a transferred case / the baseline's": (history_ratio, "<=", 1.5),
    "worker RSS (MB) with the open cases": (("capacity", "worker_rss_mb", "after_reads"), "<=", 250),
    "inbox p95 (ms)": (("capacity", "latency_ms", "GET /v1/inbox", "p95_ms"), "<=", 75),
    "list p95 (ms)": (("capacity", "latency_ms", "GET /v1/transfers", "p95_ms"), "<=", 100),
    "list p95 (ms), page 5": (("capacity", "latency_ms", "GET /v1/transfers?page_token=... (page 5)", "p95_ms"),
                              "<=", 100),
    "case read p95 (ms)": (("capacity", "latency_ms", "GET /v1/transfers/{reference}", "p95_ms"), "<=", 75),
    "engine storage per open case (kB)": (storage_kb, "<=", 25),
    "inbox page p95 (ms), rendered": (("capacity", "latency_ms", "GET /inbox (page)", "p95_ms"), "<=", 150),
    "case page p95 (ms), rendered": (("capacity", "latency_ms", "GET /transfers/{reference} (page)", "p95_ms"),
                                     "<=", 150),
    "batch of 225 vs as many single POSTs (times faster)": (("intake", "sizes", "225", "ratio"), ">=", 3),
    "batch of 2,000 vs as many single POSTs (times faster)": (("intake", "sizes", "2000", "ratio"), ">=", 3),
    "another authority's POST p95 during a batch / alone": (("intake", "others", "ratio"), "<=", 1.0),
}


@dataclass
class Options:
    cases: int = 400  # pipeline: real cases, and as many baseline cases
    api_cases: int = 200  # API overhead: through the API, and as many direct
    open_cases: int = 10_000  # capacity
    concurrency: int = 32  # cases driven at once
    rounds: int = 4  # each comparison alternates its two sides this many times
    warmup: int = 32  # cases of each side before measuring
    serial: int = 20  # API overhead: cases one at a time, for unloaded latency
    requests: int = 50  # capacity: requests per endpoint
    open_concurrency: int = 50  # capacity: cases opened at once
    intake: int = 2_000  # intake: the largest batch (and a batch of 225 when it is larger)
    probes: int = 40  # intake: another authority's single POSTs alone
    only: tuple[str, ...] = SECTIONS
    variant: str = ""  # worker options under test (benchmarks.worker); "" measures the production worker

    @classmethod
    def quick(cls) -> Options:
        return cls(cases=100, api_cases=60, open_cases=1_000, warmup=16, serial=10, intake=500)

    @classmethod
    def tiny(cls) -> Options:
        """The smoke test's: every code path, seconds of work."""
        return cls(cases=2, api_cases=2, open_cases=20, concurrency=2, rounds=1, warmup=1, serial=1, requests=3,
                   open_concurrency=10, intake=3, probes=2)


async def run_benchmarks(options: Options, workdir: Path, profile_dir: Path | None = None) -> dict[str, Any]:
    from benchmarks.api_overhead import api_overhead
    from benchmarks.capacity import baseline_storage, capacity
    from benchmarks.harness import WORKER_BENCH, WORKER_PRODUCTION, dev_stack, load_average, machine
    from benchmarks.intake import intake
    from benchmarks.pipeline import pipeline

    results: dict[str, Any] = {"machine": machine(), "options": asdict(options)}
    capacity_worker = WORKER_BENCH if options.variant else WORKER_PRODUCTION
    async with dev_stack(workdir, profile_dir, options.variant) as stack:
        # every process at once (each takes seconds to import); the capacity worker idles until its turn
        starting: list[Any] = [stack.start_worker(WORKER_BENCH, "bench")]
        if {"api", "capacity", "intake"} & set(options.only):
            starting.append(stack.start_api("bench"))
        if "capacity" in options.only:
            starting.append(stack.start_worker(capacity_worker, "capacity"))
        started = await asyncio.gather(*starting)
        worker = started[0]
        if "pipeline" in options.only:
            results["pipeline"] = await pipeline(stack, "bench", worker, cases=options.cases,
                                                 concurrency=options.concurrency, rounds=options.rounds,
                                                 warmup=options.warmup)
        if "api" in options.only:
            api, url = started[1]
            results["api"] = await api_overhead(stack, "bench", worker, api, url, cases=options.api_cases,
                                                concurrency=options.concurrency, rounds=options.rounds,
                                                warmup=options.warmup, serial=options.serial)
        if "capacity" in options.only:  # measured on a worker of its own; the bench worker then runs the baseline's
            results["capacity"] = await capacity(stack, started[1][1], started[2], open_cases=options.open_cases,
                                                 concurrency=options.open_concurrency, requests=options.requests)
            results["capacity"]["baseline_db_bytes"] = await baseline_storage(
                stack, "bench", open_cases=options.open_cases, concurrency=options.open_concurrency)
        if "intake" in options.only:  # last: the cases it opens wait in the inboxes the capacity section reads
            results["intake"] = await intake(started[1][1], sizes=tuple(sorted({min(225, options.intake),
                                                                              options.intake})),
                                             probes=options.probes)
        await stack.stop(worker)
    results["machine"]["load_average_after"] = load_average()
    results["goals"] = goals(results)
    return results


def value_at(results: dict[str, Any], path: tuple[str, ...]) -> Any:
    for part in path:
        if not isinstance(results, dict) or part not in results:
            return None
        results = results[part]
    return results


def goals(results: dict[str, Any]) -> dict[str, dict[str, Any]]:
    out = {}
    for name, (path, op, bound) in GOALS.items():
        value = path(results) if callable(path) else value_at(results, path)
        if value is None:
            continue
        met = value >= bound if op == ">=" else value <= bound
        out[name] = {"value": value, "goal": f"{op} {bound}", "met": met}
    return out


# ---- Markdown -----------------------------------------------------------------------------------


def table(header: list[str], rows: list[list[Any]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def latency_rows(*sides: tuple[str, dict[str, dict[str, float]]]) -> list[list[Any]]:
    rows = []
    for side, summary in sides:
        for name, s in summary.items():
            rows.append([side, f"`{name}`", s["n"], s["p50_ms"], s["p95_ms"], s["max_ms"]])
    return rows


def markdown(results: dict[str, Any]) -> str:
    m, o = results["machine"], results["options"]
    out = [f"### Run of {m['date']}",
           f"Machine: {m['cpus']} CPUs ({m['cpu_model']}), {m['memory']}, Linux {m['kernel']}; Python {m['python']}, "
           f"temporalio {m['temporalio']}, {m['temporal_cli']}. Load average before {m['load_average_before']}, "
           f"after {m.get('load_average_after', '?')} (other work on the machine shows here).",
           f"Options: {', '.join(f'{k}={v}' for k, v in o.items() if k not in ('only', 'variant'))}; "
           f"sections: {', '.join(o['only'])}; worker: "
           + (f"**variant `{o['variant']}`**." if o["variant"] else "production settings.")
           + (" PYTHONDONTWRITEBYTECODE=1 in the environment." if m.get("PYTHONDONTWRITEBYTECODE") else "")]
    if "pipeline" in results:
        p = results["pipeline"]
        out += ["", "#### 1. Pipeline cost (real transfer vs baseline, same worker, same server)",
                table(["", "cases", "seconds", "cases/s", "system CPU ms per case", "CPU ms per case by process"],
                      [[side, p[key]["cases"], p[key]["seconds"], p[key]["cases_per_s"],
                        p[key]["system_cpu_ms_per_case"], ", ".join(f"{k} {v}" for k, v in p[key]["cpu_ms_per_case"].items())]
                       for side, key in (("transfer", "real"), ("baseline", "baseline"))]),
                "", f"**Ratio transfer/baseline: {p['ratio']}** (concurrency {p['concurrency']}, "
                    f"{p['rounds']} alternated rounds). CPU ratio (baseline/transfer CPU per case of server + worker): "
                    f"{p['cpu_ratio']}.",
                f"Shape check (one case of each): transfer {p['shape']['real']}, baseline {p['shape']['baseline']}; "
                f"activities (less the transfer's {p['shape']['real']['letters']} letters to the person, which the "
                f"baseline predates) and updates {'match' if p['shape']['matches'] else '**DO NOT MATCH**'}.",
                "", table(["side", "call", "n", "p50 ms", "p95 ms", "max ms"],
                          latency_rows(("transfer", p["real"]["latency_ms"]),
                                       ("baseline", p["baseline"]["latency_ms"])))]
    if "api" in results:
        a = results["api"]
        out += ["", "#### 2. API overhead (HTTP API vs direct client calls, same lifecycle)",
                table(["", "cases", "seconds", "cases/s", "system CPU ms per case", "CPU ms per case by process"],
                      [[side, a[key]["cases"], a[key]["seconds"], a[key]["cases_per_s"],
                        a[key]["system_cpu_ms_per_case"], ", ".join(f"{k} {v}" for k, v in a[key]["cpu_ms_per_case"].items())]
                       for side, key in (("API", "api"), ("direct", "direct"))]),
                "", f"**Ratio API/direct: {a['ratio']}** (concurrency {a['concurrency']}, {a['rounds']} alternated "
                    f"rounds). CPU ratio (direct/API CPU per case of server + worker + API): {a['cpu_ratio']}.", "", f"Latency under load (concurrency {a['concurrency']}):", "",
                table(["side", "call", "n", "p50 ms", "p95 ms", "max ms"],
                      latency_rows(("API", a["api"]["latency_ms"]), ("direct", a["direct"]["latency_ms"]))),
                "", f"Latency one case at a time ({a['serial']['cases']} cases):", "",
                table(["side", "call", "n", "p50 ms", "p95 ms", "max ms"],
                      latency_rows(("API", a["serial"]["api_latency_ms"]),
                                   ("direct", a["serial"]["direct_latency_ms"])))]
    if "capacity" in results:
        c = results["capacity"]
        db = c["db_bytes"]
        out += ["", f"#### 3. Open-case capacity ({c['open_cases']} cases waiting for consent)",
                f"Opened at {c['opening']['cases_per_s']} cases/s ({c['opening']['seconds']} s, {c['concurrency']} at "
                f"once; open_transfer p50 {c['opening']['latency_ms']['open_transfer']['p50_ms']} ms, p95 "
                f"{c['opening']['latency_ms']['open_transfer']['p95_ms']} ms); visibility caught up "
                f"{c['visibility_lag_s']} s later, all quiet {c['settle_s']} s after that.", "",
                table(["measure", "value"], [
                    ["worker RSS idle / with the open cases / after the reads / peak (MB)",
                     " / ".join(str(c["worker_rss_mb"][k]) for k in ("idle", "open", "after_reads", "peak"))],
                    ["server RSS now / peak (MB)", f"{c['server_rss_mb']['VmRSS']} / {c['server_rss_mb']['VmHWM']}"],
                    ["server SQLite files after (MB)",
                     ", ".join(f"{k} {v / 1e6:.1f}" for k, v in db["after"].items())],
                    ["SQLite growth for these cases", f"{db['growth'] / 1e6:.1f} MB ({db['growth_per_case']} bytes a case)"],
                ] + ([["SQLite growth for as many baseline cases, open at the same point",
                       f"{c['baseline_db_bytes']['growth'] / 1e6:.1f} MB "
                       f"({c['baseline_db_bytes']['growth_per_case']} bytes a case)"]]
                     if "baseline_db_bytes" in c else [])), "", table(["call", "n", "p50 ms", "p95 ms", "max ms"],
                              [row[1:] for row in latency_rows(("", c["latency_ms"]))])]
    if "intake" in results:
        i = results["intake"]
        others = i["others"]
        out += ["", "#### 4. Bulk intake (POST /v1/transfers/batch vs single POST /v1/transfers, cases without a "
                    "declaration)",
                table(["cases", "single POSTs one at a time (s)", "one batch (s)", "times faster",
                       f"single POSTs {8} at a time (s)", "times faster than those", "batch cases/s",
                       "single POST p50 / p95 ms"],
                      [[n, s["singles_s"], s["batch_s"], f"**{s['ratio']}**", s["parallel_singles_s"],
                        s["ratio_parallel"], s["batch_cases_per_s"],
                        f"{s['single_latency_ms']['p50_ms']} / {s['single_latency_ms']['p95_ms']}"]
                       for n, s in i["sizes"].items()]),
                "", f"Another authority's single POSTs (uz-gpo, one at a time): alone p50 "
                    f"{others['alone_ms']['p50_ms']} / p95 {others['alone_ms']['p95_ms']} ms (n {others['alone_ms']['n']}); "
                    f"while the largest batch ran p50 {others['during_batch_ms']['p50_ms']} / p95 "
                    f"{others['during_batch_ms']['p95_ms']} ms (n {others['during_batch_ms']['n']}): "
                    f"**{others['ratio']}×**."]
    if results.get("goals"):
        out += ["", "#### Goals", table(["goal", "measured", "bound", "met"],
                                        [[k, g["value"], g["goal"], "yes" if g["met"] else "**no**"]
                                         for k, g in results["goals"].items()])]
    return "\n".join(out) + "\n"


def parse(argv: list[str] | None) -> tuple[Options, argparse.Namespace]:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.run", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="CI-sized: 100 pipeline cases, 60 API, 1,000 open")
    for f in fields(Options):
        if f.name not in ("only", "variant"):
            parser.add_argument(f"--{f.name.replace('_', '-')}", type=int, default=None)
    parser.add_argument("--only", default=",".join(SECTIONS), help=f"comma-separated, of {', '.join(SECTIONS)}")
    parser.add_argument("--variant", default="",
                        help="worker options under test, e.g. cache=200 or bytecode,passthrough=workflows.case "
                             "(see benchmarks/worker.py); the capacity benchmark then runs benchmarks.worker "
                             "with them instead of `treatyflow worker`")
    parser.add_argument("--json", type=Path, help="also write the results as JSON to this file")
    parser.add_argument("--profile", type=Path, metavar="DIR",
                        help="sample each worker and the API with py-spy into DIR (collapsed stacks); "
                             "the numbers of such a run include the sampling's cost")
    parser.add_argument("--keep", action="store_true", help="keep the working directory (server DB, logs)")
    args = parser.parse_args(argv)
    options = Options.quick() if args.quick else Options()
    for f in fields(Options):
        value = getattr(args, f.name, None)
        if f.name not in ("only", "variant") and value is not None:
            setattr(options, f.name, value)
    options.only = tuple(s for s in args.only.split(",") if s)
    options.variant = args.variant
    unknown = set(options.only) - set(SECTIONS)
    if unknown:
        parser.error(f"unknown sections {sorted(unknown)}")
    return options, args


def main(argv: list[str] | None = None) -> None:
    options, args = parse(argv)
    workdir = Path(tempfile.mkdtemp(prefix="treatyflow-bench-"))
    try:
        results = asyncio.run(run_benchmarks(options, workdir, args.profile))
        if args.json:
            args.json.write_text(json.dumps(results, indent=2, default=str))
        print(markdown(results), flush=True)
    finally:
        if args.keep:
            print(f"working directory kept: {workdir}", file=sys.stderr)
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    sys.stdout.flush()
    os._exit(0)  # a process that used a Temporal client can abort while finalizing (temporalio/sdk-python#300)


if __name__ == "__main__":
    main()
