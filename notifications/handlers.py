"""Events the notifications module consumes and how it applies them.

Each handler records the email in its own transaction and sends it after
that transaction commits; ``notifications.services`` explains why this sends
each email once.
"""

from typing import TYPE_CHECKING

from django.utils import timezone

from ar.events import INVOICE_FINALIZED, InvoiceFinalized
from eventbus.after_commit import on_commit_collect
from eventbus.envelope import Envelope
from eventbus.registry import HandlerRegistry
from notifications import contexts
from notifications.errors import CustomerNotFound, CustomerTenantMismatch
from notifications.models import Notification, NotificationStatus, NotificationTemplate
from notifications.selectors import invoice_number_for
from notifications.services import notification_create, notification_send_many
from payments.events import PAYMENT_FAILED, PAYMENT_SUCCEEDED, PaymentFailed, PaymentSucceeded
from subscriptions.events import SUBSCRIPTION_CANCELED, SubscriptionCanceled

if TYPE_CHECKING:
    from ar.selectors import CustomerContact

registry = HandlerRegistry()
ALIAS = "notifications"


def contact_for_customer(customer_id: str) -> "CustomerContact | None":
    """Return the customer's ``ar.selectors.CustomerContact``, or None if AR has no such customer.

    Payments and subscriptions events carry only the customer id, so the
    address comes from AR at the time the event is applied. Tests replace
    this function to stand in for AR.
    """
    from ar.selectors import customer_contact

    return customer_contact(customer_id=customer_id)


@registry.on(INVOICE_FINALIZED)
def handle_invoice_finalized(envelope: Envelope, payload: InvoiceFinalized) -> None:
    _record_and_send_after_commit(
        envelope,
        template=NotificationTemplate.INVOICE_FINALIZED,
        customer_id=payload.customer_id,
        recipient=payload.customer_email,
        context=contexts.invoice_finalized_context(payload),
        invoice_id=payload.invoice_id,
        invoice_number=payload.invoice_number,
    )


@registry.on(PAYMENT_SUCCEEDED)
def handle_payment_succeeded(envelope: Envelope, payload: PaymentSucceeded) -> None:
    contact = _contact(envelope, payload.customer_id)
    invoice_number = invoice_number_for(tenant_id=envelope.tenant_id, invoice_id=payload.invoice_id)
    _record_and_send_after_commit(
        envelope,
        template=NotificationTemplate.PAYMENT_RECEIPT,
        customer_id=payload.customer_id,
        recipient=contact.email or "",
        context=contexts.payment_receipt_context(
            payload, customer_name=contact.name, invoice_number=invoice_number
        ),
        invoice_id=payload.invoice_id,
        invoice_number=invoice_number or "",
    )


@registry.on(PAYMENT_FAILED)
def handle_payment_failed(envelope: Envelope, payload: PaymentFailed) -> None:
    contact = _contact(envelope, payload.customer_id)
    invoice_number = invoice_number_for(tenant_id=envelope.tenant_id, invoice_id=payload.invoice_id)
    _record_and_send_after_commit(
        envelope,
        template=NotificationTemplate.PAYMENT_FAILED,
        customer_id=payload.customer_id,
        recipient=contact.email or "",
        context=contexts.payment_failed_context(
            payload, customer_name=contact.name, invoice_number=invoice_number
        ),
        invoice_id=payload.invoice_id,
        invoice_number=invoice_number or "",
    )


@registry.on(SUBSCRIPTION_CANCELED)
def handle_subscription_canceled(envelope: Envelope, payload: SubscriptionCanceled) -> None:
    contact = _contact(envelope, payload.customer_id)
    _record_and_send_after_commit(
        envelope,
        template=NotificationTemplate.SUBSCRIPTION_CANCELED,
        customer_id=payload.customer_id,
        recipient=contact.email or "",
        context=contexts.subscription_canceled_context(payload, customer_name=contact.name),
    )


def _contact(envelope: Envelope, customer_id: str) -> "CustomerContact":
    """Look up the customer's contact; raise so the bus retries when AR does not have it."""
    contact = contact_for_customer(customer_id)
    if contact is None:
        raise CustomerNotFound(customer_id)
    if contact.tenant_id != envelope.tenant_id:
        raise CustomerTenantMismatch(customer_id, contact.tenant_id, envelope.tenant_id)
    return contact


def _record_and_send_after_commit(envelope: Envelope, **fields) -> None:
    notification, created = notification_create(
        tenant_id=envelope.tenant_id,
        source_event_id=str(envelope.event_id),
        source_event_type=envelope.event_type,
        correlation_id=str(envelope.correlation_id),
        now=envelope.occurred_at,
        **fields,
    )
    if created and notification.status == NotificationStatus.PENDING:
        # robust=True logs an error here instead of failing the handler that
        # already committed; the rows stay pending for notifications_send_pending.
        # The emails recorded in one transaction, such as a group of
        # messages, are sent together.
        on_commit_collect(send_after_commit, notification, using=ALIAS, robust=True)


def send_after_commit(notifications: list[Notification]) -> None:
    """Send the notifications whose handler transaction committed.

    ``notifications`` are the rows the handlers inserted, so the send does
    not read them again. The send happens after the events' own time, so it
    reads the clock rather than using ``envelope.occurred_at``.
    """
    notification_send_many(notifications=notifications, now=timezone.now())
