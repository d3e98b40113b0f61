"""Apply payments to invoices: gateway payments from events, offline ones from operators.

Each payment is recorded once in the payment-application ledger, keyed by
(tenant, source, reference), so a redelivered or resubmitted payment changes
nothing. The part of a payment above the amount due becomes customer credit,
which the customer's next invoice in that currency consumes.
"""

import contextlib
import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

from django.db import transaction
from django.db.models import Subquery

from ar import totals
from ar.errors import (
    InvalidPayment,
    InvoiceNotFound,
    InvoiceStateConflict,
    PaymentReferenceConflict,
)
from ar.models import (
    CreditReason,
    Customer,
    CustomerCreditEntry,
    Invoice,
    InvoiceStatus,
    PaymentApplication,
    PaymentSource,
)
from ar.services import publishing
from ar.services.common import (
    ALIAS,
    canonical_uuid,
    check_currency,
    check_tenant_id,
    check_text,
    is_whole_number,
    require_aware,
)
from billing.bulk import update_rows
from billing.money import format_major
from eventbus.context import handling
from eventbus.envelope import Envelope

logger = logging.getLogger(__name__)

# Statuses whose amount due a payment reduces. A payment settles an
# uncollectible invoice as well: writing it off does not refuse the money.
PAYABLE_STATUSES = (InvoiceStatus.OPEN, InvoiceStatus.UNCOLLECTIBLE)


@dataclass(frozen=True)
class PaymentToApply:
    """A checked payment for one invoice; ``gateway_payment_check`` builds a gateway one."""

    source: str
    invoice_id: str
    reference: str
    amount_minor: int
    now: datetime
    # A gateway payment names its tenant and currency, which must be the
    # invoice's; an offline one is in the invoice's tenant and currency.
    tenant_id: str | None = None
    currency: str | None = None
    # The event that reported the payment; ``ar.invoice.paid`` names it as its cause.
    cause: Envelope | None = None


@dataclass(frozen=True)
class PaymentFailureToApply:
    """A failed collection attempt of one invoice; only a final one can change the invoice."""

    invoice_id: str
    payment_id: str
    final: bool
    now: datetime
    # The event that reported the failure; ``ar.invoice.marked_uncollectible`` names it as its cause.
    cause: Envelope | None = None


def gateway_payment_check(
    *,
    tenant_id: str,
    invoice_id: str,
    payment_id: str,
    amount_minor: int,
    currency: str,
    now: datetime,
    cause: Envelope | None = None,
) -> PaymentToApply:
    """Check a payment the gateway collected without reading the database.

    Raise ``InvalidPayment`` (bad amount, currency, tenant or payment id) or
    ``InvoiceNotFound`` (an invoice id that is not a UUID).
    """
    require_aware(now)
    return PaymentToApply(
        source=PaymentSource.GATEWAY,
        invoice_id=canonical_uuid(invoice_id, "invoice id", InvoiceNotFound),
        reference=check_text(payment_id, "payment id", 200, InvalidPayment),
        amount_minor=_checked_amount(amount_minor),
        now=now,
        tenant_id=check_tenant_id(tenant_id, InvalidPayment),
        currency=check_currency(currency, InvalidPayment),
        cause=cause,
    )


def invoice_apply_gateway_payment(
    *,
    tenant_id: str,
    invoice_id: str,
    payment_id: str,
    amount_minor: int,
    currency: str,
    now: datetime,
) -> Invoice:
    """Apply a payment the gateway collected, once per ``payment_id``.

    Partial payments accumulate. When the amount due reaches zero the invoice
    becomes paid and ``ar.invoice.paid`` is appended. The part above the
    amount due, or the whole payment when the invoice is already paid or
    void, becomes customer credit, because the money was already taken.

    Raise ``InvalidPayment`` (bad amount, currency or tenant),
    ``InvoiceNotFound``, ``InvoiceStateConflict`` for a draft, or
    ``PaymentReferenceConflict`` when ``payment_id`` was applied to another
    invoice or with another amount, writing nothing.
    """
    payment = gateway_payment_check(
        tenant_id=tenant_id,
        invoice_id=invoice_id,
        payment_id=payment_id,
        amount_minor=amount_minor,
        currency=currency,
        now=now,
    )
    ((invoice, _),) = invoice_apply_payments([payment])
    return invoice


