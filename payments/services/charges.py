"""Charge a payment at the gateway without ever charging it twice.

The gateway call sits between two transactions and inside none, so no
database lock or open transaction waits on the network, and so a rollback can
never forget a charge the gateway already made:

1. Transaction A locks the payment and commits attempt n in ``processing``.
2. The gateway is called with the key ``"<payment key>:attempt-<n>"``.
3. Transaction B records the outcome on the attempt and the payment and
   appends ``payments.payment.succeeded`` or ``payments.payment.failed``.

A crash between the steps leaves attempt n in ``processing``. The next call
for the payment resumes that attempt with the same key, and the gateway
returns the outcome it recorded instead of charging again.
"""

import logging
import uuid
from collections.abc import Sequence
from datetime import datetime, timedelta

from django.db import transaction

from billing.bulk import group_by, update_rows
from eventbus.envelope import format_timestamp
from eventbus.outbox import outbox_append, outbox_rows_collected
from eventbus.registry import get_module
from payments.conf import payments_settings
from payments.errors import GatewayError, PaymentNotFound
from payments.events import PAYMENT_FAILED, PAYMENT_SUCCEEDED, PaymentFailed, PaymentSucceeded
from payments.gateways import GatewayResult, PaymentGateway, get_gateway
from payments.models import (
    Payment,
    PaymentAttempt,
    PaymentAttemptStatus,
    PaymentMethod,
    PaymentStatus,
)
from payments.services.validation import require_aware

logger = logging.getLogger(__name__)

ALIAS = "payments"
NO_PAYMENT_METHOD = "no_payment_method"

# The columns each step writes, so an UPDATE leaves the others alone.
ATTEMPT_START_FIELDS = ["status", "attempt_count", "next_attempt_at", "version", "updated_at"]
OUTCOME_PAYMENT_FIELDS = [
    "status", "version", "updated_at", "succeeded_at", "failed_at", "first_failed_at", "next_attempt_at",
]
OUTCOME_ATTEMPT_FIELDS = ["status", "gateway_reference", "failure_code", "failure_message", "retryable", "finished_at"]


def payment_attempt_charge(*, payment_id: str, now: datetime) -> Payment:
    """Charge the payment if it is due at ``now``, and return it.

    Runs transaction A, the gateway call and transaction B as the module
    docstring describes, so it must be called outside any transaction on the
    payments database (``durable`` blocks enforce that). A payment that
    succeeded or failed for good, or whose retry is due after ``now``, is
    returned unchanged. A payment with an attempt in ``processing`` has that
    attempt resumed. A customer without a payment method fails the payment for
    good with ``no_payment_method``.

    Raises ``PaymentNotFound``. When the gateway returns no outcome
    (``GatewayError``), the attempt stays in ``processing`` and the payment is
    returned; ``payments_retry_due`` resumes it once it is stale. Any other
    error from the gateway propagates and leaves the attempt in the same state.
    """
    require_aware("now", now)
    gateway = get_gateway()

    payment, attempt = _attempt_start(payment_id, now)
    if attempt is None or attempt.status != PaymentAttemptStatus.PROCESSING:
        return payment

    result = _gateway_charge(gateway, payment, attempt)
    if result is None:
        return payment
    return _attempt_finish(payment, attempt, result, now)


def payment_attempt_charge_many(*, payment_ids: Sequence[str], now: datetime) -> None:
    """Charge each payment as ``payment_attempt_charge`` would, sharing transactions A and B among them.

    Payments waiting for their first charge, or for a retry due at ``now``,
    whose customer has a payment method, start their attempts in one
    transaction A, are charged one by one, and have their outcomes recorded
    in one transaction B. Every other payment, and every payment that another
    process changed between A and B, goes through ``payment_attempt_charge``
    alone afterwards. An error while charging one payment is logged, and the
    others are still charged. A payment left pending or in processing is
    charged later by ``payments_retry_due``. Must be called outside any
    transaction on the payments database.
    """
    require_aware("now", now)
    gateway = get_gateway()
    distinct_ids = list(dict.fromkeys(str(payment_id) for payment_id in payment_ids))
    one_by_one: list[str] = []
    try:
        started, skipped = _attempts_start_many(distinct_ids, now)
        one_by_one.extend(skipped)
    except Exception:
        logger.exception("Starting %s payment attempts together failed; charging them one at a time", len(distinct_ids))
        started, one_by_one = [], distinct_ids

    charged = []
    for payment, attempt in started:
        try:
            result = _gateway_charge(gateway, payment, attempt)
        except Exception:
            # The attempt stays in processing and is resumed with the same key.
            logger.exception("Charging payment %s failed", payment.id, extra=_log_extra(payment, attempt))
            continue
        if result is not None:
            charged.append((payment, attempt, result))

    try:
        for payment, attempt, result in _attempts_finish_many(charged, now):
            _attempt_finish(payment, attempt, result, now)
    except Exception:
        # Every attempt left in processing is resumed once stale, with its key.
        logger.exception("Recording the outcomes of %s charges failed", len(charged))

    for payment_id in one_by_one:
        try:
            payment_attempt_charge(payment_id=payment_id, now=now)
        except Exception:
            logger.exception("Charging payment %s failed", payment_id, extra={"payment_id": payment_id})


