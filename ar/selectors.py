"""Reads of the ar module; other modules may call these, never the models.

Every function returns plain values or frozen dataclasses, so no model
instance leaves the module, except the ``*_queryset`` functions: they serve
this module's REST API, whose cursor pagination needs a queryset, and other
modules must not call them. Ids are UUID strings; an id that is not a UUID
finds nothing.
"""

import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import date, datetime

from django.db.models import Count, F, Prefetch, Sum

from ar.models import (
    Customer,
    CustomerCreditEntry,
    Invoice,
    InvoiceLine,
    InvoiceNumberSequence,
    PaymentApplication,
    PaymentSource,
)

ALIAS = "ar"


@dataclass(frozen=True)
class CustomerContact:
    customer_id: str
    tenant_id: str
    external_id: str
    name: str
    email: str
    currency: str
    collection_method: str


@dataclass(frozen=True)
class InvoiceLineSummary:
    description: str
    quantity: int
    unit_amount_minor: int
    amount_minor: int
    period_start: date | None
    period_end: date | None


@dataclass(frozen=True)
class InvoiceSummary:
    """An invoice's identity, status and amounts in minor units of ``currency``."""

    invoice_id: str
    tenant_id: str
    customer_id: str
    number: str | None
    status: str
    currency: str
    subtotal_minor: int
    credit_applied_minor: int
    total_minor: int
    amount_paid_minor: int
    amount_due_minor: int
    issued_on: date | None
    due_on: date | None
    finalized_at: datetime | None
    paid_at: datetime | None
    voided_at: datetime | None
    marked_uncollectible_at: datetime | None
    subscription_id: str | None
    billing_period_id: str | None
    version: int
    lines: tuple[InvoiceLineSummary, ...]


def customer_contact(*, customer_id: str) -> CustomerContact | None:
    """Return the customer's name, email and billing settings, or None when unknown."""
    return customer_contacts(customer_ids=[customer_id]).get(customer_id)


def customer_contacts(*, customer_ids: Iterable[str]) -> dict[str, CustomerContact]:
    """Return the contact of each known customer of ``customer_ids``, keyed by the id as the caller spelled it.

    One query reads them all; ids that are not UUIDs or name no customer are left out.
    """
    spellings_by_id = {}
    for customer_id in customer_ids:
        if _is_uuid(customer_id):
            spellings_by_id.setdefault(uuid.UUID(str(customer_id)), set()).add(customer_id)
    if not spellings_by_id:
        return {}
    # Plain values skip building models, because notifications reads a contact for each email.
    rows = (
        Customer.objects.using(ALIAS)
        .filter(id__in=list(spellings_by_id))
        .values("id", "tenant_id", "external_id", "name", "email", "currency", "collection_method")
    )
    contacts = {}
    for row in rows:
        contact = CustomerContact(
            customer_id=str(row["id"]),
            tenant_id=row["tenant_id"],
            external_id=row["external_id"],
            name=row["name"],
            email=row["email"],
            currency=row["currency"],
            collection_method=row["collection_method"],
        )
        for spelling in spellings_by_id[row["id"]]:
            contacts[spelling] = contact
    return contacts


def customer_id_for_external_id(*, tenant_id: str, external_id: str) -> str | None:
    """Return the id of the tenant's customer with ``external_id``, or None."""
    customer_id = (
        Customer.objects.using(ALIAS)
        .filter(tenant_id=tenant_id, external_id=external_id)
        .values_list("id", flat=True)
        .first()
    )
    return str(customer_id) if customer_id is not None else None


def customer_credit_balances(*, customer_id: str) -> dict[str, int]:
    """Return the customer's credit balance per currency, leaving out currencies at zero."""
    if not _is_uuid(customer_id):
        return {}
    balances = CustomerCreditEntry.objects.using(ALIAS).filter(customer_id=customer_id).balances()
    return {currency: balance for currency, balance in balances.items() if balance}


def invoice_summary(*, invoice_id: str) -> InvoiceSummary | None:
    """Return the invoice with its lines, or None when unknown."""
    if not _is_uuid(invoice_id):
        return None
    invoice = Invoice.objects.using(ALIAS).prefetch_related("lines").filter(id=invoice_id).first()
    return _summary(invoice) if invoice is not None else None


def invoice_summary_for_billing_period(*, billing_period_id: str) -> InvoiceSummary | None:
    """Return the invoice of a billing period, or None when the period has none yet."""
    if not _is_uuid(billing_period_id):
        return None
    invoice = (
        Invoice.objects.using(ALIAS)
        .prefetch_related("lines")
        .filter(billing_period_id=billing_period_id)
        .first()
    )
    return _summary(invoice) if invoice is not None else None


