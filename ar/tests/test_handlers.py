"""ar's handlers, fed through eventbus.consumer.deliver as every bus backend feeds them."""

import uuid
from datetime import timedelta

import pytest
from django.db import connections, transaction
from django.test.utils import CaptureQueriesContext

from ar.events import (
    INVOICE_FINALIZED,
    INVOICE_MARKED_UNCOLLECTIBLE,
    INVOICE_PAID,
    PAYMENT_COLLECTION_REQUESTED,
)
from ar.models import (
    CustomerCreditEntry,
    DeadLetter,
    Invoice,
    InvoiceStatus,
    PaymentApplication,
    ProcessedEvent,
)
from ar.services import customer_credit_grant
from ar.tests.factories import (
    NOW,
    CustomerFactory,
    InvoiceRequestedFactory,
    PaymentFailedFactory,
    PaymentSucceededFactory,
)
from ar.tests.support import deliver_envelope, envelope_for, published, row_counts
from billing.tenancy.services import tenant_ensure
from eventbus.backends import get_bus, reset_bus
from eventbus.consumer import Disposition, Incoming, deliver_group
from eventbus.models import DeadLetterReason
from eventbus.outbox import outbox_append
from eventbus.registry import get_module
from eventbus.relay import relay_outbox
from payments.events import PAYMENT_FAILED, PAYMENT_SUCCEEDED
from subscriptions.events import INVOICE_REQUESTED

pytestmark = pytest.mark.django_db(databases="__all__")


def request_invoice(customer, **payload_fields):
    """Deliver one invoice request for ``customer`` and return its envelope and the result."""
    payload = InvoiceRequestedFactory(customer_id=str(customer.id), **payload_fields)
    envelope = envelope_for(
        INVOICE_REQUESTED, payload, tenant_id=customer.tenant_id, aggregate_type="subscription",
        aggregate_id=payload.subscription_id,
    )
    return envelope, deliver_envelope(envelope)


def invoice_of(envelope):
    return Invoice.objects.using("ar").get(billing_period_id=envelope.payload["billing_period_id"])


class TestInvoiceRequested:
    def test_request_finalizes_invoice_and_publishes(self):
        customer = CustomerFactory(name="Ada Lovelace", email="ada@example.com")

        envelope, result = request_invoice(customer)

        assert result.disposition is Disposition.ACK
        invoice = invoice_of(envelope)
        assert invoice.status == InvoiceStatus.OPEN
        assert invoice.number == "ACME-000001"
        assert invoice.total_minor == 2985
        assert invoice.finalized_at == envelope.occurred_at
        assert str(invoice.subscription_id) == envelope.payload["subscription_id"]
        finalized, collection = published()
        assert finalized["event_type"] == INVOICE_FINALIZED.name
        assert finalized["correlation_id"] == str(envelope.correlation_id)
        assert finalized["causation_id"] == str(envelope.event_id)
        assert finalized["payload"] == {
            "invoice_id": str(invoice.id),
            "invoice_number": "ACME-000001",
            "customer_id": str(customer.id),
            "customer_name": "Ada Lovelace",
            "customer_email": "ada@example.com",
            "collection_method": "charge_automatically",
            "currency": "USD",
            "subtotal_minor": 2985,
            "credit_applied_minor": 0,
            "total_minor": 2985,
            "amount_due_minor": 2985,
            "issued_on": "2026-03-01",
            "due_on": "2026-03-01",
            "lines": [
                {
                    "description": "Pro plan, 3 seats, 1 Mar 2026 to 31 Mar 2026",
                    "quantity": 3,
                    "unit_amount_minor": 995,
                    "amount_minor": 2985,
                    "period_start": "2026-03-01",
                    "period_end": "2026-04-01",
                }
            ],
            "subscription_id": envelope.payload["subscription_id"],
            "billing_period_id": envelope.payload["billing_period_id"],
        }
        assert collection["event_type"] == PAYMENT_COLLECTION_REQUESTED.name
        assert collection["causation_id"] == str(envelope.event_id)
        assert collection["payload"]["idempotency_key"] == f"ar-invoice-{invoice.id}-collection"
        assert collection["payload"]["amount_minor"] == 2985

    def test_redelivery_is_skipped(self):
        envelope, _ = request_invoice(CustomerFactory())
        counts = row_counts()

        result = deliver_envelope(envelope, delivery=2)

        assert result.disposition is Disposition.ACK
        assert result.duplicate is True
        assert row_counts() == counts

    def test_second_request_for_period_changes_nothing(self):
        customer = CustomerFactory()
        first, _ = request_invoice(customer)
        counts = row_counts()

        second, result = request_invoice(
            customer, billing_period_id=first.payload["billing_period_id"], quantity=5, unit_amount_minor=100
        )

        assert result.disposition is Disposition.ACK
        assert result.duplicate is False
        assert row_counts() == counts
        assert invoice_of(first).total_minor == 2985
        assert ProcessedEvent.objects.using("ar").filter(event_id=second.event_id).exists()

    def test_collection_key_is_stable(self):
        customer = CustomerFactory()
        first, _ = request_invoice(customer)
        request_invoice(customer, billing_period_id=first.payload["billing_period_id"])

        keys = [event["payload"]["idempotency_key"] for event in published(PAYMENT_COLLECTION_REQUESTED)]

        assert keys == [f"ar-invoice-{invoice_of(first).id}-collection"]


