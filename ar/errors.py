"""Errors of the accounts-receivable module.

Every error has a stable ``code`` for API responses and logs, and a message
that names the rejected value and states how to fix it. A service raises them
before it writes anything, or inside its transaction so nothing commits.
"""


class ArError(Exception):
    """Root of every error the ar module raises."""

    code = "ar_error"


class InvalidCustomer(ArError):
    """A customer field has a value a customer record cannot hold."""

    code = "invalid_customer"


class CustomerNotFound(ArError):
    code = "customer_not_found"


class InvalidInvoiceRequest(ArError):
    """A request to invoice a billing period has a value an invoice cannot hold."""

    code = "invalid_invoice_request"


class InvoiceNotFound(ArError):
    code = "invoice_not_found"


class InvoiceStateConflict(ArError):
    """The invoice's status does not allow the requested change."""

    code = "invoice_state_conflict"


class InvalidPayment(ArError):
    """A payment amount, currency or reference cannot be applied to an invoice."""

    code = "invalid_payment"


class PaymentReferenceConflict(ArError):
    """A payment reference was already applied, to another invoice or with another amount."""

    code = "payment_reference_conflict"


class InvalidCredit(ArError):
    """A customer credit grant has an amount, currency or note the ledger cannot hold."""

    code = "invalid_credit"
