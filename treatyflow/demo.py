"""`treatyflow demo`: scenarios driven through the running HTTP API with the demo keys (dev mode).
Kazakhstan–Uzbekistan transfers: one completes, one is refused for outstanding financial
obligations, one waits for the sentenced person's declaration. A France → Kazakhstan request for
assistance (bank accounts, a search, an interrogation) is driven to completion. Persons and facts
are fictional."""

from __future__ import annotations

import hashlib
import time
from datetime import datetime, timezone
from typing import Any

import httpx

from treatyflow.config import Settings
from treatyflow.samples import BASE, assistance_body, key, transfer_body


def transfer(reference: str, **changes: Any) -> dict[str, Any]:
    """The sample transfer, received and declared today, of a person the demo names."""
    today = datetime.now(timezone.utc).date().isoformat()
    return transfer_body(**{"reference": reference, "received_on": today,
                            "person": {**BASE["person"], "full_name": "Demo Person"},
                            "declaration": {**BASE["declaration"], "signed_on": today}, **changes})


class Demo:
    def __init__(self, api: str) -> None:
        self.http = httpx.Client(base_url=api, timeout=30.0)

    def call(self, method: str, path: str, authority: str, body: dict | None = None) -> dict[str, Any]:
        response = self.http.request(method, path, json=body, headers=key(authority))
        if response.status_code >= 400:
            raise RuntimeError(f"{method} {path} as {authority}: {response.status_code} {response.text}")
        return response.json()

    def step(self, text: str, view: dict[str, Any]) -> None:
        pending = ", ".join(f"{p['authority']} {p['action']} by {p['due_on']}" for p in view["pending_actions"])
        print(f"  {text:<46} → {view['stage']}" + (f"  ({', '.join(view['grounds'])})" if view["grounds"] else "")
              + (f"  waiting for: {pending}" if pending else ""), flush=True)

    def completed(self, ref: str) -> None:
        print(f"\n{ref}: a transfer that completes", flush=True)
        self.step("kz-gpo opens the case (declaration attached)", self.call("POST", "/v1/transfers", "kz-gpo",
                                                                            transfer(ref)))
        self.step("uz-gpo consents for Uzbekistan", self.call(
            "POST", f"/v1/transfers/{ref}/decisions", "uz-gpo", {"state": "UZ", "decision": "consent"}))
        self.step("kz-gpo consents for Kazakhstan", self.call(
            "POST", f"/v1/transfers/{ref}/decisions", "kz-gpo", {"state": "KZ", "decision": "consent"}))
        view = self.until(ref, "uz-penal", lambda v: v["handover"] is not None)
        print(f"  handover arranged at {view['handover']['place']}, due {view['handover']['due_on']}", flush=True)
        today = datetime.now(timezone.utc).date().isoformat()
        self.step("uz-penal confirms the handover", self.call(
            "POST", f"/v1/transfers/{ref}/handover", "uz-penal",
            {"completed_on": today, "place": view["handover"]["place"]}))

    def refused(self, ref: str) -> None:
        print(f"\n{ref}: a person with an unpaid fine", flush=True)
        body = transfer(ref, financial_obligations=[
            {"description": "court fine", "amount": "1500.00", "currency": "KZT", "settled": False}])
        view = self.call("POST", "/v1/transfers", "kz-gpo", body)
        self.step("kz-gpo opens the case", view)
        for c in view["eligibility"]:
            print(f"    {c['condition']:<22} {c['outcome']:<14} {c['basis']}", flush=True)

    def waiting(self, ref: str) -> None:
        print(f"\n{ref}: no declaration yet", flush=True)
        self.step("kz-gpo opens the case (no declaration)",
                  self.call("POST", "/v1/transfers", "kz-gpo", transfer(ref, declaration=None)))
        inbox = self.call("GET", "/v1/inbox", "kz-penal")
        mine = [i for i in inbox["items"] if i["reference"] == ref]
        print(f"  kz-penal's inbox shows it: {mine[0]['action'] if mine else '(not yet indexed)'}", flush=True)

    def assistance(self, ref: str) -> None:
        print(f"\n{ref}: France asks Kazakhstan for assistance", flush=True)
        today = datetime.now(timezone.utc).date().isoformat()
        body = assistance_body(
            reference=ref, received_on=today, issuing_authority="Investigating judge, Paris",
            purpose="Fraud investigation", facts="Investors' funds were moved through accounts in Almaty",
            measures=[
                {"id": "accounts", "kind": "identify_bank_accounts", "description": "Accounts of the company"},
                {"id": "search", "kind": "search", "description": "Search of the office"},
                {"id": "hearing", "kind": "interrogation", "description": "Hear the director"}])
        path = f"/v1/assistance-requests/{ref}"
        self.assist_step("fr-moj files the request", self.call("POST", "/v1/assistance-requests", "fr-moj", body))
        self.assist_step("kz-gpo accepts it", self.call("POST", f"{path}/review", "kz-gpo", {"decision": "accept"}))
        self.until_assistance(ref, lambda v: all(m["stage"] != "pending" for m in v["measures"]))
        self.assist_step("kz-court authorises the search", self.call(
            "POST", f"{path}/measures/search/authorisation", "kz-court", {"granted": True, "note": "warrant"}))
        for measure, authority in (("accounts", "kz-afm"), ("search", "kz-police"), ("hearing", "kz-police")):
            content = f"{ref}/{measure}/record".encode()
            evidence = [{"item_id": f"{measure}-1", "description": f"{measure} record",
                         "sha256": hashlib.sha256(content).hexdigest(), "collected_on": today}]
            self.assist_step(f"{authority} reports {measure} executed", self.call(
                "POST", f"{path}/measures/{measure}/result", authority, {"outcome": "executed", "evidence": evidence}))
        view = self.until_assistance(ref, lambda v: v["results"] is not None)
        print(f"  evidence manifest: {len(view['results']['items'])} items, sha256 {view['results']['manifest_sha256']}",
              flush=True)

    def assist_step(self, text: str, view: dict[str, Any]) -> None:
        measures = ", ".join(f"{m['id']} {m['stage']}" for m in view["measures"])
        print(f"  {text:<46} → {view['stage']}  [{measures}]", flush=True)

    def until_assistance(self, ref: str, done, seconds: float = 30.0) -> dict[str, Any]:
        return self.until(ref, "fr-moj", done, seconds, path=f"/v1/assistance-requests/{ref}")

    def until(self, ref: str, authority: str, done, seconds: float = 30.0, path: str | None = None) -> dict[str, Any]:
        deadline = time.monotonic() + seconds
        while True:
            view = self.call("GET", path or f"/v1/transfers/{ref}", authority)
            if done(view) or time.monotonic() > deadline:
                return view
            time.sleep(0.2)