@pytest.mark.django_db(databases="__all__", transaction=True)
class TestInvoiceRequestedFailures:
    def test_unknown_customer_retries_then_dead_letters(self):
        missing = str(uuid.uuid4())
        payload = InvoiceRequestedFactory(customer_id=missing)
        envelope = envelope_for(INVOICE_REQUESTED, payload)

        first = deliver_envelope(envelope, delivery=1, max_deliver=2)
        last = deliver_envelope(envelope, delivery=2, max_deliver=2)

        assert first.disposition is Disposition.RETRY
        assert last.disposition is Disposition.TERMINATE
        dead = DeadLetter.objects.using("ar").get(event_id=envelope.event_id)
        assert dead.reason == DeadLetterReason.HANDLER_FAILED
        assert (
            f"ar.errors.CustomerNotFound: customer {missing!r} not found in tenant 'acme'; "
            "create the customer first, for example with POST /api/v1/customers, and use the id it returns"
        ) in dead.error
        assert not Invoice.objects.using("ar").exists()
        assert not ProcessedEvent.objects.using("ar").exists()
        assert published() == []

    def test_amount_mismatch_is_rejected(self):
        customer = CustomerFactory()
        payload = InvoiceRequestedFactory(customer_id=str(customer.id), amount_minor=1)
        envelope = envelope_for(INVOICE_REQUESTED, payload)

        result = deliver_envelope(envelope, delivery=1, max_deliver=1)

        assert result.disposition is Disposition.TERMINATE
        dead = DeadLetter.objects.using("ar").get(event_id=envelope.event_id)
        assert (
            "line 1 amount 1 does not match quantity 3 * unit amount 995 = 2985; "
            "fix the amount the requester sent"
        ) in dead.error
        assert not Invoice.objects.using("ar").exists()

    def test_invalid_period_date_is_rejected(self):
        customer = CustomerFactory()
        payload = InvoiceRequestedFactory(customer_id=str(customer.id), period_end="2026-02-30")
        envelope = envelope_for(INVOICE_REQUESTED, payload)

        result = deliver_envelope(envelope, delivery=1, max_deliver=1)

        assert result.disposition is Disposition.TERMINATE
        dead = DeadLetter.objects.using("ar").get(event_id=envelope.event_id)
        assert (
            "period_end '2026-02-30' is not an ISO 8601 date; the requester must send dates such as '2026-01-31'"
        ) in dead.error
        assert not Invoice.objects.using("ar").exists()

    def test_relayed_request_from_subscriptions_outbox(self, settings):
        settings.EVENTBUS = {**settings.EVENTBUS, "BACKEND": "inprocess"}
        reset_bus()
        customer = CustomerFactory()
        payload = InvoiceRequestedFactory(customer_id=str(customer.id))
        try:
            for _ in range(2):
                # The second append is a redelivery under a new event id.
                with transaction.atomic(using="subscriptions"):
                    outbox_append(
                        module="subscriptions",
                        event_type=INVOICE_REQUESTED,
                        aggregate_type="subscription",
                        aggregate_id=payload.subscription_id,
                        aggregate_version=1,
                        tenant_id="acme",
                        payload=payload,
                        occurred_at=NOW,
                    )
            result = relay_outbox(module="subscriptions", bus=get_bus())
        finally:
            reset_bus()

        assert result.published == 2
        invoice = Invoice.objects.using("ar").get()
        assert str(invoice.billing_period_id) == payload.billing_period_id
        assert invoice.number == "ACME-000001"
        assert ProcessedEvent.objects.using("ar").count() == 2
        assert [event["event_type"] for event in published()] == [
            INVOICE_FINALIZED.name, PAYMENT_COLLECTION_REQUESTED.name,
        ]


