"""The in-process bus: JetStream's contract inside one process, for the embedded setup.

Streams are in memory, one per producing module, and each consuming module has
a durable cursor on the streams it reads. ``publish_batch`` appends and then
delivers to every consumer through ``eventbus.consumer.deliver`` (inbox,
retries, dead letters) before it returns, so a relay marks a row published
only after every consumer applied or dead-lettered it: a crash in between
re-publishes the row and the inbox skips what was applied.
"""

import logging
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field

from eventbus.backends.base import EventBus, OutgoingMessage, PublishOutcome
from eventbus.conf import BusSettings
from eventbus.consumer import DeliveryResult, Disposition, Incoming, deliver, deliver_group
from eventbus.registry import BusModule, all_modules, get_module, stream_name

logger = logging.getLogger(__name__)

# Messages kept per stream for consumers declared later, like a JetStream
# stream's max_msgs limit; the oldest are dropped past it.
MAX_RETAINED_PER_STREAM = 100_000


@dataclass
class _StoredMessage:
    sequence: int
    subject: str
    body: bytes


@dataclass
class _Stream:
    name: str
    messages: list[_StoredMessage] = field(default_factory=list)
    last_sequence: int = 0
    # event id -> publish time, for Nats-Msg-Id style de-duplication.
    recent_ids: OrderedDict = field(default_factory=OrderedDict)


@dataclass
class _Consumer:
    module: str
    stream: str
    filter_subjects: list[str]
    # Sequence of the last message this consumer acked or terminated.
    acked_sequence: int = 0
    delivered: int = 0
    redelivered: int = 0
    dead_lettered: int = 0


