import pytest

from ar.models import Invoice, InvoiceStatus, PaymentApplication
from ar.tests.factories import CustomerFactory, InvoiceFactory, InvoiceLineFactory
from billing.api.tests.support import api_client

pytestmark = pytest.mark.django_db(databases="__all__")


def invoice_with_line(**fields) -> Invoice:
    invoice = InvoiceFactory(**fields)
    InvoiceLineFactory(invoice=invoice, position=1)
    return invoice


class TestInvoiceList:
    def test_filters_by_status_customer_and_dates(self):
        client = api_client()
        customer = CustomerFactory()
        open_march = invoice_with_line(customer=customer, issued_on="2026-03-01")
        invoice_with_line(customer=customer, status=InvoiceStatus.PAID, issued_on="2026-03-02")
        invoice_with_line(issued_on="2026-02-01")

        by_status = client.get("/api/v1/invoices", {"status": "open", "customer": str(customer.id)})
        by_dates = client.get("/api/v1/invoices", {"issued_from": "2026-03-01", "issued_to": "2026-03-01"})

        assert by_status.status_code == 200
        assert [row["id"] for row in by_status.json()["results"]] == [str(open_march.id)]
        assert [row["id"] for row in by_dates.json()["results"]] == [str(open_march.id)]
        assert by_status.json()["results"][0]["lines"][0]["amount_minor"] == 2985

    def test_invalid_filter_values_rejected(self):
        response = api_client().get("/api/v1/invoices", {"status": "lost", "issued_from": "2026-13-01"})

        assert response.status_code == 400
        assert response.json()["error"]["code"] == "invalid_request"
        assert set(response.json()["error"]["fields"]) == {"status", "issued_from"}

    def test_cursor_pages(self):
        client = api_client()
        customer = CustomerFactory()
        ids = {str(InvoiceFactory(customer=customer).id) for _ in range(3)}

        first = client.get("/api/v1/invoices", {"page_size": 2}).json()
        second = client.get(first["next"]).json()

        assert len(first["results"]) == 2
        assert len(second["results"]) == 1
        assert second["next"] is None
        assert {row["id"] for row in first["results"] + second["results"]} == ids


class TestInvoiceDetail:
    def test_returns_lines(self):
        invoice = invoice_with_line()

        response = api_client().get(f"/api/v1/invoices/{invoice.id}")

        assert response.status_code == 200
        assert response.json()["number"] == invoice.number
        assert response.json()["lines"][0]["description"] == "Pro plan"

    def test_other_tenant_gets_404(self):
        invoice = invoice_with_line()

        response = api_client("globex").get(f"/api/v1/invoices/{invoice.id}")

        assert response.status_code == 404


class TestInvoiceVoid:
    def test_voids_open_invoice(self):
        invoice = invoice_with_line()

        response = api_client().post(f"/api/v1/invoices/{invoice.id}/void")

        assert response.status_code == 200
        assert response.json()["status"] == "void"

    def test_paid_invoice_conflicts(self):
        invoice = invoice_with_line(status=InvoiceStatus.PAID)

        response = api_client().post(f"/api/v1/invoices/{invoice.id}/void")

        assert response.status_code == 409
        assert response.json()["error"]["code"] == "invoice_state_conflict"
        invoice.refresh_from_db()
        assert invoice.status == InvoiceStatus.PAID

    def test_other_tenant_gets_404(self):
        invoice = invoice_with_line()

        response = api_client("globex").post(f"/api/v1/invoices/{invoice.id}/void")

        assert response.status_code == 404
        invoice.refresh_from_db()
        assert invoice.status == InvoiceStatus.OPEN


class TestInvoicePayment:
    def test_records_full_payment(self):
        invoice = invoice_with_line()
        body = {"amount_minor": 2985, "currency": "USD", "reference": "wire-1"}

        response = api_client().post(f"/api/v1/invoices/{invoice.id}/payments", body, format="json")

        assert response.status_code == 200
        assert response.json()["status"] == "paid"
        assert response.json()["amount_due_minor"] == 0

    @pytest.mark.parametrize(
        ("body", "field", "message"),
        [
            ({"amount_minor": -5}, "amount_minor", "Ensure this value is greater than or equal to 1."),
            ({"amount_minor": 29.85}, "amount_minor", "must be a JSON integer, such as 2990 for 29.90"),
            ({"amount_minor": 2985.0}, "amount_minor", "must be a JSON integer, such as 2990 for 29.90"),
            ({"amount_minor": "2985"}, "amount_minor", "must be a JSON integer, such as 2990 for 29.90"),
            ({"currency": "usd"}, "currency", "currency 'usd' is not an ISO 4217 code; use three capital letters such as 'USD'"),
            ({"currency": "EUR"}, "currency", "must be the invoice's currency USD, not EUR"),
            ({"note": "x"}, "note", "unknown field; remove it or check its spelling"),
        ],
    )
    def test_bad_input_rejected(self, body, field, message):
        invoice = invoice_with_line()
        request = {"amount_minor": 2985, "currency": "USD", "reference": "wire-1", **body}

        response = api_client().post(f"/api/v1/invoices/{invoice.id}/payments", request, format="json")

        assert response.status_code == 400
        assert response.json()["error"]["fields"] == {field: [message]}
        assert PaymentApplication.objects.using("ar").count() == 0
        invoice.refresh_from_db()
        assert invoice.amount_paid_minor == 0
