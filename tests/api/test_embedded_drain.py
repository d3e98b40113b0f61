"""Work started through the API finishes in the web process with the in-process bus."""

import pytest

from ar.selectors import invoice_summaries
from billing.api.tests.support import api_client
from eventbus.selectors import outbox_backlogs

# Committed transactions, because the payments handler charges in an on_commit hook.
pytestmark = pytest.mark.django_db(databases="__all__", transaction=True)

PLAN = {"code": "pro", "name": "Pro", "amount_minor": 2990, "currency": "USD", "interval": "month"}
CUSTOMER = {"external_id": "cus-1", "name": "Ada", "email": "ada@example.com", "currency": "USD"}


def bill_one_subscription(client) -> None:
    client.post("/api/v1/plans", PLAN, format="json")
    customer_id = client.post("/api/v1/customers", CUSTOMER, format="json").json()["id"]
    client.post(
        f"/api/v1/customers/{customer_id}/payment-methods", {"token": "tok_success", "kind": "card"}, format="json"
    )
    client.post(
        "/api/v1/subscriptions",
        {"customer_id": customer_id, "plan_code": "pro", "start_date": "2026-03-01"},
        format="json",
    )
    response = client.post("/api/v1/bill-runs", {"as_of": "2026-03-01"}, format="json")
    assert response.status_code == 201


class TestEmbeddedDrain:
    def test_bill_run_ends_paid(self, settings):
        settings.EVENTBUS = {**settings.EVENTBUS, "BACKEND": "inprocess"}
        settings.API_DRAIN_OUTBOXES_AFTER_WRITE = True
        client = api_client()

        bill_one_subscription(client)

        invoices = invoice_summaries(tenant_id="acme")
        assert [invoice.status for invoice in invoices] == ["paid"]
        assert sum(backlog.pending for backlog in outbox_backlogs()) == 0
        payments = client.get("/api/v1/payments").json()["results"]
        assert [payment["status"] for payment in payments] == ["succeeded"]

    def test_drain_off_leaves_events_pending(self, settings):
        settings.EVENTBUS = {**settings.EVENTBUS, "BACKEND": "inprocess"}
        settings.API_DRAIN_OUTBOXES_AFTER_WRITE = False
        client = api_client()

        bill_one_subscription(client)

        assert invoice_summaries(tenant_id="acme") == []
        assert sum(backlog.pending for backlog in outbox_backlogs()) > 0


class TestAdminDrain:
    def test_admin_action_is_relayed_without_a_worker(self, settings, admin_client):
        from django.urls import reverse

        from subscriptions.models import Subscription

        settings.EVENTBUS = {**settings.EVENTBUS, "BACKEND": "inprocess"}
        settings.API_DRAIN_OUTBOXES_AFTER_WRITE = True
        bill_one_subscription(api_client())
        subscription = Subscription.objects.get()

        response = admin_client.post(
            reverse("admin:subscriptions_subscription_changelist"),
            {"action": "cancel_now", "post": "yes", "_selected_action": [str(subscription.id)]},
        )

        assert response.status_code == 302
        assert sum(backlog.pending for backlog in outbox_backlogs()) == 0
        from notifications.selectors import notification_counts_by_status

        assert notification_counts_by_status(template="subscription_canceled")["sent"] == 1
