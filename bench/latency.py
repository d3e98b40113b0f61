#!/usr/bin/env python
"""Measure event latency from a service's commit to the consuming handler's commit.

Processes: a throwaway nats-server, a throwaway database on the server of
DATABASE_URL, and real `relay_outbox --follow --module probe` and
`run_consumers --module probe` processes. The consumer process runs
bench/latency_settings.py, whose probe handler does nothing but record the
time after its transaction commits.

The two timestamps, both time.time() on this machine's clock:

- committed: taken in this process right after the transaction that
  appended the event to the probe outbox (``outbox_append`` inside
  ``transaction.atomic``, as a service does) returned, so after COMMIT;
- applied: taken in the consumer process by a ``transaction.on_commit``
  callback of the handler's transaction, so after the inbox row and the
  handler's work committed.

Latency is applied minus committed, for every event. Three phases:

- saturation: --saturation-producers processes (forked from this one)
  append one event per transaction as fast as they can for
  --saturation-seconds. The throughput of the whole path, from the
  services' commits through the relay and JetStream to the handler's
  commit, is the events applied divided by the time from the first commit
  to the last handler commit. On a small machine the producers' own
  commits take a share of the cores, as a service's do;
- steady: one event per transaction at --rate events per second (default:
  half the saturation throughput) for --seconds seconds, offered by
  --producers processes, each at its share of the rate, because one
  process committed at most 871 transactions per second on a 2-core
  machine;
- backlog: --backlog events appended as fast as this process can, 100 per
  transaction, so they arrive faster than the consumer applies them. Each
  event's latency includes its wait behind the others.

    .venv/bin/python scripts/testenv.py -- .venv/bin/python bench/latency.py
"""

import argparse
import math
import multiprocessing
import os
import sys
import tempfile
import time
from pathlib import Path

import benchlib

