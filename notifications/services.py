"""Record, send and retry customer email notifications.

Exactly one email per event and template:

1. ``notification_create`` inserts the rendered email as a pending row in the
   transaction of the handler that applied the event. A redelivered event is
   skipped by the inbox. A replayed one conflicts with the row (unique on
   source event and template), so its INSERT ... ON CONFLICT DO NOTHING
   changes nothing.
2. After that transaction commits, ``notification_send`` claims the row,
   hands the email to Django's email backend outside any transaction, then
   marks the row sent or failed in a second short transaction that also
   appends notifications.notification.sent or .failed to the outbox.
3. ``notifications_send_pending`` sends the rows left pending, because the
   process died after the commit of step 1 or during step 2.

Each write of step 2 is one UPDATE conditioned on the row's ``version``,
which every write increments. The UPDATE changes the row only when it is
still as the sender last read or wrote it, so PostgreSQL serialises two
senders on the row lock and the second one matches no row. A sender that
matches no row, or holds only the notification id, reads the row with
SELECT ... FOR UPDATE and decides from what it finds.

NOTE: a customer can get the same email twice in one case only. When the
process crashes after the email backend accepted the email and before step 2
marked the row sent, the row stays pending, and ``notifications_send_pending``
sends it again (with the same Message-ID). Every other failure sends nothing
or sends once, provided a send finishes within its lease of
``DEFAULT_LEASE_SECONDS``; settings.EMAIL_TIMEOUT bounds each SMTP operation
well below it.
"""

import logging
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.core.exceptions import ValidationError
from django.core.mail import get_connection
from django.core.validators import validate_email
from django.db import connections, transaction
from django.db.models import Q

from billing.bulk import group_by, insert_new
from eventbus.outbox import outbox_append, outbox_rows_collected
from eventbus.registry import get_module
from notifications.emails import build_message, render_email
from notifications.errors import NotificationNotFound, UnknownTemplate
from notifications.events import (
    NOTIFICATION_FAILED,
    NOTIFICATION_SENT,
    NotificationFailed,
    NotificationSent,
)
from notifications.models import Notification, NotificationStatus, NotificationTemplate

logger = logging.getLogger(__name__)

ALIAS = "notifications"
AGGREGATE_TYPE = "notification"

# An attempt owns a pending row for this long. Another attempt takes the row
# over only after that, so the email backend's timeout must be shorter.
DEFAULT_LEASE_SECONDS = 60

# A batch renews the claims of its rows each time this many seconds pass, so
# an email starts within this time of its last claim. With EMAIL_TIMEOUT at
# 30 s, the send then ends within DEFAULT_LEASE_SECONDS of that claim.
RENEW_CLAIM_AFTER_SECONDS = 10

# The clock a batch measures its own duration with; tests replace it.
_clock = time.monotonic

# A row still pending after this many attempts keeps crashing its sender (an
# attempt that fails cleanly marks it failed at once), so it is marked failed
# instead of being sent on every pass forever.
MAX_SEND_ATTEMPTS = 5

# Errors are stored for people to read, so a backend's multi-kilobyte
# message is cut to this many characters.
MAX_ERROR_LENGTH = 2000


@dataclass(frozen=True)
class NotificationRequest:
    """One email to record for an event; the fields are ``notification_create``'s arguments."""

    tenant_id: str
    source_event_id: str
    source_event_type: str
    correlation_id: str
    template: str
    customer_id: str
    recipient: str
    context: dict[str, Any]
    now: datetime
    invoice_id: str = ""
    invoice_number: str = ""