def deliver_payment_event(event_type, payload, *, occurred_at):
    envelope = envelope_for(
        event_type, payload, aggregate_type="payment", aggregate_id=payload.payment_id, occurred_at=occurred_at
    )
    return envelope, deliver_envelope(envelope)


class TestPaymentSucceeded:
    def test_payment_marks_invoice_paid(self):
        customer = CustomerFactory()
        requested, _ = request_invoice(customer)
        invoice = invoice_of(requested)
        payload = PaymentSucceededFactory(invoice_id=str(invoice.id), customer_id=str(customer.id))
        paid_at = NOW + timedelta(minutes=1)

        envelope, result = deliver_payment_event(PAYMENT_SUCCEEDED, payload, occurred_at=paid_at)

        assert result.disposition is Disposition.ACK
        invoice.refresh_from_db()
        assert invoice.status == InvoiceStatus.PAID
        assert invoice.paid_at == paid_at
        (event,) = published(INVOICE_PAID)
        assert event["causation_id"] == str(envelope.event_id)
        assert event["payload"]["payment_id"] == payload.payment_id
        assert event["payload"]["paid_at"] == "2026-03-01T09:31:00Z"

    def test_republished_payment_is_applied_once(self):
        customer = CustomerFactory()
        requested, _ = request_invoice(customer)
        invoice = invoice_of(requested)
        payload = PaymentSucceededFactory(
            invoice_id=str(invoice.id), customer_id=str(customer.id), amount_minor=1000
        )
        deliver_payment_event(PAYMENT_SUCCEEDED, payload, occurred_at=NOW)

        deliver_payment_event(PAYMENT_SUCCEEDED, payload, occurred_at=NOW)

        invoice.refresh_from_db()
        assert invoice.amount_paid_minor == 1000
        assert invoice.amount_due_minor == 1985
        assert invoice.status == InvoiceStatus.OPEN


