"""Create, finalize, void and write off invoices.

An invoice from a billing period is created and finalized in one
transaction: the lines are written, customer credit is applied, the tenant's
next number is allocated and the outgoing events are appended to the outbox.
See ``ar.totals`` for the arithmetic and ``ar.services.numbering`` for the
number format.
"""

import contextlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

from django.db import transaction
from django.db.models import Sum

from ar import totals
from ar.errors import InvalidInvoiceRequest, InvoiceStateConflict
from ar.models import (
    CollectionMethod,
    CreditReason,
    Customer,
    CustomerCreditEntry,
    Invoice,
    InvoiceLine,
    InvoiceStatus,
)
from ar.services import publishing
from ar.services.common import (
    ALIAS,
    canonical_uuid,
    check_currency,
    check_tenant_id,
    check_text,
    customer_not_found,
    is_whole_number,
    lock_invoice,
    require_aware,
    save_invoice_change,
)
from ar.services.numbering import invoice_numbers_allocate
from billing.bulk import group_by
from billing.money import format_major
from eventbus.context import handling
from eventbus.envelope import Envelope
from eventbus.outbox import NewEvent

logger = logging.getLogger(__name__)

# The maximum quantity of an InvoiceLine, the range of a PostgreSQL integer column.
MAX_QUANTITY = 2**31 - 1


@dataclass(frozen=True)
class InvoiceLineInput:
    """One line item to invoice; ``period_start``/``period_end`` is the half-open period billed."""

    description: str
    quantity: int
    unit_amount_minor: int
    period_start: date | None = None
    period_end: date | None = None
    # The amount the requester computed, when it sent one; it must equal
    # quantity * unit_amount_minor, so a disagreement is caught, not billed.
    amount_minor: int | None = None


@dataclass(frozen=True)
class BillingPeriodInvoiceRequest:
    """A checked request for the one invoice of a billing period; ``invoice_request_check`` builds it."""

    tenant_id: str
    customer_id: str
    billing_period_id: str
    subscription_id: str | None
    currency: str
    lines: tuple[InvoiceLine, ...]
    subtotal_minor: int
    now: datetime
    # The event that asked for the invoice; the invoice's events name it as their cause.
    cause: Envelope | None = None


def invoice_request_check(
    *,
    tenant_id: str,
    customer_id: str,
    billing_period_id: str,
    subscription_id: str | None,
    currency: str,
    lines: Sequence[InvoiceLineInput],
    now: datetime,
    cause: Envelope | None = None,
) -> BillingPeriodInvoiceRequest:
    """Check a request for a billing period's invoice without reading the database.

    Raise ``InvalidInvoiceRequest`` naming the first invalid value.
    """
    require_aware(now)
    tenant_id = check_tenant_id(tenant_id, InvalidInvoiceRequest)
    customer_id = canonical_uuid(customer_id, "customer id", InvalidInvoiceRequest)
    billing_period_id = canonical_uuid(billing_period_id, "billing period id", InvalidInvoiceRequest)
    if subscription_id is not None:
        subscription_id = canonical_uuid(subscription_id, "subscription id", InvalidInvoiceRequest)
    currency = check_currency(currency, InvalidInvoiceRequest)
    line_rows = _build_lines(lines)
    try:
        subtotal_minor = totals.subtotal(line.amount_minor for line in line_rows)
    except OverflowError as error:
        raise InvalidInvoiceRequest(f"{error}; split the billing period into several invoices") from None
    return BillingPeriodInvoiceRequest(
        tenant_id=tenant_id,
        customer_id=customer_id,
        billing_period_id=billing_period_id,
        subscription_id=subscription_id,
        currency=currency,
        lines=tuple(line_rows),
        subtotal_minor=subtotal_minor,
        now=now,
        cause=cause,
    )


