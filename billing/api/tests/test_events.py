import pytest

from ar.models import DeadLetter
from billing.api.tests.support import NOW, api_client
from eventbus.models import DeadLetterReason, DeadLetterStatus

pytestmark = pytest.mark.django_db(databases="__all__")

CUSTOMER = {"external_id": "cus-1", "name": "Ada", "email": "ada@example.com", "currency": "USD"}


def dead_letter(tenant_id: str = "acme") -> DeadLetter:
    return DeadLetter.objects.using("ar").create(
        consumer="ar",
        message_key=f"key-{tenant_id}",
        subject="payments.events.payments.payment.succeeded",
        tenant_id=tenant_id,
        body=b"not json",
        reason=DeadLetterReason.MALFORMED,
        error="body is not JSON",
        deliveries=1,
        created_at=NOW,
    )


class TestOutboxEvents:
    def test_lists_own_tenants_events(self, settings):
        settings.API_DRAIN_OUTBOXES_AFTER_WRITE = False
        api_client("globex").post("/api/v1/plans", {"code": "x", "name": "X", "amount_minor": 1, "currency": "USD", "interval": "month"}, format="json")
        client = api_client("acme")
        client.post("/api/v1/plans", {"code": "pro", "name": "Pro", "amount_minor": 990, "currency": "USD", "interval": "month"}, format="json")
        customer_id = client.post("/api/v1/customers", CUSTOMER, format="json").json()["id"]
        client.post(
            "/api/v1/subscriptions",
            {"customer_id": customer_id, "plan_code": "pro", "start_date": "2026-03-01"},
            format="json",
        )

        response = client.get("/api/v1/events/subscriptions/outbox")

        assert response.status_code == 200
        rows = response.json()["results"]
        assert [row["event_type"] for row in rows] == ["subscriptions.subscription.created"]
        assert rows[0]["state"] == "pending"
        assert rows[0]["envelope"]["tenant_id"] == "acme"

    def test_unknown_module_gets_404(self):
        response = api_client().get("/api/v1/events/billing/outbox")

        assert response.status_code == 404
        assert response.json()["error"]["code"] == "unknown_module"


class TestDeadLetters:
    def test_lists_own_tenants_dead_letters(self):
        mine = dead_letter("acme")
        dead_letter("globex")

        listed = api_client("acme").get("/api/v1/events/ar/dead-letters")
        detail = api_client("acme").get(f"/api/v1/events/ar/dead-letters/{mine.id}")

        assert [row["id"] for row in listed.json()["results"]] == [mine.id]
        assert detail.json()["body"] == "not json"

    def test_staff_key_sees_every_tenant(self):
        dead_letter("acme")
        dead_letter("globex")

        listed = api_client("ops", is_staff=True).get("/api/v1/events/ar/dead-letters")

        assert len(listed.json()["results"]) == 2

    def test_replay_needs_staff_key(self):
        row = dead_letter()

        response = api_client("acme").post(f"/api/v1/events/ar/dead-letters/{row.id}/replay")

        assert response.status_code == 403
        assert response.json()["error"]["code"] == "permission_denied"
        row.refresh_from_db()
        assert row.status == DeadLetterStatus.DEAD

    def test_staff_discards(self):
        row = dead_letter()

        response = api_client("ops", is_staff=True).post(f"/api/v1/events/ar/dead-letters/{row.id}/discard")

        assert response.status_code == 200
        assert response.json()["status"] == "discarded"
        row.refresh_from_db()
        assert row.status == DeadLetterStatus.DISCARDED

    def test_staff_replay_of_malformed_fails_again(self):
        row = dead_letter()

        response = api_client("ops", is_staff=True).post(f"/api/v1/events/ar/dead-letters/{row.id}/replay")

        assert response.status_code == 200
        assert response.json()["dead_letter_id"] == row.id
        assert response.json()["applied"] is False
        row.refresh_from_db()
        assert row.status == DeadLetterStatus.DEAD