class TestPaymentFailed:
    def test_retryable_failure_changes_nothing(self):
        customer = CustomerFactory()
        requested, _ = request_invoice(customer)
        invoice = invoice_of(requested)
        counts = row_counts()
        payload = PaymentFailedFactory(
            invoice_id=str(invoice.id), customer_id=str(customer.id), attempt_number=1,
            retryable=True, final=False, next_attempt_at="2026-03-02T09:30:00Z",
        )

        envelope, result = deliver_payment_event(PAYMENT_FAILED, payload, occurred_at=NOW)

        assert result.disposition is Disposition.ACK
        invoice.refresh_from_db()
        assert invoice.status == InvoiceStatus.OPEN
        assert invoice.version == 2
        assert row_counts() == counts
        assert ProcessedEvent.objects.using("ar").filter(event_id=envelope.event_id).exists()

    def test_final_failure_marks_uncollectible(self):
        customer = CustomerFactory(name="Ada Lovelace", email="ada@example.com")
        requested, _ = request_invoice(customer)
        invoice = invoice_of(requested)
        payload = PaymentFailedFactory(invoice_id=str(invoice.id), customer_id=str(customer.id))
        failed_at = NOW + timedelta(days=7)

        envelope, result = deliver_payment_event(PAYMENT_FAILED, payload, occurred_at=failed_at)

        assert result.disposition is Disposition.ACK
        invoice.refresh_from_db()
        assert invoice.status == InvoiceStatus.UNCOLLECTIBLE
        assert invoice.marked_uncollectible_at == failed_at
        (event,) = published(INVOICE_MARKED_UNCOLLECTIBLE)
        assert event["causation_id"] == str(envelope.event_id)
        assert event["aggregate_version"] == 3
        assert event["payload"] == {
            "invoice_id": str(invoice.id),
            "invoice_number": "ACME-000001",
            "customer_id": str(customer.id),
            "customer_name": "Ada Lovelace",
            "customer_email": "ada@example.com",
            "currency": "USD",
            "amount_due_minor": 2985,
            "marked_at": "2026-03-08T09:30:00Z",
            "subscription_id": str(invoice.subscription_id),
        }

    def test_final_failure_after_payment_is_ignored(self):
        customer = CustomerFactory()
        requested, _ = request_invoice(customer)
        invoice = invoice_of(requested)
        succeeded = PaymentSucceededFactory(invoice_id=str(invoice.id), customer_id=str(customer.id))
        deliver_payment_event(PAYMENT_SUCCEEDED, succeeded, occurred_at=NOW + timedelta(days=8))
        counts = row_counts()
        # The failure of an earlier attempt arrives after the success.
        failed = PaymentFailedFactory(invoice_id=str(invoice.id), customer_id=str(customer.id))

        _, result = deliver_payment_event(PAYMENT_FAILED, failed, occurred_at=NOW + timedelta(days=7))

        assert result.disposition is Disposition.ACK
        invoice.refresh_from_db()
        assert invoice.status == InvoiceStatus.PAID
        assert row_counts() == counts


class TestQueryCount:
    def queries_for_next_invoice(self, customer) -> int:
        with CaptureQueriesContext(connections["ar"]) as queries:
            _, result = request_invoice(customer)
        assert result.disposition is Disposition.ACK
        return len(queries)

    def test_history_adds_no_queries(self):
        newcomer = CustomerFactory()
        regular = CustomerFactory()
        for _ in range(10):
            request_invoice(regular)

        assert self.queries_for_next_invoice(regular) == self.queries_for_next_invoice(newcomer)

    def test_invoice_request_query_count(self):
        customer = CustomerFactory()

        with CaptureQueriesContext(connections["ar"]) as queries:
            _, result = request_invoice(customer)

        assert result.disposition is Disposition.ACK
        # Inbox row, customer lock, reads of the existing invoice and of the
        # credit balance, invoice number, invoice, lines, outbox, and a
        # savepoint with its release for the bus's and the service's
        # transactions, which run inside the test's transaction.
        assert len(queries) == 12, [query["sql"] for query in queries]

    def test_payment_query_count(self):
        customer = CustomerFactory()
        requested, _ = request_invoice(customer)
        invoice = invoice_of(requested)
        payload = PaymentSucceededFactory(invoice_id=str(invoice.id), customer_id=str(customer.id))

        with CaptureQueriesContext(connections["ar"]) as queries:
            _, result = deliver_payment_event(PAYMENT_SUCCEEDED, payload, occurred_at=NOW)

        assert result.disposition is Disposition.ACK
        # Inbox row, customer lock, invoice lock, read of an earlier
        # application of the payment, application, invoice update, outbox,
        # and the two savepoints with their releases.
        assert len(queries) == 11, [query["sql"] for query in queries]