def invoice_summaries(
    *, tenant_id: str, customer_id: str | None = None, status: str | None = None
) -> list[InvoiceSummary]:
    """Return the tenant's invoices, newest first, optionally of one customer or status."""
    invoices = Invoice.objects.using(ALIAS).prefetch_related("lines").filter(tenant_id=tenant_id)
    if customer_id is not None:
        if not _is_uuid(customer_id):
            return []
        invoices = invoices.filter(customer_id=customer_id)
    if status is not None:
        invoices = invoices.filter(status=status)
    return [_summary(invoice) for invoice in invoices.order_by("-created_at", "id")]


def invoice_totals_by_status(*, tenant_id: str | None = None) -> dict[str, dict[str, dict[str, int]]]:
    """Return the count and summed ``total_minor`` of invoices per status and currency.

    Shape: ``{"open": {"USD": {"count": 2, "amount_minor": 5970}}}``. Only
    statuses and currencies that have invoices appear. Without ``tenant_id``
    every tenant is counted.
    """
    invoices = Invoice.objects.using(ALIAS).all()
    if tenant_id is not None:
        invoices = invoices.filter(tenant_id=tenant_id)
    rows = (
        invoices.values("status", "currency")
        .annotate(count=Count("id"), amount_minor=Sum("total_minor"))
        .order_by("status", "currency")
    )
    totals: dict[str, dict[str, dict[str, int]]] = {}
    for row in rows:
        totals.setdefault(row["status"], {})[row["currency"]] = {
            "count": row["count"],
            "amount_minor": row["amount_minor"],
        }
    return totals


def customer_queryset(*, tenant_id: str):
    """Return the tenant's customers as a queryset, for this module's API."""
    return Customer.objects.using(ALIAS).filter(tenant_id=tenant_id)


def invoice_queryset(*, tenant_id: str):
    """Return the tenant's invoices with their lines as a queryset, for this module's API."""
    return (
        Invoice.objects.using(ALIAS)
        .filter(tenant_id=tenant_id)
        .select_related("customer")
        .prefetch_related("lines")
    )


def _summary(invoice: Invoice) -> InvoiceSummary:
    return InvoiceSummary(
        invoice_id=str(invoice.id),
        tenant_id=invoice.tenant_id,
        customer_id=str(invoice.customer_id),
        number=invoice.number,
        status=invoice.status,
        currency=invoice.currency,
        subtotal_minor=invoice.subtotal_minor,
        credit_applied_minor=invoice.credit_applied_minor,
        total_minor=invoice.total_minor,
        amount_paid_minor=invoice.amount_paid_minor,
        amount_due_minor=invoice.amount_due_minor,
        issued_on=invoice.issued_on,
        due_on=invoice.due_on,
        finalized_at=invoice.finalized_at,
        paid_at=invoice.paid_at,
        voided_at=invoice.voided_at,
        marked_uncollectible_at=invoice.marked_uncollectible_at,
        subscription_id=str(invoice.subscription_id) if invoice.subscription_id else None,
        billing_period_id=str(invoice.billing_period_id) if invoice.billing_period_id else None,
        version=invoice.version,
        lines=tuple(
            InvoiceLineSummary(
                description=line.description,
                quantity=line.quantity,
                unit_amount_minor=line.unit_amount_minor,
                amount_minor=line.amount_minor,
                period_start=line.period_start,
                period_end=line.period_end,
            )
            for line in invoice.lines.all()
        ),
    )


def _is_uuid(value) -> bool:
    try:
        uuid.UUID(str(value))
    except ValueError:
        return False
    return True


@dataclass(frozen=True)
class InvoiceAuditRow:
    """The invoice fields the invariant checks compare with other modules."""

    invoice_id: str
    tenant_id: str
    number: str | None
    status: str
    currency: str
    total_minor: int
    amount_paid_minor: int
    collection_method: str
    billing_period_id: str | None
    finalized_at: datetime | None


@dataclass(frozen=True)
class GatewayPaymentApplication:
    """A payment from the payments module that AR applied; ``payment_id`` is its reference."""

    payment_id: str
    tenant_id: str
    invoice_id: str
    currency: str
    amount_minor: int


def invoice_audit_rows(*, tenant_id: str | None = None) -> list[InvoiceAuditRow]:
    """Return every invoice's audit fields, of one tenant or all, in creation order."""
    invoices = Invoice.objects.using(ALIAS)
    if tenant_id is not None:
        invoices = invoices.filter(tenant_id=tenant_id)
    rows = invoices.order_by("created_at", "id").values(
        "id", "tenant_id", "number", "status", "currency", "total_minor", "amount_paid_minor",
        "customer__collection_method", "billing_period_id", "finalized_at",
    )
    return [
        InvoiceAuditRow(
            invoice_id=str(row["id"]),
            tenant_id=row["tenant_id"],
            number=row["number"],
            status=row["status"],
            currency=row["currency"],
            total_minor=row["total_minor"],
            amount_paid_minor=row["amount_paid_minor"],
            collection_method=row["customer__collection_method"],
            billing_period_id=str(row["billing_period_id"]) if row["billing_period_id"] else None,
            finalized_at=row["finalized_at"],
        )
        for row in rows
    ]


