#!/usr/bin/env python
"""Run a bill run of N subscriptions until the flow settles, and time it.

By default the run uses PostgreSQL and NATS JetStream: a throwaway database
on the server of DATABASE_URL and a throwaway nats-server. The
`run_consumers` and `relay_outbox --follow` processes start first. Then
`bill_run` runs as its own process, and the clock starts with it. This
process looks at the flow once per --poll seconds and reports:

- invoices created: seconds until AR has one invoice per subscription;
- settled: seconds until the bill run process exited, every outbox is
  drained, every durable consumer has nothing pending or unacknowledged, and
  every invoice's payment succeeded or waits for a retry; confirmed by the
  next look finding the inbox and email counts unchanged (the first of the
  two looks is the time reported);
- peak memory (VmHWM) of every process it started;
- the events the run needed, per module, counted from the outboxes and
  inboxes afterwards.

--embedded runs the same bill run on the embedded default instead: SQLite
files in a temporary folder and the in-process bus, driven to rest by the
demo's `flow_settle` in this one process, as `make demo` does.

Seeding is not timed (see bench/seed.py for how it writes N subscriptions).

    .venv/bin/python scripts/testenv.py -- .venv/bin/python bench/bill_run.py --subscriptions 10000
"""

import argparse
import os
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import benchlib

sys.path.insert(0, str(benchlib.ROOT))

# Seconds between two progress rows, each a full status look.
PROGRESS_SECONDS = 10.0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--subscriptions", type=int, default=10000, help="Subscriptions to bill (default: 10000).")
    parser.add_argument("--embedded", action="store_true", help="Use SQLite and the in-process bus instead.")
    parser.add_argument("--consumers", type=int, default=1, help="run_consumers processes (default: 1).")
    parser.add_argument(
        "--relay-interval", type=float, default=None,
        help="Seconds relay_outbox --follow sleeps after an empty pass (default: the command's own default).",
    )
    parser.add_argument("--poll", type=float, default=0.5, help="Seconds between two looks at the flow (default: 0.5).")
    parser.add_argument(
        "--timeout", type=float, default=None,
        help="Seconds the flow may take to settle, on PostgreSQL and JetStream only "
        "(default: 600 plus 0.1 per subscription).",
    )
    parser.add_argument(
        "--profile", type=Path, metavar="FOLDER",
        help="Sample the bill run, consumer and relay processes with py-spy, write NAME.txt (collapsed "
        "stacks) to FOLDER and print each one's top functions.",
    )
    parser.add_argument(
        "--profile-gil", action="store_true",
        help="With --profile, sample only the thread holding the GIL, which shows where each "
        "process's Python CPU time goes rather than where its threads wait.",
    )
    benchlib.add_json_argument(parser)
    options = parser.parse_args()
    if options.profile is not None and options.embedded:
        parser.error("--profile works without --embedded only; profile the embedded run with py-spy record -- python bench/bill_run.py --embedded")
    if options.profile_gil and options.profile is None:
        parser.error("--profile-gil needs --profile FOLDER")
    if options.profile is not None:
        options.profile.mkdir(parents=True, exist_ok=True)
    if options.subscriptions < 1 or options.consumers < 1 or options.poll <= 0:
        parser.error("--subscriptions and --consumers must be at least 1 and --poll positive")
    if options.timeout is None:
        # A busy 2-core machine (load average above 10) needed about 0.08 s per subscription.
        options.timeout = 600 + 0.1 * options.subscriptions
    benchlib.sigterm_as_exit()
    if options.embedded:
        return run_embedded(options)
    return run_on_servers(options, benchlib.server_url_or_exit(parser))


def run_on_servers(options, server_url: str) -> int:
    as_of = datetime.now(UTC).date()
    count = options.subscriptions
    children = benchlib.Children("bill-run", profile_folder=options.profile, profile_gil=options.profile_gil)
    with benchlib.ThrowawayNats() as nats_server, benchlib.ThrowawayDatabase(server_url, "billrun") as database:
        environment = {
            **os.environ,
            "DATABASE_URL": database.url,
            "EVENT_BUS": "nats",
            "NATS_URL": nats_server.url,
            "DJANGO_SETTINGS_MODULE": "billing.settings",
            "EMAIL_URL": "dummy://",
            "PAYMENTS_GATEWAY": "simulated",
            "LOG_LEVEL": "WARNING",
        }
        try:
            benchlib.manage_run(environment, "migrate", "-v0")
            benchlib.manage_run(environment, "bus", "ensure")
            os.environ.update(environment)
            import django

            django.setup()
            from seed import bench_seed

            seed_started = time.monotonic()
            bench_seed(count=count, as_of=as_of, now=datetime.now(UTC))
            seed_seconds = time.monotonic() - seed_started
            close_connections()

            for number in range(options.consumers):
                children.manage(f"consumers-{number}", environment, "run_consumers")
            relay_arguments = ["relay_outbox", "--follow"]
            if options.relay_interval is not None:
                relay_arguments += ["--interval", str(options.relay_interval)]
            children.manage("relay", environment, *relay_arguments)

            started = time.monotonic()
            children.manage("bill_run", environment, "bill_run", "--as-of", as_of.isoformat(), "--json")
            result = watch_until_settled(children, count, started, options)
            events = events_per_module()
            close_connections()
        finally:
            children.stop_all()
            close_connections()
            if "eventbus.backends" in sys.modules:
                sys.modules["eventbus.backends"].get_bus().close()

    if options.profile is not None:
        children.print_profiles()
    figures = {
        "subscriptions": count,
        "consumers": options.consumers,
        "seed_seconds": seed_seconds,
        **result,
        "events": events,
        "peak_memory_mib": {name: kib / 1024 for name, kib in children.peak_kib.items()},
    }
    processes = "one consumer process" if options.consumers == 1 else f"{options.consumers} consumer processes"
    report(figures, options, f"PostgreSQL and NATS JetStream, {processes}")
    return 0


