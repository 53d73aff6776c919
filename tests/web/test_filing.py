"""Filing a request for assistance from the web application, over real HTTP without a browser:
the form filed by the requesting state's central authority (offence and measure rows), the request
then readable through the API; a field error at its row's field with what was typed kept; rows
added and removed without JavaScript; an authority that is not a central authority refused. The
browser scenario is in tests/web/test_browser_assistance.py."""

from __future__ import annotations

import re
import uuid

import httpx
import pytest

from tests.web.test_forms import csrf_of, errors_of, signed_in

pytestmark = pytest.mark.asyncio(loop_scope="session")


def reference(state: str = "FR") -> str:
    return f"{state}-WEB-{uuid.uuid4().hex[:8]}"


def request_form(token: str, ref: str, requested_state: str = "KZ", **changes: str) -> dict[str, str]:
    form = {"csrf_token": token, "reference": ref, "requesting_state": ref[:2], "requested_state": requested_state,
            "issuing_authority": "Juge d'instruction, Paris", "purpose": "Investigation of a fraud against investors",
            "facts": "Funds of investors were moved through accounts in Almaty",
            "row": ["0", "1"], "offence.0.article": "313-1", "offence.0.iccs": "0701", "offence.0.description": "Fraud",
            "offence.1.article": "324-1", "offence.1.iccs": "0704", "offence.1.description": "Money laundering",
            "measure_row": ["0", "1"],
            "measure.0.id": "m1", "measure.0.kind": "search", "measure.0.description": "Search of the office",
            "measure.0.subject": "an office",
            "measure.1.id": "m2", "measure.1.kind": "interrogation", "measure.1.description": "Hear the director",
            "measure.1.subject": "a director",
            "urgent": "on", "respond_by": "", "received_on": "", "action": "file"}
    return {**form, **changes}


async def test_a_request_filed_through_the_form_is_the_apis_request(api_url):
    ref = reference()
    async with httpx.AsyncClient(base_url=api_url) as client:
        token = await signed_in(client, "demo-fr-moj")
        listing = (await client.get("/assistance-requests")).text
        assert 'href="/assistance-requests/new"' in listing and "File a request for assistance" in listing
        page = await client.get("/assistance-requests/new")
        assert page.status_code == 200
        assert '<option value="KZ"' in page.text  # France's one partner for assistance
        assert '<input type="hidden" name="requesting_state" value="FR">' in page.text
        filed = await client.post("/assistance-requests/new", data=request_form(token, ref))
        assert filed.status_code == 303, errors_of(filed.text)
        assert filed.headers["location"] == f"/assistance-requests/{ref}"
        shown = await client.get(filed.headers["location"])
        assert shown.status_code == 200 and f"Request for assistance {ref}" in shown.text
        for key in ("demo-fr-moj", "demo-kz-gpo"):
            answer = await client.get(f"/v1/assistance-requests/{ref}", headers={"Authorization": f"Bearer {key}"})
            assert answer.status_code == 200, answer.text
            view = answer.json()
            assert (view["requesting_state"], view["requested_state"], view["urgent"]) == ("FR", "KZ", True)
            measures = {m["id"]: m for m in view["measures"]}
            assert {i: m["kind"] for i, m in measures.items()} == {"m1": "search", "m2": "interrogation"}
            assert measures["m1"]["court"] == "kz-court" and measures["m2"]["court"] is None  # coercive or not


async def test_a_field_error_is_shown_at_its_rows_field_with_what_was_typed_kept(api_url):
    ref = reference()
    async with httpx.AsyncClient(base_url=api_url) as client:
        token = await signed_in(client, "demo-fr-moj")
        # the second measure shown is row 3 (rows 1 and 2 were removed): its error is named by its row
        answer = await client.post("/assistance-requests/new", data=request_form(
            token, ref, measure_row=["0", "3"], **{"measure.3.id": "m 2", "measure.3.kind": "interrogation",
                                                    "measure.3.description": "Hear the director"}))
        assert answer.status_code == 422
        cell = re.search(r'<td class="invalid">\s*<input name="measure\.3\.id" aria-label="Measure 2 identifier" '
                         r'value="m 2"[^>]*aria-invalid="true">\s*<p class="error">([^<]+)</p>', answer.text)
        assert cell, answer.text
        assert cell.group(1).startswith("measures.1.id must be 1 to 32 letters")
        assert "Some fields need correcting" in answer.text
        assert 'value="Search of the office"' in answer.text and 'value="313-1"' in answer.text  # all kept
        assert '<option value="interrogation" selected>' in answer.text
        assert ">Investigation of a fraud against investors</textarea>" in answer.text
        assert 'name="urgent" checked' in answer.text
        # nothing was filed
        api = await client.get(f"/v1/assistance-requests/{ref}", headers={"Authorization": "Bearer demo-fr-moj"})
        assert api.status_code == 404


async def test_measure_rows_are_added_and_removed_without_javascript(api_url):
    ref = reference()
    async with httpx.AsyncClient(base_url=api_url) as client:
        token = await signed_in(client, "demo-fr-moj")
        form = request_form(token, ref, action="add_measure")
        added = await client.post("/assistance-requests/new", data=form)
        assert added.status_code == 200
        assert re.findall(r'name="measure_row" value="(\d+)"', added.text) == ["0", "1", "2"]
        assert 'aria-label="Measure 3 kind"' in added.text
        assert 'value="Hear the director"' in added.text  # what was typed is kept
        removed = await client.post("/assistance-requests/new",
                                    data={**form, "measure_row": ["0", "1", "2"], "action": "remove_measure:0"})
        assert removed.status_code == 200
        assert re.findall(r'name="measure_row" value="(\d+)"', removed.text) == ["1", "2"]
        assert 'value="Search of the office"' not in removed.text and 'value="Hear the director"' in removed.text
        assert 'aria-label="Measure 1 kind"' in removed.text and 'aria-label="Measure 3 kind"' not in removed.text
        one = await client.post("/assistance-requests/new", data={**form, "measure_row": ["1"],
                                                                  "action": "remove_measure:1"})
        assert re.findall(r'name="measure_row" value="(\d+)"', one.text) == ["1"]  # the last row stays
        assert "Remove measure 1" not in one.text
        # nothing is filed by a row's button
        api = await client.get(f"/v1/assistance-requests/{ref}", headers={"Authorization": "Bearer demo-fr-moj"})
        assert api.status_code == 404


async def test_a_prison_service_is_refused(api_url):
    ref = reference("KZ")
    async with httpx.AsyncClient(base_url=api_url) as client:
        token = await signed_in(client, "demo-kz-penal")
        answer = await client.post("/assistance-requests/new", data=request_form(token, ref, requested_state="FR"))
        assert answer.status_code == 403
        assert any("central authorit" in e for e in errors_of(answer.text)), errors_of(answer.text)
        assert 'value="Search of the office"' in answer.text  # the form again, what was typed kept
    async with httpx.AsyncClient(base_url=api_url) as client:
        await signed_in(client, "demo-kz-gpo")
        assert (await client.get(f"/assistance-requests/{ref}")).status_code == 404  # nothing was filed
