"""The pure checks on rows the database constraints would reject, and the template mapping."""

from datetime import UTC, date, datetime

from ar.selectors import InvoiceAuditRow
from billing.invariants.delivery import TEMPLATE_FOR_EVENT_TYPE
from billing.invariants.invoicing import check_invoice_numbers_gapless, check_periods_billed_once
from billing.invariants.report import MAX_VIOLATIONS_SHOWN, CheckResult
from subscriptions.selectors import BillingPeriodKey

CREATED_AT = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)
CUTOFF = datetime(2026, 3, 2, 0, 0, tzinfo=UTC)


def period(billing_period_id: str, subscription_id: str = "sub-1") -> BillingPeriodKey:
    return BillingPeriodKey(
        billing_period_id=billing_period_id, tenant_id="acme", subscription_id=subscription_id,
        period_start=date(2026, 3, 1), created_at=CREATED_AT,
    )


def invoice(invoice_id: str, number: str | None, billing_period_id: str | None = None) -> InvoiceAuditRow:
    return InvoiceAuditRow(
        invoice_id=invoice_id, tenant_id="acme", number=number, status="open", currency="USD",
        total_minor=4900, amount_paid_minor=0, collection_method="charge_automatically",
        billing_period_id=billing_period_id, finalized_at=CREATED_AT,
    )


class TestPeriodsRule:
    def test_two_periods_same_start(self):
        result = check_periods_billed_once(
            periods=[period("bp-1"), period("bp-2")],
            invoices=[invoice("inv-1", "ACME-000001", "bp-1"), invoice("inv-2", "ACME-000002", "bp-2")],
            cutoff=CUTOFF,
        )

        assert result.violation_count == 1
        assert result.violations[0].message == "subscription has 2 billing periods starting 2026-03-01"
        assert result.violations[0].ids == {"subscription_id": "sub-1"}

    def test_two_invoices_one_period(self):
        result = check_periods_billed_once(
            periods=[period("bp-1")],
            invoices=[invoice("inv-1", "ACME-000001", "bp-1"), invoice("inv-2", "ACME-000002", "bp-1")],
            cutoff=CUTOFF,
        )

        assert [violation.message for violation in result.violations] == [
            "billing period has 2 AR invoices: inv-1, inv-2",
        ]

    def test_young_period_without_invoice_passes(self):
        result = check_periods_billed_once(periods=[period("bp-1")], invoices=[], cutoff=CREATED_AT)

        assert result.passed is True
        assert result.rows_checked == 1


class TestNumbersRule:
    def test_repeated_number(self):
        result = check_invoice_numbers_gapless(
            invoices=[invoice("inv-1", "ACME-000001"), invoice("inv-2", "ACME-000001")],
            last_allocated={"acme": 1},
        )

        assert [violation.message for violation in result.violations] == [
            "invoice number ACME-000001 is used by 2 invoices: inv-1, inv-2",
        ]

    def test_numbers_must_start_at_one(self):
        result = check_invoice_numbers_gapless(invoices=[invoice("inv-2", "ACME-000002")], last_allocated={"acme": 2})

        assert [violation.message for violation in result.violations] == ["invoice number ACME-000001 is missing"]

    def test_drafts_are_not_counted(self):
        result = check_invoice_numbers_gapless(
            invoices=[invoice("inv-1", "ACME-000001"), invoice("inv-2", None)], last_allocated={"acme": 1}
        )

        assert result.passed is True
        assert result.rows_checked == 1

    def test_seven_digit_number_accepted(self):
        rows = [invoice(f"inv-{n}", f"ACME-{n:06d}") for n in range(1, 4)]
        rows[2] = invoice("inv-3", "ACME-0000003")

        assert check_invoice_numbers_gapless(invoices=rows, last_allocated={"acme": 3}).passed is True

    def test_missing_last_number(self):
        result = check_invoice_numbers_gapless(invoices=[invoice("inv-1", "ACME-000001")], last_allocated={"acme": 2})

        assert [violation.message for violation in result.violations] == ["invoice number ACME-000002 is missing"]

    def test_number_above_last_allocated(self):
        result = check_invoice_numbers_gapless(invoices=[invoice("inv-1", "ACME-000001")], last_allocated={})

        assert [violation.message for violation in result.violations] == [
            "invoice number ACME-000001 is above the last number allocated, ACME-000000",
        ]
        assert result.violations[0].ids == {"invoice_id": "inv-1", "tenant_id": "acme"}


class TestViolationCap:
    def test_count_exact_examples_capped(self):
        result = CheckResult(name="example", description="Example.")
        for n in range(MAX_VIOLATIONS_SHOWN + 5):
            result.add("broken", row_id=str(n))

        assert result.violation_count == MAX_VIOLATIONS_SHOWN + 5
        assert len(result.violations) == MAX_VIOLATIONS_SHOWN
        assert result.passed is False


class TestTemplateMapping:
    def test_covers_notifications_handlers(self):
        from eventbus.registry import get_module

        handled = {event_type.name for event_type in get_module("notifications").handlers.event_types()}

        assert set(TEMPLATE_FOR_EVENT_TYPE) == handled

    def test_templates_exist(self):
        from notifications.models import NotificationTemplate

        assert set(TEMPLATE_FOR_EVENT_TYPE.values()) <= set(NotificationTemplate.values)
