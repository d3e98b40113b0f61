import threading
import uuid
from datetime import timedelta

import pytest
from django.core.mail.backends.base import BaseEmailBackend
from django.db import connections, transaction
from django.db.models import F
from django.test.utils import CaptureQueriesContext

from eventbus.envelope import Envelope
from notifications import contexts, services
from notifications.errors import NotificationNotFound, UnknownTemplate
from notifications.models import Notification, NotificationStatus, OutboxEvent
from notifications.services import (
    MAX_SEND_ATTEMPTS,
    notification_create,
    notification_send,
    notification_send_many,
    notifications_send_pending,
)
from notifications.tests.factories import (
    OCCURRED_AT,
    TENANT_ID,
    NotificationFactory,
    SubscriptionCanceledFactory,
)
from notifications.tests.support import statements
from tests.support import free_port

pytestmark = pytest.mark.django_db(databases="__all__")
ALIAS = "notifications"
NOW = OCCURRED_AT + timedelta(minutes=5)


def notifications():
    return Notification.objects.using(ALIAS)


def outbox(event_type: str):
    return OutboxEvent.objects.using(ALIAS).filter(event_type=event_type)


def published_payload(row: OutboxEvent) -> dict:
    return Envelope.from_json(row.body.encode()).payload


@pytest.fixture
def unreachable_smtp(settings):
    """An SMTP backend pointed at a loopback port where nothing listens."""
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST = "127.0.0.1"
    settings.EMAIL_PORT = free_port()
    settings.EMAIL_TIMEOUT = 5


@pytest.fixture
def during_send(monkeypatch):
    """Run a function while the email backend sends, as a concurrent attempt would."""

    def install(action):
        build_message = services.build_message

        def build(**fields):
            message = build_message(**fields)
            send = message.send

            def send_after_action(**options):
                action()
                return send(**options)

            message.send = send_after_action
            return message

        monkeypatch.setattr(services, "build_message", build)

    return install


class SlowBackend(BaseEmailBackend):
    """An email backend whose every send takes 15 s on the test's fake clock."""

    sends: list[str] = []
    clock: dict = {}
    during_fifth = None

    def send_messages(self, messages):
        for message in messages:
            SlowBackend.clock["seconds"] += 15
            SlowBackend.sends.append(message.extra_headers["X-Billing-Notification-Id"])
            if len(SlowBackend.sends) == 5:
                SlowBackend.during_fifth()
        return len(messages)


def create(**overrides):
    payload = SubscriptionCanceledFactory()
    fields = {
        "tenant_id": TENANT_ID,
        "source_event_id": str(uuid.uuid4()),
        "source_event_type": "subscriptions.subscription.canceled",
        "correlation_id": str(uuid.uuid4()),
        "template": "subscription_canceled",
        "customer_id": payload.customer_id,
        "recipient": "grace@example.com",
        "context": contexts.subscription_canceled_context(payload, customer_name="Grace Hopper"),
        "now": OCCURRED_AT,
    }
    return notification_create(**{**fields, **overrides})