def notification_create(
    *,
    tenant_id: str,
    source_event_id: str,
    source_event_type: str,
    correlation_id: str,
    template: str,
    customer_id: str,
    recipient: str,
    context: dict[str, Any],
    now: datetime,
    invoice_id: str = "",
    invoice_number: str = "",
) -> tuple[Notification, bool]:
    """Render ``template`` with ``context`` and record it as one notification of the event.

    Return the notification and whether this call created it. A second call
    for the same event and template returns the existing row unchanged.
    A missing or invalid ``recipient`` records the notification as failed
    and appends notifications.notification.failed; nothing is ever sent for it.
    The caller sends a pending notification with ``notification_send`` after
    its transaction commits. Raises ``UnknownTemplate``.
    """
    request = NotificationRequest(
        tenant_id=tenant_id,
        source_event_id=source_event_id,
        source_event_type=source_event_type,
        correlation_id=correlation_id,
        template=template,
        customer_id=customer_id,
        recipient=recipient,
        context=context,
        now=now,
        invoice_id=invoice_id,
        invoice_number=invoice_number,
    )
    (result,) = notification_create_many([request])
    return result


def notification_create_many(requests: Sequence[NotificationRequest]) -> list[tuple[Notification, bool]]:
    """Record each request as ``notification_create`` does; return each one's notification and whether it is new.

    One INSERT writes every new row. Raise ``UnknownTemplate`` for the first
    unknown template, writing nothing.
    """
    for request in requests:
        if request.template not in NotificationTemplate.values:
            raise UnknownTemplate(request.template, NotificationTemplate.values)
    notifications = [_rendered(request) for request in requests]

    results = []
    # Inside a handler's transaction a savepoint would cost two statements and
    # protect nothing, because every error here propagates, and Django then
    # rolls back to the enclosing savepoint or rolls back the transaction.
    with transaction.atomic(using=ALIAS, savepoint=False):
        # A concurrent insert of the same event and template makes this wait
        # for that transaction, and then skips the row if it committed.
        inserted = insert_new(notifications, using=ALIAS, unique_fields=("source_event_id", "template"))
        existing = _recorded_before([notification for notification in notifications if notification.id not in inserted])
        for notification in notifications:
            if notification.id not in inserted:
                recorded = existing[(uuid.UUID(str(notification.source_event_id)), notification.template)]
                logger.info(
                    "Notification already recorded for this event, skipped",
                    extra={"notification_id": str(recorded.id), "event_id": str(notification.source_event_id)},
                )
                results.append((recorded, False))
                continue
            if notification.error:
                logger.warning("Notification not sent: %s", notification.error, extra=_log_extra(notification))
                _append_outcome(notification, notification.created_at)
            results.append((notification, True))
    return results


def _rendered(request: NotificationRequest) -> Notification:
    rendered = render_email(request.template, request.context)
    error = _recipient_error(request.customer_id, request.recipient)
    return Notification(
        tenant_id=request.tenant_id,
        source_event_id=request.source_event_id,
        source_event_type=request.source_event_type,
        correlation_id=request.correlation_id,
        template=request.template,
        customer_id=request.customer_id,
        recipient=request.recipient,
        invoice_id=request.invoice_id,
        invoice_number=request.invoice_number,
        subject=rendered.subject,
        body_text=rendered.body_text,
        body_html=rendered.body_html,
        status=NotificationStatus.FAILED if error else NotificationStatus.PENDING,
        error=error,
        created_at=request.now,
    )


def _recorded_before(notifications: list[Notification]) -> dict[tuple[uuid.UUID, str], Notification]:
    """Return the rows already recorded for the events and templates of ``notifications``, by event id and template."""
    if not notifications:
        return {}
    rows = Notification.objects.using(ALIAS).filter(
        source_event_id__in={notification.source_event_id for notification in notifications},
        template__in={notification.template for notification in notifications},
    )
    return {(row.source_event_id, row.template): row for row in rows}


