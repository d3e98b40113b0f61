"""Move committed outbox rows onto the bus, and purge them after retention.

One relay at a time owns a module's outbox (``relay_lock``). It claims rows
by state (pending, due) in id order rather than by an "id greater than the
last one seen" cursor, because transactions commit out of id order and such a
cursor would skip a row that commits late.
"""

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.db import close_old_connections, transaction
from django.db.models import F
from django.utils import timezone

from eventbus.backends import EventBus, OutgoingMessage, PublishOutcome, get_bus
from eventbus.conf import bus_settings
from eventbus.errors import EventBusError
from eventbus.locks import relay_lock
from eventbus.metrics import EVENTS_PUBLISH_FAILED, EVENTS_RELAYED, event_type_of_subject
from eventbus.models import OutboxState
from eventbus.registry import BusModule, get_module
from eventbus.wakeup import OutboxListener

logger = logging.getLogger(__name__)

# Delay before re-publishing a row after its n-th failed publish, in seconds;
# the last value repeats. Short first steps ride out a NATS restart quickly.
PUBLISH_BACKOFF_SECONDS = (1, 2, 5, 15, 30, 60)

# Seconds a following relay waits after a pass that published before the
# next pass, so a busy outbox goes out in fewer, larger batches. It adds at
# most this much to an event's latency under load, and nothing when idle.
FOLLOW_LINGER_SECONDS = 0.01
# Maximum seconds of a following relay's idle wait between two checks for a stop.
STOP_CHECK_SECONDS = 0.5


@dataclass
class RelayResult:
    module: str
    locked_out: bool = False
    published: int = 0
    failed: int = 0
    # Rows held back because an earlier event of their aggregate is not published yet.
    held: int = 0
    batches: int = 0
    errors: list[str] = field(default_factory=list)


def relay_outbox(
    *,
    module: str,
    bus: EventBus | None = None,
    batch_size: int | None = None,
    max_batches: int | None = None,
    now: Callable[[], datetime] = timezone.now,
    after_publish: Callable[[list[PublishOutcome]], None] | None = None,
) -> RelayResult:
    """Publish ``module``'s due outbox rows, batch by batch, until none is left.

    Return at once with ``locked_out`` when another relay owns this outbox.
    ``after_publish`` runs after the bus acknowledged a batch and before the
    rows are marked published; tests use it to crash the relay there.
    """
    bus_module = get_module(module)
    bus = bus or get_bus()
    batch_size = batch_size or bus_settings().relay_batch_size
    result = RelayResult(module=module)

    with relay_lock(bus_module.alias, module) as acquired:
        if not acquired:
            result.locked_out = True
            return result

        while max_batches is None or result.batches < max_batches:
            rows = _claim(bus_module, batch_size, now())
            sendable, held = _sendable_in_order(rows, now())
            result.held += held
            if not sendable:
                break
            published_before = result.published
            _publish_in_waves(bus_module, bus, sendable, result, now, after_publish)
            result.batches += 1
            if result.published == published_before or len(rows) < batch_size:
                break

    if result.published or result.failed:
        logger.info(
            "Relayed %s event(s) from %s, %s failed, %s held back",
            result.published, module, result.failed, result.held,
            extra={"bus_module": module},
        )
    return result


def _claim(bus_module: BusModule, batch_size: int, moment: datetime) -> list:
    # Rows still in backoff are read too, so a later event of the same
    # aggregate is held behind them instead of overtaking them.
    # NOTE: when a whole batch of the oldest rows is in backoff, newer rows
    # wait until that backoff ends, even rows of other aggregates.
    return list(claim_query(bus_module, batch_size))


def claim_query(bus_module: BusModule, batch_size: int):
    """Return the query for the oldest ``batch_size`` pending rows, served by the partial index on pending rows."""
    return (
        bus_module.outbox.objects.using(bus_module.alias)
        .filter(state=OutboxState.PENDING)
        .order_by("id")
        .only(
            "id", "event_id", "subject", "body", "aggregate_type", "aggregate_id",
            "publish_attempts", "next_attempt_at", "tenant_id", "correlation_id",
        )[:batch_size]
    )