def group_of_requests(payloads) -> list[Incoming]:
    """Return ``subscriptions.invoice.requested`` messages for ``payloads``, in order, for deliver_group."""
    messages = []
    for payload in payloads:
        envelope = envelope_for(
            INVOICE_REQUESTED, payload, tenant_id="acme", aggregate_type="subscription",
            aggregate_id=payload.subscription_id,
        )
        messages.append(Incoming(subject=envelope.subject, body=envelope.to_json(), delivery=1))
    return messages


class TestGroupOfRequests:
    def test_statements_do_not_grow_with_group(self):
        def statements_for(count: int) -> list[str]:
            customers = [CustomerFactory() for _ in range(count)]
            messages = group_of_requests(InvoiceRequestedFactory(customer_id=str(customer.id)) for customer in customers)
            with CaptureQueriesContext(connections["ar"]) as queries:
                results = deliver_group(module=get_module("ar"), messages=messages)
            assert [result.disposition for result in results] == [Disposition.ACK] * count
            return [query["sql"].split()[0] for query in queries.captured_queries]

        assert statements_for(2) == statements_for(5)

    def test_one_customer_spends_credit_once(self):
        customer = CustomerFactory()
        customer_credit_grant(customer_id=str(customer.id), currency="USD", amount_minor=1000, note="goodwill", now=NOW)
        payloads = [InvoiceRequestedFactory(customer_id=str(customer.id)) for _ in range(2)]

        results = deliver_group(module=get_module("ar"), messages=group_of_requests(payloads))

        assert [result.disposition for result in results] == [Disposition.ACK] * 2
        invoices = Invoice.objects.using("ar").order_by("number")
        assert [invoice.credit_applied_minor for invoice in invoices] == [1000, 0]
        assert [invoice.amount_due_minor for invoice in invoices] == [2985 - 1000, 2985]

    def test_period_twice_gets_one_invoice(self):
        customer = CustomerFactory()
        payload = InvoiceRequestedFactory(customer_id=str(customer.id))

        results = deliver_group(module=get_module("ar"), messages=group_of_requests([payload, payload]))

        assert [result.disposition for result in results] == [Disposition.ACK] * 2
        assert Invoice.objects.using("ar").count() == 1
        assert [event["event_type"] for event in published()] == [
            INVOICE_FINALIZED.name, PAYMENT_COLLECTION_REQUESTED.name,
        ]

    def test_group_one_outbox_insert(self):
        customers = [CustomerFactory() for _ in range(3)]
        envelopes = []
        for customer in customers:
            payload = InvoiceRequestedFactory(customer_id=str(customer.id))
            envelopes.append(envelope_for(
                INVOICE_REQUESTED, payload, tenant_id=customer.tenant_id, aggregate_type="subscription",
                aggregate_id=payload.subscription_id,
            ))
        tenant_ensure(tenant_id=customers[0].tenant_id, now=NOW)
        messages = [Incoming(subject=envelope.subject, body=envelope.to_json(), delivery=1) for envelope in envelopes]

        with CaptureQueriesContext(connections["ar"]) as queries:
            results = deliver_group(module=get_module("ar"), messages=messages)

        assert [result.disposition for result in results] == [Disposition.ACK] * 3
        assert sorted(invoice.number for invoice in Invoice.objects.using("ar")) == [
            "ACME-000001", "ACME-000002", "ACME-000003",
        ]
        outbox_inserts = [query for query in queries.captured_queries if query["sql"].startswith('INSERT INTO "ar_outboxevent"')]
        assert len(outbox_inserts) == 1
        # Each request's finalized and collection events, in order, caused by that request.
        assert [(event["event_type"], event["causation_id"]) for event in published()] == [
            (event_type.name, str(envelope.event_id))
            for envelope in envelopes
            for event_type in (INVOICE_FINALIZED, PAYMENT_COLLECTION_REQUESTED)
        ]


