"""Reads and clocks shared by the subscriptions tests."""

import json
from datetime import UTC, date, datetime, time

from subscriptions.models import BillingPeriod, OutboxEvent

ALIAS = "subscriptions"


def morning_of(day: date) -> datetime:
    """Return 06:00 UTC on ``day``, the clock of a bill run or a change made that day."""
    return datetime.combine(day, time(6, 0), tzinfo=UTC)


def billed_periods(subscription) -> list[tuple[date, date]]:
    """Return the subscription's billed periods as (start, end) pairs in date order."""
    return list(
        BillingPeriod.objects.using(ALIAS)
        .filter(subscription_id=subscription.id)
        .order_by("period_start")
        .values_list("period_start", "period_end")
    )


def outbox_envelopes(event_type: str) -> list[dict]:
    """Return the envelopes of ``event_type`` in the outbox, in append order."""
    rows = OutboxEvent.objects.using(ALIAS).filter(event_type=event_type).order_by("id")
    return [json.loads(row.body) for row in rows]


def outbox_payloads(event_type: str) -> list[dict]:
    return [envelope["payload"] for envelope in outbox_envelopes(event_type)]
