"""The archive is the record of closed cases: the engine keeps a closed workflow only for the
namespace's retention (TREATYFLOW_RETENTION_DAYS, 60 days by default), and the API answers a
closed case from the archive once the engine has forgotten it — here its workflow is deleted from
the engine as the retention deletes it, on a dev server of this test's own (started as `make run`
starts it, told to delete at once: by default the server waits for its transfer queue's next
acknowledgement, about 30 s, before it deletes a closed workflow), with a real worker and the API
over HTTP."""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest_asyncio
from temporalio.api.common.v1 import WorkflowExecution
from temporalio.api.workflowservice.v1 import DeleteWorkflowExecutionRequest
from temporalio.service import RPCError, RPCStatusCode

from tests.api.helpers import NOT_FINAL
from tests.conftest import CODEC_KEYS
from tests.support import DevServer, Processes, base_env, key, serve, until
from treatyflow.config import Settings
from treatyflow.devserver import dev_server_command, wait_until_reachable
from treatyflow.samples import transfer_body
from worker import create_worker


@pytest_asyncio.fixture(loop_scope="session")
async def engine(tmp_path) -> AsyncIterator[tuple[Any, str]]:
    """Its own dev server, a worker and the API on it: the client and the API's URL."""
    (tmp_path / "logs").mkdir()
    procs = Processes(tmp_path / "logs")
    server = DevServer(tmp_path / "data", procs, codec_keys=CODEC_KEYS)
    server.data_dir.mkdir(parents=True)
    cmd = [*dev_server_command(server.settings),
           "--dynamic-config-value", "history.transferProcessorEnsureCloseBeforeDelete=false"]
    procs.spawn("temporal", cmd, base_env())
    try:
        client = await wait_until_reachable(server.settings, timeout=60)
        settings = Settings(task_queue=f"retention-{uuid.uuid4().hex[:8]}", codec_keys=CODEC_KEYS, dev_mode=True,
                            archive_dir=tmp_path / "archive", documents_dir=tmp_path / "documents",
                            data_dir=tmp_path / "api")
        from api.app import create_app

        async with create_worker(client, settings), serve(create_app(dataclasses.replace(settings), client)) as url:
            yield client, url
    finally:
        procs.close()


async def gone(client: Any, workflow_id: str) -> bool:
    try:
        await client.get_workflow_handle(workflow_id).describe()
    except RPCError as err:
        if err.status == RPCStatusCode.NOT_FOUND:
            return True
        raise
    return False


async def test_a_closed_case_reads_from_the_archive_after_its_workflow_is_gone(engine):
    client, url = engine
    body = transfer_body(judgment=NOT_FINAL)  # refused at intake: closed at once
    reference, workflow_id = body["reference"], f"transfer:{body['reference']}"
    async with httpx.AsyncClient(base_url=url, timeout=15) as http:
        opened = await http.post("/v1/transfers", json=body, headers=key("kz-gpo"))
        assert opened.status_code == 201 and opened.json()["stage"] == "refused", opened.text
        await client.get_workflow_handle(workflow_id).result()  # closed, and archived before it closed
        before = (await http.get(f"/v1/transfers/{reference}", headers=key("kz-gpo"))).json()
        export_before = await http.get(f"/v1/transfers/{reference}/export", headers=key("kz-gpo"))
        assert export_before.status_code == 200, export_before.text

        await client.workflow_service.delete_workflow_execution(DeleteWorkflowExecutionRequest(
            namespace=client.namespace, workflow_execution=WorkflowExecution(workflow_id=workflow_id)))
        await until(lambda: gone(client, workflow_id), "the engine to forget the workflow", 30, every=0.1)

        for authority in ("kz-gpo", "uz-gpo"):
            answer = await http.get(f"/v1/transfers/{reference}", headers=key(authority))
            assert answer.status_code == 200 and answer.json() == before, answer.text  # audit trail included
        documents = await http.get(f"/v1/transfers/{reference}/documents", headers=key("kz-gpo"))
        assert documents.status_code == 200, documents.text
        for listed in documents.json()["items"]:
            content = await http.get(f"/v1/transfers/{reference}/documents/{listed['document_id']}/content",
                                     headers=key("kz-gpo"))
            assert content.status_code == 200 and len(content.content) == listed["size"], content.text[:300]
        export = await http.get(f"/v1/transfers/{reference}/export", headers=key("kz-gpo"))
        assert export.status_code == 200 and export.content == export_before.content
        # as discreet as before: a third state cannot tell it from a reference never used
        hidden = await http.get(f"/v1/transfers/{reference}", headers=key("fr-moj"))
        nowhere = await http.get("/v1/transfers/KZ-never-opened-here", headers=key("fr-moj"))
        assert hidden.status_code == nowhere.status_code == 404 and hidden.json() == nowhere.json()
        # the same request again is answered from the archive: the case is not opened a second time
        again = await http.post("/v1/transfers", json=body, headers=key("kz-gpo"))
        assert again.status_code == 200, again.text
        assert (again.json()["reference"], again.json()["stage"]) == (reference, "refused")
        assert await gone(client, workflow_id)


def test_the_engine_keeps_closed_cases_60_days_unless_configured():
    assert Settings.from_env({}).retention_days == 60
    assert Settings.from_env({"TREATYFLOW_RETENTION_DAYS": "30"}).retention_days == 30