def notification_send(
    *,
    notification_id: str,
    now: datetime,
    lease_seconds: int = DEFAULT_LEASE_SECONDS,
    notification: Notification | None = None,
) -> Notification:
    """Send one pending notification's email and record the outcome.

    Do nothing when the row is no longer pending, or when another attempt
    started less than ``lease_seconds`` ago and may still be sending. A
    backend error marks the row failed with the error; it is not retried.
    Passing ``notification``, the row as the caller last read or wrote it
    (such as the one ``notification_create`` returned), saves reading it
    again, and it is updated in place. Return the notification as it is
    afterwards.
    Raises ``NotificationNotFound``, and ``ValueError`` when ``notification``
    has another id than ``notification_id``.
    """
    if notification is not None and str(notification.id) != str(notification_id):
        raise ValueError(
            f"notification_id {notification_id} differs from the id {notification.id} of the "
            "notification passed; pass the id of that notification"
        )

    notification, claimed = _claim(notification_id, notification, now, lease_seconds)
    if not claimed:
        return notification

    message = build_message(
        notification_id=str(notification.id),
        recipient=notification.recipient,
        subject=notification.subject,
        body_text=notification.body_text,
        body_html=notification.body_html,
    )
    return _record_outcome(notification, now, _send_email(message))


def notification_send_many(*, notifications: Sequence[Notification], now: datetime) -> None:
    """Send several pending notifications as ``notification_send`` sends each, with shared writes.

    ``notifications`` are the rows as their caller last wrote them, such as
    those ``notification_create`` returned. The rows still as the caller left
    them are claimed with one UPDATE. Their emails go out through one email
    backend connection, and their outcomes are written and their events
    appended in one transaction. Every other row, and any row changed by
    another sender in between, goes through the row-at-a-time path of
    ``notification_send``. Must be called outside any transaction on the
    notifications database.
    """
    started = _clock()
    lease_start = now - timedelta(seconds=DEFAULT_LEASE_SECONDS)
    claimed: list[Notification] = []
    for (version, attempts), alike in group_by(
        [notification for notification in notifications if _is_claimable(notification, lease_start)],
        lambda notification: (notification.version, notification.attempts),
    ):
        claimed.extend(_update_alike_if_unchanged(alike, version, attempts=attempts + 1, last_attempt_at=now))
    if claimed:
        _send_claimed(claimed, now, started)
    # The rows not claimed above go one at a time after the claimed ones, so
    # their sends cannot delay a renewal. Each is attempted at the clock's time.
    claimed_ids = {notification.id for notification in claimed}
    for notification in notifications:
        if notification.id not in claimed_ids:
            notification_send(
                notification_id=str(notification.id), now=now + timedelta(seconds=_clock() - started)
            )


def _send_claimed(claimed: list[Notification], now: datetime, started: float) -> None:
    """Send the claimed rows' emails, then write their outcomes and append their events in one transaction."""
    errors = _send_emails(claimed, now, started)
    sent = [notification for notification in claimed if notification.id in errors]

    changed: list[tuple[Notification, str]] = []
    with transaction.atomic(using=ALIAS, durable=True):
        with outbox_rows_collected(get_module(ALIAS)):
            for (version, error), alike in group_by(
                sent, lambda notification: (notification.version, errors[notification.id])
            ):
                written = _update_alike_if_unchanged(alike, version, **_outcome(error, now))
                written_ids = {notification.id for notification in written}
                changed.extend((notification, error) for notification in alike if notification.id not in written_ids)
                for notification in written:
                    _append_outcome(notification, now)
                    _log_outcome(notification, error)
    for notification, error in changed:
        _record_outcome(notification, now, error)


