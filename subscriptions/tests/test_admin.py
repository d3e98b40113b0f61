from datetime import date

import pytest
from django.contrib.auth import get_user_model
from django.urls import reverse

from subscriptions.services import bill_run_execute
from subscriptions.tests.factories import SubscriptionFactory
from subscriptions.tests.support import morning_of

pytestmark = pytest.mark.django_db(databases="__all__")

MODELS = ["plan", "subscription", "billingperiod", "billrun", "subscriptioninvoice"]


@pytest.fixture
def admin_client(client):
    user = get_user_model().objects.create_superuser("admin", "admin@example.com", "secret-password")
    client.force_login(user)
    return client


@pytest.fixture
def billed_subscription():
    subscription = SubscriptionFactory(start_date=date(2026, 1, 1))
    bill_run_execute(as_of=date(2026, 1, 1), now=morning_of(date(2026, 1, 1)))
    return subscription


class TestReadOnlyAdmin:
    @pytest.mark.parametrize("model", MODELS)
    def test_changelist_lists_rows(self, admin_client, billed_subscription, model):
        response = admin_client.get(reverse(f"admin:subscriptions_{model}_changelist"))

        assert response.status_code == 200

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
