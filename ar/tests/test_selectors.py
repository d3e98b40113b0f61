import uuid
from datetime import date

import pytest
from django.db import connections
from django.test.utils import CaptureQueriesContext

from ar.models import InvoiceStatus
from ar.selectors import (
    CustomerContact,
    InvoiceLineSummary,
    customer_contact,
    customer_credit_balances,
    customer_id_for_external_id,
    customer_queryset,
    invoice_queryset,
    invoice_summaries,
    invoice_summary,
    invoice_summary_for_billing_period,
    invoice_totals_by_status,
)
from ar.tests.factories import (
    CreditEntryFactory,
    CustomerFactory,
    InvoiceFactory,
    InvoiceLineFactory,
)

pytestmark = pytest.mark.django_db(databases="__all__")


class TestCustomerSelectors:
    def test_contact_of_known_customer(self):
        customer = CustomerFactory(
            external_id="crm-7", name="Ada Lovelace", email="ada@example.com", currency="EUR",
            collection_method="send_invoice",
        )

        contact = customer_contact(customer_id=str(customer.id))

        assert contact == CustomerContact(
            customer_id=str(customer.id),
            tenant_id="acme",
            external_id="crm-7",
            name="Ada Lovelace",
            email="ada@example.com",
            currency="EUR",
            collection_method="send_invoice",
        )

    def test_contact_takes_one_query(self):
        customer = CustomerFactory()

        with CaptureQueriesContext(connections["ar"]) as queries:
            customer_contact(customer_id=str(customer.id))

        assert len(queries) == 1

    @pytest.mark.parametrize("customer_id", [str(uuid.uuid4()), "not-a-uuid", ""])
    def test_contact_of_unknown_customer_is_none(self, customer_id):
        CustomerFactory()

        assert customer_contact(customer_id=customer_id) is None

    def test_id_for_external_id_is_per_tenant(self):
        acme = CustomerFactory(tenant_id="acme", external_id="crm-1")
        beta = CustomerFactory(tenant_id="beta", external_id="crm-1")

        assert customer_id_for_external_id(tenant_id="acme", external_id="crm-1") == str(acme.id)
        assert customer_id_for_external_id(tenant_id="beta", external_id="crm-1") == str(beta.id)
        assert customer_id_for_external_id(tenant_id="acme", external_id="crm-2") is None

    def test_credit_balances_leave_out_zero(self):
        customer = CustomerFactory()
        CreditEntryFactory(customer=customer, currency="USD", amount_minor=500)
        CreditEntryFactory(customer=customer, currency="USD", amount_minor=-500)
        CreditEntryFactory(customer=customer, currency="EUR", amount_minor=250)

        assert customer_credit_balances(customer_id=str(customer.id)) == {"EUR": 250}
        assert customer_credit_balances(customer_id="nope") == {}


class TestInvoiceSelectors:
    def test_summary_has_lines_in_order(self):
        period_id = uuid.uuid4()
        invoice = InvoiceFactory(billing_period_id=period_id, subtotal_minor=3985)
        InvoiceLineFactory(invoice=invoice, position=2, description="Setup", unit_amount_minor=1000)
        InvoiceLineFactory(
            invoice=invoice, position=1, description="Seats", quantity=3, unit_amount_minor=995,
            period_start=date(2026, 3, 1), period_end=date(2026, 4, 1),
        )

        summary = invoice_summary(invoice_id=str(invoice.id))

        assert summary.invoice_id == str(invoice.id)
        assert summary.number == invoice.number
        assert summary.status == "open"
        assert (summary.total_minor, summary.amount_due_minor) == (3985, 3985)
        assert summary.billing_period_id == str(period_id)
        assert summary.lines == (
            InvoiceLineSummary("Seats", 3, 995, 2985, date(2026, 3, 1), date(2026, 4, 1)),
            InvoiceLineSummary("Setup", 1, 1000, 1000, None, None),
        )
        assert invoice_summary_for_billing_period(billing_period_id=str(period_id)) == summary

    def test_unknown_invoice_is_none(self):
        assert invoice_summary(invoice_id=str(uuid.uuid4())) is None
        assert invoice_summary(invoice_id="ACME-000001") is None
        assert invoice_summary_for_billing_period(billing_period_id=str(uuid.uuid4())) is None

    def test_summaries_filter_by_customer_and_status(self):
        customer = CustomerFactory()
        paid = InvoiceFactory(customer=customer, status=InvoiceStatus.PAID, amount_paid_minor=2985)
        InvoiceFactory(customer=customer)
        InvoiceFactory()

        summaries = invoice_summaries(tenant_id="acme", customer_id=str(customer.id), status="paid")

        assert [summary.invoice_id for summary in summaries] == [str(paid.id)]
        assert len(invoice_summaries(tenant_id="acme")) == 3
        assert invoice_summaries(tenant_id="beta") == []

    def test_totals_by_status_and_currency(self):
        acme = CustomerFactory(tenant_id="acme")
        beta = CustomerFactory(tenant_id="beta")
        InvoiceFactory(customer=acme, subtotal_minor=1000)
        InvoiceFactory(customer=acme, subtotal_minor=2500)
        InvoiceFactory(customer=acme, currency="EUR", subtotal_minor=700)
        InvoiceFactory(customer=acme, status=InvoiceStatus.PAID, subtotal_minor=300, amount_paid_minor=300)
        InvoiceFactory(customer=beta, subtotal_minor=9000)

        assert invoice_totals_by_status(tenant_id="acme") == {
            "open": {
                "EUR": {"count": 1, "amount_minor": 700},
                "USD": {"count": 2, "amount_minor": 3500},
            },
            "paid": {"USD": {"count": 1, "amount_minor": 300}},
        }
        assert invoice_totals_by_status() == {
            "open": {
                "EUR": {"count": 1, "amount_minor": 700},
                "USD": {"count": 3, "amount_minor": 12500},
            },
            "paid": {"USD": {"count": 1, "amount_minor": 300}},
        }
        assert invoice_totals_by_status(tenant_id="gamma") == {}


class TestTenantQuerysets:
    def test_each_returns_only_the_tenants_rows(self):
        invoice = InvoiceFactory(customer=CustomerFactory(tenant_id="acme"))
        InvoiceFactory(customer=CustomerFactory(tenant_id="globex"))

        assert list(customer_queryset(tenant_id="acme")) == [invoice.customer]
        assert list(invoice_queryset(tenant_id="acme")) == [invoice]