def _attempts_start_many(
    payment_ids: list[str], now: datetime
) -> tuple[list[tuple[Payment, PaymentAttempt]], list[str]]:
    """Transaction A for many payments: return the attempts started, and the payments left for one-by-one charging."""
    uuids = []
    skipped = []
    for payment_id in payment_ids:
        try:
            uuids.append(uuid.UUID(payment_id))
        except ValueError:
            skipped.append(payment_id)

    started = []
    with transaction.atomic(using=ALIAS, durable=True):
        payments = list(Payment.objects.using(ALIAS).select_for_update().filter(id__in=uuids).order_by("id"))
        found = {str(payment.id) for payment in payments}
        skipped.extend(str(payment_uuid) for payment_uuid in uuids if str(payment_uuid) not in found)
        due = []
        for payment in payments:
            if payment.status == PaymentStatus.PENDING or (
                payment.status == PaymentStatus.RETRY_SCHEDULED and payment.next_attempt_at <= now
            ):
                due.append(payment)
            else:
                skipped.append(str(payment.id))
        methods = _methods_to_charge(due)

        attempts = []
        for payment in due:
            method = methods.get((payment.tenant_id, payment.customer_id))
            if method is None:
                # payment_attempt_charge records the missing method.
                skipped.append(str(payment.id))
                continue
            number = payment.attempt_count + 1
            attempt = PaymentAttempt(
                payment=payment,
                number=number,
                status=PaymentAttemptStatus.PROCESSING,
                payment_method=method,
                idempotency_key=attempt_idempotency_key(payment, number),
                started_at=now,
            )
            attempts.append(attempt)
            started.append((payment, attempt))
        PaymentAttempt.objects.using(ALIAS).bulk_create(attempts)

        # The rows are locked, so one UPDATE per distinct set of new values
        # writes them all; usually every payment shares one.
        for (attempt_count, version), payments_alike in group_by(
            [payment for payment, _ in started], lambda payment: (payment.attempt_count, payment.version)
        ):
            Payment.objects.using(ALIAS).filter(id__in=[payment.id for payment in payments_alike]).update(
                status=PaymentStatus.PROCESSING,
                attempt_count=attempt_count + 1,
                next_attempt_at=None,
                version=version + 1,
                updated_at=now,
            )
            for payment in payments_alike:
                payment.status = PaymentStatus.PROCESSING
                payment.attempt_count = attempt_count + 1
                payment.next_attempt_at = None
                payment.version = version + 1
                payment.updated_at = now
    return started, skipped


def _attempts_finish_many(
    charged: list[tuple[Payment, PaymentAttempt, GatewayResult]], now: datetime
) -> list[tuple[Payment, PaymentAttempt, GatewayResult]]:
    """Transaction B for many payments: record each outcome; return those another process changed since A.

    The caller records the returned ones one at a time with ``_attempt_finish``.
    """
    if not charged:
        return []
    changed = []
    with transaction.atomic(using=ALIAS, durable=True):
        versions = dict(
            Payment.objects.using(ALIAS)
            .select_for_update()
            .filter(id__in=[payment.id for payment, _, _ in charged])
            .order_by("id")
            .values_list("id", "version")
        )
        unchanged = []
        for payment, attempt, result in charged:
            if versions.get(payment.id) == payment.version:
                _set_outcome(payment, attempt, result, now)
                unchanged.append((payment, attempt))
            else:
                changed.append((payment, attempt, result))

        for values, payments_alike in group_by(
            [payment for payment, _ in unchanged],
            lambda payment: tuple(getattr(payment, field) for field in OUTCOME_PAYMENT_FIELDS),
        ):
            Payment.objects.using(ALIAS).filter(id__in=[payment.id for payment in payments_alike]).update(
                **dict(zip(OUTCOME_PAYMENT_FIELDS, values, strict=True))
            )
        update_rows([attempt for _, attempt in unchanged], OUTCOME_ATTEMPT_FIELDS, using=ALIAS)
        with outbox_rows_collected(get_module(ALIAS)):
            for payment, attempt in unchanged:
                _announce_outcome(payment, attempt, now)
    return changed