class TestNotificationCreate:
    def test_records_rendered_pending_email(self, mailoutbox):
        notification, created = create()

        assert created is True
        assert notification.status == NotificationStatus.PENDING
        assert notification.subject == "Your Pro Monthly subscription is canceled"
        assert notification.body_text.startswith("Hello Grace Hopper,\n")
        assert "<strong>Pro Monthly</strong>" in notification.body_html
        assert notification.attempts == 0
        assert notification.version == 1
        assert notification.created_at == OCCURRED_AT
        assert mailoutbox == []
        assert not OutboxEvent.objects.using(ALIAS).exists()

    def test_same_event_and_template_recorded_once(self):
        first, _ = create(source_event_id="8a1c3a9e-2f51-4b0e-9a57-52f1f1d0c001")

        second, created = create(
            source_event_id="8a1c3a9e-2f51-4b0e-9a57-52f1f1d0c001", recipient="other@example.com"
        )

        assert created is False
        assert second.id == first.id
        assert second.recipient == "grace@example.com"
        assert notifications().count() == 1

    def test_repeat_of_failed_recipient_appends_nothing(self):
        source_event_id = str(uuid.uuid4())
        first, _ = create(source_event_id=source_event_id, recipient="")

        second, created = create(source_event_id=source_event_id, recipient="")

        assert created is False
        assert second.id == first.id
        assert second.status == NotificationStatus.FAILED
        assert outbox("notifications.notification.failed").count() == 1

    def test_same_event_other_template_recorded(self):
        source_event_id = str(uuid.uuid4())
        create(source_event_id=source_event_id)

        _, created = create(
            source_event_id=source_event_id,
            template="payment_receipt",
            context={"customer_name": "Grace", "amount": "1.00 USD"},
        )

        assert created is True
        assert notifications().filter(source_event_id=source_event_id).count() == 2

    def test_missing_recipient_recorded_failed(self, mailoutbox):
        notification, created = create(recipient="", customer_id="cus-7")

        assert created is True
        assert notification.status == NotificationStatus.FAILED
        assert notification.error == "customer cus-7 has no email address"
        assert mailoutbox == []
        payload = published_payload(outbox("notifications.notification.failed").get())
        assert payload == {
            "notification_id": str(notification.id),
            "template": "subscription_canceled",
            "recipient": "",
            "source_event_id": notification.source_event_id,
            "source_event_type": "subscriptions.subscription.canceled",
            "error": "customer cus-7 has no email address",
        }

    def test_invalid_recipient_recorded_failed(self):
        notification, _ = create(recipient="grace@", customer_id="cus-7")

        assert notification.status == NotificationStatus.FAILED
        assert notification.error == "customer cus-7 has an invalid email address 'grace@'"
        assert outbox("notifications.notification.failed").count() == 1

    def test_unknown_template_rejected(self):
        with pytest.raises(UnknownTemplate) as raised:
            create(template="welcome")

        assert raised.value.code == "unknown_template"
        assert str(raised.value) == (
            "template 'welcome' is unknown; use one of invoice_finalized, payment_receipt, "
            "payment_failed, subscription_canceled"
        )
        assert not notifications().exists()
        assert not OutboxEvent.objects.using(ALIAS).exists()


