"""The JetStream consumer runner behind ``manage.py run_consumers``.

One fetch loop per (module, stream it reads) on one durable pull consumer.
Each message is applied through ``eventbus.consumer.deliver`` on a worker
thread (Django's ORM is synchronous and its connections belong to a thread)
while the loop sends progress acknowledgements, so a handler slower than the
ack wait keeps its message. The ack goes out only after the handler's
transaction committed.

A fetched batch is split into lanes, one per aggregate. Each lane runs on
one of the module's EVENTBUS_CONSUMER_CONCURRENCY worker threads, in stream
order, so one aggregate's events are applied one after another while other
aggregates' events are applied at the same time. A worker applies several
lanes' messages in one transaction (``eventbus.consumer.deliver_group``).
"""

import asyncio
import contextlib
import logging
import queue
import signal
import time
from concurrent.futures import ThreadPoolExecutor

import nats.errors
import nats.js.errors
from django.db import close_old_connections, connections
from nats.aio.msg import Msg
from nats.js import JetStreamContext

from eventbus.backends.nats import connect, consumer_config, declare
from eventbus.conf import BusSettings, bus_settings
from eventbus.consumer import DeliveryResult, Disposition, Incoming, deliver, deliver_group
from eventbus.envelope import Envelope
from eventbus.errors import BusMisconfigured, BusUnavailable, InvalidEnvelope
from eventbus.registry import BusModule, all_modules, stream_name

logger = logging.getLogger(__name__)

# A message handed back on shutdown is redelivered at once, to another process.
# NOTE: JetStream counts a handed-back message as delivered, as it does every
# message fetched by a process that crashed. A message that sits unstarted in
# EVENTBUS_MAX_DELIVER such batches is dead-lettered without its handler ever
# failing; replay it with `manage.py dead_letters replay`.
HAND_BACK = DeliveryResult(Disposition.RETRY)

# Seconds one pull request waits for messages before it is renewed. nats-py
# raises a timeout when it expires empty, which here just means "idle".
FETCH_WAIT_SECONDS = 2.0
# Seconds between checks that an idle durable consumer still exists; a
# consumer deleted by an operator or lost with a stream is declared again.
CONSUMER_CHECK_SECONDS = 15.0
# Seconds between two connection checks (close_old_connections) on one worker thread.
CONNECTION_CHECK_SECONDS = 1.0
# Seconds to wait after a transport error before fetching again.
ERROR_PAUSE_SECONDS = 0.5


