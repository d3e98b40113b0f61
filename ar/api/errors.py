"""HTTP statuses of the ar module's errors."""

from ar.errors import (
    ArError,
    CustomerNotFound,
    InvoiceNotFound,
    InvoiceStateConflict,
    PaymentReferenceConflict,
)
from billing.api.errors import register_error_statuses

ERROR_STATUSES = {
    ArError: 400,
    CustomerNotFound: 404,
    InvoiceNotFound: 404,
    InvoiceStateConflict: 409,
    PaymentReferenceConflict: 409,
}
register_error_statuses(ERROR_STATUSES)
