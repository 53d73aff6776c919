"""Rows people recognise, and finding a person by name, without the engine holding a name: the
lists and the inbox show the sentenced person's name (transfers) or the issuing authority and
offence (assistance) from the case's encrypted memo; `?name=` finds a transfer by the blind index
of the name (a keyed hash in a search attribute)."""

from __future__ import annotations

import uuid

import httpx
import pytest

from tests.conftest import DATA_CONVERTER
from tests.support.polling import poll
from treatyflow.samples import assistance_body, transfer_body
from workflows import search_attributes as sa

pytestmark = pytest.mark.asyncio(loop_scope="session")

KZ = {"Authorization": "Bearer demo-kz-gpo"}


async def test_a_transfer_is_listed_with_its_persons_name_and_found_by_it(api_url, dev_client):
    name = f"Dilnoza Testova-{uuid.uuid4().hex[:6]}"
    body = transfer_body()
    body["person"]["full_name"] = name
    async with httpx.AsyncClient(base_url=api_url, headers=KZ) as api:
        assert (await api.post("/v1/transfers", json=body)).status_code == 201
        ref = body["reference"]

        async def found(query: str) -> list[dict]:
            return (await api.get("/v1/transfers", params={"name": query})).json()["items"]

        # written another way (case, spaces): the same name
        items = await poll(lambda: found(f"  {name.upper()}  "), lambda got: bool(got))
        assert [(i["reference"], i["label"]) for i in items] == [(ref, name)]
        assert await found(name + "x") == []  # another name finds nothing
        listed = (await api.get("/v1/transfers")).json()["items"]
        assert {"reference": ref, "label": name}.items() <= next(i for i in listed if i["reference"] == ref).items()
        inbox = (await api.get("/v1/inbox")).json()["items"]
        assert next(i for i in inbox if i["reference"] == ref)["label"] == name

    # the engine holds neither the name in clear in its search attributes nor in the memo
    described = await dev_client.get_workflow_handle(f"transfer:{ref}").describe()
    index = described.typed_search_attributes.get(sa.PERSON_NAME_INDEX)
    assert index and len(index) == 32 and name.lower() not in index
    raw_memo = described.raw_description.workflow_execution_info.memo.fields["label"]
    assert raw_memo.metadata["encoding"] == b"binary/encrypted" and name.encode() not in raw_memo.data
    assert (await DATA_CONVERTER.decode([raw_memo], [str])) == [name]


async def test_a_request_is_listed_with_its_issuing_authority_and_offence(api_url):
    body = assistance_body()
    headers = {"Authorization": f"Bearer demo-{'fr-moj'}"}
    async with httpx.AsyncClient(base_url=api_url) as api:
        assert (await api.post("/v1/assistance-requests", json=body, headers=headers)).status_code == 201
        items = await poll(lambda: api.get("/v1/assistance-requests", headers=KZ),
                           lambda r: any(i["reference"] == body["reference"] for i in r.json()["items"]))
        row = next(i for i in items.json()["items"] if i["reference"] == body["reference"])
        offence = body["offences"][0]
        assert row["label"] == f"{body['issuing_authority']} — {offence.get('description') or offence['article']}"
