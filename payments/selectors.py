"""Reads of the payments module; other modules may import this file."""

from django.db.models import Count, Sum

from payments.models import Payment, PaymentAttempt, PaymentMethod, PaymentStatus

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
