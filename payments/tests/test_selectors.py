import pytest

from payments.selectors import (
    payment_attempts,
    payment_counts_by_status,
    payment_for_invoice,
    payment_method_queryset,
    payment_methods_for_customer,
    payment_queryset,
    successful_charge_totals,
)
from payments.tests.factories import PaymentFactory, PaymentMethodFactory, new_id

pytestmark = pytest.mark.django_db(databases="__all__")


class TestPaymentCountsByStatus:
    def test_every_status_counted(self):
        PaymentFactory(status="succeeded")
        PaymentFactory(status="succeeded")
        PaymentFactory(status="failed")
        PaymentFactory(tenant_id="tenant-b", status="pending")

        counts = payment_counts_by_status()

        assert counts == {"pending": 1, "processing": 0, "retry_scheduled": 0, "succeeded": 2, "failed": 1}

    def test_tenant_filter(self):
        PaymentFactory(status="succeeded")
        PaymentFactory(tenant_id="tenant-b", status="pending")

        counts = payment_counts_by_status(tenant_id="tenant-b")

        assert counts == {"pending": 1, "processing": 0, "retry_scheduled": 0, "succeeded": 0, "failed": 0}

    def test_no_payments_gives_zeros(self):
        assert set(payment_counts_by_status().values()) == {0}


class TestSuccessfulChargeTotals:
    def test_sums_succeeded_per_currency(self):
        PaymentFactory(status="succeeded", amount_minor=2500, currency="USD")
        PaymentFactory(status="succeeded", amount_minor=1000, currency="USD")
        PaymentFactory(status="succeeded", amount_minor=500, currency="JPY")
        PaymentFactory(status="failed", amount_minor=9900, currency="USD")
        PaymentFactory(status="retry_scheduled", amount_minor=9900, currency="EUR")

        assert successful_charge_totals() == {"JPY": 500, "USD": 3500}

    def test_tenant_filter(self):
        PaymentFactory(status="succeeded", amount_minor=2500, currency="USD")
        PaymentFactory(tenant_id="tenant-b", status="succeeded", amount_minor=700, currency="USD")

        assert successful_charge_totals(tenant_id="tenant-b") == {"USD": 700}

    def test_no_successes_gives_empty_dict(self):
        PaymentFactory(status="failed")

        assert successful_charge_totals() == {}


class TestLookups:
    def test_payment_for_invoice(self):
        payment = PaymentFactory()

        assert payment_for_invoice(invoice_id=payment.invoice_id) == payment
        assert payment_for_invoice(invoice_id=new_id()) is None

    def test_payment_attempts_empty_before_charge(self):
        assert payment_attempts(payment_id=str(PaymentFactory().id)) == []

    def test_methods_default_first(self):
        customer_id = new_id()
        other = PaymentMethodFactory(customer_id=customer_id, token="tok_decline", is_default=False)
        default = PaymentMethodFactory(customer_id=customer_id, token="tok_success", is_default=True)

        assert payment_methods_for_customer(customer_id=customer_id) == [default, other]


class TestTenantQuerysets:
    def test_each_returns_only_the_tenants_rows(self):
        customer_id = new_id()
        payment = PaymentFactory(tenant_id="tenant-a")
        PaymentFactory(tenant_id="tenant-b")
        method = PaymentMethodFactory(tenant_id="tenant-a", customer_id=customer_id)
        PaymentMethodFactory(tenant_id="tenant-a")

        assert list(payment_queryset(tenant_id="tenant-a")) == [payment]
        assert list(payment_method_queryset(tenant_id="tenant-a", customer_id=customer_id)) == [method]
        assert list(payment_method_queryset(tenant_id="tenant-b", customer_id=customer_id)) == []
