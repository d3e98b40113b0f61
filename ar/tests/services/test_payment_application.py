import uuid
from datetime import timedelta

import pytest

from ar.errors import (
    InvalidPayment,
    InvoiceNotFound,
    InvoiceStateConflict,
    PaymentReferenceConflict,
)
from ar.events import INVOICE_PAID
from ar.models import (
    CollectionMethod,
    CreditReason,
    CustomerCreditEntry,
    Invoice,
    InvoiceStatus,
    PaymentApplication,
    PaymentSource,
)
from ar.services import (
    InvoiceLineInput,
    invoice_apply_gateway_payment,
    invoice_create_for_billing_period,
    invoice_mark_uncollectible,
    invoice_record_offline_payment,
    invoice_void,
)
from ar.tests.factories import NOW, CustomerFactory
from ar.tests.support import published, row_counts

pytestmark = pytest.mark.django_db(databases="__all__")

LATER = NOW + timedelta(hours=2)


def open_invoice(customer, *, unit_amount_minor=2985):
    invoice, _ = invoice_create_for_billing_period(
        tenant_id=customer.tenant_id,
        customer_id=str(customer.id),
        billing_period_id=str(uuid.uuid4()),
        subscription_id=str(uuid.uuid4()),
        currency="USD",
        lines=[InvoiceLineInput(description="Pro plan", quantity=1, unit_amount_minor=unit_amount_minor)],
        now=NOW,
    )
    return invoice


def pay(invoice, amount_minor, *, payment_id=None, currency="USD", tenant_id="acme", now=LATER):
    return invoice_apply_gateway_payment(
        tenant_id=tenant_id,
        invoice_id=str(invoice.id),
        payment_id=payment_id or str(uuid.uuid4()),
        amount_minor=amount_minor,
        currency=currency,
        now=now,
    )


def credit_balance(customer, currency="USD"):
    return CustomerCreditEntry.objects.using("ar").filter(customer=customer).balance(currency)


