import uuid

import pytest
from django.urls import reverse

from ar.events import INVOICE_VOIDED
from ar.models import Customer, CustomerCreditEntry, Invoice, InvoiceStatus
from ar.services import (
    InvoiceLineInput,
    invoice_apply_gateway_payment,
    invoice_create_for_billing_period,
)
from ar.tests.factories import NOW, CreditEntryFactory, CustomerFactory
from ar.tests.support import published

pytestmark = pytest.mark.django_db(databases="__all__")


def finalized_invoice(customer):
    invoice, _ = invoice_create_for_billing_period(
        tenant_id=customer.tenant_id,
        customer_id=str(customer.id),
        billing_period_id=str(uuid.uuid4()),
        subscription_id=None,
        currency="USD",
        lines=[InvoiceLineInput(description="Seats", quantity=3, unit_amount_minor=995)],
        now=NOW,
    )
    return invoice


CUSTOMER_FORM = {
    "tenant_id": "acme",
    "external_id": "crm-9",
    "name": "Ada Lovelace",
    "email": "ada@example.com",
    "currency": "EUR",
    "collection_method": "send_invoice",
    "payment_terms_days": "14",
    "credit_entries-TOTAL_FORMS": "0",
    "credit_entries-INITIAL_FORMS": "0",
}


class TestInvoiceAdmin:
    def test_change_page_shows_major_units(self, admin_client):
        customer = CustomerFactory()
        CreditEntryFactory(customer=customer, amount_minor=500)
        invoice = finalized_invoice(customer)
        invoice_apply_gateway_payment(
            tenant_id="acme", invoice_id=str(invoice.id), payment_id="pay_1", amount_minor=1000,
            currency="USD", now=NOW,
        )

        response = admin_client.get(reverse("admin:ar_invoice_change", args=[invoice.id]))

        assert response.status_code == 200
        page = response.content.decode()
        assert "ACME-000001" in page
        assert "29.85 USD" in page
        assert "9.95 USD" in page
        assert "5.00 USD" in page
        assert "14.85 USD" in page
        assert "pay_1" in page
        # Totals, states and numbers are read-only: the page has no input for them.
        assert 'name="total_minor"' not in page
        assert 'name="status"' not in page
        assert 'name="number"' not in page

    def test_changelist_lists_invoices(self, admin_client):
        finalized_invoice(CustomerFactory())

        response = admin_client.get(reverse("admin:ar_invoice_changelist"))

        assert response.status_code == 200
        assert "ACME-000001" in response.content.decode()
        assert "29.85 USD" in response.content.decode()

    def test_void_action_calls_service(self, admin_client):
        invoice = finalized_invoice(CustomerFactory())

        response = admin_client.post(
            reverse("admin:ar_invoice_changelist"),
            {"action": "void_invoices", "_selected_action": [str(invoice.id)]},
            follow=True,
        )

        assert response.status_code == 200
        assert Invoice.objects.using("ar").get(id=invoice.id).status == InvoiceStatus.VOID
        assert len(published(INVOICE_VOIDED)) == 1
        assert "1 invoice(s) voided." in response.content.decode()

    def test_void_action_reports_conflict(self, admin_client):
        customer = CustomerFactory()
        CreditEntryFactory(customer=customer, amount_minor=5000)
        invoice = finalized_invoice(customer)

        response = admin_client.post(
            reverse("admin:ar_invoice_changelist"),
            {"action": "void_invoices", "_selected_action": [str(invoice.id)]},
            follow=True,
        )

        # The admin template capitalizes the first letter of a message.
        assert "Invoice ACME-000001 is paid; only an open invoice can be voided" in response.content.decode()
        assert Invoice.objects.using("ar").get(id=invoice.id).status == InvoiceStatus.PAID

    def test_invoices_cannot_be_added(self, admin_client):
        response = admin_client.get(reverse("admin:ar_invoice_add"))

        assert response.status_code == 403


class TestCustomerAdmin:
    def test_add_creates_through_upsert(self, admin_client):
        response = admin_client.post(reverse("admin:ar_customer_add"), CUSTOMER_FORM)

        assert response.status_code == 302
        customer = Customer.objects.using("ar").get()
        assert (customer.tenant_id, customer.external_id, customer.name) == ("acme", "crm-9", "Ada Lovelace")
        assert customer.payment_terms_days == 14

    def test_invalid_email_is_shown_and_nothing_saved(self, admin_client):
        response = admin_client.post(reverse("admin:ar_customer_add"), {**CUSTOMER_FORM, "email": "ada"})

        assert response.status_code == 200
        assert "Enter a valid email address." in response.content.decode()
        assert not Customer.objects.using("ar").exists()

    def test_invalid_currency_is_shown(self, admin_client):
        response = admin_client.post(reverse("admin:ar_customer_add"), {**CUSTOMER_FORM, "currency": "ZZZ"})

        assert response.status_code == 200
        assert "currency &#x27;ZZZ&#x27; is not a known ISO 4217 currency" in response.content.decode()
        assert not Customer.objects.using("ar").exists()

    def test_change_keeps_identity(self, admin_client):
        customer = CustomerFactory(external_id="crm-1")
        CreditEntryFactory(customer=customer, amount_minor=1234)

        page = admin_client.get(reverse("admin:ar_customer_change", args=[customer.id])).content.decode()
        response = admin_client.post(
            reverse("admin:ar_customer_change", args=[customer.id]),
            {**CUSTOMER_FORM, "tenant_id": "other", "external_id": "crm-other", "name": "Renamed"},
        )

        assert "12.34 USD" in page
        assert response.status_code == 302
        stored = Customer.objects.using("ar").get(id=customer.id)
        assert (stored.tenant_id, stored.external_id, stored.name) == ("acme", "crm-1", "Renamed")
        assert Customer.objects.using("ar").count() == 1
        assert CustomerCreditEntry.objects.using("ar").count() == 1