def invoice_create_for_billing_period(
    *,
    tenant_id: str,
    customer_id: str,
    billing_period_id: str,
    subscription_id: str | None,
    currency: str,
    lines: Sequence[InvoiceLineInput],
    now: datetime,
) -> tuple[Invoice, bool]:
    """Create and finalize the one invoice of ``billing_period_id``.

    Return the invoice and True, or, when the billing period already has an
    invoice, that invoice and False with nothing changed. The new invoice
    consumes the customer's credit in ``currency``, gets the tenant's next
    number and is issued on ``now``'s UTC date, due ``payment_terms_days``
    later. Appends ``ar.invoice.finalized``, then ``ar.invoice.paid`` when
    nothing is due, or ``ar.payment.collection.requested`` when the customer
    is charged automatically.

    Raise ``InvalidInvoiceRequest`` for an invalid value and
    ``CustomerNotFound`` when the customer is not one of the tenant's,
    writing nothing.
    """
    request = invoice_request_check(
        tenant_id=tenant_id,
        customer_id=customer_id,
        billing_period_id=billing_period_id,
        subscription_id=subscription_id,
        currency=currency,
        lines=lines,
        now=now,
    )
    (result,) = invoice_create_for_billing_periods([request])
    return result


def invoice_create_for_billing_periods(
    requests: Sequence[BillingPeriodInvoiceRequest],
) -> list[tuple[Invoice, bool]]:
    """Create and finalize the invoice of each request, as ``invoice_create_for_billing_period`` does, in one transaction.

    Return each request's invoice and whether this call created it, in
    order. A billing period named twice gets one invoice. Customers are
    locked first, in id order. Numbers are allocated last, so the tenant's
    sequence row stays locked only while the invoices are written and
    committed: the number lock serialises every finalization of a tenant.
    Raise ``CustomerNotFound`` for the first request whose customer is not
    one of its tenant's, writing nothing.
    """
    with transaction.atomic(using=ALIAS):
        customers = _lock_customers(requests)
        invoices_of_periods = _existing_invoices(requests)
        balances = _credit_balances(requests)

        results: list[tuple[Invoice, bool] | None] = []
        drafts: list[tuple[BillingPeriodInvoiceRequest, Invoice]] = []
        for request in requests:
            existing = invoices_of_periods.get(request.billing_period_id)
            if existing is not None:
                logger.info(
                    "Billing period %s already has invoice %s; nothing to do",
                    request.billing_period_id,
                    existing.number,
                    extra={"tenant_id": request.tenant_id, "invoice_id": str(existing.id)},
                )
                results.append((existing, False))
                continue
            # The invoice is finalized before its first save, so one INSERT writes it.
            invoice = Invoice(
                tenant_id=request.tenant_id,
                customer=customers[request.customer_id],
                subscription_id=request.subscription_id,
                billing_period_id=request.billing_period_id,
                status=InvoiceStatus.DRAFT,
                currency=request.currency,
                subtotal_minor=request.subtotal_minor,
                total_minor=request.subtotal_minor,
                amount_due_minor=request.subtotal_minor,
                created_at=request.now,
                updated_at=request.now,
            )
            invoices_of_periods[request.billing_period_id] = invoice
            drafts.append((request, invoice))
            results.append((invoice, True))

        numbers = _allocate_numbers([invoice for _, invoice in drafts])
        lines, credit_entries = [], []
        for request, invoice in drafts:
            key = (request.customer_id, request.currency)
            lines_of_invoice = [_copied_line(line, invoice) for line in request.lines]
            outgoing = _finalize(
                invoice=invoice,
                customer=invoice.customer,
                lines=lines_of_invoice,
                credit_balance_minor=balances.get(key, 0),
                now=request.now,
                number=numbers[id(invoice)],
            )
            balances[key] = balances.get(key, 0) - invoice.credit_applied_minor
            lines.extend(lines_of_invoice)
            if invoice.credit_applied_minor:
                credit_entries.append(
                    CustomerCreditEntry(
                        customer=invoice.customer,
                        currency=invoice.currency,
                        amount_minor=-invoice.credit_applied_minor,
                        reason=CreditReason.APPLIED_TO_INVOICE,
                        invoice=invoice,
                        created_at=request.now,
                    )
                )
            with handling(request.cause) if request.cause is not None else contextlib.nullcontext():
                publishing.publish(invoice_events=outgoing, now=request.now)
        Invoice.objects.using(ALIAS).bulk_create([invoice for _, invoice in drafts])
        InvoiceLine.objects.using(ALIAS).bulk_create(lines)
        CustomerCreditEntry.objects.using(ALIAS).bulk_create(credit_entries)

    for _, invoice in drafts:
        logger.info(
            "Finalized invoice %s for billing period %s: %s due",
            invoice.number,
            invoice.billing_period_id,
            format_major(invoice.amount_due_minor, invoice.currency),
            extra={"tenant_id": invoice.tenant_id, "invoice_id": str(invoice.id)},
        )
    return results


