"""Events delivered to the notifications module send exactly one email per event and template."""

import json
import uuid
from datetime import timedelta

import pytest
from django.db import connections, transaction
from django.test.utils import CaptureQueriesContext

from ar.events import INVOICE_FINALIZED
from billing.tenancy.services import tenant_ensure
from eventbus.backends import OutgoingMessage, get_bus, reset_bus
from eventbus.conf import bus_settings
from eventbus.consumer import Disposition, Incoming, deliver_group
from eventbus.envelope import Envelope
from eventbus.outbox import outbox_append
from eventbus.registry import get_module
from eventbus.relay import relay_outbox
from notifications.models import (
    DeadLetter,
    Notification,
    NotificationStatus,
    OutboxEvent,
    ProcessedEvent,
)
from notifications.services import notifications_send_pending
from notifications.tests.factories import (
    OCCURRED_AT,
    TENANT_ID,
    Contact,
    InvoiceFinalizedFactory,
    PaymentFailedFactory,
    PaymentSucceededFactory,
    SubscriptionCanceledFactory,
    deliver_to_notifications,
    envelope_for,
)
from notifications.tests.support import statements
from payments.events import PAYMENT_FAILED, PAYMENT_SUCCEEDED
from subscriptions.events import SUBSCRIPTION_CANCELED

pytestmark = pytest.mark.django_db(databases="__all__")
ALIAS = "notifications"


def notifications():
    return Notification.objects.using(ALIAS)


def outbox(event_type: str):
    return OutboxEvent.objects.using(ALIAS).filter(event_type=event_type)


def published_envelope(row: OutboxEvent) -> Envelope:
    return Envelope.from_json(row.body.encode())


@pytest.fixture
def deliver_and_commit(django_capture_on_commit_callbacks):
    """Deliver an envelope and run the callbacks its handler left for after the commit."""

    def run(envelope, *, delivery=1):
        with django_capture_on_commit_callbacks(using=ALIAS, execute=True) as callbacks:
            result = deliver_to_notifications(envelope, delivery=delivery)
        return result, callbacks

    return run


class TestInvoiceFinalizedHandler:
    def test_delivery_sends_one_email(self, deliver_and_commit, mailoutbox):
        payload = InvoiceFinalizedFactory()
        envelope = envelope_for(INVOICE_FINALIZED, payload)

        result, callbacks = deliver_and_commit(envelope)

        assert result.disposition is Disposition.ACK
        assert len(callbacks) == 1
        notification = notifications().get()
        assert notification.status == NotificationStatus.SENT
        assert notification.template == "invoice_finalized"
        assert notification.tenant_id == TENANT_ID
        assert notification.source_event_id == envelope.event_id
        assert notification.source_event_type == "ar.invoice.finalized"
        assert notification.customer_id == payload.customer_id
        assert notification.recipient == "ada@example.com"
        assert notification.invoice_id == payload.invoice_id
        assert notification.invoice_number == "INV-2026-0042"
        assert notification.attempts == 1
        assert notification.error == ""
        assert notification.created_at == OCCURRED_AT
        assert notification.sent_at is not None
        assert len(mailoutbox) == 1
        email = mailoutbox[0]
        assert email.to == ["ada@example.com"]
        assert email.subject == "Invoice INV-2026-0042 for 59.70 USD"
        assert email.body == notification.body_text
        assert "- Pro plan (February 1, 2026 to February 28, 2026)\n" in email.body
        assert email.alternatives[0][0] == notification.body_html

    def test_sent_event_appended(self, deliver_and_commit):
        envelope = envelope_for(INVOICE_FINALIZED, InvoiceFinalizedFactory())

        deliver_and_commit(envelope)

        notification = notifications().get()
        row = outbox("notifications.notification.sent").get()
        sent = published_envelope(row)
        assert sent.payload == {
            "notification_id": str(notification.id),
            "template": "invoice_finalized",
            "recipient": "ada@example.com",
            "source_event_id": str(envelope.event_id),
            "source_event_type": "ar.invoice.finalized",
        }
        assert sent.aggregate_type == "notification"
        assert sent.aggregate_id == str(notification.id)
        assert sent.aggregate_version == notification.version
        assert sent.tenant_id == TENANT_ID
        assert sent.correlation_id == envelope.correlation_id
        assert sent.causation_id == envelope.event_id
        assert sent.occurred_at == notification.sent_at
        assert not outbox("notifications.notification.failed").exists()

    def test_redelivery_sends_no_second_email(self, deliver_and_commit, mailoutbox):
        envelope = envelope_for(INVOICE_FINALIZED, InvoiceFinalizedFactory())
        deliver_and_commit(envelope, delivery=1)

        result, callbacks = deliver_and_commit(envelope, delivery=2)

        assert result.disposition is Disposition.ACK
        assert result.duplicate is True
        assert callbacks == []
        assert len(mailoutbox) == 1
        assert notifications().count() == 1
        assert outbox("notifications.notification.sent").count() == 1
        assert ProcessedEvent.objects.using(ALIAS).filter(event_id=envelope.event_id).count() == 1

    def test_customer_without_email(self, deliver_and_commit, mailoutbox):
        payload = InvoiceFinalizedFactory(customer_email="")
        envelope = envelope_for(INVOICE_FINALIZED, payload)

        result, callbacks = deliver_and_commit(envelope)

        assert result.disposition is Disposition.ACK
        assert callbacks == []
        assert mailoutbox == []
        notification = notifications().get()
        assert notification.status == NotificationStatus.FAILED
        assert notification.error == f"customer {payload.customer_id} has no email address"
        assert notification.attempts == 0
        assert notification.sent_at is None
        failed = published_envelope(outbox("notifications.notification.failed").get())
        assert failed.payload["error"] == f"customer {payload.customer_id} has no email address"
        assert failed.payload["recipient"] == ""
        assert not outbox("notifications.notification.sent").exists()



