import signal
import subprocess
from datetime import timedelta
from pathlib import Path

import pytest
from django.conf import settings

from billing.invariants import invariants_check

# The bus tests' throwaway nats-server and the NATS backend on it.
from tests.eventbus.conftest import nats_server, restartable_bus  # noqa: F401
from tests.support import manage_py_process

# Seconds a stopped process started by a test has to exit before it is killed.
STOP_TIMEOUT_SECONDS = 20


def bus_environment(nats_url: str) -> dict[str, str]:
    """Environment that gives a manage.py process this test's bus settings on ``nats_url``.

    Every process sharing a durable consumer must declare it with the same
    ack wait, backoff and maximum deliveries as the test process.
    """
    bus = settings.EVENTBUS
    return {
        "EVENT_BUS": "nats",
        "NATS_URL": nats_url,
        "EVENTBUS_ACK_WAIT_SECONDS": str(bus["ACK_WAIT_SECONDS"]),
        "EVENTBUS_MAX_DELIVER": str(bus["MAX_DELIVER"]),
        "EVENTBUS_BACKOFF_SECONDS": ",".join(str(delay) for delay in bus["BACKOFF_SECONDS"]),
    }


class ManagePyProcesses:
    """``manage.py`` processes started by one test, each logging to its own file."""

    def __init__(self, log_dir: Path):
        self.log_dir = log_dir
        self.started: dict[str, subprocess.Popen] = {}

    def start(self, name: str, *args: str, env: dict[str, str]) -> subprocess.Popen:
        process = manage_py_process(*args, env=env, log_path=self.log_path(name))
        self.started[name] = process
        return process

    def log_path(self, name: str) -> Path:
        return self.log_dir / f"{name}.log"

    def log(self, name: str) -> str:
        return self.log_path(name).read_text()

    def stop(self, name: str) -> int:
        """Stop process ``name`` with SIGTERM, as a deployment does, and return its exit code."""
        process = self.started[name]
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
        return process.wait(timeout=STOP_TIMEOUT_SECONDS)

    def kill_leftovers(self) -> None:
        for process in self.started.values():
            if process.poll() is None:
                # A stopped (SIGSTOP) process must run again to handle SIGKILL promptly.
                process.send_signal(signal.SIGCONT)
                process.kill()
            process.wait(timeout=STOP_TIMEOUT_SECONDS)


@pytest.fixture
def processes(tmp_path):
    """Start ``manage.py`` processes for a test; kill any still running afterwards, by PID."""
    started = ManagePyProcesses(tmp_path)
    yield started
    started.kill_leftovers()


def assert_invariants_hold(**expected_rows: int) -> None:
    """Assert every invariant holds with nothing counted as in flight (``--stale-after 0``).

    ``expected_rows`` maps check names to the least number of rows each must
    have checked, so a check that saw nothing cannot pass by accident.
    """
    report = invariants_check(stale_after=timedelta(0))
    violations = [
        f"{check.name}: {violation.message} {violation.ids}"
        for check in report.checks
        for violation in check.violations
    ]
    assert report.failed_checks == [], "invariants violated:\n" + "\n".join(violations)
    for name, least in expected_rows.items():
        assert report.check(name).rows_checked >= least, f"{name} checked fewer than {least} rows"