def invoice_record_offline_payment(
    *, invoice_id: str, amount_minor: int, reference: str, now: datetime
) -> Invoice:
    """Record a payment received outside the gateway (bank transfer, cheque) in the invoice currency.

    Meant for ``send_invoice`` customers, though any open or uncollectible
    invoice accepts one. Partial payments accumulate. When the amount due
    reaches zero the invoice becomes paid and ``ar.invoice.paid`` is
    appended. The part above the amount due becomes customer credit.
    Recording the same reference again for the same invoice and amount
    changes nothing.

    Raise ``InvalidPayment``, ``InvoiceNotFound``, ``InvoiceStateConflict``
    when the invoice is a draft, paid or void, or ``PaymentReferenceConflict``
    when the reference was used for another payment, writing nothing.
    """
    require_aware(now)
    payment = PaymentToApply(
        source=PaymentSource.OFFLINE,
        invoice_id=canonical_uuid(invoice_id, "invoice id", InvoiceNotFound),
        reference=check_text(reference, "payment reference", 200, InvalidPayment),
        amount_minor=_checked_amount(amount_minor),
        now=now,
    )
    ((invoice, _),) = invoice_apply_payments([payment])
    return invoice


def invoice_apply_payment_failure(
    *, invoice_id: str, payment_id: str, final: bool, now: datetime
) -> tuple[Invoice, bool]:
    """Apply a failed collection attempt to its invoice; return the invoice and whether it changed.

    Only a final failure of an open invoice changes it: the invoice becomes
    uncollectible. A failure the gateway retries changes nothing, and a final
    failure that arrives after the invoice was paid, voided or already written
    off is stale and ignored. Raise ``InvoiceNotFound``.
    """
    failure = payment_failure_check(invoice_id=invoice_id, payment_id=payment_id, final=final, now=now)
    ((invoice, changed),) = invoice_apply_payments([failure])
    return invoice, changed


def payment_failure_check(
    *, invoice_id: str, payment_id: str, final: bool, now: datetime, cause: Envelope | None = None
) -> PaymentFailureToApply:
    """Check a failed collection attempt without reading the database; raise ``InvoiceNotFound`` for a bad id."""
    require_aware(now)
    return PaymentFailureToApply(
        invoice_id=canonical_uuid(invoice_id, "invoice id", InvoiceNotFound),
        payment_id=payment_id,
        final=final,
        now=now,
        cause=cause,
    )


def invoice_apply_payments(
    items: Sequence[PaymentToApply | PaymentFailureToApply],
) -> list[tuple[Invoice, bool]]:
    """Apply each payment and failed attempt, in order and in one transaction, as the functions above do.

    Return each item's invoice and whether the item changed anything. Every
    customer, then every invoice, is locked in id order, as
    ``lock_invoice`` locks one pair. Several payments of one invoice
    accumulate, a payment named twice is applied once, and a failure
    after a payment of the same invoice finds the invoice as that payment
    left it. The first item that cannot be applied raises its error, writing
    nothing.
    """
    payments = [item for item in items if isinstance(item, PaymentToApply)]
    with transaction.atomic(using=ALIAS):
        invoices = _lock_invoices([item.invoice_id for item in items])
        applied = _applications(invoices.values(), payments) if payments else {}
        versions_before = {invoice_id: invoice.version for invoice_id, invoice in invoices.items()}
        applications: list[PaymentApplication] = []
        credit_entries: list[CustomerCreditEntry] = []
        results = []
        for item in items:
            invoice = invoices.get(item.invoice_id)
            if invoice is None:
                raise InvoiceNotFound(f"invoice {item.invoice_id!r} not found; pass the id of an existing invoice")
            if isinstance(item, PaymentFailureToApply):
                results.append((invoice, _apply_failure(invoice, item)))
                continue
            payment = item
            _check_payable(invoice, payment)
            key = (invoice.tenant_id, payment.source, payment.reference)
            if key in applied:
                _check_same_payment(applied[key], invoice, payment)
                results.append((invoice, False))
                continue
            _check_applicable(invoice, payment)
            application, credit_entry = _apply(invoice=invoice, payment=payment)
            results.append((invoice, True))
            applied[key] = application
            applications.append(application)
            if credit_entry is not None:
                credit_entries.append(credit_entry)

        PaymentApplication.objects.using(ALIAS).bulk_create(applications)
        CustomerCreditEntry.objects.using(ALIAS).bulk_create(credit_entries)
        changed = [invoice for invoice_id, invoice in invoices.items() if invoice.version != versions_before[invoice_id]]
        update_rows(changed, INVOICE_PAYMENT_FIELDS, using=ALIAS)
    return results


