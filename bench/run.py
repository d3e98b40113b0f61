#!/usr/bin/env python
"""Run every benchmark in bench/ and append one dated record to docs/benchmarks.md.

`make bench` runs this through scripts/testenv.py, which provides PostgreSQL
and a JetStream nats-server. Each benchmark runs as its own process, prints
its table, and hands its figures back as JSON; this script then prints and
records the summary of ratios to the raw limits measured in the same run.
docs/benchmarks.md defines every figure and limit.

    make bench
    make bench BENCH_ARGS="--subscriptions 100000"
    .venv/bin/python scripts/testenv.py -- .venv/bin/python bench/run.py --no-record
"""

import argparse
import json
import os
import platform
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlparse

import benchlib

RECORD_PATH = benchlib.ROOT / "docs" / "benchmarks.md"
RECORDS_HEADING = "## Records"
STEPS = ("throughput", "limits", "comparison", "latency", "bill-run", "embedded")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--subscriptions", type=int, default=10000,
                        help="Subscriptions in the PostgreSQL and JetStream bill run (default: 10000).")
    parser.add_argument("--consumers", type=int, default=1,
                        help="run_consumers processes in the PostgreSQL and JetStream bill run (default: 1).")
    parser.add_argument("--embedded-subscriptions", type=int, default=None,
                        help="Subscriptions in the embedded bill run (default: same as --subscriptions).")
    parser.add_argument("--events", type=int, default=20000,
                        help="Events for the relay, consumer, raw-limit and comparison runs (default: 20000).")
    parser.add_argument("--latency-rate", type=float, default=None,
                        help="Steady offered rate in events/s (default: half the throughput latency.py "
                        "measures in its saturation phase).")
    parser.add_argument("--latency-seconds", type=float, default=20, help="Length of the steady phase in seconds (default: 20).")
    parser.add_argument("--backlog", type=int, default=5000, help="Events in the latency backlog burst (default: 5000).")
    parser.add_argument("--only", action="append", choices=STEPS, metavar="STEP",
                        help=f"Run only this step; repeat for several ({', '.join(STEPS)}; default: all).")
    parser.add_argument("--no-record", action="store_true", help=f"Do not append the record to {RECORD_PATH.name}.")
    options = parser.parse_args()
    if options.subscriptions < 1 or options.events < 1 or options.backlog < 1 or options.consumers < 1:
        parser.error("--subscriptions, --events, --backlog and --consumers must be at least 1")
    if options.embedded_subscriptions is not None and options.embedded_subscriptions < 1:
        parser.error(f"--embedded-subscriptions {options.embedded_subscriptions} must be at least 1")
    server_url = benchlib.server_url_or_exit(parser)
    if not os.environ.get("NATS_URL"):
        parser.error("NATS_URL is not set; run through scripts/testenv.py")
    steps = options.only or list(STEPS)

    started_at = datetime.now(UTC)
    machine = describe_machine(server_url, os.environ["NATS_URL"])
    results: dict[str, dict] = {}
    running: list[subprocess.Popen] = []

    def stop_running(signum, frame):
        # Each benchmark stops its own children and drops its databases on SIGTERM.
        for process in running:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in running:
            try:
                process.wait(timeout=benchlib.STOP_GRACE_SECONDS * 2)
            except subprocess.TimeoutExpired:
                process.kill()
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, stop_running)
    signal.signal(signal.SIGINT, stop_running)
    timings = {}
    failures: list[str] = []

    def step(name: str, script: str, *arguments: str) -> None:
        if name not in steps:
            return
        with tempfile.NamedTemporaryFile(prefix=f"bench-{name}-", suffix=".json", delete=False) as handle:
            output = Path(handle.name)
        print(f"== {name}: {script} {' '.join(arguments)}", flush=True)
        began = time.monotonic()
        process = subprocess.Popen([sys.executable, str(benchlib.ROOT / "bench" / script), *arguments,
                                    "--json", str(output)], cwd=benchlib.ROOT)
        running.append(process)
        code = process.wait()
        running.remove(process)
        timings[name] = time.monotonic() - began
        try:
            if code != 0:
                # Later steps still run, so one failure does not hide the other figures.
                failures.append(f"bench/{script} failed with exit code {code}")
                print(f"== {name} failed with exit code {code}; continuing with the next step", flush=True)
                return
            results[name] = json.loads(output.read_text())
        finally:
            output.unlink(missing_ok=True)

    step("throughput", "bus_throughput.py", "--events", str(options.events))
    body_bytes = results.get("throughput", {}).get("figures", {}).get("body_bytes", 340)
    step("limits", "raw_limits.py", "--events", str(options.events), "--body-bytes", str(body_bytes))
    step("comparison", "outbox_comparison.py", "--events", str(options.events))
    rate = [] if options.latency_rate is None else ["--rate", str(options.latency_rate)]
    step("latency", "latency.py", *rate, "--seconds", str(options.latency_seconds), "--backlog", str(options.backlog))
    step("bill-run", "bill_run.py", "--subscriptions", str(options.subscriptions), "--consumers", str(options.consumers))
    step("embedded", "bill_run.py", "--embedded", "--subscriptions",
         str(options.embedded_subscriptions or options.subscriptions))

    summary = summarize(results)
    print(summary.text(), flush=True)
    seconds = (datetime.now(UTC) - started_at).total_seconds()
    if failures:
        print(f"\nNothing was recorded because {len(failures)} step(s) failed: {'; '.join(failures)}", file=sys.stderr)
        return 1
    if not options.no_record:
        append_record(started_at, seconds, machine, options, summary, results, timings)
        print(f"\nAppended the record to {RECORD_PATH}", flush=True)
    return 0


