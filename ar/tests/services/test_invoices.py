import threading
import uuid
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from django.db import connections, transaction
from django.db.transaction import TransactionManagementError

from ar.errors import CustomerNotFound, InvalidInvoiceRequest, InvoiceNotFound, InvoiceStateConflict
from ar.events import (
    INVOICE_FINALIZED,
    INVOICE_MARKED_UNCOLLECTIBLE,
    INVOICE_PAID,
    INVOICE_VOIDED,
    PAYMENT_COLLECTION_REQUESTED,
)
from ar.models import (
    CollectionMethod,
    CreditReason,
    CustomerCreditEntry,
    Invoice,
    InvoiceLine,
    InvoiceNumberSequence,
    InvoiceStatus,
)
from ar.services import (
    InvoiceLineInput,
    invoice_apply_gateway_payment,
    invoice_apply_payment_failure,
    invoice_create_for_billing_period,
    invoice_mark_uncollectible,
    invoice_void,
)
from ar.services.numbering import invoice_number_allocate
from ar.tests.factories import NOW, CreditEntryFactory, CustomerFactory
from ar.tests.support import published, row_counts

pytestmark = pytest.mark.django_db(databases="__all__")

SEATS = InvoiceLineInput(
    description="Pro plan, 3 seats",
    quantity=3,
    unit_amount_minor=995,
    period_start=date(2026, 3, 1),
    period_end=date(2026, 4, 1),
)
SETUP_FEE = InvoiceLineInput(description="Setup fee", quantity=1, unit_amount_minor=4999)


def create_invoice(customer, *, lines=(SEATS,), billing_period_id=None, currency="USD", now=NOW):
    return invoice_create_for_billing_period(
        tenant_id=customer.tenant_id,
        customer_id=str(customer.id),
        billing_period_id=billing_period_id or str(uuid.uuid4()),
        subscription_id=str(uuid.uuid4()),
        currency=currency,
        lines=list(lines),
        now=now,
    )