class TestPaymentSucceededHandler:
    def test_receipt_uses_contact_and_invoice_number(self, contacts, deliver_and_commit, mailoutbox):
        invoice = InvoiceFinalizedFactory()
        deliver_and_commit(envelope_for(INVOICE_FINALIZED, invoice))
        contacts[invoice.customer_id] = Contact(customer_id=invoice.customer_id)
        payment = PaymentSucceededFactory(invoice_id=invoice.invoice_id, customer_id=invoice.customer_id)
        envelope = envelope_for(PAYMENT_SUCCEEDED, payment)

        result, _ = deliver_and_commit(envelope)

        assert result.disposition is Disposition.ACK
        assert len(mailoutbox) == 2
        receipt = mailoutbox[1]
        assert receipt.to == ["grace@example.com"]
        assert receipt.subject == "Receipt for your payment of 49.70 USD"
        assert receipt.body.startswith("Hello Grace Hopper,\n")
        assert "Amount paid: 49.70 USD\nInvoice: INV-2026-0042\n" in receipt.body
        assert "Payment reference: ch_3PqR7s2eZvKYlo2C\n" in receipt.body
        notification = notifications().get(source_event_id=envelope.event_id)
        assert notification.template == "payment_receipt"
        assert notification.status == NotificationStatus.SENT
        assert notification.invoice_number == "INV-2026-0042"

    def test_receipt_before_invoice_email_shows_invoice_id(self, contacts, deliver_and_commit, mailoutbox):
        payment = PaymentSucceededFactory()
        contacts[payment.customer_id] = Contact(customer_id=payment.customer_id)

        deliver_and_commit(envelope_for(PAYMENT_SUCCEEDED, payment))

        assert f"Invoice: {payment.invoice_id}\n" in mailoutbox[0].body
        assert notifications().get().invoice_number == ""

    def test_redelivery_sends_no_second_email(self, contacts, deliver_and_commit, mailoutbox):
        payment = PaymentSucceededFactory()
        contacts[payment.customer_id] = Contact(customer_id=payment.customer_id)
        envelope = envelope_for(PAYMENT_SUCCEEDED, payment)
        deliver_and_commit(envelope, delivery=1)

        result, _ = deliver_and_commit(envelope, delivery=2)

        assert result.duplicate is True
        assert len(mailoutbox) == 1
        assert notifications().count() == 1
        assert outbox("notifications.notification.sent").count() == 1

    def test_customer_without_email(self, contacts, deliver_and_commit, mailoutbox):
        payment = PaymentSucceededFactory()
        contacts[payment.customer_id] = Contact(customer_id=payment.customer_id, email="")

        result, callbacks = deliver_and_commit(envelope_for(PAYMENT_SUCCEEDED, payment))

        assert result.disposition is Disposition.ACK
        assert callbacks == []
        assert mailoutbox == []
        notification = notifications().get()
        assert notification.status == NotificationStatus.FAILED
        assert notification.error == f"customer {payment.customer_id} has no email address"
        assert outbox("notifications.notification.failed").count() == 1




