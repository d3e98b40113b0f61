import uuid
from datetime import date

import pytest
from django.contrib.auth import get_user_model
from django.contrib.messages import get_messages
from django.urls import reverse
from django.utils import timezone

from subscriptions.models import (
    BillingPeriod,
    BillRun,
    OutboxEvent,
    Plan,
    Subscription,
    SubscriptionInvoice,
    SubscriptionStatus,
)
from subscriptions.services import bill_run_execute, subscription_cancel, subscription_invoice_open
from subscriptions.tests.factories import PlanFactory, SubscriptionFactory
from subscriptions.tests.support import morning_of, outbox_payloads

pytestmark = pytest.mark.django_db(databases="__all__")

MODELS = {
    "plan": Plan,
    "subscription": Subscription,
    "billingperiod": BillingPeriod,
    "billrun": BillRun,
    "subscriptioninvoice": SubscriptionInvoice,
}


@pytest.fixture
def admin_client(client):
    user = get_user_model().objects.create_superuser("admin", "admin@example.com", "secret-password")
    client.force_login(user)
    return client


@pytest.fixture
def billed_subscription():
    subscription = SubscriptionFactory(start_date=date(2026, 1, 1))
    bill_run_execute(as_of=date(2026, 1, 1), now=morning_of(date(2026, 1, 1)))
    period = BillingPeriod.objects.using("subscriptions").get(subscription_id=subscription.id)
    subscription_invoice_open(
        tenant_id=subscription.tenant_id, invoice_id=str(uuid.uuid4()), subscription_id=str(subscription.id),
        billing_period_id=str(period.id), now=morning_of(date(2026, 1, 1)),
    )
    return subscription


def messages_of(response) -> list[tuple[str, str]]:
    return [(message.level_tag, message.message) for message in get_messages(response.wsgi_request)]


def run_action(client, model: str, action: str, rows):
    """Post ``action`` as its confirmation page does, so it runs at once."""
    return client.post(
        reverse(f"admin:subscriptions_{model}_changelist"),
        {"action": action, "post": "yes", "_selected_action": [str(row.pk) for row in rows]},
        follow=True,
    )


def stored(subscription) -> Subscription:
    return Subscription.objects.using("subscriptions").get(id=subscription.id)


class TestReadOnlyAdmin:
    @pytest.mark.parametrize("model", MODELS)
    def test_changelist_lists_rows(self, admin_client, billed_subscription, model):
        response = admin_client.get(reverse(f"admin:subscriptions_{model}_changelist"))

        assert response.status_code == 200
        assert len(response.context["cl"].result_list) == 1

    @pytest.mark.parametrize("model", MODELS)
    def test_change_page_renders(self, admin_client, billed_subscription, model):
        row = MODELS[model].objects.using("subscriptions").get()

        response = admin_client.get(reverse(f"admin:subscriptions_{model}_change", args=[row.pk]))

        assert response.status_code == 200
        assert response.context["has_change_permission"] is False

    @pytest.mark.parametrize("model", MODELS)
    def test_add_is_forbidden(self, admin_client, model):
        response = admin_client.get(reverse(f"admin:subscriptions_{model}_add"))

        assert response.status_code == 403

    def test_subscription_change_form_is_read_only(self, admin_client, billed_subscription):
        url = reverse("admin:subscriptions_subscription_change", args=[billed_subscription.id])

        shown = admin_client.get(url)
        posted = admin_client.post(url, {"quantity": 5})

        assert shown.status_code == 200
        assert shown.context["has_change_permission"] is False
        assert posted.status_code == 403
        billed_subscription.refresh_from_db()
        assert billed_subscription.quantity == 1

    def test_amounts_in_major_units(self, admin_client, billed_subscription):
        plans = admin_client.get(reverse("admin:subscriptions_plan_changelist"))
        periods = admin_client.get(reverse("admin:subscriptions_billingperiod_changelist"))
        runs = admin_client.get(reverse("admin:subscriptions_billrun_changelist"))

        assert '<td class="field-price">29.00 USD</td>' in plans.text
        assert '<td class="field-amount">29.00 USD</td>' in periods.text
        assert '<td class="field-billed">29.00 USD</td>' in runs.text


