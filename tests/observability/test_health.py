"""/healthz and /readyz against the real databases and NATS."""

import os

import pytest
from django.conf import settings

from tests.support import delete_all_streams, free_port


def test_healthz_without_database(client):
    # No django_db mark: any query here would fail the test.
    response = client.get("/healthz")

    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


@pytest.mark.django_db(databases="__all__")
class TestReadyz:
    def test_inprocess_bus_ready(self, client, inprocess_bus):
        response = client.get("/readyz")

        assert response.status_code == 200
        document = response.json()
        assert document["status"] == "ready"
        assert document["failed"] == []
        names = [check["name"] for check in document["checks"]]
        assert names == [*(f"database:{alias}" for alias in settings.DATABASES), "bus:inprocess"]

    def test_nats_streams_present(self, client, nats_bus):
        response = client.get("/readyz")

        assert response.status_code == 200
        document = response.json()
        assert document["failed"] == []
        names = [check["name"] for check in document["checks"]]
        assert "bus:nats" in names
        assert "stream:AR_EVENTS" in names
        assert "stream:PROBE_EVENTS" in names

    def test_nats_closed_port(self, client, settings, nats_bus):
        settings.EVENTBUS = {**settings.EVENTBUS, "NATS_URLS": [f"nats://127.0.0.1:{free_port()}"]}

        response = client.get("/readyz")

        assert response.status_code == 503
        document = response.json()
        assert document["status"] == "unavailable"
        assert document["failed"] == ["bus:nats"]
        failed_check = next(check for check in document["checks"] if check["name"] == "bus:nats")
        assert failed_check["error"].startswith("cannot reach NATS: ")

    def test_nats_stream_missing(self, client, nats_bus):
        delete_all_streams(os.environ["NATS_URL"])

        response = client.get("/readyz")

        assert response.status_code == 503
        document = response.json()
        assert "bus:nats" not in document["failed"]
        assert "stream:AR_EVENTS" in document["failed"]
        missing = next(check for check in document["checks"] if check["name"] == "stream:AR_EVENTS")
        assert missing["error"] == "stream is missing; run manage.py bus ensure"