# The invoice columns applying a payment or a final failure may change.
INVOICE_PAYMENT_FIELDS = (
    "amount_paid_minor", "amount_due_minor", "status", "paid_at", "marked_uncollectible_at", "version", "updated_at",
)


def _checked_amount(amount_minor: int) -> int:
    if not is_whole_number(amount_minor) or not 0 < amount_minor <= totals.MAX_AMOUNT_MINOR:
        raise InvalidPayment(
            f"payment amount {amount_minor!r} is invalid; use a positive whole number of minor units"
        )
    return amount_minor


def _lock_invoices(invoice_ids: list[str]) -> dict[str, Invoice]:
    """Lock the invoices' customers, then the invoices, each in id order; return the invoices by id.

    Each invoice's ``customer`` is set to its locked row. A missing id is
    left out.
    """
    ids = sorted(set(invoice_ids))
    # An invoice never changes customer, so selecting the customers by a
    # subquery of the invoices is as safe as reading the invoices first.
    customer_ids = Invoice.objects.using(ALIAS).filter(id__in=ids).order_by().values("customer_id")
    customers = {
        customer.id: customer
        for customer in Customer.objects.using(ALIAS)
        .select_for_update(of=("self",))
        .filter(id__in=Subquery(customer_ids))
        .order_by("id")
    }
    invoices = {}
    for invoice in Invoice.objects.using(ALIAS).select_for_update(of=("self",)).filter(id__in=ids).order_by("id"):
        invoice.customer = customers[invoice.customer_id]
        invoices[str(invoice.id)] = invoice
    return invoices


def _applications(
    invoices: Iterable[Invoice], payments: Sequence[PaymentToApply]
) -> dict[tuple[str, str, str], PaymentApplication]:
    """Return the earlier applications of ``payments``, by (tenant id, source, reference).

    Run it after locking the invoices: every payment of an invoice locks its
    customer first, so this reads every committed application of them.
    """
    tenants = {invoice.tenant_id for invoice in invoices}
    rows = PaymentApplication.objects.using(ALIAS).filter(
        tenant_id__in=tenants,
        source__in={payment.source for payment in payments},
        reference__in={payment.reference for payment in payments},
    )
    return {(row.tenant_id, row.source, row.reference): row for row in rows}


def _check_payable(invoice: Invoice, payment: PaymentToApply) -> None:
    """Raise when ``payment`` cannot go to ``invoice`` at all, whether applied before or not."""
    if payment.tenant_id is not None and invoice.tenant_id != payment.tenant_id:
        raise InvalidPayment(
            f"payment {payment.reference!r} is for tenant {payment.tenant_id!r} but invoice {invoice.number} "
            f"belongs to tenant {invoice.tenant_id!r}; check the payment's invoice id"
        )


def _check_same_payment(previous: PaymentApplication, invoice: Invoice, payment: PaymentToApply) -> None:
    """Return when ``previous`` is this exact payment, so nothing is left to do; raise when the reference clashes."""
    if previous.invoice_id != invoice.id or previous.amount_minor != payment.amount_minor:
        number = previous.invoice.number if previous.invoice_id != invoice.id else invoice.number
        raise PaymentReferenceConflict(
            f"{payment.source} payment {payment.reference!r} was already applied: {previous.amount_minor} "
            f"{previous.currency} to invoice {number}; use a new reference for a different payment"
        )
    logger.info(
        "Payment %s was already applied to invoice %s; nothing to do",
        payment.reference,
        invoice.number,
        extra={"tenant_id": invoice.tenant_id, "invoice_id": str(invoice.id)},
    )


def _check_applicable(invoice: Invoice, payment: PaymentToApply) -> None:
    """Raise when the new ``payment`` cannot be applied to ``invoice`` in its current state."""
    if payment.source == PaymentSource.OFFLINE:
        if invoice.status not in PAYABLE_STATUSES:
            raise InvoiceStateConflict(
                f"invoice {invoice.number or invoice.id} is {invoice.status}; record an offline "
                "payment only against an open or uncollectible invoice"
            )
        return
    if payment.currency != invoice.currency:
        raise InvalidPayment(
            f"payment {payment.reference!r} is in {payment.currency} but invoice {invoice.number} is in "
            f"{invoice.currency}; collect the payment in {invoice.currency}"
        )
    if invoice.status == InvoiceStatus.DRAFT:
        raise InvoiceStateConflict(
            f"invoice {invoice.id} is a draft; a payment can only be applied to a finalized invoice"
        )


