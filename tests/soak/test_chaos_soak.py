"""A short chaos soak with a fixed seed: faults of every kind, then zero invariant violations.

`make chaos` runs the same script for about ten minutes. This run took
80-100 s on a shared 2-core machine, so that it fits in `make test`.
"""

import json
import os
import subprocess
import sys

import pytest

from tests.support import ROOT

SEED = 20261204
# Seconds the short soak bills under faults. Seeding and settling add 15-40 s.
DURATION_SECONDS = 45
# Seconds before the test gives up on the script, well above a normal run.
TIMEOUT_SECONDS = 600
FAULT_KINDS = ("nats_restart", "consumer_kill", "relay_kill", "db_cut")


@pytest.fixture(scope="module")
def soak_report(tmp_path_factory):
    """Run scripts/chaos.py once for this module and return its JSON report."""
    report_path = tmp_path_factory.mktemp("chaos") / "report.json"
    environment = {key: value for key, value in os.environ.items() if key != "DJANGO_SETTINGS_MODULE"}
    result = subprocess.run(
        [
            sys.executable, str(ROOT / "scripts" / "chaos.py"),
            "--duration", str(DURATION_SECONDS),
            "--seed", str(SEED),
            "--tenants", "3",
            "--customers", "30",
            # One consumer process keeps the soak near 30 database connections,
            # which leaves room on a server that other test runs share.
            "--consumers", "1",
            "--months", "3",
            "--fault-interval", "4",
            "--settle-timeout", "180",
            "--report", str(report_path),
        ],
        env=environment, cwd=ROOT, capture_output=True, text=True, timeout=TIMEOUT_SECONDS,
    )
    output = f"exit code {result.returncode}\nstdout:\n{result.stdout}\nstderr (last 4000 characters):\n{result.stderr[-4000:]}"
    assert report_path.exists(), f"the soak wrote no report\n{output}"
    report = json.loads(report_path.read_text())
    report["script_output"] = output
    report["returncode"] = result.returncode
    return report


@pytest.mark.soak
class TestShortChaosSoak:
    def test_script_exits_zero(self, soak_report):
        assert soak_report["returncode"] == 0, soak_report["script_output"]

    def test_flow_settles(self, soak_report):
        assert soak_report["settled"] is True, soak_report["status"]

    def test_every_fault_kind_injected(self, soak_report):
        for kind in FAULT_KINDS:
            assert soak_report["faults"].get(kind, 0) >= 1, soak_report["faults"]

    def test_database_cut_reached_processes(self, soak_report):
        assert soak_report["connections_cut"] >= 1

    def test_zero_violations(self, soak_report):
        failed = {
            check["name"]: check["violations"] for check in soak_report["invariants"] if not check["passed"]
        }
        assert soak_report["violations"] == 0, failed

    def test_every_invariant_checked(self, soak_report):
        assert soak_report["invariants_checked"] == 8
        assert soak_report["invariant_rows_checked"] > 0

    def test_no_dead_letters(self, soak_report):
        assert soak_report["dead_letters"] == 0

    def test_whole_flow_ran(self, soak_report):
        assert soak_report["subscriptions"] == 90
        assert soak_report["invoices"] >= 90
        assert soak_report["events_relayed"] > 0
        assert soak_report["events_applied"] > 0