def gateway_payment_applications(*, tenant_id: str | None = None) -> list[GatewayPaymentApplication]:
    """Return the gateway payments AR applied (settled or credited), of one tenant or all."""
    applications = PaymentApplication.objects.using(ALIAS).filter(source=PaymentSource.GATEWAY)
    if tenant_id is not None:
        applications = applications.filter(tenant_id=tenant_id)
    rows = applications.order_by("id").values_list("reference", "tenant_id", "invoice_id", "currency", "amount_minor")
    return [
        GatewayPaymentApplication(
            payment_id=reference, tenant_id=row_tenant_id, invoice_id=str(invoice_id),
            currency=currency, amount_minor=amount_minor,
        )
        for reference, row_tenant_id, invoice_id, currency, amount_minor in rows
    ]


def invoice_number_last_allocated(*, tenant_id: str | None = None) -> dict[str, int]:
    """Return the last invoice sequence number allocated per tenant, of one tenant or all."""
    sequences = InvoiceNumberSequence.objects.using(ALIAS)
    if tenant_id is not None:
        sequences = sequences.filter(tenant_id=tenant_id)
    return dict(sequences.order_by("tenant_id").values_list("tenant_id", "last_number"))


@dataclass(frozen=True)
class InvoiceExportRow:
    """One invoice with its customer's identity and its line descriptions, for the CSV export."""

    invoice_id: str
    number: str | None
    status: str
    customer_id: str
    customer_external_id: str
    customer_name: str
    customer_email: str
    currency: str
    subtotal_minor: int
    credit_applied_minor: int
    total_minor: int
    amount_paid_minor: int
    amount_due_minor: int
    issued_on: date | None
    due_on: date | None
    finalized_at: datetime | None
    paid_at: datetime | None
    voided_at: datetime | None
    marked_uncollectible_at: datetime | None
    subscription_id: str | None
    line_descriptions: tuple[str, ...]


# Invoices read per database round trip; their lines come in one more query
# per chunk, so memory stays bounded by the chunk, not the export.
EXPORT_CHUNK_SIZE = 500


def invoice_export_rows(
    *,
    tenant_id: str,
    status: str | None = None,
    customer_id: str | None = None,
    issued_from: date | None = None,
    issued_to: date | None = None,
) -> Iterator[InvoiceExportRow]:
    """Yield the tenant's invoices by issue date and number, drafts last, reading them in chunks.

    ``issued_from`` and ``issued_to`` are inclusive. A ``customer_id`` that
    is not a UUID finds nothing.
    """
    invoices = Invoice.objects.using(ALIAS).filter(tenant_id=tenant_id)
    if status is not None:
        invoices = invoices.filter(status=status)
    if customer_id is not None:
        if not _is_uuid(customer_id):
            return
        invoices = invoices.filter(customer_id=customer_id)
    if issued_from is not None:
        invoices = invoices.filter(issued_on__gte=issued_from)
    if issued_to is not None:
        invoices = invoices.filter(issued_on__lte=issued_to)
    invoices = (
        invoices.select_related("customer")
        .prefetch_related(Prefetch("lines", queryset=InvoiceLine.objects.using(ALIAS).order_by("position")))
        .order_by(F("issued_on").asc(nulls_last=True), "number", "created_at", "id")
    )

    for invoice in invoices.iterator(chunk_size=EXPORT_CHUNK_SIZE):
        customer = invoice.customer
        yield InvoiceExportRow(
            invoice_id=str(invoice.id),
            number=invoice.number,
            status=invoice.status,
            customer_id=str(customer.id),
            customer_external_id=customer.external_id,
            customer_name=customer.name,
            customer_email=customer.email,
            currency=invoice.currency,
            subtotal_minor=invoice.subtotal_minor,
            credit_applied_minor=invoice.credit_applied_minor,
            total_minor=invoice.total_minor,
            amount_paid_minor=invoice.amount_paid_minor,
            amount_due_minor=invoice.amount_due_minor,
            issued_on=invoice.issued_on,
            due_on=invoice.due_on,
            finalized_at=invoice.finalized_at,
            paid_at=invoice.paid_at,
            voided_at=invoice.voided_at,
            marked_uncollectible_at=invoice.marked_uncollectible_at,
            subscription_id=str(invoice.subscription_id) if invoice.subscription_id else None,
            line_descriptions=tuple(line.description for line in invoice.lines.all()),
        )