def _sendable_in_order(rows: list, moment: datetime) -> tuple[list, int]:
    """Drop rows in backoff and every later row of their aggregates."""
    blocked, sendable, held = set(), [], 0
    for row in rows:
        key = (row.aggregate_type, row.aggregate_id)
        if key in blocked:
            held += 1
            continue
        if row.next_attempt_at is not None and row.next_attempt_at > moment:
            blocked.add(key)
            held += 1
            continue
        sendable.append(row)
    return sendable, held


def _publish_in_waves(bus_module, bus, rows, result, now, after_publish) -> None:
    """Publish claimed ``rows`` in aggregate order and record each outcome on its row."""

    def settle(wave: list, outcomes: list[PublishOutcome]) -> None:
        if after_publish is not None:
            after_publish(outcomes)

        stored = [row for row, outcome in zip(wave, outcomes, strict=True) if outcome.stored]
        failures = [(row, outcome) for row, outcome in zip(wave, outcomes, strict=True) if not outcome.stored]
        _mark_published(bus_module, stored, now())
        _mark_failed(bus_module, failures, now())
        result.published += len(stored)
        result.failed += len(failures)
        for row in stored:
            EVENTS_RELAYED.labels(module=bus_module.name, event_type=event_type_of_subject(row.subject)).inc()
        for row, _ in failures:
            EVENTS_PUBLISH_FAILED.labels(module=bus_module.name, event_type=event_type_of_subject(row.subject)).inc()
        for _, outcome in failures:
            if outcome.error not in result.errors:
                result.errors.append(outcome.error)

    result.held += publish_in_aggregate_order(bus, rows, settle=settle, failed_aggregates=set())


def publish_in_aggregate_order(
    bus: EventBus,
    rows: list,
    *,
    settle: Callable[[list, list[PublishOutcome]], None],
    failed_aggregates: set[tuple],
) -> int:
    """Publish outbox ``rows`` pipelined, at most one event per aggregate in flight.

    Wave n contains each aggregate's n-th row of ``rows``, so an event is sent
    only after every earlier event of its aggregate was acknowledged. Each
    message carries the event id as its Nats-Msg-Id. ``settle(wave,
    outcomes)`` runs after every wave. A failed row adds its aggregate to
    ``failed_aggregates``, and the aggregate's later rows are not sent. Return
    how many rows were held back that way.
    """
    waves: list[list] = []
    seen: dict[tuple, int] = {}
    for row in rows:
        key = (row.aggregate_type, row.aggregate_id)
        position = seen.get(key, 0)
        seen[key] = position + 1
        if position == len(waves):
            waves.append([])
        waves[position].append(row)

    held = 0
    for wave in waves:
        waiting = len(wave)
        wave = [row for row in wave if (row.aggregate_type, row.aggregate_id) not in failed_aggregates]
        held += waiting - len(wave)
        if not wave:
            continue
        messages = [OutgoingMessage(row.subject, str(row.event_id), row.body.encode()) for row in wave]
        try:
            outcomes = bus.publish_batch(messages)
        except EventBusError as error:
            outcomes = [PublishOutcome(message.event_id, stored=False, error=str(error)) for message in messages]

        settle(wave, outcomes)
        for row, outcome in zip(wave, outcomes, strict=True):
            if not outcome.stored:
                failed_aggregates.add((row.aggregate_type, row.aggregate_id))
    return held


def _mark_published(bus_module: BusModule, rows: list, moment: datetime) -> None:
    if not rows:
        return
    with transaction.atomic(using=bus_module.alias):
        bus_module.outbox.objects.using(bus_module.alias).filter(id__in=[row.id for row in rows]).update(
            state=OutboxState.PUBLISHED,
            published_at=moment,
            publish_attempts=F("publish_attempts") + 1,
            last_error="",
            next_attempt_at=None,
        )


