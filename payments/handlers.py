"""Events the payments module consumes and how it applies them."""

import logging
from datetime import datetime
from functools import partial

from django.db import transaction

from ar.events import PAYMENT_COLLECTION_REQUESTED, PaymentCollectionRequested
from eventbus.envelope import Envelope
from eventbus.registry import HandlerRegistry
from payments.services import payment_attempt_charge, payment_create

logger = logging.getLogger(__name__)

registry = HandlerRegistry()


@registry.on(PAYMENT_COLLECTION_REQUESTED)
def collect_payment(envelope: Envelope, payload: PaymentCollectionRequested) -> None:
    """Create the invoice's payment and charge it once the inbox row has committed.

    A repeated request for the same invoice or key creates and charges nothing.
    """
    payment, created = payment_create(
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
    if not created:
        return
    # The charge must not run inside the handler's transaction: a rollback
    # after the gateway charged would forget the charge.
    transaction.on_commit(
        partial(_charge_first_attempt, payment_id=str(payment.id), now=envelope.occurred_at),
        using="payments",
    )


def _charge_first_attempt(*, payment_id: str, now: datetime) -> None:
    try:
        payment_attempt_charge(payment_id=payment_id, now=now)
    except Exception:
        # The inbox row has committed, so a redelivery would be skipped; the
        # pending payment is due for the retry runner instead.
        logger.exception(
            "First charge of payment failed; payments_retry_due charges it",
            extra={"payment_id": payment_id},
        )
