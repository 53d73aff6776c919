"""What the tests and the benchmarks share: waiting for what they cannot see happen (``until``,
``poll``), the demo keys (``key``), an ASGI app over real HTTP (``serve``, ``free_port``), the
webhook receiver (``Receiver``), subprocesses ended by their owner (``Processes``) and the
Temporal dev server as `make run` starts it (``DevServer``). The requests themselves come from
``treatyflow.samples``, which the demo shares. A real PostgreSQL server, the fixture
``postgres_url``, is imported from ``tests.support.postgres`` by the tests that use it: it needs
pytest, which the benchmarks importing this package do not."""

from tests.support.devserver import DevServer
from tests.support.polling import poll, until
from tests.support.processes import REPO, Proc, Processes, base_env, codec_keys_env
from tests.support.serving import free_port, free_ports, serve
from tests.support.webhooks import Delivery, Receiver, signed_with
from treatyflow.samples import key

__all__ = ["REPO", "Delivery", "DevServer", "Proc", "Processes", "Receiver", "base_env",
           "codec_keys_env", "free_port", "free_ports", "key", "poll", "serve", "signed_with", "until"]