class TestPaymentFailedHandler:
    def test_retry_date_in_email(self, contacts, deliver_and_commit, mailoutbox):
        payment = PaymentFailedFactory()
        contacts[payment.customer_id] = Contact(customer_id=payment.customer_id)

        deliver_and_commit(envelope_for(PAYMENT_FAILED, payment))

        assert mailoutbox[0].subject == "Payment of 49.70 USD failed"
        assert "We will try again on February 4, 2026." in mailoutbox[0].body
        assert notifications().get().template == "payment_failed"

    def test_final_failure_sends_final_notice(self, contacts, deliver_and_commit, mailoutbox):
        payment = PaymentFailedFactory(attempt_number=4, retryable=False, final=True, next_attempt_at=None)
        contacts[payment.customer_id] = Contact(customer_id=payment.customer_id)

        deliver_and_commit(envelope_for(PAYMENT_FAILED, payment))

        assert mailoutbox[0].subject == "Final notice: payment of 49.70 USD failed"
        assert "This is a final notice" in mailoutbox[0].body

    def test_each_failed_attempt_gets_its_email(self, contacts, deliver_and_commit, mailoutbox):
        first = PaymentFailedFactory()
        contacts[first.customer_id] = Contact(customer_id=first.customer_id)
        second = PaymentFailedFactory(
            payment_id=first.payment_id,
            invoice_id=first.invoice_id,
            customer_id=first.customer_id,
            attempt_number=2,
            failed_at="2026-02-04T09:31:05Z",
            next_attempt_at="2026-02-09T09:31:05Z",
        )

        deliver_and_commit(envelope_for(PAYMENT_FAILED, first))
        deliver_and_commit(envelope_for(PAYMENT_FAILED, second, aggregate_version=2))

        assert len(mailoutbox) == 2
        assert "We will try again on February 9, 2026." in mailoutbox[1].body
        assert notifications().count() == 2


class TestSubscriptionCanceledHandler:
    def test_email_names_plan_and_end_date(self, contacts, deliver_and_commit, mailoutbox):
        canceled = SubscriptionCanceledFactory()
        contacts[canceled.customer_id] = Contact(customer_id=canceled.customer_id)

        deliver_and_commit(envelope_for(SUBSCRIPTION_CANCELED, canceled))

        assert mailoutbox[0].to == ["grace@example.com"]
        assert mailoutbox[0].subject == "Your Pro Monthly subscription is canceled"
        assert "your service ends on March 1, 2026" in mailoutbox[0].body
        assert notifications().get().template == "subscription_canceled"