class InProcessEventBus(EventBus):
    name = "inprocess"

    def __init__(self, config: BusSettings):
        self._config = config
        self._streams: dict[str, _Stream] = {}
        self._consumers: dict[tuple[str, str], _Consumer] = {}
        # Delivery runs handlers that may publish nothing here (they write
        # outboxes), but one thread at a time keeps cursors consistent.
        self._lock = threading.RLock()
        self._ensured = False

    def ensure(self) -> list[str]:
        changes = []
        with self._lock:
            for module in all_modules():
                changes.extend(self.declare_consumer(module.name))
            self._ensured = True
        return changes

    def declare_consumer(self, module_name: str) -> list[str]:
        """Declare ``module_name``'s durable cursor on each stream it reads."""
        module = get_module(module_name)
        changes = []
        with self._lock:
            for producer in module.handlers.producers():
                key = (stream_name(producer), module.consumer_name)
                subjects = module.filter_subjects(producer)
                consumer = self._consumers.get(key)
                if consumer is None:
                    self._consumers[key] = _Consumer(module.name, key[0], subjects)
                    changes.append(f"created consumer {key[1]} on {key[0]}")
                elif consumer.filter_subjects != subjects:
                    consumer.filter_subjects = subjects
                    changes.append(f"updated consumer {key[1]} on {key[0]}")
        return changes

    def publish_batch(self, messages: list[OutgoingMessage]) -> list[PublishOutcome]:
        with self._lock:
            if not self._ensured:
                self.ensure()
            outcomes = [self._append(message) for message in messages]
            self._deliver_all()
        return outcomes

    def status(self) -> list[dict]:
        with self._lock:
            rows = []
            for stream in self._streams.values():
                rows.append({"stream": stream.name, "messages": len(stream.messages), "last_sequence": stream.last_sequence})
            for consumer in self._consumers.values():
                stream = self._streams.get(consumer.stream)
                last = stream.last_sequence if stream else 0
                rows.append({
                    "stream": consumer.stream,
                    "consumer": consumer.module,
                    "pending": last - consumer.acked_sequence,
                    "delivered": consumer.delivered,
                    "redelivered": consumer.redelivered,
                    "dead_lettered": consumer.dead_lettered,
                })
            return rows

    def _append(self, message: OutgoingMessage) -> PublishOutcome:
        producer = message.subject.split(".", 1)[0]
        stream = self._streams.setdefault(stream_name(producer), _Stream(stream_name(producer)))
        self._forget_old_ids(stream)
        if message.event_id in stream.recent_ids:
            return PublishOutcome(message.event_id, stored=True, duplicate=True)

        stream.last_sequence += 1
        stream.messages.append(_StoredMessage(stream.last_sequence, message.subject, message.body))
        stream.recent_ids[message.event_id] = time.monotonic()
        if len(stream.messages) > MAX_RETAINED_PER_STREAM:
            del stream.messages[: len(stream.messages) - MAX_RETAINED_PER_STREAM]
        return PublishOutcome(message.event_id, stored=True)

    def _forget_old_ids(self, stream: _Stream) -> None:
        horizon = time.monotonic() - self._config.duplicate_window_seconds
        while stream.recent_ids:
            event_id, published_at = next(iter(stream.recent_ids.items()))
            if published_at >= horizon:
                break
            stream.recent_ids.popitem(last=False)

    def _deliver_all(self) -> None:
        group_size = self._config.consumer_group_size
        for consumer in list(self._consumers.values()):
            stream = self._streams.get(consumer.stream)
            if stream is None:
                continue
            module = get_module(consumer.module)
            group: list[_StoredMessage] = []
            for message in stream.messages:
                if message.sequence <= consumer.acked_sequence:
                    continue
                if message.subject in consumer.filter_subjects:
                    group.append(message)
                if len(group) >= group_size:
                    self._deliver_group(module, consumer, group)
                    group = []
                if not group:
                    consumer.acked_sequence = message.sequence
            if group:
                self._deliver_group(module, consumer, group)
            if stream.messages:
                consumer.acked_sequence = max(consumer.acked_sequence, stream.messages[-1].sequence)
            self._trim(stream)

    def _deliver_group(self, module: BusModule, consumer: _Consumer, group: list[_StoredMessage]) -> None:
        """Apply ``group`` in one transaction, or one message at a time with retries when that fails."""
        incoming = [Incoming(subject=message.subject, body=message.body, delivery=1) for message in group]
        stored = {id(item): message for item, message in zip(incoming, group, strict=True)}
        one_by_one = []

        def deliver_one(item: Incoming) -> DeliveryResult:
            one_by_one.append(item)
            return self._deliver_one(module, consumer, stored[id(item)])

        deliver_group(module=module, messages=incoming, deliver_one=deliver_one)
        if not one_by_one:
            consumer.delivered += len(group)
        consumer.acked_sequence = group[-1].sequence

    def _deliver_one(self, module: BusModule, consumer: _Consumer, message: _StoredMessage) -> DeliveryResult:
        max_deliver = self._config.max_deliver
        # NOTE: redeliveries here run at once, without the configured backoff,
        # because the relay that called publish waits for the outcome.
        for delivery in range(1, max_deliver + 1):
            consumer.delivered += 1
            if delivery > 1:
                consumer.redelivered += 1
            try:
                result = deliver(
                    module=module,
                    subject=message.subject,
                    body=message.body,
                    delivery=delivery,
                    max_deliver=max_deliver,
                )
            except Exception:
                # The dead-letter write itself failed; keep trying like a redelivery.
                logger.exception("Delivery failed", extra={"bus_module": module.name, "subject": message.subject})
                if delivery == max_deliver:
                    raise
                continue
            if result.disposition is Disposition.TERMINATE:
                consumer.dead_lettered += 1
                return result
            if result.disposition is Disposition.ACK:
                return result
        return result

    def _trim(self, stream: _Stream) -> None:
        readers = [consumer for consumer in self._consumers.values() if consumer.stream == stream.name]
        if not readers:
            return
        lowest = min(consumer.acked_sequence for consumer in readers)
        keep_from = 0
        while keep_from < len(stream.messages) and stream.messages[keep_from].sequence <= lowest:
            keep_from += 1
        if keep_from:
            del stream.messages[:keep_from]