def _apply(*, invoice: Invoice, payment: PaymentToApply) -> tuple[PaymentApplication, CustomerCreditEntry | None]:
    """Split the payment between the invoice and customer credit.

    Change ``invoice`` in memory, as one new version, and append
    ``ar.invoice.paid`` when it becomes paid. Return the application and
    the credit entry (None without credit) to insert.
    """
    now = payment.now
    if invoice.status in PAYABLE_STATUSES:
        applied_minor = min(payment.amount_minor, invoice.amount_due_minor)
        credit_reason = CreditReason.OVERPAYMENT
    else:
        applied_minor = 0
        credit_reason = CreditReason.PAYMENT_ON_CLOSED_INVOICE
    credited_minor = payment.amount_minor - applied_minor

    application = PaymentApplication(
        tenant_id=invoice.tenant_id,
        invoice=invoice,
        source=payment.source,
        reference=payment.reference,
        currency=invoice.currency,
        amount_minor=payment.amount_minor,
        applied_minor=applied_minor,
        credited_minor=credited_minor,
        created_at=now,
    )
    credit_entry = None
    if credited_minor:
        credit_entry = CustomerCreditEntry(
            customer=invoice.customer,
            currency=invoice.currency,
            amount_minor=credited_minor,
            reason=credit_reason,
            invoice=invoice,
            created_at=now,
        )

    if applied_minor:
        invoice.amount_paid_minor += applied_minor
        invoice.amount_due_minor = totals.amount_due(
            total_minor=invoice.total_minor,
            credit_applied_minor=invoice.credit_applied_minor,
            amount_paid_minor=invoice.amount_paid_minor,
        )
        if invoice.amount_due_minor == 0:
            invoice.status = InvoiceStatus.PAID
            invoice.paid_at = now
        invoice.version += 1
        invoice.updated_at = now
        if invoice.status == InvoiceStatus.PAID:
            payment_id = payment.reference if payment.source == PaymentSource.GATEWAY else None
            paid = publishing.paid_event(invoice=invoice, customer=invoice.customer, payment_id=payment_id)
            with handling(payment.cause) if payment.cause is not None else contextlib.nullcontext():
                publishing.publish(invoice_events=[paid], now=now)

    logger.info(
        "Applied %s payment %s to invoice %s: %s to the invoice, %s to credit; invoice is %s",
        payment.source,
        payment.reference,
        invoice.number,
        format_major(applied_minor, invoice.currency),
        format_major(credited_minor, invoice.currency),
        invoice.status,
        extra={"tenant_id": invoice.tenant_id, "invoice_id": str(invoice.id)},
    )
    return application, credit_entry


def _apply_failure(invoice: Invoice, failure: PaymentFailureToApply) -> bool:
    """Write the invoice off in memory when ``failure`` is final and the invoice open; return whether it did.

    Append ``ar.invoice.marked_uncollectible`` for a write-off.
    """
    log_extra = {"tenant_id": invoice.tenant_id, "invoice_id": str(invoice.id), "payment_id": failure.payment_id}
    if not failure.final:
        logger.info(
            "Payment %s for invoice %s failed and will be retried; invoice unchanged",
            failure.payment_id, invoice.number, extra=log_extra,
        )
        return False
    if invoice.status != InvoiceStatus.OPEN:
        logger.info(
            "Ignored final failure of payment %s: invoice %s is already %s",
            failure.payment_id, invoice.number, invoice.status, extra=log_extra,
        )
        return False

    invoice.status = InvoiceStatus.UNCOLLECTIBLE
    invoice.marked_uncollectible_at = failure.now
    invoice.version += 1
    invoice.updated_at = failure.now
    written_off = publishing.marked_uncollectible_event(invoice=invoice, customer=invoice.customer)
    with handling(failure.cause) if failure.cause is not None else contextlib.nullcontext():
        publishing.publish(invoice_events=[written_off], now=failure.now)
    logger.info(
        "Marked invoice %s uncollectible with %s due",
        invoice.number,
        format_major(invoice.amount_due_minor, invoice.currency),
        extra={"tenant_id": invoice.tenant_id, "invoice_id": str(invoice.id)},
    )
    return True
