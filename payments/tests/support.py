"""Assertion helpers for payments tests."""

import json

from payments.models import OutboxEvent, PaymentAttempt, SimulatedCharge


def outbox_events() -> list[dict]:
    """Return the payments outbox as envelope dicts, in append order."""
    return [json.loads(row.body) for row in OutboxEvent.objects.using("payments").order_by("id")]


def simulated_charge_count() -> int:
    return SimulatedCharge.objects.using("payments").count()


def attempt_count() -> int:
    return PaymentAttempt.objects.using("payments").count()
