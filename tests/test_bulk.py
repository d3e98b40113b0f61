"""group_by; update_rows and insert_new: many rows of a model written with one statement."""

from datetime import timedelta

import pytest
from django.db import DataError, IntegrityError, connections, transaction
from django.test.utils import CaptureQueriesContext

from billing import bulk
from billing.bulk import group_by, insert_new, update_rows
from payments.models import Payment
from payments.tests.factories import REQUESTED_AT, PaymentFactory

pytestmark = pytest.mark.django_db(databases="__all__")
ALIAS = "payments"


def test_each_row_gets_its_own_values():
    first, second, untouched = PaymentFactory(), PaymentFactory(), PaymentFactory()
    first.status, first.attempt_count, first.succeeded_at = "succeeded", 1, REQUESTED_AT + timedelta(hours=1)
    second.status, second.attempt_count, second.next_attempt_at = "failed", 3, None
    # A field left out of ``fields`` keeps its stored value.
    first.amount_minor = 1

    with CaptureQueriesContext(connections[ALIAS]) as queries:
        update_rows([first, second], ["status", "attempt_count", "succeeded_at", "next_attempt_at"], using=ALIAS)

    assert len(queries) == 1
    rows = {payment.id: payment for payment in Payment.objects.using(ALIAS).all()}
    assert (rows[first.id].status, rows[first.id].attempt_count) == ("succeeded", 1)
    assert rows[first.id].succeeded_at == REQUESTED_AT + timedelta(hours=1)
    assert rows[first.id].amount_minor == 2500
    assert (rows[second.id].status, rows[second.id].attempt_count) == ("failed", 3)
    assert rows[second.id].next_attempt_at is None
    assert rows[second.id].succeeded_at is None
    assert rows[untouched.id].status == "pending"
    assert rows[untouched.id].next_attempt_at == REQUESTED_AT


def test_no_objects_no_statement():
    with CaptureQueriesContext(connections[ALIAS]) as queries:
        update_rows([], ["status"], using=ALIAS)

    assert len(queries) == 0


def test_group_by_keeps_order():
    words = ["bb", "a", "cc", "d", "eee"]

    groups = group_by(words, len)

    assert groups == [(2, ["bb", "cc"]), (1, ["a", "d"]), (3, ["eee"])]


def test_too_long_value_rejected_not_cut():
    payment = PaymentFactory()
    payment.currency = "USDX"

    with pytest.raises(DataError), transaction.atomic(using=ALIAS):
        update_rows([payment], ["currency"], using=ALIAS)

    assert Payment.objects.using(ALIAS).get(id=payment.id).currency == "USD"


def unsaved_payments(count: int) -> list[Payment]:
    return [PaymentFactory.build() for _ in range(count)]


def test_insert_new_reports_rows_inserted():
    stored = PaymentFactory()
    clash = PaymentFactory.build(invoice_id=stored.invoice_id)
    new = unsaved_payments(2)

    with CaptureQueriesContext(connections[ALIAS]) as queries:
        inserted = insert_new([new[0], clash, new[1]], using=ALIAS)

    assert len(queries) == 1
    assert inserted == {new[0].id, new[1].id}
    assert set(Payment.objects.using(ALIAS).values_list("id", flat=True)) == {stored.id, new[0].id, new[1].id}
    assert [payment._state.adding for payment in (new[0], clash, new[1])] == [False, True, False]


def test_insert_new_conflict_only_on_named_constraint():
    stored = PaymentFactory()
    clash = PaymentFactory.build(idempotency_key=stored.idempotency_key)

    # The key's unique index is not the one named, so its conflict is an error.
    with pytest.raises(IntegrityError), transaction.atomic(using=ALIAS):
        insert_new([clash], using=ALIAS, unique_fields=["invoice_id"])

    assert insert_new([clash], using=ALIAS, unique_fields=["idempotency_key"]) == set()


def test_insert_new_in_batches(monkeypatch):
    monkeypatch.setattr(bulk, "INSERT_BATCH_SIZE", 2)
    payments = unsaved_payments(5)

    with CaptureQueriesContext(connections[ALIAS]) as queries:
        inserted = insert_new(payments, using=ALIAS)

    assert len(queries) == 3
    assert inserted == {payment.id for payment in payments}


def test_insert_new_needs_primary_keys():
    payment = PaymentFactory.build()
    payment.id = None

    with pytest.raises(ValueError, match="primary key of every Payment"):
        insert_new([payment], using=ALIAS)
