"""group_by, and update_rows: each object's own values written with one statement."""

from datetime import timedelta

import pytest
from django.db import DataError, connections, transaction
from django.test.utils import CaptureQueriesContext

from billing.bulk import group_by, update_rows
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
