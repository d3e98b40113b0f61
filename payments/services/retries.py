import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db.models import F, Q

from payments.conf import payments_settings
from payments.gateways import get_gateway
from payments.models import Payment, PaymentAttempt, PaymentAttemptStatus, PaymentStatus
from payments.services.charges import payment_attempt_charge
from payments.services.validation import require_aware

logger = logging.getLogger(__name__)

ALIAS = "payments"


@dataclass(frozen=True)
class RetrySummary:
    """Counts of what one run of ``payments_retry_due`` did.

    ``attempted`` counts the payments this run charged or resumed. Each of them
    is counted once more in ``succeeded``, ``failed`` (for good) or
    ``rescheduled``, unless the gateway returned no outcome. ``resumed`` counts
    the attempted payments whose attempt a crash had left in processing.
    """

    attempted: int = 0
    succeeded: int = 0
    failed: int = 0
    rescheduled: int = 0
    resumed: int = 0


def payments_retry_due(*, as_of: datetime, limit: int | None = None) -> RetrySummary:
    """Charge every payment due at ``as_of``, oldest first, at most ``limit`` of them.

    Three kinds of payment are due:

    - pending payments whose first charge never ran. A first charge that is
      running right now is harmless, because the payment's row lock and the
      attempt's key keep the two calls to one charge.
    - retries whose ``next_attempt_at`` is not after ``as_of``.
    - payments whose attempt has been in processing for at least
      ``PAYMENTS_PROCESSING_STALE_SECONDS``. They are resumed with the same key.

    Each payment is charged with ``payment_attempt_charge(now=as_of)`` in its
    own transactions. An unexpected error on one payment is logged, and the
    run goes on with the next.
    """
    require_aware("as_of", as_of)
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
        raise ValueError(f"limit={limit!r} must be a whole number of at least 1, or None for no limit")
    # Fail once on a misconfigured gateway instead of once per payment.
    get_gateway()

    stale_before = as_of - timedelta(seconds=payments_settings().processing_stale_seconds)
    due = _payments_due(as_of=as_of, stale_before=stale_before, limit=limit)
    counts = {"attempted": 0, "succeeded": 0, "failed": 0, "rescheduled": 0, "resumed": 0}

    for candidate in due:
        resuming = candidate.status == PaymentStatus.PROCESSING
        try:
            payment = payment_attempt_charge(payment_id=str(candidate.id), now=as_of)
        except Exception:
            logger.exception(
                "Charging due payment failed; it is retried on the next run",
                extra={"payment_id": str(candidate.id), "tenant_id": candidate.tenant_id},
            )
            continue

        if not resuming and payment.attempt_count == candidate.attempt_count:
            # Another process charged or finished it after the query above.
            logger.info(
                "Skipped payment %s: another process charged it first", candidate.id,
                extra={"payment_id": str(candidate.id), "tenant_id": candidate.tenant_id},
            )
            continue

        counts["attempted"] += 1
        counts["resumed"] += resuming
        if payment.status == PaymentStatus.SUCCEEDED:
            counts["succeeded"] += 1
        elif payment.status == PaymentStatus.FAILED:
            counts["failed"] += 1
        elif payment.status == PaymentStatus.RETRY_SCHEDULED:
            counts["rescheduled"] += 1

    summary = RetrySummary(**counts)
    logger.info(
        "Retried %s due payment(s) as of %s: %s succeeded, %s failed, %s rescheduled, %s resumed",
        summary.attempted, as_of.isoformat(), summary.succeeded, summary.failed,
        summary.rescheduled, summary.resumed,
    )
    return summary


@dataclass(frozen=True)
class _DuePayment:
    id: str
    tenant_id: str
    status: str
    attempt_count: int


def _payments_due(*, as_of: datetime, stale_before: datetime, limit: int | None) -> list[_DuePayment]:
    """Return the payments to charge at ``as_of``: waiting ones by next attempt, stale ones first."""
    stale_attempts = PaymentAttempt.objects.using(ALIAS).filter(
        status=PaymentAttemptStatus.PROCESSING, started_at__lte=stale_before
    )
    payments = (
        Payment.objects.using(ALIAS)
        .filter(
            Q(status__in=[PaymentStatus.PENDING, PaymentStatus.RETRY_SCHEDULED], next_attempt_at__lte=as_of)
            | Q(status=PaymentStatus.PROCESSING, id__in=stale_attempts.values("payment_id"))
        )
        .order_by(F("next_attempt_at").asc(nulls_first=True), "created_at", "id")
        .values_list("id", "tenant_id", "status", "attempt_count")
    )
    if limit is not None:
        payments = payments[:limit]
    return [
        _DuePayment(id=str(payment_id), tenant_id=tenant_id, status=status, attempt_count=attempt_count)
        for payment_id, tenant_id, status, attempt_count in payments
    ]