class TestGatewayPayment:
    def test_full_payment_marks_invoice_paid(self):
        customer = CustomerFactory(name="Ada Lovelace", email="ada@example.com")
        invoice = open_invoice(customer)

        paid = pay(invoice, 2985, payment_id="pay_1")

        paid.refresh_from_db()
        assert paid.status == InvoiceStatus.PAID
        assert paid.amount_paid_minor == 2985
        assert paid.amount_due_minor == 0
        assert paid.paid_at == LATER
        assert paid.version == 3
        (event,) = published(INVOICE_PAID)
        assert event["aggregate_version"] == 3
        assert event["occurred_at"] == "2026-03-01T11:30:00Z"
        assert event["payload"] == {
            "invoice_id": str(invoice.id),
            "invoice_number": "ACME-000001",
            "customer_id": str(customer.id),
            "customer_name": "Ada Lovelace",
            "customer_email": "ada@example.com",
            "currency": "USD",
            "total_minor": 2985,
            "amount_paid_minor": 2985,
            "paid_at": "2026-03-01T11:30:00Z",
            "subscription_id": str(invoice.subscription_id),
            "payment_id": "pay_1",
        }
        application = PaymentApplication.objects.using("ar").get()
        assert application.source == PaymentSource.GATEWAY
        assert application.reference == "pay_1"
        assert (application.amount_minor, application.applied_minor, application.credited_minor) == (2985, 2985, 0)

    def test_partial_payments_accumulate(self):
        invoice = open_invoice(CustomerFactory())

        first = pay(invoice, 1000)
        assert first.status == InvoiceStatus.OPEN
        assert first.amount_paid_minor == 1000
        assert first.amount_due_minor == 1985
        assert first.version == 3
        assert published(INVOICE_PAID) == []

        second = pay(invoice, 1985)

        assert second.status == InvoiceStatus.PAID
        assert second.amount_paid_minor == 2985
        assert second.amount_due_minor == 0
        assert second.version == 4
        (event,) = published(INVOICE_PAID)
        assert event["aggregate_version"] == 4
        assert event["payload"]["amount_paid_minor"] == 2985

    def test_overpayment_becomes_credit_for_next_invoice(self):
        customer = CustomerFactory()
        invoice = open_invoice(customer)

        paid = pay(invoice, 4000)

        assert paid.status == InvoiceStatus.PAID
        assert paid.amount_paid_minor == 2985
        assert credit_balance(customer) == 1015
        overpayment = CustomerCreditEntry.objects.using("ar").get(reason=CreditReason.OVERPAYMENT)
        assert (overpayment.amount_minor, overpayment.invoice_id) == (1015, invoice.id)
        application = PaymentApplication.objects.using("ar").get()
        assert (application.amount_minor, application.applied_minor, application.credited_minor) == (4000, 2985, 1015)

        next_invoice = open_invoice(customer)

        assert next_invoice.credit_applied_minor == 1015
        assert next_invoice.amount_due_minor == 1970
        assert credit_balance(customer) == 0

    def test_log_line_gives_major_units(self, caplog):
        customer = CustomerFactory()
        invoice = open_invoice(customer)
        caplog.set_level("INFO", logger="ar.services")

        pay(invoice, 4000)

        finalized, applied = (
            record.getMessage() for record in caplog.records
            if record.getMessage().startswith(("Finalized invoice", "Applied gateway payment"))
        )
        assert finalized.endswith(": 29.85 USD due")
        assert ": 29.85 USD to the invoice, 10.15 USD to credit; invoice is paid" in applied

    def test_same_payment_applied_once(self):
        invoice = open_invoice(CustomerFactory())
        pay(invoice, 1000, payment_id="pay_1")
        counts = row_counts()

        again = pay(invoice, 1000, payment_id="pay_1")

        assert again.amount_paid_minor == 1000
        assert again.version == 3
        assert row_counts() == counts

    def test_reused_payment_id_with_other_amount_conflicts(self):
        invoice = open_invoice(CustomerFactory())
        pay(invoice, 1000, payment_id="pay_1")
        counts = row_counts()

        with pytest.raises(PaymentReferenceConflict) as raised:
            pay(invoice, 1500, payment_id="pay_1")

        assert str(raised.value) == (
            "gateway payment 'pay_1' was already applied: 1000 USD to invoice ACME-000001; "
            "use a new reference for a different payment"
        )
        assert raised.value.code == "payment_reference_conflict"
        assert row_counts() == counts

    def test_payment_for_void_invoice_becomes_credit(self):
        customer = CustomerFactory()
        invoice = open_invoice(customer)
        invoice_void(invoice_id=str(invoice.id), now=NOW)

        result = pay(invoice, 2985)

        assert result.status == InvoiceStatus.VOID
        assert result.amount_paid_minor == 0
        assert result.version == 3
        assert credit_balance(customer) == 2985
        entry = CustomerCreditEntry.objects.using("ar").get(reason=CreditReason.PAYMENT_ON_CLOSED_INVOICE)
        assert (entry.amount_minor, entry.invoice_id) == (2985, invoice.id)
        assert published(INVOICE_PAID) == []

    def test_second_payment_for_paid_invoice_becomes_credit(self):
        customer = CustomerFactory()
        invoice = open_invoice(customer)
        pay(invoice, 2985)

        result = pay(invoice, 2985)

        assert result.status == InvoiceStatus.PAID
        assert result.amount_paid_minor == 2985
        assert credit_balance(customer) == 2985
        assert len(published(INVOICE_PAID)) == 1

    def test_payment_settles_uncollectible_invoice(self):
        invoice = open_invoice(CustomerFactory())
        invoice_mark_uncollectible(invoice_id=str(invoice.id), now=NOW)

        result = pay(invoice, 2985)

        assert result.status == InvoiceStatus.PAID
        assert len(published(INVOICE_PAID)) == 1

    @pytest.mark.parametrize(
        ("change", "error", "message"),
        [
            (
                {"amount_minor": 0},
                InvalidPayment,
                "payment amount 0 is invalid; use a positive whole number of minor units",
            ),
            (
                {"amount_minor": "2985"},
                InvalidPayment,
                "payment amount '2985' is invalid; use a positive whole number of minor units",
            ),
            (
                {"currency": "EUR"},
                InvalidPayment,
                "payment 'pay_9' is in EUR but invoice ACME-000001 is in USD; collect the payment in USD",
            ),
            (
                {"tenant_id": "beta"},
                InvalidPayment,
                "payment 'pay_9' is for tenant 'beta' but invoice ACME-000001 belongs to tenant 'acme'; "
                "check the payment's invoice id",
            ),
            ({"payment_id": " "}, InvalidPayment, "payment id is missing; give 1 to 200 characters"),
            (
                {"invoice_id": "00000000-0000-0000-0000-000000000009"},
                InvoiceNotFound,
                "invoice '00000000-0000-0000-0000-000000000009' not found; pass the id of an existing invoice",
            ),
        ],
        ids=["zero", "string-amount", "currency", "tenant", "blank-id", "unknown-invoice"],
    )
    def test_invalid_payment_is_rejected_and_nothing_written(self, change, error, message):
        invoice = open_invoice(CustomerFactory())
        counts = row_counts()
        arguments = {
            "tenant_id": "acme",
            "invoice_id": str(invoice.id),
            "payment_id": "pay_9",
            "amount_minor": 2985,
            "currency": "USD",
            "now": LATER,
            **change,
        }

        with pytest.raises(error) as raised:
            invoice_apply_gateway_payment(**arguments)

        assert str(raised.value) == message
        assert row_counts() == counts
        assert Invoice.objects.using("ar").get(id=invoice.id).status == InvoiceStatus.OPEN