class TestNotificationSend:
    def test_sends_and_marks_sent(self, mailoutbox):
        pending = NotificationFactory()

        notification = notification_send(notification_id=str(pending.id), now=NOW)

        assert notification.status == NotificationStatus.SENT
        assert notification.sent_at == NOW
        assert notification.last_attempt_at == NOW
        assert notification.attempts == 1
        assert notification.version == 3
        assert len(mailoutbox) == 1
        assert mailoutbox[0].to == ["grace@example.com"]
        assert mailoutbox[0].subject == "Receipt for your payment of 49.70 USD"
        assert mailoutbox[0].body == "Hello Grace Hopper,\n"
        assert mailoutbox[0].alternatives[0][0] == "<p>Hello Grace Hopper,</p>"
        assert mailoutbox[0].extra_headers["X-Billing-Notification-Id"] == str(pending.id)
        row = outbox("notifications.notification.sent").get()
        assert row.aggregate_version == 3
        assert published_payload(row) == {
            "notification_id": str(pending.id),
            "template": "payment_receipt",
            "recipient": "grace@example.com",
            "source_event_id": str(pending.source_event_id),
            "source_event_type": "payments.payment.succeeded",
        }

    def test_failing_backend_marks_failed(self, unreachable_smtp, mailoutbox):
        pending = NotificationFactory()

        notification = notification_send(notification_id=str(pending.id), now=NOW)

        assert notification.status == NotificationStatus.FAILED
        assert notification.error == "ConnectionRefusedError: [Errno 111] Connection refused"
        assert notification.sent_at is None
        assert notification.attempts == 1
        assert mailoutbox == []
        payload = published_payload(outbox("notifications.notification.failed").get())
        assert payload["error"] == "ConnectionRefusedError: [Errno 111] Connection refused"
        assert payload["notification_id"] == str(pending.id)
        assert not outbox("notifications.notification.sent").exists()

    def test_sent_notification_not_sent_again(self, mailoutbox):
        pending = NotificationFactory()
        notification_send(notification_id=str(pending.id), now=NOW)

        notification = notification_send(notification_id=str(pending.id), now=NOW + timedelta(hours=1))

        assert notification.sent_at == NOW
        assert notification.attempts == 1
        assert len(mailoutbox) == 1
        assert outbox("notifications.notification.sent").count() == 1

    def test_failed_notification_not_retried(self, mailoutbox):
        failed = NotificationFactory(status=NotificationStatus.FAILED, error="customer cus-7 has no email address")

        notification = notification_send(notification_id=str(failed.id), now=NOW)

        assert notification.status == NotificationStatus.FAILED
        assert notification.attempts == 0
        assert mailoutbox == []
        assert not OutboxEvent.objects.using(ALIAS).exists()

    def test_attempt_in_progress_skipped(self, mailoutbox):
        claimed = NotificationFactory(attempts=1, last_attempt_at=NOW - timedelta(seconds=30), version=2)

        notification = notification_send(notification_id=str(claimed.id), now=NOW)

        assert notification.status == NotificationStatus.PENDING
        assert notification.attempts == 1
        assert notification.version == 2
        assert mailoutbox == []

    def test_attempts_exhausted_marked_failed(self, mailoutbox):
        stuck = NotificationFactory(attempts=MAX_SEND_ATTEMPTS, last_attempt_at=NOW - timedelta(hours=1))

        notification = notification_send(notification_id=str(stuck.id), now=NOW)

        assert notification.status == NotificationStatus.FAILED
        assert notification.error == (
            "gave up after 5 send attempts that recorded no outcome; the sending process crashed "
            "or timed out each time"
        )
        assert notification.attempts == MAX_SEND_ATTEMPTS
        assert mailoutbox == []
        assert outbox("notifications.notification.failed").count() == 1

    def test_sends_row_passed(self, mailoutbox):
        created, _ = create()

        notification = notification_send(notification_id=str(created.id), notification=created, now=NOW)

        assert notification is created
        assert notification.status == NotificationStatus.SENT
        assert notification.attempts == 1
        assert notification.version == 3
        stored = notifications().get(id=created.id)
        assert stored.status == NotificationStatus.SENT
        assert stored.sent_at == NOW
        assert stored.last_attempt_at == NOW
        assert stored.attempts == 1
        assert stored.version == 3
        assert len(mailoutbox) == 1
        assert outbox("notifications.notification.sent").get().aggregate_version == 3

    def test_stale_row_passed_read_again(self, mailoutbox):
        created, _ = create()
        notification_send(notification_id=str(created.id), now=NOW)

        notification = notification_send(
            notification_id=str(created.id), notification=created, now=NOW + timedelta(hours=1)
        )

        assert notification.status == NotificationStatus.SENT
        assert notification.sent_at == NOW
        assert notification.attempts == 1
        assert len(mailoutbox) == 1
        assert outbox("notifications.notification.sent").count() == 1

    def test_row_of_other_id_rejected(self, mailoutbox):
        created, _ = create()
        other = "0f5b7c9e-1111-4222-8333-944455556666"

        with pytest.raises(ValueError) as raised:
            notification_send(notification_id=other, notification=created, now=NOW)

        assert str(raised.value) == (
            f"notification_id {other} differs from the id {created.id} of the notification passed; "
            "pass the id of that notification"
        )
        assert notifications().get(id=created.id).attempts == 0
        assert mailoutbox == []

    def test_outcome_recorded_after_takeover(self, during_send, mailoutbox):
        created, _ = create()
        # A later attempt claims the row while this one is still sending.
        during_send(
            lambda: notifications()
            .filter(id=created.id)
            .update(attempts=F("attempts") + 1, last_attempt_at=NOW, version=F("version") + 1)
        )

        notification = notification_send(notification_id=str(created.id), notification=created, now=NOW)

        assert notification.status == NotificationStatus.SENT
        assert notification.attempts == 2
        assert notification.version == 4
        assert notifications().get(id=created.id).status == NotificationStatus.SENT
        assert outbox("notifications.notification.sent").get().aggregate_version == 4

    def test_outcome_dropped_after_takeover_finished(self, during_send, mailoutbox):
        created, _ = create()
        # A later attempt claims the row and records its outcome while this one is still sending.
        during_send(
            lambda: notifications()
            .filter(id=created.id)
            .update(
                status=NotificationStatus.FAILED,
                error="TimeoutError: timed out",
                attempts=F("attempts") + 1,
                version=F("version") + 2,
            )
        )

        notification = notification_send(notification_id=str(created.id), notification=created, now=NOW)

        assert notification.status == NotificationStatus.FAILED
        assert notification.error == "TimeoutError: timed out"
        assert notification.version == 4
        assert len(mailoutbox) == 1
        assert not OutboxEvent.objects.using(ALIAS).exists()

    def test_unknown_id_raises(self):
        missing = "0f5b7c9e-1111-4222-8333-944455556666"

        with pytest.raises(NotificationNotFound) as raised:
            notification_send(notification_id=missing, now=NOW)

        assert raised.value.code == "notification_not_found"
        assert str(raised.value) == f"notification {missing} not found"
        assert not OutboxEvent.objects.using(ALIAS).exists()


