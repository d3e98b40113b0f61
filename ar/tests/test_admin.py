import uuid
from datetime import date

import pytest
from django.contrib.messages import get_messages
from django.urls import reverse

from ar.events import INVOICE_MARKED_UNCOLLECTIBLE, INVOICE_VOIDED
from ar.models import Customer, CustomerCreditEntry, Invoice, InvoiceStatus
from ar.services import (
    InvoiceLineInput,
    invoice_apply_gateway_payment,
    invoice_create_for_billing_period,
)
from ar.tests.factories import NOW, CreditEntryFactory, CustomerFactory, InvoiceFactory
from ar.tests.support import published, row_counts

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


def messages_of(response) -> list[tuple[str, str]]:
    return [(message.level_tag, message.message) for message in get_messages(response.wsgi_request)]


def run_action(client, action: str, invoices):
    """Post ``action`` as its confirmation page does, so it runs at once."""
    return client.post(
        reverse("admin:ar_invoice_changelist"),
        {"action": action, "post": "yes", "_selected_action": [str(invoice.id) for invoice in invoices]},
        follow=True,
    )


def listed_numbers(response) -> list[str]:
    return sorted(invoice.number for invoice in response.context["cl"].result_list)


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

        response = run_action(admin_client, "void_invoices", [invoice])

        assert response.status_code == 200
        assert Invoice.objects.using("ar").get(id=invoice.id).status == InvoiceStatus.VOID
        assert len(published(INVOICE_VOIDED)) == 1
        assert messages_of(response) == [("success", "Invoice ACME-000001 voided.")]
        assert "Invoice ACME-000001 voided." in response.content.decode()

    def test_void_asks_first(self, admin_client):
        invoice = finalized_invoice(CustomerFactory())
        before = row_counts()

        response = admin_client.post(
            reverse("admin:ar_invoice_changelist"),
            {"action": "void_invoices", "_selected_action": [str(invoice.id)]},
        )

        assert response.status_code == 200
        assert response.templates[0].name == "admin/eventbus/action_confirmation.html"
        assert "Void the selected invoices? A void invoice cannot be reopened." in response.text
        assert "<li>ACME-000001</li>" in response.text
        assert f'<input type="hidden" name="_selected_action" value="{invoice.id}">' in response.text
        assert '<input type="hidden" name="action" value="void_invoices">' in response.text
        assert Invoice.objects.using("ar").get(id=invoice.id).status == InvoiceStatus.OPEN
        assert row_counts() == before

    def test_void_action_reports_conflict(self, admin_client):
        customer = CustomerFactory()
        CreditEntryFactory(customer=customer, amount_minor=5000)
        invoice = finalized_invoice(customer)
        before = row_counts()

        response = run_action(admin_client, "void_invoices", [invoice])

        assert messages_of(response) == [
            ("error", "invoice ACME-000001 is paid; only an open invoice can be voided"),
        ]
        # The admin template capitalizes the first letter of a message.
        assert "Invoice ACME-000001 is paid; only an open invoice can be voided" in response.content.decode()
        assert Invoice.objects.using("ar").get(id=invoice.id).status == InvoiceStatus.PAID
        assert row_counts() == before

    def test_mark_uncollectible_calls_service(self, admin_client):
        invoice = finalized_invoice(CustomerFactory())

        response = run_action(admin_client, "mark_invoices_uncollectible", [invoice])

        stored = Invoice.objects.using("ar").get(id=invoice.id)
        assert stored.status == InvoiceStatus.UNCOLLECTIBLE
        assert stored.marked_uncollectible_at is not None
        assert len(published(INVOICE_MARKED_UNCOLLECTIBLE)) == 1
        assert messages_of(response) == [("success", "Invoice ACME-000001 marked uncollectible.")]

    def test_action_reports_each_row(self, admin_client):
        open_invoice = finalized_invoice(CustomerFactory())
        void_invoice = InvoiceFactory(number="ACME-000777", status=InvoiceStatus.VOID, voided_at=NOW)
        before = row_counts()

        response = run_action(admin_client, "mark_invoices_uncollectible", [open_invoice, void_invoice])

        assert sorted(messages_of(response)) == [
            ("error", "invoice ACME-000777 is void; only an open invoice can be marked uncollectible"),
            ("success", "Invoice ACME-000001 marked uncollectible."),
        ]
        assert Invoice.objects.using("ar").get(id=void_invoice.id).status == InvoiceStatus.VOID
        assert Invoice.objects.using("ar").get(id=open_invoice.id).status == InvoiceStatus.UNCOLLECTIBLE
        # Only the open invoice changed: one new event, no new rows elsewhere.
        assert row_counts() == {**before, "OutboxEvent": before["OutboxEvent"] + 1}

    @pytest.mark.parametrize(
        ("term", "expected"),
        [
            ("ACME-000002", ["ACME-000002"]),
            ("crm-grace", ["ACME-000002"]),
            ("Ada", ["ACME-000001"]),
            ("grace@example.com", ["ACME-000002"]),
            ("example.com", ["ACME-000001", "ACME-000002"]),
        ],
    )
    def test_search_by_number_and_customer(self, admin_client, term, expected):
        InvoiceFactory(number="ACME-000001", customer=CustomerFactory(
            external_id="crm-ada", name="Ada Lovelace", email="ada@example.com"))
        InvoiceFactory(number="ACME-000002", customer=CustomerFactory(
            external_id="crm-grace", name="Grace Hopper", email="grace@example.com"))

        response = admin_client.get(reverse("admin:ar_invoice_changelist"), {"q": term})

        assert response.status_code == 200
        assert listed_numbers(response) == expected

    @pytest.mark.parametrize(
        ("query", "expected"),
        [
            ({"status__exact": "open"}, ["ACME-000001", "OTHER-000001"]),
            ({"status__exact": "paid"}, ["ACME-000002"]),
            ({"tenant_id": "other"}, ["OTHER-000001"]),
            ({"issued_on__gte": "2026-02-01", "issued_on__lt": "2026-03-01"}, ["ACME-000002"]),
            ({"issued_on__year": "2026", "issued_on__month": "3"}, ["ACME-000001", "OTHER-000001"]),
        ],
    )
    def test_filters(self, admin_client, query, expected):
        InvoiceFactory(number="ACME-000001")
        InvoiceFactory(
            number="ACME-000002", status=InvoiceStatus.PAID, amount_paid_minor=2985, paid_at=NOW,
            issued_on=date(2026, 2, 10),
        )
        InvoiceFactory(number="OTHER-000001", customer=CustomerFactory(tenant_id="other"))

        response = admin_client.get(reverse("admin:ar_invoice_changelist"), query)

        assert response.status_code == 200
        assert listed_numbers(response) == expected

    def test_change_is_rejected(self, admin_client):
        invoice = finalized_invoice(CustomerFactory())

        response = admin_client.post(
            reverse("admin:ar_invoice_change", args=[invoice.id]), {"number": "X-1", "status": "paid"}
        )
        deleted = admin_client.post(reverse("admin:ar_invoice_delete", args=[invoice.id]), {"post": "yes"})

        assert response.status_code == 403
        assert deleted.status_code == 403
        stored = Invoice.objects.using("ar").get(id=invoice.id)
        assert (stored.number, stored.status) == ("ACME-000001", InvoiceStatus.OPEN)

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

    def test_changelist_search_and_filter(self, admin_client):
        CustomerFactory(name="Ada Lovelace", collection_method="send_invoice")
        CustomerFactory(name="Grace Hopper")

        searched = admin_client.get(reverse("admin:ar_customer_changelist"), {"q": "lovelace"})
        filtered = admin_client.get(
            reverse("admin:ar_customer_changelist"), {"collection_method__exact": "charge_automatically"}
        )

        assert [customer.name for customer in searched.context["cl"].result_list] == ["Ada Lovelace"]
        assert [customer.name for customer in filtered.context["cl"].result_list] == ["Grace Hopper"]

    def test_change_page_shows_credit_balance(self, admin_client):
        customer = CustomerFactory()
        CreditEntryFactory(customer=customer, amount_minor=1234)
        CreditEntryFactory(customer=customer, amount_minor=-234, reason="applied_to_invoice")
        CreditEntryFactory(customer=customer, amount_minor=500, currency="JPY")

        response = admin_client.get(reverse("admin:ar_customer_change", args=[customer.id]))

        assert response.status_code == 200
        assert '<div class="readonly">500 JPY, 10.00 USD</div>' in response.text

    def test_delete_is_forbidden(self, admin_client):
        customer = CustomerFactory()

        response = admin_client.post(reverse("admin:ar_customer_delete", args=[customer.id]), {"post": "yes"})

        assert response.status_code == 403
        assert Customer.objects.using("ar").filter(id=customer.id).exists()
