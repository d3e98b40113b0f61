import uuid
from datetime import timedelta

import pytest
from django.db import connections, transaction
from django.test.utils import CaptureQueriesContext

from payments.models import Payment
from payments.services import collection_request_check, payment_create, payment_create_many
from payments.tests.factories import REQUESTED_AT, new_id
from payments.tests.support import statements_of

# Committed transactions, so the captured statements are those of production.
pytestmark = pytest.mark.django_db(databases="__all__", transaction=True)


def create(invoice_id: str, idempotency_key: str) -> tuple[Payment, bool]:
    return payment_create(
        tenant_id="tenant-a",
        invoice_id=invoice_id,
        invoice_number="INV-2026-0042",
        customer_id=new_id(),
        amount_minor=2500,
        currency="USD",
        idempotency_key=idempotency_key,
        now=REQUESTED_AT,
        correlation_id=uuid.uuid4(),
    )


class TestPaymentCreate:
    def test_repeated_invoice_returns_existing(self):
        invoice_id = new_id()
        payment, created = create(invoice_id, f"invoice:{invoice_id}:collection")

        again, created_again = create(invoice_id, f"invoice:{invoice_id}:other")

        assert created is True
        assert created_again is False
        assert again.id == payment.id
        assert Payment.objects.using("payments").count() == 1

    def test_repeated_key_returns_existing(self):
        invoice_id = new_id()
        payment, _ = create(invoice_id, "shared-key")

        again, created_again = create(new_id(), "shared-key")

        assert created_again is False
        assert again.id == payment.id
        assert Payment.objects.using("payments").count() == 1


class TestQueryCount:
    def test_new_payment_inserts_only(self):
        # The collection handler calls the service inside its inbox transaction.
        invoice_id = new_id()
        with CaptureQueriesContext(connections["payments"]) as queries, transaction.atomic(using="payments"):
            _, created = create(invoice_id, f"invoice:{invoice_id}:collection")

        assert created is True
        assert statements_of(queries) == ["BEGIN", "INSERT payments_payment", "COMMIT"]

    def test_repeat_reads_existing_after_conflict(self):
        invoice_id = new_id()
        create(invoice_id, f"invoice:{invoice_id}:collection")

        with CaptureQueriesContext(connections["payments"]) as queries, transaction.atomic(using="payments"):
            _, created = create(invoice_id, f"invoice:{invoice_id}:collection")

        assert created is False
        # The insert skips the conflicting row without an error, so no savepoint is needed.
        assert statements_of(queries) == ["BEGIN", "INSERT payments_payment", "SELECT payments_payment", "COMMIT"]

    def test_many_requests_one_insert(self):
        invoice_ids = [new_id() for _ in range(4)]
        create(invoice_ids[0], f"invoice:{invoice_ids[0]}:collection")
        requests = [
            collection_request_check(
                tenant_id="tenant-a", invoice_id=invoice_id, invoice_number="INV-1", customer_id=new_id(),
                amount_minor=2985, currency="USD", idempotency_key=f"invoice:{invoice_id}:collection", now=REQUESTED_AT,
            )
            for invoice_id in [*invoice_ids, invoice_ids[1]]
        ]

        with CaptureQueriesContext(connections["payments"]) as queries, transaction.atomic(using="payments"):
            results = payment_create_many(requests)

        assert statements_of(queries) == ["BEGIN", "INSERT payments_payment", "SELECT payments_payment", "COMMIT"]
        # The first invoice had its payment; the second is named twice in the requests.
        assert [created for _, created in results] == [False, True, True, True, False]
        assert results[4][0].id == results[1][0].id
        assert Payment.objects.using("payments").count() == 4


def test_repeat_names_payment_met_first():
    """A skipped request names the payment that has its key, not one created after it in the same call."""
    first_invoice, second_invoice = new_id(), new_id()
    requests = [
        # Holds "key-a"; its event came two minutes after the others.
        (first_invoice, "key-a", 2),
        # Repeats "key-a" for another invoice, so it is skipped.
        (second_invoice, "key-a", 0),
        # The second invoice under a new key: created.
        (second_invoice, "key-b", 0),
    ]
    checked = [
        collection_request_check(
            tenant_id="tenant-a", invoice_id=invoice_id, invoice_number="INV-2026-0042", customer_id=new_id(),
            amount_minor=2500, currency="USD", idempotency_key=key, now=REQUESTED_AT + timedelta(minutes=minutes),
        )
        for invoice_id, key, minutes in requests
    ]

    (holder, holder_created), (repeat, repeat_created), (last, last_created) = payment_create_many(checked)

    assert (holder_created, repeat_created, last_created) == (True, False, True)
    assert repeat.id == holder.id
    assert last.idempotency_key == "key-b"
