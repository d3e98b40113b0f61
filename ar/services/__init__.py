"""Write operations of the ar module; each runs in one transaction on the ``ar`` alias."""

from ar.services.customers import customer_credit_grant, customer_upsert, customer_validate
from ar.services.invoices import (
    BillingPeriodInvoiceRequest,
    InvoiceLineInput,
    invoice_create_for_billing_period,
    invoice_create_for_billing_periods,
    invoice_mark_uncollectible,
    invoice_request_check,
    invoice_void,
)
from ar.services.numbering import format_invoice_number
from ar.services.payment_application import (
    PaymentFailureToApply,
    PaymentToApply,
    gateway_payment_check,
    invoice_apply_gateway_payment,
    invoice_apply_payment_failure,
    invoice_apply_payments,
    invoice_record_offline_payment,
    payment_failure_check,
)
from ar.services.publishing import collection_idempotency_key

__all__ = [
    "BillingPeriodInvoiceRequest",
    "InvoiceLineInput",
    "PaymentFailureToApply",
    "PaymentToApply",
    "collection_idempotency_key",
    "customer_credit_grant",
    "customer_upsert",
    "customer_validate",
    "format_invoice_number",
    "gateway_payment_check",
    "invoice_apply_gateway_payment",
    "invoice_apply_payment_failure",
    "invoice_apply_payments",
    "invoice_create_for_billing_period",
    "invoice_create_for_billing_periods",
    "invoice_mark_uncollectible",
    "invoice_record_offline_payment",
    "invoice_request_check",
    "invoice_void",
    "payment_failure_check",
]