class TestSendAfterCommit:
    def test_no_email_before_commit(self, django_capture_on_commit_callbacks, mailoutbox):
        envelope = envelope_for(INVOICE_FINALIZED, InvoiceFinalizedFactory())

        with django_capture_on_commit_callbacks(using=ALIAS, execute=False) as callbacks:
            deliver_to_notifications(envelope)

        assert len(callbacks) == 1
        assert mailoutbox == []
        assert notifications().get().status == NotificationStatus.PENDING

    def test_crash_after_commit_sent_by_sweep(self, django_capture_on_commit_callbacks, mailoutbox):
        envelope = envelope_for(INVOICE_FINALIZED, InvoiceFinalizedFactory())
        # The process dies after the handler commits: its callbacks never run.
        with django_capture_on_commit_callbacks(using=ALIAS, execute=False):
            deliver_to_notifications(envelope)

        sent = notifications_send_pending(now=OCCURRED_AT + timedelta(minutes=2))

        assert sent == 1
        assert len(mailoutbox) == 1
        notification = notifications().get()
        assert notification.status == NotificationStatus.SENT
        assert notification.attempts == 1
        assert outbox("notifications.notification.sent").count() == 1

    def test_rolled_back_handler_sends_nothing(self, contacts, django_capture_on_commit_callbacks, mailoutbox):
        payment = PaymentSucceededFactory()
        contacts[payment.customer_id] = Contact(customer_id=payment.customer_id)

        with django_capture_on_commit_callbacks(using=ALIAS, execute=True) as callbacks:
            with pytest.raises(RuntimeError):
                with transaction.atomic(using=ALIAS):
                    deliver_to_notifications(envelope_for(PAYMENT_SUCCEEDED, payment))
                    raise RuntimeError("the surrounding transaction fails")

        assert callbacks == []
        assert mailoutbox == []
        assert not notifications().exists()


# deliver closes the database connection after a handler error, which would
# end the test's wrapping transaction, so these tests commit for real.
@pytest.mark.django_db(databases="__all__", transaction=True)
class TestHandlerErrors:
    def test_unknown_customer_retried_then_dead_lettered(self, contacts, mailoutbox):
        payment = PaymentSucceededFactory()
        envelope = envelope_for(PAYMENT_SUCCEEDED, payment)

        first = deliver_to_notifications(envelope, delivery=1)

        assert first.disposition is Disposition.RETRY
        assert not notifications().exists()
        assert not ProcessedEvent.objects.using(ALIAS).exists()
        assert not OutboxEvent.objects.using(ALIAS).exists()

        final = deliver_to_notifications(envelope, delivery=bus_settings().max_deliver)

        assert final.disposition is Disposition.TERMINATE
        dead = DeadLetter.objects.using(ALIAS).get(event_id=envelope.event_id)
        assert (
            f"CustomerNotFound: customer {payment.customer_id} not found in accounts receivable"
            in dead.error
        )
        assert not notifications().exists()
        assert not ProcessedEvent.objects.using(ALIAS).exists()
        assert mailoutbox == []

    def test_customer_found_on_redelivery(self, contacts, mailoutbox):
        payment = PaymentSucceededFactory()
        envelope = envelope_for(PAYMENT_SUCCEEDED, payment)
        deliver_to_notifications(envelope, delivery=1)
        contacts[payment.customer_id] = Contact(customer_id=payment.customer_id)

        second = deliver_to_notifications(envelope, delivery=2)

        assert second.disposition is Disposition.ACK
        assert len(mailoutbox) == 1
        assert notifications().get().status == NotificationStatus.SENT

    def test_unknown_customer_of_cancellation_retried(self, contacts, mailoutbox):
        canceled = SubscriptionCanceledFactory()

        result = deliver_to_notifications(envelope_for(SUBSCRIPTION_CANCELED, canceled))

        assert result.disposition is Disposition.RETRY
        assert not notifications().exists()
        assert mailoutbox == []

    def test_customer_of_other_tenant_retried(self, contacts, mailoutbox):
        payment = PaymentSucceededFactory()
        contacts[payment.customer_id] = Contact(customer_id=payment.customer_id, tenant_id="tenant-b")

        result = deliver_to_notifications(envelope_for(PAYMENT_SUCCEEDED, payment))

        assert result.disposition is Disposition.RETRY
        assert not notifications().exists()
        assert not OutboxEvent.objects.using(ALIAS).exists()
        assert mailoutbox == []

    def test_send_error_after_commit_acked(self, monkeypatch, mailoutbox):
        # A database connection cut after the handler's commit makes the send
        # fail. The event is applied by then, so it is acknowledged, not retried.
        def send_fails(**kwargs):
            raise RuntimeError("connection to the notifications database was cut")

        monkeypatch.setattr("notifications.handlers.notification_send_many", send_fails)
        envelope = envelope_for(INVOICE_FINALIZED, InvoiceFinalizedFactory())

        result = deliver_to_notifications(envelope, delivery=1)

        assert result.disposition is Disposition.ACK
        assert notifications().get().status == NotificationStatus.PENDING
        assert ProcessedEvent.objects.using(ALIAS).filter(event_id=envelope.event_id).count() == 1
        assert mailoutbox == []

    def test_unknown_collection_method_dead_lettered(self, mailoutbox):
        envelope = envelope_for(INVOICE_FINALIZED, InvoiceFinalizedFactory(collection_method="direct_debit"))

        first = deliver_to_notifications(envelope, delivery=1)
        final = deliver_to_notifications(envelope, delivery=bus_settings().max_deliver)

        assert first.disposition is Disposition.RETRY
        assert final.disposition is Disposition.TERMINATE
        dead = DeadLetter.objects.using(ALIAS).get(event_id=envelope.event_id)
        assert "collection method 'direct_debit' is unknown" in dead.error
        assert not notifications().exists()
        assert not ProcessedEvent.objects.using(ALIAS).exists()
        assert not OutboxEvent.objects.using(ALIAS).exists()
        assert mailoutbox == []