def attempt_idempotency_key(payment: Payment, number: int) -> str:
    return f"{payment.idempotency_key}:attempt-{number}"


def _attempt_start(payment_id: str, now: datetime) -> tuple[Payment, PaymentAttempt | None]:
    """Transaction A: commit a new attempt in processing, or find the one to resume."""
    with transaction.atomic(using=ALIAS, durable=True):
        payment = _lock_payment(payment_id)
        if payment.is_final:
            logger.info(
                "Skipped charging payment %s: it already %s", payment.id, payment.status,
                extra=_log_extra(payment),
            )
            return payment, None

        # Only a payment in processing has an attempt in processing, because
        # both rows change status in one transaction under this lock. If that
        # invariant ever breaks, the unique index payments_attempt_one_processing
        # rejects the second attempt in processing below.
        attempt = None
        if payment.status == PaymentStatus.PROCESSING:
            attempt = (
                payment.attempts.using(ALIAS)
                .select_related("payment_method")
                .filter(status=PaymentAttemptStatus.PROCESSING)
                .first()
            )
        if attempt is not None:
            logger.info(
                "Resuming attempt %s of payment %s, left in processing since %s",
                attempt.number, payment.id, attempt.started_at.isoformat(),
                extra=_log_extra(payment, attempt),
            )
            return payment, attempt

        if payment.status == PaymentStatus.RETRY_SCHEDULED and payment.next_attempt_at > now:
            logger.info(
                "Skipped charging payment %s: its retry is due at %s, after %s",
                payment.id, payment.next_attempt_at.isoformat(), now.isoformat(),
                extra=_log_extra(payment),
            )
            return payment, None

        method = _method_to_charge(payment)
        number = payment.attempt_count + 1
        attempt = PaymentAttempt.objects.using(ALIAS).create(
            payment=payment,
            number=number,
            status=PaymentAttemptStatus.PROCESSING,
            payment_method=method,
            idempotency_key=attempt_idempotency_key(payment, number),
            started_at=now,
        )
        payment.status = PaymentStatus.PROCESSING
        payment.attempt_count = number
        payment.next_attempt_at = None
        payment.version += 1
        payment.updated_at = now
        payment.save(using=ALIAS, update_fields=ATTEMPT_START_FIELDS)

        if method is None:
            # Nothing to charge, so the outcome is known without the gateway.
            _record_outcome(payment, attempt, _no_payment_method(payment), now)
    return payment, attempt


def _gateway_charge(gateway: PaymentGateway, payment: Payment, attempt: PaymentAttempt) -> GatewayResult | None:
    """Call the gateway outside any transaction; return None when it gave no outcome."""
    try:
        return gateway.charge(
            idempotency_key=attempt.idempotency_key,
            amount_minor=payment.amount_minor,
            currency=payment.currency,
            token=attempt.payment_method.token,
            customer_id=payment.customer_id,
        )
    except GatewayError as error:
        logger.warning(
            "Gateway returned no outcome for attempt %s of payment %s; the attempt stays in "
            "processing and is resumed with the same key once stale: %s",
            attempt.number, payment.id, error,
            extra=_log_extra(payment, attempt),
        )
        return None