sys.path.insert(0, str(benchlib.ROOT))
# Events per transaction in the backlog phase.
BACKLOG_CHUNK = 100
# Distinct aggregates of one producer; the relay keeps at most one event per aggregate in flight.
AGGREGATES = 1000
# Events per second one producer process offers by default. One process
# committed at most 871 single-event transactions per second on a 2-core machine.
RATE_PER_PRODUCER = 600
MAX_PRODUCERS = 16
# Event numbers of producer n start at (n + 1) times this.
PRODUCER_SEQUENCE_SPAN = 10_000_000


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--rate", type=float, default=None,
        help="Offered events per second in the steady phase (default: half the saturation throughput).",
    )
    parser.add_argument(
        "--saturation-seconds", type=float, default=10,
        help="Length of the saturation phase in seconds (default: 10).",
    )
    parser.add_argument(
        "--saturation-producers", type=int, default=None,
        help="Processes appending flat out in the saturation phase (default: one per core, at least 2).",
    )
    parser.add_argument("--seconds", type=float, default=20, help="Length of the steady phase in seconds (default: 20).")
    parser.add_argument(
        "--producers", type=int, default=None,
        help=f"Processes that offer the steady rate together (default: one per {RATE_PER_PRODUCER} events/s).",
    )
    parser.add_argument("--backlog", type=int, default=5000, help="Events in the backlog burst (default: 5000).")
    parser.add_argument(
        "--relay-interval", type=float, default=None,
        help="relay_outbox --follow's --interval, its longest wait after an empty pass "
        "(default: the command's own default).",
    )
    parser.add_argument("--timeout", type=float, default=300, help="Seconds each phase may take to drain (default: 300).")
    benchlib.add_json_argument(parser)
    options = parser.parse_args()
    if (options.rate is not None and options.rate <= 0) or options.seconds <= 0 or options.backlog < 1:
        parser.error("--rate and --seconds must be positive and --backlog at least 1")
    if options.saturation_seconds <= 0:
        parser.error(f"--saturation-seconds must be positive, got {options.saturation_seconds}")
    if options.saturation_producers is None:
        options.saturation_producers = min(max(2, os.cpu_count() or 1), MAX_PRODUCERS)
    for name in ("producers", "saturation_producers"):
        value = getattr(options, name)
        if value is not None and not 1 <= value <= MAX_PRODUCERS:
            parser.error(f"--{name.replace('_', '-')} must be from 1 to {MAX_PRODUCERS}, got {value}")
    server_url = benchlib.server_url_or_exit(parser)
    benchlib.sigterm_as_exit()

    log_path = Path(tempfile.mkstemp(prefix="bench-latency-", suffix=".log")[1])
    children = benchlib.Children("latency")
    try:
        with benchlib.ThrowawayNats() as nats_server, benchlib.ThrowawayDatabase(server_url, "latency") as database:
            environment = {
                **os.environ,
                "DATABASE_URL": database.url,
                "EVENT_BUS": "nats",
                "NATS_URL": nats_server.url,
                "DJANGO_SETTINGS_MODULE": "bench.latency_settings",
                "BENCH_LATENCY_LOG": str(log_path),
                "LOG_LEVEL": "WARNING",
            }
            try:
                benchlib.manage_run(environment, "migrate", "-v0")
                benchlib.manage_run(environment, "bus", "ensure")
                children.manage("consumers", environment, "run_consumers", "--module", "probe")
                relay = ["relay_outbox", "--follow", "--module", "probe"]
                if options.relay_interval is not None:
                    relay += ["--interval", str(options.relay_interval)]
                children.manage("relay", environment, *relay)
                os.environ.update(environment)
                import django

                django.setup()
                from django.utils import timezone

                from billing.tenancy.services import tenant_ensure

                # The consumer dead-letters events of a tenant that does not exist.
                tenant_ensure(tenant_id="bench", name="Benchmark tenant", now=timezone.now())
                warm_up(children, log_path, options.timeout)
                saturation = saturation_phase(options.saturation_seconds, options.saturation_producers)
                saturation_latencies = collect(children, log_path, saturation, options.timeout)
                throughput = path_throughput(saturation, saturation_latencies)
                rate = options.rate if options.rate is not None else throughput / 2
                producers = options.producers or math.ceil(rate / RATE_PER_PRODUCER)
                steady = steady_phase(rate, options.seconds, producers)
                # The rate the producers achieved between their first and last commit,
                # which is lower than --rate when they cannot keep up.
                commit_times = [moment for _, moment in steady]
                offered = (len(steady) - 1) / max(max(commit_times) - min(commit_times), 1e-9)
                steady_latencies = collect(children, log_path, steady, options.timeout)
                backlog = backlog_phase(options.backlog)
                backlog_latencies = collect(children, log_path, backlog, options.timeout)
            finally:
                children.stop_all()
                if "django.db" in sys.modules:
                    sys.modules["django.db"].connections.close_all()
    finally:
        log_path.unlink(missing_ok=True)

    table = benchlib.Table(
        "Event latency, service commit to handler commit (probe event, trivial handler)",
        ["phase", "events", "offered events/s", "p50 ms", "p99 ms", "max ms"],
    )
    figures = {
        "saturation_throughput": throughput,
        "saturation_producers": options.saturation_producers,
        "steady_rate_asked": rate,
        "steady_rate_offered": offered,
        "producers": producers,
    }
    phases = (
        ("saturation", saturation_latencies, throughput),
        ("steady", steady_latencies, offered),
        ("backlog", backlog_latencies, None),
    )
    for name, latencies, phase_rate in phases:
        ordered = sorted(latencies)
        row = {
            "events": len(ordered),
            "p50_ms": benchlib.percentile(ordered, 0.50) * 1000,
            "p99_ms": benchlib.percentile(ordered, 0.99) * 1000,
            "max_ms": ordered[-1] * 1000,
        }
        figures[name] = row
        if name == "backlog":
            label = f"backlog ({options.backlog} at once)"
        elif name == "saturation":
            label = f"saturation ({options.saturation_producers} processes flat out; events/s applied)"
        else:
            label = f"steady ({producers} producer process{'es' if producers > 1 else ''})"
        shown_rate = phase_rate if phase_rate is not None else "burst"
        table.add(label, row["events"], shown_rate, row["p50_ms"], row["p99_ms"], row["max_ms"])
    benchlib.write_result(options.json, [table], figures)
    return 0


def append_events(count: int, start: int) -> list[tuple[str, float]]:
    """Append ``count`` probe events in one transaction; return (event_id, committed time) pairs."""
    from django.db import transaction
    from django.utils import timezone

    from eventbus.outbox import NewEvent, outbox_append_many
    from tests.probe import events

    batch = [
        NewEvent(
            events.VALUE_SET, "probe", f"agg-{index // PRODUCER_SEQUENCE_SPAN}-{index % AGGREGATES}",
            index % PRODUCER_SEQUENCE_SPAN // AGGREGATES + 1, "bench", {"value": str(index)},
        )
        for index in range(start, start + count)
    ]
    with transaction.atomic(using="notifications"):
        envelopes = outbox_append_many(module="probe", events=batch, occurred_at=timezone.now())
    committed = time.time()
    return [(str(envelope.event_id), committed) for envelope in envelopes]


