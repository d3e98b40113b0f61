"""The benchmark scripts run end to end on a small load, with real processes, and report consistent figures.

They measure nothing here: `make bench` does that. These runs keep the
scripts working as the code they drive changes.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def run_bench(script: str, *arguments: str, tmp_path: Path) -> dict:
    """Run bench/``script`` with ``arguments`` and return the figures of its --json output."""
    output = tmp_path / "result.json"
    completed = subprocess.run(
        [sys.executable, str(ROOT / "bench" / script), *arguments, "--json", str(output)],
        cwd=ROOT, env=os.environ, capture_output=True, text=True, timeout=300,
    )
    assert completed.returncode == 0, completed.stdout[-3000:] + completed.stderr[-3000:]
    return json.loads(output.read_text())["figures"]


def test_latency_phases(tmp_path):
    figures = run_bench(
        "latency.py", "--saturation-seconds", "1", "--seconds", "1", "--backlog", "50", tmp_path=tmp_path,
    )

    assert figures["saturation"]["events"] > 0
    assert figures["steady_rate_asked"] == pytest.approx(figures["saturation_throughput"] / 2)
    assert figures["steady"]["events"] > 0
    assert figures["backlog"]["events"] == 50
    for phase in ("saturation", "steady", "backlog"):
        assert 0 < figures[phase]["p50_ms"] <= figures[phase]["p99_ms"] <= figures[phase]["max_ms"]


def test_bill_run_settles(tmp_path):
    figures = run_bench("bill_run.py", "--subscriptions", "30", "--timeout", "120", tmp_path=tmp_path)

    # One customer in ten has a card that is declined, so its payment waits for a retry.
    assert figures["payments"] == {"succeeded": 27, "retry_scheduled": 3, "failed": 0, "pending": 0, "processing": 0}
    # An invoice email and a payment email per subscription.
    assert figures["emails_sent"] == 60
    assert figures["dead_letters"] == 0
    assert figures["invoices_created_seconds"] <= figures["settled_seconds"]
    assert set(figures["peak_memory_mib"]) == {"bill_run", "consumers-0", "relay"}