def _send_emails(notifications: list[Notification], now: datetime, started: float) -> dict[uuid.UUID, str]:
    """Hand each claimed notification's email to the email backend over one connection.

    Return the error of each notification sent, or "". ``started`` is the
    ``_clock()`` reading taken before the rows were claimed at ``now``. The
    claims are renewed each time ``RENEW_CLAIM_AFTER_SECONDS`` have passed, so no row
    waits for its send, or for its outcome to be written, past its lease.
    A row whose renewal matches nothing before its send was taken over by
    another sender and is neither sent nor returned.
    """
    errors = {}
    ours = {notification.id for notification in notifications}
    renewed = started
    connection = get_connection(fail_silently=False)
    try:
        connection.open()
    # A connection that cannot open raises again on each send, and that error
    # is recorded on each notification.
    except Exception:  # noqa: BLE001
        pass
    try:
        for notification in notifications:
            if _clock() - renewed > RENEW_CLAIM_AFTER_SECONDS:
                # Rows already sent are renewed too: their outcomes are written after the batch.
                moment = now + timedelta(seconds=_clock() - started)
                ours = {row.id for row in _renew_claims([row for row in notifications if row.id in ours], moment)}
                renewed = _clock()
            if notification.id not in ours:
                continue
            message = build_message(
                notification_id=str(notification.id),
                recipient=notification.recipient,
                subject=notification.subject,
                body_text=notification.body_text,
                body_html=notification.body_html,
            )
            message.connection = connection
            errors[notification.id] = _send_email(message)
    finally:
        try:
            connection.close()
        except Exception:  # noqa: BLE001
            logger.warning("Closing the email backend connection failed", exc_info=True)
    return errors


def _renew_claims(notifications: list[Notification], moment: datetime) -> list[Notification]:
    """Move the last attempt of each still claimed row to ``moment``; return the rows renewed."""
    renewed = []
    for version, alike in group_by(notifications, lambda notification: notification.version):
        renewed.extend(_update_alike_if_unchanged(alike, version, last_attempt_at=moment))
    return renewed


def _send_email(message) -> str:
    """Send ``message``; return "" when the backend accepted it, else why not."""
    try:
        accepted = message.send(fail_silently=False)
    # Email backends raise many unrelated types: smtplib.SMTPException,
    # OSError, TimeoutError, ValueError for a bad header, or their own. Each
    # means the email was not sent, so each is recorded alike.
    except Exception as exception:  # noqa: BLE001
        return f"{type(exception).__name__}: {exception}"
    if accepted != 1:
        return f"the email backend accepted {accepted} messages instead of 1"
    return ""


def _update_alike_if_unchanged(notifications: list[Notification], version: int, **changes: Any) -> list[Notification]:
    """Write ``changes`` and a new version to those of ``notifications`` (all at ``version``) still at it.

    Return the notifications written, with the changes applied to them in
    memory. One UPDATE ... RETURNING does it, which PostgreSQL and SQLite 3.35
    or later run; the UPDATE locks the rows, as ``_update_if_unchanged`` does.
    """
    if not notifications:
        return []
    connection = connections[ALIAS]
    quote_name = connection.ops.quote_name
    meta = Notification._meta
    assignments = []
    values = []
    for name, value in {**changes, "version": version + 1}.items():
        field = meta.get_field(name)
        assignments.append(f"{quote_name(field.column)} = %s")
        values.append(field.get_db_prep_save(value, connection))
    pk = meta.pk
    ids = [pk.get_db_prep_value(notification.id, connection) for notification in notifications]
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {quote_name(meta.db_table)} SET {', '.join(assignments)} "
            f"WHERE {quote_name('version')} = %s AND {quote_name(pk.column)} IN ({', '.join(['%s'] * len(ids))}) "
            f"RETURNING {quote_name(pk.column)}",
            [*values, version, *ids],
        )
        written_ids = {pk.to_python(row[0]) for row in cursor.fetchall()}

    written = [notification for notification in notifications if notification.id in written_ids]
    for notification in written:
        for field, value in changes.items():
            setattr(notification, field, value)
        notification.version = version + 1
    return written


