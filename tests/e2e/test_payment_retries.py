"""Declines across every module: a retry that recovers, and a schedule that runs out.

The flow runs on PostgreSQL with the in-process bus; the clock moves by
passing later `as_of` times to the retry runner, never by sleeping.
"""

import json
from datetime import UTC, date, datetime, timedelta

import pytest
from django.core import mail

from billing.operations.settle import outboxes_drain
from tests.e2e.test_lost_event_scenario import create_customer_with_subscription

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True, databases="__all__")]

AS_OF = date(2026, 3, 1)
BILLED_AT = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)


@pytest.fixture(autouse=True)
def inprocess_bus(settings):
    from eventbus.backends import reset_bus

    settings.EVENTBUS = {**settings.EVENTBUS, "BACKEND": "inprocess"}
    reset_bus()
    yield
    reset_bus()


def bill_and_drain() -> None:
    from subscriptions.services import bill_run_execute

    assert bill_run_execute(as_of=AS_OF, now=BILLED_AT).periods_billed == 1
    outboxes_drain()


def failed_events() -> list[dict]:
    from payments.models import OutboxEvent

    rows = OutboxEvent.objects.filter(event_type="payments.payment.failed").order_by("id")
    return [json.loads(row.body)["payload"] for row in rows]


def templates_sent() -> list[str]:
    from notifications.models import Notification

    return list(Notification.objects.filter(status="sent").values_list("template", flat=True))


class TestDeclineRecovers:
    def test_retry_after_one_day_pays_invoice(self):
        from ar.models import Invoice
        from payments.services import payments_retry_due
        from subscriptions.models import Subscription

        customer_id = create_customer_with_subscription(token="tok_insufficient_then_success")
        bill_and_drain()

        invoice = Invoice.objects.get(customer_id=customer_id)
        assert invoice.status == "open"
        (failure,) = failed_events()
        assert failure["retryable"] is True
        assert failure["final"] is False
        assert failure["next_attempt_at"] == "2026-03-02T09:00:00Z"

        early = payments_retry_due(as_of=BILLED_AT + timedelta(hours=23))
        assert early.attempted == 0

        payments_retry_due(as_of=BILLED_AT + timedelta(days=1))
        outboxes_drain()

        invoice.refresh_from_db()
        assert invoice.status == "paid"
        assert invoice.amount_paid_minor == 4900
        assert Subscription.objects.get(customer_id=customer_id).status == "active"
        assert sorted(templates_sent()) == ["invoice_finalized", "payment_failed", "payment_receipt"]
        assert all(message.to == ["ada@example.com"] for message in mail.outbox)


class TestScheduleExhausted:
    def test_final_failure_marks_invoice_uncollectible(self):
        from ar.models import Invoice
        from payments.services import payments_retry_due
        from subscriptions.models import Subscription

        customer_id = create_customer_with_subscription(token="tok_insufficient_funds")
        bill_and_drain()

        for days in (1, 3, 5):
            payments_retry_due(as_of=BILLED_AT + timedelta(days=days))
            outboxes_drain()

        failures = failed_events()
        assert [failure["next_attempt_at"] for failure in failures] == [
            "2026-03-02T09:00:00Z", "2026-03-04T09:00:00Z", "2026-03-06T09:00:00Z", None,
        ]
        assert [failure["final"] for failure in failures] == [False, False, False, True]
        invoice = Invoice.objects.get(customer_id=customer_id)
        assert invoice.status == "uncollectible"
        assert Subscription.objects.get(customer_id=customer_id).status == "past_due"
        assert templates_sent().count("payment_failed") == 4
        assert payments_retry_due(as_of=BILLED_AT + timedelta(days=30)).attempted == 0

    def test_hard_decline_is_final_at_once(self):
        from ar.models import Invoice

        customer_id = create_customer_with_subscription(token="tok_decline")
        bill_and_drain()

        (failure,) = failed_events()
        assert failure["retryable"] is False
        assert failure["final"] is True
        assert Invoice.objects.get(customer_id=customer_id).status == "uncollectible"
