import logging
import uuid
from datetime import datetime

from django.db import IntegrityError, transaction
from django.db.models import Q

from billing.money import InvalidMoney, validate_currency
from payments.errors import InvalidCollectionRequest
from payments.models import Payment, PaymentStatus
from payments.services.validation import require_aware, require_text, require_uuid

logger = logging.getLogger(__name__)

ALIAS = "payments"
# Attempt keys append ":attempt-<n>", and the gateway keys hold 255 characters.
IDEMPOTENCY_KEY_MAX_LENGTH = 200


def payment_create(
    *,
    tenant_id: str,
    invoice_id: str,
    invoice_number: str,
    customer_id: str,
    amount_minor: int,
    currency: str,
    idempotency_key: str,
    now: datetime,
    correlation_id: uuid.UUID | None = None,
    request_event_id: uuid.UUID | None = None,
) -> tuple[Payment, bool]:
    """Create the pending payment that collects an invoice; return it and whether it was created.

    A payment that already exists for the invoice or for the idempotency key is
    returned unchanged with False, so a repeated collection request charges
    nothing more. The caller schedules the charge (``payment_attempt_charge``).

    Raises ``InvalidCollectionRequest`` naming the bad field, before writing anything.
    """
    require_aware("now", now)
    tenant_id = require_text(InvalidCollectionRequest, "tenant_id", tenant_id, max_length=63)
    invoice_id = require_uuid(InvalidCollectionRequest, "invoice_id", invoice_id)
    invoice_number = require_text(InvalidCollectionRequest, "invoice_number", invoice_number, max_length=64)
    customer_id = require_uuid(InvalidCollectionRequest, "customer_id", customer_id)
    idempotency_key = require_text(
        InvalidCollectionRequest, "idempotency_key", idempotency_key, max_length=IDEMPOTENCY_KEY_MAX_LENGTH
    )
    if isinstance(amount_minor, bool) or not isinstance(amount_minor, int) or amount_minor < 1:
        raise InvalidCollectionRequest(
            f"amount_minor {amount_minor!r} is invalid; pass a whole number of minor units of at least 1"
        )
    try:
        validate_currency(currency)
    except InvalidMoney as error:
        raise InvalidCollectionRequest(str(error)) from None

    try:
        # Insert without looking for an existing payment first, since most
        # requests are new: the unique indexes on the invoice and the key
        # reject a repeat. The savepoint keeps the outer transaction (the
        # handler's inbox row) usable after that.
        with transaction.atomic(using=ALIAS):
            payment = Payment.objects.using(ALIAS).create(
                tenant_id=tenant_id,
                invoice_id=invoice_id,
                invoice_number=invoice_number,
                customer_id=customer_id,
                amount_minor=amount_minor,
                currency=currency,
                idempotency_key=idempotency_key,
                status=PaymentStatus.PENDING,
                next_attempt_at=now,
                correlation_id=correlation_id or uuid.uuid4(),
                request_event_id=request_event_id,
                version=1,
                created_at=now,
                updated_at=now,
            )
    except IntegrityError:
        existing = _existing(invoice_id, idempotency_key)
        if existing is None:
            raise
        _log_repeat(existing, invoice_id, amount_minor, currency, idempotency_key)
        return existing, False

    logger.info(
        "Created payment %s for invoice %s: %s minor units of %s",
        payment.id, invoice_id, amount_minor, currency,
        extra=_log_extra(payment),
    )
    return payment, True


def _existing(invoice_id: str, idempotency_key: str) -> Payment | None:
    return (
        Payment.objects.using(ALIAS)
        .filter(Q(invoice_id=invoice_id) | Q(idempotency_key=idempotency_key))
        .order_by("created_at")
        .first()
    )


def _log_repeat(existing: Payment, invoice_id: str, amount_minor: int, currency: str, idempotency_key: str) -> None:
    same_request = (
        existing.invoice_id == invoice_id
        and existing.idempotency_key == idempotency_key
        and existing.amount_minor == amount_minor
        and existing.currency == currency
    )
    if same_request:
        logger.info(
            "Skipped repeated collection request for invoice %s; payment %s exists",
            invoice_id, existing.id, extra=_log_extra(existing),
        )
        return
    logger.warning(
        "Ignored collection request for invoice %s (%s minor units of %s, key %r): payment %s "
        "for invoice %s (%s minor units of %s, key %r) already holds this invoice or key",
        invoice_id, amount_minor, currency, idempotency_key, existing.id,
        existing.invoice_id, existing.amount_minor, existing.currency, existing.idempotency_key,
        extra=_log_extra(existing),
    )


def _log_extra(payment: Payment) -> dict:
    return {
        "tenant_id": payment.tenant_id,
        "payment_id": str(payment.id),
        "invoice_id": payment.invoice_id,
        "correlation_id": str(payment.correlation_id),
    }
