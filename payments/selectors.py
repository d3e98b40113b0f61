"""Reads of the payments module; other modules may import this file."""

from collections import defaultdict
from dataclasses import dataclass

from django.db.models import Count, Sum

from payments.models import (
    Payment,
    PaymentAttempt,
    PaymentAttemptStatus,
    PaymentMethod,
    PaymentStatus,
    SimulatedCharge,
)

ALIAS = "payments"


def payment_counts_by_status(*, tenant_id: str | None = None) -> dict[str, int]:
    """Return the number of payments in each status, every status included, of one tenant or all."""
    payments = Payment.objects.using(ALIAS)
    if tenant_id is not None:
        payments = payments.filter(tenant_id=tenant_id)
    counts = dict.fromkeys(PaymentStatus.values, 0)
    for row in payments.order_by().values("status").annotate(count=Count("id")):
        counts[row["status"]] = row["count"]
    return counts


def successful_charge_totals(*, tenant_id: str | None = None) -> dict[str, int]:
    """Return the succeeded amount in minor units per currency, of one tenant or all."""
    payments = Payment.objects.using(ALIAS).filter(status=PaymentStatus.SUCCEEDED)
    if tenant_id is not None:
        payments = payments.filter(tenant_id=tenant_id)
    rows = payments.order_by("currency").values("currency").annotate(total=Sum("amount_minor"))
    return {row["currency"]: row["total"] for row in rows}


def payment_for_invoice(*, invoice_id: str) -> Payment | None:
    return Payment.objects.using(ALIAS).filter(invoice_id=invoice_id).first()


def payment_attempts(*, payment_id: str) -> list[PaymentAttempt]:
    """Return the payment's attempts in number order."""
    return list(PaymentAttempt.objects.using(ALIAS).filter(payment_id=payment_id).order_by("number"))


def payment_methods_for_customer(*, customer_id: str) -> list[PaymentMethod]:
    """Return the customer's payment methods, the default first."""
    return list(
        PaymentMethod.objects.using(ALIAS).filter(customer_id=customer_id).order_by("-is_default", "created_at")
    )


def payment_queryset(*, tenant_id: str):
    """Return the tenant's payments with their attempts as a queryset, for this module's API."""
    return Payment.objects.using(ALIAS).filter(tenant_id=tenant_id).prefetch_related("attempts")


def payment_method_queryset(*, tenant_id: str, customer_id: str):
    """Return the customer's payment methods within the tenant as a queryset, for this module's API."""
    return PaymentMethod.objects.using(ALIAS).filter(tenant_id=tenant_id, customer_id=customer_id)


@dataclass(frozen=True)
class PaymentAuditRow:
    """A payment with the counts the invariant checks need.

    ``succeeded_attempts`` counts the payment's attempts in ``succeeded``, and
    ``successful_charges`` the simulated gateway's succeeded charges under the
    keys of those attempts, so both stay at most one for a correct payment.
    """

    payment_id: str
    tenant_id: str
    invoice_id: str
    status: str
    currency: str
    amount_minor: int
    succeeded_attempts: int
    successful_charges: int


def payment_audit_rows(*, tenant_id: str | None = None) -> list[PaymentAuditRow]:
    """Return every payment with its successful attempt and charge counts, of one tenant or all."""
    payments = Payment.objects.using(ALIAS)
    if tenant_id is not None:
        payments = payments.filter(tenant_id=tenant_id)
    payments = list(payments.order_by("created_at", "id"))
    attempts = PaymentAttempt.objects.using(ALIAS).filter(payment__in=payments)

    keys_by_payment: dict[str, list[str]] = defaultdict(list)
    succeeded_attempts: dict[str, int] = defaultdict(int)
    for payment_id, key, status in attempts.values_list("payment_id", "idempotency_key", "status"):
        keys_by_payment[str(payment_id)].append(key)
        if status == PaymentAttemptStatus.SUCCEEDED:
            succeeded_attempts[str(payment_id)] += 1

    payment_by_key = {key: payment_id for payment_id, keys in keys_by_payment.items() for key in keys}
    successful_charges: dict[str, int] = defaultdict(int)
    charged_keys = SimulatedCharge.objects.using(ALIAS).filter(
        succeeded=True, idempotency_key__in=list(payment_by_key)
    ).values_list("idempotency_key", flat=True)
    for key in charged_keys:
        successful_charges[payment_by_key[key]] += 1

    return [
        PaymentAuditRow(
            payment_id=str(payment.id),
            tenant_id=payment.tenant_id,
            invoice_id=payment.invoice_id,
            status=payment.status,
            currency=payment.currency,
            amount_minor=payment.amount_minor,
            succeeded_attempts=succeeded_attempts[str(payment.id)],
            successful_charges=successful_charges[str(payment.id)],
        )
        for payment in payments
    ]