class ConsumerRunner:
    """Consume for ``modules`` until ``stop()``; in-flight messages finish first."""

    def __init__(self, modules: list[BusModule], config: BusSettings | None = None, *, name: str = "billing-consumers"):
        self._modules = modules
        self._config = config or bus_settings()
        self._name = name
        self._stopping = asyncio.Event()
        self.processed = 0

    def stop(self) -> None:
        self._stopping.set()

    async def run(self) -> None:
        client = await self._connect_with_retry()
        if client is None:
            logger.info("Consumers stopped before connecting to NATS")
            return
        try:
            js = client.jetstream(timeout=5)
            if not await self._declare_with_retry(js):
                return
            pools = {
                module.name: WorkerPool(f"consumer-{module.name}", self._config.consumer_concurrency)
                for module in self._modules
            }
            loops = [
                self._consume(js, module, producer, pools[module.name])
                for module in self._modules
                for producer in module.handlers.producers()
            ]
            logger.info("Consuming for %s", ", ".join(module.name for module in self._modules))
            try:
                await asyncio.gather(*loops)
            finally:
                for pool in pools.values():
                    await pool.close()
        finally:
            try:
                await client.drain()
            except (TimeoutError, nats.errors.Error):
                await client.close()
            logger.info("Consumers stopped after %s message(s)", self.processed)

    async def _connect_with_retry(self):
        """Return a connected client, or None when ``stop()`` came first."""
        while not self._stopping.is_set():
            try:
                return await connect(self._config.nats_urls, name=self._name)
            except BusUnavailable as error:
                logger.warning("%s; retrying in 1 s", error)
                await self._sleep(1.0)
        return None

    async def _declare_with_retry(self, js: JetStreamContext) -> bool:
        """Declare streams and consumers; return False when ``stop()`` came first."""
        # Declare every module's consumers, not only this process's, so no
        # stream keeps an event that no durable consumer is bound to read.
        while not self._stopping.is_set():
            try:
                await declare(js, self._config, all_modules())
                return True
            except BusUnavailable as error:
                logger.warning("%s; retrying in 1 s", error)
                await self._sleep(1.0)
        return False

    async def _consume(self, js: JetStreamContext, module: BusModule, producer: str, pool: "WorkerPool") -> None:
        stream = stream_name(producer)
        subscription = None
        idle_seconds = 0.0
        try:
            while not self._stopping.is_set():
                try:
                    if subscription is None:
                        subscription = await js.pull_subscribe_bind(
                            durable=module.consumer_name, stream=stream
                        )
                    messages = await subscription.fetch(self._config.fetch_batch_size, timeout=FETCH_WAIT_SECONDS)
                except (TimeoutError, nats.errors.TimeoutError):
                    idle_seconds += FETCH_WAIT_SECONDS
                    if idle_seconds >= CONSUMER_CHECK_SECONDS:
                        idle_seconds = 0.0
                        subscription = await self._recover_consumer(js, module, producer, subscription)
                    continue
                except nats.js.errors.NotFoundError:
                    subscription = await self._recover_consumer(js, module, producer, subscription, missing=True)
                    continue
                except (nats.errors.Error, OSError) as error:
                    logger.warning("Fetch from %s for %s failed: %r", stream, module.name, error)
                    await self._sleep(ERROR_PAUSE_SECONDS)
                    subscription = await self._recover_consumer(js, module, producer, subscription)
                    continue

                idle_seconds = 0.0
                await self._handle_batch(pool, module, messages)
        finally:
            if subscription is not None:
                try:
                    await subscription.unsubscribe()
                except nats.errors.Error:
                    pass

    async def _recover_consumer(self, js, module, producer, subscription, *, missing: bool = False):
        """Check the durable consumer exists; declare it again and rebind when it does not."""
        stream = stream_name(producer)
        try:
            if not missing:
                await js.consumer_info(stream, module.consumer_name)
                return subscription
        except nats.js.errors.NotFoundError:
            pass
        except (TimeoutError, nats.errors.Error):
            # The server is unreachable; the client reconnects by itself and
            # a fresh pull request is sent on the next fetch.
            return subscription

        logger.warning("Durable consumer %s on %s is missing; declaring it again", module.consumer_name, stream)
        try:
            await js.add_consumer(stream, consumer_config(module, producer, self._config))
        except nats.js.errors.NotFoundError:
            # The stream itself is gone: declare everything again.
            try:
                await declare(js, self._config, all_modules())
            except (BusUnavailable, BusMisconfigured) as error:
                logger.error("Cannot declare streams again: %s", error)
                await self._sleep(1.0)
        except (TimeoutError, nats.errors.Error) as error:
            logger.warning("Declaring consumer %s on %s failed: %r", module.consumer_name, stream, error)
            await self._sleep(1.0)
        if subscription is not None:
            try:
                await subscription.unsubscribe()
            except nats.errors.Error:
                pass
        return None

    async def _handle_batch(self, pool: "WorkerPool", module: BusModule, messages: list[Msg]) -> None:
        """Apply ``messages``, one lane per aggregate, while every unsettled one is kept in progress.

        The messages of a fetch wait their turn, so the progress acks cover the
        waiting ones too: otherwise a batch that takes longer than the ack wait
        in total would see its last messages redelivered elsewhere. Each worker
        thread takes lanes until none is left, in one executor call, and the
        acks go out once the batch is done: one hop between the event loop and
        a thread per worker rather than per message.
        """
        unsettled = list(messages)
        keeper = asyncio.create_task(self._keep_in_progress(unsettled))
        lanes: queue.SimpleQueue[list[Msg]] = queue.SimpleQueue()
        lane_count = 0
        split, envelopes = _lanes(messages)
        for lane in split:
            lanes.put(lane)
            lane_count += 1
        outcomes: list[tuple[Msg, DeliveryResult]] = []
        # Spread a small batch over the workers rather than filling one group.
        group_size = min(self._config.consumer_group_size, -(-len(messages) // pool.size))
        try:
            await asyncio.gather(*(
                self._run_worker(pool, module, lanes, envelopes, outcomes, group_size)
                for _ in range(min(pool.size, lane_count))
            ))
        finally:
            keeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await keeper
            settled = {id(message) for message, _ in outcomes}
            unsettled[:] = [message for message in unsettled if id(message) not in settled]
            for message, result in outcomes:
                await self._settle(message, result)
            self.processed += len(outcomes)
        if unsettled:
            # Hand unstarted messages back for another process now rather than
            # after the ack wait.
            await asyncio.gather(*(self._settle(message, HAND_BACK) for message in unsettled))

    async def _run_worker(
        self, pool: "WorkerPool", module: BusModule, lanes, envelopes: dict, outcomes: list, group_size: int
    ) -> None:
        async with pool.lend() as executor:
            check_connections = pool.due_for_connection_check(executor)
            await asyncio.get_running_loop().run_in_executor(
                executor, self._apply_lanes, module, lanes, envelopes, outcomes, group_size, check_connections
            )

    def _apply_lanes(
        self, module: BusModule, lanes, envelopes: dict, outcomes: list, group_size: int, check_connections: bool
    ) -> None:
        """Apply lanes from ``lanes`` until it is empty or ``stop()`` is called; runs on a worker thread.

        Each lane is one aggregate's messages, in stream order. A worker
        applies up to ``group_size`` messages, from one lane or
        several, in one transaction (``deliver_group``); a lane longer than
        that continues in the same worker's next group, so its order holds.
        ``outcomes`` receives (message, result) for every message applied.
        ``envelopes`` maps id(message) to the envelope ``_lanes`` parsed.
        """
        if check_connections:
            close_old_connections()
        lane: list[Msg] = []
        while not self._stopping.is_set():
            group: list[Msg] = []
            while len(group) < group_size:
                if not lane:
                    try:
                        lane = lanes.get_nowait()
                    except queue.Empty:
                        break
                room = group_size - len(group)
                group.extend(lane[:room])
                lane = lane[room:]
            if not group:
                return
            outcomes.extend(zip(group, self._deliver_group(module, group, envelopes), strict=True))

    def _deliver_group(self, module: BusModule, group: list[Msg], envelopes: dict) -> list[DeliveryResult]:
        incoming = [
            Incoming(
                subject=message.subject,
                body=message.data,
                delivery=message.metadata.num_delivered,
                envelope=envelopes.get(id(message)),
            )
            for message in group
        ]
        messages = {id(item): message for item, message in zip(incoming, group, strict=True)}
        try:
            return deliver_group(
                module=module, messages=incoming, deliver_one=lambda item: self._deliver(module, messages[id(item)])
            )
        except Exception:
            # deliver_group failed outside any handler, for example while it
            # logged, so every message of the group is redelivered later.
            logger.exception("Delivery of a group failed before an outcome was recorded",
                             extra={"bus_module": module.name})
            close_old_connections()
            return [
                DeliveryResult(Disposition.RETRY, delay=self._config.redelivery_delay(item.delivery))
                for item in incoming
            ]

    def _deliver(self, module: BusModule, message: Msg) -> DeliveryResult:
        delivery = message.metadata.num_delivered
        try:
            return deliver(module=module, subject=message.subject, body=message.data, delivery=delivery)
        except Exception:
            # deliver() itself failed, for example the database is down while
            # it writes a dead letter: let the message come back later.
            logger.exception(
                "Delivery failed before an outcome was recorded",
                extra={"bus_module": module.name, **_event_ids(message)},
            )
            close_old_connections()
            return DeliveryResult(Disposition.RETRY, delay=self._config.redelivery_delay(delivery))

    async def _keep_in_progress(self, unsettled: list[Msg]) -> None:
        """Send a progress ack for every message in ``unsettled`` each third of the ack wait."""
        interval = max(self._config.ack_wait_seconds / 3, 0.1)
        while True:
            await asyncio.sleep(interval)
            failures = 0
            for message in list(unsettled):
                try:
                    await message.in_progress()
                except nats.errors.Error as error:
                    failures += 1
                    last_error = error
            if failures:
                logger.warning("Progress ack failed for %s message(s): %r", failures, last_error)

    async def _settle(self, message: Msg, result: DeliveryResult) -> None:
        # A lost ack is harmless: the message comes back and the inbox skips it.
        try:
            if result.disposition is Disposition.ACK:
                await message.ack()
            elif result.disposition is Disposition.TERMINATE:
                await message.term()
            else:
                await message.nak(delay=result.delay or None)
        except nats.errors.Error as error:
            logger.warning(
                "Settling message on %s failed: %r", message.subject, error, extra=_event_ids(message)
            )

    async def _sleep(self, seconds: float) -> None:
        try:
            await asyncio.wait_for(self._stopping.wait(), timeout=seconds)
        except TimeoutError:
            pass


class WorkerPool:
    """Single-thread executors lent out one at a time; each thread keeps its own database connections."""

    def __init__(self, name: str, size: int):
        self.size = size
        self._executors = [
            ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"{name}-{number}") for number in range(size)
        ]
        # Last in, first out: at a low rate the most recently used thread takes
        # the next batch, so idle threads seldom open a database connection.
        self._idle: asyncio.LifoQueue[ThreadPoolExecutor] = asyncio.LifoQueue()
        for executor in reversed(self._executors):
            self._idle.put_nowait(executor)
        self._checked_at: dict[ThreadPoolExecutor, float] = {}

    def due_for_connection_check(self, executor: ThreadPoolExecutor) -> bool:
        """Return True at most once per CONNECTION_CHECK_SECONDS for each thread.

        close_old_connections() drops a connection past its CONN_MAX_AGE and
        makes the next query run a health check first. Once per lane it would
        cost a round trip for nearly every message.
        """
        now = time.monotonic()
        if now - self._checked_at.get(executor, float("-inf")) < CONNECTION_CHECK_SECONDS:
            return False
        self._checked_at[executor] = now
        return True

    @contextlib.asynccontextmanager
    async def lend(self):
        executor = await self._idle.get()
        try:
            yield executor
        finally:
            self._idle.put_nowait(executor)

    async def close(self) -> None:
        """Close every thread's database connections and stop the threads."""
        loop = asyncio.get_running_loop()
        for executor in self._executors:
            await loop.run_in_executor(executor, connections.close_all)
            executor.shutdown(wait=True)


def _lanes(messages: list[Msg]) -> tuple[list[list[Msg]], dict[int, Envelope]]:
    """Split ``messages`` by aggregate, keeping stream order within each lane.

    Also return the envelope parsed from each message, by id(message), so
    delivery does not parse it again.
    """
    lanes: dict[tuple[str, str], list[Msg]] = {}
    envelopes: dict[int, Envelope] = {}
    for message in messages:
        try:
            envelope = Envelope.from_json(message.data)
        except InvalidEnvelope:
            # deliver() dead-letters it, on a lane of its own.
            key = ("", str(message.metadata.sequence.stream))
        else:
            envelopes[id(message)] = envelope
            key = (envelope.aggregate_type, envelope.aggregate_id)
        lanes.setdefault(key, []).append(message)
    return list(lanes.values()), envelopes


def _event_ids(message: Msg) -> dict:
    """Return the ids of the event in ``message`` for a log line; empty when it is no envelope."""
    try:
        envelope = Envelope.from_json(message.data)
    except InvalidEnvelope:
        return {}
    return {
        "event_id": str(envelope.event_id),
        "event_type": envelope.event_type,
        "tenant_id": envelope.tenant_id,
        "correlation_id": str(envelope.correlation_id),
    }


def run_consumers_until_signalled(modules: list[BusModule]) -> int:
    """Run consumers for ``modules`` until SIGTERM or SIGINT; return messages processed."""

    async def main() -> int:
        runner = ConsumerRunner(modules)
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, runner.stop)
        await runner.run()
        return runner.processed

    return asyncio.run(main())
