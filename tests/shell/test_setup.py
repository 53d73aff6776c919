"""`treatyflow setup` prepares a namespace of a running server, and running it again is harmless."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import timedelta

import pytest
from temporalio.api.operatorservice.v1 import ListSearchAttributesRequest
from temporalio.api.workflowservice.v1 import DescribeNamespaceRequest, RegisterNamespaceRequest

from workflows import search_attributes

pytestmark = pytest.mark.asyncio(loop_scope="session")


async def test_setup_registers_the_search_attributes_and_the_retention_twice_over(dev_env):
    client = dev_env.client
    namespace = "setup-test"
    await client.workflow_service.register_namespace(RegisterNamespaceRequest(
        namespace=namespace, workflow_execution_retention_period=timedelta(days=1)))
    env = {**os.environ, "TEMPORAL_ADDRESS": client.service_client.config.target_host,
           "TEMPORAL_NAMESPACE": namespace, "TREATYFLOW_RETENTION_DAYS": "400"}
    for _ in range(2):
        done = subprocess.run([sys.executable, "-m", "treatyflow.cli", "setup"], env=env, capture_output=True,
                              text=True, timeout=60)
        assert done.returncode == 0, done.stderr
        assert "retention 400 days" in done.stdout
    listed = await client.operator_service.list_search_attributes(ListSearchAttributesRequest(namespace=namespace))
    assert {k.name for k in search_attributes.ALL} <= set(listed.custom_attributes)
    described = await client.workflow_service.describe_namespace(DescribeNamespaceRequest(namespace=namespace))
    assert described.config.workflow_execution_retention_ttl.ToTimedelta() == timedelta(days=400)
