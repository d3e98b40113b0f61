"""invariants_check on a settled flow, and on the same flow with one invariant broken."""

import uuid
from datetime import timedelta

import pytest
from django.utils import timezone

from billing.invariants import invariants_check
from tests.invariants.conftest import BILLED_AT, check_later

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True, databases="__all__")]

CHECK_NAMES = [
    "periods_billed_once",
    "invoice_numbers_gapless",
    "invoices_collected",
    "charged_once",
    "payments_applied",
    "outboxes_published",
    "events_applied",
    "notifications_recorded",
]


def invoice_of(customer_id: str):
    from ar.models import Invoice

    return Invoice.objects.get(customer_id=customer_id)


def payment_of(customer_id: str):
    from payments.models import Payment

    return Payment.objects.get(customer_id=customer_id)


class TestSettledFlow:
    def test_every_check_passes(self, settled_flow):
        report = check_later()

        assert [check.name for check in report.checks] == CHECK_NAMES
        assert report.failed_checks == []
        assert report.passed is True

    def test_rows_checked_counts(self, settled_flow):
        report = check_later()

        assert report.check("periods_billed_once").rows_checked == 4
        assert report.check("invoice_numbers_gapless").rows_checked == 4
        assert report.check("invoices_collected").rows_checked == 4
        assert report.check("charged_once").rows_checked == 4
        assert report.check("payments_applied").rows_checked == 2
        assert report.check("outboxes_published").rows_checked > 0
        assert report.check("events_applied").rows_checked > 0

    def test_flow_states_as_expected(self, settled_flow):
        ids = settled_flow.customer_ids

        assert invoice_of(ids["ada"]).status == "paid"
        assert invoice_of(ids["linus"]).status == "open"
        assert payment_of(ids["linus"]).status == "retry_scheduled"
        assert invoice_of(ids["barbara"]).status == "uncollectible"

    def test_tenant_filter_sees_nothing_of_others(self, settled_flow):
        report = invariants_check(tenant_id="globex", now=timezone.now() + timedelta(hours=1))

        assert report.passed is True
        assert report.tenant_id == "globex"
        assert all(check.rows_checked == 0 for check in report.checks)

    def test_recent_work_counts_as_in_flight(self, settled_flow):
        # The relay stamped published_at with the real clock, so with the
        # default threshold nothing published is old enough to check.
        report = invariants_check(now=timezone.now())

        assert report.passed is True
        assert report.check("events_applied").rows_checked == 0


class TestPeriodsBilledOnce:
    def test_invoice_of_unknown_period(self, settled_flow):
        from ar.models import Invoice

        invoice = invoice_of(settled_flow.customer_ids["ada"])
        period_id = str(invoice.billing_period_id)
        stray_period_id = str(uuid.uuid4())
        Invoice.objects.filter(id=invoice.id).update(billing_period_id=stray_period_id)

        report = check_later()

        assert report.failed_checks == ["periods_billed_once"]
        violations = report.check("periods_billed_once").violations
        assert [violation.message for violation in violations] == [
            "billing period has no AR invoice",
            "AR invoice refers to a billing period that subscriptions does not have",
        ]
        assert violations[0].ids["billing_period_id"] == period_id
        assert violations[1].ids == {"invoice_id": str(invoice.id), "billing_period_id": stray_period_id}


