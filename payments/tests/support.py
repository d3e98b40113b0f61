"""Assertion helpers for payments tests."""

import json
import re

from django.test.utils import CaptureQueriesContext

from payments.models import OutboxEvent, PaymentAttempt, SimulatedCharge


def outbox_events() -> list[dict]:
    """Return the payments outbox as envelope dicts, in append order."""
    return [json.loads(row.body) for row in OutboxEvent.objects.using("payments").order_by("id")]


def simulated_charge_count() -> int:
    return SimulatedCharge.objects.using("payments").count()


def attempt_count() -> int:
    return PaymentAttempt.objects.using("payments").count()


def statements_of(queries: CaptureQueriesContext) -> list[str]:
    """Return each captured statement's first word and its table, such as 'INSERT payments_payment'."""
    kinds = []
    for query in queries.captured_queries:
        sql = query["sql"]
        table = re.search(r'(?:FROM|INTO|UPDATE) "(\w+)"', sql)
        kinds.append(f"{sql.split()[0]} {table.group(1)}" if table else sql.split()[0])
    return kinds