def _attempt_finish(payment: Payment, attempt: PaymentAttempt, result: GatewayResult, now: datetime) -> Payment:
    """Transaction B: record the gateway's outcome unless another process already did.

    ``payment`` and ``attempt`` are the rows as transaction A left them.
    """
    with transaction.atomic(using=ALIAS, durable=True):
        read_version = payment.version
        _set_outcome(payment, attempt, result, now)
        # Every write of a payment increments its version, so a row still at
        # the version of transaction A equals the copy in memory and still has
        # this attempt in processing. The conditional UPDATE locks the row, so
        # the other writers' SELECT ... FOR UPDATE waits as before, and no
        # re-read is needed.
        written = (
            Payment.objects.using(ALIAS)
            .filter(id=payment.id, version=read_version)
            .update(**{field: getattr(payment, field) for field in OUTCOME_PAYMENT_FIELDS})
        )
        if written:
            attempt.save(using=ALIAS, update_fields=OUTCOME_ATTEMPT_FIELDS)
            _announce_outcome(payment, attempt, now)
            return payment

        # Another process changed the payment since transaction A, usually by
        # recording this attempt's outcome first. Lock both rows and decide on
        # their current state.
        payment = _lock_payment(str(payment.id))
        attempt = payment.attempts.using(ALIAS).select_for_update().get(number=attempt.number)
        if attempt.status != PaymentAttemptStatus.PROCESSING:
            logger.info(
                "Attempt %s of payment %s was already recorded as %s by another process",
                attempt.number, payment.id, attempt.status,
                extra=_log_extra(payment, attempt),
            )
            return payment
        _record_outcome(payment, attempt, result, now)
    return payment


def _record_outcome(payment: Payment, attempt: PaymentAttempt, result: GatewayResult, now: datetime) -> None:
    """Finish the attempt, move the payment on and append its event; the caller holds the lock."""
    _set_outcome(payment, attempt, result, now)
    attempt.save(using=ALIAS, update_fields=OUTCOME_ATTEMPT_FIELDS)
    payment.save(using=ALIAS, update_fields=OUTCOME_PAYMENT_FIELDS)
    _announce_outcome(payment, attempt, now)


def _set_outcome(payment: Payment, attempt: PaymentAttempt, result: GatewayResult, now: datetime) -> None:
    """Set the outcome fields of the attempt and the payment in memory, without writing them."""
    attempt.status = PaymentAttemptStatus.SUCCEEDED if result.succeeded else PaymentAttemptStatus.FAILED
    attempt.gateway_reference = _fitted(attempt, "gateway_reference", result.reference)
    attempt.failure_code = _fitted(attempt, "failure_code", result.failure_code)
    attempt.failure_message = result.failure_message
    attempt.retryable = result.retryable
    attempt.finished_at = now

    payment.version += 1
    payment.updated_at = now
    if result.succeeded:
        payment.status = PaymentStatus.SUCCEEDED
        payment.succeeded_at = now
        payment.next_attempt_at = None
        return

    if payment.first_failed_at is None:
        payment.first_failed_at = now
    next_attempt_at = _next_attempt_at(payment, attempt, result)
    if next_attempt_at is None:
        payment.status = PaymentStatus.FAILED
        payment.failed_at = now
    else:
        payment.status = PaymentStatus.RETRY_SCHEDULED
    payment.next_attempt_at = next_attempt_at


def _announce_outcome(payment: Payment, attempt: PaymentAttempt, now: datetime) -> None:
    """Append the outcome's event to the outbox and log it."""
    if attempt.status == PaymentAttemptStatus.SUCCEEDED:
        _append_event(payment, PAYMENT_SUCCEEDED, _succeeded_payload(payment, attempt, now), now)
        logger.info(
            "Payment %s succeeded on attempt %s, gateway reference %s",
            payment.id, attempt.number, attempt.gateway_reference,
            extra=_log_extra(payment, attempt),
        )
        return

    _append_event(payment, PAYMENT_FAILED, _failed_payload(payment, attempt, now), now)
    logger.warning(
        "Attempt %s of payment %s failed with %s; %s",
        attempt.number, payment.id, attempt.failure_code,
        "final" if payment.next_attempt_at is None else f"next attempt at {payment.next_attempt_at.isoformat()}",
        extra=_log_extra(payment, attempt),
    )


def _fitted(attempt: PaymentAttempt, field_name: str, value: str) -> str:
    """Return the gateway's ``value`` cut to the column's length, logging the whole value when it is cut.

    An outcome that did not fit would fail transaction B on every try, and
    the payment would stay in processing for good.
    """
    max_length = PaymentAttempt._meta.get_field(field_name).max_length
    if len(value) <= max_length:
        return value
    logger.warning(
        "Gateway returned a %s of %s characters for attempt %s of payment %s; storing the first %s: %r",
        field_name, len(value), attempt.number, attempt.payment_id, max_length, value,
        extra={"payment_id": str(attempt.payment_id), "attempt_number": attempt.number},
    )
    return value[:max_length]


