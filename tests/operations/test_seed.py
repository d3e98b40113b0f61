from datetime import UTC, date, datetime

import pytest

from ar.selectors import customer_contact, customer_id_for_external_id
from billing.operations.seed import demo_seed
from payments.selectors import payment_methods_for_customer
from subscriptions.selectors import subscription_counts_by_status, subscription_list_for_customer
from subscriptions.services import bill_run_execute

pytestmark = pytest.mark.django_db(databases="__all__")
AS_OF = date(2026, 3, 31)
NOW = datetime(2026, 3, 31, 9, 0, tzinfo=UTC)


def seed(**overrides):
    arguments = {"tenant_count": 3, "customers_per_tenant": 6, "seed": 7, "as_of": AS_OF, "now": NOW}
    return demo_seed(**{**arguments, **overrides})


class TestDemoSeed:
    def test_creates_tenants_customers_and_subscriptions(self):
        summary = seed()

        assert (summary.tenants, summary.plans) == (3, 12)
        assert (summary.customers_created, summary.customers_updated) == (18, 0)
        assert (summary.subscriptions_created, summary.subscriptions_kept) == (18, 0)
        for tenant_id, currency in (("demo-1", "USD"), ("demo-2", "EUR"), ("demo-3", "JPY")):
            assert subscription_counts_by_status(tenant_id=tenant_id)["active"] == 6
            customer_id = customer_id_for_external_id(tenant_id=tenant_id, external_id="cust-00001")
            contact = customer_contact(customer_id=customer_id)
            assert contact.currency == currency
            assert contact.email.endswith("@example.com")
            (subscription,) = subscription_list_for_customer(tenant_id=tenant_id, customer_id=customer_id)
            assert AS_OF.replace(day=4) <= subscription.started_on <= AS_OF

    def test_payment_methods_use_test_tokens(self):
        summary = seed()

        tokens, method_count = set(), 0
        for tenant_number in (1, 2, 3):
            for number in range(1, 7):
                customer_id = customer_id_for_external_id(
                    tenant_id=f"demo-{tenant_number}", external_id=f"cust-{number:05d}"
                )
                methods = payment_methods_for_customer(customer_id=customer_id)
                collection = customer_contact(customer_id=customer_id).collection_method
                assert len(methods) == (1 if collection == "charge_automatically" else 0)
                tokens.update(method.token for method in methods)
                method_count += len(methods)
        assert summary.payment_methods == method_count
        assert tokens <= {
            "tok_success", "tok_insufficient_then_success", "tok_insufficient_funds",
            "tok_processing_error", "tok_decline",
        }

    def test_same_seed_gives_same_data(self):
        seed()
        customer_id = customer_id_for_external_id(tenant_id="demo-1", external_id="cust-00004")
        first = customer_contact(customer_id=customer_id)

        summary = seed()

        assert customer_contact(customer_id=customer_id) == first
        assert (summary.customers_created, summary.customers_updated) == (0, 18)
        assert (summary.subscriptions_created, summary.subscriptions_kept) == (0, 18)
        assert subscription_counts_by_status(tenant_id="demo-1")["active"] == 6

    def test_seeding_again_keeps_billed_subscriptions(self):
        seed(tenant_count=1)
        bill_run_execute(as_of=AS_OF, now=NOW)

        summary = seed(tenant_count=1, as_of=date(2026, 4, 20))

        assert summary.subscriptions_kept == 6
        assert subscription_counts_by_status(tenant_id="demo-1")["active"] == 6

    def test_counts_must_be_positive(self):
        with pytest.raises(ValueError) as raised:
            seed(customers_per_tenant=0)

        assert str(raised.value) == "tenant_count 3 and customers_per_tenant 0 must be at least 1"
        assert sum(subscription_counts_by_status().values()) == 0