class TestOfflinePayment:
    def test_partial_then_settling_payment(self):
        customer = CustomerFactory(collection_method=CollectionMethod.SEND_INVOICE, payment_terms_days=30)
        invoice = open_invoice(customer)

        first = invoice_record_offline_payment(
            invoice_id=str(invoice.id), amount_minor=985, reference="BANK-0001", now=LATER
        )
        assert first.status == InvoiceStatus.OPEN
        assert first.amount_due_minor == 2000

        second = invoice_record_offline_payment(
            invoice_id=str(invoice.id), amount_minor=2000, reference="BANK-0002", now=LATER
        )

        assert second.status == InvoiceStatus.PAID
        assert second.amount_paid_minor == 2985
        (event,) = published(INVOICE_PAID)
        assert event["payload"]["payment_id"] is None
        assert event["payload"]["amount_paid_minor"] == 2985
        references = list(
            PaymentApplication.objects.using("ar").order_by("id").values_list("source", "reference", "applied_minor")
        )
        assert references == [("offline", "BANK-0001", 985), ("offline", "BANK-0002", 2000)]

    def test_overpayment_becomes_credit(self):
        customer = CustomerFactory(collection_method=CollectionMethod.SEND_INVOICE)
        invoice = open_invoice(customer)

        paid = invoice_record_offline_payment(
            invoice_id=str(invoice.id), amount_minor=3000, reference="CHQ-77", now=LATER
        )

        assert paid.status == InvoiceStatus.PAID
        assert paid.amount_paid_minor == 2985
        assert credit_balance(customer) == 15

    def test_same_reference_recorded_once(self):
        invoice = open_invoice(CustomerFactory(collection_method=CollectionMethod.SEND_INVOICE))
        invoice_record_offline_payment(invoice_id=str(invoice.id), amount_minor=500, reference="CHQ-1", now=LATER)
        counts = row_counts()

        again = invoice_record_offline_payment(
            invoice_id=str(invoice.id), amount_minor=500, reference="CHQ-1", now=LATER
        )

        assert again.amount_paid_minor == 500
        assert row_counts() == counts

    def test_paid_invoice_rejects_offline_payment(self):
        invoice = open_invoice(CustomerFactory(collection_method=CollectionMethod.SEND_INVOICE))
        invoice_record_offline_payment(invoice_id=str(invoice.id), amount_minor=2985, reference="CHQ-1", now=LATER)
        counts = row_counts()

        with pytest.raises(InvoiceStateConflict) as raised:
            invoice_record_offline_payment(
                invoice_id=str(invoice.id), amount_minor=100, reference="CHQ-2", now=LATER
            )

        assert str(raised.value) == (
            "invoice ACME-000001 is paid; record an offline payment only against an open or "
            "uncollectible invoice"
        )
        assert row_counts() == counts

    @pytest.mark.parametrize(
        ("amount_minor", "reference", "message"),
        [
            (-5, "CHQ-1", "payment amount -5 is invalid; use a positive whole number of minor units"),
            (True, "CHQ-1", "payment amount True is invalid; use a positive whole number of minor units"),
            (100, "", "payment reference is missing; give 1 to 200 characters"),
            (100, "x" * 201, "payment reference is 201 characters long; the maximum is 200"),
        ],
        ids=["negative", "boolean", "blank-reference", "long-reference"],
    )
    def test_invalid_offline_payment_is_rejected(self, amount_minor, reference, message):
        invoice = open_invoice(CustomerFactory(collection_method=CollectionMethod.SEND_INVOICE))
        counts = row_counts()

        with pytest.raises(InvalidPayment) as raised:
            invoice_record_offline_payment(
                invoice_id=str(invoice.id), amount_minor=amount_minor, reference=reference, now=LATER
            )

        assert str(raised.value) == message
        assert raised.value.code == "invalid_payment"
        assert row_counts() == counts