_sequence = 0


def next_events(count: int) -> list[tuple[str, float]]:
    global _sequence
    appended = append_events(count, _sequence)
    _sequence += count
    return appended


def warm_up(children, log_path: Path, timeout: float) -> None:
    """Send a few events first, so connection set-up and the first pull are not measured."""
    collect(children, log_path, next_events(10), timeout)


def steady_phase(rate: float, seconds: float, producers: int) -> list[tuple[str, float]]:
    """Offer ``rate`` events per second for ``seconds``, one per transaction, from ``producers`` processes."""
    from django.db import connections

    # A forked process must not share this process's database connections.
    connections.close_all()
    shares = [(rate / producers, seconds, producer) for producer in range(producers)]
    with multiprocessing.get_context("fork").Pool(producers) as pool:
        return [pair for part in pool.starmap(produce_steadily, shares) for pair in part]


def produce_steadily(rate: float, seconds: float, producer: int) -> list[tuple[str, float]]:
    """Append one event per transaction at ``rate`` per second for ``seconds``; runs in a producer process."""
    global _sequence
    # Each producer numbers its events apart, so its aggregates are its own.
    _sequence = (producer + 1) * PRODUCER_SEQUENCE_SPAN
    committed = []
    started = time.monotonic()
    for number in range(int(rate * seconds)):
        delay = started + number / rate - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        committed += next_events(1)
    return committed


def saturation_phase(seconds: float, producers: int) -> list[tuple[str, float]]:
    """Append one event per transaction as fast as ``producers`` processes can, for ``seconds``."""
    from django.db import connections

    connections.close_all()
    with multiprocessing.get_context("fork").Pool(producers) as pool:
        parts = pool.starmap(produce_flat_out, [(seconds, producer) for producer in range(producers)])
    return [pair for part in parts for pair in part]


def produce_flat_out(seconds: float, producer: int) -> list[tuple[str, float]]:
    """Append one event per transaction until ``seconds`` have passed; runs in a producer process."""
    global _sequence
    # Numbered apart from the steady phase's producers, so each aggregate's versions keep rising.
    _sequence = (MAX_PRODUCERS + producer + 1) * PRODUCER_SEQUENCE_SPAN
    committed = []
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        committed += next_events(1)
    return committed


def path_throughput(committed: list[tuple[str, float]], latencies: list[float]) -> float:
    """Return the events applied per second, from the first commit to the last handler commit."""
    applied = [moment + latency for (_, moment), latency in zip(committed, latencies, strict=True)]
    first = min(moment for _, moment in committed)
    return len(committed) / max(max(applied) - first, 1e-9)


def backlog_phase(count: int) -> list[tuple[str, float]]:
    committed = []
    for start in range(0, count, BACKLOG_CHUNK):
        committed += next_events(min(BACKLOG_CHUNK, count - start))
    return committed


def collect(children, log_path: Path, committed: list[tuple[str, float]], timeout: float) -> list[float]:
    """Wait until the handler recorded every event in ``committed``; return their latencies in seconds."""
    wanted = dict(committed)

    def applied_times():
        dead = dead_letter_count()
        if dead:
            raise SystemExit(f"the consumer dead-lettered {dead} probe event(s); see {children.logs['consumers']}")
        times = {}
        with open(log_path) as log:
            for line in log:
                event_id, _, moment = line.strip().partition(" ")
                if event_id in wanted and moment:
                    times[event_id] = float(moment)
        return times if len(times) == len(wanted) else None

    applied = benchlib.wait_until(
        applied_times, timeout=timeout, what=f"the consumer applying {len(wanted)} events", interval=0.5,
        children=children,
    )
    return [applied[event_id] - moment for event_id, moment in wanted.items()]


def dead_letter_count() -> int:
    from eventbus.registry import get_module

    probe = get_module("probe")
    return probe.dead_letters.objects.using(probe.alias).count()


if __name__ == "__main__":
    sys.exit(main())
