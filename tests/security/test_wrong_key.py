"""A worker or API whose keys cannot read the cases on the server stops at start-up."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import uuid

import httpx
import pytest
from temporalio.client import Client

from tests.conftest import CODEC_KEYS
from tests.support import Proc, Processes, base_env, codec_keys_env, free_port, until

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


# ---- the worker's readiness ---------------------------------------------------------------------

async def readyz(url: str) -> tuple[int, str] | None:
    """The status and body of the worker's /readyz, or None while nothing answers there."""
    try:
        async with httpx.AsyncClient(timeout=2) as http:
            answer = await http.get(f"{url}/readyz")
            return answer.status_code, answer.text
    except httpx.HTTPError:
        return None


class Gate:
    """A TCP relay to the Temporal server that holds every connection until it is opened: a
    worker behind it is stuck connecting for as long as the test likes."""

    def __init__(self, target: str) -> None:
        self.host, _, port = target.rpartition(":")
        self.port = int(port)
        self.opened = asyncio.Event()
        self.held = 0

    async def relay(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.held += 1
        await self.opened.wait()
        upstream_reader, upstream_writer = await asyncio.open_connection(self.host, self.port)

        async def pipe(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
            try:
                while data := await source.read(65536):
                    sink.write(data)
                    await sink.drain()
            except OSError:
                pass
            finally:
                sink.close()
        await asyncio.gather(pipe(reader, upstream_writer), pipe(upstream_reader, writer))


async def test_a_worker_is_ready_only_once_its_keys_read_the_cases_and_it_polls(dev_client, dev_settings, tmp_path):
    """On TREATYFLOW_WORKER_METRICS: /readyz is 503 while the worker connects (held here by a gate in
    front of the server), a worker whose codec key is wrong never answers 200 (it says why in its
    log and exits), so a rollout cannot replace healthy workers with it; one with the right key
    answers 200 once the server has seen it poll, and /healthz is 200 all along."""
    await open_transfer(dev_client, transfer_request(), "kz-gpo", dev_settings.task_queue)  # the newest case
    procs = Processes(tmp_path)
    wrong = CodecKeys(current="test-session", keys={"test-session": os.urandom(32)})
    target = dev_client.service_client.config.target_host
    gates = {"wrong": Gate(target), "right": Gate(target)}
    servers = {name: await asyncio.start_server(gate.relay, "127.0.0.1", 0) for name, gate in gates.items()}
    health = {name: free_port() for name in gates}

    def spawn(name: str, keys: CodecKeys) -> Proc:
        env = {**base_env(), "TEMPORAL_ADDRESS": f"127.0.0.1:{servers[name].sockets[0].getsockname()[1]}",
               "TEMPORAL_NAMESPACE": dev_client.namespace, "TREATYFLOW_TASK_QUEUE": f"ready-{uuid.uuid4().hex[:8]}",
               "TREATYFLOW_CODEC_KEYS": codec_keys_env(keys), "TREATYFLOW_DATA_DIR": str(tmp_path),
               "TREATYFLOW_SIGNING_KEYS": os.environ["TREATYFLOW_SIGNING_KEYS"],
               "TREATYFLOW_WORKER_METRICS": f"127.0.0.1:{health[name]}"}
        return procs.spawn(f"worker-{name}-key", [sys.executable, "-m", "treatyflow.cli", "worker"], env)

    try:
        workers = {"wrong": spawn("wrong", wrong), "right": spawn("right", CODEC_KEYS)}
        for name, proc in workers.items():  # both held at the gate: up, not ready
            url = f"http://127.0.0.1:{health[name]}"
            answer = await until(lambda: gates[name].held and readyz(url), f"the {name}-key worker to answer", 60,
                                 every=0.1)
            assert answer[0] == 503 and "connecting to Temporal" in answer[1], answer
            async with httpx.AsyncClient() as http:
                assert (await http.get(f"{url}/healthz")).status_code == 200
                assert (await http.get(f"{url}/nothing")).status_code == 404
            gates[name].opened.set()

        bad, answers = workers["wrong"], set()
        while bad.alive():
            answer = await readyz(f"http://127.0.0.1:{health['wrong']}")
            answers.add(answer and answer[0])
            await asyncio.sleep(0.05)
        assert bad.popen.returncode != 0 and answers <= {None, 503}, (answers, bad.log_text())
        assert "worker not started" in bad.log_text() and "cannot read case" in bad.log_text(), bad.log_text()
        assert "Traceback" not in bad.log_text()  # one line that says why

        good, seen = workers["right"], []

        async def ready() -> bool:
            answer = await readyz(f"http://127.0.0.1:{health['right']}")
            seen.append(answer and answer[0])
            return seen[-1] == 200
        await until(ready, "the worker with the right key to be ready", 30, every=0.05)
        log = good.log_text()
        assert set(seen[:-1]) <= {503} and log.index('"worker started"') < log.index('"worker ready"'), (seen, log)
        async with httpx.AsyncClient() as http:  # the SDK's metrics on the same port
            metrics = await http.get(f"http://127.0.0.1:{health['right']}/metrics")
            assert metrics.status_code == 200 and "temporal_" in metrics.text, metrics.text[:500]
        good.signal(signal.SIGTERM)
        assert await good.exited(30) == 0, good.log_text()
    finally:
        procs.close()
        for server in servers.values():
            server.close()