class TestInvoiceNumbersGapless:
    def test_renumbered_invoice_leaves_gap(self, settled_flow):
        from ar.models import Invoice

        last = Invoice.objects.get(number="ACME-000004")
        Invoice.objects.filter(id=last.id).update(number="ACME-000005")

        report = check_later()

        assert report.failed_checks == ["invoice_numbers_gapless"]
        violations = report.check("invoice_numbers_gapless").violations
        assert [(violation.message, violation.ids) for violation in violations] == [
            (
                "invoice number ACME-000005 is above the last number allocated, ACME-000004",
                {"invoice_id": str(last.id), "tenant_id": "acme"},
            ),
            ("invoice number ACME-000004 is missing", {"tenant_id": "acme"}),
        ]

    def test_deleted_invoice_leaves_gap(self, settled_flow):
        from ar.models import Invoice

        invoice = invoice_of(settled_flow.customer_ids["linus"])
        Invoice.objects.filter(id=invoice.id).delete()

        report = check_later()

        # The invoice's billing period has lost its invoice too.
        assert report.failed_checks == ["periods_billed_once", "invoice_numbers_gapless"]
        (violation,) = report.check("invoice_numbers_gapless").violations
        assert violation.message == f"invoice number {invoice.number} is missing"
        assert violation.ids == {"tenant_id": "acme"}

    def test_deleted_last_invoice_leaves_gap(self, settled_flow):
        from ar.models import Invoice, PaymentApplication

        last = Invoice.objects.get(number="ACME-000004")
        PaymentApplication.objects.filter(invoice=last).delete()
        Invoice.objects.filter(id=last.id).delete()

        report = check_later()

        assert "invoice_numbers_gapless" in report.failed_checks
        violations = report.check("invoice_numbers_gapless").violations
        assert [violation.message for violation in violations] == ["invoice number ACME-000004 is missing"]

    def test_malformed_number(self, settled_flow):
        from ar.models import Invoice

        last = Invoice.objects.get(number="ACME-000004")
        Invoice.objects.filter(id=last.id).update(number="INV-4")

        report = check_later()

        assert report.failed_checks == ["invoice_numbers_gapless"]
        violations = report.check("invoice_numbers_gapless").violations
        assert [(violation.message, violation.ids) for violation in violations] == [
            (
                "invoice number 'INV-4' does not have the form ACME-000001",
                {"invoice_id": str(last.id), "tenant_id": "acme"},
            ),
            ("invoice number ACME-000004 is missing", {"tenant_id": "acme"}),
        ]


class TestInvoicesCollected:
    def test_open_invoice_with_failed_payment(self, settled_flow):
        from payments.models import Payment

        customer_id = settled_flow.customer_ids["linus"]
        payment = payment_of(customer_id)
        Payment.objects.filter(id=payment.id).update(status="failed", next_attempt_at=None)

        report = check_later()

        assert report.failed_checks == ["invoices_collected"]
        (violation,) = report.check("invoices_collected").violations
        assert violation.message == "open invoice has a failed payment"
        assert violation.ids == {"invoice_id": str(invoice_of(customer_id).id), "payment_id": str(payment.id)}

    def test_open_invoice_without_payment(self, settled_flow):
        from payments.models import Payment, PaymentAttempt

        customer_id = settled_flow.customer_ids["linus"]
        payment = payment_of(customer_id)
        PaymentAttempt.objects.filter(payment=payment).delete()
        Payment.objects.filter(id=payment.id).delete()

        report = check_later()

        assert report.failed_checks == ["invoices_collected"]
        (violation,) = report.check("invoices_collected").violations
        assert violation.message == "open invoice has no payment"
        assert violation.ids == {"invoice_id": str(invoice_of(customer_id).id)}

    def test_uncollectible_invoice_with_waiting_payment(self, settled_flow):
        from payments.models import Payment

        customer_id = settled_flow.customer_ids["barbara"]
        payment = payment_of(customer_id)
        Payment.objects.filter(id=payment.id).update(
            status="retry_scheduled", next_attempt_at=BILLED_AT + timedelta(days=1)
        )

        report = check_later()

        assert report.failed_checks == ["invoices_collected"]
        (violation,) = report.check("invoices_collected").violations
        assert violation.message == "uncollectible invoice has a retry_scheduled payment, not a failed one"


class TestChargedOnce:
    def test_duplicate_successful_charge(self, settled_flow):
        from payments.models import PaymentAttempt, SimulatedCharge

        customer_id = settled_flow.customer_ids["ada"]
        payment = payment_of(customer_id)
        (first,) = PaymentAttempt.objects.filter(payment=payment)
        PaymentAttempt.objects.create(
            payment=payment, number=2, status="succeeded", payment_method=first.payment_method,
            idempotency_key=f"{first.idempotency_key}-again", started_at=BILLED_AT,
        )
        SimulatedCharge.objects.create(
            idempotency_key=f"{first.idempotency_key}-again", reference="sim_ch_duplicate",
            customer_id=customer_id, token="tok_success", amount_minor=4900, currency="USD",
            succeeded=True, created_at=BILLED_AT,
        )

        report = check_later()

        assert report.failed_checks == ["charged_once"]
        invoice_id = str(invoice_of(customer_id).id)
        violations = report.check("charged_once").violations
        assert [(violation.message, violation.ids) for violation in violations] == [
            ("invoice has 2 successful payment attempts", {"invoice_id": invoice_id}),
            ("invoice has 2 successful gateway charges", {"invoice_id": invoice_id}),
        ]