def _mark_failed(bus_module: BusModule, failures: list, moment: datetime) -> None:
    if not failures:
        return
    first = failures[0][0]
    logger.warning(
        "Publishing %s event(s) from %s failed, first error: %s",
        len(failures), bus_module.name, failures[0][1].error,
        extra={
            "bus_module": bus_module.name,
            "event_id": str(first.event_id),
            "event_type": event_type_of_subject(first.subject),
            "tenant_id": first.tenant_id,
            "correlation_id": str(first.correlation_id),
        },
    )
    manager = bus_module.outbox.objects.using(bus_module.alias)
    with transaction.atomic(using=bus_module.alias):
        for row, outcome in failures:
            attempts = row.publish_attempts + 1
            delay = PUBLISH_BACKOFF_SECONDS[min(attempts, len(PUBLISH_BACKOFF_SECONDS)) - 1]
            manager.filter(id=row.id).update(
                publish_attempts=attempts,
                last_error=outcome.error[:2000],
                next_attempt_at=moment + timedelta(seconds=delay),
            )


class OutboxEventNotPending(EventBusError):
    code = "outbox_event_not_pending"


def outbox_retry_now(*, module: str, outbox_id: int) -> None:
    """Make a pending outbox row due at once, so the next relay pass publishes it.

    Clears ``next_attempt_at`` and keeps ``publish_attempts`` and
    ``last_error``, which the next attempt overwrites. Raises
    ``OutboxEventNotPending`` when the row does not exist or is published.
    """
    bus_module = get_module(module)
    with transaction.atomic(using=bus_module.alias):
        row = (
            bus_module.outbox.objects.using(bus_module.alias)
            .select_for_update()
            .filter(id=outbox_id)
            .only("id", "state", "event_type")
            .first()
        )
        if row is None:
            raise OutboxEventNotPending(
                f"outbox row {outbox_id} does not exist in module {module!r}; it may have been "
                "published and purged"
            )
        if row.state != OutboxState.PENDING:
            raise OutboxEventNotPending(
                f"outbox row {outbox_id} ({row.event_type}) in module {module!r} is already "
                f"{row.state}; only a pending row can be retried"
            )
        bus_module.outbox.objects.using(bus_module.alias).filter(id=outbox_id).update(next_attempt_at=None)
    logger.info(
        "Outbox row %s in %s set to retry now", outbox_id, module, extra={"bus_module": module}
    )


def relay_follow(
    *,
    modules: list[str],
    interval: float,
    should_stop: Callable[[], bool],
    bus: EventBus | None = None,
    linger: float = FOLLOW_LINGER_SECONDS,
) -> None:
    """Relay every module in turn until ``should_stop``.

    When a pass publishes nothing, wait up to ``interval`` seconds: on
    PostgreSQL a NOTIFY from an outbox insert ends the wait as soon as its
    transaction commits (see ``eventbus.wakeup``), elsewhere it is a sleep.
    After a pass that published, wait ``linger`` seconds so the commits of
    that time go out together, then relay only the modules that published or
    were notified (every module without NOTIFY). Every module gets a pass at
    least once per ``interval``, for rows whose publish backoff ended.
    """
    listener = OutboxListener([get_module(module) for module in modules])
    listener.listen()
    due = set(modules)
    last_full_pass = float("-inf")
    try:
        while not should_stop():
            if time.monotonic() - last_full_pass >= interval:
                due = set(modules)
            if due == set(modules):
                last_full_pass = time.monotonic()
            active = set()
            for module in modules:
                if module not in due:
                    continue
                try:
                    result = relay_outbox(module=module, bus=bus)
                except Exception:
                    logger.exception("Relay pass failed", extra={"bus_module": module})
                    close_old_connections()
                    continue
                if result.published:
                    active.add(module)
            if active:
                time.sleep(linger)
                if listener.enabled:
                    due = active | listener.wait(0)
                else:
                    # Without NOTIFY the relay cannot tell which outbox has new rows.
                    due = set(modules)
            else:
                due = _wait_for_rows(listener, interval, should_stop) or set(modules)
    finally:
        listener.close()


def _wait_for_rows(listener: OutboxListener, seconds: float, should_stop: Callable[[], bool]) -> set[str]:
    """Wait up to ``seconds`` for new outbox rows; return the modules notified, or nothing once stopped.

    The wait runs in slices of STOP_CHECK_SECONDS, so a stop requested by a
    signal handler ends it within one slice.
    """
    deadline = time.monotonic() + seconds
    while not should_stop():
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            break
        notified = listener.wait(min(remaining, STOP_CHECK_SECONDS))
        if notified:
            return notified
    return set()