def notifications_send_pending(*, now: datetime, older_than_seconds: int = 60) -> int:
    """Send the notifications left pending for at least ``older_than_seconds``; return how many were sent.

    A pending row is one whose email went unsent because its process died
    after the handler committed, or whose sender died before it recorded the
    outcome. In the second case this sends the email again, the only case in
    which a customer receives an email twice. ``older_than_seconds`` must
    exceed the email backend's timeout, so a send still in progress is not
    taken over.
    """
    if older_than_seconds < 0:
        raise ValueError(f"older_than_seconds must be 0 or more, got {older_than_seconds}")

    due = _due_for_sending(now, older_than_seconds)
    sent = 0
    for notification_id in due:
        notification = notification_send(
            notification_id=notification_id, now=now, lease_seconds=older_than_seconds
        )
        if notification.status == NotificationStatus.SENT:
            sent += 1
    if due:
        logger.info("Sent %s of %s pending notification(s)", sent, len(due))
    return sent


def _due_for_sending(now: datetime, older_than_seconds: int) -> list[str]:
    """Return the ids of pending notifications with no attempt in the last ``older_than_seconds``.

    A pending row never attempted is due once it was created that long ago.
    An attempted one is due once its last attempt started that long ago,
    because that attempt crashed or is running past its lease.
    """
    cutoff = now - timedelta(seconds=older_than_seconds)
    due = Q(last_attempt_at__isnull=True, created_at__lt=cutoff) | Q(last_attempt_at__lt=cutoff)
    return [
        str(notification_id)
        for notification_id in Notification.objects.using(ALIAS)
        .filter(due, status=NotificationStatus.PENDING)
        .order_by("created_at", "id")
        .values_list("id", flat=True)
    ]


def _recipient_error(customer_id: str, recipient: str) -> str:
    if not recipient:
        return f"customer {customer_id} has no email address"
    try:
        validate_email(recipient)
    except ValidationError:
        return f"customer {customer_id} has an invalid email address {recipient!r}"
    return ""


def _claim(
    notification_id: str, known: Notification | None, now: datetime, lease_seconds: int
) -> tuple[Notification, bool]:
    """Count a send attempt on a pending row, and return the row with whether this attempt may send it.

    A ``known`` row that looks free is claimed with one UPDATE guarded by its
    version. Otherwise, or when the row changed since, it is read under a lock.
    """
    lease_start = now - timedelta(seconds=lease_seconds)
    if known is not None and _is_claimable(known, lease_start):
        changes = {"attempts": known.attempts + 1, "last_attempt_at": now}
        if _update_if_unchanged(known, **changes):
            return known, True

    return _claim_locked(notification_id, now, lease_start)


def _is_claimable(notification: Notification, lease_start: datetime) -> bool:
    return (
        notification.status == NotificationStatus.PENDING
        and (notification.last_attempt_at is None or notification.last_attempt_at < lease_start)
        and notification.attempts < MAX_SEND_ATTEMPTS
    )


def _update_if_unchanged(notification: Notification, **changes: Any) -> bool:
    """Write ``changes`` and a new version to the row if its version is still ``notification.version``.

    On success, apply the same changes to ``notification`` and return True.
    Because every write increments the version, a matching version means the
    row equals ``notification``. The UPDATE locks the row, so of two
    concurrent writers holding the same version only the first matches.
    """
    version = notification.version + 1
    updated = (
        Notification.objects.using(ALIAS)
        .filter(id=notification.id, version=notification.version)
        .update(**changes, version=version)
    )
    if updated == 0:
        return False

    for field, value in changes.items():
        setattr(notification, field, value)
    notification.version = version
    return True


