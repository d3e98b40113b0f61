"""Static checks of docker-compose.yml, the Dockerfile and the Procfile.

Docker is not needed: the files are parsed and compared with the code.
"""

import re
import shlex

import pytest
import yaml
from django.core.management import get_commands

from tests.support import ROOT

BILLING_SERVICES = {"migrate", "web", "worker", "beat", "consumers"}
LONG_RUNNING = {"postgres", "nats", "redis", "web", "worker", "beat", "consumers"}
# Files whose source names every environment variable a billing process reads:
# the settings, and prometheus_client's variable in eventbus.metrics.
SETTINGS_SOURCES = [*sorted((ROOT / "billing" / "settings").glob("*.py")), ROOT / "eventbus" / "metrics.py"]


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def manage_py_commands(command: list[str] | str) -> list[str]:
    """Return the management command names that ``command`` runs through manage.py."""
    words = shlex.split(command) if isinstance(command, str) else command
    if words[:2] == ["sh", "-c"]:
        words = shlex.split(words[2])
    return [words[index + 1] for index, word in enumerate(words[:-1]) if word == "manage.py"]


class TestCompose:
    def test_services(self, compose):
        assert set(compose["services"]) == LONG_RUNNING | {"migrate"}

    def test_health_checks(self, compose):
        for name in LONG_RUNNING:
            assert compose["services"][name]["healthcheck"]["test"], name
        assert "healthcheck" not in compose["services"]["migrate"]

    def test_versions(self, compose):
        assert compose["services"]["postgres"]["image"] == "postgres:16"
        major, minor = re.match(r"nats:(\d+)\.(\d+)", compose["services"]["nats"]["image"]).groups()
        assert (int(major), int(minor)) >= (2, 10)

    def test_nats_config_and_volume(self, compose):
        nats = compose["services"]["nats"]
        assert "./deploy/nats-server.conf:/etc/nats/nats-server.conf:ro" in nats["volumes"]
        assert "nats-data:/data" in nats["volumes"]
        assert nats["command"] == ["--config", "/etc/nats/nats-server.conf"]
        config = (ROOT / "deploy" / "nats-server.conf").read_text()
        assert "sync_interval: always" in config
        assert "store_dir: /data/jetstream" in config

    def test_environment_is_read(self, compose):
        source = "\n".join(path.read_text() for path in SETTINGS_SOURCES)
        for name in BILLING_SERVICES:
            for variable in compose["services"][name]["environment"]:
                assert f'"{variable}"' in source, f"{name} sets {variable}, which no setting reads"

    def test_required_environment(self, compose):
        environment = compose["services"]["web"]["environment"]
        assert environment["EVENT_BUS"] == "nats"
        assert environment["BILLING_EMBEDDED"] == "false"
        assert environment["LOG_FORMAT"] == "json"
        for variable in ("DATABASE_URL", "NATS_URL", "CELERY_BROKER_URL", "SECRET_KEY", "ALLOWED_HOSTS", "EMAIL_URL"):
            assert environment[variable], variable

    def test_commands_exist(self, compose):
        known = get_commands()
        migrate = compose["services"]["migrate"]["command"]
        assert manage_py_commands(migrate) == ["migrate", "bus"]
        assert manage_py_commands(compose["services"]["consumers"]["command"]) == ["run_consumers"]
        for name in BILLING_SERVICES:
            for command in manage_py_commands(compose["services"][name]["command"]):
                assert command in known, f"{name} runs manage.py {command}, which does not exist"
        assert (ROOT / "deploy" / "gunicorn.conf.py").is_file()


class TestDockerfile:
    def test_base_and_user(self):
        lines = (ROOT / "Dockerfile").read_text().splitlines()
        assert "FROM python:3.11-slim" in lines
        users = [line.split()[1] for line in lines if line.startswith("USER ")]
        assert users == ["billing"]

    def test_copy_sources_exist(self):
        copies = [line.split()[1:-1] for line in (ROOT / "Dockerfile").read_text().splitlines() if line.startswith("COPY ")]
        assert copies
        for sources in copies:
            for source in sources:
                assert (ROOT / source).exists(), f"COPY source {source} does not exist"


class TestProcfile:
    def test_processes(self):
        processes = dict(
            line.split(": ", 1) for line in (ROOT / "Procfile").read_text().splitlines() if line.strip()
        )

        assert set(processes) == {"web", "worker", "beat", "consumers", "relay"}
        known = get_commands()
        for name, command in processes.items():
            for management_command in manage_py_commands(command):
                assert management_command in known, f"{name} runs manage.py {management_command}"