def _lock_customers(requests: Sequence[BillingPeriodInvoiceRequest]) -> dict[str, Customer]:
    """Lock the requests' customers in id order and return them by id; raise ``CustomerNotFound`` for a missing one."""
    customer_ids = {request.customer_id for request in requests}
    customers = {
        str(customer.id): customer
        for customer in Customer.objects.using(ALIAS).select_for_update().filter(id__in=customer_ids).order_by("id")
    }
    for request in requests:
        customer = customers.get(request.customer_id)
        if customer is None or customer.tenant_id != request.tenant_id:
            raise customer_not_found(customer_id=request.customer_id, tenant_id=request.tenant_id)
    return customers


def _existing_invoices(requests: Sequence[BillingPeriodInvoiceRequest]) -> dict[str, Invoice]:
    """Return the invoices the requests' billing periods already have, by billing period id.

    Run it after locking the customers, so it reads every invoice that
    another writer of those customers committed.
    """
    periods = {request.billing_period_id for request in requests}
    return {
        str(invoice.billing_period_id): invoice
        for invoice in Invoice.objects.using(ALIAS).filter(billing_period_id__in=periods)
    }


def _credit_balances(requests: Sequence[BillingPeriodInvoiceRequest]) -> dict[tuple[str, str], int]:
    """Return the credit balance of each (customer id, currency) of ``requests``; run it after locking the customers."""
    rows = (
        CustomerCreditEntry.objects.using(ALIAS)
        .filter(customer_id__in={request.customer_id for request in requests})
        .values_list("customer_id", "currency")
        .annotate(balance=Sum("amount_minor"))
        .order_by()
    )
    return {(str(customer_id), currency): int(balance) for customer_id, currency, balance in rows}


def _allocate_numbers(invoices: list[Invoice]) -> dict[int, str]:
    """Allocate each invoice's number, with one statement per tenant; return them by id(invoice).

    The tenants' sequence rows are locked in tenant order, so two groups
    with the same tenants cannot deadlock on them.
    """
    numbers = {}
    groups = sorted(group_by(invoices, lambda invoice: invoice.tenant_id), key=lambda pair: pair[0])
    for tenant_id, of_tenant in groups:
        for invoice, number in zip(
            of_tenant, invoice_numbers_allocate(tenant_id=tenant_id, count=len(of_tenant)), strict=True
        ):
            numbers[id(invoice)] = number
    return numbers


def _copied_line(line: InvoiceLine, invoice: Invoice) -> InvoiceLine:
    """Return an unsaved copy of the checked ``line`` for ``invoice``, so a request can be applied again."""
    return InvoiceLine(
        invoice=invoice,
        position=line.position,
        description=line.description,
        quantity=line.quantity,
        unit_amount_minor=line.unit_amount_minor,
        amount_minor=line.amount_minor,
        period_start=line.period_start,
        period_end=line.period_end,
    )


