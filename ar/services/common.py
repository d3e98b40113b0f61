"""Checks and lookups shared by the ar services."""

import uuid
from datetime import datetime

from django.db.models import Subquery

from ar.errors import ArError, CustomerNotFound, InvoiceNotFound
from ar.models import Customer, Invoice
from billing.money import InvalidMoney, validate_currency
from billing.tenancy.models import TENANT_ID_PATTERN

# The database alias, and the bus module name, of the ar module.
ALIAS = "ar"


def require_aware(now: datetime) -> None:
    """Raise ``ValueError`` unless ``now`` is a timezone-aware datetime."""
    if not isinstance(now, datetime) or now.tzinfo is None or now.utcoffset() is None:
        raise ValueError(f"now={now!r} is not an aware datetime; pass an aware UTC datetime")


def check_tenant_id(tenant_id: str, error: type[ArError]) -> str:
    if not isinstance(tenant_id, str) or not TENANT_ID_PATTERN.match(tenant_id):
        raise error(
            f"tenant id {tenant_id!r} is invalid; use 1 to 63 lower-case letters, digits and hyphens"
        )
    return tenant_id


def check_currency(currency: str, error: type[ArError]) -> str:
    try:
        return validate_currency(currency)
    except InvalidMoney as invalid:
        raise error(str(invalid)) from None


def canonical_uuid(value: str, label: str, error: type[ArError]) -> str:
    """Return ``value`` as a lower-case hyphenated UUID string; raise ``error`` naming ``label``."""
    if isinstance(value, uuid.UUID):
        return str(value)
    try:
        return str(uuid.UUID(value))
    except (TypeError, ValueError, AttributeError):
        raise error(f"{label} {value!r} is not a UUID; pass the id as a UUID string") from None


def check_text(value: str, label: str, max_length: int, error: type[ArError]) -> str:
    """Return ``value`` without surrounding whitespace; raise ``error`` when empty or too long."""
    if not isinstance(value, str) or not value.strip():
        raise error(f"{label} is missing; give 1 to {max_length} characters")
    value = value.strip()
    if len(value) > max_length:
        raise error(f"{label} is {len(value)} characters long; the maximum is {max_length}")
    return value


def is_whole_number(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def lock_customer(*, customer_id: str, tenant_id: str | None = None) -> Customer:
    """Lock and return the customer row; raise ``CustomerNotFound`` naming the id.

    Every service that reads or changes a customer's credit balance, or one of
    the customer's invoices, locks the customer first, so credit is never
    spent twice and locks are always taken in the same order.
    """
    customers = Customer.objects.using(ALIAS).select_for_update()
    if tenant_id is not None:
        customers = customers.filter(tenant_id=tenant_id)
    try:
        return customers.get(id=customer_id)
    except Customer.DoesNotExist:
        raise customer_not_found(customer_id=customer_id, tenant_id=tenant_id) from None


def customer_not_found(*, customer_id: str, tenant_id: str | None) -> CustomerNotFound:
    """Return the error for a customer id that is not one of ``tenant_id``'s (or any, without a tenant)."""
    where = f" in tenant {tenant_id!r}" if tenant_id is not None else ""
    return CustomerNotFound(
        f"customer {customer_id!r} not found{where}; create the customer first, "
        "for example with POST /api/v1/customers, and use the id it returns"
    )


def lock_invoice(*, invoice_id: str) -> tuple[Invoice, Customer]:
    """Lock the invoice's customer, then the invoice, and return both; raise ``InvoiceNotFound`` naming the id."""
    invoice_id = canonical_uuid(invoice_id, "invoice id", InvoiceNotFound)
    # An invoice never changes customer, so looking the customer up in a
    # subquery of the locking statement is as safe as a separate read first.
    # OF limits the lock to the customer row.
    invoice_customer = Invoice.objects.using(ALIAS).filter(id=invoice_id).order_by().values("customer_id")
    try:
        customer = (
            Customer.objects.using(ALIAS).select_for_update(of=("self",)).get(id=Subquery(invoice_customer))
        )
    except Customer.DoesNotExist:
        raise InvoiceNotFound(
            f"invoice {invoice_id!r} not found; pass the id of an existing invoice"
        ) from None
    invoice = Invoice.objects.using(ALIAS).select_for_update(of=("self",)).get(id=invoice_id)
    return invoice, customer


def save_invoice_change(invoice: Invoice, now: datetime, fields: list[str]) -> None:
    """Save ``fields`` of ``invoice`` as one new version of the aggregate."""
    invoice.version += 1
    invoice.updated_at = now
    invoice.save(using=ALIAS, update_fields=[*fields, "version", "updated_at"])