# Counted outside a test transaction, so transactions show as BEGIN and
# COMMIT, as they do in a consumer process.
@pytest.mark.django_db(databases="__all__", transaction=True)
class TestQueryCount:
    def test_invoice_email_recorded_and_sent(self, mailoutbox):
        envelope = envelope_for(INVOICE_FINALIZED, InvoiceFinalizedFactory())

        with CaptureQueriesContext(connections[ALIAS]) as queries:
            result = deliver_to_notifications(envelope)

        assert result.disposition is Disposition.ACK
        assert len(mailoutbox) == 1
        assert statements(queries) == [
            "BEGIN",
            "INSERT notifications_processedevent",
            "INSERT notifications_notification",
            "COMMIT",
            "UPDATE notifications_notification",
            "BEGIN",
            "UPDATE notifications_notification",
            "INSERT notifications_outboxevent",
            "COMMIT",
        ]

    def test_receipt_recorded_and_sent(self, contacts, mailoutbox):
        payment = PaymentSucceededFactory()
        contacts[payment.customer_id] = Contact(customer_id=payment.customer_id)
        envelope = envelope_for(PAYMENT_SUCCEEDED, payment)

        with CaptureQueriesContext(connections[ALIAS]) as queries:
            result = deliver_to_notifications(envelope)

        assert result.disposition is Disposition.ACK
        assert len(mailoutbox) == 1
        assert statements(queries) == [
            "BEGIN",
            "INSERT notifications_processedevent",
            "SELECT notifications_notification",
            "INSERT notifications_notification",
            "COMMIT",
            "UPDATE notifications_notification",
            "BEGIN",
            "UPDATE notifications_notification",
            "INSERT notifications_outboxevent",
            "COMMIT",
        ]


def group_of(envelopes) -> list[Incoming]:
    return [
        Incoming(subject=envelope.subject, body=envelope.to_json(), delivery=1, envelope=envelope)
        for envelope in envelopes
    ]


def deliver_group_to_notifications(envelopes):
    tenant_ensure(tenant_id=TENANT_ID, now=OCCURRED_AT)
    return deliver_group(module=get_module(ALIAS), messages=group_of(envelopes))


