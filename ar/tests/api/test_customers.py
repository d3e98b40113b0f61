import pytest

from ar.models import Customer
from billing.api.tests.support import api_client

pytestmark = pytest.mark.django_db(databases="__all__")

CUSTOMER = {"external_id": "cus-1", "name": "Ada Lovelace", "email": "ada@example.com", "currency": "EUR"}


def customer_count() -> int:
    return Customer.objects.using("ar").count()


class TestCustomerCreate:
    def test_creates_then_updates(self):
        client = api_client()

        created = client.post("/api/v1/customers", CUSTOMER, format="json")
        updated = client.post("/api/v1/customers", {**CUSTOMER, "name": "Ada King"}, format="json")

        assert created.status_code == 201
        assert created.json()["name"] == "Ada Lovelace"
        assert created.json()["collection_method"] == "charge_automatically"
        assert updated.status_code == 200
        assert updated.json()["id"] == created.json()["id"]
        assert updated.json()["name"] == "Ada King"
        assert customer_count() == 1

    def test_unknown_currency_rejected(self):
        response = api_client().post("/api/v1/customers", {**CUSTOMER, "currency": "XYZ"}, format="json")

        assert response.status_code == 400
        assert response.json() == {
            "error": {
                "code": "invalid_request",
                "message": "the request has invalid fields: currency",
                "fields": {"currency": ["currency 'XYZ' is not a known ISO 4217 currency"]},
            }
        }
        assert customer_count() == 0

    def test_unknown_field_rejected(self):
        response = api_client().post("/api/v1/customers", {**CUSTOMER, "vip": True}, format="json")

        assert response.status_code == 400
        assert response.json()["error"]["fields"] == {"vip": ["unknown field; remove it or check its spelling"]}
        assert customer_count() == 0

    def test_wrong_types_rejected(self):
        body = {**CUSTOMER, "payment_terms_days": "30", "email": "not-an-email"}

        response = api_client().post("/api/v1/customers", body, format="json")

        assert response.status_code == 400
        assert response.json()["error"]["fields"] == {
            "email": ["Enter a valid email address."],
            "payment_terms_days": ["must be a JSON integer, such as 2990 for 29.90"],
        }
        assert customer_count() == 0

    def test_malformed_json_rejected(self):
        response = api_client().post("/api/v1/customers", "{", content_type="application/json")

        assert response.status_code == 400
        assert response.json()["error"]["code"] == "malformed_request"
        assert customer_count() == 0


class TestCustomerRead:
    def test_list_and_detail(self):
        client = api_client()
        customer_id = client.post("/api/v1/customers", CUSTOMER, format="json").json()["id"]

        listed = client.get("/api/v1/customers")
        detail = client.get(f"/api/v1/customers/{customer_id}")

        assert listed.status_code == 200
        assert [row["id"] for row in listed.json()["results"]] == [customer_id]
        assert detail.status_code == 200
        assert detail.json()["email"] == "ada@example.com"

    def test_other_tenant_gets_404(self):
        customer_id = api_client("acme").post("/api/v1/customers", CUSTOMER, format="json").json()["id"]
        other = api_client("globex")

        detail = other.get(f"/api/v1/customers/{customer_id}")
        listed = other.get("/api/v1/customers")

        assert detail.status_code == 404
        assert detail.json()["error"]["code"] == "not_found"
        assert listed.json()["results"] == []
