"""Seed N subscriptions quickly for the bill run benchmarks; call after django.setup().

The tenant and the plan go through their services (``tenant_ensure``,
``plan_upsert``). Customers, payment methods and subscriptions are written
with ``bulk_create`` in chunks, each module on its own alias, with the field
values the services would set (``subscription_upsert_imported`` for a plan
without a trial: active, anchored on its start date). The service path runs
several queries per row and appends one ``subscriptions.subscription.created``
event per subscription. This seed writes no events, so the bill run's events
are the only ones in the outboxes.

One customer in ``DECLINE_EVERY`` pays with the simulated gateway's
``tok_insufficient_funds`` token, so its payment ends in retry; the others
use ``tok_success``.
"""

import uuid
from datetime import date, datetime

TENANT_ID = "bench"
PLAN_CODE = "bench-monthly"
PLAN_AMOUNT_MINOR = 900
CURRENCY = "USD"
# One customer in this many has a card the gateway declines (retryable).
DECLINE_EVERY = 10
# Rows per bulk insert: large enough to amortise round trips, small enough
# to keep the seeding process's memory flat as N grows.
CHUNK = 5000


def bench_seed(*, count: int, as_of: date, now: datetime) -> None:
    """Create ``count`` active monthly subscriptions starting on ``as_of``, each with its own customer."""
    from django.db import transaction

    from ar.models import CollectionMethod, Customer
    from billing.tenancy.services import tenant_ensure
    from payments.models import PaymentMethod, PaymentMethodKind
    from subscriptions.models import Subscription, SubscriptionStatus
    from subscriptions.periods import period_on
    from subscriptions.services import plan_upsert

    tenant_ensure(tenant_id=TENANT_ID, name="Benchmark tenant", now=now)
    plan, _ = plan_upsert(
        tenant_id=TENANT_ID, code=PLAN_CODE, name="Benchmark monthly", amount_minor=PLAN_AMOUNT_MINOR,
        currency=CURRENCY, interval="month", now=now,
    )
    first = period_on(as_of, plan.interval, plan.interval_count, as_of)

    for start in range(0, count, CHUNK):
        numbers = range(start, min(start + CHUNK, count))
        customer_ids = [uuid.uuid4() for _ in numbers]
        with transaction.atomic(using="ar"):
            Customer.objects.using("ar").bulk_create([
                Customer(
                    id=customer_id, tenant_id=TENANT_ID, external_id=f"cust-{number:06d}",
                    name=f"Customer {number}", email=f"customer.{number}@example.com", currency=CURRENCY,
                    collection_method=CollectionMethod.CHARGE_AUTOMATICALLY, payment_terms_days=0,
                    created_at=now, updated_at=now,
                )
                for number, customer_id in zip(numbers, customer_ids, strict=True)
            ])
        with transaction.atomic(using="payments"):
            PaymentMethod.objects.using("payments").bulk_create([
                PaymentMethod(
                    tenant_id=TENANT_ID, customer_id=str(customer_id),
                    token="tok_insufficient_funds" if number % DECLINE_EVERY == DECLINE_EVERY - 1 else "tok_success",
                    kind=PaymentMethodKind.CARD, is_default=True, created_at=now, updated_at=now,
                )
                for number, customer_id in zip(numbers, customer_ids, strict=True)
            ])
        with transaction.atomic(using="subscriptions"):
            Subscription.objects.using("subscriptions").bulk_create([
                Subscription(
                    tenant_id=TENANT_ID, external_id=f"sub-{number:06d}", customer_id=str(customer_id),
                    plan=plan, quantity=1, status=SubscriptionStatus.ACTIVE, billing_anchor_date=as_of,
                    started_on=as_of, current_period_start=first.start, current_period_end=first.end,
                    version=1, created_at=now, updated_at=now,
                )
                for number, customer_id in zip(numbers, customer_ids, strict=True)
            ])
