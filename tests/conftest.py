"""Real Temporal servers for the tests: one local dev server for the session (visibility, search
attributes, update-with-start), as `make run` starts it, and a fresh time-skipping server per
deadline test."""

from __future__ import annotations

import dataclasses
import os
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest_asyncio
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment

from stores.signing import SigningKeys, directory_states
from tests.support import DevServer, Processes, free_port, serve
from treatyflow.client import data_converter
from treatyflow.codec import CodecKeys
from treatyflow.config import Settings
from treatyflow.devserver import installed_binary
from treatyflow.namespace import register_search_attributes
from worker import create_worker


# One codec key for the test session, never written anywhere: every client encrypts with it.
CODEC_KEYS = CodecKeys(current="test-session", keys={"test-session": os.urandom(32)})
DATA_CONVERTER = data_converter(CODEC_KEYS)
# The states' signing keys of the test session, never written anywhere: given to every worker and
# API of this process as production gives them (TREATYFLOW_SIGNING_KEYS), so they sign and publish
# the same keys whatever their mode and data directory.
SIGNING_KEYS = SigningKeys.generate(directory_states())
os.environ["TREATYFLOW_SIGNING_KEYS"] = SIGNING_KEYS.to_json()


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def dev_env(tmp_path_factory) -> AsyncIterator[WorkflowEnvironment]:
    root = tmp_path_factory.mktemp("temporal")
    (root / "logs").mkdir()
    procs = Processes(root / "logs")
    try:
        client = await DevServer(root / "data", procs, codec_keys=CODEC_KEYS).start()
        yield WorkflowEnvironment.from_client(client)
    finally:
        procs.close()


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def dev_settings(dev_env: WorkflowEnvironment, tmp_path_factory) -> AsyncIterator[Settings]:
    """A real worker with the real activities on the session's dev server."""
    settings = Settings(task_queue=f"tests-{uuid.uuid4().hex[:8]}",
                        archive_dir=Path(tmp_path_factory.mktemp("archive")), codec_keys=CODEC_KEYS,
                        documents_dir=Path(tmp_path_factory.mktemp("documents")))
    async with create_worker(dev_env.client, settings):
        yield settings


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def dev_client(dev_env: WorkflowEnvironment) -> Client:
    return dev_env.client


@pytest_asyncio.fixture(loop_scope="session")
async def skipping_env() -> AsyncIterator[WorkflowEnvironment]:
    """Its own time-skipping server: time skipping is global to an environment."""
    env = await WorkflowEnvironment.start_time_skipping(
        test_server_existing_path=installed_binary("temporal-test-server"), data_converter=DATA_CONVERTER)
    await register_search_attributes(env.client, env.client.namespace)
    yield env
    await env.shutdown()


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def api_settings(dev_settings: Settings, tmp_path_factory) -> Settings:
    """The settings of the app ``api_url`` serves: dev mode, a free port, its own data directory
    (where its users are kept), caseload figures at most a second old (tests read them right after
    the cases they drive)."""
    return dataclasses.replace(dev_settings, dev_mode=True, api_port=free_port(), api_timeout=5.0,
                               data_dir=tmp_path_factory.mktemp("data"), caseload_max_age=1.0)


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def api_url(dev_env: WorkflowEnvironment, api_settings: Settings) -> AsyncIterator[str]:
    """The product's app (the API and the web application, as `treatyflow api` serves it) over
    real HTTP (uvicorn on a free loopback port), in dev mode (demo keys), against the session's
    dev server and worker."""
    from web.app import create_app

    async with serve(create_app(api_settings, dev_env.client), api_settings.api_port) as url:
        yield url
