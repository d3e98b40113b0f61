"""Run every invariant check and collect the results into one report."""

from datetime import datetime, timedelta

from django.utils import timezone

from ar.selectors import (
    gateway_payment_applications,
    invoice_audit_rows,
    invoice_number_last_allocated,
)
from billing.invariants.collection import (
    check_charged_once,
    check_invoices_collected,
    check_payments_applied,
)
from billing.invariants.delivery import (
    check_events_applied,
    check_notifications_recorded,
    check_outboxes_published,
)
from billing.invariants.invoicing import check_invoice_numbers_gapless, check_periods_billed_once
from billing.invariants.report import InvariantReport
from notifications.selectors import notification_audit_rows
from payments.selectors import payment_audit_rows
from subscriptions.selectors import billing_period_keys

# How long work may be in flight before a check reports it. The relay runs
# every second, and a failing handler is retried for about 2.5 minutes with
# the default backoff (1, 5, 30 and 120 s) before its event is dead-lettered.
# Five minutes covers both and still reports a stuck outbox or a lost event
# within the shift that caused it.
DEFAULT_STALE_AFTER = timedelta(minutes=5)


def invariants_check(
    *,
    tenant_id: str | None = None,
    now: datetime | None = None,
    stale_after: timedelta = DEFAULT_STALE_AFTER,
) -> InvariantReport:
    """Check every invariant, of one tenant or all, and return the report.

    Work newer than ``now - stale_after`` (a pending outbox row, an event not
    yet applied, an invoice not yet charged) counts as in flight and is not
    reported. ``now`` defaults to the current time because an operator runs
    this against live data.

    NOTE: every row of the checked tenants is read into memory; on a large
    dataset run it per tenant.
    """
    cutoff = (now or timezone.now()) - stale_after

    periods = billing_period_keys(tenant_id=tenant_id)
    invoices = invoice_audit_rows(tenant_id=tenant_id)
    payments = payment_audit_rows(tenant_id=tenant_id)
    applications = gateway_payment_applications(tenant_id=tenant_id)
    notifications = notification_audit_rows(tenant_id=tenant_id)

    checks = [
        check_periods_billed_once(periods=periods, invoices=invoices, cutoff=cutoff),
        check_invoice_numbers_gapless(
            invoices=invoices, last_allocated=invoice_number_last_allocated(tenant_id=tenant_id)
        ),
        check_invoices_collected(invoices=invoices, payments=payments, cutoff=cutoff),
        check_charged_once(payments=payments),
        check_payments_applied(payments=payments, applications=applications),
        check_outboxes_published(tenant_id=tenant_id, cutoff=cutoff),
        check_events_applied(tenant_id=tenant_id, cutoff=cutoff),
        check_notifications_recorded(tenant_id=tenant_id, notifications=notifications, cutoff=cutoff),
    ]
    return InvariantReport(tenant_id=tenant_id, checks=checks)