def payment_messages(payloads, *, tenant_id="acme", event_type=PAYMENT_SUCCEEDED) -> list[Incoming]:
    """Return ``event_type`` messages (payments.payment.succeeded by default) for ``payloads``, in order, for deliver_group."""
    messages = []
    for payload in payloads:
        envelope = envelope_for(
            event_type, payload, tenant_id=tenant_id, aggregate_type="payment", aggregate_id=payload.payment_id,
        )
        messages.append(Incoming(subject=envelope.subject, body=envelope.to_json(), delivery=1, envelope=envelope))
    return messages


def open_invoices(count: int) -> list[Invoice]:
    invoices = []
    for _ in range(count):
        requested, _ = request_invoice(CustomerFactory())
        invoices.append(invoice_of(requested))
    return invoices


def full_payment(invoice, **fields):
    return PaymentSucceededFactory(
        invoice_id=str(invoice.id), customer_id=str(invoice.customer_id), amount_minor=invoice.amount_due_minor, **fields,
    )


class TestGroupOfPayments:
    def test_statements_do_not_grow_with_group(self):
        def statements_for(count: int) -> list[str]:
            messages = payment_messages([full_payment(invoice) for invoice in open_invoices(count)])
            with CaptureQueriesContext(connections["ar"]) as queries:
                results = deliver_group(module=get_module("ar"), messages=messages)
            assert [result.disposition for result in results] == [Disposition.ACK] * count
            return [query["sql"].split()[0] for query in queries.captured_queries]

        assert statements_for(2) == statements_for(5)

    def test_paid_events_caused_by_payments(self):
        invoices = open_invoices(3)
        messages = payment_messages([full_payment(invoice) for invoice in invoices])
        published_before = len(published())
        version = invoices[0].version

        results = deliver_group(module=get_module("ar"), messages=messages)

        assert [result.disposition for result in results] == [Disposition.ACK] * 3
        for invoice in invoices:
            invoice.refresh_from_db()
            assert (invoice.status, invoice.amount_due_minor, invoice.version) == (InvoiceStatus.PAID, 0, version + 1)
        paid = published()[published_before:]
        assert [(event["event_type"], event["aggregate_id"], event["causation_id"]) for event in paid] == [
            (INVOICE_PAID.name, str(invoice.id), str(message.envelope.event_id))
            for invoice, message in zip(invoices, messages, strict=True)
        ]

    def test_two_payments_of_one_invoice_accumulate(self):
        (invoice,) = open_invoices(1)
        first = PaymentSucceededFactory(invoice_id=str(invoice.id), customer_id=str(invoice.customer_id), amount_minor=1000)
        rest = PaymentSucceededFactory(
            invoice_id=str(invoice.id), customer_id=str(invoice.customer_id), amount_minor=invoice.amount_due_minor - 1000 + 15,
        )

        version = invoice.version

        results = deliver_group(module=get_module("ar"), messages=payment_messages([first, rest]))

        assert [result.disposition for result in results] == [Disposition.ACK] * 2
        invoice.refresh_from_db()
        # One version for each payment, as if they had come one at a time.
        assert (invoice.status, invoice.amount_paid_minor, invoice.version) == (InvoiceStatus.PAID, 2985, version + 2)
        applications = PaymentApplication.objects.using("ar").order_by("id")
        assert [(row.applied_minor, row.credited_minor) for row in applications] == [(1000, 0), (1985, 15)]
        assert [row.amount_minor for row in CustomerCreditEntry.objects.using("ar").filter(customer_id=invoice.customer_id)] == [15]
        assert [event["event_type"] for event in published()].count(INVOICE_PAID.name) == 1

    def test_payment_named_twice_applied_once(self):
        (invoice,) = open_invoices(1)
        payload = full_payment(invoice)
        # Two events, as a republished payment would give, reporting the same payment.
        messages = payment_messages([payload, payload])
        version = invoice.version

        results = deliver_group(module=get_module("ar"), messages=messages)

        assert [result.disposition for result in results] == [Disposition.ACK] * 2
        assert PaymentApplication.objects.using("ar").count() == 1
        assert not CustomerCreditEntry.objects.using("ar").exists()
        invoice.refresh_from_db()
        assert (invoice.status, invoice.version) == (InvoiceStatus.PAID, version + 1)

    def test_foreign_tenant_payment_dead_lettered_alone(self):
        invoices = open_invoices(3)
        messages = payment_messages([full_payment(invoice) for invoice in invoices])
        foreign = payment_messages([full_payment(invoices[1])], tenant_id="beta")[0]
        messages[1] = foreign

        results = deliver_group(module=get_module("ar"), messages=messages)

        assert [result.disposition for result in results] == [Disposition.ACK, Disposition.TERMINATE, Disposition.ACK]
        assert DeadLetter.objects.using("ar").get().event_id == foreign.envelope.event_id
        statuses = [Invoice.objects.using("ar").get(id=invoice.id).status for invoice in invoices]
        assert statuses == [InvoiceStatus.PAID, InvoiceStatus.OPEN, InvoiceStatus.PAID]
        assert PaymentApplication.objects.using("ar").count() == 2