def _next_attempt_at(payment: Payment, attempt: PaymentAttempt, result: GatewayResult) -> datetime | None:
    """Return when to retry after this failed attempt, or None when the failure is final.

    Every entry of the schedule counts days from the first failure, and
    attempt n is preceded by n - 1 retries, since any success ends the payment.
    """
    if not result.retryable:
        return None
    schedule = payments_settings().retry_schedule_days
    retries_used = attempt.number - 1
    if retries_used >= len(schedule):
        return None
    # NOTE: a retry runner that was down past a scheduled day leaves this in
    # the past, so the next run retries at once instead of skipping the day.
    return payment.first_failed_at + timedelta(days=schedule[retries_used])


def _method_to_charge(payment: Payment) -> PaymentMethod | None:
    """Return the customer's default method, else the newest one, else None."""
    return (
        PaymentMethod.objects.using(ALIAS)
        .filter(tenant_id=payment.tenant_id, customer_id=payment.customer_id)
        .order_by("-is_default", "-created_at")
        .first()
    )


def _methods_to_charge(payments: list[Payment]) -> dict[tuple[str, str], PaymentMethod]:
    """Return the method ``_method_to_charge`` picks for each (tenant, customer) of ``payments``, with one query."""
    if not payments:
        return {}
    methods: dict[tuple[str, str], PaymentMethod] = {}
    candidates = (
        PaymentMethod.objects.using(ALIAS)
        .filter(
            tenant_id__in={payment.tenant_id for payment in payments},
            customer_id__in={payment.customer_id for payment in payments},
        )
        .order_by("tenant_id", "customer_id", "-is_default", "-created_at")
    )
    for method in candidates:
        methods.setdefault((method.tenant_id, method.customer_id), method)
    return methods


def _no_payment_method(payment: Payment) -> GatewayResult:
    return GatewayResult(
        succeeded=False,
        reference="",
        failure_code=NO_PAYMENT_METHOD,
        failure_message=(
            f"Customer {payment.customer_id} has no payment method to charge; add one with "
            "payment_method_upsert or in the admin under Payments > Payment methods."
        ),
        retryable=False,
    )


def _lock_payment(payment_id: str) -> Payment:
    try:
        payment_uuid = uuid.UUID(str(payment_id))
    except ValueError:
        raise PaymentNotFound(f"payment id {payment_id!r} is not a UUID; pass the id of a payment") from None
    try:
        return Payment.objects.using(ALIAS).select_for_update().get(id=payment_uuid)
    except Payment.DoesNotExist:
        raise PaymentNotFound(f"payment {payment_id} does not exist; pass the id of a payment") from None


def _append_event(payment: Payment, event_type, payload, now: datetime) -> None:
    outbox_append(
        module="payments",
        event_type=event_type,
        aggregate_type="payment",
        aggregate_id=str(payment.id),
        aggregate_version=payment.version,
        tenant_id=payment.tenant_id,
        payload=payload,
        occurred_at=now,
        correlation_id=payment.correlation_id,
        causation_id=payment.request_event_id,
    )


def _succeeded_payload(payment: Payment, attempt: PaymentAttempt, now: datetime) -> PaymentSucceeded:
    return PaymentSucceeded(
        payment_id=str(payment.id),
        invoice_id=payment.invoice_id,
        customer_id=payment.customer_id,
        amount_minor=payment.amount_minor,
        currency=payment.currency,
        gateway_reference=attempt.gateway_reference,
        attempt_number=attempt.number,
        succeeded_at=format_timestamp(now),
    )


def _failed_payload(payment: Payment, attempt: PaymentAttempt, now: datetime) -> PaymentFailed:
    return PaymentFailed(
        payment_id=str(payment.id),
        invoice_id=payment.invoice_id,
        customer_id=payment.customer_id,
        amount_minor=payment.amount_minor,
        currency=payment.currency,
        failure_code=attempt.failure_code,
        failure_message=attempt.failure_message,
        attempt_number=attempt.number,
        retryable=attempt.retryable,
        final=payment.status == PaymentStatus.FAILED,
        failed_at=format_timestamp(now),
        next_attempt_at=format_timestamp(payment.next_attempt_at) if payment.next_attempt_at else None,
    )


def _log_extra(payment: Payment, attempt: PaymentAttempt | None = None) -> dict:
    extra = {
        "tenant_id": payment.tenant_id,
        "payment_id": str(payment.id),
        "invoice_id": payment.invoice_id,
        "correlation_id": str(payment.correlation_id),
    }
    if attempt is not None:
        extra["attempt_number"] = attempt.number
    return extra
