import pytest

from billing.api.tests.support import api_client
from subscriptions.models import Plan

pytestmark = pytest.mark.django_db(databases="__all__")

PLAN = {"code": "pro", "name": "Pro", "amount_minor": 2990, "currency": "USD", "interval": "month"}


class TestPlanCreate:
    def test_creates_then_updates(self):
        client = api_client()

        created = client.post("/api/v1/plans", PLAN, format="json")
        updated = client.post("/api/v1/plans", {**PLAN, "amount_minor": 3990}, format="json")

        assert created.status_code == 201
        assert created.json()["interval_count"] == 1
        assert updated.status_code == 200
        assert updated.json()["amount_minor"] == 3990
        assert Plan.objects.using("subscriptions").count() == 1

    @pytest.mark.parametrize(
        ("field", "value", "message"),
        [
            ("amount_minor", -1, "Ensure this value is greater than or equal to 0."),
            ("amount_minor", 29.9, "must be a JSON integer, such as 2990 for 29.90"),
            ("currency", "ZZZ", "currency 'ZZZ' is not a known ISO 4217 currency"),
            ("interval", "fortnight", '"fortnight" is not a valid choice.'),
            ("trial_days", True, "must be a JSON integer, such as 2990 for 29.90"),
        ],
    )
    def test_bad_field_rejected(self, field, value, message):
        response = api_client().post("/api/v1/plans", {**PLAN, field: value}, format="json")

        assert response.status_code == 400
        assert response.json()["error"]["fields"] == {field: [message]}
        assert Plan.objects.using("subscriptions").count() == 0

    def test_invalid_code_rejected_by_service(self):
        response = api_client().post("/api/v1/plans", {**PLAN, "code": "pro plan"}, format="json")

        assert response.status_code == 400
        assert response.json()["error"]["code"] == "invalid_plan"
        assert response.json()["error"]["message"] == (
            "plan code 'pro plan' is invalid; use 1 to 64 letters, digits, '.', '_' or '-', "
            "starting with a letter or digit"
        )
        assert Plan.objects.using("subscriptions").count() == 0


class TestPlanRead:
    def test_list_and_detail(self):
        client = api_client()
        client.post("/api/v1/plans", PLAN, format="json")

        listed = client.get("/api/v1/plans")
        detail = client.get("/api/v1/plans/pro")

        assert [row["code"] for row in listed.json()["results"]] == ["pro"]
        assert detail.json()["name"] == "Pro"

    def test_other_tenant_gets_404(self):
        api_client("acme").post("/api/v1/plans", PLAN, format="json")

        response = api_client("globex").get("/api/v1/plans/pro")

        assert response.status_code == 404
