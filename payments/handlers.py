"""Events the payments module consumes and how it applies them."""

import logging
from datetime import datetime

from ar.events import PAYMENT_COLLECTION_REQUESTED, PaymentCollectionRequested
from eventbus.after_commit import on_commit_collect
from eventbus.context import defer_to_delivery_end
from eventbus.envelope import Envelope
from eventbus.registry import HandlerRegistry
from payments.services import (
    CollectionRequest,
    collection_request_check,
    payment_attempt_charge_many,
    payment_create_many,
)

logger = logging.getLogger(__name__)

registry = HandlerRegistry()


@registry.on(PAYMENT_COLLECTION_REQUESTED)
def collect_payment(envelope: Envelope, payload: PaymentCollectionRequested) -> None:
    """Create the invoice's payment and charge it once the inbox row has committed.

    The request is checked at once, and its payment is created at the end
    of the delivery with those of the other requests of its group. A
    repeated request for the same invoice or key creates and charges nothing.
    """
    request = collection_request_check(
        tenant_id=envelope.tenant_id,
        invoice_id=payload.invoice_id,
        invoice_number=payload.invoice_number,
        customer_id=payload.customer_id,
        amount_minor=payload.amount_minor,
        currency=payload.currency,
        idempotency_key=payload.idempotency_key,
        now=envelope.occurred_at,
        correlation_id=envelope.correlation_id,
        request_event_id=envelope.event_id,
    )
    defer_to_delivery_end(_create_and_charge_after_commit, request)


def _create_and_charge_after_commit(requests: list[CollectionRequest]) -> None:
    for payment, created in payment_create_many(requests):
        if created:
            # The charge must not run inside the handler's transaction: a
            # rollback after the gateway charged would forget the charge. The
            # payments of one transaction, such as a group of messages, are
            # charged together.
            on_commit_collect(_charge_first_attempts, (str(payment.id), payment.created_at), using="payments")


def _charge_first_attempts(requests: list[tuple[str, datetime]]) -> None:
    """Charge the payments created by one transaction, at the latest of their events' times."""
    now = max(occurred_at for _, occurred_at in requests)
    try:
        payment_attempt_charge_many(payment_ids=[payment_id for payment_id, _ in requests], now=now)
    except Exception:
        # The inbox rows have committed, so a redelivery would be skipped; the
        # pending payments are due for the retry runner instead.
        logger.exception(
            "First charge of %s payment(s) failed; payments_retry_due charges them", len(requests),
            extra={"payment_ids": [payment_id for payment_id, _ in requests]},
        )