def invoice_void(*, invoice_id: str, now: datetime) -> Invoice:
    """Void an open invoice and append ``ar.invoice.voided``.

    The credit the invoice consumed and any partial payments on it return to
    the customer's credit balance. Raise ``InvoiceNotFound``, or
    ``InvoiceStateConflict`` when the invoice is not open, writing nothing.
    """
    require_aware(now)
    with transaction.atomic(using=ALIAS):
        invoice, customer = lock_invoice(invoice_id=invoice_id)
        if invoice.status != InvoiceStatus.OPEN:
            raise InvoiceStateConflict(
                f"invoice {invoice.number or invoice.id} is {invoice.status}; only an open invoice "
                "can be voided"
            )

        returned_minor = invoice.credit_applied_minor + invoice.amount_paid_minor
        if returned_minor:
            CustomerCreditEntry.objects.using(ALIAS).create(
                customer=customer,
                currency=invoice.currency,
                amount_minor=returned_minor,
                reason=CreditReason.RETURNED_FROM_VOIDED_INVOICE,
                invoice=invoice,
                created_at=now,
            )
        invoice.status = InvoiceStatus.VOID
        invoice.voided_at = now
        save_invoice_change(invoice, now, ["status", "voided_at"])
        publishing.publish(invoice_events=[publishing.voided_event(invoice=invoice)], now=now)

    logger.info(
        "Voided invoice %s; %s returned as credit",
        invoice.number,
        format_major(returned_minor, invoice.currency),
        extra={"tenant_id": invoice.tenant_id, "invoice_id": str(invoice.id)},
    )
    return invoice


def invoice_mark_uncollectible(*, invoice_id: str, now: datetime) -> Invoice:
    """Write off an open invoice as uncollectible and append ``ar.invoice.marked_uncollectible``.

    A later payment still settles it. Raise ``InvoiceNotFound``, or
    ``InvoiceStateConflict`` when the invoice is not open, writing nothing.
    """
    require_aware(now)
    with transaction.atomic(using=ALIAS):
        invoice, customer = lock_invoice(invoice_id=invoice_id)
        if invoice.status != InvoiceStatus.OPEN:
            raise InvoiceStateConflict(
                f"invoice {invoice.number or invoice.id} is {invoice.status}; only an open invoice "
                "can be marked uncollectible"
            )
        _mark_uncollectible(invoice=invoice, customer=customer, now=now)
    return invoice


def _build_lines(lines: Sequence[InvoiceLineInput]) -> list[InvoiceLine]:
    """Validate ``lines`` and return unsaved ``InvoiceLine`` rows with their amounts."""
    if isinstance(lines, str | bytes) or not isinstance(lines, Sequence) or not lines:
        raise InvalidInvoiceRequest("an invoice needs at least one line; pass a list of InvoiceLineInput")

    rows = []
    for position, line in enumerate(lines, start=1):
        line_label = f"line {position}"
        if not isinstance(line, InvoiceLineInput):
            raise InvalidInvoiceRequest(f"{line_label} is a {type(line).__name__}; pass an InvoiceLineInput")
        description = check_text(line.description, f"{line_label} description", 500, InvalidInvoiceRequest)
        if not is_whole_number(line.quantity) or not 1 <= line.quantity <= MAX_QUANTITY:
            raise InvalidInvoiceRequest(
                f"{line_label} quantity {line.quantity!r} is invalid; use a whole number from 1 to {MAX_QUANTITY}"
            )
        if not is_whole_number(line.unit_amount_minor) or line.unit_amount_minor < 0:
            raise InvalidInvoiceRequest(
                f"{line_label} unit amount {line.unit_amount_minor!r} is invalid; use a whole number "
                "of minor units, 0 or more (grant credit instead of a negative line)"
            )
        _check_period(line, line_label)
        try:
            amount_minor = totals.line_amount(quantity=line.quantity, unit_amount_minor=line.unit_amount_minor)
        except OverflowError as error:
            raise InvalidInvoiceRequest(f"{line_label}: {error}; lower the quantity or unit amount") from None
        if line.amount_minor is not None and line.amount_minor != amount_minor:
            raise InvalidInvoiceRequest(
                f"{line_label} amount {line.amount_minor!r} does not match quantity {line.quantity} * "
                f"unit amount {line.unit_amount_minor} = {amount_minor}; fix the amount the requester sent"
            )
        rows.append(
            InvoiceLine(
                position=position,
                description=description,
                quantity=line.quantity,
                unit_amount_minor=line.unit_amount_minor,
                amount_minor=amount_minor,
                period_start=line.period_start,
                period_end=line.period_end,
            )
        )
    return rows


