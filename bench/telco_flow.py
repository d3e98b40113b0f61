#!/usr/bin/env python
"""Run the whole billing flow on a customer CSV over PostgreSQL and NATS JetStream.

Steps, each timed: migrate a new database, import the CSV with a mapping,
run one bill run, then start `run_consumers` and `relay_outbox --follow`
processes and wait until the flow settles: every outbox drained, every
durable consumer caught up, and the figures of `billing_status` stable.

It creates the database on the PostgreSQL server of DATABASE_URL and drops
it at the end (keep it with --keep). The NATS server of NATS_URL should be a
fresh one, as scripts/testenv.py starts:

    .venv/bin/python scripts/testenv.py -- .venv/bin/python bench/telco_flow.py \\
        PATH/telco-customers.csv --mapping examples/telco-mapping.json --as-of 2026-12-01
"""

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import urlparse, urlunparse

import psycopg

ROOT = Path(__file__).resolve().parent.parent
# Seconds between two looks at the flow while it settles.
POLL_SECONDS = 1.0
# The flow counts as settled after this many identical looks in a row.
STABLE_LOOKS = 3


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("csv", type=Path, help="Customer CSV file to import.")
    parser.add_argument("--mapping", type=Path, help="JSON mapping for the CSV (default: the default layout).")
    parser.add_argument("--as-of", required=True, help="Cutover and bill run date, YYYY-MM-DD.")
    parser.add_argument("--tenant", default="telco", help="Tenant id to import into (default: telco).")
    parser.add_argument("--consumers", type=int, default=1, help="run_consumers processes (default: 1).")
    parser.add_argument("--timeout", type=float, default=1800, help="Seconds to wait for the flow to settle (default: 1800).")
    parser.add_argument("--keep", action="store_true", help="Keep the database instead of dropping it.")
    args = parser.parse_args()

    if not args.csv.is_file():
        parser.error(f"CSV file {args.csv} does not exist")
    server_url = os.environ.get("DATABASE_URL", "")
    if not server_url.startswith(("postgres://", "postgresql://")):
        parser.error("DATABASE_URL must point at a PostgreSQL server; run through scripts/testenv.py")
    if not os.environ.get("NATS_URL"):
        parser.error("NATS_URL is not set; run through scripts/testenv.py")

    database = f"billing_flow_{os.getpid()}"
    database_url = urlunparse(urlparse(server_url)._replace(path=f"/{database}"))
    _admin(server_url, f'CREATE DATABASE "{database}"')
    environment = {
        **os.environ,
        "DATABASE_URL": database_url,
        "EVENT_BUS": "nats",
        "DJANGO_SETTINGS_MODULE": "billing.settings",
        "EMAIL_URL": "dummy://",
        "LOG_LEVEL": "WARNING",
    }
    processes: list[subprocess.Popen] = []
    figures: dict[str, object] = {"csv": str(args.csv), "as_of": args.as_of}
    try:
        figures["migrate_seconds"] = _timed(environment, "migrate", "-v0")
        _manage(environment, "bus", "ensure")
        import_arguments = ["import_subscriptions", str(args.csv), "--tenant", args.tenant, "--as-of", args.as_of]
        if args.mapping:
            import_arguments += ["--mapping", str(args.mapping)]
        figures["import_seconds"] = _timed(environment, *import_arguments)

        started = time.monotonic()
        bill_run = json.loads(_manage(environment, "bill_run", "--as-of", args.as_of, "--json"))
        figures["bill_run_seconds"] = round(time.monotonic() - started, 1)
        figures["periods_billed"] = bill_run["periods_billed"]

        for number in range(args.consumers):
            processes.append(_spawn(environment, "run_consumers", name=f"consumers-{number}"))
        processes.append(_spawn(environment, "relay_outbox", "--follow", "--interval", "0.2", name="relay"))

        # Read the figures in this process: a manage.py process per look
        # would take a CPU core of its own on a small machine.
        os.environ.update(environment)
        import django

        django.setup()
        from billing.operations.status import billing_status
        from eventbus.backends import get_bus

        invoices_created_at = None
        looks: list[str] = []
        while time.monotonic() - started < args.timeout:
            time.sleep(POLL_SECONDS)
            status = billing_status()
            invoices = sum(item["count"] for by_currency in status["invoices"].values() for item in by_currency.values())
            if invoices_created_at is None and invoices >= bill_run["periods_billed"]:
                invoices_created_at = time.monotonic()
            consumers_idle = all(
                row.get("pending", 0) == 0 and row.get("ack_pending", 0) == 0
                for row in get_bus().status()
                if "consumer" in row
            )
            drained = not any(status["outbox_pending"].values())
            looks.append(json.dumps(status, sort_keys=True) if drained and consumers_idle else "")
            if len(looks) >= STABLE_LOOKS and looks[-1] and len(set(looks[-STABLE_LOOKS:])) == 1:
                break
        else:
            raise SystemExit(f"the flow did not settle within {args.timeout:.0f} s; last status: {status}")

        settled_at = time.monotonic() - POLL_SECONDS * (STABLE_LOOKS - 1)
        figures["invoices_created_seconds"] = round((invoices_created_at or settled_at) - started, 1)
        figures["settled_seconds"] = round(settled_at - started, 1)
        figures["status"] = status
        get_bus().close()
        from django.db import connections

        connections.close_all()
    finally:
        for process in processes:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in processes:
            try:
                process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                process.kill()
        if not args.keep:
            _admin(server_url, f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')

    print(json.dumps(figures, indent=2))
    return 0


def _manage(environment: dict, *arguments: str) -> str:
    result = subprocess.run(
        [sys.executable, str(ROOT / "manage.py"), *arguments],
        env=environment, cwd=ROOT, capture_output=True, text=True,
    )
    if result.returncode != 0:
        raise SystemExit(f"manage.py {' '.join(arguments)} failed:\n{result.stderr or result.stdout}")
    return result.stdout


def _timed(environment: dict, *arguments: str) -> float:
    started = time.monotonic()
    output = _manage(environment, *arguments)
    if output.strip():
        print(output.strip().splitlines()[-1], file=sys.stderr)
    return round(time.monotonic() - started, 1)


def _spawn(environment: dict, *arguments: str, name: str) -> subprocess.Popen:
    log = open(Path(tempfile.gettempdir()) / f"billing-flow-{os.getpid()}-{name}.log", "w")
    return subprocess.Popen(
        [sys.executable, str(ROOT / "manage.py"), *arguments],
        env=environment, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT,
    )


def _admin(server_url: str, statement: str) -> None:
    with psycopg.connect(server_url.replace("postgres://", "postgresql://", 1), autocommit=True) as connection:
        connection.execute(statement)


if __name__ == "__main__":
    sys.exit(main())
