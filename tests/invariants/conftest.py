"""A settled flow for the invariant checks: four customers billed and collected in-process.

Customers and the state their invoice settles in:
ada (tok_success) and grace (tok_success) are paid, linus
(tok_insufficient_funds) is open with a retry scheduled, and barbara
(tok_decline) is uncollectible after a hard decline.
"""

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

import pytest
from django.utils import timezone

from billing.invariants import InvariantReport, invariants_check
from billing.operations.settle import outboxes_drain
from eventbus.backends import reset_bus

AS_OF = date(2026, 3, 1)
BILLED_AT = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)
CUSTOMERS = {
    "ada": "tok_success",
    "grace": "tok_success",
    "linus": "tok_insufficient_funds",
    "barbara": "tok_decline",
}


@dataclass(frozen=True)
class SettledFlow:
    # Customer id by external id (the names in CUSTOMERS).
    customer_ids: dict[str, str]


@pytest.fixture(autouse=True)
def inprocess_bus(settings):
    settings.EVENTBUS = {**settings.EVENTBUS, "BACKEND": "inprocess"}
    reset_bus()
    yield
    reset_bus()


@pytest.fixture
def settled_flow() -> SettledFlow:
    from ar.services import customer_upsert
    from billing.tenancy.services import tenant_ensure
    from payments.services import payment_method_upsert
    from subscriptions.services import bill_run_execute, plan_upsert, subscription_create

    tenant_ensure(tenant_id="acme", name="Acme", now=BILLED_AT)
    plan_upsert(
        tenant_id="acme", code="pro", name="Pro", amount_minor=4900, currency="USD",
        interval="month", now=BILLED_AT,
    )
    customer_ids = {}
    for name, token in CUSTOMERS.items():
        customer, _ = customer_upsert(
            tenant_id="acme", external_id=name, name=name.title(), email=f"{name}@example.com",
            currency="USD", collection_method="charge_automatically", now=BILLED_AT,
        )
        payment_method_upsert(
            tenant_id="acme", customer_id=str(customer.id), token=token, kind="card", now=BILLED_AT
        )
        subscription_create(
            tenant_id="acme", customer_id=str(customer.id), plan_code="pro", start_date=AS_OF, now=BILLED_AT,
        )
        customer_ids[name] = str(customer.id)

    assert bill_run_execute(as_of=AS_OF, now=BILLED_AT).periods_billed == len(CUSTOMERS)
    outboxes_drain()
    return SettledFlow(customer_ids=customer_ids)


def check_later() -> InvariantReport:
    """Check with the clock an hour ahead, so every row the relay just published counts as settled."""
    return invariants_check(now=timezone.now() + timedelta(hours=1))