class TestNotificationsSendPending:
    def test_sends_old_pending_only(self, mailoutbox):
        old = NotificationFactory(created_at=NOW - timedelta(seconds=61))
        young = NotificationFactory(created_at=NOW - timedelta(seconds=59))
        NotificationFactory(
            created_at=NOW - timedelta(hours=1), status=NotificationStatus.SENT, sent_at=NOW - timedelta(hours=1)
        )
        NotificationFactory(created_at=NOW - timedelta(hours=1), status=NotificationStatus.FAILED, error="x")

        sent = notifications_send_pending(now=NOW, older_than_seconds=60)

        assert sent == 1
        assert len(mailoutbox) == 1
        assert mailoutbox[0].extra_headers["X-Billing-Notification-Id"] == str(old.id)
        assert notifications().get(id=old.id).status == NotificationStatus.SENT
        assert notifications().get(id=young.id).status == NotificationStatus.PENDING
        assert outbox("notifications.notification.sent").count() == 1

    def test_resends_after_crash_between_send_and_mark(self, mailoutbox):
        # What a crash after the backend accepted the email leaves behind:
        # one attempt counted, the row still pending.
        crashed = NotificationFactory(attempts=1, last_attempt_at=NOW - timedelta(minutes=2), version=2)

        sent = notifications_send_pending(now=NOW, older_than_seconds=60)

        assert sent == 1
        assert len(mailoutbox) == 1
        notification = notifications().get(id=crashed.id)
        assert notification.status == NotificationStatus.SENT
        assert notification.attempts == 2
        assert notification.version == 4

    def test_skips_recent_attempt(self, mailoutbox):
        NotificationFactory(
            created_at=NOW - timedelta(hours=1), attempts=1, last_attempt_at=NOW - timedelta(seconds=10)
        )

        sent = notifications_send_pending(now=NOW, older_than_seconds=60)

        assert sent == 0
        assert mailoutbox == []

    def test_second_sweep_sends_nothing(self, mailoutbox):
        NotificationFactory(created_at=NOW - timedelta(minutes=2))
        notifications_send_pending(now=NOW)

        sent = notifications_send_pending(now=NOW + timedelta(minutes=5))

        assert sent == 0
        assert len(mailoutbox) == 1

    def test_failing_backend_counts_nothing_sent(self, unreachable_smtp, mailoutbox):
        pending = NotificationFactory(created_at=NOW - timedelta(minutes=2))

        sent = notifications_send_pending(now=NOW)

        assert sent == 0
        assert notifications().get(id=pending.id).status == NotificationStatus.FAILED
        assert outbox("notifications.notification.failed").count() == 1

    def test_negative_age_rejected(self):
        NotificationFactory(created_at=NOW - timedelta(minutes=2))

        with pytest.raises(ValueError) as raised:
            notifications_send_pending(now=NOW, older_than_seconds=-1)

        assert str(raised.value) == "older_than_seconds must be 0 or more, got -1"
        assert notifications().get().attempts == 0


@pytest.mark.django_db(databases="__all__", transaction=True)
class TestConcurrentSends:
    def test_same_notification_sent_once(self, mailoutbox):
        pending = NotificationFactory(created_at=NOW - timedelta(minutes=2))
        barrier = threading.Barrier(4)
        errors = []

        def send():
            try:
                barrier.wait(timeout=10)
                notification_send(notification_id=str(pending.id), now=NOW)
            except Exception as error:  # noqa: BLE001 - reported by the assert below
                errors.append(error)
            finally:
                connections.close_all()

        threads = [threading.Thread(target=send) for _ in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=30)

        assert errors == []
        assert len(mailoutbox) == 1
        notification = notifications().get()
        assert notification.status == NotificationStatus.SENT
        assert notification.attempts == 1
        assert outbox("notifications.notification.sent").count() == 1


