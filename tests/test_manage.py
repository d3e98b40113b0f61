"""manage.py itself: how it reports a bad setting."""

import os
import subprocess
import sys

from tests.support import ROOT


def test_bad_setting_one_line_error():
    environment = {**os.environ, "EVENTBUS_CONSUMER_GROUP_SIZE": "abc"}

    finished = subprocess.run(
        [sys.executable, str(ROOT / "manage.py"), "check"],
        env=environment, cwd=ROOT, capture_output=True, text=True, timeout=60,
    )

    assert finished.returncode == 2
    assert finished.stderr == (
        "Configuration error: EVENTBUS_CONSUMER_GROUP_SIZE='abc' is not a whole number; set it to one, "
        "such as 20, or unset it for the default (20)\n"
    )
    assert "Traceback" not in finished.stdout + finished.stderr
