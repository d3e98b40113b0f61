"""Synthetic demo data: tenants, plans, customers, payment methods and subscriptions.

Everything is made up and deterministic for a given seed. Emails use the
reserved example.com domain, and payment methods use the simulated
gateway's test tokens, so no real person or card is involved.
"""

import logging
import random
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal

from ar.selectors import customer_id_for_external_id
from ar.services import customer_upsert
from billing.money import to_minor_units
from billing.tenancy.services import tenant_ensure
from payments.services import payment_method_upsert
from subscriptions.selectors import subscription_list_for_customer
from subscriptions.services import plan_upsert, subscription_upsert_imported

logger = logging.getLogger(__name__)

# Currencies of the demo tenants, in turn: two decimals, two decimals, none.
TENANT_CURRENCIES = ("USD", "EUR", "JPY")
# Prices per currency unit of a tenant: JPY prices are 100 times the others.
PRICE_SCALE = {"USD": Decimal(1), "EUR": Decimal(1), "JPY": Decimal(100)}


@dataclass(frozen=True)
class DemoPlan:
    code: str
    name: str
    price: Decimal
    interval: str
    # Relative share of the demo customers on this plan.
    weight: int
    max_quantity: int = 1


PLANS = (
    DemoPlan("starter", "Starter", Decimal("9.00"), "month", weight=40),
    DemoPlan("team", "Team (per seat)", Decimal("12.50"), "month", weight=30, max_quantity=10),
    DemoPlan("business", "Business", Decimal("99.00"), "month", weight=20),
    DemoPlan("business-annual", "Business, billed yearly", Decimal("990.00"), "year", weight=10),
)

# Test tokens of the simulated gateway and their share of the customers that
# pay automatically. tok_slow is left out because each of its charges blocks
# the in-process relay for several seconds.
TOKEN_WEIGHTS = (
    ("tok_success", 70),
    ("tok_insufficient_then_success", 10),
    ("tok_insufficient_funds", 6),
    ("tok_processing_error", 4),
    ("tok_decline", 10),
)
# Share of customers who pay sent invoices themselves instead of being charged.
SEND_INVOICE_SHARE = 0.2
SEND_INVOICE_TERMS_DAYS = 14

FIRST_NAMES = ("Ada", "Alan", "Grace", "Edsger", "Barbara", "Donald", "Frances", "Ken", "Radia", "Tim")
LAST_NAMES = ("Lovelace", "Turing", "Hopper", "Dijkstra", "Liskov", "Knuth", "Allen", "Thompson", "Perlman")
COMPANY_SUFFIXES = ("Labs", "Works", "Studio", "Systems", "Partners")


@dataclass
class SeedSummary:
    tenants: int = 0
    plans: int = 0
    customers_created: int = 0
    customers_updated: int = 0
    payment_methods: int = 0
    subscriptions_created: int = 0
    # Customers whose subscription an earlier seed created; it is left as it is.
    subscriptions_kept: int = 0


def demo_seed(
    *,
    tenant_count: int,
    customers_per_tenant: int,
    seed: int,
    as_of: date,
    now: datetime,
) -> SeedSummary:
    """Create demo tenants ``demo-1`` to ``demo-N`` with plans, customers and subscriptions.

    Each subscription starts within the 28 days up to ``as_of``, so a bill
    run on ``as_of`` invoices each one once. Seeding again with the same
    seed updates customers and plans and keeps existing subscriptions, whose
    start dates would otherwise move with ``as_of``.
    """
    if tenant_count < 1 or customers_per_tenant < 1:
        raise ValueError(
            f"tenant_count {tenant_count} and customers_per_tenant {customers_per_tenant} "
            "must be at least 1"
        )
    generator = random.Random(seed)
    summary = SeedSummary()

    for tenant_number in range(1, tenant_count + 1):
        tenant_id = f"demo-{tenant_number}"
        currency = TENANT_CURRENCIES[(tenant_number - 1) % len(TENANT_CURRENCIES)]
        tenant_ensure(tenant_id=tenant_id, name=f"Demo tenant {tenant_number} ({currency})", now=now)
        summary.tenants += 1
        _plans_seed(tenant_id, currency, now)
        summary.plans += len(PLANS)
        for customer_number in range(1, customers_per_tenant + 1):
            _customer_seed(generator, tenant_id, currency, customer_number, as_of, now, summary)

    logger.info(
        "Seeded %s demo tenant(s): %s customer(s) created, %s subscription(s) created",
        summary.tenants, summary.customers_created, summary.subscriptions_created,
    )
    return summary


def _plans_seed(tenant_id: str, currency: str, now: datetime) -> None:
    for plan in PLANS:
        plan_upsert(
            tenant_id=tenant_id,
            code=plan.code,
            name=plan.name,
            amount_minor=to_minor_units(plan.price * PRICE_SCALE[currency], currency),
            currency=currency,
            interval=plan.interval,
            now=now,
        )


def _customer_seed(
    generator: random.Random,
    tenant_id: str,
    currency: str,
    number: int,
    as_of: date,
    now: datetime,
    summary: SeedSummary,
) -> None:
    # Draw every random value first, so the sequence is the same whether or
    # not the customer exists already.
    first_name = generator.choice(FIRST_NAMES)
    last_name = generator.choice(LAST_NAMES)
    company = f"{last_name} {generator.choice(COMPANY_SUFFIXES)}"
    sends_invoice = generator.random() < SEND_INVOICE_SHARE
    token = generator.choices([token for token, _ in TOKEN_WEIGHTS], [weight for _, weight in TOKEN_WEIGHTS])[0]
    plan = generator.choices(PLANS, [plan.weight for plan in PLANS])[0]
    quantity = generator.randint(1, plan.max_quantity)
    start_date = as_of - timedelta(days=generator.randint(0, 27))

    external_id = f"cust-{number:05d}"
    existed = customer_id_for_external_id(tenant_id=tenant_id, external_id=external_id) is not None
    customer, created = customer_upsert(
        tenant_id=tenant_id,
        external_id=external_id,
        name=f"{first_name} {last_name}, {company}",
        email=f"{first_name}.{last_name}.{number}@example.com".lower(),
        currency=currency,
        collection_method="send_invoice" if sends_invoice else "charge_automatically",
        payment_terms_days=SEND_INVOICE_TERMS_DAYS if sends_invoice else 0,
        now=now,
    )
    summary.customers_created += created
    summary.customers_updated += not created
    customer_id = str(customer.id)

    if not sends_invoice:
        payment_method_upsert(
            tenant_id=tenant_id, customer_id=customer_id, token=token, kind="card", make_default=True, now=now
        )
        summary.payment_methods += 1

    if existed and subscription_list_for_customer(tenant_id=tenant_id, customer_id=customer_id):
        summary.subscriptions_kept += 1
        return
    subscription_upsert_imported(
        tenant_id=tenant_id,
        external_id=f"sub-{number:05d}",
        customer_id=customer_id,
        plan_code=plan.code,
        start_date=start_date,
        quantity=quantity,
        now=now,
    )
    summary.subscriptions_created += 1