class TestGroupOfEmails:
    def receipts(self, contacts, count):
        envelopes = []
        for _ in range(count):
            payment = PaymentSucceededFactory()
            contacts[payment.customer_id] = Contact(customer_id=payment.customer_id)
            envelopes.append(envelope_for(PAYMENT_SUCCEEDED, payment))
        return envelopes

    def test_statements_do_not_grow_with_group(self, contacts, django_capture_on_commit_callbacks):
        def statements_for(count: int) -> list[str]:
            envelopes = self.receipts(contacts, count)
            with CaptureQueriesContext(connections[ALIAS]) as queries:
                results = deliver_group_to_notifications(envelopes)
            assert [result.disposition for result in results] == [Disposition.ACK] * count
            return statements(queries)

        assert statements_for(2) == statements_for(5)
        assert notifications().count() == 7

    def test_invoice_number_from_same_group(self, contacts, django_capture_on_commit_callbacks):
        """A receipt before its invoice's email in the group still gets the invoice number."""
        invoice = InvoiceFinalizedFactory()
        contacts[invoice.customer_id] = Contact(customer_id=invoice.customer_id)
        payment = PaymentSucceededFactory(invoice_id=invoice.invoice_id, customer_id=invoice.customer_id)
        receipt = envelope_for(PAYMENT_SUCCEEDED, payment)

        results = deliver_group_to_notifications([receipt, envelope_for(INVOICE_FINALIZED, invoice)])

        assert [result.disposition for result in results] == [Disposition.ACK] * 2
        assert notifications().get(source_event_id=receipt.event_id).invoice_number == invoice.invoice_number

    def test_unknown_customer_retried_alone(self, contacts, django_capture_on_commit_callbacks):
        first, unknown, last = self.receipts(contacts, 3)
        del contacts[unknown.payload["customer_id"]]

        results = deliver_group_to_notifications([first, unknown, last])

        assert [result.disposition for result in results] == [Disposition.ACK, Disposition.RETRY, Disposition.ACK]
        assert {str(row.source_event_id) for row in notifications()} == {str(first.event_id), str(last.event_id)}

    def test_emails_sent_after_commit(self, contacts, django_capture_on_commit_callbacks, mailoutbox):
        envelopes = self.receipts(contacts, 3)

        with django_capture_on_commit_callbacks(using=ALIAS, execute=True) as callbacks:
            deliver_group_to_notifications(envelopes)

        assert len(callbacks) == 1
        assert len(mailoutbox) == 3
        assert {row.status for row in notifications()} == {NotificationStatus.SENT}


@pytest.mark.django_db(databases="__all__", transaction=True)
class TestRelayThroughInProcessBus:
    @pytest.fixture(autouse=True)
    def inprocess_bus(self, settings):
        settings.EVENTBUS = {**settings.EVENTBUS, "BACKEND": "inprocess"}
        reset_bus()
        yield
        reset_bus()

    def test_relayed_event_sends_one_email(self, mailoutbox):
        payload = InvoiceFinalizedFactory()
        with transaction.atomic(using="ar"):
            outbox_append(
                module="ar",
                event_type=INVOICE_FINALIZED,
                aggregate_type="invoice",
                aggregate_id=payload.invoice_id,
                aggregate_version=1,
                tenant_id=TENANT_ID,
                payload=payload,
                occurred_at=OCCURRED_AT,
            )

        relayed = relay_outbox(module="ar", bus=get_bus())

        assert relayed.published == 1
        assert len(mailoutbox) == 1
        notification = notifications().get()
        assert notification.status == NotificationStatus.SENT

        # The same bytes under a new message id pass the stream's
        # de-duplication, as a redelivery would.
        row = get_module("ar").outbox.objects.using("ar").get()
        get_bus().publish_batch([OutgoingMessage(row.subject, str(uuid.uuid4()), row.body.encode())])

        assert len(mailoutbox) == 1
        assert notifications().count() == 1
        assert relay_outbox(module=ALIAS, bus=get_bus()).published == 1
        sent_row = outbox("notifications.notification.sent").get()
        assert json.loads(sent_row.body)["payload"]["notification_id"] == str(notification.id)


class TestContactForCustomer:
    def test_unknown_customer_is_none(self):
        from notifications.handlers import contacts_for_customers

        assert contacts_for_customers({"3c9d8a0e-7b1f-4f5e-9a2d-6b4c1e0f7a55"}) == {}
