import pytest
from django.core.exceptions import ImproperlyConfigured

from eventbus.conf import bus_settings

VALID = {
    "BACKEND": "nats",
    "NATS_URLS": ["nats://127.0.0.1:4222", "nats://127.0.0.1:4223"],
    "STREAM_REPLICAS": 3,
    "DUPLICATE_WINDOW_SECONDS": 120,
    "STREAM_MAX_AGE_SECONDS": 3600,
    "ACK_WAIT_SECONDS": 30.0,
    "MAX_DELIVER": 5,
    "BACKOFF_SECONDS": [1.0, 5.0],
    "RELAY_BATCH_SIZE": 500,
    "FETCH_BATCH_SIZE": 100,
    "OUTBOX_RETENTION_SECONDS": 86400,
    "MAX_EVENT_BYTES": 262144,
}


class TestBusSettings:
    def test_valid_settings_are_read(self, settings):
        settings.EVENTBUS = VALID

        config = bus_settings()

        assert config.backend == "nats"
        assert config.nats_urls == ["nats://127.0.0.1:4222", "nats://127.0.0.1:4223"]
        assert config.stream_replicas == 3
        assert config.backoff_seconds == [1.0, 5.0]

    def test_redelivery_delay_repeats_the_last_step(self, settings):
        settings.EVENTBUS = VALID
        config = bus_settings()

        assert [config.redelivery_delay(delivery) for delivery in (0, 1, 2, 3, 9)] == [1.0, 1.0, 5.0, 5.0, 5.0]

    def test_no_limit_on_stream_age_is_allowed(self, settings):
        settings.EVENTBUS = {**VALID, "STREAM_MAX_AGE_SECONDS": 0}

        assert bus_settings().stream_max_age_seconds == 0

    @pytest.mark.parametrize(
        ("changes", "message"),
        [
            ({"BACKEND": "kafka"}, "EVENT_BUS='kafka' is not a bus backend; use one of inprocess, nats"),
            ({"NATS_URLS": []}, "NATS_URL is empty; set it to nats://HOST:PORT (comma-separated for a cluster)"),
            (
                {"BACKEND": "nats", "NATS_URLS": ["http://127.0.0.1:1"]},
                "NATS_URL entry 'http://127.0.0.1:1' is not a NATS URL; use nats://HOST:PORT (or tls://, ws://, wss://)",
            ),
            ({"STREAM_REPLICAS": 0}, "NATS_STREAM_REPLICAS=0 must be between 1 and 5"),
            ({"STREAM_REPLICAS": 6}, "NATS_STREAM_REPLICAS=6 must be between 1 and 5"),
            ({"ACK_WAIT_SECONDS": 0}, "EVENTBUS_ACK_WAIT_SECONDS=0 must be a positive number of seconds"),
            ({"MAX_DELIVER": 0}, "EVENTBUS_MAX_DELIVER=0 must be at least 1"),
            ({"BACKOFF_SECONDS": []}, "EVENTBUS_BACKOFF_SECONDS=[] must list positive delays in seconds"),
            (
                {"BACKOFF_SECONDS": [1.0, -2.0]},
                "EVENTBUS_BACKOFF_SECONDS=[1.0, -2.0] must list positive delays in seconds",
            ),
            ({"DUPLICATE_WINDOW_SECONDS": 0}, "EVENTBUS_DUPLICATE_WINDOW_SECONDS=0 must be at least 1"),
            (
                {"STREAM_MAX_AGE_SECONDS": -1},
                "EVENTBUS_STREAM_MAX_AGE_SECONDS=-1 must be 0 (no limit) or a positive number of seconds",
            ),
            (
                {"STREAM_MAX_AGE_SECONDS": 60},
                "EVENTBUS_STREAM_MAX_AGE_SECONDS=60 must be at least the duplicate window (120 s)",
            ),
            (
                {"OUTBOX_RETENTION_SECONDS": 120},
                "EVENTBUS_OUTBOX_RETENTION_SECONDS=120 must exceed the duplicate window (120 s), "
                "or a re-published row could be accepted twice",
            ),
            ({"RELAY_BATCH_SIZE": 0}, "EVENTBUS_RELAY_BATCH_SIZE=0 must be at least 1"),
            ({"FETCH_BATCH_SIZE": 0}, "EVENTBUS_FETCH_BATCH_SIZE=0 must be at least 1"),
            ({"MAX_EVENT_BYTES": 0}, "EVENTBUS_MAX_EVENT_BYTES=0 must be at least 1"),
        ],
    )
    def test_invalid_setting_is_named(self, settings, changes, message):
        settings.EVENTBUS = {**VALID, **changes}

        with pytest.raises(ImproperlyConfigured) as raised:
            bus_settings()

        assert str(raised.value) == message

    def test_in_process_bus_needs_no_nats_url(self, settings):
        settings.EVENTBUS = {**VALID, "BACKEND": "inprocess", "NATS_URLS": []}

        assert bus_settings().backend == "inprocess"