class TestInvoiceCreateForBillingPeriod:
    def test_totals_lines_and_dates_are_exact(self):
        customer = CustomerFactory(payment_terms_days=14)

        invoice, created = create_invoice(customer, lines=[SEATS, SETUP_FEE])

        assert created is True
        invoice.refresh_from_db()
        assert invoice.status == InvoiceStatus.OPEN
        assert invoice.number == "ACME-000001"
        assert invoice.subtotal_minor == 3 * 995 + 4999
        assert invoice.total_minor == 7984
        assert invoice.credit_applied_minor == 0
        assert invoice.amount_paid_minor == 0
        assert invoice.amount_due_minor == 7984
        assert invoice.issued_on == date(2026, 3, 1)
        assert invoice.due_on == date(2026, 3, 15)
        assert invoice.finalized_at == NOW
        assert invoice.paid_at is None
        assert invoice.version == 2
        lines = list(InvoiceLine.objects.using("ar").filter(invoice=invoice).order_by("position"))
        assert [
            (line.position, line.description, line.quantity, line.unit_amount_minor, line.amount_minor)
            for line in lines
        ] == [(1, "Pro plan, 3 seats", 3, 995, 2985), (2, "Setup fee", 1, 4999, 4999)]
        assert (lines[0].period_start, lines[0].period_end) == (date(2026, 3, 1), date(2026, 4, 1))
        assert (lines[1].period_start, lines[1].period_end) == (None, None)

    def test_issue_date_is_the_utc_date(self):
        customer = CustomerFactory()
        # 19:30 on 1 March in New York is 00:30 on 2 March in UTC.
        evening_in_new_york = datetime(2026, 3, 1, 19, 30, tzinfo=ZoneInfo("America/New_York"))

        invoice, _ = create_invoice(customer, now=evening_in_new_york)

        assert invoice.issued_on == date(2026, 3, 2)

    def test_second_request_for_period_changes_nothing(self):
        customer = CustomerFactory()
        period_id = str(uuid.uuid4())
        first, _ = create_invoice(customer, billing_period_id=period_id)
        counts = row_counts()

        second, created = create_invoice(
            customer, billing_period_id=period_id, lines=[SETUP_FEE], now=NOW + timedelta(hours=1)
        )

        assert created is False
        assert second.id == first.id
        assert second.total_minor == 2985
        assert row_counts() == counts

    def test_finalized_and_collection_events_have_exact_payloads(self):
        customer = CustomerFactory(name="Ada Lovelace", email="ada@example.com")
        period_id, subscription_id = str(uuid.uuid4()), str(uuid.uuid4())

        invoice, _ = invoice_create_for_billing_period(
            tenant_id="acme",
            customer_id=str(customer.id),
            billing_period_id=period_id,
            subscription_id=subscription_id,
            currency="USD",
            lines=[SEATS, SETUP_FEE],
            now=NOW,
        )

        finalized, collection = published()
        assert finalized["event_type"] == INVOICE_FINALIZED.name
        assert finalized["aggregate_type"] == "invoice"
        assert finalized["aggregate_id"] == str(invoice.id)
        assert finalized["aggregate_version"] == 2
        assert finalized["tenant_id"] == "acme"
        assert finalized["occurred_at"] == "2026-03-01T09:30:00Z"
        assert finalized["payload"] == {
            "invoice_id": str(invoice.id),
            "invoice_number": "ACME-000001",
            "customer_id": str(customer.id),
            "customer_name": "Ada Lovelace",
            "customer_email": "ada@example.com",
            "collection_method": "charge_automatically",
            "currency": "USD",
            "subtotal_minor": 7984,
            "credit_applied_minor": 0,
            "total_minor": 7984,
            "amount_due_minor": 7984,
            "issued_on": "2026-03-01",
            "due_on": "2026-03-01",
            "lines": [
                {
                    "description": "Pro plan, 3 seats",
                    "quantity": 3,
                    "unit_amount_minor": 995,
                    "amount_minor": 2985,
                    "period_start": "2026-03-01",
                    "period_end": "2026-04-01",
                },
                {
                    "description": "Setup fee",
                    "quantity": 1,
                    "unit_amount_minor": 4999,
                    "amount_minor": 4999,
                    "period_start": None,
                    "period_end": None,
                },
            ],
            "subscription_id": subscription_id,
            "billing_period_id": period_id,
        }
        assert collection["event_type"] == PAYMENT_COLLECTION_REQUESTED.name
        assert collection["aggregate_id"] == str(invoice.id)
        assert collection["aggregate_version"] == 2
        assert collection["correlation_id"] == finalized["correlation_id"]
        assert collection["payload"] == {
            "invoice_id": str(invoice.id),
            "invoice_number": "ACME-000001",
            "customer_id": str(customer.id),
            "amount_minor": 7984,
            "currency": "USD",
            "idempotency_key": f"ar-invoice-{invoice.id}-collection",
        }

    def test_send_invoice_customer_gets_no_collection_request(self):
        customer = CustomerFactory(collection_method=CollectionMethod.SEND_INVOICE, payment_terms_days=30)

        invoice, _ = create_invoice(customer)

        assert invoice.due_on == date(2026, 3, 31)
        assert [event["event_type"] for event in published()] == [INVOICE_FINALIZED.name]
        assert published()[0]["payload"]["collection_method"] == "send_invoice"


class TestInvoiceNumbering:
    def test_numbers_stay_gapless_across_a_rollback(self):
        customer = CustomerFactory()
        first, _ = create_invoice(customer)

        with pytest.raises(RuntimeError, match="caller failed after finalizing"):
            with transaction.atomic(using="ar"):
                rolled_back, _ = create_invoice(customer)
                assert rolled_back.number == "ACME-000002"
                raise RuntimeError("caller failed after finalizing")
        third, _ = create_invoice(customer)
        fourth, _ = create_invoice(customer)

        assert first.number == "ACME-000001"
        assert third.number == "ACME-000002"
        assert fourth.number == "ACME-000003"
        assert Invoice.objects.using("ar").count() == 3
        assert InvoiceNumberSequence.objects.using("ar").get(tenant_id="acme").last_number == 3

    def test_tenants_are_numbered_independently(self):
        acme = CustomerFactory(tenant_id="acme")
        beta = CustomerFactory(tenant_id="beta-eu")

        numbers = [
            create_invoice(acme)[0].number,
            create_invoice(beta)[0].number,
            create_invoice(acme)[0].number,
            create_invoice(beta)[0].number,
        ]

        assert numbers == ["ACME-000001", "BETA-EU-000001", "ACME-000002", "BETA-EU-000002"]