class RepublishSinceNaive(EventBusError):
    code = "republish_since_naive"


@dataclass
class RepublishResult:
    module: str
    locked_out: bool = False
    republished: int = 0
    # Re-published events that JetStream still held within its duplicate
    # window, so it dropped the copy.
    duplicates: int = 0
    failed: int = 0
    # Rows not sent because an earlier event of their aggregate failed.
    held: int = 0
    errors: list[str] = field(default_factory=list)


def outbox_republish(
    *,
    module: str,
    since: datetime,
    bus: EventBus | None = None,
    batch_size: int | None = None,
) -> RepublishResult:
    """Publish ``module``'s published outbox rows again, from ``published_at >= since`` on.

    Recovers events a bus lost after acknowledging them, for example when a
    single nats-server crashed before it flushed them to disk. Rows go out in
    id order under the relay lock, through the relay's publish path and with
    the same Nats-Msg-Id. Repeating it is safe because JetStream drops copies
    within its duplicate window, and each consumer's inbox skips events it
    already applied. Rows stay as they are, ``published_at`` included. Rows
    purged after the retention period cannot be re-published. Return at once
    with ``locked_out`` when a relay owns the outbox. Raises
    ``RepublishSinceNaive`` when ``since`` has no time zone.
    """
    if timezone.is_naive(since):
        raise RepublishSinceNaive(f"since={since.isoformat()} has no time zone; pass an aware datetime")

    bus_module = get_module(module)
    bus = bus or get_bus()
    batch_size = batch_size or bus_settings().relay_batch_size
    result = RepublishResult(module=module)

    def settle(wave: list, outcomes: list[PublishOutcome]) -> None:
        for outcome in outcomes:
            if outcome.stored:
                result.republished += 1
                result.duplicates += int(outcome.duplicate)
            else:
                result.failed += 1
                if outcome.error not in result.errors:
                    result.errors.append(outcome.error)

    with relay_lock(bus_module.alias, module) as acquired:
        if not acquired:
            result.locked_out = True
            return result

        # No relay publishes this outbox while the lock is held, so no row
        # becomes published behind the id cursor.
        failed_aggregates: set[tuple] = set()
        last_id = 0
        while True:
            rows = _published_since(bus_module, since, last_id, batch_size)
            if not rows:
                break
            result.held += publish_in_aggregate_order(
                bus, rows, settle=settle, failed_aggregates=failed_aggregates
            )
            last_id = rows[-1].id

    logger.info(
        "Re-published %s event(s) from %s published since %s, %s already in the stream, %s failed, %s held back",
        result.republished, module, since.isoformat(), result.duplicates, result.failed, result.held,
        extra={"bus_module": module},
    )
    return result


def outbox_republish_count(*, module: str, since: datetime) -> int:
    """Return how many of ``module``'s rows ``outbox_republish`` would send for ``since``."""
    bus_module = get_module(module)
    return (
        bus_module.outbox.objects.using(bus_module.alias)
        .filter(state=OutboxState.PUBLISHED, published_at__gte=since)
        .count()
    )


def _published_since(bus_module: BusModule, since: datetime, after_id: int, batch_size: int) -> list:
    return list(
        bus_module.outbox.objects.using(bus_module.alias)
        .filter(state=OutboxState.PUBLISHED, published_at__gte=since, id__gt=after_id)
        .order_by("id")
        .only("id", "event_id", "subject", "body", "aggregate_type", "aggregate_id")[:batch_size]
    )


def outbox_purge(*, module: str, now: datetime | None = None) -> int:
    """Delete ``module``'s published rows older than the retention period; return how many."""
    bus_module = get_module(module)
    retention = timedelta(seconds=bus_settings().outbox_retention_seconds)
    cutoff = (now or timezone.now()) - retention
    deleted, _ = (
        bus_module.outbox.objects.using(bus_module.alias)
        .filter(state=OutboxState.PUBLISHED, published_at__lt=cutoff)
        .delete()
    )
    if deleted:
        logger.info("Purged %s published outbox row(s) from %s", deleted, module, extra={"bus_module": module})
    return deleted
