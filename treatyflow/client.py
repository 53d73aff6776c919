"""The one way to connect to Temporal: the same data converter on every client (worker, API,
tests, CLI): pydantic payloads, encrypted by the codec, failure messages and stack traces encoded
too. Connection security comes from Temporal's own environment configuration: TEMPORAL_ADDRESS,
TEMPORAL_NAMESPACE, TEMPORAL_API_KEY, TEMPORAL_TLS (true/false), TEMPORAL_TLS_CLIENT_CERT_PATH,
TEMPORAL_TLS_CLIENT_KEY_PATH, TEMPORAL_TLS_SERVER_CA_CERT_PATH, TEMPORAL_TLS_SERVER_NAME, or a
TOML profile (TEMPORAL_CONFIG_FILE, TEMPORAL_PROFILE)."""

from __future__ import annotations

import dataclasses
import os

from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.converter import DataConverter, DefaultFailureConverterWithEncodedAttributes
from temporalio.envconfig import ClientConfig
from temporalio.runtime import PrometheusConfig, Runtime, TelemetryConfig

from treatyflow.codec import CodecKeys, EncryptionCodec, configured_keys
from treatyflow.config import Settings

# Without a codec: only for committed test histories and for tests that read raw payloads.
PLAIN_CONVERTER = pydantic_data_converter


def data_converter(keys: CodecKeys) -> DataConverter:
    return dataclasses.replace(pydantic_data_converter, payload_codec=EncryptionCodec(keys),
                               failure_converter_class=DefaultFailureConverterWithEncodedAttributes)


def codec_keys(settings: Settings) -> CodecKeys:
    return settings.codec_keys or configured_keys(dict(os.environ), settings.data_dir, dev_mode=settings.dev_mode)


async def connect(settings: Settings, *, runtime: Runtime | None = None) -> Client:
    options = ClientConfig.load_client_connect_config()
    options["target_host"] = settings.temporal_address
    options["namespace"] = settings.temporal_namespace
    return await Client.connect(**options, data_converter=data_converter(codec_keys(settings)), runtime=runtime)


def metrics_runtime(bind_address: str) -> Runtime:
    """The SDK's own metrics (workflow-task latency, activity failures, slots, ...) served for
    Prometheus at ``bind_address`` (TREATYFLOW_WORKER_METRICS, e.g. 0.0.0.0:9000)."""
    return Runtime(telemetry=TelemetryConfig(metrics=PrometheusConfig(bind_address=bind_address)))