def summarize(results: dict) -> benchlib.Table:
    """Return each measured figure beside the raw limit it is compared with."""
    table = benchlib.Table("Summary: each figure and its raw limit from the same run",
                           ["figure", "measured", "raw limit", "ratio"])
    limits = results.get("limits", {}).get("figures", {})
    throughput = results.get("throughput", {}).get("figures", {})
    comparison = results.get("comparison", {}).get("figures", {})

    def ratio_row(label: str, measured, limit, unit: str = "events/s") -> None:
        if measured is None:
            return
        if limit:
            table.add(label, f"{measured:,.0f} {unit}", f"{limit:,.0f} {unit}", f"{measured / limit:.0%}")
        else:
            table.add(label, f"{measured:,.0f} {unit}", "not measured", "")

    ratio_row("relay (relay_outbox)", throughput.get("relay"), limits.get("relay_limit"))
    ratio_row("consumer (ConsumerRunner, trivial handler)", throughput.get("consumer"), limits.get("consumer_limit"))
    ratio_row("nats-outbox PollingRelay", comparison.get("nats_outbox"), limits.get("relay_limit"))
    ratio_row("this platform's relay, same comparison run", comparison.get("ours"), limits.get("relay_limit"))

    bill_run = results.get("bill-run", {}).get("figures")
    if bill_run:
        settled = bill_run["settled_seconds"]
        raw = raw_seconds(bill_run["events"], limits)
        consumers = bill_run.get("consumers", 1)
        label = (f"bill run of {bill_run['subscriptions']:,} to settled, PostgreSQL + JetStream, "
                 f"{consumers} consumer process{'es' if consumers > 1 else ''}")
        if raw:
            table.add(label, f"{settled:.1f} s", f"{raw:.1f} s (lower bound)", f"{settled / raw:.1f}x the raw time")
        else:
            table.add(label, f"{settled:.1f} s", "not measured", "")
    embedded = results.get("embedded", {}).get("figures")
    if embedded:
        # The raw limits are PostgreSQL's and JetStream's, which the embedded setup does not use.
        table.add(f"bill run of {embedded['subscriptions']:,} to settled, embedded",
                  f"{embedded['settled_seconds']:.1f} s", "no SQLite limit measured", "")
    latency = results.get("latency", {}).get("figures")
    if latency:
        steady = latency["steady"]
        producers = latency.get("producers", 1)
        label = f"latency p50 at {latency['steady_rate_offered']:.0f} events/s, {producers} producer(s)"
        saturation = latency.get("saturation_throughput")
        if saturation:
            table.add(f"event path, commit to handler commit, {latency['saturation_producers']} producers flat out",
                      f"{saturation:,.0f} events/s", "no raw limit", "")
            label += f" (half the path's {saturation:,.0f})"
        table.add(label, f"{steady['p50_ms']:.0f} ms", "no raw limit", "")
    return table