@pytest.mark.django_db(databases="__all__", transaction=True)
class TestConcurrentNumbering:
    def test_allocation_outside_transaction_is_rejected(self):
        with pytest.raises(TransactionManagementError, match="inside transaction.atomic"):
            invoice_number_allocate(tenant_id="acme")

        assert not InvoiceNumberSequence.objects.using("ar").exists()

    def test_parallel_finalizations_get_gapless_numbers(self):
        customers = [CustomerFactory() for _ in range(4)]
        errors = []
        start = threading.Barrier(len(customers))

        def finalize(customer):
            try:
                start.wait(timeout=10)
                for _ in range(3):
                    create_invoice(customer)
            except Exception as error:  # noqa: BLE001 - reported by the assert below
                errors.append(error)
            finally:
                connections.close_all()

        threads = [threading.Thread(target=finalize, args=(customer,)) for customer in customers]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)

        assert errors == []
        numbers = sorted(Invoice.objects.using("ar").values_list("number", flat=True))
        assert numbers == [f"ACME-{n:06d}" for n in range(1, 13)]


class TestCreditApplication:
    def test_credit_in_invoice_currency_is_applied(self):
        customer = CustomerFactory()
        CreditEntryFactory(customer=customer, currency="USD", amount_minor=1000)
        CreditEntryFactory(customer=customer, currency="EUR", amount_minor=700)

        invoice, _ = create_invoice(customer)

        assert invoice.credit_applied_minor == 1000
        assert invoice.amount_due_minor == 1985
        assert invoice.status == InvoiceStatus.OPEN
        applied = CustomerCreditEntry.objects.using("ar").get(reason=CreditReason.APPLIED_TO_INVOICE)
        assert (applied.amount_minor, applied.currency, applied.invoice_id) == (-1000, "USD", invoice.id)
        entries = CustomerCreditEntry.objects.using("ar").filter(customer=customer)
        assert entries.balances() == {"EUR": 700, "USD": 0}
        assert published(PAYMENT_COLLECTION_REQUESTED)[0]["payload"]["amount_minor"] == 1985
        assert published(INVOICE_FINALIZED)[0]["payload"]["credit_applied_minor"] == 1000

    def test_invoice_covered_by_credit_is_paid_at_once(self):
        customer = CustomerFactory(name="Ada Lovelace", email="ada@example.com")
        CreditEntryFactory(customer=customer, amount_minor=5000)

        invoice, _ = create_invoice(customer)

        invoice.refresh_from_db()
        assert invoice.status == InvoiceStatus.PAID
        assert invoice.paid_at == NOW
        assert invoice.credit_applied_minor == 2985
        assert invoice.amount_due_minor == 0
        assert invoice.version == 3
        assert CustomerCreditEntry.objects.using("ar").filter(customer=customer).balance("USD") == 2015
        finalized, paid = published()
        assert finalized["event_type"] == INVOICE_FINALIZED.name
        assert finalized["payload"]["amount_due_minor"] == 0
        assert paid["event_type"] == INVOICE_PAID.name
        assert paid["aggregate_version"] == 3
        assert paid["payload"] == {
            "invoice_id": str(invoice.id),
            "invoice_number": "ACME-000001",
            "customer_id": str(customer.id),
            "customer_name": "Ada Lovelace",
            "customer_email": "ada@example.com",
            "currency": "USD",
            "total_minor": 2985,
            "amount_paid_minor": 0,
            "paid_at": "2026-03-01T09:30:00Z",
            "subscription_id": str(invoice.subscription_id),
            "payment_id": None,
        }

    def test_free_invoice_is_paid_at_once(self):
        customer = CustomerFactory()
        free = InvoiceLineInput(description="Free plan", quantity=1, unit_amount_minor=0)

        invoice, _ = create_invoice(customer, lines=[free])

        assert invoice.status == InvoiceStatus.PAID
        assert [event["event_type"] for event in published()] == [INVOICE_FINALIZED.name, INVOICE_PAID.name]
        assert not CustomerCreditEntry.objects.using("ar").exists()


