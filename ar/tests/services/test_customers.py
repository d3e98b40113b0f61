import uuid
from datetime import timedelta

import pytest

from ar.errors import CustomerNotFound, InvalidCredit, InvalidCustomer
from ar.models import CollectionMethod, CreditReason, Customer, CustomerCreditEntry
from ar.services import customer_credit_grant, customer_upsert
from ar.tests.factories import NOW, CustomerFactory
from ar.tests.support import row_counts

pytestmark = pytest.mark.django_db(databases="__all__")

VALID = {
    "tenant_id": "acme",
    "external_id": "crm-42",
    "name": "Ada Lovelace",
    "email": "ada@example.com",
    "currency": "EUR",
    "collection_method": "send_invoice",
    "payment_terms_days": 14,
}


class TestCustomerUpsert:
    def test_first_call_creates(self):
        customer, created = customer_upsert(**VALID, now=NOW)

        assert created is True
        stored = Customer.objects.using("ar").get(id=customer.id)
        assert (stored.tenant_id, stored.external_id, stored.name, stored.email) == (
            "acme", "crm-42", "Ada Lovelace", "ada@example.com",
        )
        assert stored.currency == "EUR"
        assert stored.collection_method == CollectionMethod.SEND_INVOICE
        assert stored.payment_terms_days == 14
        assert stored.created_at == NOW
        assert stored.updated_at == NOW

    def test_defaults_to_automatic_collection(self):
        customer, _ = customer_upsert(
            tenant_id="acme", external_id="crm-1", name="Bob", email="bob@example.com", currency="USD", now=NOW
        )

        assert customer.collection_method == CollectionMethod.CHARGE_AUTOMATICALLY
        assert customer.payment_terms_days == 0

    def test_second_call_updates_same_customer(self):
        first, _ = customer_upsert(**VALID, now=NOW)
        later = NOW + timedelta(days=1)

        second, created = customer_upsert(
            **{**VALID, "name": "  Ada King  ", "email": "ada.king@example.com", "payment_terms_days": 30},
            now=later,
        )

        assert created is False
        assert second.id == first.id
        stored = Customer.objects.using("ar").get(id=first.id)
        assert stored.name == "Ada King"
        assert stored.email == "ada.king@example.com"
        assert stored.payment_terms_days == 30
        assert stored.created_at == NOW
        assert stored.updated_at == later
        assert Customer.objects.using("ar").count() == 1

    def test_same_external_id_in_two_tenants(self):
        acme, _ = customer_upsert(**VALID, now=NOW)
        beta, created = customer_upsert(**{**VALID, "tenant_id": "beta"}, now=NOW)

        assert created is True
        assert acme.id != beta.id

    @pytest.mark.parametrize(
        ("change", "message"),
        [
            ({"tenant_id": ""}, "tenant id '' is invalid; use 1 to 63 lower-case letters, digits and hyphens"),
            ({"external_id": "  "}, "external id is missing; give 1 to 200 characters"),
            ({"name": ""}, "customer name is missing; give 1 to 200 characters"),
            ({"name": "n" * 201}, "customer name is 201 characters long; the maximum is 200"),
            (
                {"email": "ada-at-example.com"},
                "customer email 'ada-at-example.com' is not a valid email address; "
                "use a form such as 'billing@example.com'",
            ),
            ({"currency": "ZZZ"}, "currency 'ZZZ' is not a known ISO 4217 currency"),
            (
                {"collection_method": "invoice"},
                "collection method 'invoice' is invalid; use one of 'charge_automatically', 'send_invoice'",
            ),
            (
                {"payment_terms_days": -1},
                "payment terms of -1 days are invalid; use a whole number of days from 0 to 365",
            ),
            (
                {"payment_terms_days": 366},
                "payment terms of 366 days are invalid; use a whole number of days from 0 to 365",
            ),
        ],
        ids=["tenant", "external-id", "name", "long-name", "email", "currency", "method", "negative-terms", "long-terms"],
    )
    def test_invalid_field_is_rejected_and_nothing_written(self, change, message):
        existing, _ = customer_upsert(**VALID, now=NOW)
        counts = row_counts()

        with pytest.raises(InvalidCustomer) as raised:
            customer_upsert(**{**VALID, **change}, now=NOW + timedelta(days=1))

        assert str(raised.value) == message
        assert raised.value.code == "invalid_customer"
        assert row_counts() == counts
        assert Customer.objects.using("ar").get(id=existing.id).updated_at == NOW


class TestCustomerCreditGrant:
    def test_grant_adds_to_balance(self):
        customer = CustomerFactory()

        entry = customer_credit_grant(
            customer_id=str(customer.id), currency="USD", amount_minor=2500, note="Outage in March", now=NOW
        )

        assert entry.reason == CreditReason.GRANTED
        assert entry.note == "Outage in March"
        assert CustomerCreditEntry.objects.using("ar").filter(customer=customer).balances() == {"USD": 2500}

    def test_entries_are_never_changed(self):
        entry = customer_credit_grant(
            customer_id=str(CustomerFactory().id), currency="USD", amount_minor=1, note="x", now=NOW
        )
        entry.amount_minor = 2

        with pytest.raises(TypeError, match="customer credit entries are never changed"):
            entry.save()

        assert CustomerCreditEntry.objects.using("ar").get(id=entry.id).amount_minor == 1

    @pytest.mark.parametrize(
        ("change", "message"),
        [
            ({"amount_minor": 0}, "credit amount 0 is invalid; use a positive whole number of minor units"),
            ({"currency": "US"}, "currency 'US' is not an ISO 4217 code; use three capital letters such as 'USD'"),
            ({"note": ""}, "credit note is missing; give 1 to 500 characters"),
            ({"customer_id": "cus"}, "customer id 'cus' is not a UUID; pass the id as a UUID string"),
        ],
        ids=["zero", "currency", "note", "customer-id"],
    )
    def test_invalid_grant_is_rejected(self, change, message):
        customer = CustomerFactory()
        arguments = {
            "customer_id": str(customer.id), "currency": "USD", "amount_minor": 100, "note": "goodwill", **change,
        }

        with pytest.raises(InvalidCredit) as raised:
            customer_credit_grant(**arguments, now=NOW)

        assert str(raised.value) == message
        assert not CustomerCreditEntry.objects.using("ar").exists()

    def test_unknown_customer_is_named(self):
        missing = str(uuid.uuid4())

        with pytest.raises(CustomerNotFound) as raised:
            customer_credit_grant(customer_id=missing, currency="USD", amount_minor=100, note="x", now=NOW)

        assert str(raised.value) == (
            f"customer {missing!r} not found; create the customer first, for example with "
            "POST /api/v1/customers, and use the id it returns"
        )
        assert not CustomerCreditEntry.objects.using("ar").exists()
