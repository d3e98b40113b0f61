"""Settings for the latency benchmark's processes: the test settings plus bench.latency_probe."""

from tests.settings import *  # noqa: F403
from tests.settings import INSTALLED_APPS

INSTALLED_APPS = [*INSTALLED_APPS, "bench.latency_probe.LatencyProbeConfig"]