class TestInvoiceRequestValidation:
    @pytest.mark.parametrize(
        ("change", "message"),
        [
            ({"tenant_id": "Acme"}, "tenant id 'Acme' is invalid; use 1 to 63 lower-case letters, digits and hyphens"),
            ({"customer_id": "cus_1"}, "customer id 'cus_1' is not a UUID; pass the id as a UUID string"),
            ({"billing_period_id": ""}, "billing period id '' is not a UUID; pass the id as a UUID string"),
            ({"subscription_id": "sub"}, "subscription id 'sub' is not a UUID; pass the id as a UUID string"),
            ({"currency": "usd"}, "currency 'usd' is not an ISO 4217 code; use three capital letters such as 'USD'"),
            ({"lines": []}, "an invoice needs at least one line; pass a list of InvoiceLineInput"),
            (
                {"lines": [SEATS, InvoiceLineInput(description=" ", quantity=1, unit_amount_minor=1)]},
                "line 2 description is missing; give 1 to 500 characters",
            ),
            (
                {"lines": [InvoiceLineInput(description="Seats", quantity=0, unit_amount_minor=1)]},
                "line 1 quantity 0 is invalid; use a whole number from 1 to 2147483647",
            ),
            (
                {"lines": [InvoiceLineInput(description="Seats", quantity=1, unit_amount_minor=-5)]},
                "line 1 unit amount -5 is invalid; use a whole number of minor units, 0 or more "
                "(grant credit instead of a negative line)",
            ),
            (
                {"lines": [InvoiceLineInput(description="Seats", quantity=1, unit_amount_minor=1.5)]},
                "line 1 unit amount 1.5 is invalid; use a whole number of minor units, 0 or more "
                "(grant credit instead of a negative line)",
            ),
            (
                {"lines": [InvoiceLineInput(description="Seats", quantity=2, unit_amount_minor=5, amount_minor=9)]},
                "line 1 amount 9 does not match quantity 2 * unit amount 5 = 10; fix the amount the requester sent",
            ),
            (
                {
                    "lines": [
                        InvoiceLineInput(
                            description="Seats", quantity=1, unit_amount_minor=5,
                            period_start=date(2026, 4, 1), period_end=date(2026, 4, 1),
                        )
                    ]
                },
                "line 1 period 2026-04-01 to 2026-04-01 is empty; period_end must be after period_start "
                "(the end date is not billed)",
            ),
            (
                {
                    "lines": [
                        InvoiceLineInput(
                            description="Seats", quantity=1, unit_amount_minor=5, period_start=date(2026, 4, 1)
                        )
                    ]
                },
                "line 1 has only one of period_start and period_end; give both or neither",
            ),
            (
                {"lines": [InvoiceLineInput(description="Seats", quantity=2**31 - 1, unit_amount_minor=2**62)]},
                f"line 1: line amount {(2**31 - 1) * 2**62} exceeds the largest storable amount "
                "9223372036854775807; lower the quantity or unit amount",
            ),
        ],
        ids=[
            "tenant", "customer-id", "period-id", "subscription-id", "currency", "no-lines",
            "blank-description", "zero-quantity", "negative-unit", "float-unit", "amount-mismatch",
            "empty-period", "half-period", "overflow",
        ],
    )
    def test_invalid_request_is_rejected_and_nothing_written(self, change, message):
        customer = CustomerFactory()
        counts = row_counts()
        arguments = {
            "tenant_id": "acme",
            "customer_id": str(customer.id),
            "billing_period_id": str(uuid.uuid4()),
            "subscription_id": str(uuid.uuid4()),
            "currency": "USD",
            "lines": [SEATS],
            "now": NOW,
            **change,
        }

        with pytest.raises(InvalidInvoiceRequest) as raised:
            invoice_create_for_billing_period(**arguments)

        assert str(raised.value) == message
        assert raised.value.code == "invalid_invoice_request"
        assert row_counts() == counts

    def test_unknown_customer_is_named(self):
        CustomerFactory()
        missing = str(uuid.uuid4())
        counts = row_counts()

        with pytest.raises(CustomerNotFound) as raised:
            invoice_create_for_billing_period(
                tenant_id="acme", customer_id=missing, billing_period_id=str(uuid.uuid4()),
                subscription_id=None, currency="USD", lines=[SEATS], now=NOW,
            )

        assert str(raised.value) == (
            f"customer {missing!r} not found in tenant 'acme'; create the customer first, "
            "for example with POST /api/v1/customers, and use the id it returns"
        )
        assert raised.value.code == "customer_not_found"
        assert row_counts() == counts

    def test_customer_of_another_tenant_is_not_found(self):
        customer = CustomerFactory(tenant_id="beta")

        with pytest.raises(CustomerNotFound):
            invoice_create_for_billing_period(
                tenant_id="acme", customer_id=str(customer.id), billing_period_id=str(uuid.uuid4()),
                subscription_id=None, currency="USD", lines=[SEATS], now=NOW,
            )

        assert not Invoice.objects.using("ar").exists()

    def test_naive_now_is_rejected(self):
        customer = CustomerFactory()

        with pytest.raises(ValueError, match="is not an aware datetime; pass an aware UTC datetime"):
            create_invoice(customer, now=datetime(2026, 3, 1, 9, 30))

        assert not Invoice.objects.using("ar").exists()