class TestSubscriptionAdmin:
    def test_filter_by_status(self, admin_client):
        SubscriptionFactory()
        canceled = SubscriptionFactory()
        subscription_cancel(subscription_id=str(canceled.id), at_period_end=False, now=timezone.now())

        response = admin_client.get(reverse("admin:subscriptions_subscription_changelist"), {"status__exact": "canceled"})

        assert [row.id for row in response.context["cl"].result_list] == [canceled.id]

    def test_search_by_customer_and_plan(self, admin_client):
        wanted = SubscriptionFactory(plan=PlanFactory(code="gold"))
        SubscriptionFactory(plan=PlanFactory(code="silver"))

        by_customer = admin_client.get(
            reverse("admin:subscriptions_subscription_changelist"), {"q": wanted.customer_id}
        )
        by_plan = admin_client.get(reverse("admin:subscriptions_subscription_changelist"), {"q": "gold"})

        assert [row.id for row in by_customer.context["cl"].result_list] == [wanted.id]
        assert [row.id for row in by_plan.context["cl"].result_list] == [wanted.id]

    def test_cancel_now(self, admin_client):
        subscription = SubscriptionFactory()
        today = timezone.now().date()

        response = run_action(admin_client, "subscription", "cancel_now", [subscription])

        assert messages_of(response) == [
            ("success", f"Subscription {subscription.id} is canceled; its service ends on {today}."),
        ]
        after = stored(subscription)
        assert (after.status, after.ends_on, after.version) == (SubscriptionStatus.CANCELED, today, 2)
        assert [payload["at_period_end"] for payload in outbox_payloads("subscriptions.subscription.canceled")] == [
            False
        ]

    def test_cancel_now_asks_first(self, admin_client):
        subscription = SubscriptionFactory()

        response = admin_client.post(
            reverse("admin:subscriptions_subscription_changelist"),
            {"action": "cancel_now", "_selected_action": [str(subscription.id)]},
        )

        assert response.status_code == 200
        assert "Cancel the selected subscriptions now?" in response.text
        assert f"<li>{subscription.id} (active)</li>" in response.text
        after = stored(subscription)
        assert (after.status, after.version) == (SubscriptionStatus.ACTIVE, 1)
        assert outbox_payloads("subscriptions.subscription.canceled") == []

    def test_cancel_at_period_end(self, admin_client):
        subscription = SubscriptionFactory()

        response = run_action(admin_client, "subscription", "cancel_at_end_of_period", [subscription])

        after = stored(subscription)
        assert messages_of(response) == [
            ("success", f"Subscription {subscription.id} will be canceled; its service ends on {after.ends_on}."),
        ]
        assert after.cancel_at_period_end is True
        assert after.status == SubscriptionStatus.ACTIVE
        assert [payload["at_period_end"] for payload in outbox_payloads("subscriptions.subscription.canceled")] == [
            True
        ]

    def test_cancel_of_canceled_is_rejected(self, admin_client):
        subscription = SubscriptionFactory()
        canceled = subscription_cancel(subscription_id=str(subscription.id), at_period_end=False, now=timezone.now())
        events_before = OutboxEvent.objects.using("subscriptions").count()

        response = run_action(admin_client, "subscription", "cancel_at_end_of_period", [subscription])

        assert messages_of(response) == [
            (
                "error",
                f"subscription {subscription.id} is already canceled; its service ended on {canceled.ends_on}",
            ),
        ]
        after = stored(subscription)
        assert (after.version, after.cancel_at_period_end, after.canceled_at) == (2, False, canceled.canceled_at)
        assert OutboxEvent.objects.using("subscriptions").count() == events_before


class TestPlanAdmin:
    def test_deactivate_and_activate(self, admin_client):
        plan = PlanFactory(code="gold")

        deactivated = run_action(admin_client, "plan", "deactivate_plans", [plan])
        inactive = Plan.objects.using("subscriptions").get(id=plan.id).active
        activated = run_action(admin_client, "plan", "activate_plans", [plan])

        assert messages_of(deactivated) == [("success", "Plan gold of acme is inactive.")]
        assert inactive is False
        assert messages_of(activated) == [("success", "Plan gold of acme is active.")]
        assert Plan.objects.using("subscriptions").get(id=plan.id).active is True

    def test_filter_by_active(self, admin_client):
        PlanFactory(code="gold")
        PlanFactory(code="legacy", active=False)

        response = admin_client.get(reverse("admin:subscriptions_plan_changelist"), {"active__exact": "0"})

        assert [plan.code for plan in response.context["cl"].result_list] == ["legacy"]