def watch_until_settled(children, count: int, started: float, options) -> dict:
    """Look at the flow every --poll seconds until it settles; return the timings and a progress sample.

    A look reads only cheap figures: the bill run process, the outboxes'
    pending rows (a partial index), the durable consumers' backlog in NATS,
    and the invoice count until every invoice exists. The full status, whose
    counts and sums grow with the tables, is read only when those figures
    show the flow may be idle, and for a progress row every PROGRESS_SECONDS,
    so the watching itself takes little from the run it measures.
    """
    from ar.models import Invoice
    from billing.operations.status import billing_status
    from eventbus.backends import get_bus
    from eventbus.selectors import outbox_backlogs

    invoices_at = bill_run_exit_at = None
    candidate = None
    # One row per full look: seconds, invoices, payments settled, emails, outbox pending, stream messages waiting.
    progress: list[list] = []
    last_status = None
    next_progress_at = 0.0
    long_running = [name for name in children.processes if name != "bill_run"]
    while True:
        time.sleep(options.poll)
        now = time.monotonic() - started
        children.check_alive(*long_running)
        children.sample_memory()
        if bill_run_exit_at is None and children.exited("bill_run"):
            if children.processes["bill_run"].returncode != 0:
                raise SystemExit(f"bill_run failed:\n{children.logs['bill_run'].read_text()[-3000:]}")
            bill_run_exit_at = now
        if invoices_at is None and Invoice.objects.using("ar").count() >= count:
            invoices_at = now
        outbox_pending = sum(backlog.pending for backlog in outbox_backlogs())
        consumer_rows = [row for row in get_bus().status() if "consumer" in row]
        waiting = sum(row.get("pending", 0) + row.get("ack_pending", 0) for row in consumer_rows)
        maybe_idle = outbox_pending == 0 and waiting == 0 and bill_run_exit_at is not None
        if not maybe_idle and now < next_progress_at:
            candidate = None
            if now > options.timeout:
                raise SystemExit(f"the flow did not settle within {options.timeout:.0f} s; last status: {last_status}")
            continue

        status = billing_status()
        last_status = status
        next_progress_at = now + PROGRESS_SECONDS
        invoices = sum(item["count"] for by_currency in status["invoices"].values() for item in by_currency.values())
        payments = status["payments"]
        collected = payments.get("succeeded", 0) + payments.get("retry_scheduled", 0)
        drained = not any(status["outbox_pending"].values())
        progress.append([now, invoices, collected, status["emails_sent"], sum(status["outbox_pending"].values()),
                         waiting])
        idle = drained and maybe_idle and collected >= count
        if idle:
            fingerprint = (inbox_total(), status["emails_sent"])
            if candidate is not None and candidate[1] == fingerprint:
                return {
                    "bill_run_process_seconds": bill_run_exit_at,
                    "invoices_created_seconds": invoices_at,
                    "settled_seconds": candidate[0],
                    "emails_sent": status["emails_sent"],
                    "payments": payments,
                    "dead_letters": sum(status["dead_letters"].values()),
                    "progress": progress[:: max(1, len(progress) // 12)] + [progress[-1]],
                }
            candidate = (now, fingerprint)
        else:
            candidate = None
        if now > options.timeout:
            raise SystemExit(f"the flow did not settle within {options.timeout:.0f} s; last status: {last_status}")


def inbox_total() -> int:
    from eventbus.registry import all_modules

    return sum(module.inbox.objects.using(module.alias).count() for module in all_modules())


def events_per_module() -> dict:
    """Return, per bus module, the events its outbox published and its inbox applied."""
    from django.db.models import Avg, Count
    from django.db.models.functions import Length

    from eventbus.registry import all_modules

    counts = {}
    for module in all_modules():
        outbox = module.outbox.objects.using(module.alias).aggregate(rows=Count("id"), size=Avg(Length("body")))
        counts[module.name] = {
            "outbox": outbox["rows"],
            "mean_body_bytes": round(outbox["size"] or 0),
            "inbox": module.inbox.objects.using(module.alias).count(),
        }
    return counts


def close_connections() -> None:
    if "django.db" in sys.modules:
        from django.db import connections

        connections.close_all()


def run_embedded(options) -> int:
    folder = Path(tempfile.mkdtemp(prefix="bench-embedded-"))
    try:
        for name in ("DATABASE_URL", "NATS_URL"):
            os.environ.pop(name, None)
        for name in list(os.environ):
            if name.startswith("DATABASE_URL_"):
                os.environ.pop(name)
        os.environ.update({
            "EVENT_BUS": "inprocess",
            "BILLING_DATA_DIR": str(folder),
            "DJANGO_SETTINGS_MODULE": "billing.settings",
            "EMAIL_URL": "dummy://",
            "PAYMENTS_GATEWAY": "simulated",
            "LOG_LEVEL": "WARNING",
        })
        import logging

        import django

        django.setup()
        # The demo silences the services' per-customer log lines the same way.
        logging.disable(logging.WARNING)
        from django.core.management import call_command
        from django.db import connections
        from seed import bench_seed

        from billing.operations.settle import flow_settle
        from billing.operations.status import billing_status
        from subscriptions.services import bill_run_execute

        for alias in connections:
            call_command("migrate", database=alias, interactive=False, verbosity=0)
        now = datetime.now(UTC)
        seed_started = time.monotonic()
        bench_seed(count=options.subscriptions, as_of=now.date(), now=now)
        seed_seconds = time.monotonic() - seed_started
        seed_peak = benchlib.own_peak_memory_kib()

        started = time.monotonic()
        bill_run = bill_run_execute(as_of=now.date(), now=now)
        bill_run_seconds = time.monotonic() - started
        # No simulated day passes: payments declined on the first charge stay in retry.
        settle = flow_settle(now=now, max_days=0)
        settled_seconds = time.monotonic() - started
        status = billing_status()
        events = events_per_module()
        connections.close_all()
    finally:
        import shutil

        shutil.rmtree(folder, ignore_errors=True)

    if settle.outbox_pending or bill_run.periods_billed != options.subscriptions:
        raise SystemExit(
            f"the embedded flow did not settle: {bill_run.periods_billed} periods billed, "
            f"{settle.outbox_pending} outbox events pending"
        )
    figures = {
        "subscriptions": options.subscriptions,
        "seed_seconds": seed_seconds,
        "bill_run_process_seconds": bill_run_seconds,
        "invoices_created_seconds": None,
        "settled_seconds": settled_seconds,
        "emails_sent": status["emails_sent"],
        "payments": status["payments"],
        "dead_letters": sum(status["dead_letters"].values()),
        "events": events,
        # Seeding runs in the same process; its peak is reported beside the run's.
        "peak_memory_mib": {"embedded (seed)": seed_peak / 1024,
                            "embedded (seed + run)": benchlib.own_peak_memory_kib() / 1024},
    }
    report(figures, options, "SQLite and the in-process bus (embedded default)")
    return 0


def report(figures: dict, options, setup: str) -> None:
    count = figures["subscriptions"]
    table = benchlib.Table(f"Bill run of {count} subscriptions to settled, {setup}", ["figure", "value"])
    table.add("seeding (not timed in the run), s", figures["seed_seconds"])
    table.add("bill_run step, s", figures["bill_run_process_seconds"])
    created = figures["invoices_created_seconds"]
    table.add("every invoice created, s", created if created is not None else "not observed separately")
    table.add("settled, s", figures["settled_seconds"])
    table.add("subscriptions settled per second", count / figures["settled_seconds"])
    payments = figures["payments"]
    table.add("payments succeeded / in retry",
              f"{payments.get('succeeded', 0)} / {payments.get('retry_scheduled', 0)}")
    table.add("emails sent", figures["emails_sent"])
    table.add("dead letters", figures["dead_letters"])
    for name, mebibytes in sorted(figures["peak_memory_mib"].items()):
        table.add(f"peak memory of {name}, MiB", mebibytes)
    events = benchlib.Table(
        f"Events of the bill run of {count} subscriptions, {setup}",
        ["module", "outbox (published)", "mean body bytes", "inbox (applied)"],
    )
    for module, counts in sorted(figures["events"].items()):
        events.add(module, counts["outbox"], counts["mean_body_bytes"], counts["inbox"])
    events.add("total", sum(c["outbox"] for c in figures["events"].values()), "",
               sum(c["inbox"] for c in figures["events"].values()))
    tables = [table, events]
    if figures.get("progress"):
        progress = benchlib.Table(
            f"Progress of the bill run of {count} subscriptions, {setup}",
            ["seconds", "invoices", "payments settled", "emails sent", "outbox pending", "stream messages waiting"],
        )
        for row in figures["progress"]:
            progress.add(*row)
        tables.append(progress)
    benchlib.write_result(options.json, tables, figures)


if __name__ == "__main__":
    sys.exit(main())