class TestInvoiceVoid:
    def test_open_invoice_is_voided(self):
        customer = CustomerFactory()
        invoice, _ = create_invoice(customer)
        later = NOW + timedelta(days=2)

        voided = invoice_void(invoice_id=str(invoice.id), now=later)

        voided.refresh_from_db()
        assert voided.status == InvoiceStatus.VOID
        assert voided.voided_at == later
        assert voided.version == 3
        (event,) = published(INVOICE_VOIDED)
        assert event["aggregate_version"] == 3
        assert event["occurred_at"] == "2026-03-03T09:30:00Z"
        assert event["payload"] == {
            "invoice_id": str(invoice.id),
            "invoice_number": "ACME-000001",
            "customer_id": str(customer.id),
            "currency": "USD",
            "total_minor": 2985,
            "voided_at": "2026-03-03T09:30:00Z",
            "subscription_id": str(invoice.subscription_id),
        }

    def test_void_returns_credit_and_partial_payments(self):
        customer = CustomerFactory()
        CreditEntryFactory(customer=customer, amount_minor=500)
        invoice, _ = create_invoice(customer)
        invoice_apply_gateway_payment(
            tenant_id="acme", invoice_id=str(invoice.id), payment_id="pay_1", amount_minor=1000,
            currency="USD", now=NOW,
        )

        invoice_void(invoice_id=str(invoice.id), now=NOW)

        entries = CustomerCreditEntry.objects.using("ar").filter(customer=customer)
        assert entries.balance("USD") == 1500
        returned = entries.get(reason=CreditReason.RETURNED_FROM_VOIDED_INVOICE)
        assert (returned.amount_minor, returned.invoice_id) == (1500, invoice.id)

    @pytest.mark.parametrize("status", [InvoiceStatus.PAID, InvoiceStatus.VOID, InvoiceStatus.UNCOLLECTIBLE])
    def test_only_open_invoice_can_be_voided(self, status):
        customer = CustomerFactory()
        invoice, _ = create_invoice(customer)
        Invoice.objects.using("ar").filter(id=invoice.id).update(status=status)
        counts = row_counts()

        with pytest.raises(InvoiceStateConflict) as raised:
            invoice_void(invoice_id=str(invoice.id), now=NOW)

        assert str(raised.value) == f"invoice ACME-000001 is {status}; only an open invoice can be voided"
        assert raised.value.code == "invoice_state_conflict"
        assert row_counts() == counts
        assert Invoice.objects.using("ar").get(id=invoice.id).version == 2

    @pytest.mark.parametrize("invoice_id", ["nope", "00000000-0000-0000-0000-000000000001"])
    def test_unknown_invoice_is_named(self, invoice_id):
        with pytest.raises(InvoiceNotFound) as raised:
            invoice_void(invoice_id=invoice_id, now=NOW)

        expected = {
            "nope": "invoice id 'nope' is not a UUID; pass the id as a UUID string",
            "00000000-0000-0000-0000-000000000001": (
                "invoice '00000000-0000-0000-0000-000000000001' not found; pass the id of an existing invoice"
            ),
        }[invoice_id]
        assert str(raised.value) == expected
        assert raised.value.code == "invoice_not_found"