def raw_seconds(events: dict, limits: dict) -> float | None:
    """Return the seconds the raw limits allow for a run's events, done one after another.

    Every applied event costs one pass through the consumer limit, which
    includes its inbox commit. A handler's outgoing events commit in that same
    transaction, so every published event costs one row of a bulk outbox
    insert and one pass through the relay limit. Events published outside a
    handler need commits of their own that this leaves out, so the result is
    a lower bound.
    """
    needed = ("outbox_insert_bulk", "relay_limit", "consumer_limit")
    if not all(limits.get(name) for name in needed):
        return None
    published = sum(counts["outbox"] for counts in events.values())
    applied = sum(counts["inbox"] for counts in events.values())
    return (published / limits["outbox_insert_bulk"] + published / limits["relay_limit"]
            + applied / limits["consumer_limit"])


def describe_machine(server_url: str, nats_url: str) -> dict:
    load = os.getloadavg()
    return {
        "cores": os.cpu_count(),
        "memory": f"{_meminfo_kib('MemTotal') / 1024 / 1024:.1f} GiB",
        "cpu": _cpu_model(),
        "os": f"{_os_name()}, kernel {platform.release()}",
        "python": platform.python_version(),
        "postgresql": _postgres_version(server_url),
        "nats-server": _nats_version(nats_url),
        "load average at start (1, 5, 15 min)": f"{load[0]:.2f}, {load[1]:.2f}, {load[2]:.2f}",
    }


def _meminfo_kib(key: str) -> int:
    with open("/proc/meminfo") as meminfo:
        for line in meminfo:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    return 0


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except FileNotFoundError:
        pass
    return platform.processor() or "unknown"


def _os_name() -> str:
    try:
        text = Path("/etc/os-release").read_text()
    except FileNotFoundError:
        return platform.system()
    match = re.search(r'^PRETTY_NAME="?([^"\n]+)"?', text, re.MULTILINE)
    return match.group(1) if match else platform.system()


def _postgres_version(server_url: str) -> str:
    import psycopg

    with psycopg.connect(benchlib.libpq_url(server_url)) as connection:
        version = connection.execute("SHOW server_version").fetchone()[0]
        fsync = connection.execute("SHOW fsync").fetchone()[0]
        synchronous = connection.execute("SHOW synchronous_commit").fetchone()[0]
    return f"{version} (fsync {fsync}, synchronous_commit {synchronous})"


def _nats_version(url: str) -> str:
    parsed = urlparse(url.split(",")[0])
    with socket.create_connection((parsed.hostname or "127.0.0.1", parsed.port or 4222), timeout=5) as sock:
        info = json.loads(sock.makefile("rb").readline().decode()[5:])
    return f"{info['version']} (JetStream)"


def append_record(started_at, seconds, machine, options, summary, results, timings) -> None:
    lines = [
        "",
        f"### {started_at:%Y-%m-%d %H:%M} UTC",
        "",
        f"`{' '.join(['bench/run.py', *sys.argv[1:]])}`, {seconds / 60:.1f} minutes in all.",
        "",
        "| machine | |",
        "|---|---|",
        *[f"| {key} | {value} |" for key, value in machine.items()],
        "",
        summary.markdown(),
    ]
    for name in STEPS:
        if name not in results:
            continue
        lines += ["", f"Step `{name}` took {timings[name]:.0f} s."]
        for table in results[name]["tables"]:
            lines += ["", benchlib.Table.from_dict(table).markdown()]
    text = RECORD_PATH.read_text() if RECORD_PATH.exists() else f"# Benchmarks\n\n{RECORDS_HEADING}\n"
    if RECORDS_HEADING not in text:
        text = text.rstrip("\n") + f"\n\n{RECORDS_HEADING}\n"
    RECORD_PATH.write_text(text.rstrip("\n") + "\n" + "\n".join(lines) + "\n")


if __name__ == "__main__":
    sys.exit(main())
