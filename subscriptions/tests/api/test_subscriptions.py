import pytest

from ar.selectors import invoice_summaries
from billing.api.tests.support import api_client
from subscriptions.models import BillRun, Subscription

pytestmark = pytest.mark.django_db(databases="__all__")

PLAN = {"code": "pro", "name": "Pro", "amount_minor": 2990, "currency": "USD", "interval": "month"}
CUSTOMER = {"external_id": "cus-1", "name": "Ada", "email": "ada@example.com", "currency": "USD"}


def subscribed(client, **fields) -> dict:
    """Create a plan, a customer and a subscription through the API; return the subscription."""
    client.post("/api/v1/plans", PLAN, format="json")
    client.post("/api/v1/plans", {**PLAN, "code": "team", "amount_minor": 9900}, format="json")
    customer_id = client.post("/api/v1/customers", CUSTOMER, format="json").json()["id"]
    body = {"customer_id": customer_id, "plan_code": "pro", "start_date": "2026-03-01", **fields}
    response = client.post("/api/v1/subscriptions", body, format="json")
    assert response.status_code == 201, response.json()
    return response.json()


class TestSubscriptionCreate:
    def test_creates_subscription(self):
        client = api_client()

        subscription = subscribed(client, quantity=3)

        assert subscription["plan_code"] == "pro"
        assert subscription["quantity"] == 3
        assert subscription["status"] == "active"
        listed = client.get("/api/v1/subscriptions").json()["results"]
        assert [row["id"] for row in listed] == [subscription["id"]]
        detail = client.get(f"/api/v1/subscriptions/{subscription['id']}")
        assert detail.json()["current_period_start"] == "2026-03-01"

    def test_other_tenants_customer_rejected(self):
        customer_id = api_client("acme").post("/api/v1/customers", CUSTOMER, format="json").json()["id"]
        other = api_client("globex")
        other.post("/api/v1/plans", PLAN, format="json")
        body = {"customer_id": customer_id, "plan_code": "pro", "start_date": "2026-03-01"}

        response = other.post("/api/v1/subscriptions", body, format="json")

        assert response.status_code == 400
        assert response.json()["error"]["fields"] == {"customer_id": [f"customer {customer_id} does not exist"]}
        assert Subscription.objects.using("subscriptions").count() == 0

    @pytest.mark.parametrize(
        ("field", "value", "message"),
        [
            ("start_date", "2026-02-30", "Date has wrong format. Use one of these formats instead: YYYY-MM-DD."),
            ("start_date", "9999-12-31", "must be between 1970-01-01 and 2199-12-31"),
            ("quantity", 0, "Ensure this value is greater than or equal to 1."),
            ("price_override_minor", -100, "Ensure this value is greater than or equal to 0."),
            ("customer_id", "cus-1", "Must be a valid UUID."),
        ],
    )
    def test_bad_field_rejected(self, field, value, message):
        client = api_client()
        client.post("/api/v1/plans", PLAN, format="json")
        body = {
            "customer_id": "7f1e4c2a-52a3-4c8f-9d39-0c6f4a0d3b11",
            "plan_code": "pro",
            "start_date": "2026-03-01",
            field: value,
        }

        response = client.post("/api/v1/subscriptions", body, format="json")

        assert response.status_code == 400
        assert response.json()["error"]["fields"] == {field: [message]}
        assert Subscription.objects.using("subscriptions").count() == 0


class TestSubscriptionCancel:
    def test_cancels_at_period_end(self):
        client = api_client()
        subscription = subscribed(client)

        response = client.post(
            f"/api/v1/subscriptions/{subscription['id']}/cancel", {"at_period_end": True}, format="json"
        )

        assert response.status_code == 200
        assert response.json()["cancel_at_period_end"] is True
        assert response.json()["status"] == "active"

    def test_cancels_now_then_conflicts(self):
        client = api_client()
        subscription = subscribed(client)
        url = f"/api/v1/subscriptions/{subscription['id']}/cancel"

        first = client.post(url, {}, format="json")
        second = client.post(url, {}, format="json")

        assert first.json()["status"] == "canceled"
        assert second.status_code == 409
        assert second.json()["error"]["code"] == "subscription_state_conflict"

    def test_other_tenant_gets_404(self):
        subscription = subscribed(api_client("acme"))

        response = api_client("globex").post(f"/api/v1/subscriptions/{subscription['id']}/cancel", {}, format="json")

        assert response.status_code == 404
        assert Subscription.objects.using("subscriptions").get().status == "active"


class TestSubscriptionChangePlan:
    def test_schedules_new_plan(self):
        client = api_client()
        subscription = subscribed(client)

        response = client.post(
            f"/api/v1/subscriptions/{subscription['id']}/change-plan", {"plan_code": "team"}, format="json"
        )

        assert response.status_code == 200
        assert response.json()["pending_plan_code"] == "team"

    def test_unknown_plan_rejected(self):
        client = api_client()
        subscription = subscribed(client)

        response = client.post(
            f"/api/v1/subscriptions/{subscription['id']}/change-plan", {"plan_code": "gold"}, format="json"
        )

        assert response.status_code == 400
        assert response.json()["error"]["code"] == "plan_not_found"
        assert Subscription.objects.using("subscriptions").get().pending_plan_id is None


class TestBillRun:
    def test_dry_run_bills_nothing(self):
        client = api_client()
        subscribed(client)

        response = client.post("/api/v1/bill-runs", {"as_of": "2026-03-01", "dry_run": True}, format="json")

        assert response.status_code == 201
        assert response.json()["dry_run"] is True
        assert response.json()["periods_billed"] == 1
        assert invoice_summaries(tenant_id="acme") == []

    def test_bills_and_lists_runs(self):
        client = api_client()
        subscribed(client)

        run = client.post("/api/v1/bill-runs", {"as_of": "2026-03-01"}, format="json").json()
        listed = client.get("/api/v1/bill-runs").json()["results"]
        detail = client.get(f"/api/v1/bill-runs/{run['id']}").json()

        assert run["status"] == "completed"
        assert run["amount_minor_by_currency"] == {"USD": 2990}
        assert [row["id"] for row in listed] == [run["id"]]
        assert detail["subscriptions_seen"] == 1

    def test_invalid_as_of_rejected(self):
        response = api_client().post("/api/v1/bill-runs", {"as_of": "yesterday", "dry_run": "yes"}, format="json")

        assert response.status_code == 400
        assert set(response.json()["error"]["fields"]) == {"as_of", "dry_run"}
        assert BillRun.objects.using("subscriptions").count() == 0

    def test_as_of_beyond_a_year_rejected(self):
        response = api_client().post("/api/v1/bill-runs", {"as_of": "2199-12-31"}, format="json")

        assert response.status_code == 400
        assert response.json()["error"]["fields"]["as_of"][0].startswith("must be no later than ")
        assert BillRun.objects.using("subscriptions").count() == 0

    def test_other_tenant_gets_404(self):
        client = api_client("acme")
        run = client.post("/api/v1/bill-runs", {"as_of": "2026-03-01"}, format="json").json()

        response = api_client("globex").get(f"/api/v1/bill-runs/{run['id']}")

        assert response.status_code == 404
