"""The read-only selectors the invariant checks use, on the settled flow."""

import pytest

from tests.invariants.conftest import AS_OF, BILLED_AT

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True, databases="__all__")]


class TestAuditSelectors:
    def test_billing_period_keys(self, settled_flow):
        from subscriptions.selectors import billing_period_keys

        keys = billing_period_keys(tenant_id="acme")

        assert len(keys) == 4
        assert {key.period_start for key in keys} == {AS_OF}
        assert {key.created_at for key in keys} == {BILLED_AT}
        assert billing_period_keys(tenant_id="globex") == []

    def test_invoice_audit_rows(self, settled_flow):
        from ar.selectors import invoice_audit_rows

        rows = {row.number: row for row in invoice_audit_rows(tenant_id="acme")}

        assert sorted(rows) == ["ACME-000001", "ACME-000002", "ACME-000003", "ACME-000004"]
        statuses = sorted(row.status for row in rows.values())
        assert statuses == ["open", "paid", "paid", "uncollectible"]
        assert {row.collection_method for row in rows.values()} == {"charge_automatically"}
        assert all(row.billing_period_id for row in rows.values())

    def test_invoice_number_last_allocated(self, settled_flow):
        from ar.selectors import invoice_number_last_allocated

        assert invoice_number_last_allocated() == {"acme": 4}
        assert invoice_number_last_allocated(tenant_id="globex") == {}

    def test_gateway_payment_applications(self, settled_flow):
        from ar.selectors import gateway_payment_applications
        from payments.models import Payment

        applications = gateway_payment_applications(tenant_id="acme")

        succeeded = set(Payment.objects.filter(status="succeeded").values_list("id", flat=True))
        assert {application.payment_id for application in applications} == {str(pk) for pk in succeeded}
        assert [application.amount_minor for application in applications] == [4900, 4900]

    def test_payment_audit_rows(self, settled_flow):
        from payments.selectors import payment_audit_rows

        rows = payment_audit_rows(tenant_id="acme")

        by_status = sorted((row.status, row.succeeded_attempts, row.successful_charges) for row in rows)
        assert by_status == [("failed", 0, 0), ("retry_scheduled", 0, 0), ("succeeded", 1, 1), ("succeeded", 1, 1)]

    def test_notification_audit_rows(self, settled_flow):
        from notifications.selectors import notification_audit_rows

        rows = notification_audit_rows(tenant_id="acme")

        templates = sorted(row.template for row in rows)
        assert templates == ["invoice_finalized"] * 4 + ["payment_failed"] * 2 + ["payment_receipt"] * 2
        assert {row.status for row in rows} == {"sent"}

    def test_processed_event_queryset(self, settled_flow):
        from eventbus.selectors import processed_event_queryset

        inbox = processed_event_queryset(module="payments", tenant_id="acme")

        assert inbox.filter(event_type="ar.payment.collection.requested").count() == 4
        assert processed_event_queryset(module="payments", tenant_id="globex").count() == 0
