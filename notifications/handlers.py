"""Events the notifications module consumes and how it applies them.

Each handler requests its email. The email is recorded at the end of the
handler's transaction, together with the other emails of a group of
messages, and sent after that transaction commits.
``notifications.services`` explains why this sends each email once.
"""

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from django.utils import timezone

from ar.events import INVOICE_FINALIZED, InvoiceFinalized
from eventbus.after_commit import on_commit_collect
from eventbus.context import defer_to_delivery_end
from eventbus.envelope import Envelope
from eventbus.registry import HandlerRegistry
from notifications import contexts
from notifications.errors import CustomerNotFound, CustomerTenantMismatch
from notifications.models import Notification, NotificationStatus, NotificationTemplate
from notifications.selectors import invoice_numbers_for
from notifications.services import (
    NotificationRequest,
    notification_create_many,
    notification_send_many,
)
from payments.events import PAYMENT_FAILED, PAYMENT_SUCCEEDED, PaymentFailed, PaymentSucceeded
from subscriptions.events import SUBSCRIPTION_CANCELED, SubscriptionCanceled

if TYPE_CHECKING:
    from ar.selectors import CustomerContact

registry = HandlerRegistry()
ALIAS = "notifications"


def contacts_for_customers(customer_ids: set[str]) -> "dict[str, CustomerContact]":
    """Return the ``ar.selectors.CustomerContact`` of each of these customers that AR stores, by id.

    Payments and subscriptions events carry only the customer id, so the
    address comes from AR at the time the event is applied. Tests replace
    this function to stand in for AR.
    """
    from ar.selectors import customer_contacts

    return customer_contacts(customer_ids=customer_ids)


@dataclass(frozen=True)
class _Email:
    """An email a handler requests, recorded at the end of the delivery with the others of its group.

    ``context`` builds the template context from the customer's contact and
    the invoice number (None when not known here). An email whose event
    names the recipient and invoice number itself carries them, and needs no
    contact.
    """

    envelope: Envelope
    template: str
    customer_id: str
    context: Callable[["CustomerContact | None", str | None], dict[str, Any]]
    invoice_id: str = ""
    recipient: str | None = None
    invoice_number: str = ""


@registry.on(INVOICE_FINALIZED)
def handle_invoice_finalized(envelope: Envelope, payload: InvoiceFinalized) -> None:
    context = contexts.invoice_finalized_context(payload)
    defer_to_delivery_end(_record_and_send_after_commit, _Email(
        envelope,
        template=NotificationTemplate.INVOICE_FINALIZED,
        customer_id=payload.customer_id,
        context=lambda contact, invoice_number: context,
        invoice_id=payload.invoice_id,
        recipient=payload.customer_email,
        invoice_number=payload.invoice_number,
    ))


@registry.on(PAYMENT_SUCCEEDED)
def handle_payment_succeeded(envelope: Envelope, payload: PaymentSucceeded) -> None:
    defer_to_delivery_end(_record_and_send_after_commit, _Email(
        envelope,
        template=NotificationTemplate.PAYMENT_RECEIPT,
        customer_id=payload.customer_id,
        context=lambda contact, invoice_number: contexts.payment_receipt_context(
            payload, customer_name=contact.name, invoice_number=invoice_number
        ),
        invoice_id=payload.invoice_id,
    ))


@registry.on(PAYMENT_FAILED)
def handle_payment_failed(envelope: Envelope, payload: PaymentFailed) -> None:
    defer_to_delivery_end(_record_and_send_after_commit, _Email(
        envelope,
        template=NotificationTemplate.PAYMENT_FAILED,
        customer_id=payload.customer_id,
        context=lambda contact, invoice_number: contexts.payment_failed_context(
            payload, customer_name=contact.name, invoice_number=invoice_number
        ),
        invoice_id=payload.invoice_id,
    ))


@registry.on(SUBSCRIPTION_CANCELED)
def handle_subscription_canceled(envelope: Envelope, payload: SubscriptionCanceled) -> None:
    defer_to_delivery_end(_record_and_send_after_commit, _Email(
        envelope,
        template=NotificationTemplate.SUBSCRIPTION_CANCELED,
        customer_id=payload.customer_id,
        context=lambda contact, invoice_number: contexts.subscription_canceled_context(
            payload, customer_name=contact.name
        ),
    ))


def _record_and_send_after_commit(emails: list[_Email]) -> None:
    """Record ``emails`` in order, then send the new pending ones once the transaction commits.

    The contacts and invoice numbers they need are read with one query
    each. An invoice number from an ``ar.invoice.finalized`` email of the
    same group counts as known.
    """
    known_numbers = {
        (email.envelope.tenant_id, email.invoice_id): email.invoice_number
        for email in emails
        if email.invoice_id and email.invoice_number
    }
    invoice_ids_to_read = {
        email.invoice_id
        for email in emails
        if email.invoice_id and email.recipient is None
        and (email.envelope.tenant_id, email.invoice_id) not in known_numbers
    }
    numbers = known_numbers
    if invoice_ids_to_read:
        numbers = {**invoice_numbers_for(invoice_ids=invoice_ids_to_read), **known_numbers}
    customer_ids = {email.customer_id for email in emails if email.recipient is None}
    contacts = contacts_for_customers(customer_ids) if customer_ids else {}

    requests = []
    for email in emails:
        if email.recipient is not None:
            recipient, invoice_number = email.recipient, email.invoice_number
            context = email.context(None, invoice_number)
        else:
            contact = _checked_contact(email, contacts.get(email.customer_id))
            invoice_number = numbers.get((email.envelope.tenant_id, email.invoice_id), "")
            recipient, context = contact.email or "", email.context(contact, invoice_number or None)
        requests.append(NotificationRequest(
            tenant_id=email.envelope.tenant_id,
            source_event_id=str(email.envelope.event_id),
            source_event_type=email.envelope.event_type,
            correlation_id=str(email.envelope.correlation_id),
            template=email.template,
            customer_id=email.customer_id,
            recipient=recipient,
            context=context,
            now=email.envelope.occurred_at,
            invoice_id=email.invoice_id,
            invoice_number=invoice_number,
        ))
    for notification, created in notification_create_many(requests):
        if created and notification.status == NotificationStatus.PENDING:
            # robust=True logs an error here instead of failing the handler that
            # already committed; the rows stay pending for notifications_send_pending.
            # The emails recorded in one transaction, such as a group of
            # messages, are sent together.
            on_commit_collect(send_after_commit, notification, using=ALIAS, robust=True)


def _checked_contact(email: _Email, contact: "CustomerContact | None") -> "CustomerContact":
    """Return the customer's contact; raise so the bus retries when AR does not have it."""
    if contact is None:
        raise CustomerNotFound(email.customer_id)
    if contact.tenant_id != email.envelope.tenant_id:
        raise CustomerTenantMismatch(email.customer_id, contact.tenant_id, email.envelope.tenant_id)
    return contact


def send_after_commit(notifications: list[Notification]) -> None:
    """Send the notifications whose handler transaction committed.

    ``notifications`` are the rows the handlers inserted, so the send does
    not read them again. The send happens after the events' own time, so it
    reads the clock rather than using ``envelope.occurred_at``.
    """
    notification_send_many(notifications=notifications, now=timezone.now())