def _check_period(line: InvoiceLineInput, line_label: str) -> None:
    for name in ("period_start", "period_end"):
        value = getattr(line, name)
        # datetime is a subclass of date, but a line period is whole days.
        if value is not None and (not isinstance(value, date) or isinstance(value, datetime)):
            raise InvalidInvoiceRequest(f"{line_label} {name} {value!r} is not a date; pass a datetime.date")
    if (line.period_start is None) != (line.period_end is None):
        raise InvalidInvoiceRequest(
            f"{line_label} has only one of period_start and period_end; give both or neither"
        )
    if line.period_start is not None and line.period_start >= line.period_end:
        raise InvalidInvoiceRequest(
            f"{line_label} period {line.period_start.isoformat()} to {line.period_end.isoformat()} is empty; "
            "period_end must be after period_start (the end date is not billed)"
        )


def _finalize(
    *,
    invoice: Invoice,
    customer: Customer,
    lines: list[InvoiceLine],
    credit_balance_minor: int,
    now: datetime,
    number: str,
) -> list[NewEvent]:
    """Apply credit, ``number`` (allocated by the caller), issue and open an unsaved draft, and settle it when nothing is due.

    Return the events to append. The caller inserts the invoice, its lines and
    the credit entry, in the same transaction with the customer row locked.
    Each step adds one version, as if the draft were saved and then changed,
    so the events carry the same ``aggregate_version`` either way.
    """
    credit_applied_minor = totals.credit_to_apply(
        credit_balance_minor=credit_balance_minor,
        subtotal_minor=invoice.subtotal_minor,
    )
    invoice.credit_applied_minor = credit_applied_minor
    invoice.amount_due_minor = totals.amount_due(
        total_minor=invoice.total_minor,
        credit_applied_minor=credit_applied_minor,
        amount_paid_minor=invoice.amount_paid_minor,
    )
    invoice.number = number
    invoice.status = InvoiceStatus.OPEN
    invoice.issued_on = now.astimezone(UTC).date()
    invoice.due_on = invoice.issued_on + timedelta(days=customer.payment_terms_days)
    invoice.finalized_at = now
    invoice.version += 1
    outgoing = [publishing.finalized_event(invoice=invoice, customer=customer, lines=lines)]

    if invoice.amount_due_minor == 0:
        # Credit (or a zero price) covered everything, so there is nothing to collect.
        invoice.status = InvoiceStatus.PAID
        invoice.paid_at = now
        invoice.version += 1
        outgoing.append(publishing.paid_event(invoice=invoice, customer=customer, payment_id=None))
    elif customer.collection_method == CollectionMethod.CHARGE_AUTOMATICALLY:
        outgoing.append(publishing.collection_requested_event(invoice=invoice))
    return outgoing


def _mark_uncollectible(*, invoice: Invoice, customer: Customer, now: datetime) -> None:
    invoice.status = InvoiceStatus.UNCOLLECTIBLE
    invoice.marked_uncollectible_at = now
    save_invoice_change(invoice, now, ["status", "marked_uncollectible_at"])
    publishing.publish(
        invoice_events=[publishing.marked_uncollectible_event(invoice=invoice, customer=customer)],
        now=now,
    )
    logger.info(
        "Marked invoice %s uncollectible with %s due",
        invoice.number,
        format_major(invoice.amount_due_minor, invoice.currency),
        extra={"tenant_id": invoice.tenant_id, "invoice_id": str(invoice.id)},
    )
