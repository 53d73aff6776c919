"""The one way to connect to Temporal: the same data converter on every client (worker, API,
tests, CLI): pydantic payloads, encrypted by the codec, failure messages and stack traces encoded
too. Connection security comes from Temporal's own environment configuration: TEMPORAL_ADDRESS,
TEMPORAL_NAMESPACE, TEMPORAL_API_KEY, TEMPORAL_TLS (true/false), TEMPORAL_TLS_CLIENT_CERT_PATH,
TEMPORAL_TLS_CLIENT_KEY_PATH, TEMPORAL_TLS_SERVER_CA_CERT_PATH, TEMPORAL_TLS_SERVER_NAME, or a
TOML profile (TEMPORAL_CONFIG_FILE, TEMPORAL_PROFILE)."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Sequence

from temporalio.api.common.v1 import Payload
from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.converter import DataConverter, DefaultFailureConverterWithEncodedAttributes, PayloadCodec
from temporalio.envconfig import ClientConfig
from temporalio.runtime import PrometheusConfig, Runtime, TelemetryConfig

from treatyflow.codec import CodecKeyError, CodecKeys, EncryptionCodec, configured_keys
from treatyflow.config import Settings
from treatyflow.tracing import Tracing

# Without a codec: only for committed test histories and for tests that read raw payloads.
PLAIN_CONVERTER = pydantic_data_converter


def data_converter(keys: CodecKeys) -> DataConverter:
    return dataclasses.replace(pydantic_data_converter, payload_codec=EncryptionCodec(keys),
                               failure_converter_class=DefaultFailureConverterWithEncodedAttributes)


class NoPayloads(PayloadCodec):
    """The codec of a client connected without codec keys (``connect(..., payloads=False)``):
    any payload it would send or read is refused, so none ever leaves in clear."""

    async def encode(self, payloads: Sequence[Payload]) -> list[Payload]:
        return self.refuse(payloads)

    async def decode(self, payloads: Sequence[Payload]) -> list[Payload]:
        return self.refuse(payloads)

    @staticmethod
    def refuse(payloads: Sequence[Payload]) -> list[Payload]:
        if payloads:
            raise CodecKeyError("this client was connected without codec keys: it reads and writes no payload")
        return []


def codec_keys(settings: Settings) -> CodecKeys:
    return settings.codec_keys or configured_keys(dict(os.environ), settings.data_dir, dev_mode=settings.dev_mode)


async def connect(settings: Settings, *, runtime: Runtime | None = None, payloads: bool = True,
                  tracing: Tracing | None = None) -> Client:
    """``payloads=False``: a client for the namespace's set-up only (`treatyflow setup`), which
    needs no codec keys and refuses every payload (``NoPayloads``). ``tracing``: its calls
    (start, update, query) are spans, carried into the workflows and their activities."""
    options = ClientConfig.load_client_connect_config()
    options["target_host"] = settings.temporal_address
    options["namespace"] = settings.temporal_namespace
    converter = (data_converter(codec_keys(settings)) if payloads
                 else dataclasses.replace(pydantic_data_converter, payload_codec=NoPayloads()))
    return await Client.connect(**options, data_converter=converter, runtime=runtime,
                                interceptors=[tracing.interceptor()] if tracing else [])


async def verify_keys(client: Client) -> None:
    """Fail at start-up, not in the middle of a case, when the configured keys cannot read the
    newest case on the server (a wrong or a missing old key)."""
    codec = client.data_converter.payload_codec
    if codec is None:
        return
    async for execution in client.list_workflows("CaseKind = 'transfer' OR CaseKind = 'assistance'", limit=1):
        handle = client.get_workflow_handle(execution.id, run_id=execution.run_id)
        async for event in handle.fetch_history_events():
            payloads = event.workflow_execution_started_event_attributes.input.payloads
            try:
                await codec.decode(list(payloads))
            except Exception as exc:  # noqa: BLE001 - unknown key id or authentication failure
                raise CodecKeyError(
                    f"the configured codec keys cannot read case {execution.id} ({type(exc).__name__}): "
                    "a key is wrong or an old key is missing") from None
            break


def metrics_runtime(bind_address: str) -> Runtime:
    """The SDK's own metrics (workflow-task latency, activity failures, slots, ...) served for
    Prometheus at ``bind_address`` (TREATYFLOW_WORKER_METRICS, e.g. 0.0.0.0:9000)."""
    return Runtime(telemetry=TelemetryConfig(metrics=PrometheusConfig(bind_address=bind_address)))