def run_demo(api: str, settings: Settings) -> int:
    demo = Demo(api)
    try:
        demo.http.get("/healthz").raise_for_status()
    except httpx.HTTPError:
        print(f"No treatyflow API at {api}: start it with `make run` first.", flush=True)
        return 2
    stamp = datetime.now(timezone.utc).strftime("%Y%m%d%H%M%S")
    refs = [f"KZ-UZ-DEMO-{stamp}-{n}" for n in (1, 2, 3)]
    assistance = f"FR-KZ-DEMO-{stamp}"
    try:
        demo.completed(refs[0])
        demo.refused(refs[1])
        demo.waiting(refs[2])
        demo.assistance(assistance)
    except RuntimeError as err:
        print(f"demo stopped: {err}", flush=True)
        return 1
    print("\nWhere the cases stand:", flush=True)
    host = settings.temporal_address.rsplit(":", 1)[0]
    ui = f"http://{host}:{settings.ui_port}/namespaces/{settings.temporal_namespace}/workflows"
    for kind, ref in [*(("transfer", r) for r in refs), ("assistance", assistance)]:
        path = f"/v1/transfers/{ref}" if kind == "transfer" else f"/v1/assistance-requests/{ref}"
        view = demo.call("GET", path, "kz-gpo")
        print(f"  {ref:<28} {view['stage']:<22} {ui}/{kind}:{ref}", flush=True)
    return 0
