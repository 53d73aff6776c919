"""A worker or API whose keys cannot read the cases on the server stops at start-up."""

from __future__ import annotations

import os

import pytest
from temporalio.client import Client

from treatyflow.cases import open_transfer
from treatyflow.client import data_converter, verify_keys
from treatyflow.codec import CodecKeyError, CodecKeys
from treatyflow.samples import transfer_request

pytestmark = pytest.mark.asyncio(loop_scope="session")


async def test_the_right_keys_pass_and_a_wrong_key_fails_loudly(dev_client, dev_settings):
    await open_transfer(dev_client, transfer_request(), "kz-gpo", dev_settings.task_queue)  # the newest case
    await verify_keys(dev_client)
    wrong = CodecKeys(current="test-session", keys={"test-session": os.urandom(32)})  # same id, other key
    other = Client(dev_client.service_client, namespace=dev_client.namespace, data_converter=data_converter(wrong))
    with pytest.raises(CodecKeyError, match="cannot read case"):
        await verify_keys(other)
    missing = CodecKeys(current="k-new", keys={"k-new": os.urandom(32)})  # the old key was dropped
    other = Client(dev_client.service_client, namespace=dev_client.namespace, data_converter=data_converter(missing))
    with pytest.raises(CodecKeyError, match="old key is missing"):
        await verify_keys(other)