@pytest.mark.django_db(databases="__all__", transaction=True)
class TestQueryCount:
    def test_create_in_handler_transaction(self):
        with transaction.atomic(using=ALIAS):
            with CaptureQueriesContext(connections[ALIAS]) as queries:
                create()

        assert statements(queries) == ["INSERT notifications_notification"]

    def test_send_of_row_passed(self):
        created, _ = create()

        with CaptureQueriesContext(connections[ALIAS]) as queries:
            notification_send(notification_id=str(created.id), notification=created, now=NOW)

        assert statements(queries) == [
            "UPDATE notifications_notification",
            "BEGIN",
            "UPDATE notifications_notification",
            "INSERT notifications_outboxevent",
            "COMMIT",
        ]

    def test_send_by_id(self):
        created, _ = create()

        with CaptureQueriesContext(connections[ALIAS]) as queries:
            notification_send(notification_id=str(created.id), now=NOW)

        assert statements(queries) == [
            "BEGIN",
            "SELECT notifications_notification",
            "UPDATE notifications_notification",
            "COMMIT",
            "BEGIN",
            "UPDATE notifications_notification",
            "INSERT notifications_outboxevent",
            "COMMIT",
        ]


class TestNotificationSendMany:
    def test_sends_each_and_marks_sent(self, mailoutbox):
        created = [create()[0] for _ in range(3)]

        notification_send_many(notifications=created, now=NOW)

        for notification in created:
            stored = notifications().get(id=notification.id)
            assert stored.status == NotificationStatus.SENT
            assert stored.sent_at == NOW
            assert stored.attempts == 1
            assert stored.version == 3
            assert notification.version == 3
        assert sorted(message.extra_headers["X-Billing-Notification-Id"] for message in mailoutbox) == sorted(
            str(notification.id) for notification in created
        )
        sent = outbox("notifications.notification.sent")
        assert sorted(row.aggregate_id for row in sent) == sorted(str(notification.id) for notification in created)
        assert {row.aggregate_version for row in sent} == {3}

    def test_failing_backend_marks_each_failed(self, unreachable_smtp, mailoutbox):
        created = [create()[0] for _ in range(2)]

        notification_send_many(notifications=created, now=NOW)

        for notification in created:
            stored = notifications().get(id=notification.id)
            assert stored.status == NotificationStatus.FAILED
            assert stored.error == "ConnectionRefusedError: [Errno 111] Connection refused"
        assert outbox("notifications.notification.failed").count() == 2
        assert mailoutbox == []

    def test_row_changed_elsewhere_goes_one_at_a_time(self, mailoutbox):
        fresh, _ = create()
        stale, _ = create()
        # Another sender claimed and sent this one since the caller wrote it.
        notification_send(notification_id=str(stale.id), now=NOW - timedelta(minutes=1))

        notification_send_many(notifications=[fresh, stale], now=NOW)

        assert notifications().get(id=fresh.id).sent_at == NOW
        assert notifications().get(id=stale.id).sent_at == NOW - timedelta(minutes=1)
        assert len(mailoutbox) == 2
        assert outbox("notifications.notification.sent").count() == 2

    def test_outcome_recorded_meanwhile_is_kept(self, during_send, mailoutbox):
        first, _ = create()
        second, _ = create()

        def take_over_first():
            # A sender whose lease started later records its own outcome first.
            if not mailoutbox:
                notifications().filter(id=first.id).update(
                    status=NotificationStatus.SENT, sent_at=NOW + timedelta(hours=1), version=F("version") + 1
                )

        during_send(take_over_first)
        notification_send_many(notifications=[first, second], now=NOW)

        assert notifications().get(id=first.id).sent_at == NOW + timedelta(hours=1)
        assert notifications().get(id=second.id).sent_at == NOW
        # Only the second send's outcome is announced; the first one's is dropped.
        assert [row.aggregate_id for row in outbox("notifications.notification.sent")] == [str(second.id)]


    def test_slow_batch_renews_claims_before_sweep(self, settings, monkeypatch):
        # Each send takes 15 s on a fake clock. During the fifth, the pending
        # sweep runs at the batch's start plus the time passed, as beat would.
        created = [create()[0] for _ in range(8)]
        clock = {"seconds": 0.0}
        monkeypatch.setattr(services, "_clock", lambda: clock["seconds"])
        SlowBackend.sends = []
        SlowBackend.during_fifth = lambda: notifications_send_pending(now=NOW + timedelta(seconds=clock["seconds"]))
        SlowBackend.clock = clock
        settings.EMAIL_BACKEND = "notifications.tests.test_services.SlowBackend"

        notification_send_many(notifications=created, now=NOW)

        assert sorted(SlowBackend.sends) == sorted(str(notification.id) for notification in created)
        assert {row.status for row in notifications()} == {NotificationStatus.SENT}
        assert outbox("notifications.notification.sent").count() == 8