def _claim_locked(
    notification_id: str, now: datetime, lease_start: datetime
) -> tuple[Notification, bool]:
    with transaction.atomic(using=ALIAS):
        notification = (
            Notification.objects.using(ALIAS).select_for_update().filter(id=notification_id).first()
        )
        if notification is None:
            raise NotificationNotFound(str(notification_id))
        if notification.status != NotificationStatus.PENDING:
            return notification, False

        if notification.last_attempt_at is not None and notification.last_attempt_at >= lease_start:
            logger.info(
                "Notification is being sent by another attempt, skipped",
                extra=_log_extra(notification),
            )
            return notification, False

        if notification.attempts >= MAX_SEND_ATTEMPTS:
            notification.status = NotificationStatus.FAILED
            notification.error = (
                f"gave up after {notification.attempts} send attempts that recorded no outcome; "
                "the sending process crashed or timed out each time"
            )
            notification.version += 1
            notification.save(update_fields=["status", "error", "version"])
            logger.warning("Notification not sent: %s", notification.error, extra=_log_extra(notification))
            _append_outcome(notification, now)
            return notification, False

        notification.attempts += 1
        notification.last_attempt_at = now
        notification.version += 1
        notification.save(update_fields=["attempts", "last_attempt_at", "version"])
    return notification, True


def _record_outcome(claimed: Notification, now: datetime, error: str) -> Notification:
    """Mark the row this attempt claimed sent or failed, and append the matching event.

    The outcome is written with one UPDATE while the row is still as this
    attempt left it. When another attempt changed the row, it is read under a
    lock, and the outcome is recorded only if the row is still pending.
    """
    outcome = _outcome(error, now)
    with transaction.atomic(using=ALIAS):
        notification = claimed
        if not _update_if_unchanged(notification, **outcome):
            notification = Notification.objects.using(ALIAS).select_for_update().get(id=claimed.id)
            if notification.status != NotificationStatus.PENDING:
                # Only an attempt that outlived its lease gets here: a later
                # attempt took the row over and already recorded its outcome.
                logger.warning(
                    "Notification outcome already recorded by another attempt; this attempt's "
                    "outcome (%s) is dropped",
                    error or "sent",
                    extra=_log_extra(notification),
                )
                return notification

            for field, value in outcome.items():
                setattr(notification, field, value)
            notification.version += 1
            notification.save(update_fields=[*outcome, "version"])
        _append_outcome(notification, now)
    _log_outcome(notification, error)
    return notification


def _outcome(error: str, now: datetime) -> dict[str, Any]:
    """Return the fields that record a send attempt's outcome: failed with ``error``, or sent at ``now``."""
    if error:
        return {"status": NotificationStatus.FAILED, "error": error[:MAX_ERROR_LENGTH]}
    return {"status": NotificationStatus.SENT, "sent_at": now, "error": ""}


def _log_outcome(notification: Notification, error: str) -> None:
    if error:
        logger.warning("Sending notification failed: %s", error, extra=_log_extra(notification))
    else:
        logger.info("Sent notification", extra=_log_extra(notification))


def _append_outcome(notification: Notification, now: datetime) -> None:
    """Append notifications.notification.sent or .failed for ``notification``'s current status."""
    common = {
        "notification_id": str(notification.id),
        "template": notification.template,
        "recipient": notification.recipient,
        "source_event_id": str(notification.source_event_id),
        "source_event_type": notification.source_event_type,
    }
    if notification.status == NotificationStatus.SENT:
        event_type, payload = NOTIFICATION_SENT, NotificationSent(**common)
    else:
        event_type, payload = NOTIFICATION_FAILED, NotificationFailed(**common, error=notification.error)
    outbox_append(
        module=ALIAS,
        event_type=event_type,
        aggregate_type=AGGREGATE_TYPE,
        aggregate_id=str(notification.id),
        aggregate_version=notification.version,
        tenant_id=notification.tenant_id,
        payload=payload,
        occurred_at=now,
        correlation_id=uuid.UUID(str(notification.correlation_id)),
        causation_id=uuid.UUID(str(notification.source_event_id)),
    )


def _log_extra(notification: Notification) -> dict[str, str]:
    return {
        "notification_id": str(notification.id),
        "tenant_id": notification.tenant_id,
        "event_id": str(notification.source_event_id),
        "template": notification.template,
    }
