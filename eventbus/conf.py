"""Typed access to the ``EVENTBUS`` setting, validated when first read."""

from dataclasses import dataclass
from urllib.parse import urlparse

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

BACKENDS = ("inprocess", "nats")
# URL schemes nats-py connects with.
NATS_URL_SCHEMES = ("nats", "tls", "ws", "wss")


@dataclass(frozen=True)
class BusSettings:
    backend: str
    nats_urls: list[str]
    stream_replicas: int
    duplicate_window_seconds: int
    stream_max_age_seconds: int
    ack_wait_seconds: float
    max_deliver: int
    backoff_seconds: list[float]
    relay_batch_size: int
    fetch_batch_size: int
    consumer_concurrency: int
    consumer_group_size: int
    outbox_retention_seconds: int
    max_event_bytes: int

    def redelivery_delay(self, delivery: int) -> float:
        """Return the seconds to wait before redelivering after failed delivery ``delivery``."""
        index = min(max(delivery, 1), len(self.backoff_seconds)) - 1
        return self.backoff_seconds[index]


# The last EVENTBUS dict read and its validated settings. The consumer and
# the outbox read the settings for every event, so they are built once per
# dict; override_settings in tests replaces the dict.
_cached: tuple[object, "BusSettings"] | None = None


def bus_settings() -> BusSettings:
    global _cached
    raw = settings.EVENTBUS
    if _cached is not None and _cached[0] is raw:
        return _cached[1]
    config = BusSettings(
        backend=raw["BACKEND"],
        nats_urls=list(raw["NATS_URLS"]),
        stream_replicas=raw["STREAM_REPLICAS"],
        duplicate_window_seconds=raw["DUPLICATE_WINDOW_SECONDS"],
        stream_max_age_seconds=raw["STREAM_MAX_AGE_SECONDS"],
        ack_wait_seconds=raw["ACK_WAIT_SECONDS"],
        max_deliver=raw["MAX_DELIVER"],
        backoff_seconds=list(raw["BACKOFF_SECONDS"]),
        relay_batch_size=raw["RELAY_BATCH_SIZE"],
        fetch_batch_size=raw["FETCH_BATCH_SIZE"],
        consumer_concurrency=raw.get("CONSUMER_CONCURRENCY", 4),
        consumer_group_size=raw.get("CONSUMER_GROUP_SIZE", 20),
        outbox_retention_seconds=raw["OUTBOX_RETENTION_SECONDS"],
        max_event_bytes=raw["MAX_EVENT_BYTES"],
    )
    _validate(config)
    _cached = (raw, config)
    return config


# JetStream keeps at most five copies of a stream.
MAX_STREAM_REPLICAS = 5


def _validate(config: BusSettings) -> None:
    if config.backend not in BACKENDS:
        raise ImproperlyConfigured(
            f"EVENT_BUS={config.backend!r} is not a bus backend; use one of {', '.join(BACKENDS)}"
        )
    if config.backend == "nats" and not config.nats_urls:
        raise ImproperlyConfigured("NATS_URL is empty; set it to nats://HOST:PORT (comma-separated for a cluster)")
    if config.backend == "nats":
        for url in config.nats_urls:
            # nats-py reads a bare HOST:PORT as nats://HOST:PORT.
            if "://" in url and urlparse(url).scheme not in NATS_URL_SCHEMES:
                raise ImproperlyConfigured(
                    f"NATS_URL entry {url!r} is not a NATS URL; use nats://HOST:PORT "
                    f"(or tls://, ws://, wss://)"
                )
    if not 1 <= config.stream_replicas <= MAX_STREAM_REPLICAS:
        raise ImproperlyConfigured(
            f"NATS_STREAM_REPLICAS={config.stream_replicas} must be between 1 and {MAX_STREAM_REPLICAS}"
        )
    if config.ack_wait_seconds <= 0:
        raise ImproperlyConfigured(
            f"EVENTBUS_ACK_WAIT_SECONDS={config.ack_wait_seconds} must be a positive number of seconds"
        )
    if config.max_deliver < 1:
        raise ImproperlyConfigured(f"EVENTBUS_MAX_DELIVER={config.max_deliver} must be at least 1")
    if not config.backoff_seconds or any(delay <= 0 for delay in config.backoff_seconds):
        raise ImproperlyConfigured(
            f"EVENTBUS_BACKOFF_SECONDS={config.backoff_seconds} must list positive delays in seconds"
        )
    if config.duplicate_window_seconds < 1:
        raise ImproperlyConfigured(
            f"EVENTBUS_DUPLICATE_WINDOW_SECONDS={config.duplicate_window_seconds} must be at least 1"
        )
    if config.stream_max_age_seconds < 0:
        raise ImproperlyConfigured(
            f"EVENTBUS_STREAM_MAX_AGE_SECONDS={config.stream_max_age_seconds} must be 0 (no limit) "
            "or a positive number of seconds"
        )
    if 0 < config.stream_max_age_seconds < config.duplicate_window_seconds:
        # JetStream rejects a stream whose duplicate window exceeds its max age.
        raise ImproperlyConfigured(
            f"EVENTBUS_STREAM_MAX_AGE_SECONDS={config.stream_max_age_seconds} must be at least "
            f"the duplicate window ({config.duplicate_window_seconds} s)"
        )
    if config.outbox_retention_seconds <= config.duplicate_window_seconds:
        raise ImproperlyConfigured(
            f"EVENTBUS_OUTBOX_RETENTION_SECONDS={config.outbox_retention_seconds} must exceed "
            f"the duplicate window ({config.duplicate_window_seconds} s), or a re-published "
            "row could be accepted twice"
        )
    if config.relay_batch_size < 1:
        raise ImproperlyConfigured(f"EVENTBUS_RELAY_BATCH_SIZE={config.relay_batch_size} must be at least 1")
    if config.fetch_batch_size < 1:
        raise ImproperlyConfigured(f"EVENTBUS_FETCH_BATCH_SIZE={config.fetch_batch_size} must be at least 1")
    if config.consumer_concurrency < 1:
        raise ImproperlyConfigured(
            f"EVENTBUS_CONSUMER_CONCURRENCY={config.consumer_concurrency} must be at least 1"
        )
    if config.consumer_group_size < 1:
        raise ImproperlyConfigured(
            f"EVENTBUS_CONSUMER_GROUP_SIZE={config.consumer_group_size} must be at least 1 "
            "(1 applies each message in its own transaction)"
        )
    if config.max_event_bytes < 1:
        raise ImproperlyConfigured(f"EVENTBUS_MAX_EVENT_BYTES={config.max_event_bytes} must be at least 1")
