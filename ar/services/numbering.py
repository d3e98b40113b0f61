"""Gapless invoice numbers per tenant.

A number is allocated only when an invoice is finalized, inside the
finalizing transaction: the tenant's ``InvoiceNumberSequence`` row is locked
with SELECT ... FOR UPDATE and incremented. A second finalization for the
same tenant waits for the lock, and a rolled-back finalization also rolls
back the increment, so a tenant's numbers run 1, 2, 3, ... with no gap and
no repeat.

Format: the tenant id in capitals, a hyphen, and the sequence number padded
with zeros to six digits, for example "ACME-000001" for tenant "acme". Past
999999 the number grows to seven digits ("ACME-1000000"); it stays unique
but no longer sorts as text.
"""

from ar.models import InvoiceNumberSequence

ALIAS = "ar"
# Zero-padded width of the sequence part of an invoice number.
SEQUENCE_DIGITS = 6


def format_invoice_number(*, tenant_id: str, sequence_number: int) -> str:
    """Return the invoice number for ``sequence_number`` of ``tenant_id``: "ACME-000001"."""
    return f"{tenant_id.upper()}-{sequence_number:0{SEQUENCE_DIGITS}d}"


def invoice_number_allocate(*, tenant_id: str) -> str:
    """Allocate the next invoice number of ``tenant_id``; call inside the finalizing transaction.

    Holds the tenant's sequence row lock until that transaction ends. Outside
    a transaction Django raises ``TransactionManagementError``, since
    SELECT ... FOR UPDATE would release the lock at once.
    """
    manager = InvoiceNumberSequence.objects.using(ALIAS)
    # INSERT ... ON CONFLICT DO NOTHING creates the row on first use without
    # failing when another transaction creates it at the same moment.
    manager.bulk_create([InvoiceNumberSequence(tenant_id=tenant_id)], ignore_conflicts=True)
    sequence = manager.select_for_update().get(tenant_id=tenant_id)
    sequence.last_number += 1
    sequence.save(update_fields=["last_number"])
    return format_invoice_number(tenant_id=tenant_id, sequence_number=sequence.last_number)
