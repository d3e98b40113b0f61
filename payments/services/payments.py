import logging
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from django.db import IntegrityError, transaction
from django.db.models import Q

from billing.bulk import insert_new
from billing.money import InvalidMoney, validate_currency
from payments.errors import InvalidCollectionRequest
from payments.models import Payment, PaymentStatus
from payments.services.validation import require_aware, require_text, require_uuid

logger = logging.getLogger(__name__)

ALIAS = "payments"
# Attempt keys append ":attempt-<n>", and the gateway keys hold 255 characters.
IDEMPOTENCY_KEY_MAX_LENGTH = 200


@dataclass(frozen=True)
class CollectionRequest:
    """A checked request to collect an invoice; ``collection_request_check`` builds it."""

    tenant_id: str
    invoice_id: str
    invoice_number: str
    customer_id: str
    amount_minor: int
    currency: str
    idempotency_key: str
    now: datetime
    correlation_id: uuid.UUID | None = None
    request_event_id: uuid.UUID | None = None


def collection_request_check(
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
) -> CollectionRequest:
    """Check a collection request without reading the database.

    Raises ``InvalidCollectionRequest`` naming the bad field.
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
    return CollectionRequest(
        tenant_id=tenant_id,
        invoice_id=invoice_id,
        invoice_number=invoice_number,
        customer_id=customer_id,
        amount_minor=amount_minor,
        currency=currency,
        idempotency_key=idempotency_key,
        now=now,
        correlation_id=correlation_id,
        request_event_id=request_event_id,
    )


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
    request = collection_request_check(
        tenant_id=tenant_id,
        invoice_id=invoice_id,
        invoice_number=invoice_number,
        customer_id=customer_id,
        amount_minor=amount_minor,
        currency=currency,
        idempotency_key=idempotency_key,
        now=now,
        correlation_id=correlation_id,
        request_event_id=request_event_id,
    )
    (result,) = payment_create_many([request])
    return result


def payment_create_many(requests: Sequence[CollectionRequest]) -> list[tuple[Payment, bool]]:
    """Create the payment of each request as ``payment_create`` does; return each one's payment and whether it is new.

    One INSERT writes every new payment. A request whose invoice or key
    already has a payment, including one created earlier in ``requests``,
    gets that payment with False.
    """
    payments = [
        Payment(
            tenant_id=request.tenant_id,
            invoice_id=request.invoice_id,
            invoice_number=request.invoice_number,
            customer_id=request.customer_id,
            amount_minor=request.amount_minor,
            currency=request.currency,
            idempotency_key=request.idempotency_key,
            status=PaymentStatus.PENDING,
            next_attempt_at=request.now,
            correlation_id=request.correlation_id or uuid.uuid4(),
            request_event_id=request.request_event_id,
            version=1,
            created_at=request.now,
            updated_at=request.now,
        )
        for request in requests
    ]
    results = []
    with transaction.atomic(using=ALIAS, savepoint=False):
        # Most requests are new, so the insert does not look for existing
        # payments first: the unique indexes on the invoice and the key skip a repeat.
        inserted = insert_new(payments, using=ALIAS)
        stored_before = [
            payment for payment in _existing([payment for payment in payments if payment.id not in inserted])
            if payment.id not in inserted
        ]
        for index, (request, payment) in enumerate(zip(requests, payments, strict=True)):
            if payment.id in inserted:
                logger.info(
                    "Created payment %s for invoice %s: %s minor units of %s",
                    payment.id, payment.invoice_id, payment.amount_minor, payment.currency,
                    extra=_log_extra(payment),
                )
                results.append((payment, True))
                continue
            # The payments this request could have met one at a time: the
            # stored ones, then those created earlier in ``requests``.
            created_before = [earlier for earlier in payments[:index] if earlier.id in inserted]
            earlier = _first_of([*stored_before, *created_before], request)
            if earlier is None:
                raise IntegrityError(
                    f"payment for invoice {request.invoice_id} with key {request.idempotency_key!r} "
                    "was neither inserted nor found"
                )
            _log_repeat(earlier, request.invoice_id, request.amount_minor, request.currency, request.idempotency_key)
            results.append((earlier, False))
    return results


def _existing(payments: list[Payment]) -> list[Payment]:
    """Return the stored payments with the invoice or the key of one of ``payments``, oldest first."""
    if not payments:
        return []
    return list(
        Payment.objects.using(ALIAS)
        .filter(
            Q(invoice_id__in={payment.invoice_id for payment in payments})
            | Q(idempotency_key__in={payment.idempotency_key for payment in payments})
        )
        .order_by("created_at")
    )


def _first_of(candidates: list[Payment], request: CollectionRequest) -> Payment | None:
    """Return the oldest of ``candidates`` with the request's invoice or key, the first listed among equals."""
    matching = [
        payment for payment in candidates
        if payment.invoice_id == request.invoice_id or payment.idempotency_key == request.idempotency_key
    ]
    return min(matching, key=lambda payment: payment.created_at, default=None)


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
