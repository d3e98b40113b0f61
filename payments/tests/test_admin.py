import pytest
from django.urls import reverse

from payments.models import PaymentAttempt, PaymentMethod
from payments.tests.factories import (
    REQUESTED_AT,
    TENANT_ID,
    PaymentFactory,
    PaymentMethodFactory,
    new_id,
)

pytestmark = pytest.mark.django_db(databases="__all__")


class TestPaymentAdmin:
    def test_changelist_shows_major_units(self, admin_client):
        PaymentFactory(amount_minor=2985, currency="USD")
        PaymentFactory(amount_minor=500, currency="JPY")

        response = admin_client.get(reverse("admin:payments_payment_changelist"))

        assert response.status_code == 200
        assert "29.85 USD" in response.text
        assert "500 JPY" in response.text

    def test_change_page_is_read_only_with_attempts(self, admin_client):
        payment = PaymentFactory(amount_minor=2985)
        PaymentAttempt.objects.using("payments").create(
            payment=payment, number=1, status="failed", idempotency_key="key:attempt-1",
            failure_code="insufficient_funds", retryable=True, started_at=REQUESTED_AT, finished_at=REQUESTED_AT,
        )

        response = admin_client.get(reverse("admin:payments_payment_change", args=[payment.id]))

        assert response.status_code == 200
        assert "29.85 USD" in response.text
        assert "insufficient_funds" in response.text
        assert 'name="status"' not in response.text
        assert 'name="amount_minor"' not in response.text

    def test_payments_cannot_be_added(self, admin_client):
        response = admin_client.get(reverse("admin:payments_payment_add"))

        assert response.status_code == 403


class TestPaymentMethodAdmin:
    def test_add_moves_default(self, admin_client, tenant):
        old = PaymentMethodFactory(token="tok_decline", is_default=True)

        response = admin_client.post(
            reverse("admin:payments_paymentmethod_add"),
            {"tenant_id": TENANT_ID, "customer_id": old.customer_id, "token": "tok_success", "kind": "card",
             "make_default": "on"},
        )

        assert response.status_code == 302
        defaults = PaymentMethod.objects.using("payments").filter(customer_id=old.customer_id, is_default=True)
        assert list(defaults.values_list("token", flat=True)) == ["tok_success"]

    def test_invalid_token_shows_form_error(self, admin_client, tenant):
        response = admin_client.post(
            reverse("admin:payments_paymentmethod_add"),
            {"tenant_id": TENANT_ID, "customer_id": new_id(), "token": "tok success", "kind": "card"},
        )

        assert response.status_code == 200
        assert "token contains whitespace; pass the gateway&#x27;s token exactly as issued" in response.text
        assert PaymentMethod.objects.using("payments").count() == 0

    def test_change_updates_kind(self, admin_client, tenant):
        method = PaymentMethodFactory(kind="card")

        response = admin_client.post(
            reverse("admin:payments_paymentmethod_change", args=[method.id]),
            {"kind": "bank_debit", "make_default": "on"},
        )

        assert response.status_code == 302
        method.refresh_from_db()
        assert method.kind == "bank_debit"
        assert method.is_default is True


class TestPaymentAdminLists:
    @pytest.mark.parametrize(
        ("query", "expected"),
        [
            ({"status__exact": "failed"}, ["INV-FAILED"]),
            ({"status__exact": "pending"}, ["INV-PENDING"]),
            ({"tenant_id": "tenant-b"}, ["INV-FAILED"]),
            ({"q": "INV-PEND"}, ["INV-PENDING"]),
        ],
    )
    def test_filters_and_search(self, admin_client, query, expected):
        PaymentFactory(invoice_number="INV-PENDING")
        PaymentFactory(invoice_number="INV-FAILED", status="failed", tenant_id="tenant-b", next_attempt_at=None,
                       failed_at=REQUESTED_AT)

        response = admin_client.get(reverse("admin:payments_payment_changelist"), query)

        assert response.status_code == 200
        assert [payment.invoice_number for payment in response.context["cl"].result_list] == expected

    def test_search_by_customer_id(self, admin_client):
        wanted = PaymentFactory()
        PaymentFactory()

        response = admin_client.get(reverse("admin:payments_payment_changelist"), {"q": wanted.customer_id})

        assert [payment.id for payment in response.context["cl"].result_list] == [wanted.id]

    def test_change_and_delete_are_rejected(self, admin_client):
        payment = PaymentFactory(amount_minor=2985)

        changed = admin_client.post(
            reverse("admin:payments_payment_change", args=[payment.id]), {"status": "succeeded"}
        )
        deleted = admin_client.post(reverse("admin:payments_payment_delete", args=[payment.id]), {"post": "yes"})

        assert changed.status_code == 403
        assert deleted.status_code == 403
        payment.refresh_from_db()
        assert (payment.status, payment.amount_minor) == ("pending", 2985)


class TestPaymentMethodAdminLists:
    def test_changelist_and_change_page_render(self, admin_client):
        method = PaymentMethodFactory(token="tok_visa_4242")

        listed = admin_client.get(reverse("admin:payments_paymentmethod_changelist"))
        shown = admin_client.get(reverse("admin:payments_paymentmethod_change", args=[method.id]))

        assert listed.status_code == 200
        assert "tok_visa_4242" in listed.text
        assert shown.status_code == 200
        # A stored method keeps its customer and token.
        assert 'name="token"' not in shown.text
        assert 'name="customer_id"' not in shown.text

    def test_filter_and_search(self, admin_client):
        card = PaymentMethodFactory(token="tok_card", kind="card")
        PaymentMethodFactory(token="tok_bank", kind="bank_debit")

        filtered = admin_client.get(reverse("admin:payments_paymentmethod_changelist"), {"kind__exact": "card"})
        searched = admin_client.get(reverse("admin:payments_paymentmethod_changelist"), {"q": card.customer_id})

        assert [method.token for method in filtered.context["cl"].result_list] == ["tok_card"]
        assert [method.token for method in searched.context["cl"].result_list] == ["tok_card"]
