"""What a Temporal namespace needs before treatyflow runs on it: the search attributes of
workflows/search_attributes.py and the retention of closed workflows. `treatyflow setup` prepares
a cluster's namespace with ``prepare_namespace``, and `treatyflow up` the embedded dev server's (its
command line names the search attributes, but the dev server registers them only when it creates
its database: one added since is registered here); the tests register the attributes on servers
started without them. Both steps are idempotent."""

from __future__ import annotations

from datetime import timedelta

from temporalio.api.enums.v1 import IndexedValueType
from temporalio.api.namespace.v1 import NamespaceConfig
from temporalio.api.operatorservice.v1 import AddSearchAttributesRequest, ListSearchAttributesRequest
from temporalio.api.workflowservice.v1 import UpdateNamespaceRequest
from temporalio.client import Client
from temporalio.service import RPCError, RPCStatusCode

from workflows import search_attributes


async def register_search_attributes(client: Client, namespace: str) -> None:
    """For servers started without them (the time-skipping test server, a new cluster); those
    already there are left as they are."""
    try:
        existing = await client.operator_service.list_search_attributes(
            ListSearchAttributesRequest(namespace=namespace))
        known = set(existing.custom_attributes) | set(existing.system_attributes)
    except RPCError as err:  # the time-skipping test server can add but not list them
        if err.status != RPCStatusCode.UNIMPLEMENTED:
            raise
        known = set()
    missing = {k.name: IndexedValueType.ValueType(k.indexed_value_type) for k in search_attributes.ALL
               if k.name not in known}
    if missing:
        await client.operator_service.add_search_attributes(
            AddSearchAttributesRequest(namespace=namespace, search_attributes=missing))


async def raise_retention(client: Client, namespace: str, days: int) -> None:
    """The namespace keeps closed workflows ``days`` days (TREATYFLOW_RETENTION_DAYS, 60 by
    default): raised from the dev server's own default, or cut from an earlier, longer one — the
    archive, not the engine, is the record of closed cases."""
    await client.workflow_service.update_namespace(UpdateNamespaceRequest(
        namespace=namespace, config=NamespaceConfig(workflow_execution_retention_ttl=timedelta(days=days))))


async def prepare_namespace(client: Client, namespace: str, retention_days: int) -> None:
    """The search attributes registered and the retention set (`treatyflow setup`)."""
    await register_search_attributes(client, namespace)
    await raise_retention(client, namespace, retention_days)
