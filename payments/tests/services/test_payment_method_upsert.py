from datetime import timedelta

import pytest

from payments.errors import InvalidPaymentMethod
from payments.models import PaymentMethod
from payments.services import payment_method_upsert
from payments.tests.factories import (
    REQUESTED_AT,
    TENANT_ID,
    PaymentMethodFactory,
    TenantFactory,
    new_id,
)

pytestmark = pytest.mark.django_db(databases="__all__")

NOW = REQUESTED_AT


def methods(customer_id: str) -> list[tuple[str, bool]]:
    return list(
        PaymentMethod.objects.using("payments")
        .filter(customer_id=customer_id)
        .order_by("created_at", "token")
        .values_list("token", "is_default")
    )


class TestPaymentMethodUpsert:
    def test_first_method_becomes_default(self, tenant):
        customer_id = new_id()

        method, created = payment_method_upsert(
            tenant_id=TENANT_ID, customer_id=customer_id, token="tok_success", kind="card", now=NOW
        )

        assert created is True
        assert method.is_default is True
        assert method.kind == "card"
        assert method.created_at == NOW
        assert methods(customer_id) == [("tok_success", True)]

    def test_new_default_replaces_old_one(self, tenant):
        customer_id = new_id()
        payment_method_upsert(tenant_id=TENANT_ID, customer_id=customer_id, token="tok_decline", kind="card", now=NOW)

        payment_method_upsert(
            tenant_id=TENANT_ID, customer_id=customer_id, token="tok_success", kind="bank_debit",
            now=NOW + timedelta(minutes=1),
        )

        assert methods(customer_id) == [("tok_decline", False), ("tok_success", True)]

    def test_without_make_default_keeps_default(self, tenant):
        customer_id = new_id()
        payment_method_upsert(tenant_id=TENANT_ID, customer_id=customer_id, token="tok_success", kind="card", now=NOW)

        payment_method_upsert(
            tenant_id=TENANT_ID, customer_id=customer_id, token="tok_decline", kind="card",
            make_default=False, now=NOW + timedelta(minutes=1),
        )

        assert methods(customer_id) == [("tok_success", True), ("tok_decline", False)]

    def test_without_make_default_first_method_is_default(self, tenant):
        customer_id = new_id()

        method, _ = payment_method_upsert(
            tenant_id=TENANT_ID, customer_id=customer_id, token="tok_success", kind="card",
            make_default=False, now=NOW,
        )

        assert method.is_default is True

    def test_stored_token_is_updated(self, tenant):
        customer_id = new_id()
        first, _ = payment_method_upsert(
            tenant_id=TENANT_ID, customer_id=customer_id, token="tok_success", kind="card", now=NOW
        )
        later = NOW + timedelta(hours=1)

        second, created = payment_method_upsert(
            tenant_id=TENANT_ID, customer_id=customer_id, token="tok_success", kind="bank_debit", now=later
        )

        assert created is False
        assert second.id == first.id
        assert second.kind == "bank_debit"
        assert second.updated_at == later
        assert PaymentMethod.objects.using("payments").count() == 1

    def test_old_default_made_default_again(self, tenant):
        customer_id = new_id()
        payment_method_upsert(tenant_id=TENANT_ID, customer_id=customer_id, token="tok_success", kind="card", now=NOW)
        payment_method_upsert(tenant_id=TENANT_ID, customer_id=customer_id, token="tok_decline", kind="card", now=NOW)

        payment_method_upsert(tenant_id=TENANT_ID, customer_id=customer_id, token="tok_success", kind="card", now=NOW)

        assert methods(customer_id) == [("tok_decline", False), ("tok_success", True)]

    @pytest.mark.parametrize(
        ("changes", "message"),
        [
            (
                {"tenant_id": "Tenant A"},
                "tenant_id 'Tenant A' is invalid; use 1 to 63 lower-case letters, digits and hyphens",
            ),
            (
                {"tenant_id": "tenant-missing"},
                "tenant 'tenant-missing' does not exist; create it before adding payment methods",
            ),
            ({"customer_id": "cus_42"}, "customer_id 'cus_42' is not a UUID; pass the id as a UUID string"),
            ({"token": ""}, "token '' is missing; pass a non-empty string"),
            ({"token": "tok success"}, "token contains whitespace; pass the gateway's token exactly as issued"),
            ({"token": "t" * 256}, "token is 256 characters long; the maximum is 255"),
            ({"kind": "paypal"}, "kind 'paypal' is invalid; use one of card, bank_debit"),
        ],
    )
    def test_invalid_input_rejected(self, tenant, changes, message):
        arguments = {
            "tenant_id": TENANT_ID, "customer_id": new_id(), "token": "tok_success", "kind": "card", "now": NOW,
            **changes,
        }

        with pytest.raises(InvalidPaymentMethod) as raised:
            payment_method_upsert(**arguments)

        assert str(raised.value) == message
        assert raised.value.code == "invalid_payment_method"
        assert PaymentMethod.objects.using("payments").count() == 0

    def test_customer_of_other_tenant_rejected(self, tenant):
        TenantFactory(id="tenant-b")
        stored = PaymentMethodFactory(tenant_id="tenant-b")

        with pytest.raises(InvalidPaymentMethod) as raised:
            payment_method_upsert(
                tenant_id=TENANT_ID, customer_id=stored.customer_id, token="tok_decline", kind="card", now=NOW
            )

        assert str(raised.value) == (
            f"customer {stored.customer_id} belongs to tenant 'tenant-b', not 'tenant-a'; "
            "pass the customer's own tenant"
        )
        assert methods(stored.customer_id) == [("tok_success", True)]

    def test_naive_now_rejected(self, tenant):
        with pytest.raises(ValueError) as raised:
            payment_method_upsert(
                tenant_id=TENANT_ID, customer_id=new_id(), token="tok_success", kind="card",
                now=NOW.replace(tzinfo=None),
            )

        assert str(raised.value) == (
            "now=datetime.datetime(2026, 3, 1, 9, 0) must be an aware datetime; pass one in UTC"
        )
        assert PaymentMethod.objects.using("payments").count() == 0