def failure_messages(payloads) -> list[Incoming]:
    return payment_messages(payloads, event_type=PAYMENT_FAILED)


def events_of(invoice) -> list[str]:
    return [event["event_type"] for event in published() if event["aggregate_id"] == str(invoice.id)]


class TestGroupKeepsMessageOrder:
    """A group leaves what its messages leave applied one at a time."""

    def test_stale_failure_after_payment_ignored(self):
        (invoice,) = open_invoices(1)
        failure = PaymentFailedFactory(invoice_id=str(invoice.id), customer_id=str(invoice.customer_id))
        version = invoice.version

        results = deliver_group(
            module=get_module("ar"), messages=[*payment_messages([full_payment(invoice)]), *failure_messages([failure])],
        )

        assert [result.disposition for result in results] == [Disposition.ACK] * 2
        invoice.refresh_from_db()
        assert (invoice.status, invoice.version) == (InvoiceStatus.PAID, version + 1)
        assert invoice.marked_uncollectible_at is None
        assert events_of(invoice)[-1] == INVOICE_PAID.name
        assert INVOICE_MARKED_UNCOLLECTIBLE.name not in events_of(invoice)

    def test_failure_then_payment(self):
        (invoice,) = open_invoices(1)
        failure = PaymentFailedFactory(invoice_id=str(invoice.id), customer_id=str(invoice.customer_id))
        version = invoice.version

        results = deliver_group(
            module=get_module("ar"), messages=[*failure_messages([failure]), *payment_messages([full_payment(invoice)])],
        )

        assert [result.disposition for result in results] == [Disposition.ACK] * 2
        invoice.refresh_from_db()
        # Written off, then paid: a payment settles an uncollectible invoice too.
        assert (invoice.status, invoice.version) == (InvoiceStatus.PAID, version + 2)
        assert events_of(invoice)[-2:] == [INVOICE_MARKED_UNCOLLECTIBLE.name, INVOICE_PAID.name]

    def test_request_before_overpayment_gets_no_credit(self):
        """The overpayment's credit is for the customer's next invoice, as when the messages come one at a time."""
        (invoice,) = open_invoices(1)
        customer_id = str(invoice.customer_id)
        request = InvoiceRequestedFactory(customer_id=customer_id)
        overpayment = PaymentSucceededFactory(
            invoice_id=str(invoice.id), customer_id=customer_id, amount_minor=invoice.amount_due_minor + 500,
        )
        messages = [*group_of_requests([request]), *payment_messages([overpayment])]

        results = deliver_group(module=get_module("ar"), messages=messages)

        assert [result.disposition for result in results] == [Disposition.ACK] * 2
        billed = Invoice.objects.using("ar").get(billing_period_id=request.billing_period_id)
        assert billed.credit_applied_minor == 0
        credit = CustomerCreditEntry.objects.using("ar").filter(customer_id=customer_id)
        assert sum(entry.amount_minor for entry in credit) == 500
