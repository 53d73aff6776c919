import asyncio

import httpx
import pytest

from tests.support import key
from treatyflow.samples import assistance_body

pytestmark = pytest.mark.asyncio(loop_scope="session")


async def test_assistance_through_the_api(api_url):
    async with httpx.AsyncClient(base_url=api_url) as http:
        body = assistance_body()
        ref = body["reference"]
        r = await http.post("/v1/assistance-requests", json=body, headers=key("fr-moj"))
        assert r.status_code == 201, r.text
        r = await http.post(f"/v1/assistance-requests/{ref}/review", json={"decision": "accept"}, headers=key("kz-gpo"))
        assert r.status_code == 200, r.text
        for _ in range(50):
            inbox = (await http.get("/v1/inbox", headers=key("kz-court"))).json()["items"]
            if any(i["reference"] == ref for i in inbox):
                break
            await asyncio.sleep(0.1)
        print(inbox)
        r = await http.post(f"/v1/assistance-requests/{ref}/measures/m2/authorisation", json={"granted": True}, headers=key("kz-court"))
        assert r.status_code == 200, r.text
        ev = [{"item_id": "e1", "description": "d", "sha256": "ab" * 32, "collected_on": "2026-11-27"}]
        for m, who in (("m1", "kz-afm"), ("m2", "kz-police"), ("m3", "kz-police")):
            r = await http.post(f"/v1/assistance-requests/{ref}/measures/{m}/result", json={"outcome": "executed", "evidence": ev}, headers=key(who))
            assert r.status_code == 200, r.text
            print(m, [(x["id"], x["stage"]) for x in r.json()["measures"]])
        for _ in range(50):
            v = (await http.get(f"/v1/assistance-requests/{ref}", headers=key("fr-moj"))).json()
            if v["stage"] == "completed":
                break
            await asyncio.sleep(0.1)
        assert v["stage"] == "completed" and v["results"]["manifest_sha256"]
        r = await http.get("/v1/stats", headers=key("kz-gpo"))
        print(r.json())
