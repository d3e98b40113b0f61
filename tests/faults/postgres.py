"""A throwaway PostgreSQL cluster that a test may stop and start, never the shared server.

The cluster is created with the installed server binaries in a temporary
folder, as scripts/testenv.py creates one, and runs as an unprivileged user
when the tests run as root, because PostgreSQL refuses to run as root.
"""

import shutil
import signal
import subprocess
import tempfile
from pathlib import Path

import psycopg

from scripts.testenv import postgres_bindir, postgres_init, postgres_spawn
from tests.support import free_port, wait_for

# Seconds the server has to start or to shut down.
SERVER_TIMEOUT_SECONDS = 30


class PostgresServer:
    """A PostgreSQL cluster on a free loopback port, restartable on the same port and data."""

    def __init__(self):
        self.bindir = postgres_bindir()
        if self.bindir is None:
            raise AssertionError(
                "no PostgreSQL server binaries (initdb, postgres) found; install them "
                "(Debian: apt-get install postgresql) to run the PostgreSQL restart tests"
            )
        self.workdir = Path(tempfile.mkdtemp(prefix="billing-postgres-"))
        self.datadir = self.workdir / "data"
        self.port = free_port()
        self.run_as = postgres_init(self.bindir, self.datadir)
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"postgres://postgres@127.0.0.1:{self.port}/postgres"

    def start(self) -> None:
        log = open(self.workdir / "server.log", "a")
        self.process = postgres_spawn(self.bindir, self.datadir, self.port, self.run_as, log)
        wait_for(self.accepts_connections, timeout=SERVER_TIMEOUT_SECONDS, message=f"PostgreSQL on port {self.port}")

    def stop(self) -> None:
        """Shut the server down in fast mode, which ends every session, as a restart does."""
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            self.process.wait(timeout=SERVER_TIMEOUT_SECONDS)
        self.process = None

    def cleanup(self) -> None:
        if self.process and self.process.poll() is None:
            # SIGQUIT is PostgreSQL's immediate shutdown.
            self.process.send_signal(signal.SIGQUIT)
            self.process.wait(timeout=SERVER_TIMEOUT_SECONDS)
        self.process = None
        shutil.rmtree(self.workdir, ignore_errors=True)

    def accepts_connections(self) -> bool:
        try:
            with psycopg.connect(self.libpq_url(), connect_timeout=2) as connection:
                connection.execute("SELECT 1")
        except psycopg.OperationalError:
            return False
        return True

    def query(self, sql: str, params: tuple = ()) -> list[tuple]:
        """Run ``sql`` on a short-lived connection of its own and return the rows."""
        with psycopg.connect(self.libpq_url(), connect_timeout=5) as connection:
            return connection.execute(sql, params).fetchall()

    def libpq_url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"