class TestPaymentsApplied:
    def test_missing_payment_application(self, settled_flow):
        from ar.models import PaymentApplication

        customer_id = settled_flow.customer_ids["grace"]
        payment = payment_of(customer_id)
        PaymentApplication.objects.filter(reference=str(payment.id)).delete()

        report = check_later()

        assert report.failed_checks == ["payments_applied"]
        violations = report.check("payments_applied").violations
        assert [(violation.message, violation.ids) for violation in violations] == [
            ("succeeded payments sum to 9800 USD minor units but AR applied 4900", {"tenant_id": "acme"}),
            (
                "succeeded payment was not applied by AR",
                {"payment_id": str(payment.id), "invoice_id": str(invoice_of(customer_id).id)},
            ),
        ]


class TestOutboxesPublished:
    def test_old_pending_row(self, settled_flow):
        from payments.models import OutboxEvent

        row = OutboxEvent.objects.filter(event_type="payments.payment.succeeded").first()
        OutboxEvent.objects.filter(id=row.id).update(state="pending", published_at=None)

        report = check_later()

        assert report.failed_checks == ["outboxes_published"]
        (violation,) = report.check("outboxes_published").violations
        assert violation.message == (
            f"payments.payment.succeeded pending in the payments outbox since {row.created_at.isoformat()}"
        )
        assert violation.ids == {"event_id": str(row.event_id), "bus_module": "payments"}

    def test_young_pending_row_is_in_flight(self, settled_flow):
        from payments.models import OutboxEvent

        row = OutboxEvent.objects.filter(event_type="payments.payment.succeeded").first()
        OutboxEvent.objects.filter(id=row.id).update(
            state="pending", published_at=None, created_at=timezone.now()
        )

        report = invariants_check(now=timezone.now() + timedelta(minutes=1))

        assert report.check("outboxes_published").passed is True


class TestEventsApplied:
    def test_deleted_inbox_row(self, settled_flow):
        from payments.models import ProcessedEvent

        row = ProcessedEvent.objects.filter(event_type="ar.payment.collection.requested").first()
        row.delete()

        report = check_later()

        assert report.failed_checks == ["events_applied"]
        (violation,) = report.check("events_applied").violations
        assert violation.message == (
            "ar.payment.collection.requested from ar is neither in the payments inbox nor in its dead letters"
        )
        assert violation.ids == {"event_id": str(row.event_id), "bus_module": "payments"}

    def test_dead_letter_counts_as_handled(self, settled_flow):
        from payments.models import DeadLetter, ProcessedEvent

        row = ProcessedEvent.objects.filter(event_type="ar.payment.collection.requested").first()
        row.delete()
        DeadLetter.objects.create(
            consumer="payments", message_key=str(row.event_id), subject="ar.events.ar.payment.collection.requested",
            event_id=row.event_id, event_type=row.event_type, tenant_id="acme", body=b"{}",
            reason="handler_failed", error="declined by test", deliveries=5, created_at=BILLED_AT,
        )

        report = check_later()

        assert report.passed is True


class TestNotificationsRecorded:
    def test_deleted_notification(self, settled_flow):
        from notifications.models import Notification

        notification = Notification.objects.filter(template="payment_receipt").first()
        notification.delete()

        report = check_later()

        assert report.failed_checks == ["notifications_recorded"]
        (violation,) = report.check("notifications_recorded").violations
        assert violation.message == "payments.payment.succeeded produced no payment_receipt notification"
        assert violation.ids == {"event_id": str(notification.source_event_id)}

    def test_stuck_pending_notification(self, settled_flow):
        from notifications.models import Notification

        notification = Notification.objects.filter(template="invoice_finalized").first()
        Notification.objects.filter(id=notification.id).update(status="pending")

        report = check_later()

        assert report.failed_checks == ["notifications_recorded"]
        (violation,) = report.check("notifications_recorded").violations
        assert violation.message == (
            f"invoice_finalized notification pending since {notification.created_at.isoformat()}"
        )
        assert violation.ids == {
            "notification_id": str(notification.id), "event_id": str(notification.source_event_id),
        }