@pytest.mark.django_db(databases="__all__", transaction=True)
class TestSendManyQueryCount:
    def test_statements_do_not_grow_with_notifications(self):
        def statements_to_send(count: int) -> list[str]:
            created = [create()[0] for _ in range(count)]
            with CaptureQueriesContext(connections[ALIAS]) as queries:
                notification_send_many(notifications=created, now=NOW)
            return statements(queries)

        assert statements_to_send(2) == statements_to_send(5) == [
            "UPDATE notifications_notification",
            "BEGIN",
            "UPDATE notifications_notification",
            "INSERT notifications_outboxevent",
            "COMMIT",
        ]


class SweepOnFirstBatchRowBackend(BaseEmailBackend):
    """Each send takes 25 s on the fake clock; the pending sweep runs once, when the batch sends its first row."""

    sends: list[str] = []
    clock: dict = {}
    batch_row = ""
    swept = False

    def send_messages(self, messages):
        for message in messages:
            notification_id = message.extra_headers["X-Billing-Notification-Id"]
            if notification_id == SweepOnFirstBatchRowBackend.batch_row and not SweepOnFirstBatchRowBackend.swept:
                SweepOnFirstBatchRowBackend.swept = True
                notifications_send_pending(now=NOW + timedelta(seconds=SweepOnFirstBatchRowBackend.clock["seconds"]))
            SweepOnFirstBatchRowBackend.clock["seconds"] += 25
            SweepOnFirstBatchRowBackend.sends.append(notification_id)
        return len(messages)


def test_slow_single_rows_do_not_expire_batch(settings, monkeypatch):
    batch_row = create()[0]
    fallback_rows = [create()[0] for _ in range(3)]
    # An earlier sender claimed these rows ten minutes ago and crashed, so the
    # batch's UPDATE misses them and notification_send takes them one by one.
    Notification.objects.using("notifications").filter(id__in=[row.id for row in fallback_rows]).update(
        attempts=1, last_attempt_at=NOW - timedelta(minutes=10), version=F("version") + 1,
    )
    clock = {"seconds": 0.0}
    monkeypatch.setattr(services, "_clock", lambda: clock["seconds"])
    SweepOnFirstBatchRowBackend.sends = []
    SweepOnFirstBatchRowBackend.clock = clock
    SweepOnFirstBatchRowBackend.batch_row = str(batch_row.id)
    SweepOnFirstBatchRowBackend.swept = False
    settings.EMAIL_BACKEND = "notifications.tests.test_services.SweepOnFirstBatchRowBackend"

    notification_send_many(notifications=[batch_row, *fallback_rows], now=NOW)

    assert SweepOnFirstBatchRowBackend.sends.count(str(batch_row.id)) == 1


@pytest.mark.parametrize("spelling", [str.upper, lambda text: text.replace("-", "")])
def test_repeat_with_other_uuid_spelling(spelling):
    """The same event named by another spelling of its UUID finds the row recorded first."""
    event_id = str(uuid.uuid4())
    first, created = create(source_event_id=event_id)

    again, created_again = create(source_event_id=spelling(event_id))

    assert created is True
    assert created_again is False
    assert again.id == first.id
