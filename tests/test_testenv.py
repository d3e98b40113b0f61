"""scripts/testenv.py stops its command and the servers it started on SIGTERM."""

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

from tests.support import free_port

ROOT = Path(__file__).resolve().parent.parent
# Writes "ready" once running, and "stopped" when SIGTERM arrives.
CHILD = """
import signal, sys, time
def stop(signum, frame):
    print("stopped", flush=True)
    sys.exit(0)
signal.signal(signal.SIGTERM, stop)
print("ready", flush=True)
time.sleep(60)
"""


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_sigterm_stops_command_and_servers(tmp_path):
    # No server listens at this NATS_URL, so testenv starts a throwaway one.
    env = {**os.environ, "NATS_URL": f"nats://127.0.0.1:{free_port()}"}
    output = tmp_path / "output.txt"
    with open(output, "w") as sink:
        testenv = subprocess.Popen(
            [sys.executable, str(ROOT / "scripts" / "testenv.py"), "--", sys.executable, "-c", CHILD],
            env=env, stdout=sink, stderr=subprocess.STDOUT, start_new_session=True,
        )
    try:
        deadline = time.monotonic() + 60
        while "ready" not in output.read_text():
            assert testenv.poll() is None, output.read_text()
            assert time.monotonic() < deadline, output.read_text()
            time.sleep(0.1)
        nats_pid = int(re.search(r"nats-server on 127\.0\.0\.1:\d+ \(pid (\d+)\)", output.read_text()).group(1))
        assert alive(nats_pid)

        testenv.send_signal(signal.SIGTERM)

        assert testenv.wait(timeout=30) == 0
        assert "stopped" in output.read_text()
        deadline = time.monotonic() + 10
        while alive(nats_pid) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not alive(nats_pid)
    finally:
        if testenv.poll() is None:
            testenv.kill()
            testenv.wait()
