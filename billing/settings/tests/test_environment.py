import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.exceptions import ImproperlyConfigured

from billing.settings.environment import env_throttle_rate

PROJECT_DIR = Path(__file__).resolve().parents[3]


class TestEnvThrottleRate:
    @pytest.mark.parametrize("raw", ["600/minute", "10/second", "5/s", "100/hour", "1000/day", " 30/min "])
    def test_valid_rate(self, monkeypatch, raw):
        monkeypatch.setenv("API_RATE_PER_KEY", raw)

        assert env_throttle_rate("API_RATE_PER_KEY", default="600/minute") == raw.strip()

    @pytest.mark.parametrize("raw", [None, "", "  "])
    def test_unset_takes_default(self, monkeypatch, raw):
        monkeypatch.delenv("API_RATE_PER_KEY", raising=False)
        if raw is not None:
            monkeypatch.setenv("API_RATE_PER_KEY", raw)

        assert env_throttle_rate("API_RATE_PER_KEY", default="600/minute") == "600/minute"

    @pytest.mark.parametrize("raw", ["lots", "600", "600/fortnight", "1.5/second", "-1/minute", "600 / minute"])
    def test_invalid_rate(self, monkeypatch, raw):
        monkeypatch.setenv("API_RATE_PER_KEY", raw)

        with pytest.raises(ImproperlyConfigured) as raised:
            env_throttle_rate("API_RATE_PER_KEY", default="600/minute")

        assert str(raised.value) == (
            f"API_RATE_PER_KEY={raw!r} is not a request rate; use a whole number of requests per second, "
            "minute, hour or day, such as 600/minute"
        )


def test_invalid_rate_stops_start_up():
    environment = {**os.environ, "API_RATE_PER_KEY": "lots", "DJANGO_SETTINGS_MODULE": "billing.settings"}
    environment.setdefault("SECRET_KEY", "test-only")

    finished = subprocess.run(
        [sys.executable, "-c", "import django; django.setup()"],
        cwd=PROJECT_DIR, env=environment, capture_output=True, text=True, timeout=60,
    )

    assert finished.returncode != 0
    assert "ImproperlyConfigured: API_RATE_PER_KEY='lots' is not a request rate" in finished.stderr