class TestInvoiceMarkUncollectible:
    def test_open_invoice_is_marked(self):
        customer = CustomerFactory(name="Ada Lovelace", email="ada@example.com")
        invoice, _ = create_invoice(customer)
        later = NOW + timedelta(days=30)

        marked = invoice_mark_uncollectible(invoice_id=str(invoice.id), now=later)

        marked.refresh_from_db()
        assert marked.status == InvoiceStatus.UNCOLLECTIBLE
        assert marked.marked_uncollectible_at == later
        assert marked.version == 3
        (event,) = published(INVOICE_MARKED_UNCOLLECTIBLE)
        assert event["aggregate_version"] == 3
        assert event["payload"] == {
            "invoice_id": str(invoice.id),
            "invoice_number": "ACME-000001",
            "customer_id": str(customer.id),
            "customer_name": "Ada Lovelace",
            "customer_email": "ada@example.com",
            "currency": "USD",
            "amount_due_minor": 2985,
            "marked_at": "2026-03-31T09:30:00Z",
            "subscription_id": str(invoice.subscription_id),
        }

    def test_paid_invoice_cannot_be_marked(self):
        customer = CustomerFactory()
        CreditEntryFactory(customer=customer, amount_minor=5000)
        invoice, _ = create_invoice(customer)
        counts = row_counts()

        with pytest.raises(InvoiceStateConflict) as raised:
            invoice_mark_uncollectible(invoice_id=str(invoice.id), now=NOW)

        assert str(raised.value) == (
            "invoice ACME-000001 is paid; only an open invoice can be marked uncollectible"
        )
        assert row_counts() == counts


class TestInvoiceApplyPaymentFailure:
    def test_retryable_failure_changes_nothing(self):
        invoice, _ = create_invoice(CustomerFactory())
        counts = row_counts()

        result, changed = invoice_apply_payment_failure(
            invoice_id=str(invoice.id), payment_id="pay_1", final=False, now=NOW
        )

        assert changed is False
        assert result.status == InvoiceStatus.OPEN
        assert Invoice.objects.using("ar").get(id=invoice.id).version == 2
        assert row_counts() == counts

    def test_final_failure_marks_uncollectible(self):
        invoice, _ = create_invoice(CustomerFactory())

        result, changed = invoice_apply_payment_failure(
            invoice_id=str(invoice.id), payment_id="pay_1", final=True, now=NOW
        )

        assert changed is True
        assert result.status == InvoiceStatus.UNCOLLECTIBLE
        assert len(published(INVOICE_MARKED_UNCOLLECTIBLE)) == 1

    def test_final_failure_after_payment_is_stale(self):
        invoice, _ = create_invoice(CustomerFactory())
        invoice_apply_gateway_payment(
            tenant_id="acme", invoice_id=str(invoice.id), payment_id="pay_2", amount_minor=2985,
            currency="USD", now=NOW,
        )
        counts = row_counts()

        result, changed = invoice_apply_payment_failure(
            invoice_id=str(invoice.id), payment_id="pay_1", final=True, now=NOW
        )

        assert changed is False
        assert result.status == InvoiceStatus.PAID
        assert row_counts() == counts
