import pytest

from billing.api.tests.support import NOW, api_client
from payments.models import PaymentAttempt, PaymentAttemptStatus, PaymentMethod
from payments.tests.factories import PaymentFactory, PaymentMethodFactory

pytestmark = pytest.mark.django_db(databases="__all__")

CUSTOMER = {"external_id": "cus-1", "name": "Ada", "email": "ada@example.com", "currency": "USD"}


def customer_id_of(client) -> str:
    """Create a customer through the API, because ar's factories are not for other modules' tests."""
    return client.post("/api/v1/customers", CUSTOMER, format="json").json()["id"]


class TestPaymentMethods:
    def test_adds_and_lists_methods(self):
        client = api_client()
        url = f"/api/v1/customers/{customer_id_of(client)}/payment-methods"

        created = client.post(url, {"token": "tok_success", "kind": "card"}, format="json")
        listed = client.get(url)

        assert created.status_code == 201
        assert created.json()["is_default"] is True
        assert [row["token"] for row in listed.json()["results"]] == ["tok_success"]

    def test_bad_input_rejected(self):
        client = api_client()
        body = {"token": "tok success", "kind": "cheque", "make_default": 1}

        response = client.post(f"/api/v1/customers/{customer_id_of(client)}/payment-methods", body, format="json")

        assert response.status_code == 400
        assert set(response.json()["error"]["fields"]) == {"kind", "make_default"}
        assert PaymentMethod.objects.using("payments").count() == 0

    def test_token_with_space_rejected_by_service(self):
        client = api_client()
        body = {"token": "tok success", "kind": "card"}

        response = client.post(f"/api/v1/customers/{customer_id_of(client)}/payment-methods", body, format="json")

        assert response.status_code == 400
        assert response.json()["error"]["code"] == "invalid_payment_method"
        assert PaymentMethod.objects.using("payments").count() == 0

    def test_other_tenants_customer_gets_404(self):
        url = f"/api/v1/customers/{customer_id_of(api_client('acme'))}/payment-methods"

        listed = api_client("globex").get(url)
        created = api_client("globex").post(url, {"token": "tok_success", "kind": "card"}, format="json")

        assert listed.status_code == 404
        assert created.status_code == 404
        assert PaymentMethod.objects.using("payments").count() == 0


class TestPayments:
    def test_detail_with_attempts(self):
        client = api_client()
        payment = PaymentFactory(tenant_id="acme", status="succeeded", attempt_count=1)
        method = PaymentMethodFactory(tenant_id="acme", customer_id=payment.customer_id)
        PaymentAttempt.objects.using("payments").create(
            payment=payment,
            number=1,
            status=PaymentAttemptStatus.SUCCEEDED,
            payment_method=method,
            idempotency_key="key:attempt-1",
            gateway_reference="sim_1",
            started_at=NOW,
            finished_at=NOW,
        )

        listed = client.get("/api/v1/payments")
        detail = client.get(f"/api/v1/payments/{payment.id}")

        assert [row["id"] for row in listed.json()["results"]] == [str(payment.id)]
        assert detail.status_code == 200
        assert detail.json()["attempts"][0]["gateway_reference"] == "sim_1"
        assert detail.json()["attempts"][0]["payment_method_id"] == str(method.id)

    def test_other_tenant_gets_404(self):
        payment = PaymentFactory(tenant_id="acme")

        response = api_client("globex").get(f"/api/v1/payments/{payment.id}")

        assert response.status_code == 404
