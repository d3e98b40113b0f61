"""Log records about an event carry its ids."""

import json
import logging

import pytest
from django.conf import settings
from nats.aio.msg import Msg
from pythonjsonlogger.json import JsonFormatter

from eventbus.relay import relay_outbox
from eventbus.runner import _event_ids
from tests.observability.conftest import append_probe
from tests.probe import events
from tests.probe.models import ProbeSwitch

pytestmark = pytest.mark.django_db(databases="__all__")
EVENT_IDS = ("event_id", "event_type", "tenant_id", "correlation_id")


def test_handler_failure_carries_ids(caplog, inprocess_bus):
    ProbeSwitch.objects.using("notifications").create(name="flaky-fails")
    envelope = append_probe("x", event_type=events.FLAKY)

    with caplog.at_level(logging.INFO, logger="eventbus"):
        relay_outbox(module="probe")

    messages = [record.getMessage() for record in caplog.records if record.name == "eventbus.consumer"]
    assert messages[0].startswith("Handler failed on delivery 1 of 2")
    assert messages[1] == "Handler failed on its last delivery; dead-lettering"
    assert messages[2].startswith("Dead-lettered message on probe.events.probe.flaky.happened: handler_failed")
    for record in (record for record in caplog.records if record.name == "eventbus.consumer"):
        assert record.event_id == str(envelope.event_id)
        assert record.event_type == "probe.flaky.happened"
        assert record.tenant_id == "tenant-obs"
        assert record.correlation_id == str(envelope.correlation_id)


def test_json_line_carries_ids():
    """The formatter that LOG_FORMAT=json selects turns the ids into keys of the line."""
    config = settings.LOGGING["formatters"]["json"]
    assert config["()"] == "pythonjsonlogger.json.JsonFormatter"
    formatter = JsonFormatter(config["fmt"], rename_fields=config["rename_fields"])
    record = logging.LogRecord("eventbus.consumer", logging.WARNING, __file__, 1, "Handler failed", (), None)
    for key in EVENT_IDS:
        setattr(record, key, f"{key}-value")

    line = json.loads(formatter.format(record))

    for key in EVENT_IDS:
        assert line[key] == f"{key}-value"


def test_runner_ids_of_message():
    envelope = append_probe("a")
    message = Msg(_client=None, subject="probe.events.probe.value.set", data=envelope.to_json())

    ids = _event_ids(message)

    assert ids == {
        "event_id": str(envelope.event_id),
        "event_type": "probe.value.set",
        "tenant_id": "tenant-obs",
        "correlation_id": str(envelope.correlation_id),
    }


def test_runner_ids_of_garbage():
    message = Msg(_client=None, subject="probe.events.probe.value.set", data=b"not json")

    assert _event_ids(message) == {}
