import pytest

from notifications.errors import NotificationNotFound
from notifications.models import NotificationStatus
from notifications.selectors import (
    emails_sent_count,
    invoice_numbers_for,
    notification_counts_by_status,
    notification_get,
    notification_list,
)
from notifications.tests.factories import OCCURRED_AT, NotificationFactory

pytestmark = pytest.mark.django_db(databases="__all__")


def sent(**fields):
    return NotificationFactory(status=NotificationStatus.SENT, sent_at=OCCURRED_AT, **fields)


class TestEmailsSentCount:
    def test_counts_sent_only(self):
        sent()
        sent(tenant_id="tenant-b")
        NotificationFactory()
        NotificationFactory(status=NotificationStatus.FAILED, error="x")

        assert emails_sent_count() == 2
        assert emails_sent_count(tenant_id="tenant-a") == 1
        assert emails_sent_count(tenant_id="tenant-c") == 0


class TestNotificationCountsByStatus:
    def test_every_status_present(self):
        sent()
        sent(template="invoice_finalized")
        NotificationFactory()

        assert notification_counts_by_status() == {"pending": 1, "sent": 2, "failed": 0}
        assert notification_counts_by_status(template="invoice_finalized") == {"pending": 0, "sent": 1, "failed": 0}
        assert notification_counts_by_status(tenant_id="tenant-b") == {"pending": 0, "sent": 0, "failed": 0}


class TestNotificationGet:
    def test_found(self):
        notification = NotificationFactory()

        assert notification_get(notification_id=str(notification.id)).id == notification.id

    @pytest.mark.parametrize("notification_id", ["0f5b7c9e-1111-4222-8333-944455556666", "not-a-uuid"])
    def test_missing_raises(self, notification_id):
        with pytest.raises(NotificationNotFound) as raised:
            notification_get(notification_id=notification_id)

        assert str(raised.value) == f"notification {notification_id} not found"


class TestNotificationList:
    def test_filters_combine(self):
        expected = NotificationFactory(customer_id="cus-1")
        NotificationFactory(customer_id="cus-2")
        NotificationFactory(customer_id="cus-1", status=NotificationStatus.FAILED, error="x")

        found = list(notification_list(customer_id="cus-1", status=NotificationStatus.PENDING))

        assert [notification.id for notification in found] == [expected.id]

    def test_by_source_event(self):
        notification = NotificationFactory()
        NotificationFactory()

        found = notification_list(source_event_id=str(notification.source_event_id))

        assert [row.id for row in found] == [notification.id]


class TestInvoiceNumbersFor:
    def test_from_invoice_email(self):
        NotificationFactory(template="invoice_finalized", invoice_id="inv-1", invoice_number="INV-7")
        NotificationFactory(template="invoice_finalized", invoice_id="inv-2", invoice_number="INV-8")

        found = invoice_numbers_for(invoice_ids=["inv-1", "inv-2", "inv-3"])

        assert found == {("tenant-a", "inv-1"): "INV-7", ("tenant-a", "inv-2"): "INV-8"}

    def test_keyed_by_tenant(self):
        NotificationFactory(template="invoice_finalized", invoice_id="inv-1", invoice_number="INV-7")

        assert ("tenant-b", "inv-1") not in invoice_numbers_for(invoice_ids=["inv-1"])

    def test_unknown_invoice(self):
        NotificationFactory(template="payment_receipt", invoice_id="inv-1", invoice_number="")

        assert invoice_numbers_for(invoice_ids=["inv-1"]) == {}

