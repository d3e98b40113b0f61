"""Gapless invoice numbers per tenant.

A number is allocated only when an invoice is finalized, inside the
finalizing transaction: one INSERT ... ON CONFLICT DO UPDATE ... RETURNING
creates or increments the tenant's ``InvoiceNumberSequence`` row and keeps
it locked until the transaction ends. A second finalization for the same
tenant waits for the lock, and a rolled-back finalization also rolls back
the increment, so a tenant's numbers run 1, 2, 3, ... with no gap and no
repeat.

Format: the tenant id in capitals, a hyphen, and the sequence number padded
with zeros to six digits, for example "ACME-000001" for tenant "acme". Past
999999 the number grows to seven digits ("ACME-1000000"); it stays unique
but no longer sorts as text.
"""

from django.db import connections
from django.db.transaction import TransactionManagementError

from ar.models import InvoiceNumberSequence

ALIAS = "ar"
# Zero-padded width of the sequence part of an invoice number.
SEQUENCE_DIGITS = 6


def format_invoice_number(*, tenant_id: str, sequence_number: int) -> str:
    """Return the invoice number for ``sequence_number`` of ``tenant_id``: "ACME-000001"."""
    return f"{tenant_id.upper()}-{sequence_number:0{SEQUENCE_DIGITS}d}"


def invoice_number_allocate(*, tenant_id: str) -> str:
    """Allocate the next invoice number of ``tenant_id``; call inside the finalizing transaction.

    Holds the tenant's sequence row lock until that transaction ends. Raises
    ``TransactionManagementError`` outside a transaction, where the lock
    would be released at once.
    """
    (number,) = invoice_numbers_allocate(tenant_id=tenant_id, count=1)
    return number


def invoice_numbers_allocate(*, tenant_id: str, count: int) -> list[str]:
    """Allocate the next ``count`` invoice numbers of ``tenant_id``, in order, as ``invoice_number_allocate`` does one."""
    if count < 1:
        raise ValueError(f"count must be 1 or more, got {count}")
    connection = connections[ALIAS]
    if not connection.in_atomic_block:
        raise TransactionManagementError(
            "invoice_number_allocate must run inside transaction.atomic(using='ar'), "
            "or the sequence row lock would be released before the invoice is saved"
        )
    table = connection.ops.quote_name(InvoiceNumberSequence._meta.db_table)
    # One round trip where get-or-create, SELECT ... FOR UPDATE and UPDATE took
    # three; PostgreSQL and SQLite (3.35+) both run this statement.
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {table} (tenant_id, last_number) VALUES (%s, %s) "
            f"ON CONFLICT (tenant_id) DO UPDATE SET last_number = {table}.last_number + %s "
            "RETURNING last_number",
            [tenant_id, count, count],
        )
        (last_number,) = cursor.fetchone()
    return [
        format_invoice_number(tenant_id=tenant_id, sequence_number=number)
        for number in range(last_number - count + 1, last_number + 1)
    ]
